"""Accuracy of discrete noise: confidence half-widths, computed in closed form."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["laplace_half_width", "check_level"]

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
