"""A fast, vectorised discrete Laplace / discrete Gaussian sampler fed only by the OS CSPRNG.

``pets.dp.samplers`` draws noise with OpenDP's exact samplers, at 6–30 µs a cell. This
module draws the same distributions at millions of cells a second, with every random bit
coming from the operating system's CSPRNG (``os.urandom``; never ``numpy.random``: numpy
only does the arithmetic):

* ``discrete_laplace(scale, size)``: P(k) ∝ exp(-|k|/scale), **exactly** (the float
  ``scale`` taken as the rational number it is; 2^-40 ≤ scale ≤ 2^40). No approximation:
  ``LAPLACE_TV_BOUND = laplace_tv_bound(scale) = 0``.
* ``discrete_gaussian(sigma, size)``: P(k) ∝ exp(-k²/(2σ²)), within total variation (TV)
  distance **2^-47 ≈ 7.1e-15** (``gaussian_tv_bound(sigma)``), assuming numpy's float64
  ``exp`` is within 4 ulp (tested in ``tests/unit/test_fast_sampler.py``).
* ``add_discrete_laplace(values, scale)``: ``values + discrete_laplace(scale, len)``.

A TV distance of γ means each output event's probability differs from the exact one by at
most γ; so an (ε, δ)-DP guarantee of the exact mechanism becomes
(ε, δ + γ·(1 + e^ε))-DP with the Gaussian sampler — at γ ≈ 1e-14 negligible next to any
δ anybody uses. The Laplace
sampler needs no such allowance.

Construction (discrete Laplace)
-------------------------------
Let q = e^{-1/t} (t = scale) and z = P(X = 0) = (1-q)/(1+q). Then X = 0 with probability
z, otherwise X = S·(1 + G) with a fair sign S and G ~ Geometric(q), P(G = g) = (1-q)q^g,
independent (check: (1-z)/2·(1-q)q^g = (1-q)/(1+q)·q^{g+1}).

*Digits.* With radix R = 256: P(G = R·h + d) = (1-q)q^{Rh+d} =
[(1-q)/(1-q^R)·q^d]·[(1-q^R)(q^R)^h] for 0 ≤ d < R, so the low digit D ~ "geometric of
ratio q truncated to [0, R)" and the quotient H ~ Geometric(q^R) are independent.
Repeating on H: G = Σ_{j<J-1} R^j D_j + R^{J-1}·T with independent D_j (ratio
r_j = q^{R^j}, truncated to [0, R)) and T ~ Geometric(r), r = q^{R^{J-1}}.

The zero/sign choice is folded into the top variable: W = 0 with probability z, else
W = S·(1 + R^{J-1}·T); then X = W + sign(W)·Σ_{j<J-1} R^j D_j. With J = 1, W = X.
With h = q/(1+q) = P(W > 0) and base b = R^{J-1}: P(W ≥ 1 + bτ) = P(W ≤ -(1 + bτ)) =
h·r^τ = e^{-(1+bτ)/t}/(1+q).

*Tables.* Each variable V is sampled by inversion of an infinite uniform
U_real = 0.b_1b_2b_3… (bits of ``os.urandom``): with outcomes o_0 < o_1 < … < o_K and
CDF boundaries F_k = P(V ≤ o_k), 0 < F_0 < … < F_{K-1} < 1, output o_j with
j = #{k : F_k ≤ U_real}; then P(output = o_j) = F_j − F_{j-1} = P(V = o_j) exactly
(F_{-1} = 0, F_K = 1).

- a digit D_j: its R = 256 atoms weight·d, d < R (no tail: F_{R-1} = 1), with
  F_k = (1 - r_j^{k+1})/(1 - r_j^R);
- the top W: outcomes [−tail, −(1+b(m−1)), …, −1, 0, 1, …, 1+b(m−1), +tail], with m ≤ 1024
  atoms a side, the least with h·r^m < 2^-70 (J is the fewest digits that allows this:
  J = 1 for scale ≤ 21.4, 2 up to ≈ 5,480, 3 up to ≈ 1.40e6, ≤ 6 for scale ≤ 2^40);
  F_k = h·r^{m−k} for k ≤ m, 1 − F_k = h·r^{k−m−1} for m < k ≤ 2m+1.
  The "−tail" outcome is the event W ≤ −(1 + bm), i.e. W < 0 and T ≥ m. Because T is
  geometric, given T ≥ m the excess T − m is again Geometric(r) (memoryless:
  P(T = m + s | T ≥ m) = (1−r)r^{m+s}/r^m = (1−r)r^s), so the sampler outputs
  −(1 + b(m + T')) with T' a fresh, independent, exact Geometric(r) draw; "+tail"
  likewise with +. T' itself is drawn by inversion of the table of outcomes
  [0, 1, …, m−1, tail] with F_k = 1 − r^{k+1}, its tail again continuing as m + a fresh
  draw; each round ends with probability 1 − r^m > 1 − 2^-64, so this terminates with
  probability 1 (and runs at all with probability < 2^-69 per draw). A |W| beyond 2^62
  (probability < e^{-2^21} at scale ≤ 2^40) raises instead of overflowing int64.

*Lazy exact comparison.* Let U be the first 64 bits of U_real and c_k = ⌊2^64·F_k⌋.
Then 2^64·F_k ∈ [c_k, c_k + 1) and U_real ∈ [U/2^64, (U+1)/2^64), so U < c_k implies
U_real < F_k and U > c_k implies U_real > F_k: when U equals no c_k, the outcome is
j = #{k : c_k < U} (``searchsorted``, side left) with no error at all. Only when U = c_k
for some k (a tie; probability ≤ K·2^-64 per variable) does the slow path read 64 more
bits at a time, U_real ∈ [a/2^n, (a+1)/2^n), and compare it with F_k evaluated as a
proven interval at ≈ 0.3·n + 40 digits, deciding F_k ≤ a/2^n (past it) or
F_k ≥ (a+1)/2^n (below it); an undecided comparison reads 64 more bits. At each step
at most two values of the fresh 64-bit word leave it undecided, so it ends with
probability 1 (after one extra word with probability ≥ 1 − 2^-63; the interval of
2^n·F_k is far narrower than 1 at that precision, and if it were not, more bits and
digits would follow).

Bytes: U is consumed 16 bits first: a 65,536-entry lookup table gives the outcome
directly for a bucket that contains no c_k (then #{k : c_k < U} is the same for every U
of the bucket, and no U of it is a tie); only in the ≤ K buckets that contain a
threshold are 48 more bits read and the rule above applied. The tails' thresholds are
c_0 = 0 and c_{2m+1} = 2^64 − 1 (their masses are < 2^-70), so tails only come out of the
64-bit stage. About 2 bytes per variable: 2 bytes a draw for scale ≤ 21.4, 4 up to
≈ 5,480, 6 up to ≈ 1.40e6 (+ ≤ 3% × 8 bytes).

*Proven thresholds.* c_k must be exactly ⌊2^64·F_k⌋. F_k is evaluated from the closed
forms above in interval arithmetic with ``decimal``: +, −, ×, ÷ are correctly rounded in
the context's rounding mode, so the lower end is computed with ROUND_FLOOR and the upper
with ROUND_CEILING; e^{-c/t} (c an integer, t the float's exact decimal value) is
bracketed by computing c/t rounded down and up and applying ``Decimal.exp``, which is
correctly rounded (ROUND_HALF_EVEN, error ≤ ½ ulp ≤ ½·10^{1−p}·|result| at p digits) on
both ends, then widening by the factors (1 ∓ 10^{1−p}). Exponent limits are decimal's
widest and Underflow/Subnormal/Clamped are trapped, so nothing is flushed to zero (hence
scale ≥ 2^-40). A threshold is accepted only when the whole interval of 2^64·F_k lies in
one [c, c+1) (for the upper half, 2^64·(1 − F_k) is bracketed instead and
⌊2^64 − y⌋ = 2^64 − ⌈y⌉ used, which avoids cancellation near 1); otherwise the
precision is doubled. (The first attempt, at 50 digits, brackets the powers r^τ by
repeated interval multiplication, which keeps a table build at 1–10 ms; retries
evaluate the closed form with one exp per bound.) This terminates because F_k is irrational:
q = e^{-1/t} is transcendental (Lindemann–Weierstrass, 1/t a non-zero rational) and each
F_k is a non-constant rational function of q with rational coefficients.

*Theorem (exactness).* Each table outputs its variable's exact distribution (above),
the tables read disjoint bits of ``os.urandom`` (modelled as independent uniform bits),
so (W, D_0, …, D_{J-2}) have exactly the joint law of the construction and
X = W + sign(W)·Σ_j R^j D_j is exactly discrete Laplace(t). The proof relies on: the
bits being uniform and independent, decimal's documented correct rounding (of +, −, ×,
÷ in every rounding mode and of exp in ROUND_HALF_EVEN), and the algebra above (checked
numerically in the tests against an independent 120-digit computation).

Construction (discrete Gaussian)
--------------------------------
Canonne, Kamath & Steinke (2020), Alg. 3: t = ⌊σ⌋ + 1, Y ~ DLap(t) (from above), accept
with probability a(Y) = exp(-(|Y| - σ²/t)²/(2σ²)); the accepted Y are exactly N_Z(0, σ²)
when Y and a are exact. Here a is evaluated in float64 as â and accepted iff
U < â·2^53 for a uniform 53-bit U, so P(accept | y) = ⌈â·2^53⌉/2^53.

*Float error.* With u = 2^-53: c = fl(fl(σ²)/t) has relative error ≤ 2.01u and c ≤ σ;
d = fl(|y| - c) has absolute error ≤ u(2.02c + |d|); z = fl(fl(d²)/fl(2σ²)) then satisfies
|z - z_true| ≤ u(2.02·√(2z) + 5.1z) (1 + O(u)), and |e^{-z} - e^{-z_true}| ≤
u·max_z e^{-z}(2.9√z + 5.1z) ≤ 3.2u. numpy's exp adds ≤ 4 ulp ≤ 8u·e^{-z}, and the 53-bit
grid ≤ 2^-53 = u. So |P(accept | y) - a(y)| ≤ ε_a := 16u = 2^-49.

*Theorem.* For measures μ(y) = P̂_Y(y)·P̂(accept|y), ν(y) = P_Y(y)·a(y):
‖μ - ν‖₁ ≤ 2·TV(Ŷ, Y) + ε_a = ε_a (Ŷ is exact: TV(Ŷ, Y) = 0) and
‖μ/|μ| - ν/|ν|‖₁ ≤ 2‖μ - ν‖₁/|μ|. The exact acceptance rate |ν| = Z(σ) ≥ 0.44 for all
σ > 0 (minimum ≈ 0.445 near σ = 0.3; → 0.760 for large σ; checked on a grid in the
tests), so TV(output, N_Z(0,σ²)) ≤ 2^-49/(0.44 - 2^-49) < 2^-47 ≈ 7.1e-15
(``gaussian_tv_bound`` returns this expression; the constant keeps the round 2^-47).

Scales: refused (``QueryError``) when ≤ 0, NaN, infinite or above 2^40 (the same ceiling
as ``pets.dp.samplers``; |X| < 2^47 except in the tails above), and for Laplace below
2^-40 (σ has no lower limit: its Laplace scale is ⌊σ⌋ + 1 ≥ 1, and for σ < 1/16 the
output is 0, whose distance to N_Z(0, σ²) is P(X ≠ 0) < 2^-183).

Tables are built once per scale (``lru_cache``) in 2–90 ms (one interval exp per
threshold); the tails' continuation table only when a tail is first drawn.

``_bits`` (every public function) is a test hook only: a callable ``n -> n bytes`` that
replaces ``os.urandom`` so tests can be reproducible. Never pass it in production.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Clamped,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    Subnormal,
    Underflow,
)
from functools import lru_cache

import numpy as np

from ..errors import QueryError

__all__ = [
    "GAUSSIAN_TV_BOUND",
    "LAPLACE_MIN_SCALE",
    "LAPLACE_TV_BOUND",
    "add_discrete_laplace",
    "discrete_gaussian",
    "discrete_laplace",
    "gaussian_tv_bound",
    "laplace_tv_bound",
]

Bits = Callable[[int], bytes]

LAPLACE_TV_BOUND = 0.0  # the Laplace sampler is exact (module docstring)
GAUSSIAN_TV_BOUND = 2.0**-47
_MAX_SCALE = 2.0**40
_MIN_LAPLACE_SCALE = 2.0**-40
LAPLACE_MIN_SCALE = _MIN_LAPLACE_SCALE  # smallest scale discrete_laplace accepts
_BUILT: set[float] = set()  # scales whose Laplace tables have been built (a hint only)
_RADIX_BITS = 8
_RADIX = 1 << _RADIX_BITS
_TOP_MAX_SIDE = 1024  # atoms per side of the top table (≤ 2050 thresholds)
_TAIL_BITS = 70  # the top table's tails each have mass < 2^-70
_STAGE1_BITS = 16  # bits read first for each variable
_STAGE2_SHIFT = 64 - _STAGE1_BITS
_SENTINEL = np.iinfo(np.int64).min  # LUT: ambiguous bucket
_NEG_TAIL = np.iinfo(np.int64).min + 1  # outcome markers of the tails (never in a LUT
_POS_TAIL = np.iinfo(np.int64).max  # of the top table; see _top_table)
_NOISE_LIMIT = 1 << 62  # |W| above this raises instead of overflowing int64
_TWO64 = 1 << 64
_PREC0 = 50  # decimal digits of the first threshold attempt (doubled until decided)
_PREC_MAX = 20_000
_CHUNK = 1 << 15  # draws per inner step: keeps the working arrays in cache
_ACCEPT_MIN = 0.44  # lower bound on the CKS acceptance rate Z(σ)
_EPS_ACCEPT = 2.0**-49  # |P(accept|y) - a(y)| (module docstring)
_GAUSS_ZERO_SIGMA = 1.0 / 16  # below: the discrete Gaussian is 0 but with mass < 2^-183


# --------------------------------------------------------------------------- intervals
#
# Every quantity below is an interval [lo, hi] of Decimals that provably contains the
# exact real value: + - × ÷ are done in a ROUND_FLOOR context for lo and a ROUND_CEILING
# context for hi (decimal's arithmetic operations are correctly rounded in the context's
# rounding mode), and exp in a ROUND_HALF_EVEN context (correctly rounded: error ≤ ½ ulp
# ≤ ½·10^(1-p)·|result|), widened by the factor 1 ∓ 10^(1-p). Exponent limits are the
# widest decimal allows, and Underflow/Subnormal are trapped, so no value is ever
# flushed towards zero silently.

Iv = tuple[Decimal, Decimal]


class _Imprecise(Exception):
    """An interval is too wide to be used at this precision (retry with more digits)."""


@lru_cache(maxsize=256)
def _ctxs(prec: int) -> tuple[Context, Context, Context]:
    traps = [InvalidOperation, DivisionByZero, Overflow, Underflow, Subnormal, Clamped]
    def mk(rounding: str) -> Context:
        return Context(prec=prec, rounding=rounding, Emin=MIN_EMIN, Emax=MAX_EMAX, traps=traps)
    return mk(ROUND_FLOOR), mk(ROUND_CEILING), mk(ROUND_HALF_EVEN)


_ONE: Iv = (Decimal(1), Decimal(1))


def _exp_neg(c: int, t: Decimal, prec: int) -> Iv:
    """e^(-c/t) for an integer c ≥ 0 and an exact t > 0."""
    if c == 0:
        return _ONE
    fl, ce, ne = _ctxs(prec)
    x_lo, x_hi = fl.divide(c, t), ce.divide(c, t)
    eps = Decimal(f"1e{1 - prec}")
    y_lo = ne.exp(ne.minus(x_hi))  # e^(-x) is decreasing in x
    y_hi = ne.exp(ne.minus(x_lo))
    return fl.multiply(y_lo, fl.subtract(1, eps)), ce.multiply(y_hi, ce.add(1, eps))


def _iv_add(a: Iv, b: Iv, prec: int) -> Iv:
    fl, ce, _ = _ctxs(prec)
    return fl.add(a[0], b[0]), ce.add(a[1], b[1])


def _iv_sub(a: Iv, b: Iv, prec: int) -> Iv:
    fl, ce, _ = _ctxs(prec)
    return fl.subtract(a[0], b[1]), ce.subtract(a[1], b[0])


def _iv_mul_pos(a: Iv, b: Iv, prec: int) -> Iv:
    """a × b for a, b ≥ 0."""
    fl, ce, _ = _ctxs(prec)
    return fl.multiply(a[0], b[0]), ce.multiply(a[1], b[1])


def _iv_powers(base: Iv, first: Iv, count: int, prec: int) -> list[Iv]:
    """[first, first·base, first·base², …] (count entries), by repeated multiplication:
    each step is a proven interval, so the list is too (only a little wider)."""
    out = [first]
    for _ in range(count - 1):
        out.append(_iv_mul_pos(out[-1], base, prec))
    return out


def _iv_div_pos(a: Iv, b: Iv, prec: int) -> Iv:
    """a / b for a ≥ 0, b > 0 (raises _Imprecise when the intervals do not show it)."""
    if a[0] < 0 or b[0] <= 0:
        raise _Imprecise
    fl, ce, _ = _ctxs(prec)
    return fl.divide(a[0], b[1]), ce.divide(a[1], b[0])


# A boundary is (high, iv): high=False: iv ∋ F (the CDF value); high=True: iv ∋ 1 - F.
Boundary = tuple[bool, Iv]
BoundFn = Callable[[int, int], Boundary]  # (k, prec) -> boundary k at precision prec


def _floor_threshold(bound: BoundFn, k: int, first: Boundary | None = None) -> int:
    """⌊2^64·F_k⌋, proven: the interval of 2^64·F_k lies within one [c, c+1).
    ``first``: boundary k already bracketed at _PREC0 digits (a cheaper computation)."""
    prec = _PREC0
    two64 = Decimal(_TWO64)
    while prec <= _PREC_MAX:
        fl, ce, _ = _ctxs(prec)
        try:
            if first is not None and prec == _PREC0:
                high, (lo, hi) = first
            else:
                high, (lo, hi) = bound(k, prec)
        except _Imprecise:
            prec *= 2
            continue
        if not high:
            a, b = math.floor(fl.multiply(lo, two64)), math.floor(ce.multiply(hi, two64))
            if a == b and 0 <= a < _TWO64:
                return a
        else:  # ⌊2^64 - y⌋ = 2^64 - ⌈y⌉ for y = 2^64·(1 - F_k)
            a, b = math.ceil(fl.multiply(lo, two64)), math.ceil(ce.multiply(hi, two64))
            if a == b and 0 < a <= _TWO64:
                return _TWO64 - a
        prec *= 2
    raise RuntimeError(f"could not separate threshold {k} at {_PREC_MAX} digits")  # pragma: no cover


def _below(bound: BoundFn, k: int, a: int, n: int) -> bool | None:
    """Is U_real < F_k, knowing only U_real ∈ [a/2^n, (a+1)/2^n)? None: undecided."""
    prec = 40 + (n * 30103) // 100000  # 2^n has ≈ 0.30103·n digits
    fl, ce, _ = _ctxs(prec)
    try:
        high, (lo, hi) = bound(k, prec)
    except _Imprecise:
        return None
    scale = Decimal(1 << n)
    s_lo, s_hi = fl.multiply(lo, scale), ce.multiply(hi, scale)
    if not high:  # compare 2^n·F with [a, a+1)
        if s_hi <= a:
            return False  # F ≤ a/2^n ≤ U_real
        if s_lo >= a + 1:
            return True  # F ≥ (a+1)/2^n > U_real
        return None
    # 2^n·(1 - F) against 2^n·(1 - U_real) ∈ (2^n - a - 1, 2^n - a]
    if s_hi <= (1 << n) - a - 1:
        return True  # 1 - F < 1 - U_real
    if s_lo >= (1 << n) - a:
        return False  # 1 - F ≥ 1 - U_real
    return None


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True, eq=False)
class _Table:
    """Exact inverse-CDF sampler of one discrete variable with outcomes o_0 < … < o_K
    and CDF boundaries F_0 < … < F_{K-1}: outcome #{k: F_k ≤ U_real} for an infinite
    uniform U_real. 16 bits first, 48 more in ambiguous buckets, more on exact ties."""

    thresholds: np.ndarray  # uint64, K entries ⌊2^64·F_k⌋, non-decreasing
    values: np.ndarray  # int64, K + 1 outcomes (tails: _NEG_TAIL / _POS_TAIL)
    lut: np.ndarray  # int64, 65,536 entries: the outcome, or _SENTINEL (ambiguous bucket)
    ambiguous: float  # fraction of 16-bit buckets that need the 48 more bits
    bound: BoundFn  # F_k as a proven interval at any precision (for ties)

    def sample(self, u16: np.ndarray, out: np.ndarray, bits: Bits) -> np.ndarray | None:
        """Fill ``out``; returns the positions decided by the 64-bit stage (or None)."""
        np.take(self.lut, u16, out=out)
        if not self.ambiguous:
            return None
        idx = np.flatnonzero(out == _SENTINEL)
        if not idx.size:
            return None
        low = np.frombuffer(bits(8 * idx.size), dtype=np.uint64) >> np.uint64(_STAGE1_BITS)
        full = (u16[idx].astype(np.uint64) << np.uint64(_STAGE2_SHIFT)) | low
        pos = np.searchsorted(self.thresholds, full, side="left")  # #{k: c_k < U}
        hi = np.searchsorted(self.thresholds, full, side="right")  # #{k: c_k ≤ U}
        for i in np.flatnonzero(pos != hi):  # U = c_k: an exact tie (≈ never)
            pos[i] = self.resolve(int(full[i]), int(pos[i]), int(hi[i]), bits)
        out[idx] = self.values[pos]
        return idx

    def resolve(self, u: int, lo: int, hi: int, bits: Bits) -> int:
        """#{k: F_k ≤ U_real} when U = c_lo = … = c_{hi-1}: 64 more bits at a time."""
        a, n, k = u, 64, lo
        while k < hi:
            below = _below(self.bound, k, a, n)
            if below is None:
                a = (a << 64) | int.from_bytes(bits(8), "big")
                n += 64
            elif below:
                return k
            else:
                k += 1
        return hi


