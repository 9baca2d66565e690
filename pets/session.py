"""The analyst's side: a session asks questions of a holder's datasets for one purpose.

A session knows no release form by name: ``explain`` and ``release`` hand the request
to the one release pipeline (:mod:`pets.pipeline`) — grant, policy, the mechanism's
compile and charge, budget, then the engine, the charge and audit record in one SQLite
transaction, and only then the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import pandas as pd

from .cost import Cost
from .errors import PetsError, QueryError
from .plan import Plan
from .policy import Policy
from .protections import KAnonymity, Protection
from .query import Query
from .release import Explanation, Extract, Release

if TYPE_CHECKING:
    from .holder import Holder
    from .verify.results import BatchVerification, Verification

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

    def sql(self, text: str, protection: Protection, *, dummy: bool = False,
            rows: int | None = None, seed: int | None = None) -> Release:
        """Answer a SQL query under ``protection``: ``SELECT sex, COUNT(*) AS n FROM adult
        GROUP BY sex``. Bounds and keys come from the policy. ``dummy=True`` (with
        ``rows`` and ``seed``) runs it on a dummy table, as :meth:`release` does."""
        from .sql import parse_sql

        return self.release(parse_sql(text, schema=self._sql_schema), protection,  # type: ignore[return-value]
                            dummy=dummy, rows=rows, seed=seed)

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
    def release(self, query: Query | Plan, protection: KAnonymity, *, dummy: bool = False,  # type: ignore[overload-overlap]
                rows: int | None = None, seed: int | None = None, progress: bool = False) -> Extract: ...

    @overload
    def release(self, query: Query | Plan, protection: Protection, *, dummy: bool = False,
                rows: int | None = None, seed: int | None = None, progress: bool = False) -> Release: ...

    def release(self, query: Query | Plan, protection: Protection, *, dummy: bool = False,
                rows: int | None = None, seed: int | None = None,
                progress: bool = False) -> Release | Extract:
        """Release the answer to ``query`` under ``protection`` through the one release
        pipeline (:mod:`pets.pipeline`): policy, charge and audit before anything leaves.

        ``dummy=True`` runs the same request through the same pipeline on a dummy table
        instead (:meth:`dummy` with ``rows``, default 1000, and ``seed``): every check,
        error and result shape is the real one, nothing of the data is read, no budget
        is spent and nothing is audited (but a refusal for want of a grant). The result
        has ``dummy=True``; its ``spent`` is what the real release would charge. The
        dummy run starts from a fresh ledger with the terms of the analyst's grant, so
        it never refuses for budget or quota already used on the real one (``explain``
        tells those).

        ``progress=True`` shows a progress bar of the engine's scan on a terminal
        (nothing otherwise; see docs/scale.md)."""
        from . import pipeline

        if progress is not False:
            from .progress import bar

            with bar("releasing", progress):
                return self.release(query, protection, dummy=dummy, rows=rows, seed=seed)

        if not dummy:
            if rows is not None or seed is not None:
                raise QueryError(
                    "rows and seed size and seed a dummy table; pass dummy=True with them, "
                    "or leave them out for a real release"
                )
            return pipeline.release(self, query, protection)  # type: ignore[no-any-return]
        if dummy is not True:
            raise QueryError(f"dummy must be True or False, not {dummy!r}")
        return self._dummy_release(query, protection, 1000 if rows is None else rows, seed)

    # -- models and synthetic data (pets.mechanisms.models) ----------------------------
    def fit(self, query: Query | Plan, model: Any, protection: Protection, *,
            dummy: bool = False, rows: int | None = None, seed: int | None = None) -> Any:
        """Fit ``model`` (``pets.models.LinearRegression(...)``, ...) on the rows ``query``
        selects, under ``protection`` (``pets.DP(...)``): a release like any other
        (policy form ``model``). Returns the fitted model, with ``cost`` and ``audit_id``.
        ``s.explain(query, pets.models.Fit(model, dp))`` says what it costs."""
        from .mechanisms.models import Fit

        return self.release(query, Fit(model, protection), dummy=dummy, rows=rows, seed=seed)  # type: ignore[arg-type]

    def synthesize(self, query: Query | Plan, protection: Protection, rows: int | None = None,
                   *, bins: int = 16) -> Any:
        """Synthetic rows of the columns ``query`` selects, under ``protection``
        (``pets.DP(...)``), by MST (policy form ``synthetic``). ``rows``: how many (default:
        the noisy row count). Returns ``pets.synth.SyntheticData`` (``df``, ``error``,
        ``spent``, ``audit_id``). ``s.explain(query, pets.synth.Synthetic(dp, rows=n))``
        says what it costs."""
        from .mechanisms.models import Synthetic

        return self.release(query, Synthetic(protection, rows, bins))  # type: ignore[arg-type]
    # -- verification (核验) -----------------------------------------------------------
    def verify(self, dataset: str, subject: dict[str, object], claim: object, *,
               explain: bool = False) -> "Verification | Explanation":
        """Whether the record of ``subject`` (``{"person_id": "P-00042"}``) satisfies
        ``claim`` (``col("age") >= 30``; ``==``, ranges, ``isin``, ``&``): a
        :class:`pets.verify.Verification` with ``match`` True/False and nothing else,
        through the one release pipeline under the policy's ``[verify]`` section,
        counted against its quotas and audited. ``explain=True``: what it would do, on
        no data. See docs/verification.md."""
        from .verify.api import ask
        from .verify import Verify

        return ask(self, dataset, claim, Verify(subject=subject), explain)  # type: ignore[no-any-return]

    def verify_batch(self, dataset: str, subjects: pd.DataFrame, claim: object, *,
                     explain: bool = False) -> "BatchVerification | Explanation":
        """:meth:`verify` for every row of ``subjects`` (a DataFrame of subject-key
        columns) in one request: a :class:`pets.verify.BatchVerification` whose ``match``
        has one answer per row, in order."""
        from .verify.api import ask
        from .verify import Verify

        return ask(self, dataset, claim, Verify(subjects=subjects), explain)  # type: ignore[no-any-return]

    def verify_psi(self, dataset: str, pairs: pd.DataFrame, keys: list[str], *,
                   explain: bool = False) -> "BatchVerification | Explanation":
        """Private set intersection (``pip install 'pets[psi]'``): which rows of ``pairs``
        — subject-key columns ``keys`` and claimed columns (the rest) — equal a record of
        the holder's, while the holder sees only a blinded request and learns only how
        many pairs were asked. See docs/verification.md."""
        from .verify.api import ask_psi

        return ask_psi(self, dataset, pairs, keys, explain)  # type: ignore[no-any-return]

    def verify_hidden(self, dataset: str, subject: dict[str, object], column: str,
                      value: object, *, verifier: object = None,
                      explain: bool = False) -> "Verification | Explanation":
        """A hidden equality claim: whether ``subject``'s ``column`` equals ``value``,
        with ``value`` encrypted under the verifier's own Paillier key
        (``verifier=pets.verify.HiddenVerifier(...)``, default a new 2048-bit key), so
        the holder never sees it. See docs/verification.md."""
        from .verify.api import ask_hidden

        return ask_hidden(self, dataset, subject, column, value, verifier, explain)  # type: ignore[no-any-return]

    # -- dummy tables ----------------------------------------------------------------
    def dummy(self, dataset: str, rows: int = 1000, seed: int | None = None) -> pd.DataFrame:
        """A fake table with ``dataset``'s columns, types, bounds and public keys, to
        develop against: generated from the policy and the stored schema only, never from
        the rows (see :mod:`pets.dummy` for what each column holds). ``rows`` is 1 …
        1,000,000 (and at most the policy's ``max_rows``); the same ``seed`` gives the same
        table. Spends no budget and is not audited; an analyst without a grant for this
        dataset and purpose is refused exactly as by a release (``no_grant``)."""
        from . import pipeline
        from .dummy import dummy_frame

        pipeline.check_grant(self, dataset, "dummy")
        policy, schema = self._dummy_inputs(dataset, rows)
        return dummy_frame(policy, schema, rows, seed)

    def _dummy_inputs(self, dataset: str, rows: int) -> tuple[Policy, dict[str, str]]:
        """The policy and stored schema of a dataset the analyst has a grant on, read from
        the registration record, never from the data (whose file may even be gone); and
        ``rows`` checked against the dummy's and the policy's limits."""
        from .dummy import MAX_DUMMY_ROWS, check_rows
        from .pipeline import _unknown_dataset

        rec = self._holder._store.get_dataset(dataset)
        if rec is None:  # unregistered meanwhile
            raise _unknown_dataset(self, dataset)
        policy = Policy.from_dict(rec["policy"])
        check_rows(rows, min(MAX_DUMMY_ROWS, policy.row_limit))
        return policy, dict(rec["schema"])

    def _dummy_release(self, query: Query | Plan, protection: Protection, rows: int,
                       seed: int | None) -> Release | Extract:
        """The request through the one pipeline, on a dummy table registered with the same
        policy in a scratch holder (temporary home, deleted afterwards) where the analyst
        has a grant with the same terms; the real ledger and audit log are not touched."""
        import dataclasses
        import tempfile
        import warnings
        from pathlib import Path

        from . import pipeline
        from .dummy import check_seed, dummy_frame
        from .holder import Holder, HierarchyWarning, RegistrationWarning

        plan = pipeline.plan_of(query)
        pipeline._check_protection(protection)
        check_seed(seed)
        extra = {"plan": plan.to_dict(), "protection": protection.to_dict()}
        budget = pipeline.check_grant(self, plan.dataset, "dummy", extra)
        policy, schema = self._dummy_inputs(plan.dataset, rows)
        frame = dummy_frame(policy, schema, rows, seed)
        granted = budget.granted()  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory(prefix="pets-dummy-", ignore_cleanup_errors=True) as tmp:
            scratch = Holder(Path(tmp) / "home", audit_key=Path(tmp) / "audit-key.pem")
            with warnings.catch_warnings():
                # the dummy's values, not the data's, may lack hierarchy leaves
                warnings.simplefilter("ignore", HierarchyWarning)
                warnings.simplefilter("ignore", RegistrationWarning)  # a report on the dummy's values
                scratch.register(plan.dataset, frame, policy)
            scratch.grant(self.analyst, dataset=plan.dataset, purpose=self.purpose,
                          epsilon=granted.epsilon, delta=granted.delta,
                          accounting=budget.accounting)  # type: ignore[attr-defined]
            result = pipeline.release(scratch.session(self.analyst, purpose=self.purpose),
                                      plan, protection)
        if not dataclasses.is_dataclass(result):  # a fitted model (pets.models)
            result.dummy, result.audit_id = True, 0  # type: ignore[attr-defined]
            return result  # type: ignore[no-any-return]
        changes: dict[str, object] = {"dummy": True, "audit_id": 0}
        if isinstance(result, Extract):
            changes["extracts_left"] = None
        elif isinstance(result, Release) and result.audit_ids is not None:
            changes["audit_ids"] = None
        return dataclasses.replace(result, **changes)  # type: ignore[no-any-return]

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
