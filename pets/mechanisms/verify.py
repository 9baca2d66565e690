"""Verification answers (核验, ``pets.Verify``): match / no match, nothing else.

Guarantee: for each subject the verifier names, the release is one answer —
``match`` if every record with that subject key satisfies the claim, ``no_match``
otherwise, and for a subject with no record ``no_match`` (policy ``membership =
"hide"``) or ``no_subject`` (``"reveal"``). No value of the record leaves. What a set of
answers can reveal is bounded by the policy: at most ``max_per_subject`` claims per
subject per period, from all verifiers together, each at most one bit, and claims on a
column with a ``granularity`` can only tell apart the classes its grid defines (the
bound in bits is :meth:`pets.verify.policy.VerifyPolicy.bits_per_subject`, see
docs/verification.md). No DP noise: answers are exact, so the protection is the quota
and the claim rules, not a privacy budget. Every answer is audited; the subjects are
counted in the ledger in the same transaction (:mod:`pets.verify.ledger`).

The engine is asked only for the key columns of the rows with the subject's key, and of
those rows that also satisfy the claim: the claimed columns' values never leave it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from .. import plan as P
from ..cost import Cost
from ..errors import PetsError, PolicyError, QueryError
from ..governance import _check_types
from ..protections import Protection
from ..release import Explanation
from .base import Charge, Compiled, Context, Mechanism

__all__ = ["HiddenAnswer", "HiddenClaim", "HiddenMechanism", "PSI", "PSIAnswer", "PSIMechanism", "Verify", "VerifyMechanism", "verify_plan"]

#: batches up to this size filter the engine's scan on their keys; larger ones read the
#: key column once and match in memory
_FILTER_LIMIT = 200
_SCALARS = (str, int, float, bool)


def _scalar(v: Any, where: str) -> Any:
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, _SCALARS):
        v = v.item()
    if v is None or (isinstance(v, float) and v != v):
        raise QueryError(f"{where} is missing (None/NaN); every subject needs a key value")
    if not isinstance(v, _SCALARS):
        raise QueryError(f"{where} must be a string, number or boolean, not {type(v).__name__}")
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        raise QueryError(f"{where} must be finite")
    return v


@dataclass(frozen=True, eq=False)
class Verify(Protection):
    """Verification of a claim about named subjects (policy form ``verify``).

    ``subject={"person_id": "P-00042"}`` names one subject; ``subjects=`` a DataFrame
    whose columns are subject keys names many (one answer per row). Use
    :meth:`pets.Session.verify` and :meth:`pets.Session.verify_batch` rather than this
    directly. See :mod:`pets.mechanisms.verify` for the guarantee.
    """

    subject: Mapping[str, Any] | None = None
    subjects: pd.DataFrame | None = None
    keys: tuple[str, ...] = field(init=False, default=())
    rows: tuple[tuple[Any, ...], ...] = field(init=False, default=(), repr=False)
    form = "verify"

    def __post_init__(self) -> None:
        if (self.subject is None) == (self.subjects is None):
            raise QueryError("name the subject: subject={'person_id': ...} for one, or "
                             "subjects=<DataFrame of key columns> for a batch")
        if self.subject is not None:
            if not isinstance(self.subject, Mapping) or not self.subject:
                raise QueryError("subject must be a dict of key column → value, e.g. "
                                 "{'person_id': 'P-00042'}")
            keys = tuple(self.subject)
            for k in keys:
                if not isinstance(k, str) or not k:
                    raise QueryError(f"subject key columns are names (strings), not {k!r}")
            rows = (tuple(_scalar(self.subject[k], f"subject[{k!r}]") for k in keys),)
        else:
            df = self.subjects
            if not isinstance(df, pd.DataFrame):
                raise QueryError("subjects must be a pandas DataFrame whose columns are "
                                 f"subject keys, not {type(df).__name__}")
            if len(df.columns) == 0 or len(df) == 0:
                raise QueryError("subjects has no columns or no rows; give one row per "
                                 "subject and one column per subject key")
            keys = tuple(df.columns)
            if not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
                raise QueryError("subjects' columns must be distinct column names (strings)")
            cols = []
            for k in keys:
                s = df[k]
                if s.isna().any():
                    i = int(s.isna().to_numpy().nonzero()[0][0])
                    raise QueryError(f"subjects[{k!r}] is missing in row {i}; every subject "
                                     "needs a key value")
                vals = s.tolist()
                bad = next((v for v in vals if not isinstance(v, _SCALARS)), None)
                if bad is not None:
                    raise QueryError(f"subjects[{k!r}] must hold strings, numbers or "
                                     f"booleans, not {type(bad).__name__}")
                cols.append(vals)
            rows = tuple(zip(*cols))
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "rows", rows)

    @property
    def batch(self) -> bool:
        return self.subjects is not None

    def to_dict(self) -> dict[str, Any]:
        # the subjects are audited as keyed digests, never as given
        return {"form": "verify", "keys": list(self.keys), "subjects": len(self.rows),
                "batch": self.batch}


def verify_plan(dataset: str, claim: Any, keys: tuple[str, ...]) -> P.Plan:
    """The plan of a verification: the claim as its filter, the key columns selected."""
    from ..query import Expression

    if isinstance(claim, Expression):
        claim = claim.node
    if not P.is_expr(claim):
        raise QueryError("claim must be an expression such as col('age') >= 30, "
                         f"not {type(claim).__name__}")
    return P.Plan(dataset, filters=(claim,), select=tuple(keys))


class CompiledVerify(Compiled):
    def __init__(self, ctx: Context, vp: Any, terms: list[Any], types: dict[str, str]) -> None:
        self.ctx, self.vp, self.terms, self.types = ctx, vp, terms, types
        self.digests: list[str] = []
        self.prot: Verify = ctx.protection  # type: ignore[assignment]
        self.charge = Charge()
        self.left: int | None = None

    # -- before the data ---------------------------------------------------------------
    def check_ledger(self, store: Any) -> None:
        from ..verify import ledger

        self.digests = ledger.subject_digests(store.home, self.ctx.plan.dataset,
                                              self.prot.keys, self.prot.rows)
        self.left = ledger.used(store, self.vp, self.ctx.analyst, self.ctx.plan.dataset,
                                self.digests)

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        bits = self.vp.bits_per_subject(self.ctx.policy)
        rows = []
        for col, op, vals in self.terms:
            rule = self.vp.claims[col]
            b = bits["columns"].get(col)
            rows.append({"column": col, "operator": op, "values": len(vals),
                         "granularity": rule.granularity,
                         "column_bits": None if b is None else round(b, 3)})
        return Explanation(
            allowed=True, cost=Cost(), remaining=remaining,
            message=(f"{len(self.prot.rows)} answer(s); {self.left} answer(s) left to this "
                     f"analyst this {self.vp.period}; at most {bits['bound']:.3g} bits per "
                     f"subject per {self.vp.period} (membership: {self.vp.membership})"),
            details=pd.DataFrame(rows),
        )

    def record(self) -> dict[str, Any]:
        from ..verify.ledger import batch_digest

        r: dict[str, Any] = {"kind": "verify", "subjects": len(self.digests)}
        if len(self.digests) == 1:
            r["subject"] = self.digests[0]
        else:
            r["subjects_digest"] = batch_digest(self.digests)
        return r

    # -- inside the holder's domain ----------------------------------------------------
    def run(self, engine: Any, source: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        keys = self.prot.keys
        flt: tuple[P.Expr, ...] = ()
        if len(self.prot.rows) <= _FILTER_LIMIT:
            flt = tuple(
                P.IsIn(P.Col(k), tuple(dict.fromkeys(r[i] for r in self.prot.rows)))
                for i, k in enumerate(keys)
            )
        present = engine.fetch(source, keys, flt)
        matched = engine.fetch(source, keys, flt + self.ctx.plan.filters)
        return present, matched

    def _norm(self, df: pd.DataFrame) -> pd.DataFrame:
        df = df.dropna()
        out = {}
        for k in self.prot.keys:
            t = self.types[k]
            s = df[k]
            out[k] = (s.astype("float64") if t in ("int", "float")
                      else s.astype(bool) if t == "bool" else s.astype(str))
        return pd.DataFrame(out, index=df.index)

    def _py_key(self, row: tuple[Any, ...]) -> tuple[Any, ...] | None:
        out = []
        for k, v in zip(self.prot.keys, row):
            if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
                return None
            t = self.types[k]
            out.append(float(v) if t in ("int", "float") else bool(v) if t == "bool" else str(v))
        return tuple(out)

    def _finish_small(self, present: pd.DataFrame, matched: pd.DataFrame) -> list[str]:
        """Few subjects (and so few rows): count in Python, without pandas' overhead."""
        from collections import Counter

        def counts(df: pd.DataFrame) -> Counter[tuple[Any, ...]]:
            rows = zip(*(df[k].tolist() for k in self.prot.keys))
            return Counter(k for k in map(self._py_key, rows) if k is not None)

        n_p, n_m = counts(present), counts(matched)
        absent = "no_subject" if self.vp.membership == "reveal" else "no_match"
        out = []
        for r in self.prot.rows:
            k = self._py_key(r)
            p, m = n_p.get(k, 0), n_m.get(k, 0)  # type: ignore[arg-type]
            out.append("match" if p > 0 and m == p else (absent if p == 0 else "no_match"))
        return out

    def finish(self, exact: tuple[pd.DataFrame, pd.DataFrame]) -> list[str]:
        present, matched = exact
        if len(self.prot.rows) <= _FILTER_LIMIT:
            return self._finish_small(present, matched)
        keys = list(self.prot.keys)
        subj = self._norm(pd.DataFrame(list(self.prot.rows), columns=keys))
        absent = "no_subject" if self.vp.membership == "reveal" else "no_match"
        if len(keys) == 1:  # one key column: hash lookups, no join
            k0 = keys[0]
            p = subj[k0].map(self._norm(present)[k0].value_counts()).fillna(0).to_numpy()
            k = subj[k0].map(self._norm(matched)[k0].value_counts()).fillna(0).to_numpy()
            del present, matched
            return ["match" if pi > 0 and ki == pi else (absent if pi == 0 else "no_match")
                    for pi, ki in zip(p, k)]
        n_p = self._norm(present).groupby(keys, sort=False).size().rename("_p").reset_index()
        n_m = self._norm(matched).groupby(keys, sort=False).size().rename("_m").reset_index()
        del present, matched
        m = subj.merge(n_p, on=keys, how="left").merge(n_m, on=keys, how="left")
        p = m["_p"].fillna(0).to_numpy()
        k = m["_m"].fillna(0).to_numpy()
        return ["match" if pi > 0 and ki == pi else (absent if pi == 0 else "no_match")
                for pi, ki in zip(p, k)]

    def record_result(self, answers: list[str]) -> dict[str, Any]:
        return {}  # the answers stay out of the log: it records what was asked

    # -- the commit ----------------------------------------------------------------------
    def commit(self, store: Any, record: dict[str, Any]) -> int:
        from ..verify import ledger

        audit_id, self.left = ledger.commit(store, self.vp, record, self.digests)
        return audit_id

    def result(self, answers: list[str], audit_id: int, spent: Cost, repeat_of: int | None) -> Any:
        from ..verify.results import BatchVerification, Verification

        if not self.prot.batch:
            a = answers[0]
            return Verification(match=a == "match", answer=a, audit_id=audit_id,
                                answers_left=self.left)
        df = self.prot.subjects.copy()  # type: ignore[union-attr]
        df["match"] = [a == "match" for a in answers]
        df["answer"] = answers
        return BatchVerification(df=df, audit_id=audit_id, answers_left=self.left)

    def failure(self, audit_id: int) -> PetsError:
        from ..errors import DataError

        return DataError(
            "this verification could not be computed on the holder's data; it was counted "
            f"against the quotas and nothing was released (audit record {audit_id}). The "
            "holder's log has the cause."
        )


