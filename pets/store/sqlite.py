"""The holder's SQLite store: datasets, grants, the privacy-budget ledger, the audit log
and API keys, in ``home/pets.db``.

Durability and concurrency:

* WAL journal, ``synchronous=FULL``: a charge that :meth:`Store.charge` returned has
  reached the disk, so a crash after the charge loses budget, never privacy.
* One SQLite connection per operation (connections are never shared between threads),
  autocommit mode with an explicit ``BEGIN IMMEDIATE`` around every write: the check
  "is there enough budget left?" and the debit happen under one write lock, so
  concurrent sessions — threads or processes on the same home — can never overspend.
* Budgets are summed exactly: each epsilon/delta is stored as the text of its float
  ``repr`` (and as REAL, for people reading the table) and summed as
  :class:`fractions.Fraction`, so ten charges of 0.1 spend exactly a budget of 1.0.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import secrets
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

from pets.cost import Cost, exact
from pets.dp.accountant import Budget, charged_cost, check_accounting
from pets.errors import (
    AuditError,
    AuthError,
    BudgetExceeded,
    DataError,
    InternalError,
    PolicyError,
    QueryError,
)
from pets.store.audit import (
    GENESIS_HASH,
    AuditLog,
    answer_digest,
    api_key_id,
    canonical_json,
    policy_version,
    record_hash,
)
from pets.store.keys import AuditKey, HeadFile, key_path
from pets.store.locks import WriterLock

__all__ = ["Store", "SCHEMA_VERSION"]

#: Version of the tables below; a newer file is refused rather than misread.
SCHEMA_VERSION = 4

_BUSY_TIMEOUT_S = 30.0

_TABLES = (
    """CREATE TABLE IF NOT EXISTS datasets (
        name TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        policy_version TEXT)""",
    """CREATE TABLE IF NOT EXISTS grants (
        analyst TEXT NOT NULL,
        dataset TEXT NOT NULL,
        purpose TEXT NOT NULL,
        epsilon REAL NOT NULL,
        epsilon_text TEXT NOT NULL,
        delta REAL NOT NULL,
        delta_text TEXT NOT NULL,
        updated TEXT NOT NULL,
        accounting TEXT NOT NULL DEFAULT 'basic',
        PRIMARY KEY (analyst, dataset, purpose))""",
    """CREATE TABLE IF NOT EXISTS ledger (
        audit_id INTEGER PRIMARY KEY,
        analyst TEXT NOT NULL,
        dataset TEXT NOT NULL,
        purpose TEXT NOT NULL,
        epsilon REAL NOT NULL,
        epsilon_text TEXT NOT NULL,
        delta REAL NOT NULL,
        delta_text TEXT NOT NULL,
        rho_text TEXT NOT NULL DEFAULT '0.0',
        zdelta_text TEXT NOT NULL DEFAULT '0.0')""",
    "CREATE INDEX IF NOT EXISTS ledger_triple ON ledger (analyst, dataset, purpose)",
    # running exact totals of the ledger per (analyst, dataset, purpose), as "p/q"
    # fractions, updated in the charge's transaction: budget checks stay O(1)
    """CREATE TABLE IF NOT EXISTS spent (
        analyst TEXT NOT NULL,
        dataset TEXT NOT NULL,
        purpose TEXT NOT NULL,
        epsilon_text TEXT NOT NULL,
        delta_text TEXT NOT NULL,
        rho_text TEXT NOT NULL DEFAULT '0',
        zdelta_text TEXT NOT NULL DEFAULT '0',
        PRIMARY KEY (analyst, dataset, purpose))""",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        analyst TEXT,
        purpose TEXT,
        dataset TEXT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_events ON audit (analyst, dataset, kind, status)",
    """CREATE TABLE IF NOT EXISTS audit_head (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        last_id INTEGER NOT NULL,
        last_hash TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_hash TEXT PRIMARY KEY,
        analyst TEXT NOT NULL,
        created TEXT NOT NULL,
        revoked TEXT)""",
    "CREATE INDEX IF NOT EXISTS api_keys_analyst ON api_keys (analyst)",
    # released answers, so that a repeated identical query gets the same noise back
    """CREATE TABLE IF NOT EXISTS answers (
        key TEXT PRIMARY KEY,
        audit_id INTEGER NOT NULL,
        answer TEXT NOT NULL)""",
) + (
    # schema 4: each record's Ed25519 signature (by the key outside the store), and
    # which store this is, which key signs it and which records predate signing
    """CREATE TABLE IF NOT EXISTS audit_sig (
        id INTEGER PRIMARY KEY,
        sig TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit_meta (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        store_id TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        unsigned_through INTEGER NOT NULL)""",
)

# schema 1 → 2: zCDP accounting (a grant's accounting; ρ and approximate-zCDP δ' per charge)
_MIGRATE_1_2 = (
    "ALTER TABLE grants ADD COLUMN accounting TEXT NOT NULL DEFAULT 'basic'",
    "ALTER TABLE ledger ADD COLUMN rho_text TEXT NOT NULL DEFAULT '0.0'",
    "ALTER TABLE ledger ADD COLUMN zdelta_text TEXT NOT NULL DEFAULT '0.0'",
    "ALTER TABLE spent ADD COLUMN rho_text TEXT NOT NULL DEFAULT '0'",
    "ALTER TABLE spent ADD COLUMN zdelta_text TEXT NOT NULL DEFAULT '0'",
)

#: Keys the store writes itself; a caller's record may not carry them.
_RESERVED = frozenset({"id", "ts", "hash", "prev_hash", "charged", "answer_digest"})
_STATUSES = ("released", "refused", "recorded")
#: Kinds of the holder's own acts (grants, revocations, API keys, dataset registrations,
#: the store's own migration): status "recorded", written only by the store's methods,
#: in the transaction of the change they record.
_HOLDER_KINDS = frozenset({"grant", "revoke", "key", "register", "migrate", "console"})


@functools.lru_cache(maxsize=4096)
def _fraction(text: str) -> Fraction:
    """A stored exact amount (the text of a Fraction or a float's repr) as a Fraction:
    parsed once per text (a grant's texts are read at every release; Fractions are
    immutable, so one object serves every reader)."""
    return Fraction(text)


def _now() -> str:
    """UTC time as ISO 8601 with microseconds, e.g. ``2024-05-01T12:00:00.123456+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _num(x: float) -> str:
    """A number as a user would write it: ``0`` not ``0.0``, ``0.3`` not ``0.300000``."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(f"{what} must be a non-empty string, got {type(value).__name__}")
    return value


def _budget(value: Any, what: str, upper: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and value >= 0 and (upper is None or value <= upper)
    if not ok:
        limit = f" and <= {_num(upper)}" if upper is not None else ""
        raise QueryError(f"{what} must be a finite number >= 0{limit}, got {value!r}")
    return float(value)


def _key_hash(key: str) -> str:
    """The unsalted SHA-256 of a key: how keys issued before salting are stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _salted_key_hash(salt: str, key: str) -> str:
    """How a key is stored: ``s1$`` + SHA-256 of the store's salt and the key. The salt is
    128 random bits made once per store (table ``api_key_salt``), so the same key has
    another hash in every store and no table of hashes computed once serves for two."""
    digest = hashlib.sha256(b"pets-api-key\x00" + salt.encode("ascii") + b"\x00"
                            + key.encode("utf-8")).hexdigest()
    return "s1$" + digest


def _text_digest(text: str) -> str:
    """SHA-256 (hex) of a stored JSON text, as the register record states it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _policy_version_of(text: str) -> str | None:
    """The policy version of a stored dataset record (None if it has no policy)."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or "policy" not in record:
        return None
    return policy_version(record["policy"])


def _grant_terms(epsilon_text: str, delta_text: str, accounting: str) -> dict[str, Any]:
    """A grant row's terms as its audit record states them."""
    return {"epsilon": float(Fraction(epsilon_text)), "delta": float(Fraction(delta_text)),
            "accounting": accounting}


def _cost_dict(cost: Cost, zdelta: float = 0.0) -> dict[str, float]:
    """A charge as its audit record states it (ρ and δ' only under zCDP accounting)."""
    out = {"epsilon": cost.epsilon, "delta": cost.delta}
    if cost.rho:
        out.update(rho=cost.rho, zdelta=float(zdelta))
    return out


class Store:
    """The holder's persistent state in ``home/pets.db`` (created with the folder if needed).

    Safe to use from several threads, and from several processes on the same home: a
    second ``Store`` on the same home sees the same datasets, grants, spent budget and
    audit log.

    >>> store = Store("./pets-home")                              # doctest: +SKIP
    >>> store.set_grant("alice", "adult", "labour-stats", epsilon=1.0)   # doctest: +SKIP
    >>> store.charge("alice", "adult", "labour-stats", Cost(0.25),       # doctest: +SKIP
    ...              {"kind": "dp", "plan": {...}, "protection": {...}})
    1
    >>> store.remaining("alice", "adult", "labour-stats")         # doctest: +SKIP
    Cost(epsilon=0.75, delta=0.0)
    """

    def __init__(self, home: str | Path, *, audit_key: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "pets.db"
        #: where the audit key is: ``audit_key``, ``$PETS_AUDIT_KEY`` or ``home/audit-key.pem``
        self.audit_key_path = key_path(self.home, audit_key)
        self._key: AuditKey | None = None
        self._key_lock = threading.Lock()
        self._local = threading.local()
        self._salt: str | None = None  # the API keys' salt (this store's id), read once
        # writers queue on this lock, not in SQLite's sleeping busy handler (locks.py)
        self._writer = WriterLock.of(self.path)
        self._init_db()

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opened once per thread and process, then reused)."""
        local = self._local
        con = getattr(local, "con", None)
        if con is None or getattr(local, "pid", None) != os.getpid():
            con = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True
            )
            con.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA synchronous = FULL")
            local.con, local.pid = con, os.getpid()
        try:
            yield con
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``; commit on success, roll back on error.

        After the commit, and before returning to the caller, the head file moves to the
        newest record this transaction appended (see :mod:`pets.store.keys`). It is
        written after the writers' lock is let go, so the next writer's transaction and
        this flush overlap: the head only ever names a committed record (it moves after
        the commit) and only moves forward (a later record's writer may move it first,
        and this one then leaves it), so what the next writer checks against is the same."""
        with self._connect() as con:
            with self._writer.held():
                self._local.pending_head = None
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                except BaseException:
                    self._local.pending_head = None
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
                pending, self._local.pending_head = self._local.pending_head, None
                con.execute("COMMIT")
            if pending is not None:
                key, store_id, rid, rhash = pending
                HeadFile(key.head_path).write(store_id, rid, rhash, key.path)

    # ------------------------------------------------------------------ the audit key

    def audit_key(self, *, create: bool = False) -> AuditKey:
        """The audit key (loaded once): :class:`AuditError` if it is missing, unless
        ``create`` (a new or migrating store)."""
        with self._key_lock:
            if self._key is None:
                path = self.audit_key_path
                self._key = AuditKey.load_or_create(path) if create else AuditKey.load(path)
            return self._key

    def _signing_key(self, con: sqlite3.Connection) -> tuple[AuditKey, str]:
        """The private audit key and this store's id, after checking the key is the one
        this store is signed with."""
        meta = con.execute("SELECT store_id, key_fingerprint FROM audit_meta WHERE one = 1").fetchone()
        if meta is None:
            raise AuditError(
                "the audit metadata (which key signs this store) is missing, so the log "
                "cannot be extended; run audit().verify()"
            )
        key = self.audit_key()
        if not key.can_sign:
            key.sign("", "")  # raises: a public key cannot sign
        if key.fingerprint != meta[1]:
            raise AuditError(
                f"the audit key {str(key.path)!r} is not the key this store is signed with "
                f"(fingerprint {key.fingerprint[:16]}…, the store says {str(meta[1])[:16]}…); "
                "point audit_key= (or PETS_AUDIT_KEY) at this home's key"
            )
        return key, str(meta[0])

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection inside a read transaction: every query sees one snapshot."""
        with self._connect() as con:
            con.execute("BEGIN")
            try:
                yield con
            finally:
                if con.in_transaction:
                    con.execute("COMMIT")

    def _init_db(self) -> None:
        with self._connect() as con:
            deadline = time.monotonic() + _BUSY_TIMEOUT_S
            while True:  # switching a fresh file to WAL needs a moment alone with it
                try:
                    mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            if str(mode).lower() != "wal":
                raise DataError(
                    f"cannot use write-ahead logging for {self.path} (journal mode {mode!r}); "
                    "put the pets home on a local file system"
                )
        with self._connect() as con:
            row = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            version = None
            if row is not None:
                version = con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version is None or version < SCHEMA_VERSION:
            # a new or older store is (re)anchored: it needs the private key, made if absent
            key = self.audit_key(create=True)
            if not key.can_sign:
                key.sign("", "")  # raises: a public key cannot sign
        anchored: tuple[AuditKey, str] | None = None
        with self._write() as con:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = con.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = row[0]
            if version is not None and version > SCHEMA_VERSION:
                raise DataError(
                    f"{self.path} was written by a newer pets (store schema {version}, this "
                    f"pets reads up to {SCHEMA_VERSION}); upgrade pets to open it"
                )
            if version is None or version < SCHEMA_VERSION:
                key = self.audit_key(create=True)
                self._refuse_replaced_store(key, fresh=version is None)
            if version is None:  # a fresh store
                for sql in _TABLES:
                    con.execute(sql)
                con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                con.execute(
                    "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, 0, ?)",
                    (GENESIS_HASH,),
                )
                store_id = secrets.token_hex(16)
                con.execute(
                    "INSERT INTO audit_meta (one, store_id, key_fingerprint, unsigned_through) "
                    "VALUES (1, ?, ?, 0)", (store_id, key.fingerprint))
                anchored = (key, store_id)
            elif version < SCHEMA_VERSION:
                if version == 1:
                    for sql in _MIGRATE_1_2:
                        con.execute(sql)
                self._local.anchoring = True
                try:
                    anchored = (key, self._migrate_to_4(con, key, version))
                finally:
                    self._local.anchoring = False
                con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            # the API keys' salt: 128 random bits made once per store (an older store gets
            # one now; the keys it issued before keep their unsalted hashes and still work)
            con.execute("CREATE TABLE IF NOT EXISTS api_key_salt "
                        "(one INTEGER PRIMARY KEY CHECK (one = 1), salt TEXT NOT NULL)")
            con.execute("INSERT OR IGNORE INTO api_key_salt (one, salt) VALUES (1, ?)",
                        (secrets.token_hex(16),))
        if anchored is not None:
            key, store_id = anchored
            last = con.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
            HeadFile(key.head_path).write(store_id, int(last[0]), str(last[1]), key.path,
                                          force=True)

    def _refuse_replaced_store(self, key: AuditKey, fresh: bool) -> None:
        """A new (or pre-signing) database where this key's head file already names signed
        records: the store was deleted, or replaced by an older copy — refuse rather than
        start a new log over the old one."""
        head = HeadFile(key.head_path).read()
        if head is None or head["id"] == 0:
            return
        what = "is new" if fresh else "is from before audit signing (an older copy?)"
        raise AuditError(
            f"the audit head file {str(key.head_path)!r} says this key has signed "
            f"{head['id']} audit records, but {str(self.path)!r} {what}: the store was "
            "deleted or replaced. Restore it; to start a new store, give it a new audit key "
            "(or remove that head file)",
            record=int(head["id"]),
        )

    def _migrate_to_4(self, con: sqlite3.Connection, key: AuditKey, version: int) -> str:
        """Schema 2/3 → 4, in the caller's transaction: records are signed from now on.

        The records already in the log stay unsigned (``unsigned_through``); a signed
        ``migrate`` record follows them, so from then on they cannot be changed unnoticed
        — but what happened to them before the upgrade cannot be told. The migrate
        record keeps a digest of each recalled answer; then grants (from schema 2),
        datasets and API keys already in place are adopted as signed records."""
        con.execute("ALTER TABLE datasets ADD COLUMN policy_version TEXT")
        for sql in _TABLES[-2:]:
            con.execute(sql)
        last = con.execute("SELECT last_id FROM audit_head WHERE one = 1").fetchone()
        if last is None:
            raise AuditError("the audit head is missing, so the store cannot be upgraded; "
                             "run audit().verify() with the older pets")
        store_id = secrets.token_hex(16)
        con.execute(
            "INSERT INTO audit_meta (one, store_id, key_fingerprint, unsigned_through) "
            "VALUES (1, ?, ?, ?)", (store_id, key.fingerprint, int(last[0])))
        answers = {str(aid): answer_digest(k, a) for k, aid, a in
                   con.execute("SELECT key, audit_id, answer FROM answers ORDER BY audit_id")}
        self._record_holder_act(con, "migrate", None, None, None, from_schema=version,
                                to_schema=SCHEMA_VERSION, unsigned_through=int(last[0]),
                                answers=answers)
        if version <= 2:  # grants were not audited before schema 3
            self._adopt_grants(con)
        for name, text in con.execute("SELECT name, record FROM datasets ORDER BY name").fetchall():
            pv = _policy_version_of(text)
            con.execute("UPDATE datasets SET policy_version = ? WHERE name = ?", (pv, name))
            self._record_holder_act(con, "register", None, name, None, replaced=False,
                                    policy_version=pv, record_sha256=_text_digest(text),
                                    migrated=True)
        keys: dict[str, tuple[list[str], list[str]]] = {}
        for key_hash, analyst, revoked in con.execute(
                "SELECT key_hash, analyst, revoked FROM api_keys ORDER BY created, key_hash"):
            live, dead = keys.setdefault(analyst, ([], []))
            (dead if revoked is not None else live).append(api_key_id(key_hash))
        for analyst in sorted(keys):
            live, dead = keys[analyst]
            self._record_holder_act(con, "key", analyst, None, None, action="adopted",
                                    keys=len(live) + len(dead), key_ids=live,
                                    revoked_ids=dead, migrated=True)
        return store_id

    def _adopt_grants(self, con: sqlite3.Connection) -> None:
        """Schema 2 → 3: a grant record (``migrated: true``, ``previous: None``) for each
        grant in force that no grant or revoke record mentions — grants set before grant
        changes were audited — so that from now on the log accounts for every grant (see
        AuditLog.verify). A grant the log does mention is left alone: if the table
        disagrees with the log, verification reports it rather than the upgrade hiding it."""
        seen = {
            tuple(r) for r in con.execute(
                "SELECT DISTINCT analyst, dataset, purpose FROM audit "
                "WHERE kind IN ('grant', 'revoke')"
            )
        }
        rows = con.execute(
            "SELECT analyst, dataset, purpose, epsilon_text, delta_text, accounting, updated "
            "FROM grants ORDER BY analyst, dataset, purpose"
        ).fetchall()
        for analyst, dataset, purpose, eps, dlt, acc, updated in rows:
            if (analyst, dataset, purpose) in seen:
                continue
            self._record_holder_act(con, "grant", analyst, dataset, purpose,
                                    **_grant_terms(eps, dlt, acc), previous=None,
                                    migrated=True, set_at=updated)

    # ------------------------------------------------------------------ datasets

    def put_dataset(self, name: str, record: dict[str, Any], replace: bool = False) -> None:
        """Register dataset ``name`` with ``record`` (a JSON-able dict: source, policy ...).

        Raises :class:`pets.QueryError` if ``name`` is already registered and ``replace``
        is false.

        Every registration and replacement is audited in the same transaction: a record of
        kind ``"register"`` (status ``"recorded"``, dataset ``name``) with ``replaced``,
        the ``policy_version`` (:func:`pets.store.audit.policy_version` of
        ``record["policy"]``, None without one) and ``record_sha256`` (of the stored
        record), so verification can tell a dataset or policy changed outside pets.
        """
        _name(name, "dataset name")
        if not isinstance(record, Mapping):
            raise InternalError(f"dataset record must be a dict, got {type(record).__name__}")
        try:
            text = canonical_json(dict(record))
        except (TypeError, ValueError) as e:
            raise InternalError(f"dataset record for {name!r} is not JSON-serialisable: {e}") from None
        pv = policy_version(record["policy"]) if "policy" in record else None
        now = _now()
        with self._write() as con:
            exists = con.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise QueryError(
                    f"dataset {name!r} is already registered; pass replace=True to replace it"
                )
            if exists:
                con.execute(
                    "UPDATE datasets SET record = ?, updated = ?, policy_version = ? "
                    "WHERE name = ?", (text, now, pv, name)
                )
            else:
                con.execute(
                    "INSERT INTO datasets (name, record, created, updated, policy_version) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, text, now, now, pv),
                )
            self._record_holder_act(con, "register", None, name, None, replaced=bool(exists),
                                    policy_version=pv, record_sha256=_text_digest(text))

    def get_dataset(self, name: str) -> dict[str, Any] | None:
        """The record of dataset ``name``, or ``None`` if it is not registered."""
        with self._read() as con:
            row = con.execute("SELECT record FROM datasets WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def dataset_and_budget(self, name: str, analyst: str,
                           purpose: str) -> tuple[dict[str, Any] | None, Budget | None]:
        """:meth:`get_dataset` and :meth:`budget_state` in one read (one snapshot)."""
        with self._read() as con:
            row = con.execute("SELECT record FROM datasets WHERE name = ?", (name,)).fetchone()
            budget = None if row is None else self._budget_of(con, analyst, name, purpose)
        return (None if row is None else json.loads(row[0])), budget

    def list_datasets(self) -> list[str]:
        """Names of the registered datasets, sorted."""
        with self._read() as con:
            return [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name")]

    # ------------------------------------------------------------------ grants

    def set_grant(
        self, analyst: str, dataset: str, purpose: str, epsilon: float, delta: float = 0.0,
        accounting: str = "basic",
    ) -> None:
        """Set the *total* budget of ``analyst`` on ``dataset`` for ``purpose``, composed
        by ``accounting`` (``"basic"`` or ``"zcdp"``, see :mod:`pets.dp.accountant`).

        Replaces an earlier grant of the same triple; what was already spent stays spent.
        The accounting cannot change once budget was spent under the grant.

        A grant that changes something is audited in the same transaction: a record of
        kind ``"grant"`` (status ``"recorded"``) with the new ``epsilon``, ``delta`` and
        ``accounting`` and the ``previous`` ones (``None`` for a new grant). Setting the
        terms a grant already has writes nothing.
        """
        _name(analyst, "analyst")
        _name(dataset, "dataset")
        _name(purpose, "purpose")
        eps = _budget(epsilon, "epsilon")
        dlt = _budget(delta, "delta", upper=1.0)
        acc = check_accounting(accounting, dlt)
        with self._write() as con:
            old = con.execute(
                "SELECT epsilon_text, delta_text, accounting FROM grants "
                "WHERE analyst = ? AND dataset = ? AND purpose = ?",
                (analyst, dataset, purpose),
            ).fetchone()
            was = old[2] if old is not None else None
            if was is None:
                row = con.execute(
                    "SELECT COUNT(*), MAX(rho_text != '0.0') FROM ledger "
                    "WHERE analyst = ? AND dataset = ? AND purpose = ?",
                    (analyst, dataset, purpose),
                ).fetchone()
                was = None if not row[0] else ("zcdp" if row[1] else "basic")
            if was is not None and was != acc and self._has_charges(con, analyst, dataset, purpose):
                raise QueryError(
                    f"the grant of {analyst} on {dataset} (purpose {purpose}) has spent budget "
                    f"under accounting={was!r}; it cannot switch to {acc!r} (the composition "
                    "would not cover the releases already made). Keep accounting="
                    f"{was!r}, or grant under a new purpose"
                )
            terms = {"epsilon": eps, "delta": dlt, "accounting": acc}
            previous = None if old is None else _grant_terms(*old)
            if previous == terms:
                return  # nothing changes, nothing to record
            con.execute(
                "INSERT INTO grants (analyst, dataset, purpose, epsilon, epsilon_text, delta, "
                "delta_text, updated, accounting) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (analyst, dataset, purpose) DO UPDATE SET "
                "epsilon = excluded.epsilon, epsilon_text = excluded.epsilon_text, "
                "delta = excluded.delta, delta_text = excluded.delta_text, "
                "updated = excluded.updated, accounting = excluded.accounting",
                (analyst, dataset, purpose, eps, repr(eps), dlt, repr(dlt), _now(), acc),
            )
            self._record_holder_act(con, "grant", analyst, dataset, purpose,
                                    **terms, previous=previous)

    def _record_holder_act(self, con: sqlite3.Connection, kind: str, analyst: str,
                           dataset: str | None, purpose: str | None, **fields: Any) -> int:
        """Inside the caller's write: the audit record of a grant, revocation or key act.
        The holder made it (pets has no identities of its own for the holder's staff)."""
        rec, body = self._prepare(
            {"kind": kind, "status": "recorded", "analyst": analyst, "dataset": dataset,
             "purpose": purpose, "by": getattr(self._local, "acting", None) or "holder",
             **fields},
            _holder=True,
        )
        return self._append(con, rec, body)

    @contextmanager
    def acting_as(self, account: str) -> Iterator[None]:
        """Within this block (in this thread), the holder's acts name ``account`` as their
        ``by`` (e.g. a console account) instead of ``"holder"``."""
        before = getattr(self._local, "acting", None)
        self._local.acting = _name(account, "holder account")
        try:
            yield
        finally:
            self._local.acting = before

    def record_console_act(self, account: str, action: str, **fields: Any) -> int:
        """An audit record (kind ``"console"``, status ``"recorded"``) of an act of a
        console account that changes nothing else (signing in or out, verifying the log,
        adding an account), naming the account."""
        with self.acting_as(account), self._write() as con:
            return self._record_holder_act(con, "console", None, None, None, action=action,
                                           **fields)

    @staticmethod
    def _has_charges(con: sqlite3.Connection, analyst: str, dataset: str, purpose: str) -> bool:
        return con.execute(
            "SELECT 1 FROM ledger WHERE analyst = ? AND dataset = ? AND purpose = ? LIMIT 1",
            (analyst, dataset, purpose),
        ).fetchone() is not None

    def budget(self, analyst: str, dataset: str, purpose: str) -> tuple[Cost, Cost] | None:
        """``(granted, remaining)`` in one read, or ``None`` if there is no grant."""
        b = self.budget_state(analyst, dataset, purpose)
        return None if b is None else (b.granted(), b.remaining())

    def budget_state(self, analyst: str, dataset: str, purpose: str) -> Budget | None:
        """The grant with its accounting and exact spent totals, or ``None``."""
        with self._read() as con:
            return self._budget_of(con, analyst, dataset, purpose)

    def get_grant(self, analyst: str, dataset: str, purpose: str) -> Cost | None:
        """The total budget granted, or ``None`` if there is no grant."""
        with self._read() as con:
            g = self._grant_exact(con, analyst, dataset, purpose)
        return None if g is None else Cost(float(g[0]), float(g[1]))

    def list_grants(self, analyst: str | None = None) -> list[dict[str, Any]]:
        """Every grant (or ``analyst``'s), with what was spent and what is left.

        Each dict has ``analyst, dataset, purpose, accounting, epsilon, delta,
        spent_epsilon, spent_delta, remaining_epsilon, remaining_delta`` (the spent and
        remaining (ε, δ) under the grant's accounting) and, for zCDP grants, ``rho,
        spent_rho, remaining_rho``.
        """
        where, args = ("WHERE analyst = ?", (analyst,)) if analyst is not None else ("", ())
        with self._read() as con:
            grants = con.execute(
                "SELECT analyst, dataset, purpose, epsilon_text, delta_text, accounting "
                f"FROM grants {where} ORDER BY analyst, dataset, purpose",
                args,
            ).fetchall()
            # the running totals the charges use (audit().verify() checks them against
            # the ledger): one row per grant, not a sum over every release
            spent: dict[tuple[str, str, str], list[Fraction]] = {
                (a, d, p): [Fraction(t) for t in texts]
                for a, d, p, *texts in con.execute(
                    "SELECT analyst, dataset, purpose, epsilon_text, delta_text, rho_text, "
                    f"zdelta_text FROM spent {where}",
                    args,
                )
            }
        out = []
        for a, d, p, e, dl, acc in grants:
            se, sd, sr, sz = spent.get((a, d, p), [Fraction(0)] * 4)
            b = Budget(acc, Fraction(e), Fraction(dl), se, sd, sr, sz)
            sp, left = b.spent(), b.remaining()
            row: dict[str, Any] = {
                "analyst": a,
                "dataset": d,
                "purpose": p,
                "accounting": acc,
                "epsilon": float(Fraction(e)),
                "delta": float(Fraction(dl)),
                "spent_epsilon": sp.epsilon,
                "spent_delta": sp.delta,
                "remaining_epsilon": left.epsilon,
                "remaining_delta": left.delta,
            }
            if acc == "zcdp":
                row.update(rho=float(b.rho), spent_rho=float(sr), remaining_rho=left.rho)
            out.append(row)
        return out

    def revoke(self, analyst: str, dataset: str, purpose: str) -> bool:
        """Remove the grant; ``True`` if there was one. Spent budget stays on the ledger.

        A revocation is audited in the same transaction (kind ``"revoke"``, status
        ``"recorded"``, with the ``previous`` grant); revoking no grant writes nothing.
        """
        with self._write() as con:
            old = con.execute(
                "SELECT epsilon_text, delta_text, accounting FROM grants "
                "WHERE analyst = ? AND dataset = ? AND purpose = ?",
                (analyst, dataset, purpose),
            ).fetchone()
            if old is None:
                return False
            con.execute(
                "DELETE FROM grants WHERE analyst = ? AND dataset = ? AND purpose = ?",
                (analyst, dataset, purpose),
            )
            self._record_holder_act(con, "revoke", analyst, dataset, purpose,
                                    previous=_grant_terms(*old))
            return True

    # ------------------------------------------------------------------ ledger

    @staticmethod
    def _grant_exact(
        con: sqlite3.Connection, analyst: str, dataset: str, purpose: str
    ) -> tuple[Fraction, Fraction] | None:
        row = con.execute(
            "SELECT epsilon_text, delta_text FROM grants "
            "WHERE analyst = ? AND dataset = ? AND purpose = ?",
            (analyst, dataset, purpose),
        ).fetchone()
        return None if row is None else (_fraction(row[0]), _fraction(row[1]))

    @staticmethod
    def _spent_exact(
        con: sqlite3.Connection, analyst: str, dataset: str, purpose: str
    ) -> tuple[Fraction, Fraction, Fraction, Fraction]:
        """Running totals (ε, δ, ρ, δ') charged to the triple."""
        row = con.execute(
            "SELECT epsilon_text, delta_text, rho_text, zdelta_text FROM spent "
            "WHERE analyst = ? AND dataset = ? AND purpose = ?",
            (analyst, dataset, purpose),
        ).fetchone()
        if row is None:
            return Fraction(0), Fraction(0), Fraction(0), Fraction(0)
        return _fraction(row[0]), _fraction(row[1]), _fraction(row[2]), _fraction(row[3])

    @classmethod
    def _budget_of(
        cls, con: sqlite3.Connection, analyst: str, dataset: str, purpose: str
    ) -> Budget | None:
        row = con.execute(
            "SELECT epsilon_text, delta_text, accounting FROM grants "
            "WHERE analyst = ? AND dataset = ? AND purpose = ?",
            (analyst, dataset, purpose),
        ).fetchone()
        if row is None:
            return None
        return Budget(row[2], _fraction(row[0]), _fraction(row[1]),
                      *cls._spent_exact(con, analyst, dataset, purpose))

    def spent(self, analyst: str, dataset: str, purpose: str) -> Cost:
        """The guarantee of everything ``analyst`` released from ``dataset`` for
        ``purpose``, under the grant's accounting (without a grant: the summed charges)."""
        with self._read() as con:
            b = self._budget_of(con, analyst, dataset, purpose)
            if b is None:
                e, d, _, _ = self._spent_exact(con, analyst, dataset, purpose)
                return Cost(float(e), float(d))
        return b.spent()

    def remaining(self, analyst: str, dataset: str, purpose: str) -> Cost:
        """Grant minus spent, never below zero; ``Cost(0, 0)`` without a grant."""
        with self._read() as con:
            b = self._budget_of(con, analyst, dataset, purpose)
        return Cost() if b is None else b.remaining()

    def ledger(
        self, analyst: str | None = None, dataset: str | None = None, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        """Ledger rows (``audit_id, analyst, dataset, purpose, epsilon, delta``), oldest first."""
        where, args = [], []
        for col, v in (("analyst", analyst), ("dataset", dataset), ("purpose", purpose)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = ("SELECT audit_id, analyst, dataset, purpose, epsilon_text, delta_text, rho_text "
               "FROM ledger")
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as con:
            rows = con.execute(sql + " ORDER BY audit_id", args).fetchall()
        return [
            {
                "audit_id": r[0],
                "analyst": r[1],
                "dataset": r[2],
                "purpose": r[3],
                "epsilon": float(r[4]),
                "delta": float(r[5]),
                "rho": float(r[6]),
            }
            for r in rows
        ]

    def charge(
        self, analyst: str, dataset: str, purpose: str, cost: Cost, record: dict[str, Any],
        zdelta: float | None = None,
    ) -> int:
        """Debit ``cost`` and append its audit record in one transaction; return the audit id.

        ``record`` describes the release (``kind`` and whatever the caller wants audited:
        plan, protection ... never raw values). ``analyst``, ``dataset``, ``purpose``,
        ``status="released"`` and ``cost`` are filled in. Call this *before* revealing
        the result.

        Under a zCDP grant the charge is ``cost.rho`` (ε²/2 when 0: a pure or (ε, δ)-DP
        release) and the approximate-zCDP ``zdelta`` (``cost.delta`` when None); see
        :mod:`pets.dp.accountant`.

        Raises :class:`pets.PolicyError` (rule ``"no_grant"``) without a grant and
        :class:`pets.BudgetExceeded` if ``cost`` is more than what is left; in both cases
        nothing is written.
        """
        rec = self._prepare_charge(analyst, dataset, purpose, cost, record)

        with self._write() as con:
            return self._debit(con, analyst, dataset, purpose, cost, zdelta, rec)[0]

    def _debit(self, con: sqlite3.Connection, analyst: str, dataset: str, purpose: str,
               cost: Cost, zdelta: float | None, rec: dict[str, Any],
               stored: dict[str, Any] | None = None) -> tuple[int, Cost]:
        """Inside a write transaction: check the grant and budget, append the audit record,
        insert the ledger row and update the running totals. Raises without writing.
        Returns the audit id and the cost charged (under the grant's accounting)."""
        b = self._budget_of(con, analyst, dataset, purpose)
        if b is None:
            purposes = [
                r[0]
                for r in con.execute(
                    "SELECT purpose FROM grants WHERE analyst = ? AND dataset = ? "
                    "ORDER BY purpose",
                    (analyst, dataset),
                )
            ]
            raise PolicyError(
                f"analyst {analyst!r} has no grant for dataset {dataset!r} and purpose "
                f"{purpose!r}; the holder can grant one with holder.grant(...)",
                rule="no_grant",
                allowed=purposes,
            )
        charged, zd = charged_cost(b.accounting, cost, zdelta)
        if not b.fits(charged, zd):
            asked = (f"epsilon={_num(cost.epsilon)}, delta={_num(cost.delta)}"
                     if b.accounting == "basic" else
                     f"rho={charged.rho:.6g} (epsilon={_num(cost.epsilon)}, delta={_num(cost.delta)})")
            raise BudgetExceeded(
                f"this release asks {asked} but only {b.describe_left()} is left for "
                f"{analyst} on {dataset} (purpose {purpose})",
                asked=charged,
                left=b.remaining(),
            )
        given = rec.get("cost", None)
        if isinstance(given, Cost):
            given = _cost_dict(given)
        if given is not None and given != _cost_dict(charged, zd) and given != _cost_dict(cost):
            raise InternalError("audit record cost does not match the charged cost")
        rec = dict(rec, cost=_cost_dict(charged, zd))
        rec, body = self._prepare(rec, _charged=True, _stored=stored)
        audit_id = self._append(con, rec, body)
        se, sd, sr, sz = b.spent_epsilon, b.spent_delta, b.spent_rho, b.spent_zdelta
        con.execute(
            "INSERT INTO spent (analyst, dataset, purpose, epsilon_text, delta_text, rho_text, "
            "zdelta_text) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (analyst, dataset, purpose) "
            "DO UPDATE SET epsilon_text = excluded.epsilon_text, delta_text = excluded.delta_text, "
            "rho_text = excluded.rho_text, zdelta_text = excluded.zdelta_text",
            (analyst, dataset, purpose, str(se + exact(charged.epsilon)),
             str(sd + exact(charged.delta)), str(sr + exact(charged.rho)), str(sz + exact(zd))),
        )
        try:
            con.execute(
                "INSERT INTO ledger (audit_id, analyst, dataset, purpose, epsilon, "
                "epsilon_text, delta, delta_text, rho_text, zdelta_text) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    audit_id,
                    analyst,
                    dataset,
                    purpose,
                    charged.epsilon,
                    repr(charged.epsilon),
                    charged.delta,
                    repr(charged.delta),
                    repr(charged.rho),
                    repr(float(zd)),
                ),
            )
        except sqlite3.IntegrityError:
            raise AuditError(
                f"the ledger already has a charge for audit record {audit_id}; the audit "
                "log was altered outside pets (run audit().verify())",
                record=audit_id,
            ) from None
        return audit_id, charged

    def _prepare_charge(self, analyst: str, dataset: str, purpose: str, cost: Cost,
                        record: dict[str, Any]) -> dict[str, Any]:
        _name(analyst, "analyst")
        _name(dataset, "dataset")
        _name(purpose, "purpose")
        if not isinstance(cost, Cost):
            raise InternalError(f"charge() needs a pets.Cost, got {type(cost).__name__}")
        rec = dict(record) if isinstance(record, Mapping) else record
        if not isinstance(rec, dict):
            raise InternalError(f"audit record must be a dict, got {type(record).__name__}")
        for key, value in (("analyst", analyst), ("dataset", dataset), ("purpose", purpose)):
            if rec.setdefault(key, value) != value:
                raise InternalError(
                    f"audit record {key} {rec[key]!r} does not match the charge's {value!r}"
                )
        rec.setdefault("status", "released")
        if rec["status"] != "released":
            raise InternalError("a charged audit record must have status 'released'")
        self._prepare(dict(rec, cost=_cost_dict(cost)), _charged=True, _encode=False)  # early checks
        return rec

    def charge_answer(
        self, analyst: str, dataset: str, purpose: str, cost: Cost, record: dict[str, Any],
        key: str, answer: str, zdelta: float | None = None,
    ) -> tuple[int, str, int | None, Cost]:
        """Charge and record a release and keep its ``answer`` under ``key`` — unless an
        answer is already kept under ``key``: then record a repeat (no charge) and return
        the kept answer. One transaction, so concurrent identical queries get one answer.
        Returns ``(audit_id, answer, repeat_of, charged)``: ``repeat_of`` is the audit id
        of the first answer when this was a repeat, else None; ``charged`` the cost spent.

        The charged record carries ``answer_digest`` (:func:`pets.store.audit.answer_digest`
        of ``key`` and ``answer``): verification checks the kept answer against it."""
        rec = self._prepare_charge(analyst, dataset, purpose, cost, record)
        if not isinstance(key, str) or not isinstance(answer, str):
            raise InternalError("charge_answer() needs the answer's key and text as strings")
        with self._write() as con:
            row = con.execute("SELECT audit_id, answer FROM answers WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return self._append_repeat(con, rec, row[0]), row[1], int(row[0]), Cost()
            audit_id, charged = self._debit(con, analyst, dataset, purpose, cost, zdelta, rec,
                                            {"answer_digest": answer_digest(key, answer)})
            con.execute("INSERT INTO answers (key, audit_id, answer) VALUES (?, ?, ?)",
                        (key, audit_id, answer))
            return audit_id, answer, None, charged

    def recall_answer(self, key: str, record: dict[str, Any]) -> tuple[int, str, int] | None:
        """The answer kept under ``key``, recording the repeat in the audit log:
        ``(audit_id of the repeat, answer, audit_id of the first answer)``; or None."""
        # most queries are new: look without taking the write lock first (an answer once
        # kept is never removed, so a miss here is a miss below)
        with self._read() as con:
            if con.execute("SELECT 1 FROM answers WHERE key = ?", (key,)).fetchone() is None:
                return None
        with self._write() as con:
            row = con.execute("SELECT audit_id, answer FROM answers WHERE key = ?", (key,)).fetchone()
            if row is None:  # pragma: no cover - answers are never deleted
                return None
            rec = {k: v for k, v in record.items() if k != "cost"}
            return self._append_repeat(con, rec, row[0]), row[1], int(row[0])

    def _append_repeat(self, con: sqlite3.Connection, rec: dict[str, Any], first_id: int) -> int:
        rep = {k: v for k, v in rec.items() if k not in ("cost", "charged")}
        rep.update(status="released", repeat_of=int(first_id), cost={"epsilon": 0.0, "delta": 0.0})
        rep, body = self._prepare(rep)
        return self._append(con, rep, body)

    # ------------------------------------------------------------------ audit

    def record(self, record: dict[str, Any]) -> int:
        """Append an audit record that spends nothing (a refusal, a k-anonymous extract ...).

        ``record`` needs ``kind`` and ``status`` (``"released"`` or ``"refused"``) and
        usually ``analyst``, ``dataset``, ``purpose``. Returns the audit id. (Status
        ``"recorded"`` — grants, revocations, keys — is written only by the methods that
        make those changes.)
        """
        rec, body = self._prepare(record)
        with self._write() as con:
            return self._append(con, rec, body)

    def record_counted(self, record: dict[str, Any], limit: int | None) -> int:
        """Append a released record of ``record["kind"]`` unless ``analyst`` already has
        ``limit`` such releases from ``dataset``: count and append in one transaction,
        so concurrent sessions cannot exceed the limit. Raises PolicyError (rule
        ``"max_extracts"``) when the limit is reached; nothing is written then."""
        rec, body = self._prepare({**record, "status": "released"})
        with self._write() as con:
            if limit is not None:
                (used,) = con.execute(
                    "SELECT COUNT(*) FROM audit WHERE analyst = ? AND dataset = ? AND kind = ? "
                    "AND status = 'released'",
                    (rec.get("analyst"), rec.get("dataset"), rec["kind"]),
                ).fetchone()
                if used >= limit:
                    raise PolicyError(
                        f"analyst {rec.get('analyst')!r} has had {used} of the {limit} "
                        f"{rec['kind']} extracts the policy allows from dataset "
                        f"{rec.get('dataset')!r}; extracts of the same people can be linked, "
                        "so their number is limited",
                        rule="max_extracts",
                        allowed=limit,
                    )
            return self._append(con, rec, body)

    def audit(self) -> AuditLog:
        """The audit log: ``verify()``, ``records()``, ``to_dataframe()``, ``len()``."""
        return AuditLog(self)

    def count_events(self, analyst: str, dataset: str, kind: str) -> int:
        """How many ``kind`` releases (status ``"released"``) ``analyst`` got from ``dataset``
        (grant, revoke and key records have status ``"recorded"``: never counted)."""
        with self._read() as con:
            row = con.execute(
                "SELECT COUNT(*) FROM audit WHERE analyst = ? AND dataset = ? AND kind = ? "
                "AND status = 'released'",
                (analyst, dataset, kind),
            ).fetchone()
        return int(row[0])

    @staticmethod
    def _prepare(record: Any, _charged: bool = False, _holder: bool = False,
                 _stored: dict[str, Any] | None = None,
                 _encode: bool = True) -> tuple[dict[str, Any], str]:
        """Check a caller's audit record and give its canonical JSON body (``_encode=False``:
        the checks only, the body ``""``; a record that cannot be encoded is refused
        when it is encoded, inside the write, which then writes nothing)."""
        if not isinstance(record, Mapping):
            raise InternalError(f"audit record must be a dict, got {type(record).__name__}")
        rec = dict(record)
        reserved = sorted(_RESERVED & rec.keys())
        if reserved:
            raise InternalError(f"audit record may not set {', '.join(reserved)} (the store does)")
        for key in ("analyst", "purpose", "dataset"):
            if not isinstance(rec.get(key), (str, type(None))):
                raise InternalError(f"audit record {key} must be a string or None")
        if not isinstance(rec.get("kind"), str) or not rec["kind"]:
            raise InternalError("audit record needs a 'kind' (e.g. 'dp', 'kanon', 'refused')")
        if rec.get("status") not in _STATUSES:
            raise InternalError("audit record needs a 'status': 'released' or 'refused' "
                                "('recorded' is for the holder's grant and key acts)")
        holder_act = rec["status"] == "recorded" or rec["kind"] in _HOLDER_KINDS
        if holder_act and not (_holder and rec["status"] == "recorded"
                               and rec["kind"] in _HOLDER_KINDS and not _charged):
            raise InternalError(
                "audit records of kind grant, revoke, key, register or migrate (status "
                "'recorded') are written only by the store's own methods"
            )
        if _charged:
            rec["charged"] = True
        if _stored:
            rec.update(_stored)
        if not _encode:
            return rec, ""
        try:
            body = canonical_json(rec)
            body.encode("utf-8")
        except (TypeError, ValueError, UnicodeError) as e:
            raise InternalError(f"audit record is not JSON-serialisable: {e}") from None
        return rec, body

    def _append(self, con: sqlite3.Connection, rec: dict[str, Any], body: str) -> int:
        """Append one record to the chain, sign it and move the head (inside the caller's
        write; the head file follows after the commit).

        Refuses (:class:`AuditError`, nothing written) when the log is behind or off its
        head file — rolled back or replaced — or the key is not this store's; and
        (:class:`pets.PolicyError`, rule ``"policy_changed"``) a record naming a
        ``policy_version`` that is no longer the dataset's registered policy."""
        head = con.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
        if head is None:
            raise AuditError(
                "the audit head is missing, so the log cannot be extended; run audit().verify()"
            )
        key, store_id = self._signing_key(con)
        last_id = int(head[0])
        if not getattr(self._local, "anchoring", False):
            self._check_head_file(con, key, store_id, last_id)
        if "policy_version" in rec and rec["kind"] != "register":
            self._check_policy_version(con, rec.get("dataset"), rec["policy_version"])
        new_id, prev_hash = last_id + 1, str(head[1])
        ts = _now()
        fields = (new_id, ts, rec.get("analyst"), rec.get("purpose"), rec.get("dataset"),
                  rec["kind"], rec["status"], body)  # fmt: skip
        h = record_hash(*fields, prev_hash)
        sig = key.sign(store_id, h)
        try:
            con.execute(
                "INSERT INTO audit (id, ts, analyst, purpose, dataset, kind, status, body, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*fields, prev_hash, h),
            )
        except sqlite3.IntegrityError:
            raise AuditError(
                f"audit record {new_id} already exists although the head says {new_id - 1}; "
                "the audit log was altered outside pets (run audit().verify())",
                record=new_id,
            ) from None
        con.execute("INSERT OR REPLACE INTO audit_sig (id, sig) VALUES (?, ?)", (new_id, sig))
        con.execute("UPDATE audit_head SET last_id = ?, last_hash = ? WHERE one = 1", (new_id, h))
        self._local.pending_head = (key, store_id, new_id, h)
        return new_id

    def _check_head_file(self, con: sqlite3.Connection, key: AuditKey, store_id: str,
                         last_id: int) -> None:
        """The log must reach the head file's record, with the same hash."""
        hf = HeadFile(key.head_path)
        cur = hf.read()
        where = f"the audit head file {str(hf.path)!r}"
        if cur is None:
            if last_id == 0:
                return
            raise AuditError(
                f"{where} is missing, so a rollback of the log could not be told; restore "
                "it (it lives next to the audit key), then run audit().verify()"
            )
        if cur["store"] != store_id:
            raise AuditError(
                f"{where} belongs to another pets store than {str(self.path)!r}: give each "
                "home its own audit key (audit_key= or PETS_AUDIT_KEY)"
            )
        if cur["id"] > last_id:
            raise AuditError(
                f"the audit log was rolled back or truncated: {where} names record "
                f"{cur['id']}, the log ends at {last_id}; nothing more is recorded until it "
                "is restored (run audit().verify())",
                record=last_id + 1,
            )
        if cur["id"] > 0:
            row = con.execute("SELECT hash FROM audit WHERE id = ?", (cur["id"],)).fetchone()
            if row is None or row[0] != cur["hash"]:
                raise AuditError(
                    f"audit record {cur['id']} does not match {where} (the log was rewritten); "
                    "nothing more is recorded until it is restored (run audit().verify())",
                    record=int(cur["id"]),
                )

    @staticmethod
    def _check_policy_version(con: sqlite3.Connection, dataset: Any, version: Any) -> None:
        row = None
        if isinstance(dataset, str):
            row = con.execute(
                "SELECT policy_version FROM datasets WHERE name = ?", (dataset,)).fetchone()
        if row is None or row[0] != version:
            raise PolicyError(
                f"the policy of dataset {dataset!r} was replaced while this request was "
                "being answered; nothing was spent or recorded — ask again",
                rule="policy_changed",
            )

    # ------------------------------------------------------------------ API keys

    # Issuing and revoking keys is audited (kind "key", status "recorded") in the same
    # transaction: the analyst, the action, how many keys and their key_ids (a one-way
    # id of the stored hash, see audit.api_key_id) — never a key or its hash.

    def _key_hashes(self, con: sqlite3.Connection, key: str) -> tuple[str, str]:
        """``key``'s stored hash as issued now (salted) and as issued before salting."""
        if self._salt is None:
            row = con.execute("SELECT salt FROM api_key_salt WHERE one = 1").fetchone()
            if row is None:
                raise AuditError("the API keys' salt is missing from the store (table "
                                 "api_key_salt); its keys cannot be checked")
            self._salt = str(row[0])
        return _salted_key_hash(self._salt, key), _key_hash(key)

    def issue_key(self, analyst: str) -> str:
        """A new API key for ``analyst`` (``pets_...``). Only a salted SHA-256 of it is
        stored: show it once."""
        _name(analyst, "analyst")
        key = "pets_" + secrets.token_urlsafe(32)
        with self._write() as con:
            stored, _ = self._key_hashes(con, key)
            con.execute(
                "INSERT INTO api_keys (key_hash, analyst, created) VALUES (?, ?, ?)",
                (stored, analyst, _now()),
            )
            self._record_holder_act(con, "key", analyst, None, None, action="issued", keys=1,
                                    key_ids=[api_key_id(stored)])
        return key

    def _live_key(self, con: sqlite3.Connection, key: str) -> tuple[str, str] | None:
        """``(analyst, stored hash)`` of a key neither unknown nor revoked, else None."""
        row = con.execute(
            "SELECT analyst, key_hash FROM api_keys WHERE key_hash IN (?, ?) AND revoked IS NULL",
            self._key_hashes(con, key),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def check_key(self, key: str) -> str:
        """The analyst a key belongs to; :class:`pets.AuthError` if unknown or revoked."""
        return self.check_key_id(key)[0]

    def check_key_id(self, key: str) -> tuple[str, str]:
        """``(analyst, key_id)`` of a key (the one-way id its audit records and the
        server's limits use); :class:`pets.AuthError` if unknown or revoked."""
        if isinstance(key, str) and key.startswith("pets_"):
            with self._read() as con:
                found = self._live_key(con, key)
            if found is not None:
                return found[0], api_key_id(found[1])
        raise AuthError("unknown or revoked API key")

    def revoke_key(self, key: str) -> None:
        """Revoke one API key; :class:`pets.AuthError` if it is unknown or already revoked."""
        if isinstance(key, str):
            with self._write() as con:
                found = self._live_key(con, key)
                if found is not None:
                    analyst, stored = found
                    con.execute("UPDATE api_keys SET revoked = ? WHERE key_hash = ?",
                                (_now(), stored))
                    self._record_holder_act(con, "key", analyst, None, None,
                                            action="revoked", keys=1,
                                            key_ids=[api_key_id(stored)])
                    return
        raise AuthError("unknown or revoked API key")

    def list_keys(self, analyst: str | None = None) -> list[dict[str, Any]]:
        """The API keys (``analyst``'s, or all), oldest first: ``key_id`` (the one-way id
        key audit records use), ``analyst``, ``created``, ``revoked`` (a time or None).
        Never a key or its hash."""
        where, args = ("WHERE analyst = ?", (analyst,)) if analyst is not None else ("", ())
        with self._read() as con:
            rows = con.execute(
                f"SELECT key_hash, analyst, created, revoked FROM api_keys {where} "
                "ORDER BY created, key_hash", args).fetchall()
        return [{"key_id": api_key_id(h), "analyst": a, "created": c, "revoked": r}
                for h, a, c, r in rows]

    def revoke_key_id(self, key_id: str) -> str:
        """Revoke the live key whose ``key_id`` (from :meth:`list_keys`) this is; returns
        its analyst. :class:`pets.AuthError` if no live key has that id."""
        with self._write() as con:
            for h, analyst in con.execute(
                    "SELECT key_hash, analyst FROM api_keys WHERE revoked IS NULL").fetchall():
                if api_key_id(h) == key_id:
                    con.execute("UPDATE api_keys SET revoked = ? WHERE key_hash = ?", (_now(), h))
                    self._record_holder_act(con, "key", str(analyst), None, None,
                                            action="revoked", keys=1, key_ids=[key_id])
                    return str(analyst)
        raise AuthError("no live API key has that id; `pets keys list` shows them")

    def revoke_keys(self, analyst: str) -> int:
        """Revoke every key of ``analyst``; returns how many were revoked (audited when
        more than none)."""
        with self._write() as con:
            ids = sorted(api_key_id(r[0]) for r in con.execute(
                "SELECT key_hash FROM api_keys WHERE analyst = ? AND revoked IS NULL", (analyst,)))
            cur = con.execute(
                "UPDATE api_keys SET revoked = ? WHERE analyst = ? AND revoked IS NULL",
                (_now(), analyst),
            )
            n = cur.rowcount
            if n > 0:
                self._record_holder_act(con, "key", analyst, None, None, action="revoked", keys=n,
                                        key_ids=ids)
            return n