def _make_table(nbound: int, bound: BoundFn, values: list[int],
                first: list[Boundary] | None = None) -> _Table:
    cs = [_floor_threshold(bound, k, first[k] if first else None) for k in range(nbound)]
    if any(b < a for a, b in itertools.pairwise(cs)):  # pragma: no cover - F is increasing
        raise RuntimeError("thresholds are not monotone")
    thresholds = np.array(cs, dtype=np.uint64)
    vals = np.array(values, dtype=np.int64)
    starts = np.arange(1 << _STAGE1_BITS, dtype=np.uint64) << np.uint64(_STAGE2_SHIFT)
    ends = starts | np.uint64((1 << _STAGE2_SHIFT) - 1)
    lo = np.searchsorted(thresholds, starts, side="left")
    hi = np.searchsorted(thresholds, ends, side="right")
    lut = np.where(lo == hi, vals[lo], _SENTINEL).astype(np.int64)
    return _Table(thresholds, vals, lut, float(np.mean(lo != hi)), bound)


def _digit_table(t: Decimal, weight: int) -> _Table:
    """D ~ geometric of ratio r = e^(-weight/t) truncated to [0, R): outcomes weight·d,
    F_k = P(D ≤ k) = (1 - r^(k+1)) / (1 - r^R), k = 0 … R-2 (F_{R-1} = 1: no tail)."""

    def bound(k: int, prec: int) -> Boundary:
        num = _iv_sub(_ONE, _exp_neg(weight * (k + 1), t, prec), prec)
        den = _iv_sub(_ONE, _exp_neg(weight * _RADIX, t, prec), prec)
        return False, _iv_div_pos(num, den, prec)

    # at _PREC0 digits: r^(k+1) by repeated multiplication (each threshold is re-derived
    # from the closed form at higher precision only if this interval does not decide it)
    p = _PREC0
    r = _exp_neg(weight, t, p)
    den = _iv_sub(_ONE, _exp_neg(weight * _RADIX, t, p), p)
    first: list[Boundary] | None = []
    try:
        for pw in _iv_powers(r, r, _RADIX - 1, p):
            first.append((False, _iv_div_pos(_iv_sub(_ONE, pw, p), den, p)))  # type: ignore[union-attr]
    except _Imprecise:
        first = None
    return _make_table(_RADIX - 1, bound, [weight * d for d in range(_RADIX)], first)