def _section(ctx: Context) -> Any:
    """The policy's [verify] section, or the refusal (rule ``verify``)."""
    vp = ctx.policy.verify
    if vp is None:
        raise PolicyError(
            f"dataset {ctx.plan.dataset!r} answers no verifications: its policy has no "
            "[verify] section (the holder names the subject keys and claimable columns "
            "there)", rule="verify",
        )
    return vp


def _check_keys(vp: Any, keys: tuple[str, ...]) -> None:
    for k in keys:
        if k not in vp.subject_keys:
            raise PolicyError(
                f"column {k!r} is not a subject key of this dataset (the policy's "
                f"[verify] subject_keys: {', '.join(vp.subject_keys)})",
                rule="verify_subject_keys", column=k, allowed=list(vp.subject_keys),
            )


def _check_equality_column(vp: Any, column: str, what: str) -> None:
    """``column`` may be claimed about with ``==`` (PSI pairs and hidden claims)."""
    rule = vp.claims.get(column)
    if rule is None:
        raise PolicyError(
            f"column {column!r} may not be claimed about in a verification (the policy's "
            f"[verify.claims] allow: {', '.join(sorted(vp.claims)) or 'none'})",
            rule="verify_claims", column=column, allowed=sorted(vp.claims),
        )
    if "==" not in rule.operators:
        raise PolicyError(
            f"{what} claims equality (at the granularity), and '==' is not allowed in claims "
            f"about column {column!r} (allowed: {', '.join(rule.operators)})",
            rule="verify_operators", column=column, allowed=list(rule.operators),
        )


