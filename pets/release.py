"""What a session gives back: a :class:`Release`, or an :class:`Explanation` before one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .cost import Cost
from .errors import QueryError
from .plan import Plan

__all__ = ["Release", "Extract", "Explanation"]


@dataclass(frozen=True)
class Release:
    """A released answer.

    ``df`` holds the released values; ``ci(level)`` their confidence intervals (one row
    per released cell and aggregate); ``spent`` the privacy cost charged to the ledger;
    ``audit_id`` the audit record of this release; ``scale`` the noise scale per output
    (for a mean or variance: of its sum); ``suppressed`` how many cells were withheld
    for falling below the policy's minimum group size (for a histogram: cell–bin rows).
    A histogram's ``df`` and ``ci()`` are in long form: one row per cell and bin, the
    bin's label in a column named after the histogram's column.

    ``dummy=True``: the answer was computed on a dummy table (``s.release(...,
    dummy=True)``), not on the data; ``spent`` is what the real release would charge
    (nothing was charged) and ``audit_id`` is 0 (nothing was audited).
    """

    df: pd.DataFrame
    spent: Cost
    audit_id: int
    plan: Plan
    protection: Any
    scale: dict[str, float] = field(default_factory=dict)
    suppressed: int = 0
    _ci: Callable[[float], pd.DataFrame] | None = field(default=None, repr=False)
    audit_ids: dict[str, int] | None = None  # federated releases: each holder's own record
    repeat_of: int | None = None  # a repeated query: the audit record of the first answer
    dummy: bool = False  # computed on a dummy table (s.release(..., dummy=True)): no data

    def ci(self, level: float = 0.95, *, wide: bool = False) -> pd.DataFrame:
        """Intervals that cover the exact (clamped) statistic with probability ≥ ``level``:
        columns are the group keys, ``aggregate``, ``value``, ``lower``, ``upper`` (one
        row per cell and aggregate).

        ``wide=True``: the compact form, one row per cell like ``df``: the group keys,
        then per aggregate ``<name>``, ``<name>_lower``, ``<name>_upper`` (counts as
        integers)."""
        if self._ci is None:
            raise TypeError("this release has no confidence intervals")
        long = self._ci(level)
        return _wide(long, self._counted()) if wide else long

    def _counted(self) -> set[str]:
        """Names of the outputs that are counts (integers)."""
        aggs = getattr(self.plan, "aggs", ()) or ()
        return {a.name for a in aggs if a.kind in ("count", "count_distinct", "histogram")}

    def postprocess(self, *, non_negative: bool = False, decimals: int | None = None) -> "Release":
        """This release with free post-processing applied (it reads only released values,
        so it costs no budget and weakens no guarantee):

        - ``non_negative=True``: counts (and histogram bins) below 0 become 0, and their
          intervals are cut at 0 (an exact count is never negative, so the coverage
          stays what ``ci`` states);
        - ``decimals=k``: the other outputs (sums, means, variances, quantiles) and
          their intervals rounded to ``k`` decimals (counts are integers already).

        ``df``, ``ci()`` change; ``spent``, ``audit_id``, ``scale`` stay. The release
        itself is not changed (a new one is returned).
        """
        if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
            raise QueryError(f"decimals must be a whole number >= 0, got {decimals!r}")
        counted = self._counted()
        df = self.df.copy()
        for c in df.columns:
            if c in counted and non_negative:
                df[c] = df[c].clip(lower=0)
            elif c not in counted and decimals is not None and c in {a.name for a in self.plan.aggs} \
                    and pd.api.types.is_float_dtype(df[c].dtype):
                df[c] = df[c].round(decimals)
        inner = self._ci

        def ci(level: float) -> pd.DataFrame:
            assert inner is not None
            f = inner(level).copy()
            cnt = f["aggregate"].isin(counted)
            cols = ["value", "lower", "upper"]
            if non_negative:
                f.loc[cnt, cols] = f.loc[cnt, cols].clip(lower=0)
            if decimals is not None:
                f.loc[~cnt, cols] = f.loc[~cnt, cols].round(decimals)
            return f

        return dataclasses.replace(self, df=df, _ci=ci if inner is not None else None)

    def __repr__(self) -> str:
        return (
            f"Release({'dummy, ' if self.dummy else ''}spent=({self.spent}), audit_id={self.audit_id}, "
            f"cells={len(self.df)}, suppressed={self.suppressed})\n{self.df!r}"
        )

    def _repr_html_(self) -> str:
        """Notebook display: each cell with its 95% interval drawn (:mod:`pets.display`)."""
        from .display import release_html

        return release_html(self)


@dataclass(frozen=True)
class Extract:
    """A released record-level extract (e.g. k-anonymous).

    ``df`` the released rows (generalised quasi-identifiers, suppressed rows left out);
    ``transformation`` the generalisation level per quasi-identifier (or
    ``"mondrian"``); ``suppressed`` rows removed; ``metrics`` information loss and
    re-identification risk; ``classes`` equivalence classes; ``audit_id`` the audit
    record; ``extracts_left`` how many more extracts the policy allows this analyst.
    ``dummy=True``: computed on a dummy table, not on the data (``audit_id`` 0,
    ``extracts_left`` None: nothing was counted).
    """

    df: pd.DataFrame
    transformation: Any
    suppressed: int
    metrics: dict[str, float]
    classes: int
    audit_id: int
    plan: Plan
    protection: Any
    models: list[str] = field(default_factory=list)
    extracts_left: int | None = None
    spent: Cost = field(default_factory=Cost)
    dummy: bool = False  # computed on a dummy table (s.release(..., dummy=True)): no data

    def __repr__(self) -> str:
        return (
            f"Extract({'dummy, ' if self.dummy else ''}rows={len(self.df)}, suppressed={self.suppressed}, classes={self.classes}, "
            f"transformation={self.transformation}, audit_id={self.audit_id})"
        )

    def _repr_html_(self) -> str:
        from .display import extract_html

        return extract_html(self)


def _wide(long: pd.DataFrame, counted: set[str]) -> pd.DataFrame:
    """The long ``ci()`` table as one row per cell: keys, then value/lower/upper per output."""
    keys = [c for c in long.columns if c not in ("aggregate", "value", "lower", "upper")]
    names = list(dict.fromkeys(long["aggregate"].tolist()))
    parts = [long[long["aggregate"] == a].reset_index(drop=True) for a in names]
    out = parts[0][keys].copy() if keys else pd.DataFrame(index=range(len(parts[0])))
    for a, p in zip(names, parts):
        for col, suffix in (("value", ""), ("lower", "_lower"), ("upper", "_upper")):
            v = p[col]
            if a in counted:
                v = v.round().astype("Int64")
            out[f"{a}{suffix}"] = v.to_numpy() if a not in counted else v.array
    return out


#: The group sizes ``str(explanation)`` states a mean's and a quantile's expected error at
#: when the analyst gave none (``explanation.at(group_size=n)``).
REFERENCE_GROUP_SIZES = (100, 1_000)


@dataclass(frozen=True)
class Explanation:
    """What a release would do, computed without touching the data or the budget.

    ``allowed`` and, when refused, ``rule`` and ``message``; ``cost`` it would charge;
    ``scale`` and ``ci_width`` (95% interval, full width) per output — ``None`` where
    the width depends on the data (means, variances); ``remaining`` budget now;
    ``details`` one row per output.

    ``expected_error(group_size=n)`` states the expected error of each released
    statistic in its own units (rows for a count, the column's units for a sum, mean or
    quantile) for groups of ``n`` rows — a mean's and a quantile's error depend on the
    group's size, which is not known before the release; ``at(group_size=n)`` is this
    explanation printed at that size. After a release, ``r.ci()`` gives each cell's
    interval from its own noisy count.
    """

    allowed: bool
    cost: Cost
    rule: str | None = None
    message: str | None = None
    column: str | None = None
    scale: dict[str, float] = field(default_factory=dict)
    ci_width: dict[str, float | None] = field(default_factory=dict)
    remaining: Cost | None = None
    details: pd.DataFrame | None = field(default=None, repr=False)
    group_size: int | None = None  # the group size str() states errors at (at())

    def at(self, group_size: int) -> "Explanation":
        """This explanation, stating means' and quantiles' errors at ``group_size`` rows."""
        return dataclasses.replace(self, group_size=_check_group_size(group_size))

    def expected_error(self, group_size: int | None = None, level: float = 0.95) -> pd.DataFrame:
        """One row per output: ``aggregate``, ``kind``, ``column``, ``group_size``,
        ``error`` (the half-width of a 95% interval in ``unit``: the released value is
        within ± error of the exact statistic of the clamped data with probability
        ≥ 95%) and ``note``.

        - count, histogram bin, sum: independent of the group's size.
        - mean at ``group_size`` n: (h_sum + half_range · h_count) / (n − h_count), the
          widest the released interval can be for a group of n rows (h: the 95%
          half-widths of its noisy centred sum and count, union-bounded); at most the
          width of the bounds (a mean is clipped to them).
        - quantile: the chosen value is within ± ``rank_error95`` ranks of the exact
          one; in the column's units that is ``(upper − lower) · rank_error / n`` plus
          one candidate step *if the n values spread evenly over the bounds* (denser
          data: smaller; gaps in the data: larger).
        - variance: depends on the data (NaN); see ``r.ci()`` after the release.
        """
        if level != 0.95:
            raise QueryError("expected_error states 95% errors (level=0.95); r.ci(level) after a "
                             "release gives other levels")
        n = _check_group_size(group_size if group_size is not None else self.group_size or 1_000)
        d = self.details
        if d is None or not self.allowed:
            return pd.DataFrame(columns=["aggregate", "kind", "column", "group_size", "error", "unit", "note"])
        rows = []
        for _, r in d.iterrows():
            rows.append(_error_row(r, n))
        return pd.DataFrame(rows, columns=["aggregate", "kind", "column", "group_size", "error", "unit", "note"])

    def _repr_html_(self) -> str:
        from .display import explanation_html

        return explanation_html(self)

    def __str__(self) -> str:
        if not self.allowed:
            return f"refused by rule {self.rule!r}: {self.message}"
        lines = [f"allowed; cost {self.cost}; remaining before it {self.remaining}"]
        d = self.details
        if d is None or "kind" not in d.columns:
            for name, s in self.scale.items():
                if name not in self.ci_width:  # no interval to speak of (a model's noise)
                    lines.append(f"  {name}: noise scale {s:g}")
                    continue
                w = self.ci_width.get(name)
                ws = f"{w:g}" if w is not None else "depends on group size"
                lines.append(f"  {name}: noise scale {s:g}, 95% CI width {ws}")
            return "\n".join(lines)
        sizes = (self.group_size,) if self.group_size is not None else REFERENCE_GROUP_SIZES
        per_size = [self.expected_error(n) for n in sizes]
        varying = False
        for i, r in enumerate(d.itertuples(index=False)):
            what = _what(r)
            first = per_size[0].iloc[i]
            if r.kind in ("mean", "quantile"):
                varying = True
                parts = [f"±{_num(e.iloc[i]['error'])} at {n:,} rows per group" for n, e in zip(sizes, per_size)]
                text = ", ".join(parts)
                if r.kind == "quantile":
                    text = (f"within ±{_num(getattr(r, 'rank_error95'))} rows of the exact rank; "
                            f"in {r.column}: {text} if they spread evenly over the bounds")
                lines.append(f"  {r.aggregate} ({what}): {text} (95%)")
            elif r.kind == "variance":
                lines.append(f"  {r.aggregate} ({what}): depends on the data; r.ci() after the release")
            else:
                lines.append(f"  {r.aggregate} ({what}): ±{_num(first['error'])} {first['unit']} (95%)")
        if varying and self.group_size is None:
            lines.append("  (errors of means and quantiles shrink with the group size: "
                         "explanation.at(group_size=n) or .expected_error(group_size=n) for yours)")
        return "\n".join(lines)


def _check_group_size(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise QueryError(f"group_size must be a whole number of rows >= 1, got {n!r}")
    return int(n)


def _num(x: float) -> str:
    if x != x:  # NaN
        return "?"
    if x == float("inf"):
        return "∞"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _what(r: Any) -> str:
    b = getattr(r, "bounds", None)
    bounds = ""
    if isinstance(b, (tuple, list)) and len(b) == 2:
        bounds = f", bounds [{b[0]:g}, {b[1]:g}]"
    if r.kind == "count":
        return "count" if r.column is None or r.column != r.column else f"count of {r.column}"
    if r.kind == "quantile":
        q = getattr(r, "q", None)
        name = "median" if q == 0.5 else f"quantile {q:g}"
        return f"{name} of {r.column}{bounds}"
    return f"{r.kind} of {r.column}{bounds}"


def _error_row(r: Any, n: int) -> dict[str, Any]:
    kind, col = r["kind"], r["column"]
    col = None if col is None or col != col else col
    out = {"aggregate": r["aggregate"], "kind": kind, "column": col, "group_size": n,
           "error": float("nan"), "unit": col or "rows", "note": ""}
    b = r.get("bounds")
    lo, hi = (float(b[0]), float(b[1])) if isinstance(b, (tuple, list)) and len(b) == 2 else (0.0, 0.0)
    if kind in ("count", "count_distinct"):
        out.update(error=float(r["ci95_half_width"]), unit="rows", note="independent of the group size")
    elif kind == "histogram":
        out.update(error=float(r["ci95_half_width"]), unit="rows per bin", note="independent of the group size")
    elif kind == "sum":
        out.update(error=float(r["ci95_half_width"]), note="independent of the group size")
    elif kind == "mean":
        hc, hs = float(r["count_half_width95"]), float(r["sum_half_width95"])
        half = (hi - lo) / 2
        err = (hs + half * hc) / (n - hc) if n > hc else float("inf")
        out.update(error=min(err, hi - lo),
                   note=("at most the bounds' width: the group is smaller than the count's noise"
                         if err >= hi - lo else f"for groups of {n:,} rows; r.ci() after the release"))
    elif kind == "quantile":
        rank = float(r["rank_error95"])
        step = float(r.get("step", 0.0) or 0.0)
        out.update(error=min((hi - lo) * rank / n + step, hi - lo),
                   note=f"±{rank:,.0f} ranks; in {col} if the {n:,} values spread evenly over [{lo:g}, {hi:g}]")
    else:
        out.update(note="depends on the data; r.ci() after the release")
    return out