def _top_bound(t: Decimal, base: int, m: int) -> BoundFn:
    """W = 0 w.p. z = (1-q)/(1+q), else ±(1 + base·T), T ~ Geometric(r), fair sign,
    q = e^(-1/t), r = e^(-base/t). With h = q/(1+q) = P(W > 0): P(W ≥ 1 + base·τ) =
    h·r^τ = e^(-(1+base·τ)/t)/(1+q). Outcomes: [−tail, −(1+base(m-1)), …, −1, 0, 1, …,
    1+base(m-1), +tail]; boundaries k = 0…m: F = h·r^(m-k); k = m+1…2m+1: 1 - F = h·r^(k-m-1)."""

    def bound(k: int, prec: int) -> Boundary:
        den = _iv_add(_ONE, _exp_neg(1, t, prec), prec)
        tau = m - k if k <= m else k - m - 1
        return k > m, _iv_div_pos(_exp_neg(1 + base * tau, t, prec), den, prec)

    return bound


def _top_side(scale: float, base: int) -> int:
    """Atoms per side m: the smallest with h·r^m < 2^-70 (estimated in floats: any m ≥ 1
    is exact, this only sizes the table so that each tail is below 2^-64)."""
    log_h = -1.0 / scale - math.log1p(math.exp(-1.0 / scale))
    need = _TAIL_BITS * math.log(2) + log_h  # m·base/scale must exceed this
    return max(1, math.floor(need * scale / base) + 1)