def _check_key_values(ctx: Context, keys: tuple[str, ...],
                      rows: tuple[tuple[Any, ...], ...]) -> dict[str, str]:
    """Key columns of a usable type and subject values of the column's kind."""
    types = {k: ctx.schema[k] for k in keys}
    for i, k in enumerate(keys):
        if types[k] not in ("int", "float", "str", "bool"):
            raise QueryError(f"subject key {k!r} holds {types[k]} values; subject keys "
                             "must be numbers, text or booleans")
        seen: set[type] = set()
        for r in rows:
            if type(r[i]) not in seen:
                seen.add(type(r[i]))
                _check_types(P.Compare("==", P.Col(k), P.Lit(r[i])), ctx.schema)
    return types


class VerifyMechanism(Mechanism):
    protection_type = Verify

    def form(self, protection: Verify) -> str:
        return "verify"

    def check_request(self, plan: P.Plan, protection: Verify) -> None:
        if plan.aggs or plan.group_by or len(plan.filters) != 1 or \
                tuple(plan.select or ()) != protection.keys:
            raise QueryError("a verification is asked with s.verify(dataset, subject=..., "
                             "claim=...) or s.verify_batch(dataset, subjects=..., claim=...)")

    def compile(self, ctx: Context) -> CompiledVerify:
        from ..verify.claims import check_claim

        pol, prot = ctx.policy, ctx.protection
        assert isinstance(prot, Verify)
        vp = _section(ctx)
        _check_keys(vp, prot.keys)
        if len(prot.rows) > vp.max_batch:
            raise PolicyError(
                f"this batch names {len(prot.rows):,} subjects; the policy allows at most "
                f"{vp.max_batch:,} per batch: split it",
                rule="verify_max_batch", allowed=vp.max_batch,
            )
        types = _check_key_values(ctx, prot.keys, prot.rows)
        terms = check_claim(vp, pol, ctx.schema, ctx.plan.filters[0])
        return CompiledVerify(ctx, vp, terms, types)


