"""Privacy cost: (epsilon, delta) and, for zCDP accounting, rho — exact arithmetic for
the ledger."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Cost", "exact"]


def exact(x: float) -> Fraction:
    """The decimal value a user wrote, as an exact fraction.

    ``0.1`` becomes exactly 1/10 (from ``repr``), so ten charges of 0.1 add up to
    exactly 1.0 and a budget is never over- or under-spent by float rounding.
    """
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    return Fraction(repr(float(x)))


@dataclass(frozen=True)
class Cost:
    """A privacy cost or budget: ``epsilon`` and ``delta`` of the (ε, δ)-DP guarantee,
    and ``rho`` — the zero-concentrated-DP parameter the same release (or budget) has,
    which is what a grant with ``accounting="zcdp"`` adds up (0 where not used)."""

    epsilon: float = 0.0
    delta: float = 0.0
    rho: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epsilon", "delta", "rho"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v) or v < 0:
                raise ValueError(f"Cost.{name} must be a number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            float(exact(self.epsilon) + exact(other.epsilon)),
            float(exact(self.delta) + exact(other.delta)),
            float(exact(self.rho) + exact(other.rho)),
        )

    def __str__(self) -> str:
        base = f"epsilon={self.epsilon:g}, delta={self.delta:g}"
        return base + (f", rho={self.rho:g}" if self.rho else "")

    def __repr__(self) -> str:
        # the same numbers as str(): r.spent, holder.remaining(...) and s.remaining()
        # look alike whether printed or shown by a notebook
        return f"Cost({self})"
