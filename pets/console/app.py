"""The holder's console: server-rendered pages under ``/console`` of ``pets serve``.

Security model (docs/console.md):

* Holder accounts (``<home>/console.db``, scrypt-hashed passwords) are separate from
  analysts' API keys; a console session is a random cookie token (HttpOnly,
  SameSite=Strict, Secure behind TLS, path ``/console``), kept hashed, ending 8 h after
  its last use or at sign-out.
* Every form carries the session's CSRF token (the sign-in form a double-submit one); a
  POST without it, or from another origin, changes nothing and is audited as refused.
* Every page is sent with a strict Content-Security-Policy (scripts and styles only from
  ``/console/static``, no inline script or style, no frames, forms only to this origin)
  and ``Cache-Control: no-store``.
* Every act (sign-in, sign-out, grant, change, revoke, key issued or revoked, dataset
  registered, log verified, account added) is an audit record naming the account.
* Pages show metadata only: schemas, policies, budgets, audit records. Never a row, and
  no literal of an analyst's filters (the plan is shown by its columns and aggregates).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import sqlite3
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import AuditError, PetsError
from ..holder import Holder
from .accounts import Accounts, ConsoleSession
from .svg import budget_bar, burndown

__all__ = ["create_console", "CSP", "PAGE_SIZE"]

log = logging.getLogger("pets.console")

HERE = Path(__file__).parent
COOKIE = "pets_console"
LOGIN_COOKIE = "pets_console_login"
PAGE_SIZE = 50
#: Analysts per page of the grants page; steps of a burn-down plot at most.
GRANT_ANALYSTS = 10
BURNDOWN_STEPS = 60
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null" on posts
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_FILTERS = ("analyst", "dataset", "purpose", "kind", "status", "rule")


class _SecurityHeaders:
    """ASGI middleware: the console's security headers on every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                headers = [(k, v) for k, v in msg.get("headers", [])
                           if k.decode("latin-1").lower() not in {h.lower() for h in _HEADERS}]
                headers += [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
                msg = {**msg, "headers": headers}
            await send(msg)

        await self.app(scope, receive, with_headers)


def _fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return "" if x is None else str(x)
    if isinstance(x, (int, float)):
        if isinstance(x, float) and math.isinf(x):
            return "∞"
        return f"{x:.6g}"
    return str(x)


def _plan_text(plan: Any) -> str:
    """A plan by its aggregates, grouping and the columns it filters on — no literal
    (a filter's value may be a protected value the analyst asked about)."""
    if not isinstance(plan, dict):
        return ""
    from .. import plan as P

    parts = []
    aggs = plan.get("aggs") or []
    if aggs:
        parts.append(", ".join(
            f"{a.get('name')}={a.get('kind')}({a.get('column') or ''})" for a in aggs
            if isinstance(a, dict)))
    sel = plan.get("select")
    if sel:
        parts.append("select " + ", ".join(map(str, sel)))
    gb = [g.get("column") or "expr" for g in plan.get("group_by") or [] if isinstance(g, dict)]
    if gb:
        parts.append("by " + ", ".join(map(str, gb)))
    cols: list[str] = []
    try:
        for f in P.Plan.from_dict(plan).filters:
            cols += [c for c in P.expr_columns(f) if c not in cols]
    except Exception:  # noqa: BLE001 - an old or odd record: say only that it filters
        if plan.get("filters"):
            cols = ["…"]
    if cols:
        parts.append("filtered on " + ", ".join(cols))
    return f"{plan.get('dataset', '')}: " + "; ".join(parts)


def _cost_text(body: dict[str, Any]) -> str:
    cost = body.get("cost")
    if not isinstance(cost, dict):
        return ""
    out = [f"ε {_fmt(cost.get('epsilon'))}"]
    if cost.get("delta"):
        out.append(f"δ {_fmt(cost.get('delta'))}")
    if cost.get("rho"):
        out.append(f"ρ {_fmt(cost.get('rho'))}")
    return ", ".join(out)


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    rid, ts, analyst, purpose, dataset, kind, status, body = r
    try:
        b = json.loads(body)
    except ValueError:
        b = {}
    if not isinstance(b, dict):
        b = {}
    scale = b.get("noise_scale")
    prot = b.get("protection") if isinstance(b.get("protection"), dict) else {}
    detail = ""
    if kind == "console" or status == "recorded":
        keep = {k: v for k, v in b.items() if k not in (
            "by", "analyst", "dataset", "purpose", "kind", "status", "policy_version", "record_sha256", "key_ids", "revoked_ids", "answers",
            "previous")}
        detail = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(keep.items()))
    return {
        "id": rid, "ts": ts[:19].replace("T", " "), "analyst": analyst or "", "purpose": purpose or "",
        "dataset": dataset or "", "kind": kind, "status": status,
        "query": _plan_text(b.get("plan")),
        "form": ", ".join(f"{k}={_fmt(v)}" for k, v in prot.items() if k != "form"),
        "cost": _cost_text(b), "cells": _fmt(b.get("cells")),
        "scale": ", ".join(f"{k}: {_fmt(v)}" for k, v in scale.items()) if isinstance(scale, dict) else "",
        "rule": b.get("rule") or "", "column": b.get("column") or "",
        "by": b.get("by") or "", "detail": detail,
    }


