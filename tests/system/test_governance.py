"""Governance end to end: each policy rule refuses with its rule name, column and a
message that says what to change; refusals are audited and spend nothing; the budget
is never overdrawn; the audit log detects tampering and never holds raw values."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

import pets
from pets import col

from ._util import ANALYST, PURPOSE, audit_text, column, policy, snapshot


def released_count(h: pets.Holder) -> int:
    return len(h.audit().records(status="released"))


def assert_refused(
    h: pets.Holder,
    s: pets.Session,
    release: Callable[[], object],
    *,
    rule: str,
    column: str | None,
    match: str,
    dataset: str | None = None,
) -> pets.PolicyError:
    """``release()`` raises PolicyError(rule, column) matching ``match``; one 'refused'
    audit record with that rule is appended; the budget is unchanged."""
    ds = dataset or h.datasets()[0]

    def budget() -> pets.Cost:
        return h.remaining(s.analyst, dataset=ds, purpose=s.purpose)

    left, n_released, n_audit = budget(), released_count(h), len(h.audit())
    with pytest.raises(pets.PolicyError, match=match) as info:
        release()
    err = info.value
    assert err.rule == rule
    assert err.column == column
    assert budget() == left
    assert released_count(h) == n_released
    assert len(h.audit()) == n_audit + 1
    last = h.audit().records()[-1]
    assert last["status"] == "refused"
    assert last["rule"] == rule
    assert last["column"] == column
    assert (last["analyst"], last["purpose"], last["dataset"]) == (s.analyst, s.purpose, ds)
    assert h.audit().verify() is True
    return err


# =====================================================================================
# The negative list
# =====================================================================================

NEGATIVE = {
    "filter": lambda s: s.table("adult").filter(col("fnlwgt") > 100_000).agg(n=pets.count()),
    "filter-inside-or": lambda s: s.table("adult")
    .filter((col("age") > 30) | ~(col("fnlwgt") < 5))
    .agg(n=pets.count()),
    "isin": lambda s: s.table("adult").filter(col("fnlwgt").isin([77516])).agg(n=pets.count()),
    "group_by": lambda s: s.table("adult").group_by("fnlwgt", keys=[77516]).agg(n=pets.count()),
    "count": lambda s: s.table("adult").agg(n=pets.count("fnlwgt")),
    "sum": lambda s: s.table("adult").agg(w=pets.sum("fnlwgt", bounds=(0, 1_500_000))),
    "mean": lambda s: s.table("adult").group_by("sex").agg(w=pets.mean("fnlwgt", bounds=(0, 1e6))),
    "variance": lambda s: s.table("adult").agg(w=pets.variance("fnlwgt", bounds=(0, 1e6))),
}


@pytest.mark.parametrize("where", list(NEGATIVE))
def test_a_negative_list_column_is_refused_wherever_it_appears(holder, session, where):
    q = NEGATIVE[where](session)
    err = assert_refused(
        holder, session, lambda: session.release(q, pets.DP(epsilon=0.1)),
        rule="negative_list", column="fnlwgt", match=r"'fnlwgt' is on the dataset's negative list",
    )
    assert "remove it" in str(err)


def test_a_negative_list_refusal_is_explained_without_being_recorded(holder, session):
    n = len(holder.audit())
    e = session.explain(NEGATIVE["sum"](session), pets.DP(epsilon=0.1))
    assert (e.allowed, e.rule, e.column) == (False, "negative_list", "fnlwgt")
    assert len(holder.audit()) == n


# =====================================================================================
# Default deny, grades, identifiers, the ε cap, public keys
# =====================================================================================


@pytest.fixture
def governed(tmp_path: Path):
    """A DataFrame source under a dict policy that exercises every column rule:
    ``person_id`` identifier, ``region`` public with keys, ``age`` grade 2 with bounds,
    ``income`` grade 3 (ε cap 1.0, min group size 10), ``core`` grade 4 (allow = []),
    ``unlisted`` not in the policy at all."""
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame(
        {
            "person_id": [f"P-{i:05d}" for i in range(n)],
            "region": rng.choice(["north", "south", "east"], size=n),
            "age": rng.integers(18, 90, size=n),
            "income": rng.integers(0, 200_000, size=n).astype(float),
            "core": rng.integers(0, 10, size=n),
            "unlisted": rng.integers(0, 10, size=n),
        }
    )
    pol = policy(
        {
            "person_id": column("identifier", 1),
            "region": column("quasi_identifier", 1, keys=["north", "south", "east", "west"]),
            "age": column("quasi_identifier", 2, bounds=[17, 90]),
            "income": column("sensitive", 3, bounds=[0, 200_000]),
            "core": column("sensitive", 4, bounds=[0, 10]),
        }
    )
    h = pets.Holder(tmp_path / "home")
    h.register("people", df, pol)
    h.grant(ANALYST, dataset="people", purpose=PURPOSE, epsilon=5.0)
    return h, h.session(ANALYST, purpose=PURPOSE)


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.table("people").filter(col("unlisted") > 3).agg(n=pets.count()),
        lambda s: s.table("people").group_by("unlisted", keys=[1, 2]).agg(n=pets.count()),
        lambda s: s.table("people").agg(t=pets.sum("unlisted", bounds=(0, 10))),
    ],
    ids=["filter", "group_by", "sum"],
)
def test_a_column_the_policy_does_not_list_is_denied_by_default(governed, build):
    h, s = governed
    err = assert_refused(
        h, s, lambda: s.release(build(s), pets.DP(epsilon=0.1)),
        rule="default_deny", column="unlisted", match=r"'unlisted' is not listed in the policy",
    )
    assert "[columns.unlisted]" in str(err)


def test_a_grade_whose_allow_list_is_empty_refuses_dp(governed):
    h, s = governed
    q = s.table("people").group_by("region").agg(t=pets.sum("core"))
    err = assert_refused(
        h, s, lambda: s.release(q, pets.DP(epsilon=0.1)),
        rule="grade", column="core", match=r"'core' is grade 4, which does not allow 'dp'",
    )
    assert "allows: nothing" in str(err)
    assert list(err.allowed) == []


def test_epsilon_above_the_grade_cap_is_refused_and_at_the_cap_is_allowed(governed):
    h, s = governed
    q = s.table("people").group_by("region").agg(t=pets.sum("income"))
    err = assert_refused(
        h, s, lambda: s.release(q, pets.DP(epsilon=1.5)),
        rule="max_epsilon", column="income", match=r"epsilon=1\.5 is above the cap of 1 .*'income'",
    )
    assert err.allowed == 1.0
    r = s.release(q, pets.DP(epsilon=1.0))
    assert r.spent == pets.Cost(1.0)


def test_the_epsilon_cap_applies_to_a_capped_column_used_only_in_a_filter(governed):
    h, s = governed
    q = s.table("people").filter(col("income") > 1000).group_by("region").agg(n=pets.count())
    assert_refused(
        h, s, lambda: s.release(q, pets.DP(epsilon=1.01)),
        rule="max_epsilon", column="income", match="above the cap",
    )


def test_adult_capital_gain_is_capped_at_epsilon_one_per_release(holder, session):
    q = session.table("adult").group_by("sex").agg(g=pets.sum("capital-gain"))
    assert_refused(
        holder, session, lambda: session.release(q, pets.DP(epsilon=1.5)),
        rule="max_epsilon", column="capital-gain",
        match=r"epsilon=1\.5 is above the cap of 1 per release for column 'capital-gain'",
    )


def test_grouping_by_an_identifier_is_refused(governed):
    h, s = governed
    q = s.table("people").group_by("person_id", keys=["P-00001", "P-00002"]).agg(n=pets.count())
    assert_refused(
        h, s, lambda: s.release(q, pets.DP(epsilon=0.1)),
        rule="identifier_group_by", column="person_id", match=r"'person_id' is an identifier",
    )


def test_aggregating_an_identifier_is_refused(governed):
    h, s = governed
    q = s.table("people").agg(n=pets.count("person_id"))
    assert_refused(
        h, s, lambda: s.release(q, pets.DP(epsilon=0.1)),
        rule="identifier", column="person_id", match=r"'person_id' is an identifier",
    )


def test_grouping_by_a_column_without_public_keys_is_refused(governed):
    h, s = governed
    q = s.table("people").group_by("age").agg(n=pets.count())
    err = assert_refused(
        h, s, lambda: s.release(q, pets.DP(epsilon=0.1)),
        rule="public_keys", column="age", match=r"group-by column 'age' has no public keys",
    )
    assert "keys=[...]" in str(err)


def test_adult_group_by_on_age_without_keys_is_refused_but_with_keys_is_released(holder, session):
    q = session.table("adult").group_by("age").agg(n=pets.count())
    assert_refused(
        holder, session, lambda: session.release(q, pets.DP(epsilon=0.1)),
        rule="public_keys", column="age", match="no public keys",
    )
    r = session.release(
        session.table("adult").group_by("age", keys=list(range(17, 91))).agg(n=pets.count()),
        pets.DP(epsilon=0.1),
    )
    assert list(r.df["age"]) == list(range(17, 91))


# =====================================================================================
# Grants and purposes
# =====================================================================================


def test_an_analyst_without_a_grant_is_refused_by_no_grant(holder):
    bob = holder.session("bob", purpose=PURPOSE)
    q = bob.table("adult").group_by("sex").agg(n=pets.count())
    err = assert_refused(
        holder, bob, lambda: bob.release(q, pets.DP(epsilon=0.1)),
        rule="no_grant", column=None, match=r"'bob' has no grant for dataset 'adult'",
    )
    assert "holder.grant" in str(err)


def test_a_grant_for_another_purpose_does_not_count(holder):
    other = holder.session(ANALYST, purpose="marketing")
    q = other.table("adult").group_by("sex").agg(n=pets.count())
    assert_refused(
        holder, other, lambda: other.release(q, pets.DP(epsilon=0.1)),
        rule="no_grant", column=None, match=r"purpose 'marketing'",
    )
    e = other.explain(q, pets.DP(epsilon=0.1))
    assert (e.allowed, e.rule) == (False, "no_grant")


def test_a_revoked_grant_refuses_and_keeps_what_was_spent(holder, session):
    session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.3))
    holder.revoke(ANALYST, dataset="adult", purpose=PURPOSE)
    q = session.table("adult").agg(n=pets.count())
    with pytest.raises(pets.PolicyError) as info:
        session.release(q, pets.DP(epsilon=0.1))
    assert info.value.rule == "no_grant"
    holder.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=2.0)
    assert session.remaining() == pets.Cost(1.7)


@pytest.mark.parametrize("purpose", ["*", "any", "all", "labour-*", " * "])
def test_a_wildcard_purpose_is_refused_for_sessions_and_grants(holder, purpose):
    n = len(holder.audit())
    with pytest.raises(pets.PolicyError, match="wildcard") as info:
        holder.session(ANALYST, purpose=purpose)
    assert info.value.rule == "purpose"
    with pytest.raises(pets.PolicyError, match="wildcard") as info:
        holder.grant(ANALYST, dataset="adult", purpose=purpose, epsilon=1.0)
    assert info.value.rule == "purpose"
    assert holder.grants(ANALYST)["purpose"].tolist() == [PURPOSE]
    assert len(holder.audit()) == n


# =====================================================================================
# Minimum group size
# =====================================================================================


@pytest.fixture
def small_groups(tmp_path: Path):
    """Group sizes a=50, b=3, c=0 (absent), d=12, e=10 under a grade-3 key column with
    min_group_size 10 (no ε cap, so a huge ε makes the noise 0 with probability
    1 − O(e^-1000))."""
    sizes = {"a": 50, "b": 3, "d": 12, "e": 10}
    g = [k for k, n in sizes.items() for _ in range(n)]
    df = pd.DataFrame({"g": g, "region": ["r1"] * len(g), "v": np.arange(len(g)) % 7})
    grades = {"1": {"allow": ["dp"]}, "3": {"allow": ["dp"], "min_group_size": 10}}
    pol = policy(
        {
            "g": column("sensitive", 3, keys=["a", "b", "c", "d", "e"]),
            "region": column("attribute", 1, keys=["r1", "r2"]),
            "v": column("sensitive", 3, bounds=[0, 6]),
        },
        grades=grades,
    )
    h = pets.Holder(tmp_path / "home")
    h.register("small", df, pol)
    h.grant(ANALYST, dataset="small", purpose=PURPOSE, epsilon=1e5)
    return h, h.session(ANALYST, purpose=PURPOSE)


def test_cells_whose_noisy_count_is_below_the_minimum_are_nan_and_counted(small_groups):
    h, s = small_groups
    q = s.table("small").group_by("g").agg(n=pets.count(), m=pets.mean("v"))
    r = s.release(q, pets.DP(epsilon=1e4))
    df = r.df.set_index("g")
    assert r.suppressed == 2
    assert df.loc[["b", "c"], ["n", "m"]].isna().all().all()
    assert df.loc["a", "n"] == 50 and df.loc["d", "n"] == 12 and df.loc["e", "n"] == 10
    assert df.loc[["a", "d", "e"], "m"].notna().all()
    ci = r.ci(0.95)
    hidden = ci[ci["g"].isin(["b", "c"])]
    assert hidden[["value", "lower", "upper"]].isna().all().all()
    assert ci[ci["g"].isin(["a", "d", "e"])][["value", "lower", "upper"]].notna().all().all()


def test_min_group_size_applies_when_a_graded_column_is_only_aggregated(small_groups):
    h, s = small_groups
    q = s.table("small").group_by("region").agg(m=pets.mean("v"))
    r = s.release(q, pets.DP(epsilon=1e4))
    df = r.df.set_index("region")
    assert r.suppressed == 1  # r2 has no rows
    assert np.isnan(df.loc["r2", "m"]) and not np.isnan(df.loc["r1", "m"])


# =====================================================================================
# The budget
# =====================================================================================


def _distinct(session, i: int):
    """A different query for each i (identical queries get their recorded answer free)."""
    return session.table("adult").filter(pets.col("age") >= 10 - i).group_by("sex").agg(n=pets.count())


def test_budget_exceeded_names_asked_and_left_and_changes_no_budget(holder, session):
    q = session.table("adult").group_by("sex").agg(n=pets.count())
    for i in range(7):
        session.release(_distinct(session, i), pets.DP(epsilon=0.1))
    session.release(_distinct(session, 100), pets.DP(epsilon=1.0))
    assert session.remaining() == pets.Cost(0.3)
    n_audit, n_released = len(holder.audit()), released_count(holder)
    with pytest.raises(pets.BudgetExceeded, match=r"asks epsilon=0\.5.*only epsilon=0\.3") as info:
        session.release(q, pets.DP(epsilon=0.5))
    assert info.value.asked == pets.Cost(0.5)
    assert info.value.left == pets.Cost(0.3)
    assert isinstance(info.value.asked, pets.Cost) and isinstance(info.value.left, pets.Cost)
    assert session.remaining() == pets.Cost(0.3)
    assert released_count(holder) == n_released
    assert len(holder.audit()) == n_audit + 1
    last = holder.audit().records()[-1]
    assert (last["status"], last["rule"]) == ("refused", "budget")
    # what is left can still be spent to the last bit
    assert session.release(_distinct(session, 200), pets.DP(epsilon=0.3)).spent == pets.Cost(0.3)
    assert session.remaining() == pets.Cost(0.0)
    with pytest.raises(pets.BudgetExceeded):
        session.release(_distinct(session, 300), pets.DP(epsilon=1e-9))
    assert holder.audit().verify() is True


def test_budget_is_per_analyst_dataset_and_purpose(holder, session):
    holder.grant("bob", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    bob = holder.session("bob", purpose=PURPOSE)
    session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.75))
    assert session.remaining() == pets.Cost(1.25)
    assert bob.remaining() == pets.Cost(1.0)


# =====================================================================================
# The audit log: tampering through SQLite, and no raw values
# =====================================================================================


@pytest.fixture
def audited(holder, session):
    """The registration (record 1) and the grant (record 2), then four releases and one
    refusal on the Adult holder: records 3 … 7."""
    for i in range(4):
        session.release(_distinct(session, i), pets.DP(epsilon=0.1))
    with pytest.raises(pets.PolicyError):
        session.release(NEGATIVE["filter"](session), pets.DP(epsilon=0.1))
    assert len(holder.audit()) == 7
    return holder


def tamper(h: pets.Holder, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(h.home / "pets.db", isolation_level=None)
    try:
        con.execute("BEGIN")
        for sql, args in statements:
            con.execute(sql, args)
        con.execute("COMMIT")
    finally:
        con.close()


def test_an_untampered_audit_log_verifies_from_this_and_a_new_holder(audited):
    assert audited.audit().verify() is True
    assert pets.Holder(audited.home).audit().verify() is True
    statuses = [r["status"] for r in audited.audit().records()]
    assert statuses == ["recorded"] * 2 + ["released"] * 4 + ["refused"]


def test_editing_a_record_body_is_detected_naming_the_record(audited):
    body = sqlite3.connect(audited.home / "pets.db").execute(
        "SELECT body FROM audit WHERE id = 2").fetchone()[0]
    edited = json.loads(body)
    edited["cells"] = 1
    tamper(audited, ("UPDATE audit SET body = ? WHERE id = 2", (json.dumps(edited),)))
    with pytest.raises(pets.AuditError, match=r"audit record 2 was edited") as info:
        audited.audit().verify()
    assert info.value.record == 2
    with pytest.raises(pets.AuditError, match=r"record 2"):
        pets.Holder(audited.home).audit().verify()


def test_editing_the_analyst_of_a_refusal_is_detected(audited):
    tamper(audited, ("UPDATE audit SET analyst = 'mallory' WHERE id = 7", ()))
    with pytest.raises(pets.AuditError, match=r"audit record 7 was edited") as info:
        audited.audit().verify()
    assert info.value.record == 7


def test_deleting_a_record_is_detected_naming_the_missing_record(audited):
    tamper(audited, ("DELETE FROM audit WHERE id = 3", ()))
    with pytest.raises(pets.AuditError, match=r"audit record 3 is missing") as info:
        audited.audit().verify()
    assert info.value.record == 3


def test_reordering_records_is_detected_naming_the_first_out_of_place(audited):
    tamper(
        audited,
        ("UPDATE audit SET id = -1 WHERE id = 2", ()),
        ("UPDATE audit SET id = 2 WHERE id = 3", ()),
        ("UPDATE audit SET id = 3 WHERE id = -1", ()),
    )
    with pytest.raises(pets.AuditError, match=r"out of order at record 2") as info:
        audited.audit().verify()
    assert info.value.record == 2


def test_deleting_the_newest_record_is_detected(audited):
    tamper(audited, ("DELETE FROM audit WHERE id = 7", ()))
    with pytest.raises(pets.AuditError, match=r"newest audit record\(s\) were removed") as info:
        audited.audit().verify()
    assert info.value.record == 7


def test_deleting_a_ledger_charge_neither_refunds_budget_nor_goes_unnoticed(audited, session):
    left = session.remaining()
    tamper(audited, ("DELETE FROM ledger WHERE audit_id = 3", ()))
    assert session.remaining() == left  # the running total still counts it ...
    with pytest.raises(pets.AuditError, match=r"audit record 3 .*ledger row is missing") as info:
        audited.audit().verify()  # ... and the audit says so
    assert info.value.record == 3


SECRET = "SECRET-XYZZY-4711"
SECRET_NUMBER = 987654.125


def test_audit_records_and_error_messages_never_contain_raw_values(tmp_path: Path):
    """A value that occurs only in the data (a string in a sensitive column and a
    number in a sensitive numeric column) appears in no audit record, nowhere in the
    SQLite file, and in no error message, across releases, refusals and errors."""
    n = 61
    df = pd.DataFrame(
        {
            "region": (["north", "south"] * n)[:n],
            "diagnosis": [SECRET] + ["flu", "cold", "none"] * ((n - 1) // 3),
            "income": [SECRET_NUMBER] + [float(1000 + i) for i in range(n - 1)],
            "note": [SECRET] * n,
        }
    )
    pol = policy(
        {
            "region": column("attribute", 1, keys=["north", "south"]),
            "diagnosis": column("sensitive", 3),
            "income": column("sensitive", 3, bounds=[0, 1_000_000]),
            "note": column("sensitive", 4),
        },
        negative_list=[],
    )
    h = pets.Holder(tmp_path / "home")
    h.register("clinic", df, pol)
    h.grant(ANALYST, dataset="clinic", purpose=PURPOSE, epsilon=10.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    messages: list[str] = []

    q = s.table("clinic").group_by("region").agg(
        n=pets.count(), d=pets.count("diagnosis"), m=pets.mean("income"), t=pets.sum("income")
    )
    r = s.release(q, pets.DP(epsilon=1.0))
    messages += [repr(r), r.df.to_string(), r.ci().to_string(), str(s.explain(q, pets.DP(epsilon=1.0)))]
    bad = [
        lambda: s.release(s.table("clinic").agg(n=pets.count("note")), pets.DP(epsilon=0.1)),
        lambda: s.release(s.table("clinic").group_by("diagnosis").agg(n=pets.count()), pets.DP(epsilon=0.1)),
        lambda: s.release(s.table("clinic").filter(col("diagnosis") > 5).agg(n=pets.count()), pets.DP(epsilon=0.1)),
        lambda: s.release(s.table("clinic").filter(col("diagnosis") == 5).agg(n=pets.count()), pets.DP(epsilon=0.1)),
        lambda: s.release(s.table("clinic").filter(col("income") == "x").agg(n=pets.count()), pets.DP(epsilon=0.1)),
        lambda: s.release(s.table("clinic").agg(n=pets.sum("diagnosis", bounds=(0, 1))), pets.DP(epsilon=0.1)),
        lambda: s.release(s.table("clinic").agg(n=pets.count("diagnosiss")), pets.DP(epsilon=0.1)),
        lambda: s.release(q, pets.DP(epsilon=100.0)),
    ]
    for b in bad:
        with pytest.raises(pets.PetsError) as info:
            b()
        messages.append(str(info.value))
        messages.append(repr(info.value))
    assert len(h.audit()) >= 3
    text = audit_text(h)
    for needle in (SECRET, "XYZZY", "987654"):
        assert needle not in text
        for m in messages:
            assert needle not in m, m
    for f in h.home.glob("pets.db*"):
        raw = f.read_bytes()
        assert SECRET.encode() not in raw and b"XYZZY" not in raw, f.name
