"""The analyst's side: a session asks questions of a holder's datasets for one purpose.

A session knows no release form by name: ``explain`` and ``release`` hand the request
to the one release pipeline (:mod:`pets.pipeline`) — grant, policy, the mechanism's
compile and charge, budget, then the engine, the charge and audit record in one SQLite
transaction, and only then the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

from .cost import Cost
from .errors import PetsError, QueryError
from .plan import Plan
from .protections import KAnonymity, Protection
from .query import Query
from .release import Explanation, Extract, Release

if TYPE_CHECKING:
    from .holder import Holder

__all__ = ["Session"]


class Session:
    """A local session: ``holder.session("alice", purpose="labour-stats")``."""

    def __init__(self, holder: "Holder", analyst: str, purpose: str) -> None:
        self._holder = holder
        self.analyst = analyst
        self.purpose = purpose

    def __repr__(self) -> str:
        return f"Session(analyst={self.analyst!r}, purpose={self.purpose!r})"

    # -- building --------------------------------------------------------------------
    def table(self, name: str) -> Query:
        """A query on dataset ``name``."""
        if self._holder._store.get_dataset(name) is None:
            # name only the datasets this analyst may use, not every registered one
            granted = sorted({g["dataset"] for g in self._holder._store.list_grants(self.analyst)})
            raise QueryError(
                f"unknown dataset {name!r}; datasets granted to {self.analyst}: "
                f"{', '.join(granted) or 'none'}"
            )
        self._holder._dataset(name)  # a changed source fails here, clearly
        return Query(name)

    def sql(self, text: str, protection: Protection) -> Release:
        """Answer a SQL query under ``protection``: ``SELECT sex, COUNT(*) AS n FROM adult
        GROUP BY sex``. Bounds and keys come from the policy."""
        from .sql import parse_sql

        return self.release(parse_sql(text, schema=self._sql_schema), protection)

    def _sql_schema(self, dataset: str) -> dict[str, str] | None:
        """Column types of a dataset this analyst has a grant on (for SQL errors that
        point at arithmetic on a text column); None otherwise."""
        store = self._holder._store
        if store.get_grant(self.analyst, dataset, self.purpose) is None:
            return None
        try:
            return dict(self._holder._dataset(dataset).schema)
        except PetsError:
            return None

    # -- answering -------------------------------------------------------------------
    def explain(self, query: Query | Plan, protection: Protection) -> "Explanation":
        """What ``release`` would do — allowed or not, cost, noise scale, CI width —
        without computing anything on the data or spending budget."""
        from . import pipeline

        return pipeline.explain(self, query, protection)

    @overload
    def release(self, query: Query | Plan, protection: KAnonymity) -> Extract: ...  # type: ignore[overload-overlap]

    @overload
    def release(self, query: Query | Plan, protection: Protection) -> Release: ...

    def release(self, query: Query | Plan, protection: Protection) -> Release | Extract:
        """Release the answer to ``query`` under ``protection`` through the one release
        pipeline (:mod:`pets.pipeline`): policy, charge and audit before anything leaves."""
        from . import pipeline

        return pipeline.release(self, query, protection)  # type: ignore[no-any-return]

    def remaining(self, dataset: str | None = None) -> Cost:
        """Budget left for this analyst and purpose on ``dataset`` (which may be left out
        when the analyst has a grant for this purpose on one dataset only)."""
        if dataset is None:
            granted = [
                g["dataset"]
                for g in self._holder._store.list_grants(self.analyst)
                if g["purpose"] == self.purpose
            ]
            if len(granted) != 1:
                raise QueryError(
                    "name the dataset: s.remaining('adult') "
                    f"(grants for this purpose: {', '.join(sorted(granted)) or 'none'})"
                )
            dataset = granted[0]
        return self._holder._store.remaining(self.analyst, dataset, self.purpose)
