"""Federated releases: totals across holders under Paillier, decrypted by threshold.

>>> fed = pets.Federation({"north": holder_a, "south": holder_b, "east": holder_c})   # doctest: +SKIP
>>> s = fed.session("alice", purpose="regional-statistics")                           # doctest: +SKIP
>>> r = s.release(s.table("visits").group_by("region").agg(n=pets.count()),
...               pets.HE(dp=pets.DP(epsilon=1.0)))                                  # doctest: +SKIP

The protocol, for one release:

1. **Setup, once per federation and key size.** A trusted dealer generates a Paillier
   key and splits its decryption key t-of-n among the holders
   (:func:`pets.he.threshold.deal`, t ≥ 2); each holder is meant to keep only its own
   share.
2. **Each holder, inside its own domain**, through its own release pipeline
   (:mod:`pets.pipeline`, the same as for central DP): checks its grant and its own
   policy — form ``he`` with ``HE(dp=DP(ε))`` (the ``max_epsilon`` cap and the budget
   apply), form ``he_exact`` without ``dp`` (which a policy must allow explicitly; counted
   against ``max_exact_totals``, small groups withheld); identifiers are never grouped
   by; computes its exact partial aggregates in its own engine; adds its own discrete
   Laplace noise of the full scale (with ``dp``); packs the integers into few plaintexts;
   encrypts them under the federation key; charges its own ledger and appends its own
   audit record — and only then hands over the ciphertexts.
3. **Aggregation**: the ciphertexts of all holders are multiplied slot by slot (a
   homomorphic sum); the aggregator sees only ciphertexts.
4. **Threshold decryption**: t holders each partially decrypt the agreed aggregate
   ciphertexts (with a proof of correct decryption); the partials combine into the
   packed totals, which are unpacked. With DP, the decrypted totals are noisy: once
   holders run in separate domains, no party outside a holder — analyst, aggregator or
   decryptors — sees an exact partial or an exact total (in this in-process class the
   process itself computes every exact partial; see below).
5. Post-processing as for central DP (means, intervals, minimum group size).

Guarantee with DP: each holder's own noise alone makes the total ε-DP for that holder's
people, so it holds against any coalition of the other holders and the decryptors; the
total carries the sum of the holders' noises (its interval is reported by ``ci()``).
Assumes each person's rows are at one holder.

**What this in-process class simulates.** :class:`Federation` runs every step in one
Python process: it deals the key itself and keeps every holder's key share and every
holder's :class:`pets.Holder` object in that process's memory, so whoever runs the
process could decrypt any partial. It exercises the protocol and its accounting — each
holder's policy, ledger and audit log are its own — but it gives the "no single party
sees a partial" guarantee only once holders run in separate domains (server mode), each
keeping its own share: ``pets.Federation({name: URL})`` (:mod:`pets.remote_federation`);
use this class where one operator is trusted with everything.

Totals add up across holders: counts, sums, means, variances, histograms (bin by bin)
and distinct persons (``count_distinct()``, under the assumption above). Distinct values
of a column (``count_distinct(col)``) and quantiles do not — a value can be at several
holders, a median of medians is not the median — and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .cost import Cost
from .dp.aggregate import CompiledDP, NoisyResult
from .errors import QueryError
from .mechanisms.he import check_total_width, differs_error
from .plan import Plan
from .protections import HE
from .query import Query
from .release import Release

if TYPE_CHECKING:
    from .holder import Holder

__all__ = ["Federation", "FederatedSession"]

#: bits per packed value: partial aggregates are int64; slots get headroom for the sum
VALUE_BITS = 64


@dataclass
class _Keys:
    key: Any  # pets.he.threshold.ThresholdKey
    shares: dict[str, Any]  # holder name → its KeyShare (each holder's own)


class Federation:
    """Holders that release joint totals under :class:`pets.HE`.

    Given URLs of holders' servers instead (``{"north": "http://...", ...}`` with
    ``api_keys=`` or ``api_key=``), returns a :class:`pets.RemoteFederation`: the same
    protocol over HTTP, each server keeping only its own key share.

    ``holders`` maps a name to a :class:`pets.Holder` (at least two); ``threshold`` is
    how many holders must cooperate to decrypt (default: a majority, at least 2; never
    1, which would let any single holder decrypt the others' partials). In-process: see
    the module docstring for what that does and does not protect.
    """

    def __new__(cls, holders: Mapping[str, Any], **kw: Any) -> Any:
        if isinstance(holders, Mapping) and holders and all(
                isinstance(v, str) for v in holders.values()):
            from .remote_federation import RemoteFederation

            return RemoteFederation(holders, **kw)  # URLs of holders' servers
        if isinstance(holders, Mapping) and any(isinstance(v, str) for v in holders.values()):
            raise QueryError("a federation is either local pets.Holder objects or the URLs "
                             "of holders' servers, not both")
        return super().__new__(cls)

    def __init__(self, holders: Mapping[str, "Holder"], *, threshold: int | None = None) -> None:
        from .holder import Holder

        if not isinstance(holders, Mapping) or not holders:
            raise QueryError("Federation takes a dict of holders: {'north': holder_a, ...}")
        for name, h in holders.items():
            if not isinstance(h, Holder):
                raise QueryError(f"federation member {name!r} is not a pets.Holder")
        n = len(holders)
        if n < 2:
            raise QueryError(
                f"a federation needs at least two holders, got {n}: a total over one holder is "
                "that holder's own exact partial; ask the holder directly with pets.DP(...)"
            )
        if len({id(h) for h in holders.values()}) != n:
            raise QueryError("the same pets.Holder is listed twice; each member is a distinct holder")
        self.holders = dict(holders)
        t = threshold if threshold is not None else max(2, n // 2 + 1)
        if isinstance(t, bool) or not isinstance(t, int) or not 2 <= t <= n:
            raise QueryError(
                f"threshold must be an integer in 2..{n} (how many holders decrypt together; "
                f"1 would let one holder decrypt alone), got {threshold!r}"
            )
        self.threshold = t
        self._keys: dict[int, _Keys] = {}

    def __repr__(self) -> str:
        return f"Federation({list(self.holders)}, threshold={self.threshold})"

    def _keyset(self, bits: int) -> _Keys:
        """Deal the threshold key for ``bits`` once (in-process: this object keeps the shares)."""
        ks = self._keys.get(bits)
        if ks is None:
            from .he.threshold import deal

            key, shares = deal(len(self.holders), self.threshold, bits=bits)
            ks = _Keys(key, dict(zip(self.holders, shares)))
            del shares
            self._keys[bits] = ks
        return ks

    def session(self, analyst: str, *, purpose: str) -> "FederatedSession":
        """A session over every holder, for ``analyst`` and one ``purpose`` (each holder
        needs its own grant)."""
        return FederatedSession(self, analyst, purpose)


class FederatedSession:
    """``table()``, ``explain()`` and ``release()`` across a federation's holders."""

    def __init__(self, federation: Federation, analyst: str, purpose: str) -> None:
        self.federation = federation
        self.analyst = analyst
        self.purpose = purpose
        self._sessions = {
            name: h.session(analyst, purpose=purpose) for name, h in federation.holders.items()
        }

    def table(self, name: str) -> Query:
        for s in self._sessions.values():
            s.table(name)  # every holder must have it
        return Query(name)

    def _prepare(self, plan: Plan, prot: HE) -> dict[str, Any]:
        """Every holder's pipeline checks (grant, policy, compile, budget or quota) before
        anyone computes or charges anything; the structures must agree."""
        from . import pipeline

        prepared: dict[str, Any] = {}
        reference: CompiledDP | None = None
        for name, s in self._sessions.items():
            p = pipeline.prepare(s, plan, prot, federated=True)
            c = p.compiled.compiled
            if reference is None:
                reference = c
            elif _structure(c) != _structure(reference):
                raise differs_error(f"holder {name!r}")
            prepared[name] = p
        assert reference is not None
        check_total_width(reference, len(self._sessions))
        return prepared

    def explain(self, query: Query | Plan, protection: HE) -> dict[str, Any]:
        """Per holder: allowed or the rule that refuses; and the cost each would charge."""
        from . import pipeline

        plan = pipeline.plan_of(query)
        if not isinstance(protection, HE):
            raise QueryError("a federated release takes pets.HE(...)")
        out: dict[str, Any] = {}
        for name, s in self._sessions.items():
            e = pipeline.explain(s, plan, protection, federated=True)
            if e.allowed:
                out[name] = {"allowed": True, "cost": e.cost}
            else:
                out[name] = {"allowed": False, "rule": e.rule, "message": e.message}
        return out

    def release(self, query: Query | Plan, protection: HE, *, progress: bool = False) -> Release:
        """Release totals over all holders under ``protection`` (see the module doc).
        ``progress=True`` shows a spinner with the elapsed time on a terminal (the first
        release of a key size deals the key: seconds)."""
        if progress is not False:
            from .progress import spinner

            with spinner(f"encrypted totals over {len(self._sessions)} holders", progress):
                return self.release(query, protection)
        from . import pipeline
        from .he.packing import Packer
        from .he.paillier import PublicKey
        from .he.threshold import combine_many

        plan = pipeline.plan_of(query)
        if not isinstance(protection, HE):
            raise QueryError("a federated release takes pets.HE(...) (or pets.HE(dp=pets.DP(...)))")
        prepared = self._prepare(plan, protection)
        first = next(iter(prepared.values()))
        ref: CompiledDP = first.compiled.compiled
        order: list[str] = first.compiled.order
        fed = self.federation
        keys = fed._keyset(protection.key_bits)
        public = PublicKey(keys.key.n)
        n_holders = len(self._sessions)
        packer = Packer(public, value_bits=VALUE_BITS, max_summands=n_holders)
        n_values = len(order) * ref.cells

        def seal(values: np.ndarray) -> list[int]:
            plain = packer.pack(values)
            return [int(c) for c in public.raw_encrypt_many(plain)]

        # 2. every holder, through its own pipeline: exact (+ own noise) → pack →
        #    encrypt → charge + audit → ciphertexts
        contributions: dict[str, list[int]] = {}
        audit_ids: dict[str, int] = {}
        spent = Cost()
        for name, p in prepared.items():
            p.compiled.order = order
            p.compiled.seal = seal
            cts, audit_id, spent = pipeline.execute(p)
            contributions[name] = cts
            audit_ids[name] = audit_id

        # 3. aggregate: slot-wise product of ciphertexts mod n²
        n2 = keys.key.n * keys.key.n
        total = [1] * len(next(iter(contributions.values())))
        for cts in contributions.values():
            if len(cts) != len(total):
                raise QueryError("holders sent ciphertext vectors of different lengths")
            total = [a * b % n2 for a, b in zip(total, cts)]

        # 4. threshold decryption by the first t holders
        deciders = list(keys.shares)[: fed.threshold]
        partials = [keys.shares[name].partial_decrypt_many(total) for name in deciders]
        plain = combine_many(partials, keys.key, ciphertexts=total)
        values = packer.unpack(plain, n_values, summands=n_holders)
        totals = np.asarray(values, dtype=np.int64).reshape(len(order), ref.cells)
        noisy = {k: totals[i] for i, k in enumerate(order)}

        # 5. post-processing, with intervals for the sum of the holders' noises
        ref.noise_draws = n_holders if protection.dp is not None else 1
        result = NoisyResult(ref, noisy)
        return Release(
            df=result.values(),
            spent=spent,
            audit_id=audit_ids[next(iter(audit_ids))],
            plan=plan,
            protection=protection,
            scale=ref.output_scales() if protection.dp else {},
            suppressed=int(result.suppressed.sum()),
            _ci=result.ci if protection.dp else None,
            audit_ids=audit_ids,
        )


def _structure(c: CompiledDP) -> tuple[Any, ...]:
    return (
        c.group_columns,
        c.keys,
        tuple((m.key, m.kind, m.column, m.lower, m.upper, m.factor, m.center, m.expr, m.clamps)
              for m in c.measures),
        c.group_exprs,
        tuple(sorted((k, tuple(v)) for k, v in c.derived.items())),
        tuple(sorted(c.scales.items())),
        c.rows_key,
        c.min_group_size,
    )

