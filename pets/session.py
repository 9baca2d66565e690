"""The analyst's side: a session asks questions of a holder's datasets for one purpose.

Every release goes the same way: the plan is checked against the data's columns (bad
input → :class:`QueryError`, nothing recorded), then against the policy (refusal →
:class:`PolicyError`, recorded in the audit log), the exact aggregates are computed in
the holder's engine, the ledger is charged and the audit record appended in one SQLite
transaction, and only then is noise added and the result returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cost import Cost, exact
from .dp.aggregate import compile_dp
from .errors import BudgetExceeded, PolicyError, QueryError
from .governance import check_plan
from .plan import Plan
from .protections import DP, Protection
from .query import Query
from .release import Explanation, Release

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

        return self.release(parse_sql(text), protection)

    # -- answering -------------------------------------------------------------------
    def explain(self, query: Query | Plan, protection: Protection) -> "Explanation":
        """What ``release`` would do — allowed or not, cost, noise scale, CI width —
        without computing anything on the data or spending budget."""
        plan = _plan_of(query)
        _check_protection(protection)
        ds = self._holder._dataset(plan.dataset)
        remaining = self._remaining(plan.dataset)
        try:
            compiled = self._check(ds, plan, protection)
            self._check_budget(plan.dataset, compiled.cost)
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
            cost=compiled.cost,
            scale=compiled.output_scales(),
            ci_width={k: (2 * v if v is not None else None) for k, v in compiled.ci_half_widths().items()},
            remaining=remaining,
            details=compiled.details(),
        )

    def release(self, query: Query | Plan, protection: Protection) -> Release:
        """Release the answer to ``query`` under ``protection``, charging the ledger and
        appending an audit record first."""
        plan = _plan_of(query)
        _check_protection(protection)
        ds = self._holder._dataset(plan.dataset)
        try:
            compiled = self._check(ds, plan, protection)
            self._check_budget(plan.dataset, compiled.cost)
        except PolicyError as e:
            self._record_refusal(plan, protection, e.rule, e.column)
            raise
        except BudgetExceeded:
            self._record_refusal(plan, protection, "budget", None)
            raise
        exact_df = self._holder._engine.aggregate(ds.source, compiled.request())
        record = {
            "analyst": self.analyst,
            "purpose": self.purpose,
            "dataset": plan.dataset,
            "kind": protection.form,
            "status": "released",
            "plan": plan.to_dict(),
            "protection": protection.to_dict(),
            "cost": {"epsilon": compiled.cost.epsilon, "delta": compiled.cost.delta},
            "cells": compiled.cells,
            "noise_scale": compiled.output_scales(),
        }
        try:
            audit_id = self._holder._store.charge(
                self.analyst, plan.dataset, self.purpose, compiled.cost, record
            )
        except BudgetExceeded:
            self._record_refusal(plan, protection, "budget", None)
            raise
        # charged and recorded: now, and only now, the noise
        noisy = compiled.noise(exact_df)
        del exact_df
        return Release(
            df=noisy.values(),
            spent=compiled.cost,
            audit_id=audit_id,
            plan=plan,
            protection=protection,
            scale=compiled.output_scales(),
            suppressed=int(noisy.suppressed.sum()),
            _ci=noisy.ci,
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

    # -- internals -------------------------------------------------------------------
    def _remaining(self, dataset: str) -> Cost:
        return self._holder._store.remaining(self.analyst, dataset, self.purpose)

    def _check(self, ds: "Dataset", plan: Plan, protection: Protection) -> Any:
        if isinstance(protection, DP):
            check_plan(ds.policy, plan, ds.schema, "dp", protection.epsilon)
            return compile_dp(plan, ds.policy, ds.schema, protection)
        raise QueryError(f"protection {type(protection).__name__} is not supported here yet")

    def _check_budget(self, dataset: str, cost: Cost) -> None:
        budget = self._holder._store.budget(self.analyst, dataset, self.purpose)
        if budget is None:
            raise PolicyError(
                f"analyst {self.analyst!r} has no grant for dataset {dataset!r} and purpose "
                f"{self.purpose!r}; the holder can grant one with holder.grant(...)",
                rule="no_grant",
            )
        left = budget[1]
        if exact(cost.epsilon) > exact(left.epsilon) or exact(cost.delta) > exact(left.delta):
            raise BudgetExceeded(
                f"this release asks {cost} but only {left} is left for {self.analyst} on "
                f"{dataset} (purpose {self.purpose})",
                asked=cost,
                left=left,
            )

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
