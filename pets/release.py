"""What a session gives back: a :class:`Release`, or an :class:`Explanation` before one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from .cost import Cost
from .plan import Plan

__all__ = ["Release", "Extract", "Explanation"]


@dataclass(frozen=True)
class Release:
    """A released answer.

    ``df`` holds the released values; ``ci(level)`` their confidence intervals (one row
    per released cell and aggregate); ``spent`` the privacy cost charged to the ledger;
    ``audit_id`` the audit record of this release; ``scale`` the noise scale per output
    (for a mean or variance: of its sum); ``suppressed`` how many cells were withheld
    for falling below the policy's minimum group size (for a histogram: cell–bin rows).
    A histogram's ``df`` and ``ci()`` are in long form: one row per cell and bin, the
    bin's label in a column named after the histogram's column.

    ``dummy=True``: the answer was computed on a dummy table (``s.release(...,
    dummy=True)``), not on the data; ``spent`` is what the real release would charge
    (nothing was charged) and ``audit_id`` is 0 (nothing was audited).
    """

    df: pd.DataFrame
    spent: Cost
    audit_id: int
    plan: Plan
    protection: Any
    scale: dict[str, float] = field(default_factory=dict)
    suppressed: int = 0
    _ci: Callable[[float], pd.DataFrame] | None = field(default=None, repr=False)
    audit_ids: dict[str, int] | None = None  # federated releases: each holder's own record
    repeat_of: int | None = None  # a repeated query: the audit record of the first answer
    dummy: bool = False  # computed on a dummy table (s.release(..., dummy=True)): no data

    def ci(self, level: float = 0.95) -> pd.DataFrame:
        """Intervals that cover the exact (clamped) statistic with probability ≥ ``level``:
        columns are the group keys, ``aggregate``, ``value``, ``lower``, ``upper``."""
        if self._ci is None:
            raise TypeError("this release has no confidence intervals")
        return self._ci(level)

    def __repr__(self) -> str:
        return (
            f"Release({'dummy, ' if self.dummy else ''}spent=({self.spent}), audit_id={self.audit_id}, "
            f"cells={len(self.df)}, suppressed={self.suppressed})\n{self.df!r}"
        )

    def _repr_html_(self) -> str:
        """Notebook display: each cell with its 95% interval drawn (:mod:`pets.display`)."""
        from .display import release_html

        return release_html(self)


@dataclass(frozen=True)
class Extract:
    """A released record-level extract (e.g. k-anonymous).

    ``df`` the released rows (generalised quasi-identifiers, suppressed rows left out);
    ``transformation`` the generalisation level per quasi-identifier (or
    ``"mondrian"``); ``suppressed`` rows removed; ``metrics`` information loss and
    re-identification risk; ``classes`` equivalence classes; ``audit_id`` the audit
    record; ``extracts_left`` how many more extracts the policy allows this analyst.
    ``dummy=True``: computed on a dummy table, not on the data (``audit_id`` 0,
    ``extracts_left`` None: nothing was counted).
    """

    df: pd.DataFrame
    transformation: Any
    suppressed: int
    metrics: dict[str, float]
    classes: int
    audit_id: int
    plan: Plan
    protection: Any
    models: list[str] = field(default_factory=list)
    extracts_left: int | None = None
    spent: Cost = field(default_factory=Cost)
    dummy: bool = False  # computed on a dummy table (s.release(..., dummy=True)): no data

    def __repr__(self) -> str:
        return (
            f"Extract({'dummy, ' if self.dummy else ''}rows={len(self.df)}, suppressed={self.suppressed}, classes={self.classes}, "
            f"transformation={self.transformation}, audit_id={self.audit_id})"
        )

    def _repr_html_(self) -> str:
        from .display import extract_html

        return extract_html(self)


@dataclass(frozen=True)
class Explanation:
    """What a release would do, computed without touching the data or the budget.

    ``allowed`` and, when refused, ``rule`` and ``message``; ``cost`` it would charge;
    ``scale`` and ``ci_width`` (95% interval, full width) per output — ``None`` where
    the width depends on the data (means, variances); ``remaining`` budget now;
    ``details`` one row per output.
    """

    allowed: bool
    cost: Cost
    rule: str | None = None
    message: str | None = None
    column: str | None = None
    scale: dict[str, float] = field(default_factory=dict)
    ci_width: dict[str, float | None] = field(default_factory=dict)
    remaining: Cost | None = None
    details: pd.DataFrame | None = field(default=None, repr=False)

    def _repr_html_(self) -> str:
        from .display import explanation_html

        return explanation_html(self)

    def __str__(self) -> str:
        if not self.allowed:
            return f"refused by rule {self.rule!r}: {self.message}"
        lines = [f"allowed; cost {self.cost}; remaining before it {self.remaining}"]
        for name, s in self.scale.items():
            if name not in self.ci_width:  # no interval to speak of (a model's noise)
                lines.append(f"  {name}: noise scale {s:g}")
                continue
            w = self.ci_width.get(name)
            ws = f"{w:g}" if w is not None else "depends on group size"
            lines.append(f"  {name}: noise scale {s:g}, 95% CI width {ws}")
        return "\n".join(lines)
