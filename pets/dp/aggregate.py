"""DP counts, sums, means and variances over public group keys.

Guarantee (stated once, relied on everywhere): for a plan with public keys (given in the
query or declared in the policy — never read from the data), the released table is
ε-differentially private (pure DP, δ = 0) under adding or removing one person, where a
person is one row, or — when the policy names a privacy unit — all rows with one value
of that column, bounded to ``max_groups`` groups × ``max_rows_per_group`` rows per group.

How: the engine returns exact integer aggregates per cell (counts, and sums of
fixed-point values ``v = round(clamp(x) · F) − c``). The budget is split evenly over the
distinct measurements; each measurement's vector over all cells has L1 sensitivity
``max|v| · max_groups · max_rows_per_group`` and gets OpenDP's discrete Laplace noise with
``scale = sensitivity / ε_share`` (checked against OpenDP's own privacy map).
Sequential composition over measurements gives ε in total. Everything after the noise
(ratios for means, clipping into bounds, suppressing cells below the minimum group
size) is post-processing.

Gaussian noise (``DP(noise="gaussian")``, δ > 0): the release is ρ-zCDP with ρ the
largest value whose zCDP implies (ε, δ_conv)-DP (Canonne, Kamath & Steinke 2020,
Prop. 12), split evenly over the measurements; a measurement with squared L2
sensitivity ``Δ₂² = max|v|² · max_groups · max_rows_per_group²`` gets discrete Gaussian
noise with σ = sqrt(Δ₂² / 2ρ_share) (CKS 2020, Thm 15), quantiles the exponential
mechanism at ε_q = sqrt(2ρ_share) (pure ε_q-DP is ε_q²/2-zCDP). With unknown keys,
OpenDP's Gaussian threshold (approximate zCDP) takes half of δ. Hence (ε, δ)-DP.

The sampler: discrete Laplace noise comes from pets.dp.fast, which is exact (the same
distribution as OpenDP's sampler, proven in its module docstring; nothing is charged
for it), whenever its scales are ≥ 2^-40 and the release has ≥ ``FAST_LAPLACE_MIN_DRAWS``
noise draws, or the tables of its scales are built already, or every one of its scales
has been asked for at least ``FAST_LAPLACE_MIN_USES`` times by releases compiled in this
process (a first build takes 1–10 ms, an OpenDP call ~60 µs + ~6 µs a cell: a scale used
again is worth its tables); otherwise from OpenDP. Which sampler is used depends only on
the scales, the number of cells and this process's history of scales (never on the
data), and both samplers draw from the same distribution, so the guarantee is the same. Gaussian
noise comes from OpenDP's exact sampler, except on releases of many noise draws
(≥ ``FAST_MIN_DRAWS``, public keys, δ > 0, a known grant): there pets.dp.fast draws it
with a proven total-variation distance γ ≤ 2^-47 per draw from the exact one. Over
everything an analyst is ever released under a grant of ε_B, the transcript is within
Σγ of the exact one, which adds at most Σγ·(1 + e^ε_B) to δ: that amount is charged to
the release as δ (and used only when it is at most δ/100 of the release's δ).

Histograms: the B bin counts of a cell are exact counts of the rows whose value lies in
each bin; one row lies in at most one bin, so the vector of all bins over all cells has
the L1 sensitivity of one count (``max_groups · max_rows_per_group``). It is ONE
measurement: one ε share, every bin noised with the same ``scale = sensitivity /
ε_share`` (independent discrete Laplace draws on a vector are the Laplace mechanism on
that vector, whatever its length).

Distinct counts: adding or removing a person changes the number of distinct persons of
each group they are in by at most 1, and the bounded person is in at most
``min(max_groups, cells)`` groups (``max_groups`` with unknown keys): that is the L1
sensitivity of ``count_distinct()``, not multiplied by ``max_rows_per_group``. The
number of distinct values of a column changes by at most the person's kept rows per
group, so ``count_distinct(col)`` has the sensitivity of ``count(col)``.

Limits, decided from the query and the policy only (never from the data), before the
engine runs or anything is charged: a release asks for at most ``[dataset] max_cells``
cells (key combinations × histogram bins, Python integers), and every exact value is
at most ``EXACT_LIMIT`` in magnitude given at most ``[dataset] max_rows`` rows (see
``EXACT_LIMIT``); otherwise ``PolicyError`` with rule ``max_cells`` / ``max_rows``.

Compiling: one small compiler per aggregation kind (``_AGGREGATIONS``) asks a
``_Builder`` for the exact aggregates and measurements it needs; ``compile_dp``
orchestrates (keys, cells, overflow, bounding, calibration).

Missing values: ``count()`` counts rows; ``count(col)``, ``sum``, ``mean`` and
``variance`` use only rows where the column is present, and a mean or variance divides
by the (noisy) count of present values. Rows whose group-by key is missing fall outside
every public key and are left out. A histogram and ``count_distinct(col)`` leave out
missing values (and a histogram values outside every bin).
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .. import plan as P
from ..cost import Cost
from ..engines.base import AggregateRequest, Bounding, Measure
from ..errors import PolicyError, QueryError
from ..governance import released_columns
from ..expressions import check_value, value_bounds
from ..policy import DEFAULT_MAX_ROWS, Policy
from ..protections import DP
from . import fast
from .accuracy import check_level, gaussian_half_width, laplace_half_width, selection_margin
from .samplers import (
    add_discrete_gaussian,
    add_discrete_laplace,
    gaussian_scale,
    gaussian_threshold,
    laplace_scale,
    laplace_threshold,
    noisy_max,
    zcdp_rho,
)

__all__ = ["EXACT_LIMIT", "CompiledDP", "compile_dp", "fixed_point_factor", "sum_factor"]

# Largest |v| per row for plain sums, and for the centred values of variances (whose
# squares are summed too); lowered further when max_rows rows of them would not fit
# within EXACT_LIMIT.
_SUM_LIMIT = 2**31 - 1
_CENTRED_LIMIT = 2**18
#: The largest |exact value| any engine aggregate or measurement may reach in one cell,
#: proven at compile time from the bounds and the policy's ``max_rows`` (rows × the
#: largest value one row adds), never from the data. It leaves room for the noise in
#: int64: pets.dp.fast refuses a draw beyond 2^62 (the refusal depends on the noise
#: only), so |noise| < 2^62 + 2^41 and |exact + noise| < 2^63; OpenDP's samplers
#: saturate instead, which at scales ≤ 2^40 happens with probability < e^(-2^21).
EXACT_LIMIT = 2**62 - 2**42
#: candidates a quantile is chosen from, evenly spaced over its bounds
QUANTILE_CANDIDATES = 65
#: Gaussian noise draws from which a release may use the fast (TV-bounded) sampler
FAST_MIN_DRAWS = 2048
#: Laplace noise draws from which a release uses the fast (exact) sampler even when its
#: tables must be built first (measured: a build is 1–10 ms, OpenDP ~6 µs a cell)
FAST_LAPLACE_MIN_DRAWS = 1024
#: compiled releases asking for a Laplace scale, in this process, from which a release
#: uses the fast (exact) sampler for it (building its tables on that release)
FAST_LAPLACE_MIN_USES = 2
#: how many distinct scales the use counts remember (least recently used forgotten):
#: fewer than pets.dp.fast keeps tables of (128), so releases cycling through more
#: scales than that stay on OpenDP rather than rebuilding evicted tables every time
_SCALE_USES_MAX = 64
_scale_uses: "OrderedDict[float, int]" = OrderedDict()
_scale_uses_lock = threading.Lock()
#: the proven per-draw total-variation bound of pets.dp.fast's Gaussian sampler
_FAST_TV = {"gaussian": 2.0**-47}


def fixed_point_factor(lower: float, upper: float, integral: bool, limit: int) -> int:
    """The fixed-point factor F (a power of ten, 1 … 10^6) for values in [lower, upper].

    Integer columns with integer bounds use F = 1 (exact). Otherwise the largest F with
    max(|lower|, |upper|) · F ≤ ``limit``.
    """
    if integral:
        return 1
    m = max(abs(lower), abs(upper))
    f = 1
    for d in range(0, 7):
        if m * 10**d <= limit:
            f = 10**d
    return f


def sum_factor(lower: float, upper: float, column_type: str,
               max_rows: int = DEFAULT_MAX_ROWS) -> int:
    """The fixed-point factor a sum or mean of a ``column_type`` column under these
    bounds uses on a table of at most ``max_rows`` rows (a holder pre-encodes bounded
    columns with it at registration)."""
    lo, hi = float(lower), float(upper)
    integral = column_type == "int" and lo.is_integer() and hi.is_integer()
    return fixed_point_factor(lo, hi, integral, min(_SUM_LIMIT, EXACT_LIMIT // max_rows))


def _centred_factor(lower: float, upper: float, integral: bool, max_rows: int) -> int:
    """The fixed-point factor of a variance: its centred values squared, times
    ``max_rows``, stay within EXACT_LIMIT where a factor ≥ 1 allows."""
    half = (upper - lower) / 2
    limit = min(_CENTRED_LIMIT, math.isqrt(EXACT_LIMIT // max_rows))
    return fixed_point_factor(half, half, integral and (lower + upper) % 2 == 0, limit)


@dataclass
class _Output:
    agg: P.Aggregation
    keys: dict[str, str]  # role → measure key ("count", "sum", "sumsq")
    factor: int = 1
    center: int = 0
    lower: float = 0.0
    upper: float = 0.0
    labels: tuple[str, ...] = ()  # histogram: one label per bin, keys "bin0", "bin1", ...


@dataclass
class _Quantile:
    """One DP quantile per cell: report-noisy-max over the candidates' scores
    −|(b − a)·#(x < c) − a·#(x > c)| for q ≈ a/b (b = 1000), OpenDP's exact noisy max."""

    key: str
    candidates: np.ndarray
    lt: list[str]
    le: list[str]
    present: str
    a: int
    b: int
    scale: float
    measurement: Any = field(repr=False, default=None)

    def rank_error(self, level: float = 0.95) -> float:
        """With probability ≥ ``level`` the chosen candidate c has
        |#(x < c) − q·#(x ≠ c)| at most this many rows above the best candidate's
        (the exponential mechanism's utility bound: its score is within
        scale · ln(candidates / (1 − level)) of the best score, and a score is b times
        that row count)."""
        return self.scale * math.log(len(self.candidates) / (1.0 - level)) / self.b

    def choose(self, engine: dict[str, np.ndarray]) -> np.ndarray:
        lt = np.stack([engine[k] for k in self.lt], axis=1)
        le = np.stack([engine[k] for k in self.le], axis=1)
        n = engine[self.present][:, None]
        scores = -np.abs((self.b - self.a) * lt - self.a * (n - le))
        return np.asarray([int(self.measurement(row.tolist())) for row in scores], dtype=np.int64)