def _top_table(t: Decimal, base: int, m: int) -> _Table:
    values = [int(_NEG_TAIL)] + [-(1 + base * k) for k in range(m - 1, -1, -1)]
    values += [0] + [1 + base * k for k in range(m)] + [int(_POS_TAIL)]
    p = _PREC0
    den = _iv_add(_ONE, _exp_neg(1, t, p), p)
    # h·r^τ·(1+q) = e^(-(1+base·τ)/t) for τ = 0 … m, by repeated multiplication
    pw = [_iv_div_pos(v, den, p) for v in _iv_powers(_exp_neg(base, t, p), _exp_neg(1, t, p), m + 1, p)]
    first = [(False, pw[m - k]) for k in range(m + 1)] + [(True, pw[k]) for k in range(m + 1)]
    table = _make_table(2 * m + 2, _top_bound(t, base, m), values, first)
    # the tails' thresholds are 0 and 2^64-1, so the tails only come out of stage 2
    if np.isin(table.lut, [_NEG_TAIL, _POS_TAIL]).any():  # pragma: no cover
        raise RuntimeError("a tail outcome in the stage-1 table")
    return table


@lru_cache(maxsize=128)
def _geometric_table(scale: float, base: int, m: int) -> _Table:
    """T ~ Geometric(r), r = e^(-base/t): outcomes 0 … m-1 and the tail T ≥ m (marker
    _POS_TAIL); F_k = 1 - r^(k+1). Built only when a top-table tail is drawn."""
    t = Decimal(scale)

    def bound(k: int, prec: int) -> Boundary:
        return True, _exp_neg(base * (k + 1), t, prec)

    r = _exp_neg(base, t, _PREC0)
    first = [(True, v) for v in _iv_powers(r, r, m, _PREC0)]
    return _make_table(m, bound, list(range(m)) + [int(_POS_TAIL)], first)


