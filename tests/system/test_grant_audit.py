"""Grants, their changes and revocations, and API keys are audit records, written in the
transaction of the change: an auditor reads from the log who was given which budget,
when, and when it was changed or revoked — and a grant changed behind pets' back is
caught by verification."""

from __future__ import annotations

import sqlite3

import pytest

import pets
from pets import col

from ._util import ANALYST, PURPOSE, snapshot

ADULT = "adult"


def grant_log(h: pets.Holder) -> list[tuple]:
    """(kind, analyst, dataset, purpose, new terms or None, previous terms or None)."""
    out = []
    for r in h.audit().records(status="recorded"):
        if r["kind"] not in ("grant", "revoke"):
            continue
        new = (r["epsilon"], r["delta"], r["accounting"]) if r["kind"] == "grant" else None
        prev = r["previous"]
        old = None if prev is None else (prev["epsilon"], prev["delta"], prev["accounting"])
        out.append((r["kind"], r["analyst"], r["dataset"], r["purpose"], new, old))
    return out


def grants_from_the_log(h: pets.Holder) -> dict[tuple[str, str, str], tuple]:
    """The grants in force, read back from the audit log alone."""
    state: dict[tuple[str, str, str], tuple] = {}
    for kind, a, d, p, new, _ in grant_log(h):
        if kind == "grant":
            state[(a, d, p)] = new
        else:
            del state[(a, d, p)]
    return state


def test_the_history_of_a_grant_is_read_back_from_the_audit_log(holder: pets.Holder) -> None:
    h = holder  # adult was registered (record 1), alice granted ε = 2 on it (record 2)
    s = h.session(ANALYST, purpose=PURPOSE)
    r1 = s.release(s.table(ADULT).agg(n=pets.count()), pets.DP(epsilon=0.5))
    h.grant(ANALYST, dataset=ADULT, purpose=PURPOSE, epsilon=3.0, delta=1e-6)  # raised
    h.grant("bob", dataset=ADULT, purpose="census", epsilon=1.0, delta=1e-6, accounting="zcdp")
    h.revoke(ANALYST, dataset=ADULT, purpose=PURPOSE)
    with pytest.raises(pets.PolicyError) as e:
        s.release(s.table(ADULT).filter(col("age") >= 30).agg(n=pets.count()), pets.DP(epsilon=0.1))
    assert e.value.rule == "no_grant"

    assert grant_log(h) == [
        ("grant", ANALYST, ADULT, PURPOSE, (2.0, 0.0, "basic"), None),
        ("grant", ANALYST, ADULT, PURPOSE, (3.0, 1e-6, "basic"), (2.0, 0.0, "basic")),
        ("grant", "bob", ADULT, "census", (1.0, 1e-6, "zcdp"), None),
        ("revoke", ANALYST, ADULT, PURPOSE, None, (3.0, 1e-6, "basic")),
    ]
    # the whole log, in order: grants interleave with releases and refusals by time
    recs = h.audit().records()
    assert [(r["kind"], r["status"]) for r in recs] == [
        ("register", "recorded"), ("grant", "recorded"), ("dp", "released"), ("grant", "recorded"), ("grant", "recorded"),
        ("revoke", "recorded"), ("dp", "refused"),
    ]
    assert recs[2]["id"] == r1.audit_id
    assert [r["ts"] for r in recs] == sorted(r["ts"] for r in recs)
    assert all(r["by"] == "holder" for r in recs if r["status"] == "recorded")
    # the grants in force are exactly what the log says
    assert grants_from_the_log(h) == {
        (g["analyst"], g["dataset"], g["purpose"]): (g["epsilon"], g["delta"], g["accounting"])
        for g in h.grants().to_dict("records")
    } == {("bob", ADULT, "census"): (1.0, 1e-6, "zcdp")}
    # spent budget stays on the ledger: one charge, counted once, grants are not releases
    assert len(h.audit().records(status="released")) == 1 == len(h._store.ledger())
    df = h.audit().to_dataframe(kind="grant")
    assert list(df["analyst"]) == [ANALYST, ANALYST, "bob"]
    assert list(df["epsilon"]) == [2.0, 3.0, 1.0]
    assert pets.Holder(h.home).audit().verify() is True


def test_a_refused_grant_or_revocation_writes_no_record(holder: pets.Holder) -> None:
    h = holder
    s = h.session(ANALYST, purpose=PURPOSE)
    s.release(s.table(ADULT).agg(n=pets.count()), pets.DP(epsilon=0.5))
    before = snapshot(h, s)
    bad = [
        (pets.QueryError, {"dataset": ADULT, "purpose": PURPOSE, "epsilon": 0}),
        (pets.QueryError, {"dataset": ADULT, "purpose": PURPOSE, "epsilon": float("nan")}),
        (pets.QueryError, {"dataset": ADULT, "purpose": PURPOSE, "epsilon": 1.0, "delta": 1.0}),
        (pets.QueryError, {"dataset": "nope", "purpose": PURPOSE, "epsilon": 1.0}),
        (pets.PolicyError, {"dataset": ADULT, "purpose": "*", "epsilon": 1.0}),
        # alice has spent under basic accounting: switching to zCDP is refused
        (pets.QueryError, {"dataset": ADULT, "purpose": PURPOSE, "epsilon": 2.0, "delta": 1e-6,
                           "accounting": "zcdp"}),
    ]
    for err, kwargs in bad:
        with pytest.raises(err):
            h.grant(ANALYST, **kwargs)
    h.revoke("bob", dataset=ADULT, purpose=PURPOSE)  # no such grant
    h.grant(ANALYST, dataset=ADULT, purpose=PURPOSE, epsilon=2.0)  # the terms it has
    assert snapshot(h, s) == before
    assert h.grants()["epsilon"].tolist() == [2.0]


def test_issued_api_keys_are_audited_without_the_key(holder: pets.Holder) -> None:
    key = holder.issue_key("bob")
    (rec,) = holder.audit().records(kind="key")
    assert (rec["analyst"], rec["status"], rec["action"], rec["keys"]) == ("bob", "recorded",
                                                                          "issued", 1)
    assert key not in str(holder.audit().records())
    assert holder.audit().verify() is True


def test_a_budget_raised_in_sqlite_is_caught_by_the_auditor(holder: pets.Holder) -> None:
    s = holder.session(ANALYST, purpose=PURPOSE)
    s.release(s.table(ADULT).agg(n=pets.count()), pets.DP(epsilon=1.0))
    con = sqlite3.connect(holder.home / "pets.db", isolation_level=None)
    con.execute("UPDATE grants SET epsilon = 1000.0, epsilon_text = '1000.0'")
    con.close()
    assert s.remaining() == pets.Cost(999.0)  # the holder's tables now allow it ...
    with pytest.raises(pets.AuditError, match=r"the grant of alice on adult \(purpose "
                       r"labour-stats\) is epsilon=1000.0.*audit records say epsilon=2.0"
                       ) as e:
        pets.Holder(holder.home).audit().verify()  # ... and the auditor sees it
    assert e.value.record == 2  # the grant record the table no longer matches
