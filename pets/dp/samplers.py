"""Noise samplers for privacy noise.

All privacy noise in pets comes from OpenDP's exact discrete samplers (Canonne, Kamath
& Steinke 2020), which draw from a cryptographically secure generator inside OpenDP's
Rust core. Never ``numpy.random``, never floating-point Laplace.

Integers in, integers out: aggregates are exact integers (counts, or fixed-point sums),
so the noise is exactly distributed and the privacy map is exact.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

import numpy as np
import opendp.prelude as dp

from ..errors import InternalError, QueryError
from .accuracy import smallest

__all__ = [
    "discrete_laplace",
    "add_discrete_laplace",
    "laplace_scale",
    "laplace_epsilon",
    "add_discrete_gaussian",
    "gaussian_scale",
    "gaussian_rho",
    "gaussian_threshold",
    "zcdp_epsilon",
    "zcdp_rho",
    "float_laplace",
    "float_gaussian",
    "gamma_norm_vector",
]

# OpenDP gates its constructors behind ``enable_features("contrib")``, a process-wide
# switch. pets never flips it for the whole process (``import pets`` changes no global
# state of other libraries): each constructor below runs with "contrib" switched on for
# its duration only, and the switch is put back as the caller left it. Measurements,
# once built, run and map without the feature flag.
_F = TypeVar("_F", bound=Callable[..., Any])
_contrib_lock = threading.RLock()


def _with_contrib(fn: _F) -> _F:
    @wraps(fn)
    def scoped(*args: Any, **kwargs: Any) -> Any:
        from opendp.mod import GLOBAL_FEATURES

        with _contrib_lock:  # RLock: nested constructors; threads wait (short, CPU-only)
            had = "contrib" in GLOBAL_FEATURES
            if not had:
                GLOBAL_FEATURES.add("contrib")
            try:
                return fn(*args, **kwargs)
            finally:
                if not had:
                    GLOBAL_FEATURES.discard("contrib")

    return scoped  # type: ignore[return-value]


_I64 = "i64"
# Beyond this scale the noise alone could overflow 64-bit integers: refuse, don't saturate.
_MAX_SCALE = 2.0**40


@lru_cache(maxsize=256)
@_with_contrib
def _laplace(scale: float) -> Any:
    """OpenDP's vectorised discrete Laplace on i64 vectors under the L1 distance:
    ε-DP for inputs at L1 distance d with ε = d / scale (pure DP)."""
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=_I64)), dp.l1_distance(T=_I64), scale
    )


def laplace_epsilon(sensitivity: int, scale: float) -> float:
    """The ε OpenDP's own privacy map gives for L1 ``sensitivity`` at ``scale``."""
    return float(_laplace(float(scale)).map(int(sensitivity)))


@lru_cache(maxsize=4096)
def laplace_scale(sensitivity: int, epsilon: float) -> float:
    """The smallest scale whose OpenDP privacy map for ``sensitivity`` is ≤ ``epsilon``.

    Computed as sensitivity / ε, then nudged up by ulps until OpenDP's (conservatively
    rounded) map agrees, so the ε charged is never less than the ε spent.
    """
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise QueryError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if sensitivity <= 0:
        raise InternalError("sensitivity must be positive; this is a bug")
    scale = sensitivity / epsilon
    if not math.isfinite(scale) or scale > _MAX_SCALE:
        raise QueryError(
            f"epsilon={epsilon:g} is too small: the noise would be larger than any 64-bit "
            f"answer (scale {scale:g}); ask for epsilon >= {sensitivity / _MAX_SCALE:.3g}"
        )
    for _ in range(64):
        if laplace_epsilon(sensitivity, scale) <= epsilon:
            return scale
        scale = math.nextafter(scale, math.inf)
    raise InternalError("could not find a Laplace scale for this epsilon; this is a bug")


def add_discrete_laplace(values: np.ndarray, scale: float) -> np.ndarray:
    """``values`` (integers) plus discrete Laplace noise of ``scale``, in one OpenDP call."""
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        return arr.copy()
    out = _laplace(float(scale))(arr.tolist())
    return np.asarray(out, dtype=np.int64)


def discrete_laplace(scale: float, size: int) -> np.ndarray:
    """``size`` draws of discrete Laplace noise with ``scale`` (P(k) ∝ exp(-|k|/scale))
    as an int64 array."""
    if not (scale > 0 and math.isfinite(scale)):
        raise QueryError(f"scale must be a finite number > 0, got {scale!r}")
    if int(size) < 0:
        raise QueryError(f"size must be >= 0, got {size!r}")
    return add_discrete_laplace(np.zeros(int(size), dtype=np.int64), scale)