@dataclass(frozen=True, eq=False)
class _Laplace:
    scale: float
    top: _Table
    digits: tuple[_Table, ...]  # D_0, …, D_{J-2}
    base: int  # R^(J-1)
    side: int  # m: atoms per side of the top table
    max_abs: int  # largest |value| without a tail draw
    tv: float = 0.0  # exact sampler

    @property
    def bytes_per_draw(self) -> float:
        tables = (self.top, *self.digits)
        return sum(2 + 8 * t.ambiguous for t in tables)

    def geometric(self, bits: Bits) -> int:
        """An exact Geometric(e^(-base/t)) draw, one at a time (used only in tails)."""
        table = _geometric_table(self.scale, self.base, self.side)
        acc = 0
        out = np.empty(1, dtype=np.int64)
        while True:
            table.sample(np.frombuffer(bits(2), dtype=np.uint16), out, bits)
            v = int(out[0])
            if v != _POS_TAIL:
                return acc + v
            acc += self.side  # memoryless: T ≥ m, and T - m ~ T again
            if acc * self.base > _NOISE_LIMIT:
                raise QueryError("a noise draw exceeded 2^62 (probability < e^(-2^21)); retry")

    def tail(self, negative: bool, bits: Bits) -> int:
        """W given the tail: ±(1 + base·(m + T')), T' a fresh exact Geometric(r)."""
        w = 1 + self.base * (self.side + self.geometric(bits))
        if w > _NOISE_LIMIT:
            raise QueryError("a noise draw exceeded 2^62 (probability < e^(-2^21)); retry")
        return -w if negative else w


