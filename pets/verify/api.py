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
