"""Release mechanisms: one per release form, all behind the one pipeline
(:mod:`pets.pipeline`). A new form is a new :class:`Mechanism` registered here."""

from __future__ import annotations

from typing import Any

from ..errors import QueryError
from .base import Charge, Compiled, Context, Mechanism
from .dp import DPMechanism
from .he import HEContribution
from .kanon import KAnonymityMechanism
from .models import FitMechanism, SynthesisMechanism
from .verify import HiddenMechanism, PSIMechanism, VerifyMechanism

__all__ = ["Charge", "Compiled", "Context", "Mechanism", "mechanism_for", "register_mechanism"]

_REGISTRY: dict[type, Mechanism] = {}


def register_mechanism(mechanism: Mechanism) -> None:
    """Make ``mechanism`` the one that releases under its protection type."""
    _REGISTRY[mechanism.protection_type] = mechanism


def mechanism_for(protection: Any, *, federated: bool = False) -> Mechanism:
    """The mechanism of ``protection``. HE releases are federated: a single holder's
    session cannot release them (use :class:`pets.Federation`)."""
    mech = _REGISTRY.get(type(protection))
    if mech is None:
        raise QueryError(f"protection {type(protection).__name__} is not supported here")
    if isinstance(mech, HEContribution) and not federated:
        raise QueryError(
            "pets.HE(...) releases totals across several holders: use "
            "pets.Federation({...}).session(analyst, purpose=...).release(query, pets.HE(...))"
        )
    return mech


for _m in (DPMechanism(), KAnonymityMechanism(), HEContribution(), FitMechanism(),
           SynthesisMechanism(), VerifyMechanism(), PSIMechanism(), HiddenMechanism()):
    register_mechanism(_m)