@dataclass
class CompiledDP:
    """A DP plan ready to run: what to ask the engine, and how to noise and finish it."""

    plan: P.Plan
    protection: DP
    group_columns: tuple[str, ...]
    keys: tuple[tuple[Any, ...], ...]
    measures: list[Measure]  # exact aggregates asked of the engine
    derived: dict[str, list[tuple[str, int]]]  # measurement key → Σ coef · engine measure
    per_row: dict[str, int]  # measurement key → max |contribution| of one row
    scales: dict[str, float]  # integer-unit Laplace scale per measurement key
    outputs: list[_Output]
    contribution: int
    bounding: Bounding | None
    rows_key: str | None
    min_group_size: int | None
    epsilon_each: float
    cost: Cost
    noise_draws: int = 1  # independent Laplace draws summed per cell (federated: one per holder)
    # unknown keys: groups are selected by a thresholded noisy count (costs δ)
    unknown: tuple[bool, ...] = ()  # per group column: keys not public
    threshold: Any = None  # OpenDP's Laplace-threshold measurement, when unknown
    selected: list[tuple[Any, ...]] | None = None  # the cells released, once selected
    quantiles: list["_Quantile"] = field(default_factory=list)
    noise_kind: str = "laplace"  # "laplace" (scales are Laplace scales) or "gaussian" (σ)
    sampler: str = "opendp"  # "opendp" or "fast" (pets.dp.fast: exact Laplace, TV-bounded Gaussian)
    zdelta: float | None = None  # approximate-zCDP δ' of the release (None: cost.delta)
    rho_each: float = 0.0  # Gaussian: ρ per measurement

    def _one_half_width(self, key: str, level: float) -> int:
        if self.noise_kind == "gaussian":
            return gaussian_half_width(self.scales[key], level)
        return laplace_half_width(self.scales[key], level)
    # measurement key → the share it is noised in jointly (a histogram's bins: one ε share)
    shares: dict[str, str] = field(default_factory=dict)
    # per group column: the CASE the engine computes for it (None: a plain column)
    group_exprs: tuple[Any, ...] = ()
    # engine measure or measurement key → the largest |exact value| it can have in one
    # cell (≤ EXACT_LIMIT), from the bounds and the policy's max_rows only
    value_bounds: dict[str, int] = field(default_factory=dict)
    # unknown keys: the threshold T a group's noisy row count must reach to be released
    threshold_value: int | None = None

    def selected_interval(self, values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """A ``level`` interval for the exact row count of each *released* group with
        unknown keys, valid conditionally on the group having been released.

        The released count y = x + Z passed the threshold T, which biases it upward
        near T: the plain interval y ± h covered a group just below T almost never.
        With α = 1 − level: the upper end is y + h(level) (P(Z < −h) ≤ α/2, and
        conditioning on the upper set {y ≥ T} can only lower that); the lower end is
        y − h(1 − α/2) (P(Z > h) ≤ α/4 ≤ P(Z ≥ 0)·α/2 for x ≥ T) where
        y ≥ T + 1 + k, and 0 below, with k = :func:`selection_margin` (α/2): for x < T
        the released y reaches T + 1 + k with conditional probability ≤ α/2 (the noise
        is log-concave). Each end misses with conditional probability ≤ α/2, whatever x."""
        assert self.threshold_value is not None and self.rows_key is not None
        alpha = 1.0 - level
        h_hi = self._one_half_width(self.rows_key, level)
        h_lo = self._one_half_width(self.rows_key, 1.0 - alpha / 2.0)
        k = selection_margin(self.noise_kind, self.scales[self.rows_key], alpha / 2.0)
        v = values.astype(np.float64)
        informative = values >= self.threshold_value + 1 + k
        lo = np.where(informative, np.maximum(v - h_lo, 0.0), 0.0)
        return lo, v + h_hi

    def half_width(self, key: str, level: float) -> float:
        """Half-width (integer units) of a ``level`` interval for measurement ``key``'s noise.

        One draw: the exact discrete Laplace (or discrete Gaussian) quantile. A sum of H
        independent draws: a union bound, H · (the one-draw half-width at level
        1 − (1 − level)/H)."""
        h = self.noise_draws
        if h == 1:
            return float(self._one_half_width(key, level))
        return float(h * self._one_half_width(key, 1.0 - (1.0 - level) / h))

    @property
    def cells(self) -> int:
        if self.selected is not None:
            return len(self.selected)
        return math.prod(len(k) for k in self.keys)  # Python ints: no 64-bit wrap

    def _combos(self) -> list[tuple[Any, ...]]:
        if self.selected is not None:
            return self.selected
        return list(itertools.product(*self.keys))

    def request(self) -> AggregateRequest:
        return AggregateRequest(
            filters=self.plan.filters,
            group_columns=self.group_columns,
            group_keys=self.keys,
            measures=tuple(self.measures),
            bounding=self.bounding,
            group_exprs=self.group_exprs,
        )

    # -- accuracy before running ---------------------------------------------------
    def output_scales(self) -> dict[str, float]:
        """Noise scale per output in its own units (for a mean or variance: of its sum)."""
        out = {}
        for o in self.outputs:
            if o.agg.kind in ("count", "count_distinct"):
                out[o.agg.name] = self.scales[o.keys["count"]]
            elif o.agg.kind == "histogram":
                out[o.agg.name] = self.scales[o.keys["bin0"]]  # every bin has this scale
            elif o.agg.kind == "quantile":
                out[o.agg.name] = self._quantile(o).scale  # of the score's noise
            else:
                out[o.agg.name] = self.scales[o.keys["sum"]] / o.factor
        return out

    def _quantile(self, o: "_Output") -> "_Quantile":
        return next(q for q in self.quantiles if q.key == o.keys["q"])

    def ci_half_widths(self, level: float = 0.95) -> dict[str, float | None]:
        """Half-width of the ``level`` interval per output; None where it depends on
        the data (means and variances depend on the group's size)."""
        out: dict[str, float | None] = {}
        for o in self.outputs:
            if o.agg.kind in ("count", "count_distinct"):
                out[o.agg.name] = self.half_width(o.keys["count"], level)
            elif o.agg.kind == "histogram":  # per bin
                out[o.agg.name] = self.half_width(o.keys["bin0"], level)
            elif o.agg.kind == "sum":
                out[o.agg.name] = self.half_width(o.keys["sum"], level) / o.factor
            else:
                out[o.agg.name] = None  # data-dependent (means, variances) or none (quantiles)
        return out

    def details(self) -> pd.DataFrame:
        rows = []
        hw = self.ci_half_widths(0.95)
        sc = self.output_scales()
        for o in self.outputs:
            parts = 1 if o.agg.kind == "quantile" else len({self.shares.get(k, k)
                                                              for k in o.keys.values()})
            row = {
                "aggregate": o.agg.name,
                "kind": o.agg.kind,
                "column": o.agg.column if o.agg.expr is None else P.expr_text(o.agg.expr),
                "bounds": (None if o.agg.kind in ("count", "count_distinct") else
                           (o.lower, o.upper)),
                "epsilon": self.epsilon_each * parts,
                "noise": self.noise_kind,
                "noise_scale": sc[o.agg.name],
                "ci95_half_width": hw[o.agg.name],
            }
            if o.agg.kind in ("mean", "variance"):
                # what a mean's expected error at a group size needs (Explanation.
                # expected_error): the 95% half-widths of its count and centred sum at
                # the union-bound level its interval uses, and half the bounds' range
                lvl = 1.0 - 0.05 / len(set(o.keys.values()))
                row["count_half_width95"] = self.half_width(o.keys["count"], lvl)
                row["sum_half_width95"] = self.half_width(o.keys["sum"], lvl) / o.factor
            if o.agg.kind == "quantile":  # accuracy of a chosen candidate: in rows
                qt = self._quantile(o)
                row["rank_error95"] = qt.rank_error(0.95)
                row["q"] = o.agg.q
                row["step"] = (float(np.max(np.diff(qt.candidates.astype(np.float64))))
                               if len(qt.candidates) > 1 else 0.0)
            if self.noise_kind == "gaussian":  # each output's share of ρ (ε above: its
                row["epsilon"] = None  # share of the release's ε is not defined)
                row["rho"] = self.rho_each * parts
            rows.append(row)
        return pd.DataFrame(rows)

    # -- running -------------------------------------------------------------------
    def cell_columns(self) -> dict[str, np.ndarray]:
        """The group columns of the released cells, as arrays (see :meth:`cell_frame`)."""
        if not self.group_columns:
            return {}
        if self.selected is not None:
            cols = {}
            for j, name in enumerate(self.group_columns):
                arr = np.empty(len(self.selected), dtype=object)
                arr[:] = [g[j] for g in self.selected]
                cols[name] = arr
            return cols
        return _product_columns(self.group_columns, self.keys)

    def cell_frame(self) -> pd.DataFrame:
        if not self.group_columns:
            return pd.DataFrame(index=[0])
        if self.selected is not None:
            return pd.DataFrame(self.selected, columns=list(self.group_columns))
        return pd.DataFrame(self.cell_columns())

    def exact_vectors(self, exact: "pd.DataFrame | dict[str, np.ndarray]") -> dict[str, np.ndarray]:
        """The exact integer value of each measurement in every public cell: the
        engine's rows (groups present; groups outside the keys are ignored) aligned to
        the cells, 0 where a key is absent from the data. ``exact`` is the engine's
        table, as a DataFrame or as one array per column (``aggregate_columns``)."""
        n = self.cells
        vec = {m.key: np.zeros(n, dtype=np.int64) for m in self.measures}
        group, measure, rows = _exact_columns(exact)
        if rows > 0 and not self.group_columns:
            for m in self.measures:
                vec[m.key][0] = int(measure(m.key)[0])
        elif rows > 0 and self.selected is None:
            # the cell of each engine row: mixed-radix position of its keys' indices
            positions = np.zeros(rows, dtype=np.int64)
            ok = np.ones(rows, dtype=bool)
            for c, k in zip(self.group_columns, self.keys):
                vals = group(c)
                if len(vals) <= _DICT_LOOKUP:  # few rows: a dict beats building an index
                    pos = _key_positions(k)
                    idx = np.fromiter((_lookup(pos, v) for v in vals), dtype=np.int64, count=len(vals))
                else:
                    idx = _key_index(k).get_indexer(vals)
                ok &= idx >= 0
                positions = positions * len(k) + idx
            for m in self.measures:
                vec[m.key][positions[ok]] = measure(m.key)[ok]
        elif rows > 0:
            index = {combo: i for i, combo in enumerate(self._combos())}
            gvals = [group(c).tolist() for c in self.group_columns]
            positions = np.fromiter(
                (index.get(tuple(t), -1) for t in zip(*gvals)), dtype=np.int64, count=rows
            )
            ok = positions >= 0
            for m in self.measures:
                vec[m.key][positions[ok]] = measure(m.key)[ok]
        self._engine_vec = vec
        out = {}
        for key, parts in self.derived.items():
            acc = np.zeros(n, dtype=np.int64)
            for engine_key, coef in parts:
                acc += coef * vec[engine_key]
            out[key] = acc
        return out

    def noise(self, exact: "pd.DataFrame | dict[str, np.ndarray]") -> "NoisyResult":
        released_counts = None
        if self.threshold is not None:
            released_counts = self._select(exact if isinstance(exact, pd.DataFrame)
                                           else pd.DataFrame(exact))
        vec = self.exact_vectors(exact)
        add = {
            ("laplace", "opendp"): add_discrete_laplace,
            ("gaussian", "opendp"): add_discrete_gaussian,
            ("laplace", "fast"): fast.add_discrete_laplace,
            ("gaussian", "fast"): lambda v, s: v + fast.discrete_gaussian(s, len(v)),
        }[(self.noise_kind, self.sampler)]
        noisy = {
            k: add(v, self.scales[k])
            for k, v in vec.items()
            if not (released_counts is not None and k == self.rows_key)
        }
        if released_counts is not None:
            noisy[self.rows_key] = released_counts  # type: ignore[index]
        for qt in self.quantiles:
            noisy[qt.key] = qt.choose(self._engine_vec)
        return NoisyResult(self, noisy)

    def _select(self, exact: pd.DataFrame) -> np.ndarray:
        """Unknown keys: release the groups whose noisy row count passes OpenDP's
        Laplace threshold (propose-test-release, Rogers 2023); their noisy counts are the
        released counts. Sets ``selected``."""
        import json

        rows_engine = [key for key, coef in self.derived[self.rows_key]][0]  # type: ignore[index]
        counts: dict[str, int] = {}
        allowed = [set(k) if not u else None for k, u in zip(self.keys, self.unknown)]
        g = len(self.group_columns)
        for row in exact.itertuples(index=False):
            combo = tuple(row[:g])
            if any(v is None or (isinstance(v, float) and v != v) for v in combo):
                continue  # a missing key is no group
            if any(a is not None and c not in a for a, c in zip(allowed, combo)):
                continue
            counts[json.dumps([_plain(c) for c in combo])] = int(row[list(exact.columns).index(rows_engine)])
        out = self.threshold(counts) if counts else {}
        # the released keys in their natural order: numbers numerically (2 before 10),
        # then text (post-processing of what the threshold released)
        chosen = sorted(((tuple(json.loads(k)), v) for k, v in out.items()),
                        key=lambda kv: tuple(_natural(x) for x in kv[0]))
        self.selected = [k for k, _ in chosen]
        return np.asarray([v for _, v in chosen], dtype=np.int64)


def _exact_columns(exact: "pd.DataFrame | dict[str, np.ndarray]") -> tuple[
        Callable[[str], np.ndarray], Callable[[str], np.ndarray], int]:
    """(a group column as an object array, a measure as int64, the number of rows) of
    an engine's table given as a DataFrame or as one array per column."""
    if isinstance(exact, pd.DataFrame):
        return (lambda c: exact[c].to_numpy(dtype=object),
                lambda k: exact[k].to_numpy(dtype=np.int64), len(exact))
    rows = len(next(iter(exact.values()))) if exact else 0

    def group(c: str) -> np.ndarray:
        a = exact[c]
        if a.dtype.kind in "mM":  # dates and times: as pandas gives them (Timestamps)
            return pd.Series(a).to_numpy(dtype=object)
        return np.asarray(a, dtype=object)

    return group, lambda k: np.asarray(exact[k], dtype=np.int64), rows


#: public cells up to which a release's key columns are kept for the next release
_CELL_SERIES_MAX = 4096


def _cell_series(c: CompiledDP) -> dict[str, Any]:
    """The key columns of a release over public keys, as :meth:`CompiledDP.cell_columns`
    (as pandas Series, their dtype inferred once): the same keys give the same columns,
    so small ones are kept (a DataFrame built from them copies them, or under pandas'
    copy-on-write copies them on a change)."""
    if c.cells > _CELL_SERIES_MAX:
        return c.cell_columns()
    return dict(_cell_series_of(c.group_columns, c.keys))


#: Frames of a release are built without copying their columns where pandas copies on
#: write (pandas 3: the cached key Series below, and the fresh value arrays, can never be
#: changed through the frame); pandas 2 copies them as before.
_SHARE: dict[str, Any] = {"copy": False} if int(pd.__version__.split(".")[0]) >= 3 else {}


@lru_cache(maxsize=256)
def _cell_series_of(group_columns: tuple[str, ...],
                    keys: tuple[tuple[Any, ...], ...]) -> tuple[tuple[str, pd.Series], ...]:
    return tuple((name, pd.Series(arr))
                 for name, arr in _product_columns(group_columns, keys).items())


def _repeated_cells(c: CompiledDP, k: int) -> dict[str, Any]:
    """The group columns of the released cells repeated ``k`` times (one block per
    output), each of length ``k * c.cells``, for a frame indexed 0..k*cells-1: the cached
    key Series (:func:`_cell_series`) when the keys are public, taken without leaving
    their dtype's storage (no conversion of Python objects per release)."""
    if not c.group_columns:
        return {}
    if c.selected is not None or c.cells > _CELL_SERIES_MAX:
        base = c.cell_frame()
        n = len(base)
        tiled = base.iloc[np.tile(np.arange(n), k)].reset_index(drop=True)
        return {g: tiled[g] for g in c.group_columns}
    series = dict(_cell_series_of(c.group_columns, c.keys))
    if k == 1:  # the Series' own RangeIndex is the frame's: aligned as it is
        return series
    idx = np.tile(np.arange(c.cells), k)
    return {g: s.array.take(idx) for g, s in series.items()}


@lru_cache(maxsize=256)
def _names_series(names: tuple[str, ...], n: int) -> pd.Series:
    """The ``aggregate`` column of an interval frame: each output's name ``n`` times
    (its dtype inferred once; the same outputs and cells give the same column)."""
    arr = np.empty(len(names), dtype=object)
    arr[:] = list(names)
    return pd.Series(np.repeat(arr, n))


def _product_columns(group_columns: tuple[str, ...],
                     keys: tuple[tuple[Any, ...], ...]) -> dict[str, np.ndarray]:
    """The product of the public keys in row-major order (as itertools.product), built
    column by column: repeat each key for the cells after it, tile for those before."""
    sizes = [len(k) for k in keys]
    cols = {}
    for j, (name, k) in enumerate(zip(group_columns, keys)):
        after = math.prod(sizes[j + 1:])
        before = math.prod(sizes[:j])
        arr = np.empty(len(k), dtype=object)
        arr[:] = list(k)
        cols[name] = np.tile(np.repeat(arr, after), before)
    return cols


def _natural(x: Any) -> tuple[int, float, str]:
    """Sort key of a released group key: numbers by value before text."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return (0, float(x), "")
    return (1, 0.0, str(x))


@dataclass
class NoisyResult:
    compiled: CompiledDP
    noisy: dict[str, np.ndarray]  # integer-unit noisy measures (already private)
    suppressed: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        c = self.compiled
        h = _histogram_of(c)
        if h is not None:  # per (cell, bin): a bin below the minimum group size is withheld
            vals = self._bins(h)
            self.suppressed = (vals < c.min_group_size if c.min_group_size is not None
                               else np.zeros(vals.shape, dtype=bool))
        elif c.min_group_size is not None and c.rows_key is not None:
            self.suppressed = self.noisy[c.rows_key] < c.min_group_size
        else:
            self.suppressed = np.zeros(c.cells, dtype=bool)

    def _bins(self, o: _Output) -> np.ndarray:
        """The noisy bin counts in long order: cell by cell, bins in order within a cell."""
        n = self.compiled.cells
        cols = [self.noisy[o.keys[f"bin{i}"]] for i in range(len(o.labels))]
        return np.stack(cols, axis=1).reshape(-1) if n else np.zeros(0, dtype=np.int64)

    def _long_frame(self, o: _Output) -> pd.DataFrame:
        """The group columns, then the bin label (a column named after the histogram's
        column), one row per (cell, bin)."""
        base = self.compiled.cell_frame()
        nb = len(o.labels)
        df = base.loc[base.index.repeat(nb)].reset_index(drop=True)
        df[o.agg.column] = list(o.labels) * len(base)
        return df

    def values(self) -> pd.DataFrame:
        c = self.compiled
        h = _histogram_of(c)
        if h is not None:
            df = self._long_frame(h)
            df[h.agg.name] = self._bins(h)
            if self.suppressed.any():  # counts stay integers: a withheld bin is <NA>
                df[h.agg.name] = df[h.agg.name].astype("Int64")
                df.loc[self.suppressed, h.agg.name] = pd.NA
            return df
        if c.group_columns and c.selected is None:  # one frame, built once
            df = pd.DataFrame({**_cell_series(c), **{o.agg.name: self._value(o) for o in c.outputs}},
                              **_SHARE)
        else:
            df = c.cell_frame()
            for o in c.outputs:
                df[o.agg.name] = self._value(o)
        if self.suppressed.any():
            for o in c.outputs:
                counted = o.agg.kind in ("count", "count_distinct")
                df[o.agg.name] = df[o.agg.name].astype("Int64" if counted else "float64")
                df.loc[self.suppressed, o.agg.name] = pd.NA if counted else np.nan
        if not c.group_columns:
            df = df.reset_index(drop=True)
        return df

    def _value(self, o: _Output) -> np.ndarray:
        nz = self.noisy
        if o.agg.kind in ("count", "count_distinct"):
            return nz[o.keys["count"]].copy()
        if o.agg.kind == "quantile":
            return self.compiled._quantile(o).candidates[nz[o.keys["q"]]]
        if o.agg.kind == "sum":
            s = nz[o.keys["sum"]]
            return s.copy() if o.factor == 1 else s / o.factor
        n = np.maximum(nz[o.keys["count"]], 1).astype(np.float64)
        s = nz[o.keys["sum"]] / o.factor
        mid = o.center / o.factor
        if o.agg.kind == "mean":
            return np.clip(mid + s / n, o.lower, o.upper)
        q = nz[o.keys["sumsq"]] / (o.factor * o.factor)
        var = np.clip(q / n - (s / n) ** 2, 0.0, ((o.upper - o.lower) / 2.0) ** 2)
        return np.sqrt(var) if o.agg.kind == "stddev" else var

    def ci(self, level: float = 0.95) -> pd.DataFrame:
        """Per released cell: the value and an interval that covers the exact (clamped,
        pre-noise) statistic with probability ≥ ``level`` (union bound for ratios).

        With public keys every cell is released whatever its noise, and the coverage
        holds per cell. With unknown keys (groups released when their noisy row count
        passes a threshold, δ > 0) the coverage holds per released cell *conditionally
        on its release*: the row count's interval is asymmetric — its upper end is the
        usual one, its lower end is wider, and 0 for a count within a margin of the
        threshold, where a released count says little about how far below the
        threshold the group's exact count might be (:meth:`CompiledDP.selected_interval`).
        The other outputs' noise is independent of the selection, so their intervals
        are unchanged and hold conditionally too."""
        level = check_level(level)
        c = self.compiled
        h = _histogram_of(c)
        if h is not None:  # per (cell, bin), the exact discrete Laplace half-width
            f = self._long_frame(h)
            f["aggregate"] = h.agg.name
            v = self._bins(h).astype(np.float64)
            hw = c.half_width(h.keys["bin0"], level)
            f["value"], f["lower"], f["upper"] = v, v - hw, v + hw
            if self.suppressed.any():
                f.loc[self.suppressed, ["value", "lower", "upper"]] = np.nan
            return f
        # one frame: the cells repeated once per output, then the outputs' columns
        n, k = c.cells, len(c.outputs)
        return pd.DataFrame({**_repeated_cells(c, k), **self._ci_columns(level)},
                            index=pd.RangeIndex(n * k), **_SHARE)

    def ci_parts(self, level: float) -> tuple[dict[str, pd.Series], int, dict[str, Any]] | None:
        """:meth:`ci`'s table before a frame is built (for the wire, which writes the
        columns as they are): ``(cells, k, columns)`` — the cells' group columns once
        (each repeated ``k`` times in the table, once per output), then the
        ``aggregate``, ``value``, ``lower``, ``upper`` columns of the whole table. None
        where the table is built otherwise (a histogram, unknown keys, many cells)."""
        c = self.compiled
        if (_histogram_of(c) is not None or c.selected is not None
                or c.cells * len(c.outputs) > _CELL_SERIES_MAX):
            return None
        cells = dict(_cell_series_of(c.group_columns, c.keys)) if c.group_columns else {}
        return cells, len(c.outputs), self._ci_columns(check_level(level))

    def _ci_columns(self, level: float) -> dict[str, Any]:
        """The interval table's ``aggregate``, ``value``, ``lower`` and ``upper`` columns:
        each output's block of cells in turn; NaN where a cell is withheld."""
        c = self.compiled
        n, k = c.cells, len(c.outputs)
        names = tuple(o.agg.name for o in c.outputs)
        ends = [self._interval(o, level) for o in c.outputs]
        cols = {
            "aggregate": (_names_series(names, n) if n * k <= _CELL_SERIES_MAX
                          else _names_series.__wrapped__(names, n)),
            "value": np.concatenate([self._value(o).astype(np.float64) for o in c.outputs]),
            "lower": np.concatenate([np.asarray(lo, dtype=np.float64) for lo, _ in ends]),
            "upper": np.concatenate([np.asarray(hi, dtype=np.float64) for _, hi in ends]),
        }
        if self.suppressed.any():
            gone = np.tile(self.suppressed, k)
            for name in ("value", "lower", "upper"):
                cols[name][gone] = np.nan
        return cols

    def _interval(self, o: _Output, level: float) -> tuple[np.ndarray, np.ndarray]:
        nz, hw = self.noisy, self.compiled.half_width
        if o.agg.kind == "quantile":  # no interval is reported for a chosen candidate
            nan = np.full(self.compiled.cells, np.nan)
            return nan, nan
        c = self.compiled
        if (o.agg.kind in ("count", "count_distinct") and c.threshold_value is not None
                and o.keys["count"] == c.rows_key and c.noise_draws == 1):
            # the thresholded row count: its noise decided the release (selected_interval)
            return c.selected_interval(nz[o.keys["count"]], level)
        if o.agg.kind in ("count", "count_distinct", "sum"):
            k = o.keys["sum"] if o.agg.kind == "sum" else o.keys["count"]
            h = hw(k, level)
            v = nz[k].astype(np.float64)
            return (v - h) / o.factor, (v + h) / o.factor
        parts = len(set(o.keys.values()))
        lvl = 1.0 - (1.0 - level) / parts  # union bound over the measurements used
        hc = hw(o.keys["count"], lvl)
        hs = hw(o.keys["sum"], lvl)
        n_lo = nz[o.keys["count"]] - hc
        n_hi = np.maximum(nz[o.keys["count"]] + hc, 1)
        s_lo = (nz[o.keys["sum"]] - hs) / o.factor
        s_hi = (nz[o.keys["sum"]] + hs) / o.factor
        valid = n_lo >= 1
        n_lo_safe = np.maximum(n_lo, 1).astype(np.float64)
        ratios = np.stack([s_lo / n_lo_safe, s_lo / n_hi, s_hi / n_lo_safe, s_hi / n_hi])
        r_lo, r_hi = ratios.min(axis=0), ratios.max(axis=0)
        mid = o.center / o.factor
        if o.agg.kind == "mean":
            lo = np.where(valid, np.clip(mid + r_lo, o.lower, o.upper), o.lower)
            hi = np.where(valid, np.clip(mid + r_hi, o.lower, o.upper), o.upper)
            return lo, hi
        hq = hw(o.keys["sumsq"], lvl)
        q_lo = np.maximum(nz[o.keys["sumsq"]] - hq, 0) / (o.factor * o.factor)
        q_hi = (nz[o.keys["sumsq"]] + hq) / (o.factor * o.factor)
        sq_min = np.where((r_lo <= 0) & (r_hi >= 0), 0.0, np.minimum(r_lo**2, r_hi**2))
        sq_max = np.maximum(r_lo**2, r_hi**2)
        vmax = ((o.upper - o.lower) / 2.0) ** 2
        lo = np.where(valid, np.clip(q_lo / n_hi - sq_max, 0.0, vmax), 0.0)
        hi = np.where(valid, np.clip(q_hi / n_lo_safe - sq_min, 0.0, vmax), vmax)
        if o.agg.kind == "stddev":  # sqrt is increasing: the interval maps end to end
            return np.sqrt(lo), np.sqrt(hi)
        return lo, hi


