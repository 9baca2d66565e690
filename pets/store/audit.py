"""The hash-chained audit log: canonical JSON, record hashes, and verification.

Every release (and every refused request the caller chooses to record) is one audit
record, and so is every act of the holder that governs releases: each budget grant,
change of a grant and revocation (kinds ``"grant"`` and ``"revoke"``) and each API key
issued or revoked (kind ``"key"``), status ``"recorded"``. Each record's ``hash`` is
the SHA-256 of the canonical JSON of
``[id, ts, analyst, purpose, dataset, kind, status, body, prev_hash]``, and its
``prev_hash`` is the hash of the record before it (64 zeros for the first). An
``audit_head`` row, written in the same transaction as each record, remembers the
newest id and hash, so removing the newest records is detected as well.

What verification detects: an edited record, a missing record, records moved out of
order, records removed from the end, records appended outside pets, a ledger charge
without its audit record (or with a different cost), a charged audit record whose
ledger row was removed (which would refund budget), and a grant changed outside pets (the
grants in force must be exactly what the grant and revoke records leave, and each of
those records states the grant it replaced). What it cannot detect on its own:
someone with write access who rewrites the whole chain *and* the head from some point
on. Publish :meth:`AuditLog.head` somewhere the holder does not control (a signed
report, a notary) and compare it later to anchor the log.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Iterable

from pets.cost import Cost
from pets.errors import AuditError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from pets.store.sqlite import Store

__all__ = ["AuditLog", "GENESIS_HASH", "canonical_json", "record_hash", "replay_grants"]

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

    def head(self) -> tuple[int, str]:
        """``(id, hash)`` of the newest record — ``(0, "0"*64)`` for an empty log.

        Publish it outside the holder's control to anchor the log against someone who
        rewrites the whole chain.
        """
        with self._store._read() as con:
            row = con.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
        if row is None:
            raise AuditError("the audit head is missing (it records the newest audit record)")
        return int(row[0]), str(row[1])

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

    def verify(self) -> bool:
        """Check the whole log; ``True``, or :class:`pets.AuditError` naming the first bad record.

        Checks, in one consistent snapshot: ids run 1, 2, 3 ... without gaps; each
        record's hash matches its content; each ``prev_hash`` is the previous record's
        hash; the head names the newest record; every ledger charge has its audit record
        with the same analyst, dataset, purpose and cost; every charged audit record
        has its ledger row; the spent totals are the sums of the ledger; each grant and
        revoke record states the grant the records before it left in force, and the
        grants in force are exactly those the grant and revoke records leave.
        """
        with self._store._read() as con:
            head = con.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
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
            _verify(rows, head, ledger)
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
        return True


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
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise AuditError(f"audit record {rid} has a body that is not a JSON object", record=rid)
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
