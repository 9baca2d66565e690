"""The narrow engine protocol.

An engine runs the exact part of a release inside the holder's domain and returns
aggregates (never rows) to the mechanism that asked. It knows nothing about noise,
policies or budgets. DuckDB is the embedded default; a Spark engine implements the
same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pandas as pd

from ..plan import Expr, Scalar

__all__ = ["Source", "Measure", "Bounding", "AggregateRequest", "Engine", "LOGICAL_TYPES"]

LOGICAL_TYPES = ("int", "float", "str", "bool", "date", "other")


@dataclass(frozen=True)
class Source:
    """Where a dataset's rows live: a CSV or Parquet file inside the holder's domain.

    ``missing`` lists the markers that mean "missing value" (e.g. ``"?"``); string
    values are compared after trimming surrounding whitespace when ``trim`` is set.
    """

    kind: str  # "csv" | "parquet"
    # A materialised copy (see Engine.materialize) may carry pre-encoded columns: the
    # exact clamped fixed-point value ``round(clamp(x, lower, upper) * factor)`` of a
    # bounded column, computed once, so sums under those bounds need no per-row work.
    path: str
    missing: tuple[str, ...] = ()
    trim: bool = True
    # columns stored pre-encoded as fixed-point integers: (column, lower, upper, factor)
    encoded: tuple[tuple[str, float, float, int], ...] = ()


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
    choice per release (``seed``)."""

    unit: str
    max_groups: int
    max_rows_per_group: int
    seed: int = 0


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

    def fetch(self, source: Source, columns: tuple[str, ...], filters: tuple[Expr, ...]) -> pd.DataFrame:
        """Rows of ``columns`` passing ``filters``, for record-level mechanisms only."""

    def schema_of_frame(self, df: pd.DataFrame) -> dict[str, str]:
        """Column name → logical type of an in-memory DataFrame."""

    def materialize(
        self,
        source: "Source | pd.DataFrame",
        dest: str,
        missing: tuple[str, ...],
        encode: tuple[tuple[str, float, float, int], ...],
    ) -> Source:
        """Write ``source`` (missing markers applied, strings trimmed) to a Parquet file
        ``dest`` inside the holder's home, with the ``encode`` columns pre-encoded; return
        the Source that reads it."""
