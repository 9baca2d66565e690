"""One holder's part of a federated total (``pets.HE``), under the same rules as DP.

Two forms, each named in the policy:

* ``he`` — ``pets.HE(dp=pets.DP(epsilon))``: the holder adds its own discrete Laplace
  noise of the full scale to its exact partial aggregates before encrypting, and charges
  ε to the analyst's grant (the ``max_epsilon`` cap applies). Guarantee: the released
  total is ε-DP for this holder's people against every other party.
* ``he_exact`` — ``pets.HE()`` without ``dp``: exact partial totals, encrypted. Nothing
  protects a person in an exact total, so a policy must allow ``he_exact`` explicitly
  for every column the query uses (``he`` does not imply it); each such release is
  counted against ``[dataset] max_exact_totals`` (default
  :data:`pets.policy.DEFAULT_MAX_EXACT_TOTALS`) and cells with fewer than
  :data:`EXACT_MIN_GROUP_SIZE` rows (or the grades' larger ``min_group_size``) are
  withheld. Guarantee: none beyond the encryption — the holders and the aggregator see
  only ciphertexts, the analyst sees exact totals of large groups.

In both, an identifier is never grouped by, filtered on or aggregated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from ..cost import Cost
from ..dp.aggregate import compile_dp
from ..errors import QueryError
from ..policy import DEFAULT_MAX_EXACT_TOTALS, Policy
from ..protections import DP, HE
from ..release import Explanation
from .base import Charge, Compiled, Context, Mechanism

__all__ = ["HEContribution", "EXACT_MIN_GROUP_SIZE", "check_summable", "check_total_width",
           "differs_error"]

#: the smallest group an exact federated total (form ``he_exact``) releases
EXACT_MIN_GROUP_SIZE = 10


def check_summable(plan: Any, unit: str | None) -> None:
    """Refuse aggregations whose totals are not the sum of the holders' parts."""
    for a in plan.aggs:
        if a.kind == "quantile":
            raise QueryError(
                f"quantile {a.name!r} cannot be released across holders: a quantile of the "
                "union is not computed from each holder's; ask each holder separately"
            )
        if a.kind == "count_distinct" and a.column is not None and a.column != unit:
            raise QueryError(
                f"count_distinct({a.column!r}) cannot be released across holders: one value "
                "can be at several holders, so the distinct counts do not add up; ask each "
                "holder separately (pets.count_distinct() counts persons, which do add up)"
            )


def check_total_width(compiled: Any, holders: int) -> None:
    """The total of every holder's partial must fit in 64 bits: decided from the bounds
    and the policy's max_rows (``compiled.value_bounds``) before anything runs, never
    from the data."""
    from ..dp.aggregate import EXACT_LIMIT

    widest = max(compiled.value_bounds.values(), default=0)
    if holders * widest > EXACT_LIMIT:
        raise QueryError(
            f"a total over {holders} holders of values up to {widest:.3g} each could exceed "
            f"the 64-bit limit ({EXACT_LIMIT:.3g}); narrow the bounds in the query, or "
            "the holders can lower [dataset] max_rows in their policies"
        )


def differs_error(who: str) -> QueryError:
    """Holders must compute a federated query the same way (``who``: 'holder ...')."""
    return QueryError(
        f"{who} computes this query differently from the others (keys, bounds or column "
        "types differ): give keys=[...] and bounds=(...) in the query, or align the "
        "holders' policies"
    )


def _exact_policy(policy: Policy) -> Policy:
    """The policy with every grade's minimum group size raised to the exact floor."""
    grades = {
        g: dataclasses.replace(r, min_group_size=max(r.min_group_size or 0, EXACT_MIN_GROUP_SIZE))
        for g, r in policy.grades.items()
    }
    return dataclasses.replace(policy, grades=grades)


class CompiledContribution(Compiled):
    """A holder's sealed partial aggregates. Before :meth:`run` the federation binds
    the measurement ``order`` all holders share and the ``seal`` (pack + encrypt)."""

    def __init__(self, ctx: Context, compiled: Any) -> None:
        self.ctx = ctx
        self.compiled = compiled
        prot: HE = ctx.protection  # type: ignore[assignment]
        self.exact = prot.dp is None
        if self.exact:
            limit = ctx.policy.max_exact_totals or DEFAULT_MAX_EXACT_TOTALS
            self.charge = Charge(quota=("he_exact", limit))
        else:
            self.charge = Charge(cost=compiled.cost)
        self.order: list[str] = sorted(compiled.derived)
        self.seal: Callable[[np.ndarray], list[int]] | None = None
        #: fields the federation adds to the audit record (over HTTP: federation, release)
        self.extra: dict[str, Any] = {}

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        c = self.compiled
        if self.exact:
            return Explanation(allowed=True, cost=Cost(), remaining=remaining,
                               details=c.details())
        return Explanation(
            allowed=True, cost=charged, scale=c.output_scales(),
            ci_width={k: (2 * v if v is not None else None) for k, v in c.ci_half_widths().items()},
            remaining=remaining, details=c.details(),
        )

    def record(self) -> dict[str, Any]:
        return {"kind": "he_exact" if self.exact else "he", "cells": self.compiled.cells,
                **self.extra}

    def run(self, engine: Any, source: Any) -> Any:
        return engine.aggregate_columns(source, self.compiled.request())

    def finish(self, exact: Any) -> list[int]:
        from ..dp.samplers import add_discrete_laplace

        if self.seal is None:
            raise RuntimeError("the federation did not bind a seal to this contribution")
        vec = self.compiled.exact_vectors(exact)
        del exact
        if not self.exact:
            vec = {k: add_discrete_laplace(v, self.compiled.scales[k]) for k, v in vec.items()}
        flat = np.concatenate([vec[k] for k in self.order]).astype(np.int64)
        del vec
        return self.seal(flat)

    def result(self, payload: list[int], audit_id: int, spent: Cost,
               repeat_of: int | None) -> tuple[list[int], int, Cost]:
        return payload, audit_id, spent


class HEContribution(Mechanism):
    protection_type = HE

    def form(self, protection: HE) -> str:
        return "he" if protection.dp is not None else "he_exact"

    def epsilon(self, protection: HE) -> float | None:
        return protection.dp.epsilon if protection.dp is not None else None

    def compile(self, ctx: Context) -> CompiledContribution:
        prot: HE = ctx.protection  # type: ignore[assignment]
        check_summable(ctx.plan, ctx.policy.privacy_unit)
        policy = ctx.policy if prot.dp is not None else _exact_policy(ctx.policy)
        compiled = compile_dp(ctx.plan, policy, ctx.schema, prot.dp or DP(epsilon=1.0))
        return CompiledContribution(ctx, compiled)
