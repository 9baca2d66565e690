"""One exception hierarchy for pets.

Every error pets raises on purpose is a :class:`PetsError`. User errors say what to
change; :class:`InternalError` says "this is a bug". No message carries a raw value of
a protected column.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PetsError",
    "PolicyError",
    "PolicyFormatError",
    "BudgetExceeded",
    "QueryError",
    "DataError",
    "AuditError",
    "AuthError",
    "ServerError",
    "InternalError",
]


class PetsError(Exception):
    """Base class of every error pets raises on purpose."""


class PolicyError(PetsError):
    """The policy refused a request.

    ``rule`` names the rule that refused (e.g. ``"negative_list"``, ``"default_deny"``,
    ``"grade"``, ``"max_epsilon"``, ``"identifier_group_by"``, ``"no_grant"``),
    ``column`` the column at fault (if any), ``allowed`` what would be allowed.
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        column: str | None = None,
        allowed: Any = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.column = column
        self.allowed = allowed


class PolicyFormatError(PetsError, ValueError):
    """A policy (TOML file, dict) is malformed. ``key`` is the dotted key at fault,
    ``line`` its line in the TOML text when known."""

    def __init__(
        self, message: str, *, key: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


class BudgetExceeded(PetsError):
    """A release would spend more privacy budget than is left.

    ``asked`` and ``left`` are :class:`pets.Cost` values.
    """

    def __init__(self, message: str, *, asked: Any, left: Any) -> None:
        super().__init__(message)
        self.asked = asked
        self.left = left


class QueryError(PetsError, ValueError):
    """A query is malformed: unknown column, bad bounds, bad SQL, bad parameter."""


class DataError(PetsError):
    """A data source cannot be used: unreadable, or changed since registration."""


class AuditError(PetsError):
    """The audit log failed verification. ``record`` is the id of the first bad record."""

    def __init__(self, message: str, *, record: int | None = None) -> None:
        super().__init__(message)
        self.record = record


class AuthError(PetsError):
    """An API key or analyst identity was not accepted."""


class ServerError(PetsError):
    """A pets server did not answer the request (remote sessions only): too many requests
    (HTTP 429: ``retry_after`` says how many seconds to wait), a body too large (413), a
    timeout or an unreachable server. ``status`` is the HTTP status (``None`` when no
    answer came). Nothing was released; a release that timed out may still complete on
    the server: asking again identically is answered from the recorded answer at no cost."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class InternalError(PetsError):
    """Something pets assumed turned out false. This is a bug: please report it."""
