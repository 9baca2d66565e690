"""The analyst's side: a session asks questions of a holder's datasets for one purpose.

Every release goes the same way: the plan is checked against the data's columns (bad
input → :class:`QueryError`, nothing recorded), then against the policy (refusal →
:class:`PolicyError`, recorded in the audit log), the exact aggregates are computed in
the holder's engine, the ledger is charged and the audit record appended in one SQLite
transaction, and only then is noise added and the result returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd

from .cost import Cost
from .dp.accountant import charged_cost
from .dp.aggregate import compile_dp
from .errors import BudgetExceeded, PetsError, PolicyError, QueryError
from .governance import check_plan, min_k
from .plan import Plan
from .protections import DP, KAnonymity, Protection
from .query import Query
from .release import Explanation, Extract, Release

if TYPE_CHECKING:
    from .holder import Dataset, Holder

__all__ = ["Session"]


class Session:
    """A local session: ``holder.session("alice", purpose="labour-stats")``."""

    def __init__(self, holder: "Holder", analyst: str, purpose: str) -> None:
        self._holder = holder
        self.analyst = analyst
        self.purpose = purpose

    def __repr__(self) -> str:
        return f"Session(analyst={self.analyst!r}, purpose={self.purpose!r})"

    # -- building --------------------------------------------------------------------
    def table(self, name: str) -> Query:
        """A query on dataset ``name``."""
        if self._holder._store.get_dataset(name) is None:
            # name only the datasets this analyst may use, not every registered one
            granted = sorted({g["dataset"] for g in self._holder._store.list_grants(self.analyst)})
            raise QueryError(
                f"unknown dataset {name!r}; datasets granted to {self.analyst}: "
                f"{', '.join(granted) or 'none'}"
            )
        self._holder._dataset(name)  # a changed source fails here, clearly
        return Query(name)

    def sql(self, text: str, protection: Protection) -> Release:
        """Answer a SQL query under ``protection``: ``SELECT sex, COUNT(*) AS n FROM adult
        GROUP BY sex``. Bounds and keys come from the policy."""
        from .sql import parse_sql

        return self.release(parse_sql(text, schema=self._sql_schema), protection)

    def _sql_schema(self, dataset: str) -> dict[str, str] | None:
        """Column types of a dataset this analyst has a grant on (for SQL errors that
        point at arithmetic on a text column); None otherwise."""
        store = self._holder._store
        if store.get_grant(self.analyst, dataset, self.purpose) is None:
            return None
        try:
            return dict(self._holder._dataset(dataset).schema)
        except PetsError:
            return None

    # -- answering -------------------------------------------------------------------
    def explain(self, query: Query | Plan, protection: Protection) -> "Explanation":
        """What ``release`` would do — allowed or not, cost, noise scale, CI width —
        without computing anything on the data or spending budget."""
        plan = _plan_of(query)
        _check_protection(protection)
        ds = self._holder._dataset(plan.dataset)
        remaining = self._remaining(plan.dataset)
        if isinstance(protection, KAnonymity):
            try:
                roles = self._check_kanon(ds, plan, protection)
            except PolicyError as e:
                return Explanation(allowed=False, cost=Cost(), rule=e.rule, message=str(e),
                                   column=e.column, remaining=remaining)
            return Explanation(
                allowed=True, cost=Cost(), remaining=remaining,
                details=pd.DataFrame(
                    [{"column": c, "treatment": r} for r, cols in roles.items() for c in cols]
                ),
            )
        try:
            compiled = self._check(ds, plan, protection)
            charged = self._check_budget(plan.dataset, compiled.cost, compiled.zdelta)
        except (PolicyError, BudgetExceeded) as e:
            rule = getattr(e, "rule", "budget")
            return Explanation(
                allowed=False,
                cost=Cost(protection.epsilon, 0.0) if isinstance(protection, DP) else Cost(),
                rule=rule,
                message=str(e),
                column=getattr(e, "column", None),
                remaining=remaining,
            )
        return Explanation(
            allowed=True,
            cost=charged,
            scale=compiled.output_scales(),
            ci_width={k: (2 * v if v is not None else None) for k, v in compiled.ci_half_widths().items()},
            remaining=remaining,
            details=compiled.details(),
        )

    @overload
    def release(self, query: Query | Plan, protection: KAnonymity) -> Extract: ...  # type: ignore[overload-overlap]

    @overload
    def release(self, query: Query | Plan, protection: Protection) -> Release: ...

    def release(self, query: Query | Plan, protection: Protection) -> Release | Extract:
        """Release the answer to ``query`` under ``protection``, charging the ledger and
        appending an audit record first."""
        plan = _plan_of(query)
        _check_protection(protection)
        ds = self._holder._dataset(plan.dataset)
        if isinstance(protection, KAnonymity):
            return self._release_kanon(ds, plan, protection)
        try:
            compiled = self._check(ds, plan, protection)
            self._need_grant(plan.dataset)
        except PolicyError as e:
            self._record_refusal(plan, protection, e.rule, e.column)
            raise
        record = {
            "analyst": self.analyst,
            "purpose": self.purpose,
            "dataset": plan.dataset,
            "kind": protection.form,
            "status": "released",
            "plan": plan.to_dict(),
            "protection": protection.to_dict(),
            "cells": compiled.cells,
            "sampler": compiled.sampler,
            "noise_scale": compiled.output_scales(),
        }
        store = self._holder._store
        key = _answer_key(ds, plan, protection, self.analyst, self.purpose)
        # a repeated identical query gets the recorded answer, at no cost: fresh noise
        # would let an analyst average it away
        hit = store.recall_answer(key, record)
        if hit is not None:
            audit_id, answer, first = hit
            return self._release_of(compiled, plan, protection, _decode(answer, compiled),
                                    audit_id, Cost(), repeat_of=first)
        try:
            self._check_budget(plan.dataset, compiled.cost, compiled.zdelta)
        except BudgetExceeded:
            self._record_refusal(plan, protection, "budget", None)
            raise
        exact_df = self._holder._engine.aggregate(ds.source, compiled.request())
        noisy = compiled.noise(exact_df)  # nothing leaves before the charge below
        del exact_df
        try:
            audit_id, answer, first_charge, charged = store.charge_answer(
                self.analyst, plan.dataset, self.purpose, compiled.cost, record, key,
                _encode(noisy.noisy, compiled.selected), zdelta=compiled.zdelta,
            )
        except BudgetExceeded:
            self._record_refusal(plan, protection, "budget", None)
            raise
        if first_charge is not None:  # an identical query was answered meanwhile: free
            return self._release_of(compiled, plan, protection, _decode(answer, compiled),
                                    audit_id, Cost(), repeat_of=first_charge)
        return self._release_of(compiled, plan, protection, noisy.noisy, audit_id, charged)

    def _release_of(self, compiled: Any, plan: Plan, protection: Protection,
                    noisy: dict[str, np.ndarray], audit_id: int, spent: Cost,
                    repeat_of: int | None = None) -> Release:
        from .dp.aggregate import NoisyResult

        result = NoisyResult(compiled, noisy)
        return Release(
            df=result.values(),
            spent=spent,
            audit_id=audit_id,
            plan=plan,
            protection=protection,
            scale=compiled.output_scales(),
            suppressed=int(result.suppressed.sum()),
            _ci=result.ci,
            repeat_of=repeat_of,
        )

    def remaining(self, dataset: str | None = None) -> Cost:
        """Budget left for this analyst and purpose on ``dataset`` (which may be left out
        when the analyst has a grant for this purpose on one dataset only)."""
        if dataset is None:
            granted = [
                g["dataset"]
                for g in self._holder._store.list_grants(self.analyst)
                if g["purpose"] == self.purpose
            ]
            if len(granted) != 1:
                raise QueryError(
                    "name the dataset: s.remaining('adult') "
                    f"(grants for this purpose: {', '.join(sorted(granted)) or 'none'})"
                )
            dataset = granted[0]
        return self._remaining(dataset)

    # -- k-anonymous extracts -----------------------------------------------------------
    def _check_kanon(self, ds: "Dataset", plan: Plan, prot: KAnonymity) -> dict[str, list[str]]:
        """Policy checks for an extract; the columns by how they are treated."""
        if plan.aggs or plan.group_by:
            raise QueryError(
                "a k-anonymous extract releases rows: use .select(...) (and .filter(...)), "
                "not group_by/agg"
            )
        if not plan.select:
            raise QueryError("choose the columns of the extract with .select('age', 'sex', ...)")
        check_plan(ds.policy, plan, ds.schema, "kanon")
        pol = ds.policy
        cols = list(plan.select)
        need, at = min_k(pol, plan.columns())
        if need is not None and prot.k < need:
            raise PolicyError(
                f"k={prot.k} is below the policy's minimum k of {need} for column {at!r} "
                f"(grade {pol.columns[at].grade}); ask for k >= {need}",  # type: ignore[index]
                rule="min_k", column=at, allowed=need,
            )
        sens = list(prot.sensitive) if isinstance(prot.sensitive, tuple) else (
            [prot.sensitive] if prot.sensitive else [c for c in cols if pol.columns[c].role == "sensitive"]
        )
        for c in sens:
            if c not in cols:
                raise QueryError(f"sensitive column {c!r} is not selected; add it to select(...)")
            if pol.columns[c].role == "quasi_identifier":
                raise PolicyError(
                    f"column {c!r} is a quasi-identifier in the policy and is always "
                    "generalised; it cannot be the sensitive column of an extract",
                    rule="role", column=c,
                )
        qis = [c for c in cols if pol.columns[c].role == "quasi_identifier" and c not in sens]
        if not qis:
            raise QueryError(
                "the extract has no quasi-identifier: select at least one column the policy "
                "marks quasi_identifier (k-anonymity is about those)"
            )
        keep = [c for c in cols if c not in qis and c not in sens]
        self._need_grant(plan.dataset)
        limit = pol.max_extracts
        if limit is not None:
            used = self._holder._store.count_events(self.analyst, plan.dataset, "kanon")
            if used >= limit:  # checked again atomically when the extract is recorded
                raise PolicyError(
                    f"analyst {self.analyst!r} has had {used} of the {limit} kanon extracts the "
                    f"policy allows from dataset {plan.dataset!r}; extracts of the same people "
                    "can be linked, so their number is limited",
                    rule="max_extracts", allowed=limit,
                )
        return {"generalised": qis, "sensitive": sens, "unchanged": keep}

    def _release_kanon(self, ds: "Dataset", plan: Plan, prot: KAnonymity) -> Extract:
        from .anon.anonymize import anonymize
        from .anon.hierarchy import Hierarchy

        try:
            roles = self._check_kanon(ds, plan, prot)
        except PolicyError as e:
            self._record_refusal(plan, prot, e.rule, e.column)
            raise
        qis, sens, keep = roles["generalised"], roles["sensitive"], roles["unchanged"]
        limit = ds.policy.max_extracts
        hierarchies = {}
        for c in qis:
            path = ds.policy.columns[c].hierarchy
            if path is not None:
                hierarchies[c] = Hierarchy.from_csv(path, name=c)
        rows = self._holder._engine.fetch(ds.source, tuple(qis + sens + keep), plan.filters)
        try:
            result = anonymize(
                rows, qis, hierarchies, k=prot.k, l=prot.l, t=prot.t, sensitive=sens or None,
                max_suppression=prot.max_suppression, algorithm=prot.algorithm,
                metric=prot.metric, l_kind=prot.l_kind, keep=keep,
            )
        except QueryError as e:
            raise _for_analyst(e, qis + sens) from None
        finally:
            del rows
        record = {
            "analyst": self.analyst,
            "purpose": self.purpose,
            "dataset": plan.dataset,
            "kind": "kanon",
            "plan": plan.to_dict(),
            "protection": prot.to_dict(),
            "transformation": result.transformation,
            "rows": len(result.df),
            "suppressed": result.suppressed,
            "classes": result.classes,
        }
        try:
            audit_id = self._holder._store.record_counted(record, limit)
        except PolicyError as e:
            self._record_refusal(plan, prot, e.rule, None)
            raise
        left = None
        if limit is not None:
            left = max(0, limit - self._holder._store.count_events(self.analyst, plan.dataset, "kanon"))
        return Extract(
            df=result.df, transformation=result.transformation, suppressed=result.suppressed,
            metrics=result.metrics, classes=result.classes, audit_id=audit_id, plan=plan,
            protection=prot, models=result.models, extracts_left=left,
        )

    # -- federated contributions (HE) ---------------------------------------------------
    def _he_contribute(self, plan: Plan, prot: Any, reference: Any, order: list[str],
                       seal: Any) -> tuple[list[int], int]:
        """This holder's part of a federated release: policy and budget checks, exact
        partial aggregates, its own noise (with DP), sealed (packed + encrypted) by
        ``seal`` inside this session; the ledger is charged and the audit appended before
        the ciphertexts are handed over. Returns (ciphertexts, audit id)."""
        from .dp.aggregate import compile_dp
        from .dp.samplers import add_discrete_laplace

        ds = self._holder._dataset(plan.dataset)
        dp_prot = prot.dp
        try:
            check_plan(ds.policy, plan, ds.schema, "he", dp_prot.epsilon if dp_prot else None)
            compiled = compile_dp(plan, ds.policy, ds.schema, dp_prot or DP(epsilon=1.0))
            cost = compiled.cost if dp_prot else Cost()
            self._check_budget(plan.dataset, cost)  # Laplace only (HE refuses Gaussian)
        except PolicyError as e:
            self._record_refusal(plan, prot, e.rule, e.column)
            raise
        except BudgetExceeded:
            self._record_refusal(plan, prot, "budget", None)
            raise
        if sorted(compiled.derived) != order or compiled.cells != reference.cells:
            raise QueryError("this holder computes the query differently from the federation")
        exact = self._holder._engine.aggregate(ds.source, compiled.request())
        vec = compiled.exact_vectors(exact)
        del exact
        if dp_prot is not None:
            vec = {k: add_discrete_laplace(v, compiled.scales[k]) for k, v in vec.items()}
        flat = np.concatenate([vec[k] for k in order]).astype(np.int64)
        del vec
        ciphertexts = seal(flat)
        del flat
        record = {
            "analyst": self.analyst,
            "purpose": self.purpose,
            "dataset": plan.dataset,
            "kind": "he",
            "status": "released",
            "plan": plan.to_dict(),
            "protection": prot.to_dict(),
            "cells": compiled.cells,
        }
        try:
            audit_id = self._holder._store.charge(self.analyst, plan.dataset, self.purpose, cost, record)
        except BudgetExceeded:
            self._record_refusal(plan, prot, "budget", None)
            raise
        return ciphertexts, audit_id

    def _need_grant(self, dataset: str) -> None:
        if self._holder._store.get_grant(self.analyst, dataset, self.purpose) is None:
            raise PolicyError(
                f"analyst {self.analyst!r} has no grant for dataset {dataset!r} and purpose "
                f"{self.purpose!r}; the holder can grant one with holder.grant(...)",
                rule="no_grant",
            )

    # -- internals -------------------------------------------------------------------
    def _remaining(self, dataset: str) -> Cost:
        return self._holder._store.remaining(self.analyst, dataset, self.purpose)

    def _check(self, ds: "Dataset", plan: Plan, protection: Protection) -> Any:
        if isinstance(protection, DP):
            check_plan(ds.policy, plan, ds.schema, "dp", protection.epsilon)
            grant = self._holder._store.get_grant(self.analyst, plan.dataset, self.purpose)
            return compile_dp(plan, ds.policy, ds.schema, protection,
                              grant_epsilon=grant.epsilon if grant is not None else None)
        raise QueryError(f"protection {type(protection).__name__} is not supported here yet")

    def _check_budget(self, dataset: str, cost: Cost, zdelta: float | None = None) -> Cost:
        """Raise unless the grant has room for ``cost``; return what it would charge."""
        budget = self._holder._store.budget_state(self.analyst, dataset, self.purpose)
        if budget is None:
            raise PolicyError(
                f"analyst {self.analyst!r} has no grant for dataset {dataset!r} and purpose "
                f"{self.purpose!r}; the holder can grant one with holder.grant(...)",
                rule="no_grant",
            )
        charged, zd = charged_cost(budget.accounting, cost, zdelta)
        if not budget.fits(charged, zd):
            asked = str(charged) if budget.accounting == "basic" else f"rho={charged.rho:.6g} ({cost})"
            raise BudgetExceeded(
                f"this release asks {asked} but only {budget.describe_left()} is left for "
                f"{self.analyst} on {dataset} (purpose {self.purpose})",
                asked=charged,
                left=budget.remaining(),
            )
        return charged

    def _record_refusal(self, plan: Plan, protection: Protection, rule: str, column: str | None) -> None:
        self._holder._store.record(
            {
                "analyst": self.analyst,
                "purpose": self.purpose,
                "dataset": plan.dataset,
                "kind": protection.form,
                "status": "refused",
                "rule": rule,
                "column": column,
                "plan": plan.to_dict(),
                "protection": protection.to_dict(),
            }
        )


def _for_analyst(e: QueryError, columns: list[str]) -> QueryError:
    """An anonymisation error as an analyst may see it: a data value the holder's
    hierarchy lacks is named to the holder (pets.anon), never to the analyst."""
    text = str(e)
    if "is not in its hierarchy" in text:
        col = next((c for c in columns if f"column {c!r}" in text), None)
        where = f" of column {col!r}" if col else ""
        return QueryError(
            f"a value{where} in the data is missing from the hierarchy the policy gives; "
            "the holder must complete the hierarchy"
        )
    return e


def _answer_key(ds: Any, plan: Plan, protection: Protection, analyst: str, purpose: str) -> str:
    """Per analyst and purpose: a shared answer would tell one analyst what another asked."""
    import hashlib
    import json

    text = json.dumps(
        {"dataset": plan.dataset, "version": ds.version, "policy": ds.policy.to_dict(),
         "plan": plan.to_dict(), "protection": protection.to_dict(), "analyst": analyst,
         "purpose": purpose},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


_SELECTED = "__selected__"


def _encode(noisy: dict[str, np.ndarray], selected: list[tuple[Any, ...]] | None = None) -> str:
    """A released answer as stored for repeats: the noisy measurements and, with unknown
    keys, the groups that passed the threshold (both already released)."""
    import json

    out: dict[str, Any] = {k: [int(x) for x in v] for k, v in noisy.items()}
    if selected is not None:
        out[_SELECTED] = [list(c) for c in selected]
    return json.dumps(out, sort_keys=True)


def _decode(answer: str, compiled: Any = None) -> dict[str, np.ndarray]:
    """The noisy measurements of a stored answer; restores the released groups of an
    unknown-keys release into ``compiled``."""
    import json

    d = json.loads(answer)
    selected = d.pop(_SELECTED, None)
    if selected is not None and compiled is not None:
        compiled.selected = [tuple(c) for c in selected]
    return {k: np.asarray(v, dtype=np.int64) for k, v in d.items()}


def _plan_of(query: Query | Plan) -> Plan:
    if isinstance(query, Query):
        return query.plan
    if isinstance(query, Plan):
        return query
    raise QueryError(f"expected a query (s.table(...)...), got {type(query).__name__}")


def _check_protection(protection: Any) -> None:
    if not isinstance(protection, Protection):
        raise QueryError(
            "the second argument is the protection, e.g. pets.DP(epsilon=0.5); "
            f"got {type(protection).__name__}"
        )
