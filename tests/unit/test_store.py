"""pets.store: datasets, grants, the exact budget ledger, the hash-chained audit log, keys."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from pets.cost import Cost
from pets.errors import (
    AuditError,
    AuthError,
    BudgetExceeded,
    InternalError,
    PolicyError,
    QueryError,
)
from pets.store import GENESIS_HASH, Store, record_hash
from pets.store.sqlite import SCHEMA_VERSION

A, D, P = "alice", "adult", "p"


def dp_record(**extra: object) -> dict:
    return {"kind": "dp", "plan": {"source": "adult", "aggs": ["count"]}, **extra}


def refused_record(**extra: object) -> dict:
    return {
        "analyst": A,
        "dataset": D,
        "purpose": P,
        "kind": "refused",
        "status": "refused",
        "rule": "negative_list",
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def raw(store: Store) -> sqlite3.Connection:
    """A direct connection, as an attacker with file access would have."""
    return sqlite3.connect(store.path, isolation_level=None)


def downgrade(store: Store, version: int) -> sqlite3.Connection:
    """Make ``store`` look like one an older pets wrote (schema ``version`` < 4): no
    signatures, no audit key, no head file. Returns a raw connection to it."""
    con = raw(store)
    con.execute("DROP TABLE audit_sig")
    con.execute("DROP TABLE audit_meta")
    con.execute("ALTER TABLE datasets DROP COLUMN policy_version")
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    for f in store.home.glob("audit-key*"):
        f.unlink()
    return con


# ---------------------------------------------------------------- the file itself


def test_store_creates_its_home_and_a_wal_database_with_a_schema_version(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b"
    s = Store(home)
    assert s.path == home / "pets.db" and s.path.exists()
    con = raw(s)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_store_written_by_a_newer_pets_is_refused(store: Store) -> None:
    raw(store).execute("UPDATE schema_version SET version = 99")
    with pytest.raises(Exception, match="newer pets"):
        Store(store.home)


# ---------------------------------------------------------------- datasets


def test_dataset_records_round_trip_and_are_listed_sorted(store: Store) -> None:
    store.put_dataset("zeta", {"source": "z.csv"})
    store.put_dataset("adult", {"source": "adult.csv", "columns": ["age", "sex"]})
    assert store.get_dataset("adult") == {"source": "adult.csv", "columns": ["age", "sex"]}
    assert store.get_dataset("nope") is None
    assert store.list_datasets() == ["adult", "zeta"]


def test_registering_a_name_twice_needs_replace(store: Store) -> None:
    store.put_dataset("adult", {"v": 1})
    with pytest.raises(QueryError) as e:
        store.put_dataset("adult", {"v": 2})
    assert str(e.value) == "dataset 'adult' is already registered; pass replace=True to replace it"
    assert isinstance(e.value, ValueError)
    assert store.get_dataset("adult") == {"v": 1}
    store.put_dataset("adult", {"v": 2}, replace=True)
    assert store.get_dataset("adult") == {"v": 2}


# ---------------------------------------------------------------- grants and the ledger


def test_ten_charges_of_a_tenth_spend_a_budget_of_one_exactly(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)  # audit record 1
    ids = [store.charge(A, D, P, Cost(0.1), dp_record()) for _ in range(10)]
    assert ids == list(range(2, 12))
    assert store.spent(A, D, P) == Cost(1.0, 0.0)
    assert store.remaining(A, D, P) == Cost(0.0, 0.0)


def test_the_eleventh_tenth_raises_budget_exceeded_with_asked_and_left(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    for _ in range(10):
        store.charge(A, D, P, Cost(0.1), dp_record())
    with pytest.raises(BudgetExceeded) as e:
        store.charge(A, D, P, Cost(0.1), dp_record())
    assert e.value.asked == Cost(0.1, 0.0)
    assert e.value.left == Cost(0.0, 0.0)
    assert str(e.value) == (
        "this release asks epsilon=0.1, delta=0 but only epsilon=0, delta=0 "
        "is left for alice on adult (purpose p)"
    )


def test_budget_exceeded_names_what_is_left(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.charge(A, D, P, Cost(0.7), dp_record())
    with pytest.raises(BudgetExceeded) as e:
        store.charge(A, D, P, Cost(0.5), dp_record())
    assert str(e.value) == (
        "this release asks epsilon=0.5, delta=0 but only epsilon=0.3, delta=0 "
        "is left for alice on adult (purpose p)"
    )
    assert e.value.left == Cost(0.3, 0.0)
    assert store.charge(A, D, P, Cost(0.3), dp_record()) == 3  # exactly what is left
    assert [r["kind"] for r in store.audit().records()] == ["grant", "dp", "dp"]


def test_delta_is_budgeted_too(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=5.0, delta=1e-6)
    store.charge(A, D, P, Cost(0.1, 6e-7), dp_record())
    with pytest.raises(BudgetExceeded) as e:
        store.charge(A, D, P, Cost(0.1, 6e-7), dp_record())
    assert e.value.left == Cost(4.9, 4e-7)
    assert "asks epsilon=0.1, delta=6e-07 but only epsilon=4.9, delta=4e-07" in str(e.value)
    store.charge(A, D, P, Cost(0.1, 4e-7), dp_record())
    assert store.remaining(A, D, P) == Cost(4.8, 0.0)


def test_charging_without_a_grant_is_refused_by_rule_no_grant(store: Store) -> None:
    store.set_grant(A, D, "other", epsilon=1.0)
    with pytest.raises(PolicyError) as e:
        store.charge(A, D, P, Cost(0.1), dp_record())
    assert e.value.rule == "no_grant"
    assert e.value.allowed == ["other"]
    assert str(e.value) == (
        "analyst 'alice' has no grant for dataset 'adult' and purpose 'p'; "
        "the holder can grant one with holder.grant(...)"
    )


def test_a_refused_charge_writes_nothing(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=0.5)
    store.charge(A, D, P, Cost(0.4), dp_record())
    before = (len(store.ledger()), len(store.audit()), store.audit().head())
    with pytest.raises(BudgetExceeded):
        store.charge(A, D, P, Cost(0.2), dp_record())
    with pytest.raises(PolicyError):
        store.charge("bob", D, P, Cost(0.1), dp_record())
    assert (len(store.ledger()), len(store.audit()), store.audit().head()) == before
    assert store.spent(A, D, P) == Cost(0.4)
    assert store.audit().verify() is True


def test_remaining_is_grant_minus_spent_floored_at_zero(store: Store) -> None:
    assert store.remaining(A, D, P) == Cost(0, 0)
    assert store.get_grant(A, D, P) is None
    store.set_grant(A, D, P, epsilon=2.0, delta=1e-5)
    assert store.get_grant(A, D, P) == Cost(2.0, 1e-5)
    store.charge(A, D, P, Cost(1.5), dp_record())
    store.set_grant(A, D, P, epsilon=1.0)  # lowered below what was spent
    assert store.remaining(A, D, P) == Cost(0.0, 0.0)
    assert store.spent(A, D, P) == Cost(1.5)
    store.set_grant(A, D, P, epsilon=3.0)
    assert store.remaining(A, D, P) == Cost(1.5)


def test_revoking_a_grant_keeps_what_was_spent(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.charge(A, D, P, Cost(0.25), dp_record())
    assert store.revoke(A, D, P) is True
    assert store.revoke(A, D, P) is False
    assert store.get_grant(A, D, P) is None
    with pytest.raises(PolicyError):
        store.charge(A, D, P, Cost(0.1), dp_record())
    store.set_grant(A, D, P, epsilon=1.0)
    assert store.remaining(A, D, P) == Cost(0.75)


def test_list_grants_shows_budget_spent_and_left(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.set_grant("bob", D, P, epsilon=2.0, delta=1e-6)
    store.charge(A, D, P, Cost(0.3), dp_record())
    assert store.list_grants(A) == [
        {
            "analyst": A,
            "dataset": D,
            "accounting": "basic",
            "purpose": P,
            "epsilon": 1.0,
            "delta": 0.0,
            "spent_epsilon": 0.3,
            "spent_delta": 0.0,
            "remaining_epsilon": 0.7,
            "remaining_delta": 0.0,
        }
    ]
    assert [g["analyst"] for g in store.list_grants()] == [A, "bob"]


@pytest.mark.parametrize(
    "kwargs",
    [{"epsilon": -1.0}, {"epsilon": float("nan")}, {"epsilon": float("inf")},
     {"epsilon": True}, {"epsilon": "1"}, {"epsilon": 1.0, "delta": 2.0}],  # fmt: skip
)
def test_a_bad_grant_is_a_query_error_and_changes_nothing(store: Store, kwargs: dict) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    before = (len(store.audit()), store.audit().head())
    with pytest.raises(QueryError):
        store.set_grant(A, D, P, **kwargs)
    assert store.get_grant(A, D, P) == Cost(1.0)
    assert (len(store.audit()), store.audit().head()) == before  # no grant record either


def test_the_charged_audit_record_carries_the_cost_and_the_callers_fields(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    aid = store.charge(A, D, P, Cost(0.25, 0.0), dp_record(protection={"dp": {"epsilon": 0.25}}))
    (rec,) = store.audit().records(status="released")
    assert rec["id"] == aid
    assert (rec["analyst"], rec["dataset"], rec["purpose"]) == (A, D, P)
    assert (rec["kind"], rec["status"]) == ("dp", "released")
    assert rec["cost"] == {"epsilon": 0.25, "delta": 0.0}
    assert rec["plan"] == {"source": "adult", "aggs": ["count"]}
    assert rec["protection"] == {"dp": {"epsilon": 0.25}}
    assert rec["ts"].endswith("+00:00")
    assert store.ledger() == [
        {"audit_id": aid, "analyst": A, "dataset": D, "purpose": P, "epsilon": 0.25, "delta": 0.0,
         "rho": 0.0}
    ]


def test_a_charge_record_that_contradicts_the_charge_is_a_bug(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    assert len(store.audit()) == 1  # the grant
    with pytest.raises(InternalError):
        store.charge(A, D, P, Cost(0.1), dp_record(analyst="bob"))
    with pytest.raises(InternalError):
        store.charge(A, D, P, Cost(0.1), dp_record(cost=Cost(0.2)))
    with pytest.raises(InternalError):
        store.charge(A, D, P, Cost(0.1), dp_record(id=5))
    with pytest.raises(InternalError):
        store.charge(A, D, P, Cost(0.1), dp_record(blob=object()))
    assert len(store.audit()) == 1 and store.ledger() == []


# ---------------------------------------------------------------- a second store, other processes


def test_a_second_store_on_the_same_home_sees_everything(store: Store) -> None:
    store.put_dataset("adult", {"source": "adult.csv"})
    store.set_grant(A, D, P, epsilon=1.0, delta=1e-6)
    store.charge(A, D, P, Cost(0.4), dp_record())
    store.record(refused_record())
    key = store.issue_key(A)
    other = Store(store.home)
    assert other.list_datasets() == ["adult"]
    assert other.get_grant(A, D, P) == Cost(1.0, 1e-6)
    assert other.spent(A, D, P) == Cost(0.4)
    assert other.remaining(A, D, P) == Cost(0.6, 1e-6)
    assert [r["kind"] for r in other.audit().records()] == [
        "register", "grant", "dp", "refused", "key"]
    assert other.audit().verify()
    assert other.check_key(key) == A


def _charge_in_process(home: str, n: int, barrier: object, results: object) -> None:
    s = Store(home)
    barrier.wait()  # type: ignore[attr-defined]
    ok = 0
    for _ in range(n):
        try:
            s.charge(A, D, P, Cost(0.1), dp_record())
            ok += 1
        except BudgetExceeded:
            pass
    results.put(ok)  # type: ignore[attr-defined]


def test_four_processes_never_overspend_a_shared_budget(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.3)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_charge_in_process, args=(str(store.home), 5, barrier, results))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    oks = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(oks) == 13
    assert store.spent(A, D, P) == Cost(1.3)
    assert store.remaining(A, D, P) == Cost(0.0)
    assert len(store.audit().records(status="released")) == 13 and len(store.ledger()) == 13
    assert len(store.audit()) == 1 + 13  # and the grant
    assert store.audit().verify() is True
    _assert_head_file_names_the_newest_record(store)


def test_eight_threads_never_overspend_a_shared_budget(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=2.7)
    barrier, oks, lock = threading.Barrier(8), [], threading.Lock()

    def work() -> None:
        barrier.wait()
        n = 0
        for _ in range(5):
            try:
                store.charge(A, D, P, Cost(0.1), dp_record())
                n += 1
            except BudgetExceeded:
                pass
        store.record(refused_record())
        with lock:
            oks.append(n)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(oks) == 27
    assert store.spent(A, D, P) == Cost(2.7)
    assert len(store.audit()) == 1 + 27 + 8  # the grant, the charges, the refusals
    assert store.audit().verify() is True
    _assert_head_file_names_the_newest_record(store)


def _assert_head_file_names_the_newest_record(store: Store) -> None:
    """Writers flush the head file after letting the writers' lock go, in any order: it
    must still end at the newest record (it only moves forward)."""
    from pets.store.keys import HeadFile

    head = HeadFile(store.audit_key().head_path).read()
    assert head is not None
    assert (head["id"], head["hash"]) == tuple(store.audit().head())


# ---------------------------------------------------------------- audit records and events


def test_records_without_a_charge_are_audited_and_counted_by_kind(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)  # audit record 1, status "recorded"
    rid = store.record(refused_record())
    store.record({"analyst": A, "dataset": D, "purpose": P, "kind": "kanon", "status": "released"})
    store.record({"analyst": A, "dataset": D, "purpose": P, "kind": "kanon", "status": "released"})
    store.record({"analyst": "bob", "dataset": D, "purpose": P, "kind": "kanon", "status": "released"})
    store.record({"analyst": A, "dataset": D, "purpose": P, "kind": "kanon", "status": "refused"})
    store.charge(A, D, P, Cost(0.1), dp_record())
    assert rid == 2
    assert store.count_events(A, D, "kanon") == 2
    assert store.count_events(A, D, "dp") == 1
    assert store.count_events(A, D, "refused") == 0  # refusals are not releases
    assert store.count_events(A, D, "grant") == 0  # nor are grants
    assert [r["kind"] for r in store.audit().records(analyst=A, status="refused")] == [
        "refused",
        "kanon",
    ]
    assert store.audit().records()[1]["rule"] == "negative_list"


@pytest.mark.parametrize(
    "bad",
    [{"kind": "dp"}, {"status": "released"}, {"kind": "dp", "status": "maybe"},
     {"kind": "dp", "status": "refused", "charged": True}, "not a dict"],  # fmt: skip
)
def test_a_malformed_audit_record_is_a_bug_and_writes_nothing(store: Store, bad: object) -> None:
    with pytest.raises(InternalError):
        store.record(bad)  # type: ignore[arg-type]
    assert len(store.audit()) == 0


def test_records_are_chained_by_hash_from_the_genesis_hash(store: Store) -> None:
    store.record(refused_record())
    store.record(refused_record())
    rows = raw(store).execute(
        "SELECT id, ts, analyst, purpose, dataset, kind, status, body, prev_hash, hash "
        "FROM audit ORDER BY id"
    ).fetchall()
    assert rows[0][8] == GENESIS_HASH == "0" * 64
    assert rows[1][8] == rows[0][9]
    for r in rows:
        assert r[9] == record_hash(*r[:9])
        assert json.loads(r[7])["rule"] == "negative_list"
    assert store.audit().head() == (2, rows[1][9])


def test_audit_to_dataframe_has_one_row_per_record(store: Store) -> None:
    assert list(store.audit().to_dataframe().columns)[:7] == [
        "id", "ts", "analyst", "purpose", "dataset", "kind", "status"]  # fmt: skip
    store.set_grant(A, D, P, epsilon=1.0)
    store.charge(A, D, P, Cost(0.1), dp_record())
    store.record(refused_record())
    df = store.audit().to_dataframe()
    assert list(df["id"]) == [1, 2, 3]
    assert list(df["kind"]) == ["grant", "dp", "refused"]
    assert list(df["status"]) == ["recorded", "released", "refused"]
    assert str(df["ts"].dt.tz) == "UTC"


# ---------------------------------------------------------------- grants in the audit log


def grant_history(store: Store) -> list[tuple]:
    return [
        (r["id"], r["kind"], r["status"], r["analyst"], r["dataset"], r["purpose"],
         r.get("epsilon"), r.get("delta"), r.get("accounting"), r["previous"], r["by"])
        for r in store.audit().records()
        if r["kind"] in ("grant", "revoke")
    ]


def test_a_grant_is_an_audit_record_with_its_terms(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.5, delta=1e-6, accounting="zcdp")
    (rec,) = store.audit().records()
    assert (rec["id"], rec["kind"], rec["status"]) == (1, "grant", "recorded")
    assert (rec["analyst"], rec["dataset"], rec["purpose"]) == (A, D, P)
    assert (rec["epsilon"], rec["delta"], rec["accounting"]) == (1.5, 1e-6, "zcdp")
    assert rec["previous"] is None and rec["by"] == "holder"
    assert "cost" not in rec and "charged" not in rec  # a grant spends nothing
    assert rec["ts"].endswith("+00:00")
    assert store.ledger() == [] and store.audit().verify() is True


def test_changing_a_grant_records_the_old_and_the_new_terms(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.charge(A, D, P, Cost(0.25), dp_record())
    store.set_grant(A, D, P, epsilon=2.0, delta=1e-5)
    store.set_grant(A, D, P, epsilon=0.5, delta=1e-5)  # lowered below nothing spent yet
    def basic(e: float, d: float) -> dict:
        return {"epsilon": e, "delta": d, "accounting": "basic"}

    assert grant_history(store) == [
        (1, "grant", "recorded", A, D, P, 1.0, 0.0, "basic", None, "holder"),
        (3, "grant", "recorded", A, D, P, 2.0, 1e-5, "basic", basic(1.0, 0.0), "holder"),
        (4, "grant", "recorded", A, D, P, 0.5, 1e-5, "basic", basic(2.0, 1e-5), "holder"),
    ]
    assert store.remaining(A, D, P) == Cost(0.25, 1e-5)
    assert store.audit().verify() is True


def test_granting_the_terms_a_grant_already_has_writes_nothing(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0, delta=1e-6)
    con = raw(store)
    updated = con.execute("SELECT updated FROM grants").fetchone()[0]
    before = (len(store.audit()), store.audit().head())
    store.set_grant(A, D, P, epsilon=1, delta=1e-6)  # the same terms, an int epsilon
    assert (len(store.audit()), store.audit().head()) == before
    assert con.execute("SELECT updated FROM grants").fetchone()[0] == updated
    store.set_grant(A, D, P, epsilon=1.0, delta=1e-6, accounting="zcdp")  # accounting changes
    assert [r["accounting"] for r in store.audit().records(kind="grant")] == ["basic", "zcdp"]


def test_a_revocation_records_the_grant_it_removed_and_revoking_nothing_writes_nothing(
    store: Store,
) -> None:
    store.set_grant(A, D, P, epsilon=1.0, delta=1e-6, accounting="zcdp")
    assert store.revoke(A, D, P) is True
    rec = store.audit().records()[-1]
    assert (rec["id"], rec["kind"], rec["status"], rec["by"]) == (2, "revoke", "recorded", "holder")
    assert (rec["analyst"], rec["dataset"], rec["purpose"]) == (A, D, P)
    assert rec["previous"] == {"epsilon": 1.0, "delta": 1e-6, "accounting": "zcdp"}
    assert "epsilon" not in rec
    before = (len(store.audit()), store.audit().head())
    assert store.revoke(A, D, P) is False
    assert store.revoke("bob", D, P) is False
    assert (len(store.audit()), store.audit().head()) == before
    store.set_grant(A, D, P, epsilon=3.0)  # granted again: a new grant, nothing before it
    assert store.audit().records()[-1]["previous"] is None
    assert store.audit().verify() is True


def test_a_refused_accounting_switch_writes_no_grant_record(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0, delta=1e-6)
    store.charge(A, D, P, Cost(0.1), dp_record())
    before = (len(store.audit()), store.audit().head())
    with pytest.raises(QueryError, match="cannot switch to 'zcdp'"):
        store.set_grant(A, D, P, epsilon=2.0, delta=1e-6, accounting="zcdp")
    assert (len(store.audit()), store.audit().head()) == before
    assert store.get_grant(A, D, P) == Cost(1.0, 1e-6)
    assert store.audit().verify() is True


def test_grant_records_do_not_count_as_releases_or_extracts(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.set_grant(A, D, P, epsilon=2.0)
    store.revoke(A, D, P)
    kanon = {"analyst": A, "dataset": D, "purpose": P, "kind": "kanon"}
    store.record_counted(kanon, limit=1)  # the grant records do not use up the limit
    with pytest.raises(PolicyError) as e:
        store.record_counted(kanon, limit=1)
    assert e.value.rule == "max_extracts"
    assert store.count_events(A, D, "grant") == 0 and store.count_events(A, D, "revoke") == 0
    assert [r["kind"] for r in store.audit().records(status="released")] == ["kanon"]
    assert [r["kind"] for r in store.audit().records(status="recorded")] == [
        "grant", "grant", "revoke"]


@pytest.mark.parametrize(
    "bad",
    [{"kind": "grant", "status": "recorded"}, {"kind": "dp", "status": "recorded"},
     {"kind": "grant", "status": "released"}, {"kind": "key", "status": "refused"},
     {"kind": "register", "status": "recorded"}, {"kind": "migrate", "status": "released"}],
)
def test_grant_and_key_records_come_only_from_the_store_methods(store: Store, bad: dict) -> None:
    with pytest.raises(InternalError, match="written only by the store's own methods"):
        store.record({"analyst": A, "dataset": D, "purpose": P, **bad})
    assert len(store.audit()) == 0


def test_an_edited_grant_record_is_detected(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.charge(A, D, P, Cost(0.1), dp_record())
    store.set_grant(A, D, P, epsilon=2.0)
    assert store.audit().verify() is True
    con = raw(store)
    body = json.loads(con.execute("SELECT body FROM audit WHERE id = 3").fetchone()[0])
    body["previous"]["epsilon"] = 5.0  # pretend the grant was lowered, not raised
    con.execute("UPDATE audit SET body = ? WHERE id = 3", (json.dumps(body),))
    e = audit_error(store)
    assert e.record == 3
    assert str(e) == "audit record 3 was edited (its hash does not match its content)"


def test_a_grant_raised_outside_pets_is_detected(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    store.charge(A, D, P, Cost(0.1), dp_record())
    raw(store).execute("UPDATE grants SET epsilon = 100.0, epsilon_text = '100.0'")
    assert store.remaining(A, D, P) == Cost(99.9)  # the forged budget works ...
    e = audit_error(store)  # ... and the auditor sees it
    assert e.record == 1
    assert str(e) == (
        "the grant of alice on adult (purpose p) is epsilon=100.0, delta=0.0 (basic), but its "
        "audit records say epsilon=1.0, delta=0.0 (basic) (the grants table was changed "
        "outside pets)"
    )


@pytest.mark.parametrize("how", ["insert", "delete", "accounting", "malformed"])
def test_a_grant_added_removed_or_altered_outside_pets_is_detected(store: Store, how: str) -> None:
    store.set_grant(A, D, P, epsilon=1.0, delta=1e-6)
    con = raw(store)
    if how == "insert":
        con.execute(
            "INSERT INTO grants (analyst, dataset, purpose, epsilon, epsilon_text, delta, "
            "delta_text, updated) VALUES ('mallory', 'adult', 'p', 9, '9.0', 0, '0.0', 'now')"
        )
        message = "the grant of mallory on adult (purpose p) is epsilon=9.0, delta=0.0 (basic), "
        message += "but its audit records say no grant"
    elif how == "delete":
        con.execute("DELETE FROM grants")
        message = "the grant of alice on adult (purpose p) is no grant, but its audit records "
        message += "say epsilon=1.0, delta=1e-06 (basic)"
    elif how == "accounting":
        con.execute("UPDATE grants SET accounting = 'zcdp'")
        message = "the grant of alice on adult (purpose p) is epsilon=1.0, delta=1e-06 (zcdp)"
    else:
        con.execute("UPDATE grants SET delta_text = 'lots'")
        message = "the grant of alice on adult (purpose p) is malformed"
    e = audit_error(store)
    assert str(e).startswith(message)
    assert e.record == (None if how == "insert" else 1)


def test_a_grant_changed_outside_pets_and_later_by_pets_is_still_detected(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    raw(store).execute("UPDATE grants SET epsilon = 50.0, epsilon_text = '50.0'")
    store.charge(A, D, P, Cost(10.0), dp_record())  # spends the forged budget
    store.set_grant(A, D, P, epsilon=1.0)  # and puts the grant back: the table looks right
    e = audit_error(store)
    assert e.record == 3
    assert str(e) == (
        "grant record 3 of alice on adult (purpose p) says the grant it replaced was "
        "epsilon=50.0, delta=0.0 (basic), but the audit log left epsilon=1.0, delta=0.0 "
        "(basic) in force (the grant was changed outside pets before this record)"
    )


def test_a_store_from_before_grant_auditing_adopts_its_grants_in_the_log(store: Store) -> None:
    con = raw(store)  # a schema-2 store: grants in the table, none in the log
    for analyst, eps, dlt, acc, updated in (
        (A, "1.0", "0.0", "basic", "2024-05-01T12:00:00+00:00"),
        ("bob", "2.0", "1e-06", "zcdp", "2024-05-02T08:30:00+00:00"),
    ):
        con.execute(
            "INSERT INTO grants (analyst, dataset, purpose, epsilon, epsilon_text, delta, "
            "delta_text, updated, accounting) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (analyst, D, P, float(eps), eps, float(dlt), dlt, updated, acc),
        )
    store.charge(A, D, P, Cost(0.25), dp_record())
    downgrade(store, 2)
    again = Store(store.home)
    recs = again.audit().records()
    assert [(r["id"], r["kind"], r["analyst"]) for r in recs] == [
        (1, "dp", A), (2, "migrate", None), (3, "grant", A), (4, "grant", "bob")]
    assert [(r["epsilon"], r["delta"], r["accounting"], r["previous"], r["migrated"],
             r["set_at"], r["status"], r["by"]) for r in recs[2:]] == [
        (1.0, 0.0, "basic", None, True, "2024-05-01T12:00:00+00:00", "recorded", "holder"),
        (2.0, 1e-6, "zcdp", None, True, "2024-05-02T08:30:00+00:00", "recorded", "holder"),
    ]
    assert again.audit().verify() is True
    assert con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert len(Store(store.home).audit()) == 4  # adopted once
    assert again.remaining(A, D, P) == Cost(0.75)


def test_the_upgrade_does_not_adopt_a_grant_changed_outside_pets(store: Store) -> None:
    store.set_grant(A, D, P, epsilon=1.0)
    con = downgrade(store, 2)
    con.execute("UPDATE grants SET epsilon = 3, epsilon_text = '3.0'")
    again = Store(store.home)
    assert len(again.audit()) == 2  # the log knows this grant: nothing adopted (+ migrate)
    e = audit_error(again)
    assert e.record == 1 and "is epsilon=3.0" in str(e) and "say epsilon=1.0" in str(e)


# ---------------------------------------------------------------- API keys


def test_api_keys_are_stored_hashed_and_identify_their_analyst(store: Store) -> None:
    key = store.issue_key(A)
    assert key.startswith("pets_") and len(key) > 40
    assert store.check_key(key) == A
    stored = raw(store).execute("SELECT key_hash FROM api_keys").fetchall()
    assert key not in str(stored)
    for bad in ("pets_nope", "", None, key + "x"):
        with pytest.raises(AuthError, match="unknown or revoked API key"):
            store.check_key(bad)  # type: ignore[arg-type]
    store.revoke_key(key)
    with pytest.raises(AuthError, match="unknown or revoked API key"):
        store.check_key(key)


def test_api_keys_are_stored_as_salted_hashes_and_older_unsalted_ones_still_work(
        store: Store, tmp_path: Path) -> None:
    from pets.store.sqlite import _key_hash, _salted_key_hash

    key = store.issue_key(A)
    (stored,) = raw(store).execute("SELECT key_hash FROM api_keys").fetchone()
    (salt,) = raw(store).execute("SELECT salt FROM api_key_salt").fetchone()
    assert len(salt) == 32
    assert stored == _salted_key_hash(salt, key) and stored.startswith("s1$")
    assert stored != _key_hash(key) and _key_hash(key) not in stored
    # another store salts the same key otherwise
    other = Store(tmp_path / "other")
    (salt2,) = raw(other).execute("SELECT salt FROM api_key_salt").fetchone()
    assert salt2 != salt and _salted_key_hash(salt2, key) != stored
    # a key issued before salting (stored as its plain SHA-256) still authenticates,
    # keeps its key id, and can be revoked
    old_key = "pets_" + "x" * 43
    con = raw(store)
    con.execute("INSERT INTO api_keys (key_hash, analyst, created) VALUES (?, ?, ?)",
                (_key_hash(old_key), "bob", "2026-01-01T00:00:00+00:00"))
    con.commit()
    from pets.store.audit import api_key_id

    assert store.check_key_id(old_key) == ("bob", api_key_id(_key_hash(old_key)))
    assert store.check_key_id(key) == (A, api_key_id(stored))
    store.revoke_key(old_key)
    with pytest.raises(AuthError, match="unknown or revoked API key"):
        store.check_key(old_key)
    assert store.check_key(key) == A


def test_issuing_and_revoking_keys_is_audited_without_the_key_or_its_hash(store: Store) -> None:
    k1, k2, k3 = store.issue_key(A), store.issue_key(A), store.issue_key("bob")
    store.revoke_key(k3)
    with pytest.raises(AuthError):
        store.revoke_key(k3)  # already revoked: nothing more is recorded
    assert store.revoke_keys(A) == 2
    assert store.revoke_keys(A) == 0  # none left: nothing recorded
    recs = store.audit().records(kind="key")
    assert [(r["analyst"], r["status"], r["action"], r["keys"], r["by"]) for r in recs] == [
        (A, "recorded", "issued", 1, "holder"),
        (A, "recorded", "issued", 1, "holder"),
        ("bob", "recorded", "issued", 1, "holder"),
        ("bob", "recorded", "revoked", 1, "holder"),
        (A, "recorded", "revoked", 2, "holder"),
    ]
    assert len(store.audit()) == 5
    assert all(r["dataset"] is None and r["purpose"] is None for r in recs)
    text = "".join(r[0] for r in raw(store).execute("SELECT body FROM audit"))
    for key in (k1, k2, k3):
        assert key not in text
        assert hashlib.sha256(key.encode()).hexdigest() not in text
    assert store.audit().verify() is True


# ---------------------------------------------------------------- tamper detection


@pytest.fixture
def filled(store: Store) -> Store:
    """Records 1..9: the grant at 1, charges at the other odd ids, refusals at even ids."""
    store.set_grant(A, D, P, epsilon=10.0)
    for i in range(2, 10):
        if i % 2:
            store.charge(A, D, P, Cost(0.1 * i), dp_record())
        else:
            store.record(refused_record())
    assert store.audit().verify() is True
    return store


def audit_error(store: Store) -> AuditError:
    with pytest.raises(AuditError) as e:
        Store(store.home).audit().verify()
    return e.value


def test_an_edited_record_body_is_detected(filled: Store) -> None:
    con = raw(filled)
    body = json.loads(con.execute("SELECT body FROM audit WHERE id = 7").fetchone()[0])
    body["plan"] = {"source": "something else"}
    con.execute("UPDATE audit SET body = ? WHERE id = 7", (json.dumps(body),))
    e = audit_error(filled)
    assert e.record == 7
    assert str(e) == "audit record 7 was edited (its hash does not match its content)"


def test_an_edited_timestamp_is_detected(filled: Store) -> None:
    raw(filled).execute("UPDATE audit SET ts = '2000-01-01T00:00:00+00:00' WHERE id = 4")
    assert audit_error(filled).record == 4


def test_a_deleted_middle_record_is_detected(filled: Store) -> None:
    raw(filled).execute("DELETE FROM audit WHERE id = 5")
    e = audit_error(filled)
    assert e.record == 5
    assert str(e) == "audit record 5 is missing (ids jump from 4 to 6)"


def test_a_deleted_first_record_is_detected(filled: Store) -> None:
    raw(filled).execute("DELETE FROM audit WHERE id = 1")
    e = audit_error(filled)
    assert e.record == 1 and str(e) == "audit record 1 is missing (the log starts at 2)"


def test_a_deleted_newest_record_is_detected_by_the_head(filled: Store) -> None:
    raw(filled).execute("DELETE FROM audit WHERE id = 9")
    e = audit_error(filled)
    assert e.record == 9
    assert str(e) == "the newest audit record(s) were removed (head says 9, log ends at 8)"


def test_a_deleted_newest_refusal_is_detected_by_the_head_alone(filled: Store) -> None:
    filled.record(refused_record())  # record 10 has no ledger row: only the head knows it
    raw(filled).execute("DELETE FROM audit WHERE id = 10")
    e = audit_error(filled)
    assert e.record == 10
    assert str(e) == "the newest audit record(s) were removed (head says 10, log ends at 9)"


def test_a_deleted_newest_charge_with_a_rewound_head_is_caught_by_the_ledger(filled: Store) -> None:
    con = raw(filled)
    h8 = con.execute("SELECT hash FROM audit WHERE id = 8").fetchone()[0]
    con.execute("DELETE FROM audit WHERE id = 9")
    con.execute("UPDATE audit_head SET last_id = 8, last_hash = ?", (h8,))
    e = audit_error(filled)
    assert e.record == 9
    assert str(e) == "ledger charge for audit record 9 has no matching audit record"


def test_a_removed_audit_head_is_detected_and_blocks_new_records(filled: Store) -> None:
    raw(filled).execute("DELETE FROM audit_head")
    with pytest.raises(AuditError, match="the audit head is missing"):
        filled.audit().verify()
    with pytest.raises(AuditError, match="the audit head is missing"):
        filled.charge(A, D, P, Cost(0.1), dp_record())
    assert len(filled.ledger()) == 4


def test_records_swapped_in_place_are_detected_as_out_of_order(filled: Store) -> None:
    con = raw(filled)
    cols = "ts, analyst, purpose, dataset, kind, status, body, prev_hash, hash"
    r3 = con.execute(f"SELECT {cols} FROM audit WHERE id = 3").fetchone()
    r5 = con.execute(f"SELECT {cols} FROM audit WHERE id = 5").fetchone()
    sets = ", ".join(f"{c} = ?" for c in cols.split(", "))
    con.execute(f"UPDATE audit SET {sets} WHERE id = 3", r5)
    con.execute(f"UPDATE audit SET {sets} WHERE id = 5", r3)
    e = audit_error(filled)
    assert e.record == 3
    assert str(e) == (
        "audit records are out of order at record 3 (its prev_hash does not match record 2)"
    )


def test_a_rewritten_record_with_a_fresh_hash_breaks_the_next_link(filled: Store) -> None:
    con = raw(filled)
    r = list(con.execute(
        "SELECT id, ts, analyst, purpose, dataset, kind, status, body, prev_hash FROM audit "
        "WHERE id = 4").fetchone())  # fmt: skip
    r[7] = r[7].replace("negative_list", "nothing")
    con.execute("UPDATE audit SET body = ?, hash = ? WHERE id = 4", (r[7], record_hash(*r)))
    e = audit_error(filled)
    assert e.record == 4 and "no valid signature of the holder's audit key" in str(e)


def test_an_edited_ledger_cost_is_detected(filled: Store) -> None:
    raw(filled).execute(
        "UPDATE ledger SET epsilon = 0.0, epsilon_text = '0.0' WHERE audit_id = 3"
    )
    e = audit_error(filled)
    assert e.record == 3
    assert str(e).startswith("ledger charge for audit record 3 does not match its audit record")
    assert "ledger says epsilon=0.0" in str(e)


def test_a_ledger_row_moved_to_another_analyst_is_detected(filled: Store) -> None:
    raw(filled).execute("UPDATE ledger SET analyst = 'bob' WHERE audit_id = 5")
    assert audit_error(filled).record == 5


def test_a_deleted_ledger_row_that_would_refund_budget_is_detected(filled: Store) -> None:
    raw(filled).execute("DELETE FROM ledger WHERE audit_id = 7")
    e = audit_error(filled)
    assert e.record == 7
    assert str(e).startswith("audit record 7 records a charge but its ledger row is missing")


def test_a_record_appended_outside_pets_is_detected(filled: Store) -> None:
    con = raw(filled)
    h9 = con.execute("SELECT hash FROM audit WHERE id = 9").fetchone()[0]
    args = (10, "2024-01-01T00:00:00+00:00", A, P, D, "dp", "released", "{}", h9)
    con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*args, record_hash(*args)))
    e = audit_error(filled)
    assert e.record == 10 and "added outside pets" in str(e)


def test_spent_total_is_kept_exactly_and_a_refund_outside_pets_is_detected(tmp_path):
    import sqlite3

    from pets.cost import Cost
    from pets.errors import AuditError
    from pets.store import Store

    st = Store(tmp_path)
    st.set_grant("amy", "d", "p", epsilon=1.0)
    for _ in range(3):
        st.charge("amy", "d", "p", Cost(0.1), {"kind": "dp"})
    assert st.spent("amy", "d", "p") == Cost(0.3, 0.0)
    with sqlite3.connect(tmp_path / "pets.db") as con:
        (text,) = con.execute("SELECT epsilon_text FROM spent").fetchone()
        assert text == "3/10"
    assert st.audit().verify() is True
    with sqlite3.connect(tmp_path / "pets.db") as con:
        con.execute("UPDATE spent SET epsilon_text = '1/10'")
    assert st.remaining("amy", "d", "p") == Cost(0.9, 0.0)  # the refund works ...
    with pytest.raises(AuditError, match=r"spent total of amy on d \(purpose p\) does not match"):
        st.audit().verify()  # ... and the auditor sees it