def _digits_needed(scale: float) -> tuple[int, int]:
    """(J, m): the fewest digits J whose top table has at most 1024 atoms per side."""
    j = 1
    while True:
        base = _RADIX ** (j - 1)
        m = _top_side(scale, base)
        if m <= _TOP_MAX_SIDE:
            return j, m
        j += 1


@lru_cache(maxsize=128)
def _laplace_sampler(scale: float) -> _Laplace:
    t = Decimal(scale)  # the float's exact value
    j, m = _digits_needed(scale)
    base = _RADIX ** (j - 1)
    top = _top_table(t, base, m)
    digits = tuple(_digit_table(t, _RADIX**i) for i in range(j - 1))
    max_abs = (1 + base * (m - 1)) + sum(_RADIX**i * (_RADIX - 1) for i in range(j - 1))
    if len(_BUILT) > 4096:
        _BUILT.clear()
    _BUILT.add(scale)
    return _Laplace(scale, top, digits, base, m, max_abs)


def _laplace_ready(scale: float) -> bool:
    """Whether the tables of ``scale`` were built already (then a draw costs ~10 µs; a
    first build 1–10 ms). Only a speed hint: the tables may have been evicted since."""
    return float(scale) in _BUILT


# --------------------------------------------------------------------------- checks


def _check_scale(scale: float, what: str = "scale", minimum: float = _MIN_LAPLACE_SCALE) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise QueryError(f"{what} must be a number, got {scale!r}")
    s = float(scale)
    if not (s > 0 and math.isfinite(s)):
        raise QueryError(f"{what} must be a finite number > 0, got {scale!r}")
    if s > _MAX_SCALE:
        raise QueryError(
            f"{what}={s:g} is too large: noise of that size could overflow 64-bit answers "
            f"(maximum {_MAX_SCALE:g}); use a larger epsilon"
        )
    if s < minimum:
        raise QueryError(
            f"{what}={s:g} is too small for pets.dp.fast (minimum 2^-40 = "
            f"{minimum:g}); use a smaller epsilon or pets.dp.samplers"
        )
    return s


