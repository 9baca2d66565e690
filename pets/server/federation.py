"""A holder server's part of a federation over HTTP (docs/homomorphic.md, "Over HTTP").

Endpoints (analyst key unless noted):

* ``GET /v1/federation/identity`` (no key: public) — this home's Ed25519 verify key and
  the federations it has joined (ids, members, URLs, verify keys, the public key).
* ``POST /v1/he/prepare`` — the member's checks of a federated release (grant, policy,
  compile, budget or quota, 64-bit width) and the digest of the compiled structure;
  refusals are audited. Spends nothing, touches no rows. ``explain=true``: as
  ``/v1/explain`` (nothing audited).
* ``POST /v1/he/contribute`` — the member's own pipeline: exact partials (+ its own
  noise with ``dp``) → pack → encrypt under the federation key → charge + audit → the
  ciphertexts, signed with the home's Ed25519 key over (federation, release id, member,
  plan digest, protection, ciphertexts). One contribution per release id.
* ``POST /v1/he/decrypt`` — partial decryptions (with proofs) of an aggregate, only if
  it is the slot-wise product of exactly one validly signed contribution per member,
  this member's own among them (as it remembers it), requested by the analyst it
  contributed for, and this member has not decrypted for this release id before.
  Audited (kind ``he_decrypt``), refusals too.
* ``POST /v1/he/finish`` — post-processing of decrypted totals (means, suppression,
  intervals) from the compiled plan; touches no rows, spends nothing.

No endpoint installs, reads or returns a key share (``pets federation join``).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

from .. import fedstore, wire
from ..errors import BudgetExceeded, PolicyError, QueryError
from . import models as M

#: bits per packed value (as pets.federation.VALUE_BITS)
VALUE_BITS = 64


def structure_digest(compiled: Any) -> str:
    from ..federation import _structure

    return hashlib.sha256(repr(_structure(compiled)).encode("utf-8")).hexdigest()


def install(app: Any, holder: Any, caller: Callable[..., Any], run: Callable[..., Any]) -> None:
    from fastapi import Depends
    from fastapi.responses import JSONResponse

    store = holder._store

    def config(fid: str) -> fedstore.FederationConfig:
        return fedstore.load(holder.home, fid)

    def protection(body: Any, cfg: fedstore.FederationConfig) -> Any:
        from ..protections import HE, protection_from_dict

        prot = protection_from_dict(body.protection.model_dump())
        if not isinstance(prot, HE):
            raise QueryError("a federated release takes pets.HE(...)")
        bits = cfg.key.n.bit_length()
        if prot.key_bits != bits:
            raise QueryError(f"federation {cfg.id!r} has a {bits}-bit key: ask with "
                             f"pets.HE(key_bits={bits}, ...)")
        return prot

    def plan_of(body: Any) -> Any:
        from ..plan import Plan

        return Plan.from_dict(body.plan)

    def check_width(compiled: Any, n: int) -> None:
        from ..mechanisms.he import check_total_width

        check_total_width(compiled, n)

    def do_prepare(c: Any, body: M.HEPrepareRequest) -> dict[str, Any]:
        from .. import pipeline

        cfg = config(body.federation)
        prot = protection(body, cfg)
        plan = plan_of(body)
        s = holder.session(c.analyst, purpose=body.purpose)
        out: dict[str, Any] = {"member": cfg.member, "federation": cfg.id}
        try:
            p = pipeline.prepare(s, plan, prot, federated=True,
                                 record_refusals=not body.explain)
        except (PolicyError, BudgetExceeded) as e:
            eps = prot.dp.epsilon if prot.dp is not None else None
            rule = getattr(e, "rule", None) or "budget"
            return {**out, "allowed": False, "rule": rule, "message": str(e),
                    "error": type(e).__name__, "column": getattr(e, "column", None),
                    "cost": wire.cost_to_json(
                        __import__("pets").Cost(eps, 0.0) if eps is not None else None),
                    "structure": None, "values": None}
        comp = p.compiled.compiled
        check_width(comp, len(cfg.members))
        return {**out, "allowed": True, "rule": None, "message": None, "error": None,
                "column": None, "cost": wire.cost_to_json(p.charged),
                "structure": structure_digest(comp),
                "values": len(p.compiled.order) * comp.cells}

    def release_file(cfg: fedstore.FederationConfig, rid: str, suffix: str = ".json") -> str:
        if not fedstore.RELEASE_PATTERN.match(rid):
            raise QueryError("the release id must be 16-128 letters, digits, '_' or '-' "
                             "(the client draws it at random)")
        folder = cfg.folder / "releases"
        folder.mkdir(exist_ok=True)
        return str(folder / (rid + suffix))

    def do_contribute(c: Any, body: M.HEContributeRequest) -> dict[str, Any]:
        from .. import pipeline
        from ..he.packing import Packer
        from ..he.paillier import PublicKey

        cfg = config(body.federation)
        prot = protection(body, cfg)
        plan = plan_of(body)
        path = release_file(cfg, body.release)
        s = holder.session(c.analyst, purpose=body.purpose)
        p = pipeline.prepare(s, plan, prot, federated=True)
        comp = p.compiled.compiled
        if structure_digest(comp) != body.structure:
            from ..mechanisms.he import differs_error

            raise differs_error(f"member {cfg.member!r}")
        check_width(comp, len(cfg.members))
        try:  # one contribution per release id, reserved before anything runs
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise QueryError(f"release id {body.release!r} was already used at member "
                             f"{cfg.member!r}: draw a fresh one") from None
        public = PublicKey(cfg.key.n)
        packer = Packer(public, value_bits=VALUE_BITS, max_summands=len(cfg.members))

        def seal(values: Any) -> list[int]:
            return [int(x) for x in public.raw_encrypt_many(packer.pack(values))]

        p.compiled.seal = seal
        p.compiled.extra = {"federation": cfg.id, "release": body.release}
        note: dict[str, Any] = {"analyst": c.analyst, "purpose": body.purpose,
                                "dataset": plan.dataset}
        with os.fdopen(fd, "w") as f:
            try:
                cts, audit_id, spent = pipeline.execute(p)
            except BaseException:
                json.dump({**note, "failed": True}, f)
                raise
            texts = [str(x) for x in cts]
            pdig = fedstore.plan_digest(plan)
            digest = fedstore.contribution_digest(cfg.id, body.release, cfg.member, pdig,
                                                  prot.to_dict(), texts)
            json.dump({**note, "digest": digest.hex(), "audit_id": audit_id}, f)
            f.flush()
            os.fsync(f.fileno())
        return {"federation": cfg.id, "release": body.release, "member": cfg.member,
                "plan": pdig, "protection": prot.to_dict(), "ciphertexts": texts,
                "signature": fedstore.sign(holder, digest), "audit_id": int(audit_id),
                "spent": wire.cost_to_json(spent)}

    def do_decrypt(c: Any, body: M.HEDecryptRequest) -> dict[str, Any]:
        cfg = config(body.federation)
        path = release_file(cfg, body.release)
        base = {"analyst": c.analyst, "purpose": body.purpose, "dataset": None,
                "kind": "he_decrypt", "federation": cfg.id, "release": body.release}

        def refuse(rule: str, message: str) -> PolicyError:
            store.record({**base, "status": "refused", "rule": rule, "column": None})
            return PolicyError(message, rule=rule)

        try:
            with open(path) as f:
                mine = json.load(f)
        except (FileNotFoundError, ValueError):
            raise refuse("own_contribution", f"member {cfg.member!r} has no completed "
                         f"contribution to release {body.release!r}; it decrypts only "
                         "aggregates that include its own contribution") from None
        base["dataset"] = mine.get("dataset")
        if mine.get("analyst") != c.analyst or mine.get("purpose") != body.purpose:
            raise refuse("requester", f"release {body.release!r} at member {cfg.member!r} "
                         "was contributed for another analyst or purpose")
        if "digest" not in mine:
            raise refuse("own_contribution", f"member {cfg.member!r}'s contribution to "
                         f"release {body.release!r} did not complete")
        names = [x.member for x in body.contributions]
        if sorted(names) != sorted(cfg.members):
            raise refuse("members", "the aggregate must combine exactly one contribution per "
                         f"member ({', '.join(sorted(cfg.members))}); got "
                         f"{', '.join(sorted(names)) or 'none'}")
        first = body.contributions[0]
        n2 = cfg.key.n * cfg.key.n
        for x in body.contributions:
            if x.plan != first.plan or x.protection != first.protection:
                raise refuse("members", "the contributions are of different queries")
            digest = fedstore.contribution_digest(cfg.id, body.release, x.member, x.plan,
                                                  x.protection, x.ciphertexts)
            if not fedstore.verify(cfg.members[x.member]["verify_key"], digest, x.signature):
                raise refuse("signature", f"the contribution of member {x.member!r} does not "
                             "carry that member's valid signature")
            if x.member == cfg.member and digest.hex() != mine["digest"]:
                raise refuse("own_contribution", f"the contribution given for member "
                             f"{cfg.member!r} is not the one it made for this release")
            if len(x.ciphertexts) != len(first.ciphertexts):
                raise refuse("members", "the contributions have different lengths")
        agg = [_int(t, "aggregate") for t in body.aggregate]
        want = [1] * len(first.ciphertexts)
        for x in body.contributions:
            want = [a * _int(b, "ciphertext") % n2 for a, b in zip(want, x.ciphertexts)]
        if agg != want:
            raise refuse("aggregate", "the aggregate is not the slot-wise product of the "
                         "members' contributions")
        try:  # at most once per release id
            os.close(os.open(release_file(cfg, body.release, ".decrypted"),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise refuse("already_decrypted", f"member {cfg.member!r} already decrypted "
                         f"release {body.release!r}; each release is decrypted once") from None
        partials = cfg.share().partial_decrypt_many(agg)
        audit_id = store.record({**base, "status": "released", "ciphertexts": len(agg)})
        return {"federation": cfg.id, "release": body.release, "member": cfg.member,
                "audit_id": int(audit_id), "partials": [p.to_dict() for p in partials]}

    def do_finish(c: Any, body: M.HEFinishRequest) -> dict[str, Any]:
        import numpy as np

        from ..cost import Cost
        from ..dp.accuracy import check_level
        from ..dp.aggregate import NoisyResult
        from ..governance import check_plan
        from ..mechanisms import Context, mechanism_for
        from ..pipeline import _no_grant
        from ..release import Release

        levels = [check_level(x) for x in body.ci_levels]
        cfg = config(body.federation)
        prot = protection(body, cfg)
        plan = plan_of(body)
        s = holder.session(c.analyst, purpose=body.purpose)
        budget = store.budget_state(c.analyst, plan.dataset, body.purpose)
        if budget is None:
            raise _no_grant(s, plan.dataset)
        mech = mechanism_for(prot, federated=True)
        ds = holder._dataset(plan.dataset)
        check_plan(ds.policy, plan, ds.schema, mech.form(prot), mech.epsilon(prot))
        compiled = mech.compile(Context(c.analyst, body.purpose, ds, plan, prot, budget))
        ref = compiled.compiled
        order = compiled.order
        if len(body.totals) != len(order) * ref.cells:
            raise QueryError(f"this query has {len(order) * ref.cells} totals, got "
                             f"{len(body.totals)}")
        totals = np.asarray(body.totals, dtype=np.int64).reshape(len(order), ref.cells)
        ref.noise_draws = len(cfg.members) if prot.dp is not None else 1
        result = NoisyResult(ref, {k: totals[i] for i, k in enumerate(order)})
        r = Release(df=result.values(), spent=Cost(), audit_id=0, plan=plan, protection=prot,
                    scale=ref.output_scales() if prot.dp else {},
                    suppressed=int(result.suppressed.sum()),
                    _ci=result.ci if prot.dp else None)
        return wire.release_to_json(r, levels)

    @app.get("/v1/federation/identity", response_model=M.IdentityBody, tags=["federation"])
    async def identity() -> Any:
        """This home's Ed25519 verify key (it signs contributions and the audit log) and
        the federations it belongs to. Public: no key needed, no share ever shown."""
        import asyncio

        def work() -> dict[str, Any]:
            return {"verify_key": fedstore.verify_key_of(holder),
                    "federations": [f.public() for f in fedstore.all_federations(holder.home)]}

        return JSONResponse(await asyncio.get_running_loop().run_in_executor(None, work))

    @app.post("/v1/he/prepare", response_model=M.HEPrepareBody, tags=["federation"])
    async def he_prepare(body: M.HEPrepareRequest, c: Any = Depends(caller)) -> Any:
        """This member's checks of a federated release and its compiled structure's
        digest; spends nothing, touches no rows (refusals are audited unless explain)."""
        return JSONResponse(await run(c, lambda: do_prepare(c, body)))

    @app.post("/v1/he/contribute", response_model=M.HEContributionBody, tags=["federation"])
    async def he_contribute(body: M.HEContributeRequest, c: Any = Depends(caller)) -> Any:
        """This member's encrypted (and, with dp, noisy) partial totals through its own
        pipeline — charged and audited — signed by this member."""
        return JSONResponse(await run(c, lambda: do_contribute(c, body)))

    @app.post("/v1/he/decrypt", response_model=M.HEDecryptBody, tags=["federation"])
    async def he_decrypt(body: M.HEDecryptRequest, c: Any = Depends(caller)) -> Any:
        """Partial decryptions (with proofs) of the aggregate of one signed contribution
        per member, once per release id; audited."""
        return JSONResponse(await run(c, lambda: do_decrypt(c, body)))

    @app.post("/v1/he/finish", response_model=M.ReleaseBody, tags=["federation"])
    async def he_finish(body: M.HEFinishRequest, c: Any = Depends(caller)) -> Any:
        """Post-processing of decrypted totals (means, suppression, intervals)."""
        return JSONResponse(await run(c, lambda: do_finish(c, body)))


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise QueryError(f"a {what} must be a decimal integer")
    return int(text)