# ------------------------------------------------------------------------ private set intersection
@dataclass(frozen=True, eq=False)
class PSI(Protection):
    """A PSI verification request (policy form ``verify``): the verifier's blinded
    request (bytes of the library's ``Request``), the subject-key columns and the
    claimed columns its pairs hold. Built by :class:`PSIVerifier`; the holder never
    sees the pairs themselves."""

    request: bytes
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    items: int = field(init=False, default=0)
    form = "verify"

    def __post_init__(self) -> None:
        if not isinstance(self.request, (bytes, bytearray)) or not self.request:
            raise QueryError("PSI(request=...) takes the bytes of a PSI request")
        for what, cols in (("keys", self.keys), ("columns", self.columns)):
            if isinstance(cols, str) or not isinstance(cols, (tuple, list)) or not cols or \
                    not all(isinstance(c, str) and c for c in cols):
                raise QueryError(f"PSI({what}=...) is a non-empty list of column names")
            object.__setattr__(self, what, tuple(cols))
        if set(self.keys) & set(self.columns):
            raise QueryError("a column cannot be both a subject key and a claimed column")
        from ..verify.psi import library

        req = library().Request()
        try:
            req.ParseFromString(bytes(self.request))
        except Exception:  # noqa: BLE001 - the library's DecodeError
            raise QueryError("PSI(request=...) is not a PSI request message") from None
        n = len(req.encrypted_elements)
        if n == 0 or not req.reveal_intersection:
            raise QueryError("the PSI request must hold at least one item and ask to reveal "
                             "the intersection (PSIVerifier builds such requests)")
        object.__setattr__(self, "items", n)

    def to_dict(self) -> dict[str, Any]:
        return {"form": "verify", "mode": "psi", "keys": list(self.keys),
                "columns": list(self.columns), "subjects": self.items}


