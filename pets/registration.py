"""What registration found when it held the policy against the data — for the holder.

The holder owns the data, so it may be told what an analyst never may: which declared
public keys never occur, how many rows fall outside the keys (and which values they
hold), how many rows the DP bounds clip, and which values look like undeclared
missing-value markers. :meth:`pets.Holder.register` returns a :class:`RegistrationReport`
and, when it found a problem, also emits one :class:`RegistrationWarning` (a
``UserWarning``) naming the dataset and the problems, so that a policy typo is seen even
by a caller that ignores the return value.

>>> import pets, tempfile
>>> holder = pets.Holder(tempfile.mkdtemp())
>>> report = holder.register("adult", pets.example_data(), pets.example_policy())
>>> report.ok
True

The report is never shown to analysts, never written to the audit log, and never sent by
the server: it contains values of the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .engines.base import AggregateRequest, Engine, Measure, Source
from .plan import Case, Col, IsIn, Lit, Not

__all__ = [
    "BoundsFinding",
    "KeysFinding",
    "MarkersFinding",
    "RegistrationReport",
    "RegistrationWarning",
    "CLIP_WARN_FRACTION",
    "MARKER_CANDIDATES",
]

#: A bounded column whose bounds clip more than this fraction of its present values is
#: flagged: its DP sums and means are then biased towards the bounds.
CLIP_WARN_FRACTION = 0.01
#: Values that usually mean "missing" in exported tables; found in a string column and not
#: declared in ``[dataset] missing``, they are flagged (they would count as real values).
MARKER_CANDIDATES = ("?", "-", "--", ".", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null",
                     "None", "none", "missing", "unknown", "Unknown", "#N/A")
#: How many of the most frequent values outside the keys a finding lists.
EXAMPLES = 5


class RegistrationWarning(UserWarning):
    """Registration succeeded but the policy and the data disagree (keys that never occur,
    rows outside the keys, bounds that clip many rows, undeclared missing markers). The
    warning's ``report`` attribute is the :class:`RegistrationReport`."""

    def __init__(self, message: str, report: "RegistrationReport | None" = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class KeysFinding:
    """A column with public ``keys``: declared keys with no row (``unused``), rows whose
    value is not a key (``rows_outside``, in ``values_outside`` distinct values; the most
    frequent in ``examples`` as (value, rows)), and rows with a missing value."""

    column: str
    declared: int
    unused: tuple[Any, ...]
    rows_outside: int
    values_outside: int
    examples: tuple[tuple[Any, int], ...]
    missing: int

    @property
    def ok(self) -> bool:
        return not self.unused and not self.rows_outside

    def problems(self) -> list[str]:
        out = []
        if self.unused:
            out.append(f"column {self.column!r}: {len(self.unused)} of {self.declared} declared keys "
                       f"never occur: {_list(self.unused)}")
        if self.rows_outside:
            ex = ", ".join(f"{v!r} ({_rows(n)})" for v, n in self.examples)
            more = f" and {self.values_outside - len(self.examples)} more" if self.values_outside > len(self.examples) else ""
            out.append(f"column {self.column!r}: {_rows(self.rows_outside)} hold a value that is not a "
                       f"key and are left out of every group-by on it: {ex}{more}")
        return out


@dataclass(frozen=True)
class BoundsFinding:
    """A column with DP ``bounds``: present values below / above them (clipped to the
    bound in every sum, mean, variance and quantile), and missing values."""

    column: str
    bounds: tuple[float, float]
    present: int
    below: int
    above: int
    missing: int

    @property
    def clipped(self) -> int:
        return self.below + self.above

    @property
    def clipped_fraction(self) -> float:
        return self.clipped / self.present if self.present else 0.0

    @property
    def ok(self) -> bool:
        return self.clipped_fraction <= CLIP_WARN_FRACTION

    def problems(self) -> list[str]:
        if self.ok:
            return []
        lo, hi = self.bounds
        return [f"column {self.column!r}: the bounds [{lo:g}, {hi:g}] clip {self.clipped:,} of "
                f"{self.present:,} values ({self.clipped_fraction:.1%}: {self.below:,} below, "
                f"{self.above:,} above); DP sums and means of it are pulled towards the bounds"]


@dataclass(frozen=True)
class MarkersFinding:
    """A string column holding values that look like missing-value markers but are not
    declared in ``[dataset] missing``: (value, rows)."""

    column: str
    undeclared: tuple[tuple[str, int], ...]

    @property
    def ok(self) -> bool:
        return not self.undeclared

    def problems(self) -> list[str]:
        ex = ", ".join(f"{v!r} ({_rows(n)})" for v, n in self.undeclared)
        return [f"column {self.column!r}: values that look like missing markers but are not in "
                f"[dataset] missing: {ex}; declare them (missing = [...]) or they count as values"]


@dataclass(frozen=True)
class RegistrationReport:
    """What :meth:`pets.Holder.register` found in the data against the policy (holder only).

    ``ok`` is True when nothing needs the holder's attention; ``problems()`` lists what
    does, one sentence each; ``to_frame()`` is one row per finding; ``str(report)`` is
    the text the CLI prints.
    """

    dataset: str
    rows: int
    declared_markers: tuple[str, ...] = ()
    keys: tuple[KeysFinding, ...] = ()
    bounds: tuple[BoundsFinding, ...] = ()
    markers: tuple[MarkersFinding, ...] = ()
    missing: dict[str, int] = field(default_factory=dict)  # column -> rows missing

    @property
    def ok(self) -> bool:
        return all(f.ok for f in (*self.keys, *self.bounds, *self.markers))

    def problems(self) -> list[str]:
        return [p for f in (*self.keys, *self.bounds, *self.markers) for p in f.problems()]

    def to_frame(self) -> pd.DataFrame:
        """One row per checked column and kind: ``column``, ``check`` (keys, bounds,
        markers), ``ok``, ``detail``."""
        rows = []
        for f in self.keys:
            rows.append({"column": f.column, "check": "keys", "ok": f.ok,
                         "detail": "; ".join(f.problems()) or f"{f.declared} keys, all present"})
        for b in self.bounds:
            rows.append({"column": b.column, "check": "bounds", "ok": b.ok,
                         "detail": "; ".join(b.problems()) or f"{b.clipped:,} of {b.present:,} values clipped"})
        for m in self.markers:
            rows.append({"column": m.column, "check": "markers", "ok": m.ok, "detail": "; ".join(m.problems())})
        return pd.DataFrame(rows, columns=["column", "check", "ok", "detail"])

    def __str__(self) -> str:
        head = f"registered {self.dataset!r}: {self.rows:,} rows"
        if self.ok:
            return f"{head}; keys, bounds and markers agree with the data"
        return "\n".join([f"{head}; {len(self.problems())} thing(s) to check in the policy:"]
                         + [f"  - {p}" for p in self.problems()])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython
        p.text(str(self))


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _list(values: tuple[Any, ...]) -> str:
    shown = ", ".join(repr(v) for v in values[:10])
    return shown + (f" and {len(values) - 10} more" if len(values) > 10 else "")


def _norm(v: Any) -> Any:
    """A group value from the engine as a plain Python scalar (None when missing)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _flag(cond: Any) -> Case:
    """1 where ``cond`` holds, else NULL: counted by a ``present`` measure."""
    return Case(((cond, Lit(1)),))


def build(engine: Engine, source: Source, name: str, policy: Any, schema: dict[str, str],
          rows: int) -> RegistrationReport:
    """Compute the report with exact queries of ``engine`` on the stored ``source``: one
    scan for every tally, then one group-by per column that has something to show."""
    cols = policy.columns
    declared_markers = tuple(policy.missing)
    candidates = tuple(m for m in MARKER_CANDIDATES if m not in declared_markers)
    bounded = [c for c, cp in cols.items() if cp.bounds is not None and schema.get(c) in ("int", "float")]
    keyed = [c for c, cp in cols.items() if cp.keys and c in schema]
    texts = [c for c, t in schema.items() if t == "str"] if candidates else []

    measures: list[Measure] = []

    def add(kind: str, column: str | None = None, **kw: Any) -> str:
        key = f"m{len(measures)}"
        measures.append(Measure(key, kind, column, **kw))
        return key

    present = {c: add("present", c) for c in cols if c in schema}
    tally_bounds = {}
    for c in bounded:
        lo, hi = (float(x) for x in cols[c].bounds)
        tally_bounds[c] = (add("range_closed", c, lower=lo, upper=hi),
                           add("range", c, lower=-1.7976931348623157e308, upper=lo))
    tally_keys = {}
    for c in keyed:
        ks = tuple(cols[c].keys)
        tally_keys[c] = (add("present", expr=_flag(Not(IsIn(Col(c), ks)))),
                         [add("present", expr=_flag(IsIn(Col(c), (k,)))) for k in ks])
    tally_markers = {c: add("present", expr=_flag(IsIn(Col(c), candidates))) for c in texts}
    t: dict[str, int] = {}
    if measures:
        df = engine.aggregate(source, AggregateRequest((), (), (), tuple(measures)))
        t = {k: int(df[k].iloc[0]) if len(df) else 0 for k in df.columns}
    missing = {c: rows - t[k] for c, k in present.items()}

    bounds = []
    for c, (k_in, k_below) in tally_bounds.items():
        lo, hi = (float(x) for x in cols[c].bounds)
        p = t[present[c]]
        bounds.append(BoundsFinding(c, (lo, hi), p, t[k_below], p - t[k_in] - t[k_below], missing[c]))

    keys = []
    for c, (k_out, k_each) in tally_keys.items():
        declared = tuple(_norm(k) for k in cols[c].keys)
        unused = tuple(k for k, m in zip(declared, k_each) if t[m] == 0)
        outside: dict[Any, int] = {}
        if t[k_out]:
            outside = _value_counts(engine, source, c, (Not(IsIn(Col(c), tuple(cols[c].keys))),))
            outside.pop(None, None)
        top = sorted(outside.items(), key=lambda kv: (-kv[1], str(kv[0])))[:EXAMPLES]
        keys.append(KeysFinding(c, len(declared), unused, t[k_out], len(outside), tuple(top), missing[c]))

    markers = []
    for c, k in tally_markers.items():
        if not t[k]:
            continue
        found = _value_counts(engine, source, c, (IsIn(Col(c), candidates),))
        found = {v: n for v, n in found.items() if v is not None and n}
        if found:
            markers.append(MarkersFinding(c, tuple(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))))

    return RegistrationReport(name, rows, declared_markers, tuple(keys), tuple(bounds),
                              tuple(markers), missing)


def _value_counts(engine: Engine, source: Source, column: str, filters: tuple[Any, ...]) -> dict[Any, int]:
    key = "n" if column != "n" else "rows"
    req = AggregateRequest(filters, (column,), ((),), (Measure(key, "rows"),))
    df = engine.aggregate(source, req)
    out: dict[Any, int] = {}
    for v, n in zip(df[column].tolist(), df[key].tolist()):
        k = _norm(v)
        out[k] = out.get(k, 0) + int(n)
    return out
