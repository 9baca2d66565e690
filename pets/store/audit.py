"""The hash-chained, signed audit log: canonical JSON, record hashes, and verification.

Every release (and every refused request the caller chooses to record) is one audit
record, and so is every act of the holder that governs releases: each budget grant,
change of a grant and revocation (kinds ``"grant"`` and ``"revoke"``) and each API key
issued or revoked (kind ``"key"``), status ``"recorded"``. Each record's ``hash`` is
the SHA-256 of the canonical JSON of
``[id, ts, analyst, purpose, dataset, kind, status, body, prev_hash]``, and its
``prev_hash`` is the hash of the record before it (64 zeros for the first). An
``audit_head`` row, written in the same transaction as each record, remembers the
newest id and hash, so removing the newest records is detected as well.

Since store schema 4 every record's hash is also signed (Ed25519) with the holder's
audit key, kept outside the store (:mod:`pets.store.keys`), in table ``audit_sig``; the
head file next to the key names the newest signed record. Dataset registrations and
replacements are records too (kind ``"register"``, with the ``policy_version``), and so
is the upgrade to schema 4 (kind ``"migrate"``).

What verification detects: an edited record, a missing record, records moved out of
order, records removed from the end, records appended or rewritten outside pets (no
valid signature, even with a correct SHA-256 chain), a ledger charge without its audit
record (or with a different cost), a charged audit record whose ledger row was removed
(which would refund budget), a grant changed outside pets (the grants in force must be
exactly what the grant and revoke records leave, and each of those records states the
grant it replaced), a dataset or its policy changed outside pets, a release naming a
policy version other than the one registered then, a recalled answer changed, added or
removed outside pets, an API key added, moved, revoked or un-revoked outside pets, and —
against the head file, or a head pinned with ``verify(head=...)`` — truncation and
rollback, including a lost ``-wal`` file. See ``docs/governance.md`` for what it cannot
detect.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from pets.cost import Cost
from pets.errors import AuditError, QueryError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from pets.store.sqlite import Store

from pets.store.keys import AuditKey, HeadFile

__all__ = ["AuditLog", "GENESIS_HASH", "Head", "answer_digest", "api_key_id", "canonical_json",
           "policy_version", "record_hash", "replay_grants"]

#: ``prev_hash`` of the first audit record.
GENESIS_HASH = "0" * 64

#: The columns of the audit table, in the order they are hashed (``body`` last but one).
COLUMNS = ("id", "ts", "analyst", "purpose", "dataset", "kind", "status")

#: A grant's terms as the log and the verifier compare them: (ε, δ, accounting).
Terms = tuple[Fraction, Fraction, str]
Triple = tuple[str, str, str]

#: The audit records that set or remove a grant, oldest first (``kind`` is hashed).
GRANT_RECORDS_SQL = (
    "SELECT id, kind, analyst, dataset, purpose, body FROM audit "
    "WHERE kind IN ('grant', 'revoke') ORDER BY id"
)


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Cost):
        return {"epsilon": obj.epsilon, "delta": obj.delta}
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def canonical_json(obj: Any) -> str:
    """The one JSON form pets hashes: sorted keys, no spaces, UTF-8 text.

    :class:`pets.Cost` values become ``{"delta": ..., "epsilon": ...}``.

    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    '{"a":[1.5,"é"],"b":1}'
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_to_jsonable
    )


def policy_version(policy_dict: Any) -> str:
    """The version of a policy: SHA-256 (hex) of the canonical JSON of its dict form
    (``Policy.to_dict()``, as a dataset record keeps it under ``"policy"``).

    Every register record states it, and a release or refusal record that names a
    ``"policy_version"`` must name the one registered for its dataset at that point.

    >>> policy_version({"columns": {}})[:12]
    '45860e5c2101'
    """
    return hashlib.sha256(canonical_json(policy_dict).encode("utf-8", "surrogatepass")).hexdigest()


def answer_digest(key: str, answer: str) -> str:
    """SHA-256 (hex) of a recalled answer and the key it is kept under, as the release
    record that first gave it states it (``answer_digest``)."""
    return hashlib.sha256(canonical_json([key, answer]).encode("utf-8", "surrogatepass")).hexdigest()


