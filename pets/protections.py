"""Protections: how an answer is released."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import QueryError

__all__ = ["Protection", "DP", "protection_from_dict"]


class Protection:
    """Base class of the release protections."""

    form: str = ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class DP(Protection):
    """Differential privacy with budget ``epsilon`` (and ``delta``) for one release.

    Guarantee: the released values are (ε, δ)-differentially private with respect to
    adding or removing one person (the policy's privacy unit; one row per person when
    it names none), with each person's contribution bounded as the policy says.
    Counts, sums and means over public keys use discrete Laplace noise and are pure
    ε-DP: they spend δ = 0 whatever ``delta`` allows.
    """

    epsilon: float
    delta: float = 0.0
    form = "dp"

    def __post_init__(self) -> None:
        e, d = self.epsilon, self.delta
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0:
            raise QueryError(f"DP(epsilon=...) must be a finite number > 0, got {e!r}")
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (0 <= d < 1):
            raise QueryError(f"DP(delta=...) must be a number in [0, 1), got {d!r}")
        object.__setattr__(self, "epsilon", float(e))
        object.__setattr__(self, "delta", float(d))

    def to_dict(self) -> dict[str, Any]:
        return {"form": "dp", "epsilon": self.epsilon, "delta": self.delta}


def protection_from_dict(d: dict[str, Any]) -> Protection:
    form = d.get("form")
    if form == "dp":
        return DP(epsilon=d["epsilon"], delta=d.get("delta", 0.0))
    raise QueryError(f"unknown protection {form!r}")