#: Up to this many engine rows, cells are found by dict lookup (same matching as
#: :func:`_key_index`: Python's ==, so 1 == 1.0 == True); beyond, by a pandas index.
_DICT_LOOKUP = 256


@lru_cache(maxsize=1024)
def _key_positions(keys: tuple[Any, ...]) -> dict[Any, int]:
    """Public key → its position (the first, as ``Index.get_indexer`` gives)."""
    out: dict[Any, int] = {}
    for i, k in enumerate(keys):
        out.setdefault(_plain(k), i)
    return out


def _lookup(pos: dict[Any, int], v: Any) -> int:
    try:
        return pos.get(v, -1)
    except TypeError:  # an unhashable value is no public key
        return -1


def _key_index(keys: tuple[Any, ...]) -> pd.Index:
    """An index of public keys for vectorised lookup, matching as Python's == does
    (1 == 1.0 == True): numbers by value, strings as strings."""
    vals = [_plain(k) for k in keys]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return pd.Index(np.asarray(vals, dtype=np.float64))
    return pd.Index(np.asarray(vals, dtype=object))


def _histogram_of(c: CompiledDP) -> _Output | None:
    """The histogram output of a compiled plan (it is then the only output), or None."""
    if len(c.outputs) == 1 and c.outputs[0].agg.kind == "histogram":
        return c.outputs[0]
    return None


