"""Verification (核验): the holder confirms facts about a subject without revealing them.

* :meth:`pets.Session.verify` / :meth:`pets.Session.verify_batch` — match / no match
  answers through the one release pipeline (:mod:`pets.mechanisms.verify`), under the
  policy's ``[verify]`` section (:mod:`pets.verify.policy`), counted per analyst and per
  subject per period in the ledger (:mod:`pets.verify.ledger`) and audited.

See docs/verification.md for the threat model of each mode and the bound in bits.
"""

from __future__ import annotations

from ..mechanisms.verify import Verify
from .hidden import HiddenVerifier
from .policy import ClaimRule, VerifyPolicy
from .results import ANSWERS, BatchVerification, Verification

__all__ = ["ANSWERS", "BatchVerification", "ClaimRule", "HiddenVerifier", "Verification", "Verify", "VerifyPolicy"]
