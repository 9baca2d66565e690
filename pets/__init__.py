"""pets — privacy-enhancing technologies behind one policy-governed query interface.

Raw data stays in its domain; data is usable but invisible. A holder registers tables
under a policy and grants budgets; analysts ask questions and get back only releases:
differentially private statistics and k-anonymous extracts now; Paillier-aggregated
totals and verification answers as they land.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from . import anon
    from .client import RemoteSession, connect
    from .cost import Cost
    from .errors import (AuditError, AuthError, BudgetExceeded, DataError, InternalError,
                         PetsError, PolicyError, PolicyFormatError, QueryError, ServerError)
    from .examples import example_data, example_policy
    from .federation import FederatedSession, Federation
    from .holder import Holder
    from .policy import Policy
    from .registration import RegistrationReport, RegistrationWarning
    from .protections import DP, HE, KAnonymity
    from .post import out
    from .query import (Expression, Query, case, col, count, count_distinct, histogram, mean,
                        quantile, stddev, sum, variance)
    from .release import Explanation, Extract, Release
    from .remote_federation import RemoteFederatedSession, RemoteFederation
    from .session import Session

# Lazy imports (PEP 562): `import pets` is cheap and each name loads its module on first
# use, so that the `pets` command starts fast. Add a public name here and in __all__.
_WHERE = {
    "Cost": ".cost",
    **dict.fromkeys(["AuditError", "AuthError", "BudgetExceeded", "DataError", "InternalError",
                     "PetsError", "PolicyError", "PolicyFormatError", "QueryError",
                     "ServerError"], ".errors"),
    "example_data": ".examples", "example_policy": ".examples",
    "Holder": ".holder",
    "Policy": ".policy",
    "RegistrationReport": ".registration", "RegistrationWarning": ".registration",
    "FederatedSession": ".federation", "Federation": ".federation",
    "DP": ".protections", "HE": ".protections", "KAnonymity": ".protections",
    **dict.fromkeys(["Expression", "Query", "case", "col", "count", "count_distinct",
                     "histogram", "mean", "quantile", "stddev", "sum", "variance"], ".query"),
    "out": ".post",
    "Explanation": ".release", "Extract": ".release", "Release": ".release",
    "Session": ".session",
    "RemoteSession": ".client", "connect": ".client",
    "RemoteFederatedSession": ".remote_federation", "RemoteFederation": ".remote_federation",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is not None:
        value = getattr(importlib.import_module(where, __name__), name)
    elif not name.startswith("__"):
        try:  # a subpackage or module: pets.anon, pets.he, pets.dp, …
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'pets' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'pets' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "AuditError",
    "AuthError",
    "BudgetExceeded",
    "Cost",
    "DP",
    "DataError",
    "Explanation",
    "Expression",
    "Extract",
    "FederatedSession",
    "Federation",
    "HE",
    "Holder",
    "InternalError",
    "KAnonymity",
    "PetsError",
    "Policy",
    "PolicyError",
    "PolicyFormatError",
    "Query",
    "QueryError",
    "RegistrationReport",
    "RegistrationWarning",
    "Release",
    "RemoteFederatedSession",
    "RemoteFederation",
    "RemoteSession",
    "ServerError",
    "Session",
    "__version__",
    "anon",
    "case",
    "col",
    "connect",
    "count",
    "count_distinct",
    "example_data",
    "example_policy",
    "histogram",
    "mean",
    "models",
    "out",
    "quantile",
    "stddev",
    "sum",
    "synth",
    "variance",
]