def _edge_label(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def histogram_edges(agg: P.Aggregation, policy: Policy) -> tuple[float, ...]:
    """The bin edges of a histogram: as given, or ``bins`` equal-width bins over its
    bounds (the query's, else the policy's)."""
    if isinstance(agg.bins, tuple):
        return tuple(agg.bins)
    assert isinstance(agg.bins, int) and agg.column is not None
    bounds = agg.bounds if agg.bounds is not None else policy.columns[agg.column].bounds
    if bounds is None:
        raise QueryError(
            f"histogram({agg.column!r}, bins={agg.bins}) needs bounds for its equal-width bins: "
            "pass bounds=(lower, upper), give the edges as a list, or have the holder declare "
            f"them in the policy ([columns.{agg.column}] bounds = [lower, upper])"
        )
    lo, hi = bounds[0], bounds[1]
    n = agg.bins
    if all(isinstance(v, int) for v in (lo, hi)) and (hi - lo) % n == 0:
        step = (hi - lo) // n
        return tuple(lo + i * step for i in range(n + 1))
    # 12 significant digits: edges that read as their labels (0.3, not 0.30000000000000004)
    inner = [float(f"{lo + (hi - lo) * i / n:.12g}") for i in range(1, n)]
    edges = tuple([float(lo)] + inner + [float(hi)])
    if any(not a < b for a, b in itertools.pairwise(edges)):
        raise QueryError(
            f"histogram({agg.column!r}): {n} bins over ({lo}, {hi}) are too narrow to tell "
            "their edges apart; ask for fewer bins"
        )
    return edges


def _bin_labels(edges: tuple[float, ...]) -> tuple[str, ...]:
    last = len(edges) - 2
    return tuple(
        f"[{_edge_label(a)}, {_edge_label(b)}{']' if i == last else ')'}"
        for i, (a, b) in enumerate(itertools.pairwise(edges))
    )


def _plain(v: Any) -> Any:
    item = getattr(v, "item", None)
    return item() if callable(item) else v


def _max_abs_rounded(lo: float, hi: float, center: int) -> int:
    """Largest |round(y) − center| for y in [lo, hi], whichever way the engine rounds ties."""
    ends = (math.floor(lo), math.ceil(lo), math.floor(hi), math.ceil(hi))
    return int(max(abs(e - center) for e in ends))


def _round_half_away(x: float) -> int:
    """Round half away from zero, as DuckDB's round() does (Python's round() does not)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _numeric(t: str) -> bool:
    return t in ("int", "float")


def _check_keys(column: str, keys: tuple[Any, ...], ctype: str) -> None:
    for k in keys:
        if k is None:
            raise QueryError(f"a key of group-by column {column!r} is None; keys must be values")
        if _numeric(ctype) and (isinstance(k, bool) or not isinstance(k, (int, float))):
            raise QueryError(
                f"group-by column {column!r} is numeric but a key is a {type(k).__name__}; "
                "give numbers as keys"
            )
        if ctype == "str" and not isinstance(k, str):
            raise QueryError(
                f"group-by column {column!r} holds text but a key is a {type(k).__name__}; "
                "give strings as keys"
            )


# --------------------------------------------------------------------------- compiling
#
# compile_dp orchestrates; each aggregation kind has a small compiler registered in
# _AGGREGATIONS that asks the _Builder for the exact aggregates and noisy measurements
# it needs and appends its output.


@dataclass
class _Builder:
    """What compiling a plan's aggregations collects: the exact aggregates asked of the
    engine (shared between outputs), the noisy measurements derived from them, and the
    outputs that finish them."""

    policy: Policy
    schema: dict[str, str]
    engine: dict[tuple[Any, ...], Measure] = field(default_factory=dict)
    # engine measure key → the largest |value| one row adds to it (for overflow checks)
    engine_per_row: dict[str, int] = field(default_factory=dict)
    derived: dict[tuple[Any, ...], tuple[str, list[tuple[str, int]]]] = field(default_factory=dict)
    per_row: dict[str, int] = field(default_factory=dict)
    person_keys: set[str] = field(default_factory=set)
    shares: dict[str, str] = field(default_factory=dict)
    outputs: list[_Output] = field(default_factory=list)
    quantile_specs: list[dict[str, Any]] = field(default_factory=list)

    def ask(self, kind: str, column: Any = None, lo: float = 0.0, hi: float = 0.0,
            factor: int = 1, center: int = 0, threshold: float = 0.0) -> str:
        """An exact aggregate asked of the engine (shared between outputs)."""
        ident = (kind, column, lo, hi, factor, center, threshold)
        if ident not in self.engine:
            key = f"__pets_e{len(self.engine)}"  # never a data column (reserved prefix)
            if isinstance(column, _Value):  # an expression, its columns clamped first
                m = Measure(key, kind, None, lo, hi, factor, center, threshold,
                            expr=column.expr, clamps=column.clamps)
            else:
                m = Measure(key, kind, column, lo, hi, factor, center, threshold)
            self.engine[ident] = m
            if kind == "sum":  # Σ round(clamp(x)·F), uncentred
                self.engine_per_row[key] = _max_abs_rounded(lo * factor, hi * factor, 0)
            elif kind == "sumsq":  # Σ (round(clamp(x)·F) − c)²
                self.engine_per_row[key] = _max_abs_rounded(lo * factor, hi * factor, center) ** 2
            else:  # counts of rows, values, distinct values, bins, rows below a candidate
                self.engine_per_row[key] = 1
        return self.engine[ident].key

    def measure(self, kind: str, column: Any = None, lo: float = 0.0, hi: float = 0.0,
                factor: int = 1, center: int = 0) -> str:
        """A noisy measurement: its exact value as Σ coef · engine aggregate, and the
        largest absolute contribution of one row."""
        ident = (kind, column, lo, hi, factor, center)
        if ident in self.derived:
            return self.derived[ident][0]
        key = f"m{len(self.derived)}"
        if kind in ("rows", "present", "distinct"):
            parts = [(self.ask(kind, column), 1)]
            bound = 1
        elif kind == "persons":  # distinct persons; its sensitivity is set by the caller
            parts = [(self.ask("distinct", self.policy.privacy_unit), 1)]
            bound = 1
            self.person_keys.add(key)
        elif kind in ("range", "range_closed"):  # rows with lo <= x < hi (<= hi: closed)
            parts = [(self.ask(kind, column, lo, hi), 1)]
            bound = 1
        elif kind == "sum":  # Σ (v − c) = Σ v − c · (number of present values)
            parts = [(self.ask("sum", column, lo, hi, factor), 1)]
            if center:
                parts.append((self.ask("present", _presence(column)), -center))
            bound = _max_abs_rounded(lo * factor, hi * factor, center)
        else:  # sumsq, centred in the engine
            parts = [(self.ask("sumsq", column, lo, hi, factor, center), 1)]
            bound = _max_abs_rounded(lo * factor, hi * factor, center) ** 2
        self.derived[ident] = (key, parts)
        self.per_row[key] = max(1, bound)
        return key


_Compiler = Callable[[_Builder, P.Aggregation], None]
#: aggregation kind → its compiler (every kind of ``pets.plan.AGG_KINDS`` has one)
_AGGREGATIONS: dict[str, _Compiler] = {}


def _aggregation(kind: str) -> Callable[[_Compiler], _Compiler]:
    def register(fn: _Compiler) -> _Compiler:
        _AGGREGATIONS[kind] = fn
        return fn
    return register


@_aggregation("count")
def _compile_count(b: _Builder, a: P.Aggregation) -> None:
    if a.expr is not None:  # rows where the expression is present
        ck = b.measure("present", _Value(a.expr))
    else:
        ck = b.measure("rows") if a.column is None else b.measure("present", a.column)
    b.outputs.append(_Output(a, {"count": ck}))


@_aggregation("count_distinct")
def _compile_count_distinct(b: _Builder, a: P.Aggregation) -> None:
    if a.column is not None and a.column != b.policy.privacy_unit:
        ck = b.measure("distinct", a.column)
    else:  # distinct persons; without a privacy unit every row is a person
        ck = b.measure("persons") if b.policy.privacy_unit is not None else b.measure("rows")
    b.outputs.append(_Output(a, {"count": ck}))


def _numeric_column(b: _Builder, a: P.Aggregation) -> str:
    assert a.column is not None
    ctype = b.schema[a.column]
    if not _numeric(ctype):
        raise QueryError(
            f"{a.kind}({a.column!r}) needs a numeric column; {a.column!r} holds {ctype} values"
        )
    return ctype


@_aggregation("histogram")
def _compile_histogram(b: _Builder, a: P.Aggregation) -> None:
    """B bins, one measurement (one ε share)."""
    _numeric_column(b, a)
    edges = histogram_edges(a, b.policy)
    last = len(edges) - 2
    bins = {}
    for i, (lo_e, hi_e) in enumerate(itertools.pairwise(edges)):
        bk = b.measure("range_closed" if i == last else "range", a.column,
                       float(lo_e), float(hi_e))
        b.shares[bk] = f"h:{a.name}"
        bins[f"bin{i}"] = bk
    b.outputs.append(_Output(a, bins, 1, 0, float(edges[0]), float(edges[-1]),
                             _bin_labels(edges)))


def _bounded_value(b: _Builder, a: P.Aggregation) -> tuple[Any, float, float, str]:
    """What a sum / mean / variance / quantile aggregates (a column or a _Value), its
    bounds and its type."""
    if a.expr is not None:
        return _expression_value(a, b.policy, b.schema)
    ctype = _numeric_column(b, a)
    assert a.column is not None
    bounds = a.bounds if a.bounds is not None else b.policy.columns[a.column].bounds
    if bounds is None:
        raise QueryError(
            f"{a.kind}({a.column!r}) needs bounds: pass bounds=(lower, upper) or have the "
            f"holder declare them in the policy ([columns.{a.column}] bounds = [lower, upper])"
        )
    return a.column, float(bounds[0]), float(bounds[1]), ctype


@_aggregation("quantile")
def _compile_quantile(b: _Builder, a: P.Aggregation) -> None:
    ref, lo, hi, _ = _bounded_value(b, a)
    cands = np.linspace(lo, hi, QUANTILE_CANDIDATES)
    qkey = f"q{len(b.quantile_specs)}"
    b.quantile_specs.append(dict(
        key=qkey, candidates=cands,
        lt=[b.ask("lt", ref, lo, hi, threshold=float(c)) for c in cands],
        le=[b.ask("le", ref, lo, hi, threshold=float(c)) for c in cands],
        present=b.ask("present", _presence(ref)), q=float(a.q),  # type: ignore[arg-type]
    ))
    b.outputs.append(_Output(a, {"q": qkey}, 1, 0, lo, hi))


@_aggregation("sum")
def _compile_sum(b: _Builder, a: P.Aggregation) -> None:
    ref, lo, hi, ctype = _bounded_value(b, a)
    f = sum_factor(lo, hi, ctype, b.policy.row_limit)
    b.outputs.append(_Output(a, {"sum": b.measure("sum", ref, lo, hi, f, 0)}, f, 0, lo, hi))


def _compile_moments(b: _Builder, a: P.Aggregation, f: int, ref: Any, lo: float,
                     hi: float) -> None:
    """A mean (count and centred sum) or variance (and the centred sum of squares)."""
    center = _round_half_away((lo + hi) / 2 * f)
    ks = {"count": b.measure("present", _presence(ref)),
          "sum": b.measure("sum", ref, lo, hi, f, center)}
    if a.kind in ("variance", "stddev"):
        ks["sumsq"] = b.measure("sumsq", ref, lo, hi, f, center)
    b.outputs.append(_Output(a, ks, f, center, lo, hi))


@_aggregation("mean")
def _compile_mean(b: _Builder, a: P.Aggregation) -> None:
    ref, lo, hi, ctype = _bounded_value(b, a)
    _compile_moments(b, a, sum_factor(lo, hi, ctype, b.policy.row_limit), ref, lo, hi)


@_aggregation("stddev")  # the square root of the variance (post-processing)
@_aggregation("variance")
def _compile_variance(b: _Builder, a: P.Aggregation) -> None:
    ref, lo, hi, ctype = _bounded_value(b, a)
    integral = ctype == "int" and lo.is_integer() and hi.is_integer()
    # variance sums squares: keep the centred values small
    f = _centred_factor(lo, hi, integral, b.policy.row_limit)
    _compile_moments(b, a, f, ref, lo, hi)


def _check_shape(plan: P.Plan) -> None:
    if not plan.aggs:
        raise QueryError(
            "a DP release answers aggregates: add .agg(n=pets.count(), ...) to the query"
        )
    if plan.select is not None:
        raise QueryError(
            "select() chooses columns for record-level releases (k-anonymity); "
            "a DP release takes .group_by(...).agg(...) instead"
        )
    group_columns = tuple(g.column for g in plan.group_by)
    if len(set(group_columns)) != len(group_columns):
        raise QueryError("a column appears twice in group_by()")


def _group_keys(plan: P.Plan, policy: Policy, schema: dict[str, str],
                protection: DP) -> tuple[list[tuple[Any, ...]], list[bool]]:
    """Per group column: its public keys (or () when unknown, with δ > 0) and whether
    they are unknown."""
    keys: list[tuple[Any, ...]] = []
    unknown: list[bool] = []
    for g in plan.group_by:
        if g.expr is not None:  # a CASE: its literal results are the public keys
            keys.append(P.case_keys(g.expr))  # type: ignore[arg-type]
            unknown.append(False)
            continue
        k = g.keys if g.keys is not None else policy.columns[g.column].keys
        if k is None and protection.delta > 0:
            keys.append(())
            unknown.append(True)
            continue
        if k is None:
            raise PolicyError(
                f"group-by column {g.column!r} has no public keys. Releasing the groups "
                "found in the data would reveal them. Either pass the keys: "
                f"group_by({g.column!r}, keys=[...]) (or have the holder declare them in "
                f"the policy: [columns.{g.column}] keys = [...]), or allow a small delta, "
                "e.g. pets.DP(epsilon=1.0, delta=1e-6), to release only the groups whose "
                "noisy count passes a threshold",
                rule="public_keys",
                column=g.column,
            )
        _check_keys(g.column, tuple(k), schema[g.column])
        keys.append(tuple(k))
        unknown.append(False)
    return keys, unknown


def _min_group_size(plan: P.Plan, policy: Policy) -> int | None:
    """The largest minimum group size of the grades of the plan's released columns."""
    mins = [
        policy.grade_rule(policy.columns[c].grade).min_group_size
        for c in released_columns(policy, plan)
        if c in policy.columns
    ]
    mins_set = [m for m in mins if m is not None]
    return max(mins_set) if mins_set else None


def _check_cells(keys: list[tuple[Any, ...]], unknown: list[bool], outputs: list[_Output],
                 policy: Policy) -> int:
    """Refuse a release that asks for more cells than the policy's ``max_cells``: the
    product of the public keys' counts (group columns with unknown keys count 1 here:
    their groups are found by the thresholded mechanism) times a histogram's bins.
    Computed with Python integers from the query and the policy only, so the refusal
    reveals nothing about the data and comes before any charge or engine work."""
    sizes = [len(k) for k, u in zip(keys, unknown) if not u]
    bins = max((len(o.labels) for o in outputs if o.agg.kind == "histogram"), default=1)
    asked = math.prod(sizes) * bins
    limit = policy.cell_limit
    if asked > limit:
        shape = " × ".join(str(n) for n in sizes) or "1"
        if bins > 1:
            shape += f" keys × {bins} bins"
        else:
            shape += " keys"
        raise PolicyError(
            f"this release asks for {asked:,} cells ({shape}), more than the dataset's limit "
            f"of {limit:,} cells ([dataset] max_cells); ask for fewer keys or bins, or split "
            "it into several releases",
            rule="max_cells",
            allowed=limit,
        )
    return asked


def _check_fits(b: _Builder, max_rows: int) -> dict[str, int]:
    """Prove that every exact value fits in 64 bits with room for the noise: per cell,
    at most ``max_rows`` rows each add at most their per-row bound to an engine
    aggregate, and a measurement Σ coef · aggregate is bounded the same way (its terms
    too). Refuses with ``PolicyError(rule="max_rows")`` otherwise — from the bounds and
    the policy alone, before the engine runs or anything is charged. Returns the bound
    of each engine aggregate and measurement."""
    bounds = {key: max_rows * per for key, per in b.engine_per_row.items()}
    for key, parts in b.derived.values():
        bounds[key] = max_rows * b.per_row[key]
    for o in b.outputs:
        keys = [k for role, k in o.keys.items() if role != "q"]
        worst = 0
        for k in keys:
            parts = next(p for key, p in b.derived.values() if key == k)
            worst = max([worst, bounds[k]] + [abs(c) * bounds[e] for e, c in parts])
        if worst > EXACT_LIMIT:
            _refuse_overflow(o, max_rows)
    return bounds


def _refuse_overflow(o: _Output, max_rows: int) -> None:
    a = o.agg
    per_row = EXACT_LIMIT // max_rows  # the largest value one row may add, in F units
    if a.kind in ("variance", "stddev"):
        allowed: float = math.isqrt(per_row) / o.factor
        what = f"narrow the bounds so that (upper − lower)/2 is at most {_edge_label(allowed)}"
    else:
        allowed = per_row if o.factor == 1 else per_row / o.factor
        what = f"narrow the bounds to within ±{_edge_label(allowed)}"
    raise PolicyError(
        f"{a.kind}({a.label}) with bounds ({_edge_label(o.lower)}, {_edge_label(o.upper)}) "
        f"could overflow 64-bit arithmetic: up to {max_rows:,} rows (the dataset's "
        f"[dataset] max_rows) could add up to more than pets computes exactly (about "
        f"{EXACT_LIMIT:.3g}). To ask, {what} (or, if the table is smaller, the holder "
        "may lower max_rows)",
        rule="max_rows",
        column=a.column,
        allowed=allowed,
    )


def _fast_laplace(scales: Any, draws: int) -> bool:
    """Whether a release of these Laplace scales and ``draws`` noise draws uses the fast
    exact sampler (see the module docstring); counts one use of each distinct scale.
    Depends on the scales, the draws and this process's earlier calls only."""
    distinct = {float(s) for s in scales}
    with _scale_uses_lock:
        uses = []
        for s in distinct:
            n = _scale_uses.pop(s, 0) + 1
            _scale_uses[s] = n  # most recently used last
            uses.append(n)
        while len(_scale_uses) > _SCALE_USES_MAX:
            _scale_uses.popitem(last=False)
    return (draws >= FAST_LAPLACE_MIN_DRAWS
            or min(uses) >= FAST_LAPLACE_MIN_USES
            or all(fast._laplace_ready(s) for s in distinct))


def compile_dp(plan: P.Plan, policy: Policy, schema: dict[str, str], protection: DP,
               grant_epsilon: float | None = None) -> CompiledDP:
    """Check a plan's shape for a DP release and work out its measurements and scales.

    ``grant_epsilon`` (the ε of the analyst's grant, when known) lets a release with
    many noise draws use the fast sampler (see the module docstring).

    Raises QueryError for malformed requests and PolicyError where keys are not public.
    Column-level policy rules are checked by :mod:`pets.governance` before this.
    """
    _check_shape(plan)
    group_columns = tuple(g.column for g in plan.group_by)
    keys, unknown = _group_keys(plan, policy, schema, protection)
    any_unknown = any(unknown)
    cells = math.prod(len(k) for k in keys) if keys and not any_unknown else 1

    b = _Builder(policy, schema)
    for a in plan.aggs:
        _AGGREGATIONS[a.kind](b, a)
    _check_cells(keys, unknown, b.outputs, policy)
    value_bounds = _check_fits(b, policy.row_limit)

    # minimum group size: suppress cells whose noisy row count is below it
    min_group_size = _min_group_size(plan, policy)
    rows_key = None
    is_histogram = any(a.kind == "histogram" for a in plan.aggs)
    # a histogram withholds each bin by its own noisy count: it needs no row count
    if (min_group_size is not None and not is_histogram) or any_unknown:
        rows_key = b.measure("rows")

    # contribution bounding per person
    if policy.privacy_unit is not None:
        max_g = policy.max_groups or 1
        max_r = policy.max_rows_per_group or 1
        bounding: Bounding | None = Bounding(policy.privacy_unit, max_g, max_r, secrets.randbits(63))
        groups = max_g if any_unknown else min(max_g, cells)
    else:
        bounding = None
        groups, max_r = 1, 1
    contribution = groups * max_r

    per_row, person_keys, shares = b.per_row, b.person_keys, b.shares
    gaussian = protection.noise == "gaussian"
    # a histogram's bins share one ε (or ρ) share: the measurements are the distinct shares
    n_meas = len({shares.get(key, key) for key, _ in b.derived.values()}) + len(b.quantile_specs)
    # the fast Gaussian sampler: many draws, public keys, a δ to absorb its TV distance
    # (the fast Laplace sampler is exact: chosen below, once the scales are known)
    draws = cells * len(b.derived)
    sampler, delta_s = "opendp", 0.0
    if (gaussian and not any_unknown and protection.delta > 0 and grant_epsilon is not None
            and draws >= FAST_MIN_DRAWS and grant_epsilon < 700):
        d = draws * _FAST_TV[protection.noise] * (1.0 + math.exp(grant_epsilon))
        if d <= protection.delta / 100:
            sampler, delta_s = "fast", d
    delta_thr = 0.0
    if any_unknown:
        delta_thr = protection.delta if not gaussian else (protection.delta - delta_s) / 2
    l0 = (policy.max_groups or 1) if policy.privacy_unit is not None else 1
    linf = (policy.max_rows_per_group or 1) if policy.privacy_unit is not None else 1
    threshold = None
    threshold_value: int | None = None
    rho_each = 0.0
    if gaussian:
        rho_total = zcdp_rho(protection.epsilon, protection.delta - delta_s - delta_thr)
        rho_each = rho_total / n_meas
        eps_each = math.sqrt(2.0 * rho_each)  # for quantiles: pure ε-DP is ε²/2-zCDP
        # squared L2: distinct persons change each of ≤ groups cells by ≤ 1
        l2sq = {key: groups if key in person_keys else per_row[key] ** 2 * groups * max_r * max_r
                for key in per_row}
        scales = {key: gaussian_scale(l2sq[key], rho_each) for key in per_row}
        if any_unknown:
            threshold, threshold_value = gaussian_threshold(
                scales[rows_key], (l0, l0 * linf, linf), rho_each, delta_thr,  # type: ignore[index]
                with_threshold=True)
        cost = Cost(protection.epsilon, protection.delta, rho_total)
        zdelta: float | None = delta_thr + delta_s
    else:
        eps_each = protection.epsilon / n_meas
        # distinct persons: one per group a person is in, whatever their rows
        sensitivity = {key: groups if key in person_keys else per_row[key] * contribution
                       for key in per_row}
        scales = {key: laplace_scale(sensitivity[key], eps_each) for key in per_row}
        if scales and min(scales.values()) >= fast.LAPLACE_MIN_SCALE and _fast_laplace(
                scales.values(), draws):
            sampler = "fast"  # exact: no δ
        if any_unknown:
            threshold, threshold_value = laplace_threshold(
                scales[rows_key], (l0, l0 * linf, linf), eps_each, delta_thr,  # type: ignore[index]
                with_threshold=True)
        cost = Cost(protection.epsilon, delta_thr + delta_s)
        zdelta = None
    quantiles = []
    for spec in b.quantile_specs:
        qb = 1000
        a_ = min(max(int(round(spec["q"] * qb)), 1), qb - 1)
        sens = max(a_, qb - a_) * contribution
        meas, qscale = noisy_max(sens, eps_each)
        quantiles.append(_Quantile(spec["key"], spec["candidates"], spec["lt"], spec["le"],
                                   spec["present"], a_, qb, qscale, meas))
    return CompiledDP(
        plan=plan,
        protection=protection,
        group_columns=group_columns,
        keys=tuple(keys),
        measures=list(b.engine.values()),
        derived={key: parts for key, parts in b.derived.values()},
        per_row=per_row,
        scales=scales,
        outputs=b.outputs,
        contribution=contribution,
        bounding=bounding,
        rows_key=rows_key,
        min_group_size=min_group_size,
        epsilon_each=eps_each,
        cost=cost,
        unknown=tuple(unknown),
        threshold=threshold,
        quantiles=quantiles,
        noise_kind=protection.noise,
        sampler=sampler,
        zdelta=zdelta,
        rho_each=rho_each,
        shares=shares,
        value_bounds=value_bounds,
        threshold_value=threshold_value,
        group_exprs=tuple(g.expr for g in plan.group_by)
        if any(g.expr is not None for g in plan.group_by) else (),
    )


@dataclass(frozen=True)
class _Value:
    """An aggregated expression, as the engine computes it: each ``clamps`` column
    clamped to its bounds first (none when the analyst bounded the expression)."""

    expr: Any
    clamps: tuple[tuple[str, float, float], ...] = ()


def _presence(ref: Any) -> Any:
    """Whether a value is present does not depend on clamping: share one count."""
    return _Value(ref.expr) if isinstance(ref, _Value) else ref


def _expression_value(a: P.Aggregation, policy: Policy,
                      schema: dict[str, str]) -> tuple[_Value, float, float, str]:
    """What a sum / mean / variance / quantile of an expression clamps, its bounds and
    its kind (``int`` when every value is an integer, for an exact encoding).

    With the analyst's bounds, the expression's value is clamped to them. Without, every
    column it takes its value from is clamped to its policy bounds, and the bounds of
    the expression follow by interval arithmetic (:func:`pets.expressions.value_bounds`);
    the engine computes exactly that, so every value lies in them."""
    label = f"{a.kind}({a.label})"
    kind = check_value(a.expr, schema, label)  # type: ignore[arg-type]
    if a.bounds is not None:
        lo, hi = float(a.bounds[0]), float(a.bounds[1])
        return _Value(a.expr), lo, hi, kind
    vb = value_bounds(
        a.expr, schema,  # type: ignore[arg-type]
        lambda c: policy.columns[c].bounds if c in policy.columns else None, label,
    )
    return _Value(a.expr, vb.clamps), vb.lower, vb.upper, "int" if vb.integral else "float"
