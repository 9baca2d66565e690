"""Accuracy of discrete noise: confidence half-widths, computed in closed form."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

__all__ = ["laplace_half_width", "gaussian_half_width", "check_level", "selection_margin",
           "smallest"]

from ..errors import QueryError


def check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not (0 < level < 1):
        raise QueryError(f"the confidence level must be between 0 and 1 (e.g. 0.95), got {level!r}")
    if level < 0.5:
        raise QueryError(
            f"ci() takes the confidence level (e.g. 0.95 for 95%), not alpha; got {level!r}"
        )
    return float(level)


def laplace_half_width(scale: float, level: float) -> int:
    """The smallest integer h with P(|X| > h) ≤ 1 − level for X ~ discrete Laplace(scale).

    P(X = k) = (1 − q)/(1 + q)·q^|k| with q = exp(−1/scale), so for m ≥ 1
    P(|X| ≥ m) = 2·q^m / (1 + q). The interval value ± h covers the exact (pre-noise)
    value with probability at least ``level``.
    """
    alpha = 1.0 - level
    q = math.exp(-1.0 / scale)
    m = -scale * math.log(alpha * (1.0 + q) / 2.0)  # P(|X| >= m) = alpha
    h = max(0, math.ceil(m - 1e-12) - 1)
    # guard against rounding: make sure the tail beyond h is within alpha
    while 2.0 * q ** (h + 1) / (1.0 + q) > alpha:
        h += 1
    return h


def tail_probability(scale: float, h: np.ndarray | int) -> np.ndarray:
    """P(|X| > h) for discrete Laplace(scale)."""
    q = math.exp(-1.0 / scale)
    return 2.0 * np.power(q, np.asarray(h) + 1.0) / (1.0 + q)


def gaussian_tail(sigma: float, t: int) -> float:
    """An upper bound on P(|X| ≥ t) for X ~ discrete Gaussian N_Z(0, σ²), t ≥ 1.

    Exact (a sum of the pmf) for σ ≤ 1000. Beyond, with the normaliser
    Z = Σ_k e^{-k²/2σ²} ≥ σ·sqrt(2π) (Poisson summation):
    P(X ≥ t) ≤ (e^{-t²/2σ²} + ∫_t^∞ e^{-x²/2σ²} dx) / Z ≤ e^{-t²/2σ²}/(σ·sqrt(2π)) + Q(t/σ).
    """
    if t <= 0:
        return 1.0
    if sigma <= 1000:
        k = np.arange(0, int(math.ceil(sigma * 40)) + 2, dtype=np.float64)
        with np.errstate(over="ignore"):  # (k/σ)², not k²/σ²: no 0/0 when σ² underflows
            w = np.exp(-0.5 * (k / sigma) ** 2)
        z = 2.0 * w.sum() - w[0]
        return float(min(1.0, 2.0 * w[int(t):].sum() / z))
    one = math.exp(-t * t / (2.0 * sigma * sigma)) / (sigma * math.sqrt(2.0 * math.pi))
    return min(1.0, 2.0 * (one + 0.5 * math.erfc(t / (sigma * math.sqrt(2.0)))))


def smallest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """The smallest integer k > ``lo`` with ``ok(k)``, for ``ok`` monotone (false, then
    true) and ``ok(lo)`` false or ``lo`` below the domain: doubling ``hi`` until
    ``ok(hi)``, then bisection."""
    while not ok(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: not ok(lo) (or lo below the domain), ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


@lru_cache(maxsize=1024)
def gaussian_half_width(sigma: float, level: float) -> int:
    """The smallest integer h with P(|X| > h) ≤ 1 − level for X ~ N_Z(0, σ²) (using
    :func:`gaussian_tail`, exact for σ ≤ 1000 and a proven upper bound beyond)."""
    alpha = 1.0 - level
    return smallest(lambda h: gaussian_tail(sigma, h + 1) <= alpha,
                    -1, max(1, int(math.ceil(sigma * 40))))


@lru_cache(maxsize=1024)
def selection_margin(noise: str, scale: float, alpha: float) -> int:
    """The smallest k ≥ 0 with P(Z ≥ k + 1) ≤ alpha · P(Z ≥ 1) for the noise Z
    (``"laplace"``: discrete Laplace of ``scale``; ``"gaussian"``: N_Z(0, scale²)).

    Both are log-concave, so P(Z ≥ m + k)/P(Z ≥ m) does not increase with m: a cell whose
    exact count x lies below a threshold T (m = T − x ≥ 1) and is released (noisy ≥ T)
    has its noisy value at T + k or above with conditional probability at most alpha."""
    if noise == "laplace":
        q = math.exp(-1.0 / scale)
        if q <= 0.0:
            return 0
        k = max(0, math.ceil(math.log(alpha) / math.log(q)) - 1)
        while q**k > alpha:  # P(Z ≥ k+1)/P(Z ≥ 1) = q^k
            k += 1
        return k
    if scale <= 1000:
        p1 = gaussian_tail(scale, 1) / 2.0  # exact (a sum of the pmf)
    else:  # P(Z = 0) = 1/Σ e^{-k²/2σ²} ≤ 1/(σ·sqrt(2π))
        p1 = (1.0 - 1.0 / (scale * math.sqrt(2.0 * math.pi))) / 2.0
    if p1 <= 0.0:  # no mass off zero
        return 0
    target = alpha * p1
    return smallest(lambda k: gaussian_tail(scale, k + 1) / 2.0 <= target,
                    -1, max(1, int(math.ceil(scale))))