@_with_contrib
def laplace_threshold(scale: float, d_in: tuple[int, int, int], epsilon: float, delta: float,
                      with_threshold: bool = False) -> Any:
    """OpenDP's Laplace-threshold measurement on a map of group → count: releases the
    groups whose noisy count reaches the threshold (propose-test-release; Rogers 2023).

    ``d_in`` = (groups, total rows, rows per group) one person can change. The smallest
    threshold whose OpenDP privacy map gives at most (``epsilon``, ``delta``) is chosen.
    """
    dom = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=_I64))
    met = dp.l01inf_distance(dp.absolute_distance(T=_I64))

    def make(t: int) -> Any:
        return dp.m.make_laplace_threshold(dom, met, scale=float(scale), threshold=int(t))

    def ok(t: int) -> bool:
        eps, dlt = make(t).map(d_in)
        return eps <= epsilon * (1 + 1e-9) and dlt <= delta

    t = _smallest_threshold(ok, d_in[2], scale, delta)
    return (make(t), t) if with_threshold else make(t)  # with_threshold: (measurement, t)


@_with_contrib
def noisy_max(sensitivity: int, epsilon: float) -> tuple[Any, float]:
    """OpenDP's report-noisy-max (exact exponential noise) over i64 score vectors whose
    entries one person changes by at most ``sensitivity``: ε-DP for ε = its privacy map.
    Returns the measurement and its scale (the smallest whose map is ≤ ``epsilon``)."""
    dom = dp.vector_domain(dp.atom_domain(T=_I64))
    met = dp.linf_distance(T=_I64)
    scale = 2.0 * sensitivity / epsilon
    for _ in range(64):
        m = dp.m.make_noisy_max(dom, met, dp.max_divergence(), scale=scale)
        if float(m.map(int(sensitivity))) <= epsilon:
            return m, scale
        scale = math.nextafter(scale, math.inf)
    raise InternalError("could not find a noisy-max scale for this epsilon; this is a bug")


# -- discrete Gaussian under zero-concentrated DP ------------------------------------------


@lru_cache(maxsize=256)
@_with_contrib
def _gaussian(sigma: float) -> Any:
    """OpenDP's vectorised discrete Gaussian on i64 vectors (exact sampler, CSPRNG)."""
    return dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=_I64)), dp.l2_distance(T=_I64), sigma
    )


def gaussian_rho(l2_squared: int, sigma: float) -> float:
    """ρ of the discrete Gaussian mechanism with noise ``sigma`` on integer vectors whose
    squared L2 sensitivity is ``l2_squared``: ρ = Δ₂² / (2σ²) (Canonne, Kamath & Steinke
    2020, Thm 15: adding N_Z(0, σ²) to each coordinate is ρ-zCDP)."""
    return float(l2_squared) / (2.0 * sigma * sigma)


def gaussian_scale(l2_squared: int, rho: float) -> float:
    """The smallest σ (up to ulps) with Δ₂²/(2σ²) ≤ ``rho`` for squared L2 sensitivity
    ``l2_squared`` — computed, then nudged up until the float check agrees."""
    if not (rho > 0 and math.isfinite(rho)):
        raise QueryError(f"rho must be a finite number > 0, got {rho!r}")
    if l2_squared <= 0:
        raise InternalError("sensitivity must be positive; this is a bug")
    sigma = math.sqrt(l2_squared / (2.0 * rho))
    if not math.isfinite(sigma) or sigma > _MAX_SCALE:
        raise QueryError(
            f"the privacy budget is too small: the Gaussian noise would be larger than any "
            f"64-bit answer (sigma {sigma:g}); ask for a larger epsilon or delta"
        )
    for _ in range(64):
        if gaussian_rho(l2_squared, sigma) <= rho:
            return sigma
        sigma = math.nextafter(sigma, math.inf)
    raise InternalError("could not find a Gaussian scale for this rho; this is a bug")