@dataclass(frozen=True)
class PSIAnswer:
    """The holder's answer to a PSI request: the library's server setup and response
    (bytes), to be finished by the verifier's :class:`pets.verify.psi.PSIVerifier`."""

    setup: bytes
    response: bytes
    audit_id: int
    answers_left: int | None
    items: int
    spent: Cost = field(default_factory=Cost)


class CompiledPSI(Compiled):
    def __init__(self, ctx: Context, vp: Any) -> None:
        self.ctx, self.vp = ctx, vp
        self.prot: PSI = ctx.protection  # type: ignore[assignment]
        self.charge = Charge()
        self.left: int | None = None

    def check_ledger(self, store: Any) -> None:
        from ..verify import ledger

        self.left = ledger.used(store, self.vp, self.ctx.analyst, self.ctx.plan.dataset, [],
                                self.prot.items)

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        bits = self.vp.bits_per_subject(self.ctx.policy)["columns"]
        return Explanation(
            allowed=True, cost=Cost(), remaining=remaining,
            message=(f"private set intersection of {self.prot.items} pair(s) on "
                     f"{', '.join(self.prot.columns)}; {self.left} answer(s) left to this "
                     f"analyst this {self.vp.period}; the holder cannot count claims per "
                     "subject here, so what one subject's pairs reveal is bounded by the "
                     "columns' granularity: " + ", ".join(
                         f"{c} {'unbounded' if bits.get(c) is None else format(bits[c], '.3g') + ' bits'}"
                         for c in self.prot.columns)),
            details=pd.DataFrame([{"column": c, "granularity": self.vp.claims[c].granularity,
                                   "column_bits": bits.get(c)} for c in self.prot.columns]),
        )

    def record(self) -> dict[str, Any]:
        return {"kind": "verify", "mode": "psi", "subjects": self.prot.items}

    def run(self, engine: Any, source: Any) -> pd.DataFrame:
        cols = self.prot.keys + self.prot.columns
        return engine.fetch(source, cols, tuple(P.Not(P.IsNull(P.Col(c))) for c in cols))

    def finish(self, rows: pd.DataFrame) -> tuple[bytes, bytes]:
        from ..verify.psi import encode_pairs, holder_answer

        keys, cols = list(self.prot.keys), list(self.prot.columns)
        items = encode_pairs(rows[keys].to_numpy(dtype=object).tolist(),
                             rows[cols].to_numpy(dtype=object).tolist(),
                             [self.vp.claims[c].granularity for c in cols])
        del rows
        return holder_answer(bytes(self.prot.request), self.prot.items, items)

    def commit(self, store: Any, record: dict[str, Any]) -> int:
        from ..verify import ledger

        audit_id, self.left = ledger.commit(store, self.vp, record, [], self.prot.items)
        return audit_id

    def result(self, payload: tuple[bytes, bytes], audit_id: int, spent: Cost,
               repeat_of: int | None) -> PSIAnswer:
        return PSIAnswer(payload[0], payload[1], audit_id, self.left, self.prot.items)

    def failure(self, audit_id: int) -> PetsError:
        from ..errors import DataError

        return DataError(
            "this private set intersection could not be computed on the holder's data; it "
            f"was counted against the quotas and nothing was released (audit record {audit_id})."
        )


class PSIMechanism(Mechanism):
    """Verification by private set intersection (:mod:`pets.verify.psi`)."""

    protection_type = PSI

    def form(self, protection: Any) -> str:
        return "verify"

    def check_request(self, plan: P.Plan, protection: Any) -> None:
        if plan.aggs or plan.group_by or plan.filters or \
                tuple(plan.select or ()) != protection.keys + protection.columns:
            raise QueryError("a PSI verification is asked with s.verify_psi(dataset, pairs, keys=...)")

    def compile(self, ctx: Context) -> CompiledPSI:
        prot = ctx.protection
        vp = _section(ctx)
        _check_keys(vp, prot.keys)
        for c in prot.columns:
            _check_equality_column(vp, c, "a PSI pair")
        if prot.items > vp.max_batch:
            raise PolicyError(
                f"this request holds {prot.items:,} pairs; the policy allows at most "
                f"{vp.max_batch:,} per batch: split it",
                rule="verify_max_batch", allowed=vp.max_batch,
            )
        return CompiledPSI(ctx, vp)


