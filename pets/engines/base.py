"""The narrow engine protocol.

An engine runs the exact part of a release inside the holder's domain and returns
aggregates (never rows) to the mechanism that asked. It knows nothing about noise,
policies or budgets. DuckDB is the embedded default; the Spark engine (spark.py)
implements the same methods (its ``materialize`` refuses: Spark reads in place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..plan import Expr, Scalar

__all__ = ["fitting_ordinals", "Source", "Ordinals", "Measure", "Bounding", "AggregateRequest", "Engine", "LOGICAL_TYPES"]

LOGICAL_TYPES = ("int", "float", "str", "bool", "date", "other")


@dataclass(frozen=True)
class Ordinals:
    """Per-person ordinals stored in a materialised copy, for contribution bounding
    without window functions at release time (see :meth:`Engine.materialize`).

    For the person column ``unit`` and the grouping column ``column`` (``None``: all of
    a person's rows form one group), every row whose person is present and whose
    ``column`` value is one of ``keys`` carries, in the hidden ``columns``:
    the index of its group among the person's distinct groups (a random order fixed
    when the copy was written), how many such groups the person has, the row's random
    position among the person's rows in that group, how many those are, and one random
    number per person. Other rows carry NULLs: they take no part in the bounding, as
    rows outside the public keys must not (they would use up a person's slots).

    An engine uses them only for a request they fit exactly: the same unit, no
    filters, no group column or the single group column ``column`` with the same set
    of keys; anything else falls back to bounding at query time.
    """

    unit: str
    column: str | None
    keys: tuple[Scalar, ...] = ()
    # the hidden columns, set by the engine that wrote them: group index, number of
    # groups (both "" when column is None), row index, number of rows, person's number
    columns: tuple[str, ...] = ()
    # (max_groups, max_rows_per_group) of the policy: when set, the engine also stores
    # ``mask``, a hidden column of precomputed choices under those bounds (bit k: the
    # row is kept by choice k), so that a release picks one choice with a bit test
    mask_bounds: tuple[int, int] | None = None
    mask: str = ""


@dataclass(frozen=True)
class Source:
    """Where a dataset's rows live: a CSV or Parquet file inside the holder's domain.

    ``missing`` lists the markers that mean "missing value" (e.g. ``"?"``); string
    values are compared after trimming surrounding whitespace when ``trim`` is set.
    """

    kind: str  # "csv" | "parquet" (a file, or a folder of Parquet files on Spark) | "table" (Spark's catalog)
    # A materialised copy (see Engine.materialize) may carry pre-encoded columns: the
    # exact clamped fixed-point value ``round(clamp(x, lower, upper) * factor)`` of a
    # bounded column, computed once, so sums under those bounds need no per-row work.
    path: str
    missing: tuple[str, ...] = ()
    trim: bool = True
    # columns stored pre-encoded as fixed-point integers: (column, lower, upper, factor)
    encoded: tuple[tuple[str, float, float, int], ...] = ()
    # per-person ordinals stored for contribution bounding (a materialised copy only)
    ordinals: tuple[Ordinals, ...] = ()
    # the registration this source belongs to: a re-registered copy may keep its path,
    # so caches keyed by Source must see the difference
    version: str = ""
    # a source read in place may keep its ``ordinals`` in a Parquet file of their own
    # inside the home, row-aligned with the source (see DuckDBEngine.store_ordinals)
    sidecar: str = ""


@dataclass(frozen=True)
class Measure:
    """One exact integer aggregate per group.

    kinds: ``rows`` (count of rows), ``present`` (rows where ``column`` is not missing),
    ``sum`` (Σ v) and ``sumsq`` (Σ v²) where, for each present value x,
    ``v = round(clamp(x, lower, upper) * factor) - center`` — a fixed-point integer whose
    absolute value the mechanism bounds to compute the sensitivity.
    ``distinct``: the number of distinct present values of ``column``. ``range`` /
    ``range_closed``: rows whose raw (unclamped) value x of ``column`` has
    ``lower <= x < upper`` / ``lower <= x <= upper`` (a histogram's bin).
    """

    key: str
    kind: str
    column: str | None = None
    lower: float = 0.0
    upper: float = 0.0
    factor: int = 1
    center: int = 0
    threshold: float = 0.0  # kinds "lt" / "le": count present values with clamp(x) < / <= it
    # instead of a column: x is this expression (arithmetic, CASE), computed after
    # clamping each ``clamps`` column (name, lower, upper) where it gives the value
    expr: Expr | None = None
    clamps: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Bounding:
    """Per-person contribution bounds: keep at most ``max_rows_per_group`` rows per
    person and group, in at most ``max_groups`` groups per person; a fresh random
    choice per release (``seed``, 63 random bits). ``use_ordinals=False`` makes the
    engine bound at query time even where the source's stored ordinals fit."""

    unit: str
    max_groups: int
    max_rows_per_group: int
    seed: int = 0
    use_ordinals: bool = True


@dataclass(frozen=True)
class AggregateRequest:
    filters: tuple[Expr, ...]
    group_columns: tuple[str, ...]
    group_keys: tuple[tuple[Scalar, ...], ...]  # per group column: rows outside are dropped
    measures: tuple[Measure, ...]
    bounding: Bounding | None = None
    # per group column, a CASE the engine computes under that name (None: the column
    # itself); empty when every group is a plain column
    group_exprs: tuple[Expr | None, ...] = ()


@runtime_checkable
class Engine(Protocol):
    def schema(self, source: Source) -> dict[str, str]:
        """Column name → logical type (one of LOGICAL_TYPES)."""

    def aggregate(self, source: Source, request: AggregateRequest) -> pd.DataFrame:
        """Group columns then one int64 column per measure key; only groups present."""

    def aggregate_columns(self, source: Source, request: AggregateRequest) -> dict[str, np.ndarray]:
        """:meth:`aggregate`'s table as one NumPy array per column, without building a
        DataFrame (the DP mechanism's path): the group columns as object arrays with
        ``None`` where a key is missing (if one is), then one int64 array per measure."""

    def fetch(self, source: Source, columns: tuple[str, ...], filters: tuple[Expr, ...]) -> pd.DataFrame:
        """Rows of ``columns`` passing ``filters``, for record-level mechanisms only."""

    def fetch_counted(self, source: Source, columns: tuple[str, ...],
                      filters: tuple[Expr, ...]) -> pd.DataFrame:
        """The distinct rows of ``columns`` passing ``filters``, each with the number of
        rows that have it in the column :data:`COUNT_COLUMN` (the class-size counting of
        a k-anonymous extract runs in the engine; only distinct tuples travel)."""

    def schema_of_frame(self, df: pd.DataFrame) -> dict[str, str]:
        """Column name → logical type of an in-memory DataFrame."""

    def materialize(
        self,
        source: "Source | pd.DataFrame",
        dest: str,
        missing: tuple[str, ...],
        encode: tuple[tuple[str, float, float, int], ...],
        ordinals: tuple[Ordinals, ...] = (),
    ) -> Source:
        """Write ``source`` (missing markers applied, strings trimmed) to a Parquet file
        ``dest`` inside the holder's home, with the ``encode`` columns pre-encoded and
        the requested per-person ``ordinals`` stored; return the Source that reads it
        (listing the ordinals it could store)."""


#: The count column of :meth:`Engine.fetch_counted`: how many rows have each distinct tuple.
COUNT_COLUMN = "__pets_n"


def _key_set(keys: tuple[Any, ...]) -> frozenset[tuple[str, Any]]:
    """Keys as SQL compares them: booleans apart from numbers, 1 == 1.0."""
    return frozenset(
        ("b" if isinstance(k, bool) else "s" if isinstance(k, str) else "n", k) for k in keys
    )


def fitting_ordinals(source: Source, request: AggregateRequest) -> Ordinals | None:
    """The stored ordinals that bound this request exactly as the window functions
    would, or None (bound at query time).

    They fit when the request has no filters (a filter must act before the bounding, so
    that rows it removes use none of a person's slots), groups by nothing or by exactly
    the ordinals' column with the same set of keys (rows outside the keys must use no
    slot either), and bounds the same person column."""
    b = request.bounding
    if b is None or not b.use_ordinals or request.filters or len(request.group_columns) > 1:
        return None
    if any(e is not None for e in request.group_exprs):  # a CASE group, not the column
        return None
    column = request.group_columns[0] if request.group_columns else None
    for o in source.ordinals:
        if o.unit != b.unit or o.column != column:
            continue
        if column is not None and _key_set(o.keys) != _key_set(tuple(request.group_keys[0])):
            continue
        return o
    return None