def add_discrete_gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` (integers) plus discrete Gaussian noise N_Z(0, sigma²), in one exact
    OpenDP call."""
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        return arr.copy()
    return np.asarray(_gaussian(float(sigma))(arr.tolist()), dtype=np.int64)


@lru_cache(maxsize=4096)
@_with_contrib
def zcdp_epsilon(rho: float, delta: float) -> float:
    """The ε of the (ε, δ)-DP guarantee that ρ-zCDP implies at ``delta``, by OpenDP's
    conversion (Canonne, Kamath & Steinke 2020, Prop. 12 / Cor. 13 — tighter than
    ε = ρ + 2·sqrt(ρ·ln(1/δ)))."""
    if rho <= 0:
        return 0.0
    if not (0 < delta < 1):
        raise QueryError(f"delta must be in (0, 1) to convert zCDP to (epsilon, delta), got {delta!r}")
    # a one-dimensional Gaussian whose map at distance 1 is ≥ rho (OpenDP rounds up)
    m = dp.m.make_gaussian(dp.atom_domain(T=_I64), dp.absolute_distance(T=_I64),
                           1.0 / math.sqrt(2.0 * rho))
    return float(dp.c.make_zCDP_to_approxDP(m).map(1).epsilon(delta))


@lru_cache(maxsize=4096)
def zcdp_rho(epsilon: float, delta: float) -> float:
    """The largest ρ (to 1e-12 relative) whose zCDP guarantee implies (``epsilon``,
    ``delta``)-DP by :func:`zcdp_epsilon`."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise QueryError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if not (0 < delta < 1):
        raise QueryError(f"Gaussian noise needs 0 < delta < 1, got {delta!r}")
    lo, hi = 0.0, epsilon  # ρ-zCDP implies (ρ + 2·sqrt(ρ ln 1/δ), δ)-DP: ρ ≤ ε always
    while zcdp_epsilon(hi, delta) <= epsilon:  # (only for huge deltas)
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if zcdp_epsilon(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    if lo <= 0:
        raise QueryError(
            f"no Gaussian noise reaches epsilon={epsilon:g} at delta={delta:g}; "
            "allow a larger epsilon or delta"
        )
    return lo


@_with_contrib
def gaussian_threshold(sigma: float, d_in: tuple[int, int, int], rho: float, delta: float,
                       with_threshold: bool = False) -> Any:
    """OpenDP's Gaussian-threshold measurement on a map of group → count (releases the
    groups whose noisy count reaches the threshold; approximate zCDP, Rogers 2023).

    ``d_in`` = (groups, rows, rows per group) one person can change. The smallest
    threshold whose privacy map gives at most (``rho``, ``delta``) is chosen."""
    dom = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=_I64))
    met = dp.l02inf_distance(dp.absolute_distance(T=_I64))

    def make(t: int) -> Any:
        return dp.m.make_gaussian_threshold(dom, met, scale=float(sigma), threshold=int(t))

    def ok(t: int) -> bool:
        r, dlt = make(t).map(d_in)
        return r <= rho * (1 + 1e-9) and dlt <= delta

    t = _smallest_threshold(ok, d_in[2], sigma, delta)
    return (make(t), t) if with_threshold else make(t)  # with_threshold: (measurement, t)


def _smallest_threshold(ok: Any, linf: int, scale: float, delta: float) -> int:
    """The smallest threshold t with ``ok(t)`` (monotone in t), by doubling then
    bisection. OpenDP refuses a threshold below the per-group (l-infinity) contribution
    ``linf``, so the search starts there."""
    if not ok(2**60):
        raise QueryError(
            f"no threshold reaches delta={delta:g} at this noise scale; allow a larger delta"
        )
    return smallest(ok, linf - 1, max(1, linf, int(scale)))


# -- continuous noise for models (objective perturbation) ---------------------------------


@lru_cache(maxsize=64)
@_with_contrib
def _float_laplace(scale: float) -> Any:
    """OpenDP's vectorised Laplace on f64 vectors (CSPRNG; OpenDP samples the exact
    Laplace on a fine lattice and rounds, so no floating-point attack applies)."""
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                             dp.l1_distance(T=float), float(scale))


@lru_cache(maxsize=64)
@_with_contrib
def _float_gaussian(sigma: float) -> Any:
    """OpenDP's vectorised Gaussian on f64 vectors (CSPRNG, lattice sampling)."""
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                              dp.l2_distance(T=float), float(sigma))


def float_laplace(scale: float, size: int) -> np.ndarray:
    """``size`` draws of continuous Laplace noise with ``scale`` from OpenDP (float64)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise QueryError(f"scale must be a finite number > 0, got {scale!r}")
    return np.asarray(_float_laplace(float(scale))([0.0] * int(size)), dtype=np.float64)


def float_gaussian(sigma: float, size: int) -> np.ndarray:
    """``size`` draws of N(0, sigma²) from OpenDP (float64)."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise QueryError(f"sigma must be a finite number > 0, got {sigma!r}")
    return np.asarray(_float_gaussian(float(sigma))([0.0] * int(size)), dtype=np.float64)


def gamma_norm_vector(beta: float, dim: int) -> np.ndarray:
    """A vector b in R^dim with density ∝ exp(−beta·‖b‖₂) (the noise of objective
    perturbation, Chaudhuri, Monteleoni & Sarwate 2011): its norm is Gamma(dim, 1/beta) —
    the sum of dim exponentials, each the absolute value of a Laplace(1/beta) draw — and
    its direction uniform on the sphere (a normalised standard Gaussian vector). Every
    draw comes from OpenDP's samplers."""
    if not (beta > 0 and math.isfinite(beta)) or dim < 1:
        raise QueryError(f"beta must be a finite number > 0 and dim >= 1, got {beta!r}, {dim!r}")
    norm = float(np.abs(float_laplace(1.0 / beta, dim)).sum())
    while True:
        g = float_gaussian(1.0, dim)
        length = float(np.linalg.norm(g))
        if length > 0:
            return g / length * norm
