"""The holder's HTTP server: the local session behind versioned JSON endpoints.

Every release goes through the one release pipeline (:mod:`pets.pipeline`) via a local
:class:`pets.Session` whose analyst is the one the API key belongs to — a request body
can never choose the analyst. What the server adds is only transport: authentication,
limits, the JSON forms of :mod:`pets.wire`, and status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import wire
from ..errors import AuthError, PetsError, PolicyError, QueryError, ServerError
from ..holder import Holder
from . import models as M
from .limits import Buckets, SharedLimits, Slots

__all__ = ["Limits", "create_app", "serve"]

log = logging.getLogger("pets.server")


@dataclass(frozen=True)
class Limits:
    """Per-key and per-request limits of a server.

    ``rate`` requests per second per key (token bucket of ``burst`` requests);
    ``concurrency`` requests in flight per key; ``max_body`` bytes per request body
    (413 above, checked before the body is read or parsed); ``timeout`` seconds a
    request may take before the server answers 503 (a release still running then
    completes and is recorded: asking again identically returns it at no cost);
    ``workers`` threads computing answers in each process; ``processes`` server
    processes sharing the port (``pets serve --processes``: the per-key limits are then
    kept in ``<home>/server-limits.db`` so that they hold across processes);
    ``auth_failures`` audited auth failures per second per client address (more are
    refused with 429 and only logged).
    """

    rate: float = 20.0
    burst: int = 40
    concurrency: int = 4
    max_body: int = 1 << 20
    timeout: float = 60.0
    workers: int = 8
    auth_failures: float = 5.0
    processes: int = 1

    def __post_init__(self) -> None:
        for name in ("rate", "timeout", "auth_failures"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or math.isinf(v):
                raise ValueError(f"Limits.{name} must be a positive number, got {v!r}")
        for name in ("burst", "concurrency", "max_body", "workers", "processes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {v!r}")


def _too_many(what: str, wait: float) -> ServerError:
    secs = max(1, math.ceil(wait))
    return ServerError(f"too many {what}; retry after {secs} s", status=429, retry_after=secs)


class _AccessLog:
    """ASGI middleware: one JSON log line per request (method, path, status, time, the
    analyst and key id the request authenticated as; never a body). Plain ASGI rather
    than Starlette's ``BaseHTTPMiddleware``, which costs a task and a stream per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t = time.perf_counter()
        status = [500]

        async def send_status(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                state = scope.get("state") or {}
                log.info(json.dumps({
                    "event": "request", "method": scope.get("method"), "path": scope.get("path"),
                    "status": status[0], "ms": round((time.perf_counter() - t) * 1000, 2),
                    "analyst": state.get("analyst"), "key_id": state.get("key_id"),
                }))


class _BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 before they are parsed
    (by Content-Length when given, else while they stream in)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size < 0 or size > limit:
                    await _send_error(send, _too_large(limit) if size > limit else
                                      ServerError("bad Content-Length header", status=400))
                    return
        if not any(name == b"content-length" for name, _ in scope.get("headers", ())) and \
                any(name == b"transfer-encoding" for name, _ in scope.get("headers", ())):
            # a streamed body: read it here, up to the limit, before anything parses it
            chunks: list[bytes] = []
            seen = 0
            while True:
                msg = await receive()
                if msg["type"] != "http.request":
                    return  # the client went away
                chunk = msg.get("body", b"")
                seen += len(chunk)
                if seen > limit:
                    await _send_error(send, _too_large(limit))
                    return
                chunks.append(chunk)
                if not msg.get("more_body", False):
                    break
            body = b"".join(chunks)
            sent = False

            async def replay() -> Any:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


def _too_large(limit: int) -> ServerError:
    return ServerError(f"the request body is larger than the server's limit of {limit:,} bytes; "
                       "send a smaller plan", status=413)


async def _send_error(send: Any, e: PetsError) -> None:
    body = json.dumps(wire.error_to_json(e)).encode()
    await send({"type": "http.response.start", "status": wire.status_of(e),
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _error_response(e: BaseException) -> JSONResponse:
    status = wire.status_of(e)
    headers: dict[str, str] = {}
    if isinstance(e, AuthError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(e, ServerError) and e.retry_after is not None:
        headers["Retry-After"] = str(int(math.ceil(e.retry_after)))
    return JSONResponse(wire.error_to_json(e), status_code=status, headers=headers)


@dataclass(frozen=True)
class Caller:
    analyst: str
    key_id: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": M.ErrorBody, "description": text} for code, text in (
        (401, "no or unknown API key (AuthError)"),
        (403, "refused by the policy, e.g. no grant (PolicyError)"),
        (409, "not enough budget left (BudgetExceeded)"),
        (413, "request body too large (ServerError)"),
        (422, "malformed request or query (QueryError)"),
        (429, "rate or concurrency limit (ServerError; see Retry-After)"),
        (503, "timed out or not ready (ServerError)"),
    )
}


def create_app(home_or_holder: "str | os.PathLike[str] | Holder", *,
               limits: Limits | None = None, **limit_args: Any) -> FastAPI:
    """The FastAPI app serving one holder's home (``pets serve`` runs it with uvicorn).

    ``limits`` (or its fields as keyword arguments: ``rate=``, ``burst=``,
    ``concurrency=``, ``max_body=``, ``timeout=``, ``workers=``)."""
    holder = home_or_holder if isinstance(home_or_holder, Holder) else Holder(Path(home_or_holder))
    lim = limits if limits is not None else Limits(**limit_args)
    store = holder._store
    auth_burst = max(1, int(lim.auth_failures * 2))
    buckets: Any
    slots: Any
    auth_buckets: Any
    if lim.processes > 1:  # several processes share one port: limits must hold across them
        buckets = slots = SharedLimits(store.home, lim.rate, lim.burst, lim.concurrency)
        auth_buckets = SharedLimits(store.home, lim.auth_failures, auth_burst, 1)
    else:
        buckets, slots = Buckets(lim.rate, lim.burst), Slots(lim.concurrency)
        auth_buckets = Buckets(lim.auth_failures, auth_burst)
    pool = ThreadPoolExecutor(max_workers=lim.workers, thread_name_prefix="pets-release")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=True)  # in-flight releases finish (and are recorded)

    app = FastAPI(
        title="pets", version="1", lifespan=lifespan,
        description="A pets holder's server: only releases leave, through the one release "
                    "pipeline. Authenticate with `Authorization: Bearer <key>` (holder.issue_key).",
        responses=_ERRORS,
    )
    app.state.holder = holder
    app.state.limits = lim

    # -- errors ------------------------------------------------------------------------
    @app.exception_handler(PetsError)
    async def _pets_error(request: Request, e: PetsError) -> JSONResponse:
        return _error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        if any(err.get("type") == "json_invalid" for err in errs):
            return _error_response(QueryError(
                "malformed request: the body is not valid JSON; send a JSON object "
                "(Content-Type: application/json)"))
        problems = []
        for err in errs[:10]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return _error_response(QueryError("malformed request: " + "; ".join(problems)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 400:
            return _error_response(QueryError(
                "malformed request: the body is not valid JSON (or nests too deeply)"))
        if e.status_code == 404:
            return _error_response(ServerError(f"no endpoint {request.url.path}; see /docs",
                                               status=404))
        if e.status_code == 405:
            return _error_response(ServerError(
                f"method {request.method} is not allowed on {request.url.path}", status=405))
        return _error_response(ServerError(str(e.detail), status=e.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error(json.dumps({"event": "error", "path": request.url.path,
                              "exception": type(e).__name__}))
        return _error_response(e)

    app.add_middleware(_AccessLog)
    app.add_middleware(_BodyLimit, limit=lim.max_body)

    # -- auth and limits ---------------------------------------------------------------
    def _refuse_auth(request: Request, rule: str) -> None:
        """Audit an authentication failure (no key material) unless this address sent
        too many: then only a log line."""
        host = request.client.host if request.client else "?"
        wait = auth_buckets.take("addr:" + host)
        if wait:
            log.warning(json.dumps({"event": "auth_refused", "rule": rule,
                                    "path": request.url.path, "audited": False}))
            raise _too_many("failed authentications from this address", wait)
        store.record({"analyst": None, "purpose": None, "dataset": None, "kind": "auth",
                      "status": "refused", "rule": rule, "path": request.url.path})
        log.warning(json.dumps({"event": "auth_refused", "rule": rule,
                                "path": request.url.path, "audited": True}))

    def _key_of(header: str | None) -> tuple[str | None, str | None]:
        """(analyst, key id) for a good key, else (None, the refusal's rule) — a read only."""
        if not header:
            return None, "no_key"
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return None, "no_scheme"
        try:
            return store.check_key_id(key)
        except AuthError:
            return None, "bad_key"

    def _refuse(request: Request, rule: str) -> None:
        """Audit the refusal (a write: in a worker) and raise the AuthError."""
        _refuse_auth(request, "no_key" if rule == "no_scheme" else rule)
        if rule == "no_key":
            raise AuthError("no API key: send the header 'Authorization: Bearer <key>' with "
                            "a key the holder issued (holder.issue_key)")
        if rule == "no_scheme":
            raise AuthError("the Authorization header must be 'Bearer <key>'")
        raise AuthError("unknown or revoked API key")

    async def caller(request: Request) -> Caller:
        # the key check is two SHA-256s (salted, and unsalted for older keys) and one
        # indexed read in WAL mode (no lock): done here, on the event loop, saving a
        # hand-over to a worker and back per request; a refusal writes an audit record,
        # so that part goes to a worker
        analyst, id_or_rule = _key_of(request.headers.get("authorization"))
        if analyst is None:
            await asyncio.get_running_loop().run_in_executor(pool, _refuse, request, id_or_rule)
        c = Caller(analyst, id_or_rule)  # type: ignore[arg-type]
        request.state.analyst, request.state.key_id = c.analyst, c.key_id
        wait = buckets.take(c.key_id)
        if wait:
            raise _too_many("requests for this key", wait)
        return c

    async def run(c: Caller, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in a worker under the key's concurrency limit and the timeout; the
        key's slot is held until the work really ends (even past a timeout)."""
        if not slots.acquire(c.key_id):
            raise _too_many(f"requests in flight for this key (at most {lim.concurrency})", 1)
        try:
            fut = pool.submit(fn)
        except BaseException:
            slots.release(c.key_id)
            raise
        fut.add_done_callback(lambda _f: slots.release(c.key_id))
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), lim.timeout)
        except asyncio.TimeoutError:
            raise ServerError(
                f"the request took longer than the server's limit of {lim.timeout:g} s; a "
                "release still running completes and is recorded: ask again identically to "
                "get it at no further cost", status=503, retry_after=1) from None

    # -- the work ----------------------------------------------------------------------
    def session(c: Caller, purpose: Any) -> Any:
        return holder.session(c.analyst, purpose=purpose)

    def protection_of(body: M.QueryRequest) -> Any:
        from ..protections import protection_from_dict

        prot = protection_from_dict(body.protection.model_dump())
        if prot.form == "he":
            raise QueryError("HE contributions are not released by /v1/release: use "
                             "pets.Federation({name: URL, ...}), which runs the /v1/he/... "
                             "endpoints (docs/homomorphic.md, 'Over HTTP')")
        return prot

    # the SQL front end (sqlglot) is loaded with the app, not by the first SQL request
    from ..plan import Plan
    from ..sql import parse_sql

    def plan_of(body: M.QueryRequest, s: Any) -> Any:
        if (body.plan is None) == (body.sql is None):
            raise QueryError("send exactly one of 'plan' (Plan.to_dict()) and 'sql'")
        if body.sql is not None:
            return parse_sql(body.sql, schema=s._sql_schema)
        return Plan.from_dict(body.plan)  # type: ignore[arg-type]

    def do_explain(c: Caller, body: M.QueryRequest) -> dict[str, Any]:
        s = session(c, body.purpose)
        prot = protection_of(body)
        return wire.explanation_to_json(s.explain(plan_of(body, s), prot))

    def do_release(c: Caller, body: M.QueryRequest) -> dict[str, Any]:
        from ..dp.accuracy import check_level

        levels = [check_level(x) for x in body.ci_levels]  # before anything is charged
        s = session(c, body.purpose)
        prot = protection_of(body)
        plan = plan_of(body, s)
        if body.dummy:
            r = s.release(plan, prot, dummy=True, rows=body.rows, seed=body.seed)
        else:
            r = s.release(plan, prot, rows=body.rows, seed=body.seed)  # rows/seed refused
        out = wire.extract_to_json(r) if prot.form == "kanon" else wire.release_to_json(r, levels)
        if body.sql is not None:  # the client has only the text: send the plan it became
            out["plan"] = plan.to_dict()
        return out

    def summary(analyst: str) -> dict[str, Any]:
        grants: dict[str, list[dict[str, Any]]] = {}
        for g in store.list_grants(analyst):
            grants.setdefault(g["dataset"], []).append({
                "purpose": g["purpose"], "accounting": g["accounting"],
                "granted": {"epsilon": g["epsilon"], "delta": g["delta"], "rho": g.get("rho", 0.0)},
                "remaining": {"epsilon": g["remaining_epsilon"], "delta": g["remaining_delta"],
                              "rho": g.get("remaining_rho", 0.0)},
            })
        out = []
        for name in sorted(grants):
            try:
                ds = holder._dataset(name)
            except PetsError:
                continue  # a source gone or changed: not usable now
            pol = ds.policy.to_dict()
            grades = pol.get("grades", {})
            neg = set(pol.get("negative_list", ()))
            cols = []
            for col, typ in ds.schema.items():
                cp = pol["columns"].get(col, {})
                grade = cp.get("grade")
                forms = list(grades.get(str(grade), {}).get("allow", ())) if grade else []
                cols.append({
                    "name": col, "type": str(typ), "role": cp.get("role"), "grade": grade,
                    "allowed_forms": [] if col in neg else forms, "bounds": cp.get("bounds"),
                    "keys": cp.get("keys"), "hierarchy": "hierarchy" in cp,
                    "negative_list": col in neg,
                })
            settings = dict(pol.get("dataset", {}))
            unit = settings.pop("privacy_unit", None)
            out.append({"name": name, "columns": cols, "privacy_unit": unit,
                        "settings": settings, "grades": grades, "grants": grants[name]})
        return {"analyst": analyst, "datasets": out}

    def remaining(c: Caller, dataset: str, purpose: str) -> dict[str, Any]:
        from ..pipeline import _no_grant

        s = session(c, purpose)
        if store.get_grant(c.analyst, dataset, purpose) is None:
            store.record({"analyst": c.analyst, "purpose": purpose, "dataset": dataset,
                          "kind": "remaining", "status": "refused", "rule": "no_grant",
                          "column": None})
            raise _no_grant(s, dataset)
        return {"dataset": dataset, "purpose": purpose,
                "remaining": wire.cost_to_json(s.remaining(dataset))}

    # never shown to analysts: digests, key ids, and which holder staff account acted
    _HIDDEN = {"answer_digest", "key_ids", "revoked_ids", "record_sha256", "by"}

    def history(c: Caller, dataset: str | None, purpose: str | None, kind: str | None,
                status: str | None, last: int | None) -> dict[str, Any]:
        recs = holder.audit().records(analyst=c.analyst, dataset=dataset, purpose=purpose,
                                      kind=kind, status=status)
        if last is not None:
            recs = recs[-last:] if last else []
        return {"records": [{k: v for k, v in r.items() if k not in _HIDDEN} for r in recs]}

    def dummy(c: Caller, body: M.DummyRequest, purpose: str) -> dict[str, Any]:
        s = session(c, purpose)
        if store.get_grant(c.analyst, body.dataset, purpose) is None:
            from ..pipeline import _no_grant

            raise _no_grant(s, body.dataset)
        df = s.dummy(body.dataset, rows=body.rows, seed=body.seed)
        return {"dataset": body.dataset, "df": wire.frame_to_json(df)}

    # -- endpoints ---------------------------------------------------------------------
    @app.get("/healthz", response_model=M.Health, tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=M.Health, tags=["operations"])
    async def readyz() -> Any:
        """The store answers (the audit head is readable)."""
        try:
            await asyncio.get_running_loop().run_in_executor(pool, lambda: holder.audit().head())
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            log.error(json.dumps({"event": "not_ready", "exception": type(e).__name__}))
            return _error_response(ServerError("the store is not ready", status=503))
        return {"status": "ready"}

    @app.get("/v1/datasets", response_model=M.DatasetsBody, tags=["analyst"])
    async def datasets(c: Caller = Depends(caller)) -> Any:
        """The datasets this key's analyst has grants on: schema, policy summary, grants.
        Never rows."""
        return JSONResponse(await run(c, lambda: summary(c.analyst)))

    @app.post("/v1/explain", response_model=M.ExplanationBody, tags=["analyst"])
    async def explain(body: M.QueryRequest, c: Caller = Depends(caller)) -> Any:
        """What the release would do — allowed or not, cost, noise scale, CI width —
        spending nothing and touching no data."""
        return JSONResponse(await run(c, lambda: do_explain(c, body)))

    @app.post("/v1/release", response_model=M.ReleaseBody | M.ExtractBody, tags=["analyst"])
    async def release(body: M.QueryRequest, c: Caller = Depends(caller)) -> Any:
        """Release the answer through the one release pipeline: a DP Release (with
        intervals at ``ci_levels``) or a k-anonymous Extract."""
        return JSONResponse(await run(c, lambda: do_release(c, body)))

    @app.get("/v1/remaining", response_model=M.RemainingBody, tags=["analyst"])
    async def remaining_(dataset: str = Query(max_length=1000),
                         purpose: str = Query(max_length=1000),
                         c: Caller = Depends(caller)) -> Any:
        """Budget left for this analyst on ``dataset`` for ``purpose``."""
        return JSONResponse(await run(c, lambda: remaining(c, dataset, purpose)))

    @app.get("/v1/history", response_model=M.HistoryBody, tags=["analyst"])
    async def history_(dataset: str | None = Query(default=None, max_length=1000),
                       purpose: str | None = Query(default=None, max_length=1000),
                       kind: str | None = Query(default=None, max_length=100),
                       status: str | None = Query(default=None, max_length=100),
                       last: int | None = Query(default=None, ge=0, le=1_000_000),
                       c: Caller = Depends(caller)) -> Any:
        """This analyst's own audit records (releases, refusals, grants, keys), oldest first."""
        return JSONResponse(await run(c, lambda: history(c, dataset, purpose, kind, status, last)))

    @app.post("/v1/dummy", response_model=M.DummyBody, tags=["analyst"])
    async def dummy_(body: M.DummyRequest, purpose: str = Query(max_length=1000),
                     c: Caller = Depends(caller)) -> Any:
        """A fake table with the dataset's schema, bounds and public keys, generated from
        the policy only (never from the rows); spends nothing."""
        return JSONResponse(await run(c, lambda: dummy(c, body, purpose)))

    from .federation import install as install_federation

    install_federation(app, holder, caller, run)
    from .models_api import install as install_models  # /v1/fit, /v1/synthesize

    install_models(app, holder, caller, run)
    from ..console import mount as mount_console

    mount_console(app, holder)  # the holder's console under /console (docs/console.md)
    from .verify import install as install_verify  # /v1/verify...

    install_verify(app, holder, caller, run)
    return app


# --------------------------------------------------------------------------- serving

_ENV_HOME, _ENV_LIMITS, _ENV_KEY, _ENV_LOG = (
    "PETS_SERVE_HOME", "PETS_SERVE_LIMITS", "PETS_SERVE_AUDIT_KEY", "PETS_SERVE_LOG_LEVEL")


def app_from_env() -> FastAPI:
    """The app of one of ``pets serve --processes N``'s processes (uvicorn's factory):
    the home and limits come from the environment the parent set."""
    from .jsonlog import configure

    configure(os.environ.get(_ENV_LOG, "info"))  # a spawned process: log as the parent
    lim = Limits(**json.loads(os.environ[_ENV_LIMITS]))
    key = os.environ.get(_ENV_KEY) or None
    return create_app(Holder(Path(os.environ[_ENV_HOME]), audit_key=key), limits=lim)


def serve(home: "str | os.PathLike[str]", *, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None, audit_key: "str | os.PathLike[str] | None" = None,
          log_level: str = "info") -> None:
    """Run the server until SIGINT/SIGTERM (what ``pets serve`` does): one process, or
    ``limits.processes`` processes sharing the port, each with ``limits.workers`` threads.
    In-flight releases finish (and are recorded) before a process exits."""
    import uvicorn

    lim = limits if limits is not None else Limits()
    Holder(Path(home), audit_key=audit_key)  # a bad home or key fails here, once
    cores = os.cpu_count() or 1
    log.info(json.dumps({"event": "start", "host": host, "port": port,
                         "processes": lim.processes, "workers": lim.workers, "cores": cores}))
    if lim.processes == 1 and cores > 1:
        log.info(json.dumps({
            "event": "hint", "message": "one server process computes releases on about one "
            f"core; for more releases per second run one per core: --processes {cores}"}))
    common = dict(host=host, port=port, log_level=log_level, log_config=None,
                  access_log=False, timeout_graceful_shutdown=lim.timeout)
    if lim.processes == 1:
        uvicorn.run(create_app(Holder(Path(home), audit_key=audit_key), limits=lim), **common)
        return
    SharedLimits.reset(home)  # a new server: nothing is in flight
    os.environ[_ENV_HOME] = str(Path(home).resolve())
    os.environ[_ENV_LIMITS] = json.dumps(dataclasses.asdict(lim))
    os.environ[_ENV_LOG] = log_level
    if audit_key is not None:
        os.environ[_ENV_KEY] = str(Path(audit_key).resolve())
    uvicorn.run("pets.server.app:app_from_env", factory=True, workers=lim.processes, **common)
