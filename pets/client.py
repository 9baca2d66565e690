"""The remote session: the local :class:`pets.Session` over HTTP.

>>> s = pets.connect("http://127.0.0.1:8000", api_key=key, purpose="labour-stats")  # doctest: +SKIP
>>> r = s.release(s.table("adult").group_by("sex").agg(n=pets.count()), pets.DP(epsilon=0.5))  # doctest: +SKIP

The same query builder, the same results (:class:`pets.Release`, :class:`pets.Extract`,
:class:`pets.Explanation`, with pandas DataFrames of the same dtypes) and the same
exception classes, re-raised from the server's error body with their fields. The only
new error is :class:`pets.errors.ServerError`: a request the server did not answer
(429 with ``retry_after``, 413, a timeout, an unreachable server).

Only JSON travels: the plan's JSON form (:meth:`pets.plan.Plan.to_dict`) and the
protection's; never code or pickles.
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from . import wire
from .cost import Cost
from .errors import QueryError, ServerError
from .plan import Plan
from .protections import KAnonymity, Protection
from .query import Query
from .release import Explanation, Extract, Release

__all__ = ["RemoteSession", "connect"]


def connect(url: str, *, api_key: str, purpose: str, timeout: float = 60.0,
            transport: Any = None) -> "RemoteSession":
    """A remote session on the holder's server at ``url`` for ``purpose``, as the analyst
    the holder issued ``api_key`` to (``holder.issue_key`` / ``pets keys issue``).

    ``timeout`` seconds per request; ``transport`` an httpx transport (tests)."""
    return RemoteSession(url, api_key=api_key, purpose=purpose, timeout=timeout,
                         transport=transport)


class RemoteSession:
    """A session on a holder's server: ``table``, ``sql``, ``explain``, ``release``,
    ``remaining`` as the local session's, plus ``datasets()``, ``history()`` and
    ``dummy()``."""

    def __init__(self, url: str, *, api_key: str, purpose: str, timeout: float = 60.0,
                 transport: Any = None) -> None:
        import httpx

        if not isinstance(api_key, str) or not api_key:
            raise QueryError("api_key must be the key the holder issued (a string)")
        if not isinstance(purpose, str):
            raise QueryError(f"purpose must be a string, got {type(purpose).__name__}")
        self.url = str(url).rstrip("/")
        self.purpose = purpose
        kw: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {api_key}"}, **kw)

    def __repr__(self) -> str:
        return f"RemoteSession(url={self.url!r}, purpose={self.purpose!r})"

    def __enter__(self) -> "RemoteSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None,
              params: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            resp = self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException:
            raise ServerError(f"the server at {self.url} did not answer in time; a release "
                              "may still complete there: asking again identically returns "
                              "it at no further cost") from None
        except httpx.HTTPError as e:
            raise ServerError(f"cannot reach the server at {self.url}: "
                              f"{type(e).__name__}") from None
        return wire.answer_of(resp)

    def _body(self, query: Query | Plan | None, protection: Protection, *, sql: str | None = None,
              ci_levels: Iterable[float] = (0.95,), dummy: bool = False,
              rows: int | None = None, seed: int | None = None) -> dict[str, Any]:
        from .pipeline import _check_protection, plan_of

        body: dict[str, Any] = {"purpose": self.purpose}
        if sql is not None:
            if not isinstance(sql, str):
                raise QueryError(f"SQL must be a string, got {type(sql).__name__}")
            body["sql"] = sql
        else:
            body["plan"] = plan_of(query).to_dict()  # type: ignore[arg-type]
        _check_protection(protection)
        body["protection"] = protection.to_dict()
        levels = [_level(x) for x in ci_levels]
        body["ci_levels"] = levels
        if dummy is not False:
            body["dummy"] = dummy
        if rows is not None:
            body["rows"] = rows
        if seed is not None:
            body["seed"] = seed
        return body

    # -- building --------------------------------------------------------------------
    def table(self, name: str) -> Query:
        """A query on dataset ``name`` (checked by the server when explained or released)."""
        if not isinstance(name, str) or not name:
            raise QueryError(f"a dataset name must be a non-empty string, got {name!r}")
        return Query(name)

    # -- answering -------------------------------------------------------------------
    def explain(self, query: Query | Plan, protection: Protection) -> Explanation:
        """What ``release`` would do, spending nothing (``POST /v1/explain``)."""
        from .mechanisms.models import Fit, Synthetic

        if isinstance(protection, (Fit, Synthetic)):  # POST /v1/fit, /v1/synthesize
            return self._models_call(query, protection, explain=True)  # type: ignore[no-any-return]
        return wire.explanation_from_json(
            self._call("POST", "/v1/explain", json=self._body(query, protection)))

    # -- models and synthetic data (POST /v1/fit, /v1/synthesize) ----------------------
    def fit(self, query: Query | Plan, model: Any, protection: Protection, *,
            dummy: bool = False, rows: int | None = None, seed: int | None = None) -> Any:
        """Fit a DP model on the holder's side (``POST /v1/fit``); the fitted model comes
        back as its JSON form, loaded with :func:`pets.models.load`."""
        from .mechanisms.models import Fit

        return self._models_call(query, Fit(model, protection), dummy=dummy, rows=rows, seed=seed)

    def synthesize(self, query: Query | Plan, protection: Protection, rows: int | None = None,
                   *, bins: int = 16) -> Any:
        """DP synthetic rows (``POST /v1/synthesize``): a ``pets.synth.SyntheticData``."""
        from .mechanisms.models import Synthetic

        return self._models_call(query, Synthetic(protection, rows, bins))

    def _models_call(self, query: Query | Plan, prot: Any, *, explain: bool = False,
                     dummy: bool = False, rows: int | None = None, seed: int | None = None) -> Any:
        from .mechanisms.models import Fit
        from .models import load
        from .pipeline import plan_of
        from .mechanisms.models import synthetic_from_json

        plan = plan_of(query)
        body: dict[str, Any] = {"purpose": self.purpose, "plan": plan.to_dict(),
                                "protection": prot.dp.to_dict()}
        if explain:
            body["explain"] = True
        if isinstance(prot, Fit):
            body["model"] = prot.model.spec()
            if dummy is not False:
                body["dummy"] = dummy
            for k, v in (("rows", rows), ("seed", seed)):
                if v is not None:
                    body[k] = v
            d = self._call("POST", "/v1/fit", json=body)
            if explain:
                return wire.explanation_from_json(d)
            m = load(d["model"])
            m.dummy = bool(d.get("dummy", False))
            return m
        body["bins"] = prot.bins
        if prot.rows is not None:
            body["rows"] = prot.rows
        d = self._call("POST", "/v1/synthesize", json=body)
        if explain:
            return wire.explanation_from_json(d)
        return synthetic_from_json(d, plan, prot)

    def release(self, query: Query | Plan, protection: Protection, *,
                ci_levels: Iterable[float] = (0.95,), dummy: bool = False,
                rows: int | None = None, seed: int | None = None) -> Any:
        """Release through the holder's pipeline (``POST /v1/release``): a Release (its
        intervals at ``ci_levels`` come with it; other levels are asked for again — a
        repeated identical release is answered from the recorded answer at no cost) or,
        for ``KAnonymity``, an Extract. ``dummy=True`` (with ``rows``, ``seed``) runs the
        same request on a fake table made from the policy, spending nothing, as the
        local :meth:`pets.Session.release` does."""
        return self._release(self._body(query, protection, ci_levels=ci_levels, dummy=dummy,
                                        rows=rows, seed=seed), query, protection)

    def sql(self, text: str, protection: Protection, *,
            ci_levels: Iterable[float] = (0.95,), dummy: bool = False,
            rows: int | None = None, seed: int | None = None) -> Any:
        """Answer one SQL query under ``protection`` (parsed by the server)."""
        return self._release(self._body(None, protection, sql=text, ci_levels=ci_levels,
                                        dummy=dummy, rows=rows, seed=seed), None, protection)

    def _release(self, body: dict[str, Any], query: Any, protection: Protection) -> Any:
        d = self._call("POST", "/v1/release", json=body)
        plan = query.plan if isinstance(query, Query) else query
        if plan is None and d.get("plan") is not None:  # SQL text: the plan the server parsed
            plan = Plan.from_dict(d["plan"])
        if d.get("type") == "extract" or isinstance(protection, KAnonymity):
            return wire.extract_from_json(d, plan, protection)

        def fetch_ci(level: float) -> pd.DataFrame:
            again = self._call("POST", "/v1/release", json={**body, "ci_levels": [_level(level)]})
            return wire.frame_from_json(again["ci"][repr(float(level))])

        return wire.release_from_json(d, plan, protection, fetch_ci)

    def remaining(self, dataset: str | None = None) -> Cost:
        """Budget left for this analyst and purpose on ``dataset`` (which may be left out
        when the analyst has a grant for this purpose on one dataset only)."""
        if dataset is None:
            granted = sorted(d["name"] for d in self.datasets()
                             if any(g["purpose"] == self.purpose for g in d["grants"]))
            if len(granted) != 1:
                raise QueryError(
                    "name the dataset: s.remaining('adult') "
                    f"(grants for this purpose: {', '.join(granted) or 'none'})"
                )
            dataset = granted[0]
        d = self._call("GET", "/v1/remaining", params={"dataset": dataset, "purpose": self.purpose})
        return wire.cost_from_json(d["remaining"]) or Cost()

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets this analyst has grants on: ``name``, ``columns`` (type, role,
        grade, allowed forms, bounds, public keys), ``grades``, ``settings``, ``grants``."""
        return list(self._call("GET", "/v1/datasets")["datasets"])

    def history(self, **filters: Any) -> list[dict[str, Any]]:
        """This analyst's own audit records, oldest first (filters: ``dataset``,
        ``purpose``, ``kind``, ``status``, ``last``)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return list(self._call("GET", "/v1/history", params=params)["records"])

    def dummy(self, dataset: str, rows: int = 1000, seed: int | None = None) -> pd.DataFrame:
        """A fake table with ``dataset``'s schema, bounds and public keys, generated from
        the policy only; spends nothing."""
        d = self._call("POST", "/v1/dummy", params={"purpose": self.purpose},
                       json={"dataset": dataset, "rows": rows, "seed": seed})
        return wire.frame_from_json(d["df"])


def _level(x: Any) -> float:
    from .dp.accuracy import check_level

    return check_level(x)


# -- verification (docs/verification.md) ------------------------------------------------
def _verify_methods() -> None:
    """RemoteSession.verify / verify_batch / verify_psi / verify_hidden: the local
    session's verification methods over ``/v1/verify...``."""
    from .plan import _expr_to_dict

    def _claim(claim: Any) -> dict[str, Any]:
        from .query import Expression

        if isinstance(claim, Expression):
            claim = claim.node
        from .plan import is_expr

        if not is_expr(claim):
            raise QueryError("claim must be an expression such as col('age') >= 30")
        return _expr_to_dict(claim)

    def _answer(self: Any, path: str, body: dict[str, Any], explain: bool) -> Any:
        out = self._call("POST", path, json={"purpose": self.purpose, **body, "explain": explain})
        return wire.explanation_from_json(out) if explain else out

    def verify(self: Any, dataset: str, subject: dict[str, Any], claim: Any, *,
               explain: bool = False) -> Any:
        """As :meth:`pets.Session.verify` (``POST /v1/verify``)."""
        from .verify import Verify
        from .verify.results import Verification

        v = Verify(subject=subject)  # checked here, as locally
        out = _answer(self, "/v1/verify", {"dataset": dataset, "subject": dict(zip(v.keys, v.rows[0])),
                                           "claim": _claim(claim)}, explain)
        if explain:
            return out
        return Verification(out["match"], out["answer"], out["audit_id"], out["answers_left"])

    def verify_batch(self: Any, dataset: str, subjects: pd.DataFrame, claim: Any, *,
                     explain: bool = False) -> Any:
        """As :meth:`pets.Session.verify_batch` (``POST /v1/verify/batch``)."""
        from .verify import Verify
        from .verify.results import BatchVerification

        v = Verify(subjects=subjects)
        cols = {k: [r[i] for r in v.rows] for i, k in enumerate(v.keys)}
        out = _answer(self, "/v1/verify/batch", {"dataset": dataset, "subjects": cols,
                                                 "claim": _claim(claim)}, explain)
        if explain:
            return out
        df = subjects.copy()
        df["match"], df["answer"] = out["match"], out["answer"]
        return BatchVerification(df, out["audit_id"], out["answers_left"])

    def verify_psi(self: Any, dataset: str, pairs: pd.DataFrame, keys: Any, *,
                   explain: bool = False) -> Any:
        """As :meth:`pets.Session.verify_psi` (``POST /v1/verify/psi``): the pairs are
        blinded here; only the blinded request goes to the server."""
        import base64

        from .mechanisms.verify import PSIAnswer
        from .verify.api import finish_psi
        from .verify.psi import PSIVerifier

        keys = [keys] if isinstance(keys, str) else list(keys)
        if not isinstance(pairs, pd.DataFrame):
            raise QueryError(f"pairs must be a pandas DataFrame, not {type(pairs).__name__}")
        columns = [c for c in pairs.columns if c not in keys]
        verifier = PSIVerifier(pairs, keys, columns)
        prot = verifier.request()
        out = _answer(self, "/v1/verify/psi", {
            "dataset": dataset, "keys": keys, "columns": columns,
            "request": base64.b64encode(bytes(prot.request)).decode()}, explain)
        if explain:
            return out
        a = PSIAnswer(base64.b64decode(out["setup"]), base64.b64decode(out["response"]),
                      out["audit_id"], out["answers_left"], out["items"])
        return finish_psi(verifier, a)

    def verify_hidden(self: Any, dataset: str, subject: dict[str, Any], column: str,
                      value: Any, *, verifier: Any = None, explain: bool = False) -> Any:
        """As :meth:`pets.Session.verify_hidden` (``POST /v1/verify/hidden``): the value
        is encrypted here under the verifier's key; only the ciphertext is sent."""
        from .verify import Verify
        from .verify.hidden import HiddenVerifier
        from .verify.results import Verification

        v = Verify(subject=subject)
        verifier = verifier or HiddenVerifier()
        out = _answer(self, "/v1/verify/hidden", {
            "dataset": dataset, "subject": dict(zip(v.keys, v.rows[0])), "column": column,
            "n": str(verifier.public_key.n), "ciphertext": str(verifier.encrypt(value))}, explain)
        if explain:
            return out
        if out["no_subject"]:
            return Verification(False, "no_subject", out["audit_id"], out["answers_left"])
        ok = verifier.match(int(out["ciphertext"]))
        return Verification(ok, "match" if ok else "no_match", out["audit_id"], out["answers_left"])

    for f in (verify, verify_batch, verify_psi, verify_hidden):
        setattr(RemoteSession, f.__name__, f)


_verify_methods()