def _check_size(size: int) -> int:
    try:
        n = int(size)
    except (TypeError, ValueError):
        raise QueryError(f"size must be an integer >= 0, got {size!r}") from None
    if n < 0 or n != size:
        raise QueryError(f"size must be an integer >= 0, got {size!r}")
    return n


# --------------------------------------------------------------------------- sampling


def _fill_laplace(sampler: _Laplace, out: np.ndarray, bits: Bits) -> bool:
    """Fill ``out`` with exact draws; True if a tail draw went beyond ``max_abs``."""
    n = out.size
    ntab = 1 + len(sampler.digits)
    c = min(n, _CHUNK)
    low_buf = np.empty(c, dtype=np.int64)
    d_buf = np.empty(c, dtype=np.int64)
    tailed = False
    for s in range(0, n, _CHUNK):
        e = min(n, s + _CHUNK)
        m = e - s
        u = np.frombuffer(bits(2 * m * ntab), dtype=np.uint16)
        o = out[s:e]
        idx = sampler.top.sample(u[:m], o, bits)
        if idx is not None:  # tails only come out of the 64-bit stage
            for i in idx[(o[idx] == _NEG_TAIL) | (o[idx] == _POS_TAIL)]:
                o[i] = sampler.tail(bool(o[i] == _NEG_TAIL), bits)
                tailed = True
        if sampler.digits:
            low, d = low_buf[:m], d_buf[:m]
            for i, table in enumerate(sampler.digits):  # digit values come pre-scaled by R^i
                table.sample(u[(i + 1) * m : (i + 2) * m], d if i else low, bits)
                if i:
                    low += d
            np.sign(o, out=d)
            low *= d
            o += low  # X = W + sign(W)·Σ_j R^j D_j
    return tailed


