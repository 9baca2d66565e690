"""The audit log cannot be rolled back or forged unnoticed (issue 9, item 7).

Each attack is made as someone with write access to ``pets.db`` (and its ``-wal``) but
not to the audit key: directly with sqlite3, never through pets.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pets
from pets.store import Head, Store, policy_version, record_hash
from pets.store.audit import answer_digest

from ._util import ANALYST, PURPOSE

ROOT = Path(__file__).resolve().parents[2]


def tamper(home: Path, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(home / "pets.db", isolation_level=None)
    try:
        con.execute("BEGIN")
        for sql, args in statements:
            con.execute(sql, args)
        con.execute("COMMIT")
    finally:
        con.close()


def release(h: pets.Holder, eps: float, lo: int = 18) -> pets.Release:
    s = h.session(ANALYST, purpose=PURPOSE)
    return s.release(s.table("adult").filter(pets.col("age") >= lo).agg(n=pets.count()),
                     pets.DP(epsilon=eps))


def rollback(home: Path, to: int) -> None:
    """Delete the records after ``to`` and their ledger rows, reset the audit head and
    the spent totals to match: the refund attack of issue 9."""
    con = sqlite3.connect(home / "pets.db", isolation_level=None)
    h = con.execute("SELECT hash FROM audit WHERE id = ?", (to,)).fetchone()[0]
    con.execute("BEGIN")
    con.execute("DELETE FROM audit WHERE id > ?", (to,))
    con.execute("DELETE FROM audit_sig WHERE id > ?", (to,))
    con.execute("DELETE FROM ledger WHERE audit_id > ?", (to,))
    con.execute("DELETE FROM answers WHERE audit_id > ?", (to,))
    con.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (to, h))
    for a, d, p in con.execute("SELECT analyst, dataset, purpose FROM spent").fetchall():
        rows = con.execute("SELECT epsilon_text FROM ledger WHERE analyst = ? AND dataset = ? "
                           "AND purpose = ?", (a, d, p)).fetchall()
        from fractions import Fraction
        total = sum((Fraction(r[0]) for r in rows), Fraction(0))
        con.execute("UPDATE spent SET epsilon_text = ? WHERE analyst = ? AND dataset = ? "
                    "AND purpose = ?", (str(total), a, d, p))
    con.execute("COMMIT")
    con.close()


def auditor(h: pets.Holder, tmp_path: Path) -> pets.Holder:
    """The auditor's view: the public key only, copied elsewhere (no head file there)."""
    where = tmp_path / "auditor"
    where.mkdir(exist_ok=True)
    shutil.copy(h.home / "audit-key.pub", where / "holder.pub")
    return pets.Holder(h.home, audit_key=where / "holder.pub")


# ---------------------------------------------------------------- rollback and truncation


def test_a_rollback_with_ledger_rows_and_head_reset_is_detected_and_refunds_nothing(
        holder: pets.Holder, tmp_path: Path) -> None:
    release(holder, 0.5)
    pinned = holder.audit().head()
    release(holder, 0.5, lo=30)
    release(holder, 0.5, lo=40)
    left = holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE)
    assert left == pets.Cost(0.5)
    rollback(holder.home, pinned.id)
    # the refund is in the tables ...
    assert pets.Holder(holder.home).remaining(ANALYST, dataset="adult", purpose=PURPOSE) == \
        pets.Cost(1.5)
    # ... but the head file next to the key knows the log went further
    with pytest.raises(pets.AuditError, match=r"truncated or rolled back: the audit head "
                       r"file .* names record 5, but the log ends at 3") as e:
        pets.Holder(holder.home).audit().verify()
    assert e.value.record == 4
    # and the refunded budget cannot be spent: nothing is appended to a rolled-back log
    with pytest.raises(pets.AuditError, match=r"the audit log was rolled back or truncated"):
        release(pets.Holder(holder.home), 0.5, lo=50)
    assert len(holder.audit()) == pinned.id


