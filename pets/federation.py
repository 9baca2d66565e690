"""Federated releases: totals across holders under Paillier, decrypted by threshold.

>>> fed = pets.Federation({"north": holder_a, "south": holder_b, "east": holder_c})   # doctest: +SKIP
>>> s = fed.session("alice", purpose="regional-statistics")                           # doctest: +SKIP
>>> r = s.release(s.table("visits").group_by("region").agg(n=pets.count()),
...               pets.HE(dp=pets.DP(epsilon=1.0)))                                  # doctest: +SKIP

The protocol, for one release (in-process holders; the same steps run over HTTP once the
server exists):

1. **Setup, once per federation and key size.** A trusted dealer (the
   :class:`Federation` object, at construction of the key) generates a Paillier key and
   splits its decryption key t-of-n among the holders (:func:`pets.he.threshold.deal`);
   each holder keeps its own share. Nobody holds the whole private key afterwards.
2. **Each holder, inside its own domain**: checks the query against its own policy (form
   ``he``) and its own grant; computes its exact partial aggregates in its own engine;
   with ``HE(dp=DP(ε))`` adds its own discrete Laplace noise of the full scale (OpenDP's
   exact sampler); packs the integers into few plaintexts; encrypts them under the
   federation key; charges its own ledger (ε, or nothing without DP) and appends its own
   audit record — and only then hands over the ciphertexts. Its partial never leaves in
   the clear.
3. **Aggregation**: the ciphertexts of all holders are multiplied slot by slot (a
   homomorphic sum); the aggregator sees only ciphertexts.
4. **Threshold decryption**: t holders each partially decrypt the agreed aggregate
   ciphertexts (with a proof of correct decryption); the partials combine into the
   packed totals, which are unpacked. With DP, the totals are noisy: nobody — analyst,
   aggregator or decryptors — sees an exact partial or an exact total.
5. Post-processing as for central DP (means, intervals, minimum group size).

Guarantee with DP: each holder's own noise alone makes the total ε-DP for that holder's
people, so it holds against any coalition of the other holders and the decryptors; the
total carries the sum of the holders' noises (its interval is reported by ``ci()``).
Assumes each person's rows are at one holder.

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
from .dp.aggregate import CompiledDP, NoisyResult, compile_dp
from .errors import PolicyError, QueryError
from .governance import check_plan
from .plan import Plan
from .protections import DP, HE
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

    ``holders`` maps a name to a :class:`pets.Holder`; ``threshold`` is how many holders
    must cooperate to decrypt (default: a majority, at least 2 when there are 2+).
    """

    def __init__(self, holders: Mapping[str, "Holder"], *, threshold: int | None = None) -> None:
        from .holder import Holder

        if not isinstance(holders, Mapping) or not holders:
            raise QueryError("Federation takes a dict of holders: {'north': holder_a, ...}")
        for name, h in holders.items():
            if not isinstance(h, Holder):
                raise QueryError(f"federation member {name!r} is not a pets.Holder")
        self.holders = dict(holders)
        n = len(self.holders)
        t = threshold if threshold is not None else max(min(2, n), n // 2 + 1)
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= n:
            raise QueryError(f"threshold must be an integer in 1..{n}, got {threshold!r}")
        self.threshold = t
        self._keys: dict[int, _Keys] = {}

    def __repr__(self) -> str:
        return f"Federation({list(self.holders)}, threshold={self.threshold})"

    def _keyset(self, bits: int) -> _Keys:
        """Deal the threshold key for ``bits`` once (the dealer keeps nothing)."""
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

    def _reference(self, plan: Plan, prot: HE) -> CompiledDP:
        """The cell and measurement structure every holder must share."""
        compiled: CompiledDP | None = None
        for name, s in self._sessions.items():
            ds = s._holder._dataset(plan.dataset)
            check_plan(ds.policy, plan, ds.schema, "he", prot.dp.epsilon if prot.dp else None)
            _check_summable(plan, ds.policy.privacy_unit)
            c = compile_dp(plan, ds.policy, ds.schema, prot.dp or DP(epsilon=1.0))
            if compiled is None:
                compiled = c
            elif _structure(c) != _structure(compiled):
                raise QueryError(
                    f"holder {name!r} computes this query differently from the others (keys, "
                    "bounds or column types differ): give keys=[...] and bounds=(...) in the "
                    "query, or align the holders' policies"
                )
        assert compiled is not None
        # every holder's grant and budget before anyone charges anything
        cost = compiled.cost if prot.dp is not None else Cost()
        for s in self._sessions.values():
            s._check_budget(plan.dataset, cost)
        return compiled

    def explain(self, query: Query | Plan, protection: HE) -> dict[str, Any]:
        """Per holder: allowed or the rule that refuses; and the cost each would charge."""
        plan = query.plan if isinstance(query, Query) else query
        if not isinstance(protection, HE):
            raise QueryError("a federated release takes pets.HE(...)")
        out: dict[str, Any] = {}
        for name, s in self._sessions.items():
            ds = s._holder._dataset(plan.dataset)
            try:
                check_plan(ds.policy, plan, ds.schema, "he",
                           protection.dp.epsilon if protection.dp else None)
                _check_summable(plan, ds.policy.privacy_unit)
                compile_dp(plan, ds.policy, ds.schema, protection.dp or DP(epsilon=1.0))
                out[name] = {"allowed": True, "cost": Cost(protection.dp.epsilon if protection.dp else 0.0)}
            except PolicyError as e:
                out[name] = {"allowed": False, "rule": e.rule, "message": str(e)}
        return out

    def release(self, query: Query | Plan, protection: HE) -> Release:
        """Release totals over all holders under ``protection`` (see the module doc)."""
        from .he.packing import Packer
        from .he.paillier import PublicKey
        from .he.threshold import combine_many

        plan = query.plan if isinstance(query, Query) else query
        if not isinstance(protection, HE):
            raise QueryError("a federated release takes pets.HE(...) (or pets.HE(dp=pets.DP(...)))")
        ref = self._reference(plan, protection)
        fed = self.federation
        keys = fed._keyset(protection.key_bits)
        public = PublicKey(keys.key.n)
        n_holders = len(self._sessions)
        packer = Packer(public, value_bits=VALUE_BITS, max_summands=n_holders)
        order = sorted(ref.derived)
        n_values = len(order) * ref.cells

        # 2. every holder: exact (+ own noise) → pack → encrypt → charge → ciphertexts
        contributions: dict[str, list[int]] = {}
        audit_ids: dict[str, int] = {}
        for name, s in self._sessions.items():
            def seal(values: np.ndarray) -> list[int]:
                plain = packer.pack(values)
                return [int(c) for c in public.raw_encrypt_many(plain)]

            cts, audit_id = s._he_contribute(plan, protection, ref, order, seal)
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
            spent=Cost(protection.dp.epsilon if protection.dp else 0.0),
            audit_id=audit_ids[next(iter(audit_ids))],
            plan=plan,
            protection=protection,
            scale=ref.output_scales() if protection.dp else {},
            suppressed=int(result.suppressed.sum()),
            _ci=result.ci if protection.dp else None,
            audit_ids=audit_ids,
        )


def _check_summable(plan: Plan, unit: str | None) -> None:
    """Refuse aggregations whose totals are not the sum of the holders' parts."""
    for a in plan.aggs:
        if a.kind == "quantile":
            raise QueryError(
                f"quantile {a.name!r} cannot be released across holders: a quantile of the "
                "union is not computed from each holder's; ask each holder separately"
            )
        if a.kind == "count_distinct" and a.column is not None and a.column != unit:
            raise QueryError(
                f"count_distinct({a.column!r}) cannot be released across holders: one value "
                "can be at several holders, so the distinct counts do not add up; ask each "
                "holder separately (pets.count_distinct() counts persons, which do add up)"
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

