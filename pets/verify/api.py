"""The session side of verification: requests through the one release pipeline."""

from __future__ import annotations

from typing import Any

from ..mechanisms.verify import Verify, verify_plan

__all__ = ["ask"]


def ask(session: Any, dataset: str, claim: Any, protection: Verify, explain: bool) -> Any:
    """Verify (or explain verifying) ``claim`` about ``protection``'s subjects."""
    from .. import pipeline
    from ..errors import QueryError

    if not isinstance(dataset, str) or not dataset:
        raise QueryError(f"dataset must be a dataset name (a string), not {dataset!r}")
    if explain not in (True, False):
        raise QueryError(f"explain must be True or False, not {explain!r}")
    plan = verify_plan(dataset, claim, protection.keys)
    if explain:
        return pipeline.explain(session, plan, protection)
    return pipeline.release(session, plan, protection)


def ask_psi(session: Any, dataset: str, pairs: Any, keys: Any, explain: bool) -> Any:
    """Private set intersection of ``pairs`` with the holder's (key, value) pairs: the
    verifier's side blinds them, the holder's mechanism answers through the pipeline,
    the verifier's side reads the matches. Only the blinded request reaches the holder."""
    import pandas as pd

    from .. import pipeline
    from ..errors import QueryError
    from ..plan import Plan
    from .psi import PSIVerifier
    from .results import BatchVerification

    if not isinstance(dataset, str) or not dataset:
        raise QueryError(f"dataset must be a dataset name (a string), not {dataset!r}")
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(pairs, pd.DataFrame):
        raise QueryError(f"pairs must be a pandas DataFrame, not {type(pairs).__name__}")
    if not isinstance(keys, (list, tuple)) or not keys:
        raise QueryError("keys= names the subject-key columns of pairs, e.g. keys=['person_id']")
    columns = [c for c in pairs.columns if c not in keys]
    if not columns:
        raise QueryError("pairs needs at least one claimed column besides the keys")
    verifier = PSIVerifier(pairs, keys, columns)
    protection = verifier.request()
    plan = Plan(dataset, select=tuple(keys) + tuple(columns))
    if explain:
        return pipeline.explain(session, plan, protection)
    answer = pipeline.release(session, plan, protection)
    return finish_psi(verifier, answer)


def finish_psi(verifier: Any, answer: Any) -> Any:
    """The verifier reads the holder's answer: one match per pair."""
    from .results import BatchVerification

    hit = verifier.matches(answer.setup, answer.response)
    df = verifier.pairs.copy()
    df["match"] = hit
    df["answer"] = ["match" if h else "no_match" for h in hit]
    return BatchVerification(df=df, audit_id=answer.audit_id, answers_left=answer.answers_left)


def ask_hidden(session: Any, dataset: str, subject: Any, column: str, value: Any,
               verifier: Any, explain: bool) -> Any:
    """A hidden equality claim: the verifier encrypts ``value`` under its own key, the
    holder's mechanism answers Enc(r·(x − value)), the verifier decrypts."""
    from .. import pipeline
    from ..errors import QueryError
    from ..mechanisms.verify import HiddenClaim
    from ..plan import Plan
    from .hidden import HiddenVerifier
    from .results import Verification

    if not isinstance(dataset, str) or not dataset:
        raise QueryError(f"dataset must be a dataset name (a string), not {dataset!r}")
    if verifier is None:
        verifier = HiddenVerifier()
    protection = HiddenClaim(subject=subject, column=column, public_key=verifier.public_key,
                             ciphertext=verifier.encrypt(value))
    plan = Plan(dataset, select=tuple(protection.keys) + (column,))
    if explain:
        return pipeline.explain(session, plan, protection)
    answer = pipeline.release(session, plan, protection)
    if answer.no_subject:
        return Verification(False, "no_subject", answer.audit_id, answer.answers_left)
    ok = verifier.match(answer.ciphertext)
    return Verification(ok, "match" if ok else "no_match", answer.audit_id, answer.answers_left)
