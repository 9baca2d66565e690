"""A federation of holders' servers: the protocol of docs/homomorphic.md over HTTP.

>>> fed = pets.Federation({"north": "http://n:8000", "south": "http://s:8000",
...                        "east": "http://e:8000"}, api_keys={...})        # doctest: +SKIP
>>> t = fed.session(purpose="p").release(q, pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))  # doctest: +SKIP

One release:

1. ``POST /v1/he/prepare`` at every member (all at once): its grant, policy, compile, budget or quota,
   and the digest of the compiled structure. Any refusal, or structures that differ,
   stop the release here — nobody has charged anything.
2. ``POST /v1/he/contribute`` at every member (all at once), with a fresh random release id: each
   runs its own pipeline (charge + audit) and returns its ciphertexts signed with its
   Ed25519 key.
3. The client multiplies the ciphertexts slot by slot (it sees only ciphertexts).
4. ``POST /v1/he/decrypt`` at ``threshold`` members at once (one that cannot be reached
   is replaced by another while enough remain), with every signed contribution and
   the aggregate: each checks the signatures, its own contribution, one per member, the
   product, and that it has not decrypted this release before; then sends its partial
   decryptions with proofs. The client checks the proofs and combines
   (:func:`pets.he.threshold.combine_many`), then unpacks.
5. ``POST /v1/he/finish`` at one member: post-processing (means, suppression, intervals
   for the sum of the members' noises), as the in-process federation does.

The client never holds a key share. What it sees: ciphertexts, partial decryptions of
the aggregate only, and the (noisy with ``dp``) totals — what the analyst is released.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping

from . import wire
from .cost import Cost
from .errors import BudgetExceeded, DataError, PolicyError, QueryError, ServerError
from .plan import Plan
from .protections import HE
from .query import Query
from .release import Release

__all__ = ["RemoteFederation", "RemoteFederatedSession"]


class RemoteFederation:
    """Holders' servers (name → URL) that joined one federation (``pets federation
    join``). ``api_keys`` maps each name to the key that member issued to the analyst
    (or one ``api_key`` for all); ``threshold`` how many members to ask for partial
    decryptions (default and minimum: the key's threshold); ``federation`` the id when
    the servers share more than one."""

    def __init__(self, members: Mapping[str, str], *, api_keys: Mapping[str, str] | None = None,
                 api_key: str | None = None, threshold: int | None = None,
                 federation: str | None = None, timeout: float = 120.0,
                 transport: Any = None) -> None:
        import httpx

        from .he.threshold import ThresholdKey  # noqa: F401

        if not isinstance(members, Mapping) or len(members) < 2:
            raise QueryError("a federation needs at least two members: {'north': URL, ...}")
        if (api_keys is None) == (api_key is None):
            raise QueryError("give api_keys={name: key, ...} or one api_key= for every member")
        keys = dict(api_keys) if api_keys is not None else {m: api_key for m in members}
        missing = sorted(set(members) - set(keys))
        if missing:
            raise QueryError(f"no API key for member(s) {', '.join(missing)}")
        self.urls = {m: str(u).rstrip("/") for m, u in members.items()}
        kw: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._http = {m: httpx.Client(base_url=u, timeout=timeout,
                                      headers={"Authorization": f"Bearer {keys[m]}"}, **kw)
                      for m, u in self.urls.items()}
        self._identity(federation)
        t = threshold if threshold is not None else self.key.t
        if isinstance(t, bool) or not isinstance(t, int) or not self.key.t <= t <= len(members):
            raise QueryError(f"threshold must be an integer in {self.key.t}..{len(members)} "
                             f"(the federation key needs {self.key.t}), got {threshold!r}")
        self.threshold = t

    def __repr__(self) -> str:
        return (f"RemoteFederation({self.urls}, federation={self.id!r}, "
                f"threshold={self.threshold})")

    def close(self) -> None:
        for c in self._http.values():
            c.close()

    def _call(self, member: str, method: str, path: str, json: Any = None) -> Any:
        import httpx

        try:
            resp = self._http[member].request(method, path, json=json)
        except httpx.HTTPError as e:
            from .errors import ServerError

            raise ServerError(f"cannot reach member {member!r} at {self.urls[member]}: "
                              f"{type(e).__name__}") from None
        return wire.answer_of(resp, f"member {member!r}")

    def _each(self, members: Any, fn: Callable[[str], Any]) -> dict[str, Any]:
        """``fn(member)`` for every member at once (one thread each: the members work in
        parallel); the results in member order. If any call fails, the error of the first
        failing member in that order is raised, after all calls have ended."""
        members = list(members)
        if len(members) <= 1:
            return {m: fn(m) for m in members}
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            futures = {m: pool.submit(fn, m) for m in members}
            wait(list(futures.values()))
        return {m: f.result() for m, f in futures.items()}

    def _identity(self, federation: str | None) -> None:
        from .he.threshold import ThresholdKey

        seen: dict[str, Any] = {}
        for m in self.urls:
            ident = self._call(m, "GET", "/v1/federation/identity")
            feds = [f for f in ident["federations"] if federation in (None, f["id"])]
            if len(feds) != 1:
                raise QueryError(
                    f"member {m!r} belongs to {len(feds)} matching federations; "
                    + ("name one with federation=..." if feds else
                       "it has not joined one (pets federation join)"))
            f = feds[0]
            if f["member"] != m:
                raise QueryError(f"the server given as {m!r} is member {f['member']!r} of "
                                 f"federation {f['id']!r}")
            seen[m] = f
        first = next(iter(seen.values()))
        for m, f in seen.items():
            if (f["id"], f["key"], f["members"]) != (first["id"], first["key"], first["members"]):
                raise QueryError(f"member {m!r} is not in the same federation as the others")
        if set(first["members"]) != set(self.urls):
            raise QueryError(f"federation {first['id']!r} has members "
                             f"{sorted(first['members'])}; give the URL of each")
        for m, info in first["members"].items():
            if info["verify_key"] != self._call(m, "GET", "/v1/federation/identity")["verify_key"]:
                raise QueryError(f"member {m!r} does not present the verify key the dealer "
                                 "recorded for it")
        self.id: str = first["id"]
        self.key = ThresholdKey.from_dict(first["key"])
        self.n = self.key.n

    def session(self, analyst: str | None = None, *, purpose: str) -> "RemoteFederatedSession":
        """A session for ``purpose`` (the analyst is the one each API key belongs to;
        ``analyst`` is accepted for symmetry with the in-process Federation, unused)."""
        if not isinstance(purpose, str) or not purpose:
            raise QueryError("purpose must be a non-empty string")
        return RemoteFederatedSession(self, purpose)


class RemoteFederatedSession:
    """``table()``, ``explain()`` and ``release()`` across a federation's servers."""

    def __init__(self, federation: RemoteFederation, purpose: str) -> None:
        self.federation = federation
        self.purpose = purpose

    def table(self, name: str) -> Query:
        if not isinstance(name, str) or not name:
            raise QueryError(f"a dataset name must be a non-empty string, got {name!r}")
        return Query(name)

    def _body(self, plan: Plan, protection: HE, **extra: Any) -> dict[str, Any]:
        return {"purpose": self.purpose, "federation": self.federation.id,
                "plan": plan.to_dict(), "protection": protection.to_dict(), **extra}

    def _plan(self, query: Query | Plan, protection: Any) -> Plan:
        from .pipeline import plan_of

        plan = plan_of(query)
        if not isinstance(protection, HE):
            raise QueryError("a federated release takes pets.HE(...) (or pets.HE(dp=pets.DP(...)))")
        return plan

    def explain(self, query: Query | Plan, protection: HE) -> dict[str, Any]:
        """Per member: allowed and the cost it would charge, or the rule that refuses."""
        fed = self.federation
        plan = self._plan(query, protection)
        out: dict[str, Any] = {}
        body = self._body(plan, protection, explain=True)
        answers = fed._each(fed.urls, lambda m: fed._call(m, "POST", "/v1/he/prepare", body))
        for m, d in answers.items():
            if d["allowed"]:
                out[m] = {"allowed": True, "cost": wire.cost_from_json(d["cost"]) or Cost()}
            else:
                out[m] = {"allowed": False, "rule": d["rule"], "message": d["message"]}
        return out

    def release(self, query: Query | Plan, protection: HE,
                ci_levels: tuple[float, ...] = (0.95,)) -> Release:
        """Release totals over all members under ``protection`` (see the module doc)."""
        from .he.threshold import PartialDecryption, combine_many
        from .he.packing import Packer
        from .he.paillier import PublicKey
        from .server.federation import VALUE_BITS

        fed = self.federation
        plan = self._plan(query, protection)
        # 1. every member checks; nobody charges unless all agree
        structures = {}
        n_values = 0
        body = self._body(plan, protection)
        answers = fed._each(fed.urls, lambda m: fed._call(m, "POST", "/v1/he/prepare", body))
        for m, d in answers.items():
            if not d["allowed"]:
                msg = f"member {m!r}: {d['message']}"
                if d["error"] == "BudgetExceeded":
                    raise BudgetExceeded(msg)
                raise PolicyError(msg, rule=d["rule"], column=d.get("column"))
            structures[m] = d["structure"]
            n_values = int(d["values"])
        if len(set(structures.values())) != 1:
            odd = [m for m, s in structures.items() if s != next(iter(structures.values()))]
            raise QueryError(
                f"member(s) {', '.join(odd)} compute this query differently from the others "
                "(keys, bounds or column types differ): give keys=[...] and bounds=(...) in "
                "the query, or align the holders' policies")
        structure = next(iter(structures.values()))
        # 2. contributions, signed
        rid = secrets.token_urlsafe(24)
        contributions: dict[str, dict[str, Any]] = {}
        audit_ids: dict[str, int] = {}
        spent = Cost()
        body = self._body(plan, protection, release=rid, structure=structure)
        answers = fed._each(fed.urls, lambda m: fed._call(m, "POST", "/v1/he/contribute", body))
        for m, d in answers.items():
            contributions[m] = {k: d[k] for k in ("member", "plan", "protection",
                                                  "ciphertexts", "signature")}
            audit_ids[m] = int(d["audit_id"])
            spent = wire.cost_from_json(d["spent"]) or Cost()
        # 3. aggregate
        n2 = fed.n * fed.n
        lengths = {len(c["ciphertexts"]) for c in contributions.values()}
        if len(lengths) != 1:
            raise DataError("members sent ciphertext vectors of different lengths")
        total = [1] * lengths.pop()
        for c in contributions.values():
            total = [a * int(b) % n2 for a, b in zip(total, c["ciphertexts"])]
        # 4. threshold decryption at `threshold` members, proofs checked
        # (all asked at once; a member that cannot be reached is replaced by the next one,
        # while enough members remain; a member's refusal ends the release)
        ask = {"purpose": self.purpose, "federation": fed.id, "release": rid,
               "contributions": list(contributions.values()),
               "aggregate": [str(x) for x in total]}
        spare = list(fed.urls)[fed.threshold:]
        todo = list(fed.urls)[: fed.threshold]
        got: dict[str, Any] = {}
        while todo:
            def decrypt(m: str) -> Any:
                try:
                    return fed._call(m, "POST", "/v1/he/decrypt", ask)
                except ServerError as e:
                    return e  # unreachable or unavailable: try another member
            done = fed._each(todo, decrypt)
            failed = [m for m, d in done.items() if isinstance(d, ServerError)]
            got.update({m: d for m, d in done.items() if m not in failed})
            if failed and len(spare) < len(failed):
                raise done[failed[0]]
            todo, spare = spare[:len(failed)], spare[len(failed):]
        partials = [[PartialDecryption.from_dict(p) for p in d["partials"]] for d in got.values()]
        plain = combine_many(partials, fed.key, ciphertexts=total)
        packer = Packer(PublicKey(fed.n), value_bits=VALUE_BITS,
                        max_summands=fed.key.n_parties)
        values = packer.unpack(plain, n_values, summands=fed.key.n_parties)
        # 5. post-processing at one member that just answered (no rows, nothing charged)
        first = next(iter(got))
        body = self._body(plan, protection, totals=[int(x) for x in values],
                          ci_levels=[float(x) for x in ci_levels])
        d = fed._call(first, "POST", "/v1/he/finish", body)
        d["spent"] = wire.cost_to_json(spent)
        d["audit_id"] = audit_ids[first]
        d["audit_ids"] = audit_ids

        def fetch_ci(level: float) -> Any:
            again = fed._call(first, "POST", "/v1/he/finish", {**body, "ci_levels": [float(level)]})
            return wire.frame_from_json(again["ci"][repr(float(level))])

        return wire.release_from_json(d, plan, protection, fetch_ci)
