"""pets — privacy-enhancing technologies behind one policy-governed query interface.

Raw data stays in its domain; data is usable but invisible. A holder registers tables
under a policy and grants budgets; analysts ask questions and get back only releases:
differentially private statistics now, and k-anonymous extracts, Paillier-aggregated
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
)
from .examples import example_data, example_policy
from .holder import Holder
from .policy import Policy
from .protections import DP
from .query import Expression, Query, col, count, mean, sum, variance
from .release import Explanation, Release
from .session import Session

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
    "Holder",
    "InternalError",
    "PetsError",
    "Policy",
    "PolicyError",
    "PolicyFormatError",
    "Query",
    "QueryError",
    "Release",
    "Session",
    "__version__",
    "col",
    "count",
    "example_data",
    "example_policy",
    "mean",
    "sum",
    "variance",
]
