"""Verification over HTTP (docs/verification.md): the same requests as
:meth:`pets.Session.verify` and friends, through the holder's one release pipeline.

* ``POST /v1/verify`` — one subject: ``{"purpose", "dataset", "subject": {col: value},
  "claim": <expression JSON>, "explain": false}`` → ``{"match", "answer", "audit_id",
  "answers_left"}`` (or an explanation with ``explain``).
* ``POST /v1/verify/batch`` — ``"subjects": {col: [values...]}`` → one ``match`` and
  ``answer`` per row, in order.
* ``POST /v1/verify/psi`` — ``"keys"``, ``"columns"``, ``"request"`` (base64 of the
  openmined-psi request the verifier's :class:`pets.verify.psi.PSIVerifier` made) →
  ``"setup"``, ``"response"`` (base64), for the verifier to finish.
* ``POST /v1/verify/hidden`` — ``"subject"``, ``"column"``, ``"n"`` (the verifier's
  Paillier modulus, decimal text) and ``"ciphertext"`` (Enc(claim), decimal text) →
  ``"ciphertext"`` = Enc(r·(x − claim)) and ``"no_subject"``.

Claims travel as the plan's expression JSON (``pets.plan`` ``_expr_to_dict``); the
answers never carry a value of the record.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Union

from pydantic import Field

from .. import wire
from ..errors import QueryError
from .models import _Strict

Scalar = Union[str, int, float, bool]


class VerifyRequest(_Strict):
    purpose: str = Field(max_length=1000)
    dataset: str = Field(max_length=1000)
    subject: dict[str, Scalar] = Field(max_length=16)
    claim: dict[str, Any]
    explain: bool = False


class VerifyBatchRequest(_Strict):
    purpose: str = Field(max_length=1000)
    dataset: str = Field(max_length=1000)
    subjects: dict[str, list[Scalar]] = Field(max_length=16)
    claim: dict[str, Any]
    explain: bool = False


class VerifyPSIRequest(_Strict):
    purpose: str = Field(max_length=1000)
    dataset: str = Field(max_length=1000)
    keys: list[str] = Field(max_length=16)
    columns: list[str] = Field(max_length=16)
    request: str = Field(description="base64 of the openmined-psi Request message")
    explain: bool = False


class VerifyHiddenRequest(_Strict):
    purpose: str = Field(max_length=1000)
    dataset: str = Field(max_length=1000)
    subject: dict[str, Scalar] = Field(max_length=16)
    column: str = Field(max_length=1000)
    n: str = Field(max_length=5000, description="the verifier's Paillier modulus, decimal")
    ciphertext: str = Field(max_length=10000, description="Enc(claimed value), decimal")
    explain: bool = False


def _claim(d: dict[str, Any]) -> Any:
    from ..plan import _expr_from_dict
    from ..query import Expression

    return Expression(_expr_from_dict(d))


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise QueryError(f"{what} must be a non-negative integer in decimal text")
    return int(text)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise QueryError(f"{what} must be base64") from None


def install(app: Any, holder: Any, caller: Callable[..., Any], run: Callable[..., Any]) -> None:
    import pandas as pd
    from fastapi import Depends
    from fastapi.responses import JSONResponse

    def session(c: Any, purpose: str) -> Any:
        return holder.session(c.analyst, purpose=purpose)

    def single(c: Any, body: VerifyRequest) -> dict[str, Any]:
        r = session(c, body.purpose).verify(body.dataset, dict(body.subject),
                                            _claim(body.claim), explain=body.explain)
        if body.explain:
            return wire.explanation_to_json(r)
        return {"match": r.match, "answer": r.answer, "audit_id": r.audit_id,
                "answers_left": r.answers_left}

    def batch(c: Any, body: VerifyBatchRequest) -> dict[str, Any]:
        lengths = {len(v) for v in body.subjects.values()}
        if len(lengths) > 1:
            raise QueryError("every column of 'subjects' must hold the same number of values")
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in body.subjects.items()})
        r = session(c, body.purpose).verify_batch(body.dataset, frame, _claim(body.claim),
                                                  explain=body.explain)
        if body.explain:
            return wire.explanation_to_json(r)
        return {"match": [bool(x) for x in r.match], "answer": list(r.answer),
                "audit_id": r.audit_id, "answers_left": r.answers_left}

    def through(c: Any, body: Any, select: tuple[str, ...], prot: Any) -> Any:
        """The pipeline's explain (as JSON) or release (the answer object)."""
        from .. import pipeline
        from ..plan import Plan

        plan = Plan(body.dataset, select=select)
        s = session(c, body.purpose)
        if body.explain:
            return wire.explanation_to_json(pipeline.explain(s, plan, prot))
        return pipeline.release(s, plan, prot)

    def psi(c: Any, body: VerifyPSIRequest) -> dict[str, Any]:
        from ..mechanisms.verify import PSI

        prot = PSI(request=_b64(body.request, "request"), keys=tuple(body.keys),
                   columns=tuple(body.columns))
        a = through(c, body, prot.keys + prot.columns, prot)
        if body.explain:
            return a  # type: ignore[no-any-return]
        return {"setup": base64.b64encode(a.setup).decode(),
                "response": base64.b64encode(a.response).decode(),
                "audit_id": a.audit_id, "answers_left": a.answers_left, "items": a.items}

    def hidden(c: Any, body: VerifyHiddenRequest) -> dict[str, Any]:
        from ..mechanisms.verify import HiddenClaim

        prot = HiddenClaim(subject=dict(body.subject), column=body.column,
                           public_key=_int(body.n, "n"),
                           ciphertext=_int(body.ciphertext, "ciphertext"))
        a = through(c, body, tuple(prot.keys) + (prot.column,), prot)
        if body.explain:
            return a  # type: ignore[no-any-return]
        return {"ciphertext": str(a.ciphertext), "no_subject": a.no_subject,
                "audit_id": a.audit_id, "answers_left": a.answers_left}

    @app.post("/v1/verify", tags=["analyst"])
    async def verify_(body: VerifyRequest, c: Any = Depends(caller)) -> Any:
        """Verify a claim about one subject: match / no match, nothing else."""
        return JSONResponse(await run(c, lambda: single(c, body)))

    @app.post("/v1/verify/batch", tags=["analyst"])
    async def verify_batch_(body: VerifyBatchRequest, c: Any = Depends(caller)) -> Any:
        """Verify a claim about many subjects: one answer per row, in order."""
        return JSONResponse(await run(c, lambda: batch(c, body)))

    @app.post("/v1/verify/psi", tags=["analyst"])
    async def verify_psi_(body: VerifyPSIRequest, c: Any = Depends(caller)) -> Any:
        """Private set intersection: the holder's answer to a blinded request."""
        return JSONResponse(await run(c, lambda: psi(c, body)))

    @app.post("/v1/verify/hidden", tags=["analyst"])
    async def verify_hidden_(body: VerifyHiddenRequest, c: Any = Depends(caller)) -> Any:
        """A hidden equality claim: Enc(r·(x − claim)) under the verifier's key."""
        return JSONResponse(await run(c, lambda: hidden(c, body)))
