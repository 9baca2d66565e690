"""``POST /v1/fit`` and ``POST /v1/synthesize``: DP models and synthetic data over HTTP.

The request carries the query's plan (``Plan.to_dict()``), the model's spec
(``model.spec()``: model, target, features, log, parameters) or the synthesizer's rows and
bins, and the DP protection; ``explain: true`` answers what ``s.explain`` says instead,
spending nothing. Both go through the holder's one release pipeline. A fitted model travels
as its JSON form (``model.to_dict()``, loaded with ``pets.models.load``), synthetic rows as
a table in the wire format of every other DataFrame.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import Field

from .. import wire
from ..mechanisms.models import synthetic_to_json
from . import models as M

__all__ = ["install", "FitRequest", "SynthesizeRequest", "MAX_HTTP_ROWS"]

#: the most synthetic rows one HTTP answer carries
MAX_HTTP_ROWS = 1_000_000


class FitRequest(M._Strict):
    """Fit a DP model: ``s.fit(query, model, protection)``."""

    purpose: str = Field(description="the purpose the analyst's grant names")
    plan: dict[str, Any] = Field(description="Plan.to_dict() of the rows to fit on")
    model: dict[str, Any] = Field(description="model.spec(): model, target, features, log, ...")
    protection: M.DPModel
    explain: bool = Field(default=False, description="say what it would cost; spend nothing")
    dummy: bool = Field(default=False, description="fit on a fake table from the policy, spending nothing")
    rows: int | None = Field(default=None, ge=1, le=1_000_000, description="with dummy: its rows")
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="with dummy: its seed")


class SynthesizeRequest(M._Strict):
    """DP synthetic rows: ``s.synthesize(query, protection, rows=...)``."""

    purpose: str = Field(description="the purpose the analyst's grant names")
    plan: dict[str, Any] = Field(description="Plan.to_dict() with select: the columns")
    protection: M.DPModel
    rows: int | None = Field(default=None, ge=1, le=MAX_HTTP_ROWS,
                             description="rows to sample (default: the noisy row count)")
    bins: int = Field(default=16, ge=2, le=1000, description="bins of a numeric column")
    explain: bool = Field(default=False, description="say what it would cost; spend nothing")


def install(app: Any, holder: Any, caller: Callable[..., Any], run: Callable[..., Any]) -> None:
    from fastapi import Depends
    from fastapi.responses import JSONResponse

    from ..errors import QueryError
    from ..mechanisms.models import Fit, Synthetic
    from ..models.base import Model
    from ..plan import Plan
    from ..protections import protection_from_dict

    def do_fit(c: Any, body: FitRequest) -> dict[str, Any]:
        s = holder.session(c.analyst, purpose=body.purpose)
        plan = Plan.from_dict(body.plan)
        model = Model.from_spec(body.model)
        dp = protection_from_dict(body.protection.model_dump())
        if body.explain:
            return wire.explanation_to_json(s.explain(plan, Fit(model, dp)))
        if not body.dummy and (body.rows is not None or body.seed is not None):
            raise QueryError("rows and seed size and seed a dummy table; send dummy: true with them")
        if body.dummy:
            m = s.fit(plan, model, dp, dummy=True, rows=body.rows, seed=body.seed)
        else:
            m = s.fit(plan, model, dp)
        return {"model": m.to_dict(), "dummy": bool(m.dummy)}

    def do_synthesize(c: Any, body: SynthesizeRequest) -> dict[str, Any]:
        s = holder.session(c.analyst, purpose=body.purpose)
        plan = Plan.from_dict(body.plan)
        dp = protection_from_dict(body.protection.model_dump())
        prot = Synthetic(dp, rows=body.rows, bins=body.bins)
        if body.explain:
            return wire.explanation_to_json(s.explain(plan, prot))
        return synthetic_to_json(s.release(plan, prot))

    @app.post("/v1/fit", tags=["analyst"])
    async def fit_(body: FitRequest, c: Any = Depends(caller)) -> Any:
        """Fit a DP model through the one release pipeline (policy form ``model``): the
        fitted model as JSON (``pets.models.load`` reads it), or with ``explain`` what it
        would cost."""
        return JSONResponse(await run(c, lambda: do_fit(c, body)))

    @app.post("/v1/synthesize", tags=["analyst"])
    async def synthesize_(body: SynthesizeRequest, c: Any = Depends(caller)) -> Any:
        """DP synthetic rows by MST through the one release pipeline (policy form
        ``synthetic``), with the measured marginals' error; or with ``explain`` what it
        would cost."""
        return JSONResponse(await run(c, lambda: do_synthesize(c, body)))