def api_key_id(key_hash: str) -> str:
    """The id key records use for an API key: a one-way digest of its stored hash (the
    log never holds a key or its hash)."""
    return hashlib.sha256(b"pets-api-key-id\x00" + key_hash.encode("ascii")).hexdigest()[:32]


_HEAD_TEXT = re.compile(r"(0|[1-9][0-9]{0,17}):([0-9a-f]{64})\Z")


class Head(NamedTuple):
    """The newest audit record: ``(id, hash)``. ``str(head)`` is ``"ID:HASH"`` — the form
    to publish or pin and to pass to ``pets audit verify --head`` — and
    :meth:`parse` reads it back. It compares equal to the plain tuple."""

    id: int
    hash: str

    def __str__(self) -> str:
        return f"{self.id}:{self.hash}"

    @classmethod
    def parse(cls, value: Any) -> "Head":
        """A head from ``"ID:HASH"``, an ``(id, hash)`` pair, a dict with ``id`` and
        ``hash``, or a :class:`Head`; :class:`pets.QueryError` if it is none of these."""
        if isinstance(value, str):
            m = _HEAD_TEXT.match(value.strip())
            if m:
                return cls(int(m.group(1)), m.group(2))
        elif isinstance(value, dict):
            return cls.parse((value.get("id"), value.get("hash")))
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            rid, h = value
            if (isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0
                    and isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h)):
                return cls(rid, h)
        shown = value if isinstance(value, str) and len(value) < 200 else type(value).__name__
        raise QueryError(
            f"head must be 'ID:HASH' as audit().head() gives it (a record id, a colon and "
            f"64 lowercase hex digits), got {shown!r}"
        )