# ------------------------------------------------------------------------ hidden equality claims
@dataclass(frozen=True, eq=False)
class HiddenClaim(Protection):
    """A hidden equality claim (policy form ``verify``): ``subject`` as for
    :class:`Verify`, the claimed ``column``, the verifier's Paillier ``public_key``
    (a :class:`pets.he.PublicKey` or its modulus n) and ``ciphertext`` = Enc(claimed
    value) under it. See :mod:`pets.verify.hidden`."""

    subject: Mapping[str, Any]
    column: str
    public_key: Any
    ciphertext: int
    keys: tuple[str, ...] = field(init=False, default=())
    rows: tuple[tuple[Any, ...], ...] = field(init=False, default=(), repr=False)
    form = "verify"

    def __post_init__(self) -> None:
        from ..he import PublicKey

        v = Verify(subject=self.subject)
        object.__setattr__(self, "keys", v.keys)
        object.__setattr__(self, "rows", v.rows)
        if not isinstance(self.column, str) or not self.column:
            raise QueryError("column= names the claimed column")
        pk = self.public_key
        if not isinstance(pk, PublicKey):
            if isinstance(pk, bool) or not isinstance(pk, int):
                raise QueryError("public_key= is the verifier's pets.he.PublicKey (or its n)")
            pk = PublicKey(pk)
            object.__setattr__(self, "public_key", pk)
        c = self.ciphertext
        if isinstance(c, bool) or not isinstance(c, int) or not 0 < c < pk.nsquare:
            raise QueryError("ciphertext= is Enc(claimed value) under public_key: an integer "
                             "in (0, n²)")
        import gmpy2

        if gmpy2.gcd(c, pk.n) != 1:
            raise QueryError("ciphertext= is not a valid Paillier ciphertext (shares a factor with n)")

    @property
    def batch(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"form": "verify", "mode": "hidden", "keys": list(self.keys), "subjects": 1,
                "column": self.column, "key_fingerprint": self.public_key.fingerprint}


class CompiledHidden(CompiledVerify):
    def run(self, engine: Any, source: Any) -> pd.DataFrame:
        keys = self.prot.keys
        flt = tuple(P.IsIn(P.Col(k), (self.prot.rows[0][i],)) for i, k in enumerate(keys))
        return engine.fetch(source, keys + (self.prot.column,), flt)  # type: ignore[attr-defined]

    def finish(self, rows: pd.DataFrame) -> int:  # type: ignore[override]
        from ..verify.hidden import encode_value, holder_response

        prot: HiddenClaim = self.prot  # type: ignore[assignment]
        vals = rows[prot.column]  # the scan kept only the subject's records
        self.present = len(vals) > 0
        x = None
        if self.present and vals.notna().all():
            g = self.vp.claims[prot.column].granularity
            enc = {encode_value(v, g, prot.public_key.n) for v in vals.tolist()}
            if len(enc) == 1:
                x = enc.pop()
        del rows, vals
        return holder_response(prot.public_key, prot.ciphertext, x)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "mode": "hidden"}

    def result(self, answer: int, audit_id: int, spent: Cost, repeat_of: int | None) -> Any:  # type: ignore[override]
        absent = self.vp.membership == "reveal" and not self.present
        return HiddenAnswer(answer, absent, audit_id, self.left)


@dataclass(frozen=True)
class HiddenAnswer:
    """The holder's answer to a hidden claim: Enc(r·(x − c)) under the verifier's key
    (``ciphertext``), and ``no_subject`` where the policy reveals membership."""

    ciphertext: int
    no_subject: bool
    audit_id: int
    answers_left: int | None
    spent: Cost = field(default_factory=Cost)


class HiddenMechanism(VerifyMechanism):
    """Hidden equality claims (:mod:`pets.verify.hidden`)."""

    protection_type = HiddenClaim

    def check_request(self, plan: P.Plan, protection: Any) -> None:
        if plan.aggs or plan.group_by or plan.filters or \
                tuple(plan.select or ()) != protection.keys + (protection.column,):
            raise QueryError("a hidden claim is asked with s.verify_hidden(dataset, subject, "
                             "column, value)")

    def compile(self, ctx: Context) -> CompiledHidden:  # type: ignore[override]
        prot = ctx.protection
        vp = _section(ctx)
        _check_keys(vp, prot.keys)
        _check_equality_column(vp, prot.column, "a hidden claim")
        types = _check_key_values(ctx, prot.keys, prot.rows)
        return CompiledHidden(ctx, vp, [(prot.column, "==", (None,))], types)
