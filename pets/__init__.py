"""pets — privacy-enhancing technologies behind one policy-governed query interface.

Raw data stays in its domain; data is usable but invisible. A holder registers tables
under a policy and grants budgets; analysts ask questions and get back only releases:
differentially private statistics and k-anonymous extracts now; Paillier-aggregated
totals and verification answers as they land.
"""

from __future__ import annotations

from .cost import Cost
from .errors import (
    AuditError,
    AuthError,
    BudgetExceeded,
    DataError,
    InternalError,
    PetsError,
    PolicyError,
    PolicyFormatError,
    QueryError,
    ServerError,
)
from .examples import example_data, example_policy
from .holder import Holder
from .policy import Policy
from .registration import RegistrationReport, RegistrationWarning
from .federation import FederatedSession, Federation
from .protections import DP, HE, KAnonymity
from .query import (Expression, Query, case, col, count, count_distinct, histogram, mean, quantile,
                    sum, variance)
from .release import Explanation, Extract, Release
from .session import Session
from .client import RemoteSession, connect
from .remote_federation import RemoteFederatedSession, RemoteFederation
from . import anon  # noqa: E402  (pets.anon, the anonymisation toolkit)

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
    "quantile",
    "sum",
    "variance",
]