def record_hash(
    id: int,
    ts: str,
    analyst: str | None,
    purpose: str | None,
    dataset: str | None,
    kind: str,
    status: str,
    body: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of one record's content and its ``prev_hash``."""
    text = canonical_json([id, ts, analyst, purpose, dataset, kind, status, body, prev_hash])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _text_of(x: Any) -> str | None:
    """The ledger's text form of a cost component from an audit body (``repr`` of a float)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return repr(float(x))


def _terms(x: Any) -> Terms | None:
    """``{"epsilon", "delta", "accounting"}`` of a grant record as exact terms, or None."""
    if not isinstance(x, dict):
        return None
    eps_text, delta_text = _text_of(x.get("epsilon")), _text_of(x.get("delta"))
    acc = x.get("accounting")
    if eps_text is None or delta_text is None or not isinstance(acc, str):
        return None
    if not (math.isfinite(float(eps_text)) and math.isfinite(float(delta_text))):
        return None
    return Fraction(eps_text), Fraction(delta_text), acc  # as the grants table keeps them


def describe_terms(t: Terms | None) -> str:
    """``epsilon=1, delta=0 (basic)`` or ``no grant``, for messages."""
    if t is None:
        return "no grant"
    return f"epsilon={float(t[0])!r}, delta={float(t[1])!r} ({t[2]})"


def replay_grants(rows: Iterable[tuple[Any, ...]]) -> dict[Triple, tuple[Terms, int]]:
    """The grants in force after the ``grant`` and ``revoke`` records ``rows``
    (``id, kind, analyst, dataset, purpose, body``, oldest first): for each
    (analyst, dataset, purpose), its terms and the id of the record that set them.

    Raises :class:`AuditError` at the first record that does not follow from the ones
    before it — a ``previous`` other than the grant the log left in force means the
    grants table was changed outside pets in between.
    """
    state: dict[Triple, tuple[Terms, int]] = {}
    for rid, kind, analyst, dataset, purpose, body in rows:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            parsed = {}
        triple = (analyst, dataset, purpose)
        before = state.get(triple)
        previous = _terms(parsed.get("previous"))
        new = _terms(parsed) if kind == "grant" else None
        bad = ""
        if kind == "grant" and new is None:
            bad = "has no epsilon, delta and accounting"
        elif parsed.get("previous") is not None and previous is None:
            bad = "has a malformed previous grant"
        elif previous != (before[0] if before else None):
            bad = (f"says the grant it replaced was {describe_terms(previous)}, but the "
                   f"audit log left {describe_terms(before[0] if before else None)} in force "
                   "(the grant was changed outside pets before this record)")
        elif kind == "revoke" and before is None:
            bad = "revokes a grant the audit log never recorded"
        if bad:
            who = f"{analyst} on {dataset} (purpose {purpose})"
            raise AuditError(f"{kind} record {rid} of {who} {bad}", record=int(rid))
        if new is not None:
            state[triple] = (new, int(rid))
        else:
            state.pop(triple, None)
    return state


class AuditLog:
    """The audit log of one :class:`~pets.store.Store`: read it, export it, verify it.

    >>> log = store.audit()                       # doctest: +SKIP
    >>> log.verify()                              # doctest: +SKIP
    True
    >>> log.to_dataframe()[["id", "analyst", "kind", "status"]]   # doctest: +SKIP
    """

    def __init__(self, store: "Store") -> None:
        self._store = store

    def __len__(self) -> int:
        with self._store._read() as con:
            return int(con.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def __repr__(self) -> str:
        return f"AuditLog({str(self._store.path)!r}, records={len(self)})"

    def head(self) -> Head:
        """:class:`Head` ``(id, hash)`` of the newest record — ``(0, "0"*64)`` for an
        empty log; ``str(head)`` is ``"ID:HASH"``.

        Publish or pin it somewhere the holder's database is not (a signed report, a
        notary, the auditor's own notes): ``verify(head=head)`` later detects any
        truncation or rollback of the log since — even by someone who also rolled back
        the head file.
        """
        with self._store._read() as con:
            row = con.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
        if row is None:
            raise AuditError("the audit head is missing (it records the newest audit record)")
        return Head(int(row[0]), str(row[1]))

    def records(
        self,
        *,
        analyst: str | None = None,
        dataset: str | None = None,
        purpose: str | None = None,
        kind: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """All records (optionally only those matching every given field), oldest first.

        Each is a dict with ``id, ts, analyst, purpose, dataset, kind, status`` and the
        fields of the record's body (``plan``, ``protection``, ``cost``, ``rule`` ...; a
        ``grant`` record: ``epsilon, delta, accounting, previous, by``). Status is
        ``"released"``, ``"refused"`` or — grants, revocations, API keys —
        ``"recorded"``: count releases with ``status="released"``.
        """
        where: list[str] = []
        args: list[Any] = []
        for name, value in (
            ("analyst", analyst),
            ("dataset", dataset),
            ("purpose", purpose),
            ("kind", kind),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        sql = "SELECT id, ts, analyst, purpose, dataset, kind, status, body FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        with self._store._read() as con:
            rows = con.execute(sql, args).fetchall()
        out: list[dict[str, Any]] = []
        for row in rows:
            try:
                body = json.loads(row[7])
            except ValueError:
                body = {}
            rec: dict[str, Any] = dict(zip(COLUMNS, row[:7]))
            if isinstance(body, dict):
                for k, v in body.items():
                    if k not in rec:
                        rec[k] = v
            out.append(rec)
        return out

    def to_dataframe(self, **filters: Any) -> "pd.DataFrame":
        """The records as a pandas DataFrame (``ts`` parsed as UTC timestamps).

        Takes the same keyword filters as :meth:`records`.
        """
        import pandas as pd

        recs = self.records(**filters)
        df = pd.DataFrame(recs)
        if df.empty:
            df = pd.DataFrame(columns=list(COLUMNS))
        front = [c for c in COLUMNS if c in df.columns]
        df = df[front + [c for c in df.columns if c not in COLUMNS]]
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        return df

    def verify(self, head: "Head | tuple[int, str] | str | None" = None) -> bool:
        """Check the whole log; ``True``, or :class:`pets.AuditError` naming the first bad record.

        Checks, in one consistent snapshot: ids run 1, 2, 3 ... without gaps; each
        record's hash matches its content; each ``prev_hash`` is the previous record's
        hash; each record after the upgrade to signing carries a valid Ed25519 signature
        of the holder's audit key; the head names the newest record; every ledger charge
        has its audit record with the same analyst, dataset, purpose and cost; every
        charged audit record has its ledger row; the spent totals are the sums of the
        ledger; each grant and revoke record states the grant the records before it left
        in force, and the grants in force are exactly those the grant and revoke records
        leave; the datasets are exactly what the register records left (record and
        policy version); each record naming a ``policy_version`` names its dataset's
        registered one at that point; each recalled answer matches the digest in the
        record that first released it; the API keys are exactly what the key records
        issued and revoked; and the log reaches the head file's record (when the key's
        head file is there — a signing key's must be) with the same hash.

        ``head`` (a :class:`Head`, ``(id, hash)`` or ``"ID:HASH"``, published or pinned
        earlier) must also still be in the log: this detects truncation and rollback
        since then. Needs only the public key: open the store with
        ``audit_key=".../audit-key.pub"`` to verify without the secret.
        """
        pinned = Head.parse(head) if head is not None else None
        key = self._store.audit_key()
        with self._store._read() as con:
            meta = con.execute(
                "SELECT store_id, key_fingerprint, unsigned_through FROM audit_meta WHERE one = 1"
            ).fetchone()
            if meta is None:
                raise AuditError("the audit metadata (which key signs this store) is missing")
            if meta[1] != key.fingerprint:
                raise AuditError(
                    f"the audit log says it is signed with key {str(meta[1])[:16]}…, not with "
                    f"the audit key {str(key.path)!r} ({key.fingerprint[:16]}…): use this "
                    "home's key, or the log's signatures were replaced"
                )
            walk = _Walk(key, str(meta[0]), int(meta[2]),
                         dict(con.execute("SELECT id, sig FROM audit_sig")))
            head_row = con.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
            ledger = {
                int(r[0]): r[1:]
                for r in con.execute(
                    "SELECT audit_id, analyst, dataset, purpose, epsilon, epsilon_text, "
                    "delta, delta_text, rho_text, zdelta_text FROM ledger"
                )
            }
            rows = con.execute(
                "SELECT id, ts, analyst, purpose, dataset, kind, status, body, prev_hash, hash "
                "FROM audit ORDER BY id"
            )
            _verify(rows, head_row, ledger, walk)
            totals: dict[tuple[str, str, str], list[Fraction]] = {}
            parts = "epsilon_text, delta_text, rho_text, zdelta_text"
            for r in con.execute(f"SELECT analyst, dataset, purpose, {parts} FROM ledger"):
                t = totals.setdefault((r[0], r[1], r[2]), [Fraction(0)] * 4)
                for i in range(4):
                    t[i] += Fraction(r[3 + i])
            stored = {
                (r[0], r[1], r[2]): [Fraction(x) for x in r[3:]]
                for r in con.execute(f"SELECT analyst, dataset, purpose, {parts} FROM spent")
            }
            zero = [Fraction(0)] * 4
            for triple in sorted(set(totals) | set(stored)):
                if totals.get(triple, zero) != stored.get(triple, zero):
                    analyst, dataset, purpose = triple
                    raise AuditError(
                        f"the spent total of {analyst} on {dataset} (purpose {purpose}) does "
                        "not match the sum of its ledger charges (budget was refunded or "
                        "inflated outside pets)"
                    )
            _verify_grants(con)
            walk.finish(con)
            last = int(head_row[0])
            if pinned is not None:
                _check_head(con, pinned, last, "the pinned head")
            file_head = HeadFile(key.head_path).read()
            if file_head is None:
                if key.can_sign and last > 0:
                    raise AuditError(
                        f"the audit head file {str(key.head_path)!r} is missing, so a rollback "
                        "of the log could not be told; restore it (it lives next to the audit key)"
                    )
            elif file_head["store"] != walk.store_id:
                raise AuditError(
                    f"the audit head file {str(key.head_path)!r} belongs to another pets store "
                    "(each home needs its own audit key)"
                )
            else:
                _check_head(con, Head(file_head["id"], file_head["hash"]), last,
                            f"the audit head file {str(key.head_path)!r}")
        return True


def _check_head(con: sqlite3.Connection, head: Head, last: int, what: str) -> None:
    """The log must still hold ``head``'s record, with ``head``'s hash."""
    if head.id > last:
        raise AuditError(
            f"the audit log was truncated or rolled back: {what} names record {head.id}, but "
            f"the log ends at {last}",
            record=last + 1,
        )
    if head.id == 0:
        ok = head.hash == GENESIS_HASH
    else:
        row = con.execute("SELECT hash FROM audit WHERE id = ?", (head.id,)).fetchone()
        ok = row is not None and row[0] == head.hash
    if not ok:
        raise AuditError(
            f"audit record {head.id} is not the one {what} names: the log was rolled back and "
            "rewritten since",
            record=head.id or None,
        )


class _Walk:
    """What verification learns walking the chain, beyond hashes: signatures, the
    registered policy of each dataset, answer digests and the API keys."""

    def __init__(self, key: "AuditKey", store_id: str, unsigned_through: int,
                 sigs: dict[int, str]) -> None:
        self.key, self.store_id, self.unsigned_through, self.sigs = key, store_id, unsigned_through, sigs
        self.registered: dict[str, tuple[Any, Any, int]] = {}  # name -> (version, sha, rid)
        self.answers: dict[int, str] = {}  # audit id -> answer digest
        self.keys: dict[str, tuple[str, bool, int]] = {}  # key id -> (analyst, revoked, rid)
        self.last = 0

    def signature(self, rid: int, row_hash: str) -> None:
        if rid <= self.unsigned_through:
            return
        if not self.key.verify(self.store_id, row_hash, self.sigs.get(rid)):
            raise AuditError(
                f"audit record {rid} has no valid signature of the holder's audit key: it was "
                "added outside pets or rewritten",
                record=rid,
            )

    def record(self, rid: int, kind: str, status: str, analyst: Any, dataset: Any,
               body: dict[str, Any]) -> None:
        self.last = rid
        if self.unsigned_through and rid == self.unsigned_through + 1 and not (
                kind == "migrate" and body.get("unsigned_through") == self.unsigned_through):
            raise AuditError(
                f"audit record {rid} should be the upgrade to signed records (the store says "
                f"records up to {self.unsigned_through} predate signing), but it is not",
                record=rid,
            )
        if kind == "migrate" and status == "recorded":
            answers = body.get("answers")
            if isinstance(answers, dict):
                for aid, digest in answers.items():
                    if str(aid).isdigit():
                        self.answers[int(aid)] = digest
        elif kind == "register" and status == "recorded" and isinstance(dataset, str):
            self.registered[dataset] = (body.get("policy_version"), body.get("record_sha256"), rid)
        elif kind == "key" and status == "recorded" and isinstance(body.get("key_ids"), list):
            self._key_act(rid, analyst, body)
        if "policy_version" in body and kind != "register":
            reg = self.registered.get(dataset) if isinstance(dataset, str) else None
            if reg is None or reg[0] != body["policy_version"]:
                now = "no registered policy" if reg is None else f"policy version {reg[0]}"
                raise AuditError(
                    f"audit record {rid} says policy version {body['policy_version']} applied "
                    f"to dataset {dataset!r}, but the log had {now} for it then",
                    record=rid,
                )
        if isinstance(body.get("answer_digest"), str) and body.get("charged") is True:
            self.answers[rid] = body["answer_digest"]

    def _key_act(self, rid: int, analyst: Any, body: dict[str, Any]) -> None:
        action = body.get("action")
        ids = [k for k in body.get("key_ids", ()) if isinstance(k, str)]
        if action == "adopted":
            dead = [k for k in body.get("revoked_ids", ()) if isinstance(k, str)]
            for k in ids:
                self.keys[k] = (analyst, False, rid)
            for k in dead:
                self.keys[k] = (analyst, True, rid)
            return
        for k in ids:
            have = self.keys.get(k)
            if action == "issued" and have is None:
                self.keys[k] = (analyst, False, rid)
            elif action == "revoked" and have is not None and have[0] == analyst and not have[1]:
                self.keys[k] = (analyst, True, rid)
            else:
                raise AuditError(
                    f"key record {rid} of {analyst} {action} an API key the log "
                    f"{'already knows' if action == 'issued' else 'did not leave in force'}",
                    record=rid,
                )

    def finish(self, con: sqlite3.Connection) -> None:
        """Check the tables the walk vouches for: datasets, answers, API keys."""
        if self.unsigned_through and self.last == self.unsigned_through:
            raise AuditError(
                f"audit record {self.last + 1} (the upgrade to signed records) is missing",
                record=self.last + 1,
            )
        seen: set[str] = set()
        for name, text, version in con.execute(
                "SELECT name, record, policy_version FROM datasets ORDER BY name"):
            seen.add(name)
            reg = self.registered.get(name)
            digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()
            if reg is None:
                raise AuditError(f"dataset {name!r} is registered, but no audit record registers "
                                 "it (it was added outside pets)")
            if (digest, version) != (reg[1], reg[0]):
                raise AuditError(
                    f"dataset {name!r} (its record or policy) was changed outside pets after "
                    f"register record {reg[2]}",
                    record=reg[2],
                )
        for name in sorted(set(self.registered) - seen):
            rid = self.registered[name][2]
            raise AuditError(f"dataset {name!r} of register record {rid} was removed outside pets",
                             record=rid)
        kept: set[int] = set()
        for key, aid, answer in con.execute("SELECT key, audit_id, answer FROM answers"):
            want = self.answers.get(aid) if isinstance(aid, int) else None
            kept.add(aid)
            if want is None:
                raise AuditError(
                    f"a recalled answer names audit record {aid}, which released no such answer "
                    "(it was added outside pets)",
                    record=aid if isinstance(aid, int) else None,
                )
            if not isinstance(key, str) or not isinstance(answer, str) or \
                    answer_digest(key, answer) != want:
                raise AuditError(
                    f"the recalled answer of audit record {aid} was changed outside pets (it does "
                    "not match the digest its record states)",
                    record=aid,
                )
        gone = sorted(set(self.answers) - kept)
        if gone:
            raise AuditError(f"the recalled answer of audit record {gone[0]} was removed outside pets",
                             record=gone[0])
        rows: dict[str, tuple[Any, bool]] = {}
        for key_hash, analyst, revoked in con.execute(
                "SELECT key_hash, analyst, revoked FROM api_keys"):
            rows[api_key_id(str(key_hash))] = (analyst, revoked is not None)
        for kid in sorted(set(rows) | set(self.keys)):
            have, want = rows.get(kid), self.keys.get(kid)
            if have is None:
                raise AuditError(
                    f"an API key of {want[0]} issued by key record {want[2]} was removed outside "
                    "pets", record=want[2])
            if want is None:
                raise AuditError(f"an API key of {have[0]} is in the store but no key record "
                                 "issued it (it was added outside pets)")
            if have[0] != want[0]:
                raise AuditError(f"an API key of {want[0]} (key record {want[2]}) was moved to "
                                 f"{have[0]} outside pets", record=want[2])
            if have[1] != want[1]:
                what = "revoked" if have[1] else "un-revoked"
                raise AuditError(f"an API key of {want[0]} (key record {want[2]}) was {what} "
                                 "outside pets", record=want[2])


def _verify_grants(con: sqlite3.Connection) -> None:
    """The grants table against the replay of the grant and revoke records."""
    table: dict[Triple, Terms | None] = {}
    for analyst, dataset, purpose, eps, delta, acc in con.execute(
        "SELECT analyst, dataset, purpose, epsilon_text, delta_text, accounting FROM grants"
    ):
        try:
            table[(analyst, dataset, purpose)] = (Fraction(eps), Fraction(delta), acc)
        except (ValueError, ZeroDivisionError, TypeError):
            table[(analyst, dataset, purpose)] = None  # malformed: matches no record
    logged = replay_grants(con.execute(GRANT_RECORDS_SQL).fetchall())
    for triple in sorted(set(table) | set(logged), key=lambda t: tuple(map(str, t))):
        have = table.get(triple)
        entry = logged.get(triple)
        want = entry[0] if entry else None
        if triple in table and have is None or have != want:
            analyst, dataset, purpose = triple
            now = "malformed" if triple in table and have is None else describe_terms(have)
            raise AuditError(
                f"the grant of {analyst} on {dataset} (purpose {purpose}) is {now}, but its "
                f"audit records say {describe_terms(want)} (the grants table was changed "
                "outside pets)",
                record=entry[1] if entry else None,
            )


def _verify(
    rows: Iterable[sqlite3.Row | tuple[Any, ...]],
    head: tuple[Any, ...] | None,
    ledger: dict[int, tuple[Any, ...]],
    walk: _Walk,
) -> None:
    """Walk the chain; raise :class:`AuditError` at the first problem."""
    if head is None:
        raise AuditError("the audit head is missing (it records the newest audit record)")
    ledger_problems: list[tuple[int, str]] = []
    prev_id = 0
    prev_hash = GENESIS_HASH
    for row in rows:
        rid, ts, analyst, purpose, dataset, kind, status, body, row_prev, row_hash = row
        if rid != prev_id + 1:
            missing = prev_id + 1
            if prev_id == 0:
                why = f"the log starts at {rid}"
            else:
                why = f"ids jump from {prev_id} to {rid}"
            raise AuditError(f"audit record {missing} is missing ({why})", record=missing)
        if row_prev != prev_hash:
            if prev_id == 0:
                why = "its prev_hash is not the genesis hash of the first record"
            else:
                why = f"its prev_hash does not match record {prev_id}"
            raise AuditError(f"audit records are out of order at record {rid} ({why})", record=rid)
        try:
            expected = record_hash(rid, ts, analyst, purpose, dataset, kind, status, body, row_prev)
        except (TypeError, ValueError):
            expected = None
        if expected != row_hash:
            raise AuditError(
                f"audit record {rid} was edited (its hash does not match its content)",
                record=rid,
            )
        walk.signature(rid, row_hash)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise AuditError(f"audit record {rid} has a body that is not a JSON object", record=rid)
        walk.record(rid, kind, status, analyst, dataset, parsed)
        charge = ledger.pop(rid, None)
        if charge is not None:
            problem = _ledger_mismatch(charge, parsed, analyst, dataset, purpose)
            if problem:
                ledger_problems.append((rid, f"ledger charge for audit record {rid} {problem}"))
        elif parsed.get("charged") is True:
            ledger_problems.append(
                (
                    rid,
                    f"audit record {rid} records a charge but its ledger row is missing "
                    "(the budget it spent would be refunded)",
                )
            )
        prev_id, prev_hash = rid, row_hash

    head_id, head_hash = int(head[0]), head[1]
    if head_id > prev_id:
        ends = f"log ends at {prev_id}" if prev_id else "log is empty"
        raise AuditError(
            f"the newest audit record(s) were removed (head says {head_id}, {ends})",
            record=prev_id + 1,
        )
    if head_id < prev_id:
        raise AuditError(
            f"audit record {head_id + 1} was added outside pets (head says {head_id}, "
            f"log ends at {prev_id})",
            record=head_id + 1,
        )
    if head_hash != prev_hash:
        raise AuditError(
            f"audit record {prev_id} was replaced (its hash does not match the audit head)",
            record=prev_id or None,
        )
    for aid in ledger:  # charges whose audit record does not exist at all
        ledger_problems.append((aid, f"ledger charge for audit record {aid} has no matching audit record"))
    if ledger_problems:
        rid, message = min(ledger_problems)
        raise AuditError(message, record=rid)


def _ledger_mismatch(
    charge: tuple[Any, ...],
    body: dict[str, Any],
    analyst: str | None,
    dataset: str | None,
    purpose: str | None,
) -> str | None:
    """What is wrong between a ledger row and its audit record, or ``None``."""
    l_analyst, l_dataset, l_purpose, eps, eps_text, delta, delta_text, rho_text, zd_text = charge
    if (l_analyst, l_dataset, l_purpose) != (analyst, dataset, purpose):
        return "is for another analyst, dataset or purpose than the audit record"
    for name, real, text in (("epsilon", eps, eps_text), ("delta", delta, delta_text)):
        try:
            ok = isinstance(text, str) and real == float(Fraction(text)) and Fraction(text) >= 0
        except (ValueError, ZeroDivisionError):
            ok = False
        if not ok:
            return f"has a malformed {name} (its text and number disagree)"
    cost = body.get("cost")
    if not isinstance(cost, dict):
        return "does not match its audit record (the record has no cost)"
    a_eps, a_delta = _text_of(cost.get("epsilon")), _text_of(cost.get("delta"))
    if (a_eps, a_delta) != (eps_text, delta_text):
        return (
            f"does not match its audit record (ledger says epsilon={eps_text}, "
            f"delta={delta_text}; audit says epsilon={a_eps}, delta={a_delta})"
        )
    a_rho, a_zd = _text_of(cost.get("rho", 0.0)), _text_of(cost.get("zdelta", 0.0))
    try:
        same = a_rho is not None and a_zd is not None and (
            Fraction(a_rho), Fraction(a_zd)) == (Fraction(rho_text), Fraction(zd_text))
    except (ValueError, ZeroDivisionError, TypeError):
        same = False
    if not same:
        return (
            f"does not match its audit record (ledger says rho={rho_text}, zdelta={zd_text}; "
            f"audit says rho={a_rho}, zdelta={a_zd})"
        )
    return None
