"""What a verification gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..cost import Cost

__all__ = ["Verification", "BatchVerification", "ANSWERS"]

#: the answers a verification can give (``no_subject`` only where the policy reveals
#: membership; otherwise an absent subject answers ``no_match``)
ANSWERS = ("match", "no_match", "no_subject")


@dataclass(frozen=True)
class Verification:
    """One verification answer: ``match`` is True or False — nothing else about the
    record. ``answer`` is ``"match"``, ``"no_match"`` or (where the policy reveals
    membership) ``"no_subject"``. ``answers_left``: how many more answers the policy
    allows this analyst in the current period. ``spent`` is no privacy budget: a
    verification is counted against quotas instead."""

    match: bool
    answer: str
    audit_id: int
    answers_left: int | None = None
    spent: Cost = field(default_factory=Cost)

    def __bool__(self) -> bool:
        return self.match


@dataclass(frozen=True)
class BatchVerification:
    """One answer per row of the subjects frame, in its order: ``df`` is that frame with
    ``match`` (bool) and ``answer`` columns; ``match`` the boolean column alone."""

    df: pd.DataFrame
    audit_id: int
    answers_left: int | None = None
    spent: Cost = field(default_factory=Cost)

    @property
    def match(self) -> pd.Series:
        return self.df["match"]

    @property
    def answer(self) -> pd.Series:
        return self.df["answer"]