def discrete_laplace(scale: float, size: int, *, _bits: Bits | None = None) -> np.ndarray:
    """``size`` iid draws with P(k) ∝ exp(-|k|/scale), int64, from ``os.urandom``.

    Exact (module docstring): no approximation, for every float scale in [2^-40, 2^40].
    ``_bits`` is a test hook (reproducible byte stream); never use it for real noise.
    """
    s = _check_scale(scale)
    n = _check_size(size)
    out = np.empty(n, dtype=np.int64)
    if n:
        _fill_laplace(_laplace_sampler(s), out, _bits or os.urandom)
    return out


def add_discrete_laplace(values: np.ndarray, scale: float, *, _bits: Bits | None = None) -> np.ndarray:
    """``values`` (integers, any shape) plus iid exact discrete Laplace noise of ``scale``."""
    s = _check_scale(scale)
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise QueryError(f"values must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    sampler = _laplace_sampler(s)
    too_close = "values are too close to the 64-bit limit to add noise of this scale"
    if arr.size:
        limit = np.iinfo(np.int64).max - sampler.max_abs
        if int(arr.max()) > limit or int(arr.min()) < -limit:
            raise QueryError(too_close)
    noise = np.empty(arr.size, dtype=np.int64)
    if arr.size and _fill_laplace(sampler, noise, _bits or os.urandom):
        limit = np.iinfo(np.int64).max - int(np.abs(noise).max())
        if int(arr.max()) > limit or int(arr.min()) < -limit:
            raise QueryError(too_close)
    return arr + noise.reshape(arr.shape)


def laplace_tv_bound(scale: float) -> float:
    """TV distance of ``discrete_laplace(scale, ·)`` to the exact distribution: 0 (exact)."""
    return _laplace_sampler(_check_scale(scale)).tv


def _gauss_params(sigma: float) -> tuple[float, _Laplace]:
    s = _check_scale(sigma, "sigma", 0.0)
    return s, _laplace_sampler(float(math.floor(s) + 1))


def gaussian_tv_bound(sigma: float) -> float:
    """The proven TV distance bound of ``discrete_gaussian(sigma, ·)`` per draw."""
    _, lap = _gauss_params(sigma)
    err = 2 * lap.tv + _EPS_ACCEPT
    return err / (_ACCEPT_MIN - err)


def discrete_gaussian(sigma: float, size: int, *, _bits: Bits | None = None) -> np.ndarray:
    """``size`` iid draws with P(k) ∝ exp(-k²/(2σ²)), int64, from ``os.urandom``.

    Canonne–Kamath–Steinke rejection from discrete Laplace(⌊σ⌋+1), vectorised.
    TV distance to the exact distribution ≤ ``gaussian_tv_bound(sigma)`` ≤ 2^-47.

    For σ < 1/16 it returns zeros without drawing: the exact distribution puts mass
    P(X ≠ 0) ≤ 2·e^(-1/(2σ²))/(1 − e^(-3/(2σ²))) < 2^-183 elsewhere, far within the TV
    bound (and σ² would underflow float64 below σ ≈ 1.5e-162, where the rejection step
    divided 0 by 0 and never accepted).
    """
    s, lap = _gauss_params(sigma)
    n = _check_size(size)
    if s < _GAUSS_ZERO_SIGMA:
        return np.zeros(n, dtype=np.int64)
    bits = _bits or os.urandom
    out = np.empty(n, dtype=np.int64)
    t = math.floor(s) + 1
    ssq = s * s
    c = ssq / t
    two_ssq = 2.0 * ssq
    filled, rate = 0, 0.7  # acceptance-rate estimate: only sets batch sizes
    while filled < n:
        need = n - filled
        m = int(need / rate * 1.05) + 64
        y = np.empty(m, dtype=np.int64)
        _fill_laplace(lap, y, bits)
        d = np.abs(y).astype(np.float64)
        d -= c
        d *= d
        d /= two_ssq
        np.negative(d, out=d)
        np.exp(d, out=d)
        d *= 2.0**53
        u = (np.frombuffer(bits(8 * m), dtype=np.uint64) >> np.uint64(11)).astype(np.float64)
        acc = y[u < d]
        rate = max(0.2, acc.size / m)
        k = min(need, acc.size)
        out[filled : filled + k] = acc[:k]
        filled += k
    return out