def test_a_pinned_head_detects_rollback_without_the_head_file(
        holder: pets.Holder, tmp_path: Path) -> None:
    release(holder, 0.25)
    head = holder.audit().head()
    assert isinstance(head, Head) and head == (head.id, head.hash)
    assert Head.parse(str(head)) == head and str(head) == f"{head.id}:{head.hash}"
    release(holder, 0.25, lo=30)
    assert holder.audit().verify(head=head) is True
    assert holder.audit().verify(head=str(head)) is True
    rollback(holder.home, head.id - 1)  # also removes the pinned record
    view = auditor(holder, tmp_path)  # no head file where its key is
    with pytest.raises(pets.AuditError, match=rf"the pinned head names record {head.id}, "
                       rf"but the log ends at {head.id - 1}"):
        view.audit().verify(head=head)


def test_a_rolled_back_and_rewritten_log_does_not_match_the_pinned_head(
        holder: pets.Holder, tmp_path: Path) -> None:
    release(holder, 0.25)
    head = holder.audit().head()
    rollback(holder.home, head.id - 1)
    os.unlink(holder.home / "audit-key.head")  # the attacker could write the head file too
    # the holder's pets goes on (a new record at the same id, with a different hash)
    h2 = pets.Holder(holder.home)
    with pytest.raises(pets.AuditError, match="head file .* is missing"):
        h2.audit().verify()
    with pytest.raises(pets.AuditError, match="head file .* is missing"):
        release(h2, 0.25, lo=60)
    view = auditor(holder, tmp_path)
    with pytest.raises(pets.AuditError, match=r"truncated or rolled back"):
        view.audit().verify(head=head)


def test_a_truncated_log_is_detected_by_the_head_file_and_the_pinned_head(
        holder: pets.Holder, tmp_path: Path) -> None:
    s = holder.session(ANALYST, purpose=PURPOSE)
    with pytest.raises(pets.BudgetExceeded):
        s.release(s.table("adult").agg(n=pets.count()),
                  pets.DP(epsilon=100))  # a refusal: no ledger row to give it away
    head = holder.audit().head()
    h_prev = sqlite3.connect(holder.home / "pets.db").execute(
        "SELECT hash FROM audit WHERE id = ?", (head.id - 1,)).fetchone()[0]
    tamper(holder.home, ("DELETE FROM audit WHERE id = ?", (head.id,)),
           ("UPDATE audit_head SET last_id = ?, last_hash = ?", (head.id - 1, h_prev)))
    with pytest.raises(pets.AuditError, match=rf"names record {head.id}, but the log ends"):
        holder.audit().verify()
    with pytest.raises(pets.AuditError, match=rf"pinned head names record {head.id}"):
        auditor(holder, tmp_path).audit().verify(head=head)


def test_deleting_the_wal_after_a_crash_is_detected(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        import pets
        h = pets.Holder({str(home)!r})
        h.register("adult", pets.example_data(), pets.example_policy())
        h.grant({ANALYST!r}, dataset="adult", purpose={PURPOSE!r}, epsilon=2.0)
        h._store._connect().__enter__().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        s = h.session({ANALYST!r}, purpose={PURPOSE!r})
        r = s.release(s.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.5))
        print(r.audit_id, flush=True)
        os._exit(0)  # a crash: no checkpoint, the -wal file stays
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    wal = home / "pets.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    wal.unlink()
    (home / "pets.db-shm").unlink(missing_ok=True)
    h = pets.Holder(home)
    assert h.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(2.0)  # refunded
    with pytest.raises(pets.AuditError, match=rf"names record {p.stdout.strip()}, but the log "
                       r"ends at 2"):
        h.audit().verify()
    with pytest.raises(pets.AuditError, match="rolled back or truncated"):
        release(h, 0.5)  # the refund cannot be spent