class Console:
    """The pages and actions of one holder's console."""

    def __init__(self, holder: Holder, *, prefix: str = "/console") -> None:
        from ..server.limits import Buckets

        self.holder = holder
        self.store = holder._store
        self.accounts = Accounts(holder.home)
        self.prefix = prefix
        _add_indexes(self.store)
        self.signin_limit = Buckets(1.0, 10)
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True))
        self.env.filters["num"] = _fmt
        self.env.globals["prefix"] = prefix

    # -- plumbing ------------------------------------------------------------------
    def render(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**ctx), status_code=status)

    def page(self, request: Request, sess: ConsoleSession, name: str, active: str,
             status: int = 200, **ctx: Any) -> HTMLResponse:
        flash = self.accounts.take_flash(request.cookies.get(COOKIE))
        return self.render(name, status, account=sess.account, csrf=sess.csrf,
                           active=active, flash=flash, **ctx)

    def current(self, request: Request) -> ConsoleSession | None:
        return self.accounts.session(request.cookies.get(COOKIE))

    def to_login(self, request: Request) -> Response:
        nxt = request.url.path if request.url.path.startswith(self.prefix) else self.prefix
        return RedirectResponse(f"{self.prefix}/login?{urlencode({'next': nxt})}", status_code=303)

    async def form(self, request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:  # not sent by every browser on same-origin form posts
            return True
        return origin == f"{request.url.scheme}://{request.url.netloc}"

    def refuse(self, request: Request, rule: str, status: int, message: str) -> HTMLResponse:
        self.store.record({"analyst": None, "purpose": None, "dataset": None, "kind": "auth",
                           "status": "refused", "rule": rule, "path": request.url.path})
        return self.render("error.html", status, message=message)

    async def checked_post(self, request: Request) -> Response | tuple[ConsoleSession, dict[str, str]]:
        """A POST's session and form, or the response refusing it: no session (sign in),
        or another origin or a wrong CSRF token (403, audited, nothing changed)."""
        sess = await run_in_threadpool(self.current, request)
        if sess is None:
            return self.to_login(request)
        form = await self.form(request)
        if not self.same_origin(request) or not self.accounts.same(form.get("csrf"), sess.csrf):
            return await run_in_threadpool(
                self.refuse, request, "csrf", 403,
                "This form was stale or did not come from this console (the CSRF check "
                "failed), so nothing was changed. Reload the page and try again.")
        return sess, form

    async def act(self, request: Request, fn: Callable[[ConsoleSession, dict[str, str]], str],
                  back: str) -> Response:
        """A POST: check the session, origin and CSRF token, then run ``fn`` as the
        account (its holder acts name the account) and redirect to ``back`` with its
        message; a :class:`pets.PetsError` becomes the message, changing nothing."""
        checked = await self.checked_post(request)
        if isinstance(checked, Response):
            return checked
        sess, form = checked

        def run() -> str:
            with self.store.acting_as(sess.account):
                try:
                    return fn(sess, form)
                except PetsError as e:
                    return f"Not done: {e}"

        msg = await run_in_threadpool(run)
        await run_in_threadpool(self.accounts.flash, request.cookies.get(COOKIE), msg)
        return RedirectResponse(back, status_code=303)

    async def view(self, request: Request, fn: Callable[[Request, ConsoleSession], Response]) -> Response:
        def run() -> Response:
            sess = self.current(request)
            if sess is None:
                return self.to_login(request)
            return fn(request, sess)

        return await run_in_threadpool(run)

    # -- sign-in ---------------------------------------------------------------------
    async def login_get(self, request: Request) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        resp = self.render("login.html", next=_safe_next(request.query_params.get("next"), self.prefix),
                           csrf=token, error=None)
        self.set_cookie(request, resp, LOGIN_COOKIE, token, max_age=3600)
        return resp

    async def login_post(self, request: Request) -> Response:
        form = await self.form(request)
        nxt = _safe_next(form.get("next"), self.prefix)
        if not self.same_origin(request) or not self.accounts.same(
                form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            return await run_in_threadpool(
                self.refuse, request, "csrf", 403,
                "The sign-in form was stale or did not come from this console (the CSRF "
                "check failed). Reload the page and try again.")
        host = request.client.host if request.client else "?"
        if self.signin_limit.take("addr:" + host):
            return self.render("login.html", 429, next=nxt, csrf=form.get("csrf"),
                               error="Too many sign-in attempts from this address; wait a "
                                     "few seconds and try again.")
        name, password = form.get("account", ""), form.get("password", "")

        def check() -> tuple[str, Any] | None:
            if not self.accounts.check(name, password):
                self.store.record({"analyst": None, "purpose": None, "dataset": None,
                                   "kind": "auth", "status": "refused",
                                   "rule": "bad_password", "path": request.url.path})
                return None
            token, sess = self.accounts.start(name)
            self.store.record_console_act(name, "signed_in")
            return token, sess

        got = await run_in_threadpool(check)
        if got is None:
            return self.render("login.html", 401, next=nxt, csrf=form.get("csrf"),
                               error="Unknown account or wrong password.")
        resp = RedirectResponse(nxt, status_code=303)
        self.set_cookie(request, resp, COOKIE, got[0], max_age=None)
        resp.delete_cookie(LOGIN_COOKIE, path=self.prefix)
        return resp

    async def logout(self, request: Request) -> Response:
        def end(sess: ConsoleSession, form: dict[str, str]) -> str:
            self.accounts.end(request.cookies.get(COOKIE))
            self.store.record_console_act(sess.account, "signed_out")
            return ""

        resp = await self.act(request, end, f"{self.prefix}/login")
        if resp.status_code == 303:
            resp.delete_cookie(COOKIE, path=self.prefix)
        return resp

    def set_cookie(self, request: Request, resp: Response, name: str, value: str,
                   max_age: int | None) -> None:
        resp.set_cookie(name, value, max_age=max_age, path=self.prefix, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")

    # -- pages -------------------------------------------------------------------------
    def datasets_page(self, request: Request, sess: ConsoleSession) -> Response:
        out = []
        for name in self.holder.datasets():
            rec = self.store.get_dataset(name) or {}
            pol = rec.get("policy", {})
            grades = pol.get("grades", {})
            neg = set(pol.get("negative_list", ()))
            status = "ready"
            try:
                self.holder._dataset(name)
            except PetsError as e:
                status = str(e)
            cols = []
            for col, typ in (rec.get("schema") or {}).items():
                cp = pol.get("columns", {}).get(col, {})
                grade = cp.get("grade")
                rule = grades.get(str(grade), {}) if grade is not None else {}
                keys = cp.get("keys")
                cols.append({
                    "name": col, "type": typ, "role": cp.get("role") or "",
                    "grade": "" if grade is None else grade,
                    "allow": "nothing (negative list)" if col in neg else
                             ", ".join(rule.get("allow", ())) if grade is not None else
                             "nothing (not in the policy: default deny)",
                    "limits": ", ".join(f"{k} {_fmt(rule[k])}" for k in ("min_k", "max_epsilon")
                                        if rule.get(k) is not None),
                    "bounds": "" if cp.get("bounds") is None else
                              f"[{_fmt(cp['bounds'][0])}, {_fmt(cp['bounds'][1])}]",
                    "public_keys": "" if keys is None else ", ".join(map(str, keys[:12])) +
                            (f" … (+{len(keys) - 12})" if len(keys) > 12 else ""),
                    "negative": col in neg,
                })
            settings = {k: v for k, v in (pol.get("dataset") or {}).items()}
            src = rec.get("source", {})
            out.append({"name": name, "columns": cols, "settings": settings, "status": status,
                        "registered_at": rec.get("registered_at", ""),
                        "source": f"{src.get('kind', '')} {src.get('path', '')}",
                        "policy_version": self.store_policy_version(name)})
        return self.page(request, sess, "datasets.html", "datasets", datasets=out)

    def store_policy_version(self, name: str) -> str:
        with self.store._read() as con:
            row = con.execute("SELECT policy_version FROM datasets WHERE name = ?", (name,)).fetchone()
        return str(row[0] or "")[:16] if row else ""

    def grant_rows(self, analysts: list[str]) -> list[dict[str, Any]]:
        """The grants of ``analysts`` with spent and remaining budget, from the store's
        running exact totals (table ``spent``), as :meth:`Store.list_grants` gives them
        but without summing the ledger."""
        from fractions import Fraction

        from ..dp.accountant import Budget

        if not analysts:
            return []
        marks = ", ".join("?" * len(analysts))
        with self.store._read() as con:
            grants = con.execute(
                "SELECT g.analyst, g.dataset, g.purpose, g.epsilon_text, g.delta_text, "
                "g.accounting, g.updated, s.epsilon_text, s.delta_text, s.rho_text, s.zdelta_text "
                "FROM grants g LEFT JOIN spent s ON s.analyst = g.analyst AND "
                "s.dataset = g.dataset AND s.purpose = g.purpose "
                f"WHERE g.analyst IN ({marks}) ORDER BY g.analyst, g.dataset, g.purpose",
                analysts).fetchall()
        out = []
        for a, d, p, e, dl, acc, updated, *sp in grants:
            b = Budget(acc, Fraction(e), Fraction(dl), *(Fraction(x or "0") for x in sp))
            spent, left = b.spent(), b.remaining()
            out.append({"analyst": a, "dataset": d, "purpose": p, "accounting": acc,
                        "epsilon": float(Fraction(e)), "delta": float(Fraction(dl)),
                        "updated": updated,
                        "spent_epsilon": spent.epsilon, "remaining_epsilon": left.epsilon,
                        "rho": float(b.rho), "spent_rho": float(b.spent_rho),
                        "remaining_rho": left.rho})
        return out

    def grants_page(self, request: Request, sess: ConsoleSession) -> Response:
        want = request.query_params.get("analyst", "").strip()[:200]
        page = _int(request.query_params.get("page")) or 1
        with self.store._read() as con:
            if want:
                names = [r[0] for r in con.execute(
                    "SELECT DISTINCT analyst FROM grants WHERE analyst = ?", (want,))]
            else:
                names = [r[0] for r in con.execute(
                    "SELECT DISTINCT analyst FROM grants ORDER BY analyst LIMIT ? OFFSET ?",
                    (GRANT_ANALYSTS + 1, (page - 1) * GRANT_ANALYSTS))]
        more = len(names) > GRANT_ANALYSTS
        names = names[:GRANT_ANALYSTS]
        by_analyst: dict[str, list[dict[str, Any]]] = {}
        grants = self.grant_rows(names)
        burn = self.burndowns(names)
        for g in grants:
            zcdp = g["accounting"] == "zcdp"
            unit = "ρ" if zcdp else "ε"
            total = g["rho"] if zcdp else g["epsilon"]
            spent = g["spent_rho"] if zcdp else g["spent_epsilon"]
            points, n = burn.get((g["analyst"], g["dataset"], g["purpose"]), ([], 0))
            points = [(ts, r if zcdp else e) for ts, e, r in points]
            label = f"{g['analyst']} on {g['dataset']} for {g['purpose']} ({unit})"
            g = dict(g, unit=unit, total=total, spent=spent,
                     left=max(total - spent, 0.0),
                     bar=budget_bar(spent, total, label=label),
                     plot=burndown(points, total, label=label, start=g["updated"], charges=n),
                     charges=n)
            by_analyst.setdefault(g["analyst"], []).append(g)
        return self.page(request, sess, "grants.html", "grants", by_analyst=by_analyst,
                         datasets=self.holder.datasets(), analyst=want,
                         prev_page=page - 1 if page > 1 and not want else None,
                         next_page=page + 1 if more and not want else None)

    def burndowns(self, analysts: list[str]) -> dict[tuple[str, str, str], tuple[list[tuple[str, float, float]], int]]:
        """The burn-downs of the grants of ``analysts``: per (analyst, dataset, purpose)
        the charges summed into at most :data:`BURNDOWN_STEPS` steps of the log (by audit
        id, which grows with time; one SQL query over the ledger), each step with the
        time of its last charge (one look-up per step), and the number of charges."""
        if not analysts:
            return {}
        marks = ", ".join("?" * len(analysts))
        with self.store._read() as con:
            last = con.execute("SELECT last_id FROM audit_head").fetchone()[0] or 1
            steps = con.execute(
                "SELECT analyst, dataset, purpose, MAX(audit_id), SUM(epsilon), "
                "SUM(CAST(rho_text AS REAL)), COUNT(*) FROM ledger "
                f"WHERE analyst IN ({marks}) GROUP BY analyst, dataset, purpose, "
                "audit_id * ? / ? ORDER BY 4", (*analysts, BURNDOWN_STEPS, last + 1)).fetchall()
            ids = [r[3] for r in steps]
            ts: dict[int, str] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                ts.update(con.execute(
                    f"SELECT id, ts FROM audit WHERE id IN ({', '.join('?' * len(chunk))})",
                    chunk).fetchall())
        out: dict[tuple[str, str, str], tuple[list[tuple[str, float, float]], int]] = {}
        for a, d, p, rid, e, r, n in steps:
            pts, count = out.get((a, d, p), ([], 0))
            if rid in ts:
                pts.append((ts[rid], float(e or 0), float(r or 0)))
            out[(a, d, p)] = (pts, count + int(n))
        return out

    def records_query(self, q: dict[str, str], scope: str) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if scope == "releases":
            where.append("status IN ('released', 'refused')")
        for name in ("analyst", "dataset", "purpose", "kind", "status"):
            if q.get(name):
                where.append(f"{name} = ?")
                args.append(q[name])
        if q.get("rule"):  # matches the partial index audit_refusal_rule
            where.append("json_extract(body, '$.rule') = ? AND status = 'refused'")
            args.append(q["rule"])
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def records(self, request: Request, scope: str) -> dict[str, Any]:
        q = {k: request.query_params.get(k, "").strip()[:200] for k in _FILTERS}
        before = _int(request.query_params.get("before"))
        where, args = self.records_query(q, scope)
        page_where = where + (" AND " if where else " WHERE ") + "id < ?" if before else where
        page_args = args + [before] if before else args
        with self.store._read() as con:
            rows = con.execute(
                "SELECT id, ts, analyst, purpose, dataset, kind, status, body FROM audit"
                f"{page_where} ORDER BY id DESC LIMIT ?", (*page_args, PAGE_SIZE + 1)).fetchall()
            total = con.execute(f"SELECT COUNT(*) FROM audit{where}", args).fetchone()[0]
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        keep = {k: v for k, v in q.items() if v}
        older = f"?{urlencode({**keep, 'before': rows[-1][0]})}" if more else None
        newest = f"?{urlencode(keep)}" if before else None
        return {"rows": [_row(r) for r in rows], "total": total, "filters": q, "older": older,
                "newest": newest, "query": urlencode(keep)}

    def releases_page(self, request: Request, sess: ConsoleSession) -> Response:
        ctx = self.records(request, "releases")
        if request.query_params.get("fragment"):
            return self.render("_records.html", **ctx, scope="releases")
        return self.page(request, sess, "releases.html", "releases", **ctx, scope="releases")

    def audit_page(self, request: Request, sess: ConsoleSession) -> Response:
        ctx = self.records(request, "audit")
        head = self.holder.audit().head()
        last = self.accounts.last_verification()
        since = None
        if last is not None:
            try:
                since = head.id - int(str(last["head"]).split(":")[0])
            except ValueError:
                since = None
        key = self.store.audit_key()
        return self.page(request, sess, "audit.html", "audit", **ctx, scope="audit", head=str(head),
                         last=last, since=since, fingerprint=key.fingerprint,
                         key_path=str(key.path))

    def keys_page(self, request: Request, sess: ConsoleSession) -> Response:
        keys = list(reversed(self.store.list_keys()))
        return self.page(request, sess, "keys.html", "keys", keys=keys, new_key=None,
                         nonce=secrets.token_urlsafe(16))

    def accounts_page(self, request: Request, sess: ConsoleSession) -> Response:
        return self.page(request, sess, "accounts.html", "accounts", accounts=self.accounts.names())

    # -- actions -------------------------------------------------------------------------
    def do_grant(self, sess: ConsoleSession, f: dict[str, str]) -> str:
        eps, dlt = _float(f.get("epsilon"), "epsilon"), _float(f.get("delta") or "0", "delta")
        analyst, dataset, purpose = f.get("analyst", "").strip(), f.get("dataset", ""), f.get("purpose", "").strip()
        self.holder.grant(analyst, dataset=dataset, purpose=purpose, epsilon=eps, delta=dlt,
                          accounting=f.get("accounting") or "basic")
        return f"Granted {analyst} ε={_fmt(eps)}, δ={_fmt(dlt)} on {dataset} for {purpose}."

    def do_revoke(self, sess: ConsoleSession, f: dict[str, str]) -> str:
        analyst, dataset, purpose = f.get("analyst", ""), f.get("dataset", ""), f.get("purpose", "")
        self.holder.revoke(analyst, dataset=dataset, purpose=purpose)
        return f"Revoked the grant of {analyst} on {dataset} for {purpose}."

    def do_revoke_key(self, sess: ConsoleSession, f: dict[str, str]) -> str:
        analyst = self.store.revoke_key_id(f.get("key_id", ""))
        return f"Revoked key {f.get('key_id', '')} of {analyst}."

    def do_verify(self, sess: ConsoleSession, f: dict[str, str]) -> str:
        head = self.holder.audit().head()
        pinned = f.get("head", "").strip() or None
        try:
            self.holder.audit().verify(head=pinned)
            ok, message = True, "the log verifies: chain, signatures, ledger, grants, keys and head"
        except AuditError as e:
            ok, message = False, str(e)
        except PetsError as e:
            ok, message = False, str(e)
        self.accounts.note_verification(sess.account, ok, str(head), message)
        try:
            self.store.record_console_act(sess.account, "verified", ok=ok, head=str(head))
        except AuditError:
            pass  # a log that cannot be extended: the failure is shown, not hidden
        return ("Verified: " if ok else "VERIFICATION FAILED: ") + message

    def do_register(self, sess: ConsoleSession, f: dict[str, str]) -> str:
        name, path, policy = (f.get(k, "").strip() for k in ("name", "path", "policy"))
        if not path or not policy:
            return "Not done: give the data file's path and the policy file's path (on the server)."
        self.holder.register(name, path, policy, replace=f.get("replace") == "on",
                             copy=f.get("copy") == "on")
        return f"Registered dataset {name} from {path}."

    def do_add_account(self, sess: ConsoleSession, f: dict[str, str]) -> str:
        name = f.get("name", "")
        if f.get("password", "") != f.get("password2", ""):
            return "Not done: the two passwords differ."
        self.accounts.add(name, f.get("password", ""))
        self.store.record_console_act(sess.account, "account_added", added=name)
        return f"Added console account {name}."

    async def issue_key(self, request: Request) -> Response:
        """Issuing a key renders the key once, on this response (no redirect: the key
        is never stored where a later page could show it)."""
        checked = await self.checked_post(request)
        if isinstance(checked, Response):
            return checked
        sess, form = checked

        def run() -> Response:
            analyst = form.get("analyst", "").strip()
            if not self.accounts.use_nonce(form.get("nonce")):  # a reload: issue nothing
                self.accounts.flash(request.cookies.get(COOKIE),
                                    "Not done: this form was already sent (a reload?); the key "
                                    "it issued was shown once. Issue a new key if it was lost.")
                return RedirectResponse(f"{self.prefix}/keys", status_code=303)
            with self.store.acting_as(sess.account):
                try:
                    key = self.holder.issue_key(analyst)
                except PetsError as e:
                    self.accounts.flash(request.cookies.get(COOKIE), f"Not done: {e}")
                    return RedirectResponse(f"{self.prefix}/keys", status_code=303)
            keys = list(reversed(self.store.list_keys()))
            return self.page(request, sess, "keys.html", "keys", keys=keys, new_key=key,
                             new_analyst=analyst, nonce=secrets.token_urlsafe(16))

        return await run_in_threadpool(run)

    # -- the app ---------------------------------------------------------------------
    def app(self) -> Starlette:
        p = ""

        def get(fn: Callable[[Request, ConsoleSession], Response]) -> Callable[[Request], Any]:
            async def endpoint(request: Request) -> Response:
                return await self.view(request, fn)
            return endpoint

        def post(fn: Callable[[ConsoleSession, dict[str, str]], str], back: str) -> Callable[[Request], Any]:
            async def endpoint(request: Request) -> Response:
                return await self.act(request, fn, f"{self.prefix}/{back}")
            return endpoint

        async def index(request: Request) -> Response:
            return RedirectResponse(f"{self.prefix}/grants", status_code=303)

        routes = [
            Route(p + "/", index),
            Route(p + "/login", self.login_get, methods=["GET"]),
            Route(p + "/login", self.login_post, methods=["POST"]),
            Route(p + "/logout", self.logout, methods=["POST"]),
            Route(p + "/datasets", get(self.datasets_page)),
            Route(p + "/datasets/register", post(self.do_register, "datasets"), methods=["POST"]),
            Route(p + "/grants", get(self.grants_page)),
            Route(p + "/grants/set", post(self.do_grant, "grants"), methods=["POST"]),
            Route(p + "/grants/revoke", post(self.do_revoke, "grants"), methods=["POST"]),
            Route(p + "/releases", get(self.releases_page)),
            Route(p + "/audit", get(self.audit_page)),
            Route(p + "/audit/verify", post(self.do_verify, "audit"), methods=["POST"]),
            Route(p + "/keys", get(self.keys_page)),
            Route(p + "/keys/issue", self.issue_key, methods=["POST"]),
            Route(p + "/keys/revoke", post(self.do_revoke_key, "keys"), methods=["POST"]),
            Route(p + "/accounts", get(self.accounts_page)),
            Route(p + "/accounts/add", post(self.do_add_account, "accounts"), methods=["POST"]),
            Mount(p + "/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

        async def not_found(request: Request, exc: Exception) -> Response:
            return self.render("error.html", 404, message="There is no such console page.")

        async def not_allowed(request: Request, exc: Exception) -> Response:
            return self.render("error.html", 405, message="That page does not take this method.")

        async def failed(request: Request, exc: Exception) -> Response:
            log.error(json.dumps({"event": "console_error", "path": request.url.path,
                                  "exception": type(exc).__name__}))
            return self.render("error.html", 500, message="The console failed on this page "
                               "(this is a bug; the server log names the error).")

        app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed,
                                                           Exception: failed})
        app.add_middleware(_SecurityHeaders)
        return app


#: Indexes the console's filters need on the store's audit table (additive: SQLite
#: ignores them on reads of its own; created once, in about 0.5 s per 10^5 records).
_INDEXES = (
    # refusals by rule: a partial index on the rule of refused records only
    "CREATE INDEX IF NOT EXISTS audit_refusal_rule ON audit (json_extract(body, '$.rule')) "
    "WHERE status = 'refused'",
)


def _add_indexes(store: Any) -> None:
    try:
        con = sqlite3.connect(store.path, timeout=30, isolation_level=None)
        try:
            for sql in _INDEXES:
                con.execute(sql)
        finally:
            con.close()
    except sqlite3.Error as e:  # a read-only home: the pages still work, only slower
        log.warning(json.dumps({"event": "console_index", "error": str(e)}))


def _safe_next(value: str | None, prefix: str) -> str:
    """Only a path inside the console (no scheme, host or '//' redirect)."""
    if not value or not value.startswith(prefix + "/") or value.startswith("//") or "\\" in value:
        return prefix + "/grants"
    return value


def _int(v: str | None) -> int | None:
    try:
        n = int(v) if v else None
    except ValueError:
        return None
    return n if n is not None and 0 < n < 1 << 62 else None


def _float(v: str | None, what: str) -> float:
    from ..errors import QueryError

    try:
        return float(v or "")
    except ValueError:
        raise QueryError(f"{what} must be a number, got {v!r}") from None


def create_console(holder: Holder, *, prefix: str = "/console") -> Starlette:
    """The console as an ASGI app to mount at ``prefix`` (``pets serve`` mounts it)."""
    return Console(holder, prefix=prefix).app()
