"""k-anonymous extracts (``pets.KAnonymity``): record-level releases.

Guarantee: every released row shares its quasi-identifier values with at least k − 1
other released rows (and l-diversity / t-closeness of the sensitive columns when asked);
see :class:`pets.KAnonymity`. An extract is "charged" against the policy's
``max_extracts``: it is counted, atomically, before it leaves — and so is an attempt
that finds no extract satisfying the request, since whether one exists depends on the
rows. The failure message names only the request.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..cost import Cost
from ..errors import PetsError, PolicyError, QueryError
from ..governance import min_k
from ..protections import KAnonymity
from ..release import Explanation, Extract
from .base import Charge, Compiled, Context, Mechanism

__all__ = ["KAnonymityMechanism"]


class CompiledExtract(Compiled):
    def __init__(self, ctx: Context, qis: list[str], sens: list[str], keep: list[str],
                 hierarchies: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.qis, self.sens, self.keep = qis, sens, keep
        self.hierarchies = hierarchies
        self.options = dict(options or {})  # search options within the policy's [kanon]
        self.charge = Charge(quota=("kanon", ctx.policy.max_extracts))

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        generalised = "suppressed cells" if self.options.get("recoding") == "cells" else "generalised"
        roles = {generalised: self.qis, "sensitive": self.sens, "unchanged": self.keep}
        return Explanation(
            allowed=True, cost=Cost(), remaining=remaining,
            details=pd.DataFrame(
                [{"column": c, "treatment": r} for r, cols in roles.items() for c in cols]
            ),
        )

    def record(self) -> dict[str, Any]:
        return {"kind": "kanon", **({"options": self.options} if self.options else {})}

    def run(self, engine: Any, source: Any) -> pd.DataFrame:
        cols = tuple(self.qis + self.sens + self.keep)
        # the engine counts the rows of each distinct tuple (Spark: in the cluster); the
        # extract is built from the same multiset of rows
        from ..engines.base import COUNT_COLUMN

        tuples = engine.fetch_counted(source, cols, self.ctx.plan.filters)
        n = tuples.pop(COUNT_COLUMN).to_numpy(dtype="int64")
        return tuples.loc[tuples.index.repeat(n)].reset_index(drop=True)

    def finish(self, rows: pd.DataFrame) -> Any:
        from ..anon.anonymize import anonymize

        p: KAnonymity = self.ctx.protection  # type: ignore[assignment]
        try:
            holder_models = self.ctx.policy.kanon  # the [kanon] section's models
            models = holder_models.models(self.qis) if holder_models is not None and holder_models.active else []
            return anonymize(
                rows, self.qis, self.hierarchies, k=p.k, l=p.l, t=p.t,
                sensitive=self.sens or None, max_suppression=p.max_suppression,
                algorithm=p.algorithm, metric=p.metric, l_kind=p.l_kind, keep=self.keep,
                models=models, **self.options,
            )
        finally:
            del rows

    def record_result(self, result: Any) -> dict[str, Any]:
        out = {"transformation": result.transformation, "rows": len(result.df),
               "suppressed": result.suppressed, "classes": result.classes}
        if result.recoding == "cells":
            out["cells_suppressed"] = int(result.metrics["cells_suppressed"])
        return out

    def result(self, result: Any, audit_id: int, spent: Cost, repeat_of: int | None) -> Extract:
        from ..anon.order import shuffled  # never in the source's order (pets.anon.order)

        ctx = self.ctx
        return Extract(
            df=shuffled(result.df), transformation=result.transformation, suppressed=result.suppressed,
            metrics=result.metrics, classes=result.classes, audit_id=audit_id, plan=ctx.plan,
            protection=ctx.protection, models=result.models, extracts_left=self.quota_left,
        )

    def failure(self, audit_id: int) -> PetsError:
        p: KAnonymity = self.ctx.protection  # type: ignore[assignment]
        asked = f"k={p.k}"
        if p.l is not None:
            asked += f", l={p.l:g}"
        if p.t is not None:
            asked += f", t={p.t:g}"
        return QueryError(
            f"no {asked} extract of these columns exists within max_suppression="
            f"{p.max_suppression:g} on the rows this query selects (or the holder's "
            "hierarchies do not cover them); the attempt counted as an extract "
            f"(audit record {audit_id}). Try a smaller k or l, a larger max_suppression, "
            "fewer columns or a wider filter"
        )


class KAnonymityMechanism(Mechanism):
    protection_type = KAnonymity

    def form(self, protection: KAnonymity) -> str:
        return "kanon"

    def check_request(self, plan: Any, protection: KAnonymity) -> None:
        if plan.aggs or plan.group_by:
            raise QueryError(
                "a k-anonymous extract releases rows: use .select(...) (and .filter(...)), "
                "not group_by/agg"
            )
        if not plan.select:
            raise QueryError("choose the columns of the extract with .select('age', 'sex', ...)")

    def compile(self, ctx: Context) -> CompiledExtract:
        from ..anon.hierarchy import Hierarchy

        pol, plan, prot = ctx.policy, ctx.plan, ctx.protection
        assert isinstance(prot, KAnonymity)
        cols = list(plan.select or ())
        need, at = min_k(pol, plan.columns())
        if need is not None and prot.k < need:
            raise PolicyError(
                f"k={prot.k} is below the policy's minimum k of {need} for column {at!r} "
                f"(grade {pol.columns[at].grade}); ask for k >= {need}",  # type: ignore[index]
                rule="min_k", column=at, allowed=need,
            )
        if isinstance(prot.sensitive, tuple):
            sens = list(prot.sensitive)
        elif prot.sensitive:
            sens = [prot.sensitive]
        else:
            sens = [c for c in cols if pol.columns[c].role == "sensitive"]
        for c in sens:
            if c not in cols:
                raise QueryError(f"sensitive column {c!r} is not selected; add it to select(...)")
            if pol.columns[c].role == "quasi_identifier":
                raise PolicyError(
                    f"column {c!r} is a quasi-identifier in the policy and is always "
                    "generalised; it cannot be the sensitive column of an extract",
                    rule="role", column=c,
                )
        if (prot.l is not None or prot.t is not None) and not sens:
            raise QueryError("l-diversity and t-closeness need sensitive=<column>")
        qis = [c for c in cols if pol.columns[c].role == "quasi_identifier" and c not in sens]
        if not qis:
            raise QueryError(
                "the extract has no quasi-identifier: select at least one column the policy "
                "marks quasi_identifier (k-anonymity is about those)"
            )
        keep = [c for c in cols if c not in qis and c not in sens]
        options = _options(pol.kanon, prot)
        cells = options.get("recoding") == "cells"
        hierarchies = {}
        for c in qis:
            path = pol.columns[c].hierarchy
            if path is not None:
                hierarchies[c] = Hierarchy.from_csv(path, name=c)
            elif cells:
                pass  # cell suppression releases values as they are, or "*"
            elif prot.algorithm == "optimal":
                raise PolicyError(
                    f"quasi-identifier {c!r} has no hierarchy in the policy, which the "
                    "optimal search needs; use algorithm='mondrian' or leave the column out",
                    rule="hierarchy", column=c,
                )
            elif ctx.schema.get(c) not in ("int", "float", "date"):
                raise PolicyError(
                    f"quasi-identifier {c!r} is not numeric and has no hierarchy in the "
                    "policy, which orders its categories for algorithm='mondrian'; the holder "
                    "can add one, or leave the column out",
                    rule="hierarchy", column=c,
                )
        if options.get("t_distance") == "hierarchical":
            for c in sens:
                path = pol.columns[c].hierarchy
                if path is None:
                    raise PolicyError(
                        f"t_distance='hierarchical' needs a hierarchy of the sensitive column {c!r} "
                        "in the policy; ask for t_distance='equal' or 'ordered'",
                        rule="hierarchy", column=c,
                    )
                hierarchies[c] = Hierarchy.from_csv(path, name=c)
        holder = pol.kanon
        if holder is not None and holder.active and prot.algorithm != "optimal":
            raise PolicyError(
                f"the policy requires {holder.describe()} of every extract, which needs "
                "algorithm='optimal'",
                rule="kanon",
            )
        if cells and holder is not None and (holder.k_map is not None and holder.population is not None
                                             or holder.delta_presence is not None):
            raise PolicyError(
                f"the policy requires {holder.describe()} of every extract, which recoding='cells' "
                "cannot guarantee (population classes are not defined for suppressed cells); ask "
                "for recoding='global' or 'local'",
                rule="kanon.recoding",
            )
        return CompiledExtract(ctx, qis, sens, keep, hierarchies, options)


def _options(section: Any, prot: KAnonymity) -> dict[str, Any]:
    """The extract's search options within the policy's [kanon] section (a refusal names
    the policy key), checked against the metric: all before any data is read."""
    from ..anon.metrics import PER_QI_METRICS, check_objective
    from ..anon.policy import resolve_options

    out = resolve_options(section, prot)
    if prot.algorithm == "mondrian":  # Mondrian has no lattice, objective or recoding choice
        out = {k: v for k, v in out.items() if k == "t_distance"}
    elif prot.aggregation is None and prot.metric not in PER_QI_METRICS:
        out.pop("aggregation", None)  # a policy default for the per-QI metrics only
    if prot.algorithm == "optimal":
        check_objective(prot.metric, out.get("gs_factor", 0.5), out.get("aggregation"))
    return out
