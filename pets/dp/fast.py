"""A fast, vectorised discrete Laplace / discrete Gaussian sampler fed only by the OS CSPRNG.

``pets.dp.samplers`` draws noise with OpenDP's exact samplers, at 12–30 µs a cell. This
module draws the same distributions at millions of cells a second, with every random bit
coming from the operating system's CSPRNG (``os.urandom``; never ``numpy.random``: numpy
only does the arithmetic) and with a proven bound on the total variation (TV) distance
between what it outputs and the exact distribution:

* ``discrete_laplace(scale, size)``: P(k) ∝ exp(-|k|/scale).  **TV ≤ 2^-53 ≈ 1.1e-16**
  for every valid scale (the exact per-scale bound, usually smaller, is
  ``laplace_tv_bound(scale)``).
* ``discrete_gaussian(sigma, size)``: P(k) ∝ exp(-k²/(2σ²)).  **TV ≤ 2^-47 ≈ 7.1e-15**
  (``gaussian_tv_bound(sigma)``), assuming numpy's float64 ``exp`` is within 4 ulp (tested
  in ``tests/unit/test_fast_sampler.py``).
* ``add_discrete_laplace(values, scale)``: ``values + discrete_laplace(scale, len)``.

A TV distance of γ means each output event's probability differs from the exact one by at
most γ; so an ε-DP guarantee of the exact mechanism becomes (ε, γ·(1 + e^ε))-DP for this
sampler — at γ ≈ 1e-16 that is negligible next to any δ anybody uses.

Construction (discrete Laplace)
-------------------------------
Let q = e^{-1/t} (t = scale) and z = P(X = 0) = (1-q)/(1+q). Then X = 0 with probability
z, otherwise X = S·(1 + G) with a fair sign S and G ~ Geometric(q), P(G = g) = (1-q)q^g,
independent (check: (1-z)/2·(1-q)q^g = (1-q)/(1+q)·q^{g+1}).

*Digits.* With radix R = 256: P(G = R·h + d) = (1-q)q^{Rh+d} =
[(1-q)/(1-q^R)·q^d]·[(1-q^R)(q^R)^h] for 0 ≤ d < R, so the low digit D ~ "geometric of
ratio q truncated to [0, R)" and the quotient H ~ Geometric(q^R) are independent.
Repeating on H: G = Σ_{j<J-1} R^j D_j + R^{J-1}·T with independent D_j (ratio q^{R^j},
truncated to [0, R)) and T ~ Geometric(q^{R^{J-1}}). J is the smallest number of digits
for which the top table (below) has at most 2048 thresholds (J = 1 for scale ≤ 21.4,
J = 2 up to ≈ 5,490, J = 3 up to ≈ 1.40e6, J ≤ 6 for all scale ≤ 2^40).

The zero/sign choice is folded into the top variable: W = 0 with probability z, else
W = S·(1 + R^{J-1}·T); then X = W + sign(W)·Σ_{j<J-1} R^j D_j. With J = 1, W = X.

*Tables.* Each of the J independent variables V (atoms a_0 < … < a_{n-1}, exact CDF
F_k = P(V ≤ a_k), lower tail L = P(V < a_0), upper tail H = 1 - F_{n-1}) is sampled by
inverse CDF on the 2^-64 grid: thresholds C_k = round(2^64·F_k), k < n-1 (computed with
80-digit ``decimal`` arithmetic; atoms are dropped at both ends once the CDF rounds to 0
or 2^64), and V̂ = a_{#{k: C_k ≤ U}} for a uniform 64-bit U. So P(V̂ = a_k) =
(C_k - C_{k-1})/2^64 with C_{-1} = 0, C_{n-1} = 2^64.

*Lemma (one table).* With e_k = C_k/2^64 - F_k (|e_k| ≤ 2^-65, k ≤ n-2), e_{-1} = -L,
e_{n-1} = H: P(V̂ = a_k) - P(V = a_k) = e_k - e_{k-1}, so
Σ_k |P(V̂=a_k) - P(V=a_k)| ≤ 2·Σ_{k≤n-2}|e_k| + L + H, and the atoms outside carry
L + H; hence TV(V̂, V) ≤ K·2^-65 + L + H with K = n - 1 stored thresholds (a tiny slack
covers the 80-digit arithmetic).

*Theorem.* X̂ is the same function of (V̂_1, …, V̂_J) as X is of (V_1, …, V_J), all
independent, so TV(X̂, X) ≤ TV(product) ≤ Σ_j TV(V̂_j, V_j) ≤ Σ_j (K_j·2^-65 + L_j + H_j).
With K_top ≤ 2048, K ≤ 255 for each low digit, J ≤ 6 and every tail ≤ 2^-65, the sum is
< 3400·2^-65 < 2^-53. ``laplace_tv_bound`` returns the exact sum for a scale.

*Bytes (lazy precision).* U is consumed 16 bits first: a 65,536-entry lookup table gives
V̂ directly unless a threshold's top 16 bits equal U's (at most K of 65,536 buckets); only
then 48 more bits are read and ``searchsorted`` on the 64-bit thresholds decides. The
output is exactly the 64-bit inverse-CDF distribution above, at ~2 bytes per variable:
2 bytes a draw for scale ≤ 21.4, 4 up to ≈ 5,490, 6 up to ≈ 1.40e6 (+ ≤ 3% × 8 bytes).

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
‖μ - ν‖₁ ≤ 2·TV(Ŷ, Y) + ε_a and ‖μ/|μ| - ν/|ν|‖₁ ≤ 2‖μ - ν‖₁/|μ|. The exact acceptance
rate |ν| = Z(σ) ≥ 0.44 for all σ > 0 (minimum ≈ 0.445 near σ = 0.3; → 0.760 for large σ;
checked on a grid in the tests), so
TV(output, N_Z(0,σ²)) ≤ (2·2^-53 + 2^-49)/(0.44 - 2^-48) < 2^-47 ≈ 7.1e-15.

Scales: refused (``QueryError``) when ≤ 0, NaN, infinite or above 2^40 (the same ceiling
as ``pets.dp.samplers``; the noise stays far inside int64, |X| < 2^47).

Tables are built once per scale (``lru_cache``) in a few milliseconds.

``_bits`` (every public function) is a test hook only: a callable ``n -> n bytes`` that
replaces ``os.urandom`` so tests can be reproducible. Never pass it in production.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from functools import lru_cache

import numpy as np

from ..errors import QueryError

__all__ = [
    "GAUSSIAN_TV_BOUND",
    "LAPLACE_TV_BOUND",
    "add_discrete_laplace",
    "discrete_gaussian",
    "discrete_laplace",
    "gaussian_tv_bound",
    "laplace_tv_bound",
]

Bits = Callable[[int], bytes]

LAPLACE_TV_BOUND = 2.0**-53  # proven for every valid scale (module docstring)
GAUSSIAN_TV_BOUND = 2.0**-47
_MAX_SCALE = 2.0**40
_RADIX_BITS = 8
_RADIX = 1 << _RADIX_BITS
_TOP_MAX_THRESHOLDS = 2048
_STAGE1_BITS = 16  # bits read first for each variable
_STAGE2_SHIFT = 64 - _STAGE1_BITS
_SENTINEL = np.iinfo(np.int64).min
_TWO64 = 1 << 64
_CTX = Context(prec=80)
_SLACK = Decimal(10) ** -40  # covers the 80-digit arithmetic in the CDF values
_CHUNK = 1 << 15  # draws per inner step: keeps the working arrays in cache
_ACCEPT_MIN = 0.44  # lower bound on the CKS acceptance rate Z(σ)
_EPS_ACCEPT = 2.0**-49  # |P(accept|y) - a(y)| (module docstring)


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Table:
    """Inverse-CDF sampler of one discrete variable on the 2^-64 grid, 16 bits first."""

    thresholds: np.ndarray  # uint64, K entries, non-decreasing
    values: np.ndarray  # int64, K + 1 atoms
    lut: np.ndarray  # int64, 65,536 entries: the atom, or _SENTINEL (ambiguous bucket)
    tv: Decimal  # proven TV bound of this table (Lemma)
    ambiguous: float  # fraction of 16-bit buckets that need the 48 more bits

    def sample(self, u16: np.ndarray, out: np.ndarray, bits: Bits) -> None:
        np.take(self.lut, u16, out=out)
        if self.ambiguous:
            idx = np.flatnonzero(out == _SENTINEL)
            if idx.size:
                low = np.frombuffer(bits(8 * idx.size), dtype=np.uint64) >> np.uint64(16)
                full = (u16[idx].astype(np.uint64) << np.uint64(_STAGE2_SHIFT)) | low
                out[idx] = self.values[np.searchsorted(self.thresholds, full, side="right")]


def _build_table(atoms: list[int], pmf: list[Decimal], lower_tail: Decimal) -> _Table:
    """Thresholds round(2^64·F_k); atoms dropped at either end where the CDF rounds to 0
    or 2^64 (their mass moves into the tails L, H of the Lemma)."""
    with localcontext(_CTX):
        cdf: list[Decimal] = []
        acc = lower_tail
        for p in pmf:
            acc += p
            cdf.append(acc)
        scaled = [int((f * _TWO64).to_integral_value()) for f in cdf[:-1]]
        # drop leading atoms whose threshold rounds to 0 (they never come out)
        first = 0
        while first < len(scaled) and scaled[first] <= 0:
            first += 1
        # last kept atom: the first whose threshold rounds to 2^64
        last = len(atoms) - 1
        for k in range(first, len(scaled)):
            if scaled[k] >= _TWO64:
                last = k
                break
        low_tail = cdf[first - 1] if first > 0 else lower_tail
        high_tail = 1 - cdf[last]  # H = 1 - F_last (includes mass beyond the atom list)
        kept = scaled[first:last]
        tv = len(kept) * (Decimal(2) ** -65) + low_tail + high_tail + (len(kept) + 2) * _SLACK
    thresholds = np.array(kept, dtype=np.uint64)
    values = np.array(atoms[first : last + 1], dtype=np.int64)
    starts = np.arange(1 << _STAGE1_BITS, dtype=np.uint64) << np.uint64(_STAGE2_SHIFT)
    ends = starts | np.uint64((1 << _STAGE2_SHIFT) - 1)
    lo = np.searchsorted(thresholds, starts, side="right")
    hi = np.searchsorted(thresholds, ends, side="right")
    lut = np.where(lo == hi, values[lo], _SENTINEL).astype(np.int64)
    return _Table(thresholds, values, lut, tv, float(np.mean(lo != hi)))


def _ratio(exponent: Decimal) -> Decimal:
    with localcontext(_CTX):
        return (-exponent).exp()


def _digit_table(r: Decimal, weight: int) -> _Table:
    """Geometric of ratio r truncated to [0, R): P(d) = (1-r) r^d / (1 - r^R); the table
    outputs weight·d (the digit already in place)."""
    with localcontext(_CTX):
        norm = (1 - r) / (1 - r**_RADIX) if r != 1 else Decimal(1) / _RADIX
        pmf, rd = [], Decimal(1)
        for _ in range(_RADIX):
            pmf.append(norm * rd)
            rd *= r
    return _build_table([weight * d for d in range(_RADIX)], pmf, Decimal(0))


def _top_table(q: Decimal, r: Decimal, base: int) -> _Table | None:
    """W = 0 w.p. z = (1-q)/(1+q), else ±(1 + base·T), T ~ Geometric(r), sign fair.
    (base = 1, r = q gives X itself.) None if it would need > _TOP_MAX_THRESHOLDS."""
    with localcontext(_CTX):
        z = (1 - q) / (1 + q)
        half = (1 - z) / 2
        tiny = Decimal(2) ** -70
        side, rt = [], Decimal(1)  # P(W = +(1 + base·τ)) for τ = 0, 1, …
        while True:
            side.append(half * (1 - r) * rt)
            rt *= r
            if half * rt <= tiny:  # mass beyond: half·r^{τ+1}
                break
            if 2 * len(side) > _TOP_MAX_THRESHOLDS:
                return None
        tail = half * rt
        neg = [-(1 + base * k) for k in range(len(side) - 1, -1, -1)]
        pos = [1 + base * k for k in range(len(side))]
        return _build_table(neg + [0] + pos, side[::-1] + [z] + side, tail)


@dataclass(frozen=True)
class _Laplace:
    top: _Table
    digits: tuple[_Table, ...]  # D_0, …, D_{J-2}
    tv: float
    max_abs: int  # largest |value| this sampler can output

    @property
    def bytes_per_draw(self) -> float:
        tables = (self.top, *self.digits)
        return sum(2 + 8 * t.ambiguous for t in tables)


@lru_cache(maxsize=128)
def _laplace_sampler(scale: float) -> _Laplace:
    t = Decimal(scale)
    q = _ratio(Decimal(1) / t)
    # estimate the number of digits, then grow until the top table is small enough
    j = 1
    while 90 * scale / _RADIX ** (j - 1) > _TOP_MAX_THRESHOLDS:
        j += 1
    while True:
        base = _RADIX ** (j - 1)
        top = _top_table(q, _ratio(Decimal(base) / t), base)
        if top is not None:
            break
        j += 1
    digits = tuple(_digit_table(_ratio(Decimal(_RADIX**i) / t), _RADIX**i) for i in range(j - 1))
    tv = top.tv + sum((d.tv for d in digits), Decimal(0))
    max_abs = int(np.abs(top.values).max()) + sum(int(d.values.max()) for d in digits)
    return _Laplace(top, digits, float(tv), max_abs)


# --------------------------------------------------------------------------- checks


def _check_scale(scale: float, what: str = "scale") -> float:
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


def _fill_laplace(sampler: _Laplace, out: np.ndarray, bits: Bits) -> None:
    n = out.size
    ntab = 1 + len(sampler.digits)
    c = min(n, _CHUNK)
    low_buf = np.empty(c, dtype=np.int64)
    d_buf = np.empty(c, dtype=np.int64)
    for s in range(0, n, _CHUNK):
        e = min(n, s + _CHUNK)
        m = e - s
        u = np.frombuffer(bits(2 * m * ntab), dtype=np.uint16)
        o = out[s:e]
        sampler.top.sample(u[:m], o, bits)
        if sampler.digits:
            low, d = low_buf[:m], d_buf[:m]
            for i, table in enumerate(sampler.digits):  # digit values come pre-scaled by R^i
                table.sample(u[(i + 1) * m : (i + 2) * m], d if i else low, bits)
                if i:
                    low += d
            np.sign(o, out=d)
            low *= d
            o += low  # X = W + sign(W)·Σ_j R^j D_j


def discrete_laplace(scale: float, size: int, *, _bits: Bits | None = None) -> np.ndarray:
    """``size`` iid draws with P(k) ∝ exp(-|k|/scale), int64, from ``os.urandom``.

    TV distance to the exact distribution ≤ ``laplace_tv_bound(scale)`` ≤ 2^-53.
    ``_bits`` is a test hook (reproducible byte stream); never use it for real noise.
    """
    s = _check_scale(scale)
    n = _check_size(size)
    out = np.empty(n, dtype=np.int64)
    if n:
        _fill_laplace(_laplace_sampler(s), out, _bits or os.urandom)
    return out


def add_discrete_laplace(values: np.ndarray, scale: float, *, _bits: Bits | None = None) -> np.ndarray:
    """``values`` (integers, any shape) plus iid discrete Laplace noise of ``scale``."""
    s = _check_scale(scale)
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise QueryError(f"values must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    sampler = _laplace_sampler(s)
    if arr.size:
        limit = np.iinfo(np.int64).max - sampler.max_abs
        if int(arr.max()) > limit or int(arr.min()) < -limit:
            raise QueryError("values are too close to the 64-bit limit to add noise of this scale")
    noise = np.empty(arr.size, dtype=np.int64)
    if arr.size:
        _fill_laplace(sampler, noise, _bits or os.urandom)
    return arr + noise.reshape(arr.shape)


def laplace_tv_bound(scale: float) -> float:
    """The proven TV distance bound of ``discrete_laplace(scale, ·)`` per draw."""
    return _laplace_sampler(_check_scale(scale)).tv


def _gauss_params(sigma: float) -> tuple[float, _Laplace]:
    s = _check_scale(sigma, "sigma")
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
    """
    s, lap = _gauss_params(sigma)
    n = _check_size(size)
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