def test_a_deleted_database_is_not_silently_started_afresh(holder: pets.Holder) -> None:
    release(holder, 0.25)
    for f in holder.home.glob("pets.db*"):
        f.unlink()
    with pytest.raises(pets.AuditError, match=r"says this key has signed 3 audit records, but "
                       r".*pets.db' is new: the store was deleted or replaced"):
        pets.Holder(holder.home)


# ---------------------------------------------------------------- forgery


def test_a_forged_grant_with_a_valid_sha256_chain_is_detected(holder: pets.Holder) -> None:
    con = sqlite3.connect(holder.home / "pets.db", isolation_level=None)
    last_id, last_hash = con.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    body = json.dumps({"by": "holder", "epsilon": 100.0, "delta": 0.0, "accounting": "basic",
                       "previous": {"epsilon": 2.0, "delta": 0.0, "accounting": "basic"}},
                      sort_keys=True, separators=(",", ":"))
    args = (last_id + 1, "2024-01-01T00:00:00+00:00", ANALYST, PURPOSE, "adult", "grant",
            "recorded", body, last_hash)
    new_hash = record_hash(*args)
    tamper(holder.home,
           ("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*args, new_hash)),
           ("UPDATE audit_head SET last_id = ?, last_hash = ?", (last_id + 1, new_hash)),
           ("UPDATE grants SET epsilon = 100.0, epsilon_text = '100.0'", ()))
    assert holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(100.0)
    with pytest.raises(pets.AuditError) as e:
        pets.Holder(holder.home).audit().verify()
    assert e.value.record == last_id + 1
    assert str(e.value) == (f"audit record {last_id + 1} has no valid signature of the "
                            "holder's audit key: it was added outside pets or rewritten")
    with pytest.raises(pets.AuditError, match="no valid signature"):  # also with a signature
        tamper(holder.home, ("INSERT INTO audit_sig VALUES (?, ?)", (last_id + 1, "00" * 64)))
        holder.audit().verify()


def test_an_edited_and_rehashed_record_is_detected(holder: pets.Holder) -> None:
    r = release(holder, 0.5)
    con = sqlite3.connect(holder.home / "pets.db", isolation_level=None)
    row = list(con.execute("SELECT id, ts, analyst, purpose, dataset, kind, status, body, "
                           "prev_hash FROM audit WHERE id = ?", (r.audit_id,)).fetchone())
    row[2] = "mallory"
    h = record_hash(*row)
    tamper(holder.home, ("UPDATE audit SET analyst = 'mallory', hash = ? WHERE id = ?",
                         (h, r.audit_id)),
           ("UPDATE audit_head SET last_hash = ?", (h,)),
           ("UPDATE ledger SET analyst = 'mallory'", ()))
    with pytest.raises(pets.AuditError, match=rf"audit record {r.audit_id} has no valid "
                       "signature"):
        holder.audit().verify()


# ---------------------------------------------------------------- policies


def test_registration_and_a_looser_replacement_are_audited_with_their_policy_version(
        holder: pets.Holder) -> None:
    before = policy_version(holder.policy("adult").to_dict())
    looser = holder.policy("adult").to_dict()
    looser["negative_list"] = []
    holder.register("adult", pets.example_data(), looser, replace=True)
    recs = holder.audit().records(kind="register")
    after = policy_version(holder.policy("adult").to_dict())
    assert not holder.policy("adult").negative_list  # looser: nothing negative-listed
    assert [(r["id"], r["dataset"], r["replaced"], r["policy_version"], r["status"], r["by"])
            for r in recs] == [
        (1, "adult", False, before, "recorded", "holder"),
        (3, "adult", True, after, "recorded", "holder"),
    ]
    assert before != after
    assert holder.audit().verify() is True


def test_a_policy_loosened_in_sqlite_is_detected(holder: pets.Holder) -> None:
    con = sqlite3.connect(holder.home / "pets.db")
    record = json.loads(con.execute("SELECT record FROM datasets").fetchone()[0])
    con.close()
    record["policy"]["negative_list"] = []
    tamper(holder.home, ("UPDATE datasets SET record = ?", (json.dumps(record),)))
    with pytest.raises(pets.AuditError, match=r"dataset 'adult' \(its record or policy\) was "
                       r"changed outside pets after register record 1") as e:
        holder.audit().verify()
    assert e.value.record == 1


def test_a_record_naming_another_policy_version_is_refused_and_detected(
        holder: pets.Holder) -> None:
    store = holder._store
    current = policy_version(holder.policy("adult").to_dict())
    rec = {"analyst": ANALYST, "dataset": "adult", "purpose": PURPOSE, "kind": "dp",
           "status": "refused", "rule": "grade"}
    n = len(holder.audit())
    with pytest.raises(pets.PolicyError, match="was replaced while this request") as e:
        store.record({**rec, "policy_version": "0" * 64})
    assert e.value.rule == "policy_changed" and len(holder.audit()) == n
    with pytest.raises(pets.PolicyError, match="was replaced while"):
        store.charge(ANALYST, "adult", PURPOSE, pets.Cost(0.1),
                     {"kind": "dp", "policy_version": "0" * 64})
    assert len(holder.audit()) == n and store.ledger() == []
    rid = store.record({**rec, "policy_version": current})
    assert holder.audit().verify() is True
    # an attacker rewriting that record's version (and re-hashing) is caught
    con = sqlite3.connect(holder.home / "pets.db", isolation_level=None)
    body = json.loads(con.execute("SELECT body FROM audit WHERE id = ?", (rid,)).fetchone()[0])
    con.close()
    body["policy_version"] = "1" * 64
    tamper(holder.home, ("UPDATE audit SET body = ? WHERE id = ?", (json.dumps(body), rid)))
    with pytest.raises(pets.AuditError, match=rf"audit record {rid} was edited"):
        holder.audit().verify()


# ---------------------------------------------------------------- answers and API keys


def test_a_changed_recalled_answer_is_detected(holder: pets.Holder) -> None:
    r = release(holder, 0.5)
    con = sqlite3.connect(holder.home / "pets.db")
    key, answer = con.execute("SELECT key, answer FROM answers").fetchone()
    con.close()
    rec = holder.audit().records()[-1]
    assert rec["id"] == r.audit_id and rec["answer_digest"] == answer_digest(key, answer)
    forged = answer.replace("1", "2") if "1" in answer else answer + " "
    tamper(holder.home, ("UPDATE answers SET answer = ?", (forged,)))
    with pytest.raises(pets.AuditError, match=rf"the recalled answer of audit record "
                       rf"{r.audit_id} was changed outside pets") as e:
        holder.audit().verify()
    assert e.value.record == r.audit_id
    tamper(holder.home, ("DELETE FROM answers", ()))
    with pytest.raises(pets.AuditError, match=rf"recalled answer of audit record {r.audit_id} "
                       "was removed"):
        holder.audit().verify()
    tamper(holder.home, ("INSERT INTO answers VALUES (?, ?, ?)", (key, 2, answer)))
    with pytest.raises(pets.AuditError, match=r"names audit record 2, which released no such"):
        holder.audit().verify()


def test_api_keys_added_moved_or_unrevoked_in_sqlite_are_detected(holder: pets.Holder) -> None:
    k = holder.issue_key(ANALYST)
    holder._store.revoke_key(k)
    k2 = holder.issue_key(ANALYST)
    assert holder.audit().verify() is True
    tamper(holder.home, ("UPDATE api_keys SET revoked = NULL", ()))
    with pytest.raises(pets.AuditError, match=r"an API key of alice \(key record \d+\) was "
                       "un-revoked outside pets"):
        holder.audit().verify()
    tamper(holder.home, ("UPDATE api_keys SET revoked = 'x' WHERE revoked IS NULL", ()),
           ("UPDATE api_keys SET revoked = NULL WHERE key_hash = (SELECT key_hash FROM "
            "api_keys ORDER BY created DESC LIMIT 1)", ()))
    holder._store.check_key(k2)
    assert holder.audit().verify() is True
    tamper(holder.home, ("INSERT INTO api_keys VALUES ('ab', 'mallory', 'now', NULL)", ()))
    with pytest.raises(pets.AuditError, match="an API key of mallory is in the store but no key "
                       "record issued it"):
        holder.audit().verify()
    tamper(holder.home, ("DELETE FROM api_keys WHERE analyst = 'mallory'", ()),
           ("UPDATE api_keys SET analyst = 'bob'", ()))
    with pytest.raises(pets.AuditError, match="was moved to bob outside pets"):
        holder.audit().verify()


# ---------------------------------------------------------------- the key


def test_the_default_key_is_private_to_the_holder_and_verifiable_with_the_public_half(
        holder: pets.Holder, tmp_path: Path) -> None:
    pem = holder.home / "audit-key.pem"
    assert b"PRIVATE KEY" in pem.read_bytes()
    if os.name == "posix":
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (holder.home / "audit-key.pub").read_bytes()
    # the key is not in the database
    db = b"".join(f.read_bytes() for f in holder.home.glob("pets.db*"))
    assert pem.read_bytes().splitlines()[1] not in db
    view = auditor(holder, tmp_path)
    assert view.audit().verify(head=holder.audit().head()) is True
    with pytest.raises(pets.AuditError, match="is a public key: it verifies the log but cannot "
                       "sign"):
        view.grant("bob", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    assert holder.grants("bob").empty


def test_the_key_can_live_elsewhere_by_argument_or_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "keys" / "a.pem"
    h = pets.Holder(tmp_path / "a", audit_key=key)
    h.register("adult", pets.example_data(), pets.example_policy())
    assert key.exists() and (tmp_path / "keys" / "a.head").exists()
    assert not (tmp_path / "a" / "audit-key.pem").exists()
    with pytest.raises(pets.AuditError, match=r"the audit key .*audit-key.pem' does not exist"):
        pets.Holder(tmp_path / "a").audit().verify()  # not where the default would be
    assert pets.Holder(tmp_path / "a", audit_key=key).audit().verify() is True
    monkeypatch.setenv("PETS_AUDIT_KEY", str(tmp_path / "keys" / "b.pem"))
    b = pets.Holder(tmp_path / "b")
    assert b.audit().verify() and (tmp_path / "keys" / "b.pem").exists()
    # one key serves one home: not another's key ...
    with pytest.raises(pets.AuditError, match="signed with key .*, not with the audit key"):
        pets.Holder(tmp_path / "a", audit_key=tmp_path / "keys" / "b.pem").audit().verify()
    # ... and not the same key for two homes
    c = pets.Holder(tmp_path / "c")  # still PETS_AUDIT_KEY=b.pem; b has no records yet
    with pytest.raises(pets.AuditError, match="belongs to another pets store"):
        b.audit().verify()
    with pytest.raises(pets.AuditError, match="belongs to another pets store"):
        b.register("adult", pets.example_data(), pets.example_policy())
    c.register("adult", pets.example_data(), pets.example_policy())
    with pytest.raises(pets.AuditError, match="says this key has signed 1 audit records"):
        pets.Holder(tmp_path / "d")


def test_a_lost_key_stops_recording_instead_of_starting_a_new_one(holder: pets.Holder) -> None:
    (holder.home / "audit-key.pem").unlink()
    h = pets.Holder(holder.home)
    with pytest.raises(pets.AuditError, match="audit-key.pem' does not exist; restore it"):
        release(h, 0.1)
    assert not (holder.home / "audit-key.pem").exists()


# ---------------------------------------------------------------- the upgrade


def test_a_schema_3_store_is_upgraded_in_place_and_its_old_records_are_anchored(
        holder: pets.Holder, tmp_path: Path) -> None:
    r = release(holder, 0.5)
    key = holder.issue_key(ANALYST)
    n = len(holder.audit())
    con = sqlite3.connect(holder.home / "pets.db", isolation_level=None)
    for sql in ("DROP TABLE audit_sig", "DROP TABLE audit_meta",
                "ALTER TABLE datasets DROP COLUMN policy_version",
                "DELETE FROM schema_version", "INSERT INTO schema_version VALUES (3)"):
        con.execute(sql)
    con.close()
    for f in holder.home.glob("audit-key*"):
        f.unlink()
    h = pets.Holder(holder.home)
    recs = h.audit().records()
    assert [(x["id"], x["kind"]) for x in recs[n:]] == [
        (n + 1, "migrate"), (n + 2, "register"), (n + 3, "key")]
    assert recs[n]["unsigned_through"] == n and recs[n]["answers"] == {
        str(r.audit_id): recs[r.audit_id - 1]["answer_digest"]}
    assert recs[n + 1]["migrated"] is True and recs[n + 2]["action"] == "adopted"
    assert h.audit().verify() is True
    assert h._store.check_key(key) == ANALYST
    release(h, 0.25, lo=33)
    assert h.audit().verify(head=h.audit().head()) is True
    # an old record edited after the upgrade is caught: the migrate record commits to it
    tamper(h.home, ("UPDATE audit SET ts = '2000-01-01' WHERE id = 2", ()))
    with pytest.raises(pets.AuditError, match="audit record 2 was edited"):
        h.audit().verify()


def test_a_downgraded_copy_is_not_upgraded_over_a_signed_log(holder: pets.Holder) -> None:
    release(holder, 0.5)
    con = sqlite3.connect(holder.home / "pets.db", isolation_level=None)
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version VALUES (3)")
    con.close()
    with pytest.raises(pets.AuditError, match="is from before audit signing"):
        pets.Holder(holder.home)


# ---------------------------------------------------------------- the command line


def _pets(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PETS_AUDIT_KEY", "PETS_HOME")}
    return subprocess.run([sys.executable, "-m", "pets.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)


def test_cli_audit_head_and_verify_against_it(holder: pets.Holder, tmp_path: Path) -> None:
    release(holder, 0.5)
    p = _pets("audit", "head", "--home", str(holder.home))
    assert p.returncode == 0, p.stderr
    head = p.stdout.strip()
    assert Head.parse(head) == holder.audit().head()
    p = _pets("audit", "verify", "--home", str(holder.home), "--head", head)
    assert p.returncode == 0 and "intact; head 3 still in the log" in p.stdout, p.stderr
    p = _pets("audit", "verify", "--home", str(holder.home), "--head", "3:xyz")
    assert p.returncode == 2 and "head must be 'ID:HASH'" in p.stderr
    rollback(holder.home, 2)
    pub = tmp_path / "holder.pub"
    shutil.copy(holder.home / "audit-key.pub", pub)
    p = _pets("audit", "verify", "--home", str(holder.home), "--head", head, "--key", str(pub))
    assert p.returncode == 6
    assert "audit verification failed: the audit log was truncated or rolled back: the " \
           "pinned head names record 3, but the log ends at 2" in p.stderr
    p = _pets("audit", "verify", "--home", str(holder.home))
    assert p.returncode == 6 and "audit-key.head' names record 3" in p.stderr


def test_store_level_api_for_the_lead(tmp_path: Path) -> None:
    """What the release pipeline relies on: the store's policy_version check and the
    digest helper agree with the register record."""
    st = Store(tmp_path / "s")
    st.put_dataset("d", {"policy": {"columns": {}}})
    st.set_grant(ANALYST, "d", PURPOSE, epsilon=1.0)
    v = policy_version({"columns": {}})
    aid = st.charge(ANALYST, "d", PURPOSE, pets.Cost(0.5), {"kind": "dp", "policy_version": v})
    assert st.audit().records()[-1]["policy_version"] == v and aid == 3
    st.put_dataset("d", {"policy": {"columns": {"x": 1}}}, replace=True)
    assert st.audit().verify() is True  # the older release named the policy of its time
