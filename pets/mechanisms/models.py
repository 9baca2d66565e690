"""Models and synthetic data as releases of the one pipeline.

``Fit(model, dp)`` (policy form ``model``) and ``Synthetic(dp, rows)`` (policy form
``synthetic``) are protections like ``pets.DP``: the session's ``fit`` and ``synthesize``
send them through :mod:`pets.pipeline`, so a model or a synthetic table is checked
against the policy (every column it reads, the grade's forms, identifiers, the ε cap),
charged and audited before it leaves, and ``s.explain(query, Fit(...))`` says what it
costs without touching the data. Guarantees: each model's docstring
(:mod:`pets.models`), and :mod:`pets.synth.mst`.

The rows are fetched inside the holder's domain (the columns the model or the synthesizer
needs, after the query's filters); with a privacy unit, at most ``max_groups ×
max_rows_per_group`` random rows per person are kept, and the sensitivities are
multiplied by that number.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..cost import Cost
from ..errors import QueryError
from ..governance import check_plan
from ..models.base import Model, Trainer
from ..plan import Plan
from ..protections import DP, Protection
from ..release import Explanation
from .base import Charge, Compiled, Context, Mechanism

__all__ = ["Fit", "Synthetic", "SyntheticData", "FitMechanism", "SynthesisMechanism"]


@dataclass(frozen=True, eq=False)
class Fit(Protection):
    """Fit ``model`` (a :mod:`pets.models` model) under ``dp``: the request of
    ``s.fit(query, model, dp)`` as a protection (for ``s.explain``)."""

    model: Model
    dp: DP
    form = "model"

    def __post_init__(self) -> None:
        if not isinstance(self.model, Model):
            raise QueryError(
                "the model must be one of pets.models (LinearRegression, LogisticRegression, "
                f"NaiveBayes), got {type(self.model).__name__}")
        if not isinstance(self.dp, DP):
            raise QueryError(f"the protection of a model is pets.DP(epsilon=...), got {type(self.dp).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"form": "model", "model": self.model.spec(), "dp": self.dp.to_dict()}


@dataclass(frozen=True)
class Synthetic(Protection):
    """Synthetic rows of the selected columns under ``dp`` (``rows``: how many, default
    the noisy row count; ``bins``: bins of a numeric column)."""

    dp: DP
    rows: int | None = None
    bins: int = 16
    form = "synthetic"

    def __post_init__(self) -> None:
        from ..synth.mst import check_bins, check_rows

        if not isinstance(self.dp, DP):
            raise QueryError(f"the protection of synthetic data is pets.DP(epsilon=...), got {type(self.dp).__name__}")
        check_rows(self.rows)
        check_bins(self.bins)

    def to_dict(self) -> dict[str, Any]:
        return {"form": "synthetic", "dp": self.dp.to_dict(), "rows": self.rows, "bins": self.bins}


@dataclass(frozen=True)
class SyntheticData:
    """A synthetic-data release: ``df`` the rows; ``error`` per measured marginal (cells,
    noise std, expected total-variation error); ``marginals`` the pairs MST measured;
    ``spent``; ``audit_id``."""

    df: pd.DataFrame
    error: pd.DataFrame
    marginals: list[tuple[str, str]]
    spent: Cost
    audit_id: int
    plan: Plan
    protection: Any
    dummy: bool = False

    def __repr__(self) -> str:
        return (f"SyntheticData({'dummy, ' if self.dummy else ''}rows={len(self.df)}, "
                f"spent=({self.spent}), audit_id={self.audit_id}, marginals={self.marginals})")


def synthetic_to_json(y: Any) -> dict[str, Any]:
    """A SyntheticData as JSON (the HTTP answer of /v1/synthesize)."""
    from .. import wire

    return {"df": wire.frame_to_json(y.df), "error": wire.frame_to_json(y.error),
            "marginals": [list(p) for p in y.marginals], "spent": wire.cost_to_json(y.spent),
            "audit_id": y.audit_id}


def synthetic_from_json(d: dict[str, Any], plan: Any, protection: Any) -> Any:
    """The SyntheticData of a /v1/synthesize answer."""
    from .. import wire

    return SyntheticData(df=wire.frame_from_json(d["df"]), error=wire.frame_from_json(d["error"]),
                         marginals=[tuple(p) for p in d["marginals"]],
                         spent=wire.cost_from_json(d["spent"]), audit_id=int(d["audit_id"]),  # type: ignore[arg-type]
                         plan=plan, protection=protection)


def _rows_per_person(policy: Any) -> int:
    if policy.privacy_unit is None:
        return 1
    return (policy.max_groups or 1) * (policy.max_rows_per_group or 1)


def _fetch(ctx: Context, engine: Any, source: Any, columns: tuple[str, ...], m: int) -> pd.DataFrame:
    unit = ctx.policy.privacy_unit
    cols = columns + ((unit,) if unit is not None and unit not in columns else ())
    rows = engine.fetch(source, cols, ctx.plan.filters)
    if unit is None:
        return rows
    # keep at most m random rows of each person (a uniformly random order: CSPRNG seed)
    order = np.random.default_rng(secrets.randbits(128)).permutation(len(rows))
    rows = rows.iloc[order]
    rows = rows[rows[unit].notna()]
    kept = rows[rows.groupby(unit, sort=False).cumcount() < m]
    return kept[list(columns)].reset_index(drop=True)


def _check_columns(ctx: Context, columns: tuple[str, ...], form: str, epsilon: float) -> None:
    """The policy checks of the columns the release reads (beyond the query's)."""
    plan = dataclasses.replace(ctx.plan, select=columns)
    check_plan(ctx.policy, plan, ctx.schema, form, epsilon)


# ============================================================================ models
class CompiledFit(Compiled):
    def __init__(self, ctx: Context, trainer: Trainer) -> None:
        self.ctx, self.trainer = ctx, trainer
        self.charge = Charge(cost=trainer.cost, zdelta=trainer.zdelta)

    @property
    def model(self) -> Model:
        return self.ctx.protection.model  # type: ignore[attr-defined, no-any-return]

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        scales = self.trainer.scales()
        return Explanation(allowed=True, cost=charged, scale=scales, remaining=remaining,
                           details=self.trainer.details())

    def record(self) -> dict[str, Any]:
        return {"kind": "model", "model": self.model.name, "noise_scale": self.trainer.scales()}

    def run(self, engine: Any, source: Any) -> pd.DataFrame:
        return _fetch(self.ctx, engine, source, self.model.columns(), self.trainer.rows_per_person)

    def finish(self, rows: pd.DataFrame) -> Model:
        try:
            return self.trainer.train(rows)
        finally:
            del rows

    def record_result(self, fitted: Model) -> dict[str, Any]:
        return {"parameters": len(fitted.feature_names_out_) + 1}

    def result(self, fitted: Model, audit_id: int, spent: Cost, repeat_of: int | None) -> Model:
        fitted.cost = spent
        fitted.audit_id = audit_id
        return fitted


class FitMechanism(Mechanism):
    """DP models (``pets.models``): the model's trainer compiles, trains and adds noise."""

    protection_type = Fit

    def form(self, protection: Fit) -> str:
        return "model"

    def epsilon(self, protection: Fit) -> float | None:
        return protection.dp.epsilon

    def check_request(self, plan: Plan, protection: Fit) -> None:
        if plan.aggs or plan.group_by:
            raise QueryError("a model is fitted on rows: pass s.table(...) (with .filter(...) if "
                             "needed), not group_by/agg")
        if plan.select is not None:
            missing = [c for c in protection.model.columns() if c not in plan.select]
            if missing:
                raise QueryError(f"the query's select(...) leaves out {missing[0]!r}, which the "
                                 "model uses; drop the select or add it")

    def compile(self, ctx: Context) -> CompiledFit:
        prot: Fit = ctx.protection  # type: ignore[assignment]
        _check_columns(ctx, prot.model.columns(), "model", prot.dp.epsilon)
        trainer = prot.model.compile(ctx.policy, ctx.schema, prot.dp, _rows_per_person(ctx.policy))
        return CompiledFit(ctx, trainer)


# ============================================================================ synthetic data
class CompiledSynthesis(Compiled):
    def __init__(self, ctx: Context, plan: Any) -> None:
        self.ctx, self.mst = ctx, plan
        self.charge = Charge(cost=plan.cost, zdelta=plan.zdelta)

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        scales = self.mst.scales()
        return Explanation(allowed=True, cost=charged, scale=scales, remaining=remaining,
                           details=self.mst.details())

    def record(self) -> dict[str, Any]:
        return {"kind": "synthetic", "noise_scale": self.mst.scales()}

    def run(self, engine: Any, source: Any) -> pd.DataFrame:
        cols = tuple(c.name for c in self.mst.columns)
        return _fetch(self.ctx, engine, source, cols, self.mst.m)

    def finish(self, rows: pd.DataFrame) -> Any:
        try:
            synthesis = self.mst.run(rows)
        finally:
            del rows
        n = self.mst.rows if self.mst.rows is not None else max(1, int(round(synthesis.n_hat)))
        return synthesis, synthesis.sample(n)

    def record_result(self, payload: Any) -> dict[str, Any]:
        synthesis, df = payload
        cols = self.mst.columns
        return {"rows": len(df), "marginals": [[cols[a].name, cols[b].name] for a, b in synthesis.edges]}

    def result(self, payload: Any, audit_id: int, spent: Cost, repeat_of: int | None) -> SyntheticData:
        synthesis, df = payload
        cols = self.mst.columns
        return SyntheticData(df=df, error=synthesis.error(),
                             marginals=[(cols[a].name, cols[b].name) for a, b in synthesis.edges],
                             spent=spent, audit_id=audit_id, plan=self.ctx.plan,
                             protection=self.ctx.protection)


class SynthesisMechanism(Mechanism):
    """DP synthetic data by MST (:mod:`pets.synth.mst`)."""

    protection_type = Synthetic

    def form(self, protection: Synthetic) -> str:
        return "synthetic"

    def epsilon(self, protection: Synthetic) -> float | None:
        return protection.dp.epsilon

    def check_request(self, plan: Plan, protection: Synthetic) -> None:
        if plan.aggs or plan.group_by:
            raise QueryError("synthetic data is rows: use .select(...) (and .filter(...)), not group_by/agg")
        if not plan.select:
            raise QueryError("choose the columns of the synthetic table with .select('age', 'sex', ...)")

    def compile(self, ctx: Context) -> CompiledSynthesis:
        from ..synth.mst import MSTPlan, column_of

        prot: Synthetic = ctx.protection  # type: ignore[assignment]
        cols = tuple(ctx.plan.select or ())
        _check_columns(ctx, cols, "synthetic", prot.dp.epsilon)
        domain = tuple(column_of(ctx.policy, ctx.schema, c, prot.bins) for c in cols)
        return CompiledSynthesis(ctx, MSTPlan(domain, prot.dp, prot.rows, _rows_per_person(ctx.policy)))
