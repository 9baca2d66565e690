"""Dummy tables (issue 10, item 4): ``s.dummy(dataset, rows, seed)`` and
``s.release(query, protection, dummy=True)``.

A dummy has the dataset's columns, types, bounds and public keys and nothing else: it is
generated from the policy and the stored schema, never from the rows. Asking for one
needs the same grant as a release and spends nothing; a dummy release runs the same
pipeline on it and leaves the real ledger, quota and audit log alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pets
from pets.dummy import MAX_DUMMY_ROWS, MISSING_SHARE, dummy_frame
from pets.engines.duckdb import DuckDBEngine

from ._util import ANALYST, PURPOSE, column, policy, snapshot

ADULT_POLICY = pets.Policy.load(pets.example_policy())
BOUNDED = {c: cp.bounds for c, cp in ADULT_POLICY.columns.items() if cp.bounds is not None}
KEYED = {c: cp.keys for c, cp in ADULT_POLICY.columns.items() if cp.keys is not None}
QUASI = [c for c, cp in ADULT_POLICY.columns.items() if cp.role == "quasi_identifier"]


def _adult_text(rows: int | None = None) -> pd.DataFrame:
    df = pd.read_csv(pets.example_data(), dtype=str, skipinitialspace=True, keep_default_na=False)
    return df if rows is None else df.head(rows).copy()


# ------------------------------------------------------------------ what a dummy holds
def test_the_dummy_has_the_columns_an_analyst_may_know_with_their_stored_types(
        session: pets.Session, holder: pets.Holder) -> None:
    df = session.dummy("adult", rows=300, seed=1)
    stored = holder._store.get_dataset("adult")["schema"]
    listed = [c for c in stored if c in ADULT_POLICY.columns]
    assert list(df.columns) == listed  # the stored order; no fnlwgt (negative list)
    assert "fnlwgt" in stored and "fnlwgt" not in df.columns
    assert len(df) == 300 and list(df.index) == list(range(300))
    # DuckDB reads the dummy with the types the real dataset was registered with
    assert DuckDBEngine().schema_of_frame(df) == {c: stored[c] for c in listed}
    for c in listed:
        if stored[c] == "int":
            assert pd.api.types.is_integer_dtype(df[c]), c
        else:
            assert stored[c] == "str"
            assert all(isinstance(v, str) for v in df[c].dropna()), c


def test_values_stay_within_the_bounds_and_the_public_keys(session: pets.Session) -> None:
    df = session.dummy("adult", rows=5000, seed=7)
    for c, (lo, hi) in BOUNDED.items():
        v = df[c].dropna().astype("int64")
        assert lo <= v.min() and v.max() <= hi, c
        assert v.nunique() > min(hi - lo, 50) * 0.5, c  # spread over the bounds, not one value
    for c, keys in KEYED.items():
        seen = set(df[c].dropna())
        assert seen <= set(keys), c
        if len(keys) <= 16:  # 5000 uniform draws: every key of a small key set shows up
            assert seen == set(keys), c


def test_missing_values_only_in_attribute_and_sensitive_columns(session: pets.Session) -> None:
    df = session.dummy("adult", rows=5000, seed=3)
    for c, cp in ADULT_POLICY.columns.items():
        if c in ADULT_POLICY.negative_list:
            continue
        share = df[c].isna().mean()
        if cp.role in ("attribute", "sensitive"):
            # 2% of 5000: 100 expected; outside [0.5%, 4%] has probability < 1e-9
            assert 0.005 < share < 0.04, (c, share)
        else:
            assert share == 0, c


UNIT_POLICY = policy(
    {
        "person_id": column("identifier"),
        "visit_id": column("identifier"),
        "clinic": column("attribute", keys=["north", "south", "east"]),
        "cost": column("attribute", bounds=[0.5, 99.5], type="float"),
        "visits": column("attribute", bounds=[1, 12], type="int"),
        "note": column("attribute"),
        "flag": column("attribute"),
        "seen_on": column("attribute"),
        "level": column("attribute"),
        "weight": column("attribute"),
    },
    dataset={"privacy_unit": "person_id", "max_groups": 2, "max_rows_per_group": 3},
)


def unit_data(seed: int, persons: int = 40) -> pd.DataFrame:
    r = np.random.default_rng(seed)  # test data only
    n = persons * 3
    return pd.DataFrame({
        "person_id": np.repeat([f"REAL{i:04d}" for i in range(persons)], 3),
        "visit_id": np.arange(10_000, 10_000 + n),
        "clinic": r.choice(["north", "south", "east"], n),
        "cost": r.uniform(1, 99, n),
        "visits": r.integers(1, 12, n),
        "note": r.choice(["secret-a", "secret-b"], n),
        "flag": r.integers(0, 2, n).astype(bool),
        "seen_on": pd.Timestamp("1990-01-01") + pd.to_timedelta(r.integers(0, 999, n), unit="D"),
        "level": r.integers(1000, 2000, n),
        "weight": r.uniform(500, 600, n),
        "unlisted": r.integers(0, 9, n),  # default deny: never in the dummy
    })


def _unit_holder(root: Path, df: pd.DataFrame) -> pets.Holder:
    h = pets.Holder(root)
    h.register("visits", df, UNIT_POLICY)
    h.grant(ANALYST, dataset="visits", purpose=PURPOSE, epsilon=5.0)
    return h


def test_identifiers_are_fake_and_persons_have_several_rows(tmp_path: Path) -> None:
    real = unit_data(1)
    h = _unit_holder(tmp_path / "h", real)
    df = h.session(ANALYST, purpose=PURPOSE).dummy("visits", rows=2000, seed=5)
    assert "unlisted" not in df.columns
    assert set(df.person_id.str.fullmatch(r"person-\d{6}")) == {True}
    assert not set(df.person_id) & set(real.person_id)
    per_person = df.person_id.value_counts()
    assert per_person.max() > 1 and per_person.max() <= 6  # max_groups × max_rows_per_group
    assert per_person.min() >= 1 and len(per_person) > 2000 / 6
    # another identifier: one fake id per row, of the stored type (int)
    assert pd.api.types.is_integer_dtype(df.visit_id)
    assert df.visit_id.is_unique and not set(df.visit_id) & set(real.visit_id)


def test_columns_without_bounds_or_keys_get_placeholders(tmp_path: Path) -> None:
    real = unit_data(1)
    h = _unit_holder(tmp_path / "h", real)
    df = h.session(ANALYST, purpose=PURPOSE).dummy("visits", rows=3000, seed=2)
    stored = h._store.get_dataset("visits")["schema"]
    assert DuckDBEngine().schema_of_frame(df) == {c: stored[c] for c in df.columns}
    assert stored["seen_on"] == "date" and stored["flag"] == "bool"
    assert set(df.note) == {f"note-{i}" for i in range(1, 11)}
    assert set(df.flag) == {True, False}
    dates = pd.to_datetime(df.seen_on)
    assert dates.min() >= pd.Timestamp("2000-01-01") and dates.max() <= pd.Timestamp("2024-12-31")
    assert df.level.between(0, 99).all() and pd.api.types.is_integer_dtype(df.level)
    assert df.weight.between(0, 100).all() and df.weight.dtype == "float64"
    assert df.cost.between(0.5, 99.5).all() and df.cost.dtype == "float64"
    assert df.visits.between(1, 12).all() and set(df.visits) == set(range(1, 13))
    assert set(df.clinic) == {"north", "south", "east"}
    assert not df.isna().any().any()  # the policy declares no missing markers


def test_the_same_seed_gives_the_same_dummy(session: pets.Session) -> None:
    a = session.dummy("adult", rows=400, seed=11)
    pd.testing.assert_frame_equal(a, session.dummy("adult", rows=400, seed=11))
    assert not a.equals(session.dummy("adult", rows=400, seed=12))
    assert not session.dummy("adult", rows=400).equals(session.dummy("adult", rows=400))
    # a column's values do not depend on the other columns (each has its own stream)
    pol = ADULT_POLICY.to_dict()
    del pol["columns"]["race"]
    schema = {c: t for c, t in session._holder._store.get_dataset("adult")["schema"].items()}
    fewer = dummy_frame(pets.Policy.from_dict(pol), schema, rows=400, seed=11)
    pd.testing.assert_series_equal(fewer["age"], a["age"])


# ------------------------------------------------------------------ never from the rows
def test_different_data_under_the_same_policy_gives_the_same_dummy(tmp_path: Path) -> None:
    one = _unit_holder(tmp_path / "one", unit_data(1, persons=40))
    other = _unit_holder(tmp_path / "other", unit_data(2, persons=90))
    assert one._store.get_dataset("visits")["schema"] == other._store.get_dataset("visits")["schema"]
    a = one.session(ANALYST, purpose=PURPOSE).dummy("visits", rows=500, seed=4)
    b = other.session(ANALYST, purpose=PURPOSE).dummy("visits", rows=500, seed=4)
    pd.testing.assert_frame_equal(a, b)


def test_adult_tables_of_different_rows_give_the_same_dummy(tmp_path: Path) -> None:
    frames = []
    for name, df in (("head", _adult_text(200)), ("tail", _adult_text().tail(900))):
        path = tmp_path / f"{name}.csv"
        df.to_csv(path, index=False)
        h = pets.Holder(tmp_path / name)
        h.register("adult", path, pets.example_policy())
        h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1.0)
        frames.append(h.session(ANALYST, purpose=PURPOSE).dummy("adult", rows=300, seed=9))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_the_dummy_never_reads_the_rows(tmp_path: Path) -> None:
    """Registered in place, then the file's rows are deleted: a real release fails, the
    dummy and a dummy release do not notice."""
    path = tmp_path / "adult.csv"
    _adult_text(500).to_csv(path, index=False)
    h = pets.Holder(tmp_path / "home")
    h.register("adult", path, pets.example_policy())
    h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    before = s.dummy("adult", rows=200, seed=1)
    q = s.table("adult").group_by("sex").agg(n=pets.count())
    path.write_text(path.read_text().splitlines()[0] + "\n")  # the header only
    with pytest.raises(pets.DataError):
        s.release(q, pets.DP(epsilon=0.1))
    pd.testing.assert_frame_equal(s.dummy("adult", rows=200, seed=1), before)
    r = s.release(q, pets.DP(epsilon=0.1), dummy=True, rows=200, seed=1)
    assert r.dummy and list(r.df.sex) == ["Female", "Male"]
    path.unlink()
    pd.testing.assert_frame_equal(s.dummy("adult", rows=200, seed=1), before)


# ------------------------------------------------------------------ grant, budget, audit
def test_a_dummy_spends_nothing_and_writes_nothing(holder: pets.Holder,
                                                   session: pets.Session) -> None:
    before = snapshot(holder, session)
    session.dummy("adult", rows=100, seed=1)
    q = session.table("adult").group_by("education").agg(n=pets.count())
    r = session.release(q, pets.DP(epsilon=0.5), dummy=True, rows=100)
    e = session.release(session.table("adult").select("age", "sex"), pets.KAnonymity(k=5),
                        dummy=True, rows=100)
    assert snapshot(holder, session) == before
    assert r.spent == pets.Cost(0.5, 0.0) and r.audit_id == 0 and r.dummy
    assert e.dummy and e.audit_id == 0 and e.extracts_left is None
    assert session.remaining() == pets.Cost(2.0, 0.0)


def test_dummy_extracts_do_not_use_the_real_quota(session: pets.Session) -> None:
    q = session.table("adult").select("age", "sex", "education")
    for _ in range(ADULT_POLICY.max_extracts + 1):  # max_extracts = 3
        assert session.release(q, pets.KAnonymity(k=5), dummy=True, rows=200).dummy
    real = session.release(q, pets.KAnonymity(k=5))
    assert not real.dummy and real.extracts_left == ADULT_POLICY.max_extracts - 1


def _error(fn: Any) -> tuple[Any, ...]:
    with pytest.raises(pets.PetsError) as info:
        fn()
    e = info.value
    return type(e), str(e), getattr(e, "rule", None), getattr(e, "column", None)


@pytest.mark.parametrize("who", [("mallory", PURPOSE), (ANALYST, "another-purpose")],
                         ids=["no grant at all", "grant for another purpose"])
def test_without_a_grant_the_dummy_is_refused_as_a_release_is(holder: pets.Holder,
                                                              who: tuple[str, str]) -> None:
    s = holder.session(who[0], purpose=who[1])
    q = pets.Query("adult").group_by("sex").agg(n=pets.count())
    real = _error(lambda: s.release(q, pets.DP(epsilon=0.5)))
    assert real[0] is pets.PolicyError and real[2] == "no_grant"
    assert _error(lambda: s.dummy("adult")) == real
    assert _error(lambda: s.dummy("adult", rows=0)) == real  # the grant comes first
    assert _error(lambda: s.release(q, pets.DP(epsilon=0.5), dummy=True)) == real
    # the refusals are audited, as the pipeline's are; nothing is spent
    recs = [r for r in holder.audit().records()
            if r.get("analyst") == who[0] and r.get("status") != "recorded"]
    assert [(r["kind"], r["status"], r["rule"]) for r in recs] == [
        ("dp", "refused", "no_grant"), ("dummy", "refused", "no_grant"),
        ("dummy", "refused", "no_grant"), ("dummy", "refused", "no_grant")]
    assert holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(2.0, 0.0)


def test_an_unknown_dataset_is_told_as_the_pipeline_tells_it(session: pets.Session) -> None:
    q = pets.Query("nosuch").agg(n=pets.count())
    real = _error(lambda: session.release(q, pets.DP(epsilon=0.5)))
    assert real[0] is pets.QueryError and "nosuch" in real[1]
    assert _error(lambda: session.dummy("nosuch")) == real
    assert _error(lambda: session.release(q, pets.DP(epsilon=0.5), dummy=True)) == real


# ------------------------------------------------------------------ the same query runs
def test_a_dp_release_on_the_dummy_has_the_real_shape(session: pets.Session) -> None:
    q = (session.table("adult").filter(pets.col("age") >= 30).group_by("sex", "race")
         .agg(n=pets.count(), hours=pets.mean("hours-per-week")))
    prot = pets.DP(epsilon=0.4)
    d = session.release(q, prot, dummy=True, rows=2000, seed=3)
    expl = session.explain(q, prot)
    assert session.remaining() == pets.Cost(2.0, 0.0)
    real = session.release(q, prot)
    assert d.dummy and not real.dummy
    assert list(d.df.columns) == list(real.df.columns)
    pd.testing.assert_frame_equal(d.df[["sex", "race"]], real.df[["sex", "race"]])
    assert d.scale == real.scale and d.spent == real.spent == expl.cost
    assert list(d.ci().columns) == list(real.ci().columns)
    # on 2000 dummy rows the counts are around 2000 · 74% aged >= 30 / 10 cells, not the data's
    assert d.df.n.sum() == pytest.approx(2000 * (90 - 30 + 1) / (90 - 17 + 1), rel=0.15)
    assert d.df.hours.between(1, 99).all()


def test_sql_on_the_dummy(session: pets.Session) -> None:
    r = session.sql("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex", pets.DP(epsilon=0.5),
                    dummy=True, rows=500, seed=1)
    assert r.dummy and list(r.df.sex) == ["Female", "Male"] and list(r.df.columns) == ["sex", "n"]
    assert r.df.n.sum() == pytest.approx(500, abs=60)
    assert session.remaining() == pets.Cost(2.0, 0.0)


def test_a_k_anonymous_extract_on_the_dummy(session: pets.Session) -> None:
    q = session.table("adult").select("age", "sex", "education", "race")
    e = session.release(q, pets.KAnonymity(k=5), dummy=True, rows=3000, seed=8)
    assert isinstance(e, pets.Extract) and e.dummy
    assert list(e.df.columns) == ["age", "sex", "education", "race"]
    assert e.classes > 0 and len(e.df) + e.suppressed == 3000
    assert e.df.groupby(list(e.df.columns), dropna=False).size().min() >= 5
    real = session.release(q, pets.KAnonymity(k=5))
    assert list(e.df.columns) == list(real.df.columns) and not real.dummy


@pytest.mark.parametrize("make", [
    lambda s: (s.table("adult").select("age", "occupation"), pets.KAnonymity(k=5)),  # grade 3
    lambda s: (s.table("adult").agg(w=pets.sum("fnlwgt", bounds=(0, 1e6))), pets.DP(epsilon=0.5)),
    lambda s: (s.table("adult").agg(g=pets.sum("capital-gain")), pets.DP(epsilon=1.5)),  # cap
    lambda s: (s.table("adult").agg(m=pets.mean("agee", bounds=(0, 1))), pets.DP(epsilon=0.5)),
    lambda s: (s.table("adult").agg(n=pets.count()), pets.DP(epsilon=5.0)),  # over the grant
], ids=["grade", "negative_list", "max_epsilon", "unknown_column", "budget"])
def test_refusals_on_the_dummy_are_the_real_ones(session: pets.Session, make: Any) -> None:
    q, prot = make(session)
    real = _error(lambda: session.release(q, prot))
    assert _error(lambda: session.release(q, prot, dummy=True, rows=50)) == real


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("rows,what", [
    (0, "rows >= 1"), (-5, "rows >= 1"), (MAX_DUMMY_ROWS + 1, "rows <= 1,000,000"),
    (1.5, "whole number"), (True, "whole number"), ("10", "whole number"),
])
def test_bad_rows_are_refused_saying_what_to_change(session: pets.Session, rows: Any,
                                                    what: str) -> None:
    with pytest.raises(pets.QueryError, match=what):
        session.dummy("adult", rows=rows)
    with pytest.raises(pets.QueryError, match=what):
        session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.1),
                        dummy=True, rows=rows)
    with pytest.raises(pets.QueryError, match=what):
        dummy_frame(ADULT_POLICY, {"age": "int"}, rows=rows)
    assert session.remaining() == pets.Cost(2.0, 0.0)


def test_rows_beyond_the_policys_max_rows_are_refused(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "h")
    h.register("t", pd.DataFrame({"x": [1, 2, 3]}),
               policy({"x": column(bounds=[0, 9])}, dataset={"max_rows": 100}))
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=1.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    assert len(s.dummy("t", rows=100)) == 100
    with pytest.raises(pets.QueryError, match=r"rows <= 100 .*max_rows"):
        s.dummy("t", rows=101)


def test_bad_seeds_and_stray_arguments_are_refused(session: pets.Session) -> None:
    q = session.table("adult").agg(n=pets.count())
    for seed in (-1, 1.5, "x"):
        with pytest.raises(pets.QueryError, match="seed must be"):
            session.dummy("adult", seed=seed)
        with pytest.raises(pets.QueryError, match="seed must be"):
            session.release(q, pets.DP(epsilon=0.1), dummy=True, seed=seed)
    with pytest.raises(pets.QueryError, match="pass dummy=True"):
        session.release(q, pets.DP(epsilon=0.1), rows=10)
    with pytest.raises(pets.QueryError, match="dummy must be True or False"):
        session.release(q, pets.DP(epsilon=0.1), dummy="yes")  # type: ignore[arg-type]
    assert session.remaining() == pets.Cost(2.0, 0.0)
