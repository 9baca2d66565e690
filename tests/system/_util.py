"""Shared helpers of the system tests (constants, dict policies, state snapshots and
the exact discrete Laplace distribution the statistical tests compare against)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import pets

#: The per-assertion false-failure rate the statistical tests are built for.
ALPHA = 1e-6
#: A confidence level whose interval fails to cover with probability at most ALPHA.
LEVEL = 1.0 - ALPHA

ANALYST = "alice"
PURPOSE = "labour-stats"

#: The API's example grade rules, as a dict policy writes them.
ALL_GRADES: dict[str, dict[str, Any]] = {
    "1": {"allow": ["dp", "kanon", "he", "verify"]},
    "2": {"allow": ["dp", "kanon", "he", "verify"], "min_k": 5},
    "3": {"allow": ["dp", "he", "verify"], "max_epsilon": 1.0, "min_group_size": 10},
    "4": {"allow": []},
}


def column(role: str = "attribute", grade: int = 1, **extra: Any) -> dict[str, Any]:
    """One ``[columns.<name>]`` table of a dict policy."""
    return {"role": role, "grade": grade, **extra}


def policy(columns: dict[str, dict[str, Any]], grades: dict[str, Any] | None = None,
           **top: Any) -> dict[str, Any]:
    """A dict policy; grades default to the API's example grade rules."""
    return {"columns": columns, "grades": grades if grades is not None else ALL_GRADES, **top}


@dataclass(frozen=True)
class State:
    """What a bad input must not change: the audit log, the budgets, the datasets."""

    audit_len: int
    audit_head: tuple[int, str]
    remaining: tuple[pets.Cost, ...]
    datasets: tuple[str, ...]


def snapshot(h: pets.Holder, *who: Any) -> State:
    """``snapshot(holder, session, ("bob", "adult", "p"), ...)``."""
    rem = []
    for w in who:
        if isinstance(w, pets.Session):
            rem.append(w.remaining())
        else:
            a, d, p = w
            rem.append(h.remaining(a, dataset=d, purpose=p))
    return State(len(h.audit()), h.audit().head(), tuple(rem), tuple(h.datasets()))


def audit_text(h: pets.Holder) -> str:
    """Every audit record of a holder as one JSON text, for scanning."""
    return json.dumps(h.audit().records(), ensure_ascii=False, default=str)


# ------------------------------------------------------------ discrete Laplace, exactly


def dlap_q(scale: float) -> float:
    return math.exp(-1.0 / scale)


def dlap_pmf(k: np.ndarray | int, scale: float) -> np.ndarray:
    """P(X = k) = (1 − q)/(1 + q) · q^|k|, q = exp(−1/scale)."""
    q = dlap_q(scale)
    return (1 - q) / (1 + q) * np.power(q, np.abs(np.asarray(k, dtype=np.float64)))


def dlap_variance(scale: float) -> float:
    """Var X = 2q/(1 − q)²."""
    q = dlap_q(scale)
    return 2 * q / (1 - q) ** 2


def dlap_fourth_moment(scale: float) -> float:
    """E X⁴, summed from the pmf (the tail beyond the cut-off is below 1e-300)."""
    top = int(math.ceil(800 * scale)) + 10
    k = np.arange(-top, top + 1, dtype=np.float64)
    return float(np.sum(dlap_pmf(k, scale) * k**4))


def dlap_tail(scale: float, h: int) -> float:
    """P(|X| > h) = 2 q^(h+1) / (1 + q)."""
    q = dlap_q(scale)
    return 2 * q ** (h + 1) / (1 + q)


def dlap_half_width(scale: float, level: float) -> int:
    """The smallest integer h ≥ 0 with P(|X| > h) ≤ 1 − level: solve the tail formula
    for h, then step to the smallest h that satisfies it (checked both ways)."""
    q = dlap_q(scale)
    h = max(0, math.floor(scale * math.log(2 / ((1 - level) * (1 + q)))) - 2)
    while h > 0 and dlap_tail(scale, h - 1) <= 1 - level:
        h -= 1
    while dlap_tail(scale, h) > 1 - level:
        h += 1
    return h
