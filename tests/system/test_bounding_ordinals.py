"""Contribution bounding from per-person ordinals stored in a copy (the fast path) and
with window functions at query time (the fallback): the same bound, checked person by
person.

The data gives every person groups of their own (``g07_2`` belongs to person ``P07``
only), so the exact per-group counts the engine returns show, for each person, how
many groups and how many rows per group the bounding kept. Some rows fall outside the
public keys (``zz``) and some have no person: neither may use up anyone's slots.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import pets
from pets import col
from pets.engines import duckdb as duck
from pets.engines.base import AggregateRequest, Bounding, Measure
from pets.engines.duckdb import BOUND_PREFIX, HIDDEN_PREFIX, _fitting_ordinals, _ordinal_predicates

from .test_kanon_release import med_frame, med_policy

PURPOSE = "bounding"
HUGE = 1e6  # ε: the noise is far below 0.5 (counts come out exact almost surely)


def _people(persons: int = 40, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # test DATA only
    rows: list[tuple[str | None, str, int]] = []
    for i in range(persons):
        for j in range(int(rng.integers(1, 9))):
            for _ in range(int(rng.integers(1, 7))):
                rows.append((f"P{i:02d}", f"g{i:02d}_{j}", len(rows)))
        for _ in range(int(rng.integers(0, 3))):  # outside the public keys
            rows.append((f"P{i:02d}", "zz", len(rows)))
    for _ in range(5):  # no person: left out by the bounding
        rows.append((None, "g00_0", len(rows)))
    return pd.DataFrame(rows, columns=["pid", "g", "v"])


DATA = _people()
KEYS = sorted(set(DATA["g"]) - {"zz"})
PEOPLE = DATA.dropna(subset=["pid"])
IN_KEYS = PEOPLE[PEOPLE["g"] != "zz"]
NG = IN_KEYS.groupby("pid")["g"].nunique()  # groups per person
NR = IN_KEYS.groupby(["pid", "g"]).size()  # rows per person and group


def _policy(max_groups: int = 3, max_rows: int = 2, keys: list[str] = KEYS) -> dict:
    return {
        "dataset": {"privacy_unit": "pid", "max_groups": max_groups, "max_rows_per_group": max_rows},
        "columns": {
            "pid": {"role": "identifier", "grade": 1},
            "g": {"role": "attribute", "grade": 1, "keys": keys},
            "v": {"role": "attribute", "grade": 1, "bounds": [0, 10_000]},
        },
        "grades": {"1": {"allow": ["dp"]}},
    }


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> pets.Holder:
    tmp = tmp_path_factory.mktemp("ordinals")
    h = pets.Holder(tmp / "home")
    h.register("copy", DATA, _policy())  # stored copy with ordinals
    path = tmp / "people.parquet"
    duckdb.from_df(DATA).write_parquet(str(path))  # (pandas would need pyarrow)
    h.register("inplace", path, _policy())  # read in place
    # without its ordinals sidecar (tests/system/test_inplace_sidecar.py), a dataset read
    # in place is bounded by window functions at query time: the fallback tested here
    Path(h._store.get_dataset("inplace")["source"]["sidecar"]).unlink()
    h._cache.clear()
    for name in ("copy", "inplace"):
        h.grant("ann", dataset=name, purpose=PURPOSE, epsilon=1e9)
    return h


def _request(group: bool, max_groups: int, max_rows: int, seed: int, use_ordinals: bool = True,
             keys: tuple[str, ...] = tuple(KEYS), filters: tuple = ()) -> AggregateRequest:
    return AggregateRequest(
        filters=filters,
        group_columns=("g",) if group else (),
        group_keys=(keys,) if group else (),
        measures=(Measure("n", "rows"), Measure("s", "sum", "v", 0.0, 10_000.0, 1)),
        bounding=Bounding("pid", max_groups, max_rows, seed, use_ordinals),
    )


def _kept(holder: pets.Holder, name: str, req: AggregateRequest) -> pd.DataFrame:
    ds = holder._dataset(name)
    return holder._engine.aggregate(ds.source, req).set_index("g")


def test_the_data_exercises_the_bounds() -> None:
    assert NG.max() == 8 and (NG > 3).sum() >= 10 and (NG == 1).sum() >= 2
    assert NR.max() == 6 and (NR > 2).sum() >= 50
    assert (DATA["g"] == "zz").sum() > 10 and DATA["pid"].isna().sum() == 5


def test_a_copy_stores_ordinals_for_the_keyed_column_and_for_no_grouping(holder: pets.Holder) -> None:
    src = holder._dataset("copy").source
    assert {(o.unit, o.column) for o in src.ordinals} == {("pid", None), ("pid", "g")}
    assert next(o for o in src.ordinals if o.column == "g").keys == tuple(KEYS)
    assert holder._dataset("inplace").source.ordinals == ()


def test_the_fast_path_serves_exactly_the_requests_it_fits(holder: pets.Holder) -> None:
    src = holder._dataset("copy").source
    fits = lambda req: _fitting_ordinals(src, req)  # noqa: E731
    assert fits(_request(True, 3, 2, 1)).column == "g"
    assert fits(_request(False, 3, 2, 1)).column is None
    assert fits(_request(True, 3, 2, 1, keys=tuple(reversed(KEYS)))) is not None  # same set
    # everything else is bounded at query time
    assert fits(_request(True, 3, 2, 1, use_ordinals=False)) is None
    assert fits(_request(True, 3, 2, 1, keys=tuple(KEYS[:5]))) is None
    assert fits(_request(True, 3, 2, 1, keys=())) is None  # keys not public
    assert fits(_request(True, 3, 2, 1, filters=(pets.plan.Compare(">=", pets.plan.Col("v"),
                                                                   pets.plan.Lit(3)),))) is None
    two = dataclasses.replace(_request(True, 3, 2, 1), group_columns=("g", "v"),
                              group_keys=(tuple(KEYS), (1, 2)))
    assert fits(two) is None
    other = dataclasses.replace(_request(True, 3, 2, 1), bounding=Bounding("v", 3, 2, 1))
    assert fits(other) is None
    assert _fitting_ordinals(holder._dataset("inplace").source, _request(True, 3, 2, 1)) is None


@pytest.mark.parametrize("use_ordinals", [True, False], ids=["stored-ordinals", "windows"])
@pytest.mark.parametrize("max_groups, max_rows", [(1, 1), (3, 2), (8, 6)])
def test_each_person_keeps_min_groups_and_min_rows_per_group(holder: pets.Holder, use_ordinals: bool,
                                                             max_groups: int, max_rows: int) -> None:
    """Exactly min(groups, max_groups) groups per person, exactly min(rows, max_rows)
    rows in each kept group, nothing from rows outside the keys or without a person —
    in four releases with different seeds."""
    for seed in (1, 2**62 + 12345, 987654321987, 2**63 - 1):
        got = _kept(holder, "copy", _request(True, max_groups, max_rows, seed, use_ordinals))
        assert "zz" not in got.index and set(got.index) <= set(KEYS)
        n = got["n"].reindex(KEYS, fill_value=0)
        kept_rows = n[n > 0]
        owner = kept_rows.index.str.slice(1, 3).map(lambda i: f"P{i}")
        groups_kept = pd.Series(1, index=owner).groupby(level=0).sum()
        assert groups_kept.reindex(NG.index, fill_value=0).to_dict() == NG.clip(upper=max_groups).to_dict()
        cap = NR.clip(upper=max_rows).droplevel("pid")
        assert (kept_rows == cap[kept_rows.index]).all()
        assert int(n["g00_0"]) in (0, min(max_rows, int(NR[("P00", "g00_0")])))  # no stray rows


@pytest.mark.parametrize("use_ordinals", [True, False], ids=["stored-ordinals", "windows"])
def test_without_grouping_each_person_keeps_min_rows(holder: pets.Holder, use_ordinals: bool) -> None:
    per_person = PEOPLE.groupby("pid").size()  # with no group-by every row of a person counts
    for max_rows in (1, 4, 100):
        got = holder._engine.aggregate(holder._dataset("copy").source,
                                       _request(False, 3, max_rows, 42 + max_rows, use_ordinals))
        assert int(got["n"].iloc[0]) == int(per_person.clip(upper=max_rows).sum())


@pytest.mark.parametrize("grouping", [None, "g"])
def test_the_stored_predicates_select_the_bound_row_by_row(holder: pets.Holder, grouping: str | None) -> None:
    """The engine's bounded relation itself, read person by person."""
    src = holder._dataset("copy").source
    o = next(o for o in src.ordinals if o.column == grouping)
    con = holder._engine._con.cursor()
    for seed in (5, 6, 7):
        where = " AND ".join(_ordinal_predicates(o, Bounding("pid", 2, 3, seed)))
        rows = con.execute(f"SELECT pid, g, v FROM read_parquet(?) WHERE {where}", [src.path]).df()
        assert rows["pid"].notna().all()
        if grouping is None:
            want = PEOPLE.groupby("pid").size().clip(upper=3)
            assert rows.groupby("pid").size().to_dict() == want.to_dict()
        else:
            assert (rows["g"] != "zz").all()
            assert rows.groupby("pid")["g"].nunique().to_dict() == NG.clip(upper=2).to_dict()
            assert (rows.groupby(["pid", "g"]).size() == NR.clip(upper=3)[rows.groupby(["pid", "g"]).size().index]).all()
        assert rows["v"].is_unique


def test_the_choice_of_groups_and_rows_is_fresh_in_every_release(holder: pets.Holder) -> None:
    """20 releases with fresh random seeds, as a release draws them. Persons with ≥ 4
    groups keep 2: each must see at least two different choices. Groups with ≥ 4 rows
    keep 1 row (distinct values): each must see at least two different rows. With a
    uniform choice among ≥ 4 cyclic runs, one choice all 20 times has probability
    ≤ 4 · 4^-20 ≈ 4e-12; over < 300 persons and groups the test fails falsely with
    probability < 1e-9."""
    many = NG[NG >= 4].index
    big = NR[NR >= 4].droplevel("pid").index
    assert len(many) >= 10 and len(big) >= 10
    choices: dict[str, set[frozenset[str]]] = {p: set() for p in many}
    rows: dict[str, set[int]] = {g: set() for g in big}
    for _ in range(20):
        got = _kept(holder, "copy", _request(True, 2, 6, secrets.randbits(63)))
        kept = got[got["n"] > 0]
        for p in many:
            choices[p].add(frozenset(kept.index[kept.index.str.startswith(f"g{p[1:]}_")]))
        one = _kept(holder, "copy", _request(True, 8, 1, secrets.randbits(63)))
        for g in big:
            rows[g].add(int(one.loc[g, "s"]))
    assert all(len(c) >= 2 for c in choices.values()), {p: len(c) for p, c in choices.items()}
    assert all(len(r) >= 2 for r in rows.values()), {g: len(r) for g, r in rows.items()}


def test_each_group_is_kept_at_the_rate_max_groups_over_groups(holder: pets.Holder) -> None:
    """Persons with 4 groups keep 2 (a cyclic run of their stored order, at a fresh
    random offset): each group is kept in a release with probability 1/2, the rate of a
    uniform random choice of 2 groups. Over 80 releases,
    P(|Binomial(80, 1/2)/80 − 1/2| ≥ 0.35) ≈ 1.2e-10 per group; over the 16 groups
    the test fails falsely with probability < 1e-8."""
    four = NG[NG == 4].index
    assert len(four) >= 3
    freq = {p: np.zeros(4) for p in four}
    releases = 80
    for _ in range(releases):
        got = _kept(holder, "copy", _request(True, 2, 6, secrets.randbits(63)))
        for p in four:
            for j in range(4):
                g = f"g{p[1:]}_{j}"
                freq[p][j] += g in got.index and got.loc[g, "n"] > 0
    for p, f in freq.items():
        assert f.sum() == 2 * releases  # exactly 2 groups per release
        assert (np.abs(f / releases - 0.5) < 0.35).all(), f


# ------------------------------------------------------------- through the session


def _session(holder: pets.Holder) -> pets.Session:
    return holder.session("ann", purpose=PURPOSE)


def test_fast_path_and_fallback_release_the_same_bounded_counts(holder: pets.Holder) -> None:
    """Through the session, ε huge: on the copy (stored ordinals) and in place (windows)
    every person keeps exactly min(groups, 3) groups and min(rows, 2) rows in each."""
    s = _session(holder)
    cap = NR.clip(upper=2).droplevel("pid")
    for name in ("copy", "inplace"):
        r = s.release(s.table(name).group_by("g").agg(n=pets.count()), pets.DP(epsilon=HUGE))
        n = r.df.set_index("g")["n"].round().astype(int)
        kept = n[n > 0]
        assert int(len(kept)) == int(NG.clip(upper=3).sum())
        assert kept.to_dict() == cap[kept.index].to_dict()
        assert r.scale["n"] == pytest.approx(3 * 2 / HUGE)


def test_a_filter_still_acts_before_the_bounding_on_a_copy(holder: pets.Holder) -> None:
    """Rows a filter removes use no slot (the copy falls back to windows for filters)."""
    s = _session(holder)
    keep = PEOPLE[PEOPLE["v"] % 2 == 0]
    want = int(keep.groupby("pid").size().clip(upper=2).sum())
    for name in ("copy", "inplace"):
        r = s.release(s.table(name).filter(col("v").isin(list(range(0, len(DATA), 2)))).agg(n=pets.count()),
                      pets.DP(epsilon=HUGE))
        assert int(round(float(r.df["n"].iloc[0]))) == want


def test_a_subset_of_the_keys_leaves_the_other_groups_no_slot(holder: pets.Holder) -> None:
    """Asking for some keys only: a person's other groups must not take their slots
    (the copy falls back to windows, which drop the other keys first)."""
    s = _session(holder)
    first = [k for k in KEYS if k.endswith("_7") or k.endswith("_6")]  # persons' 7th/8th groups
    r = s.release(s.table("copy").group_by("g", keys=first).agg(n=pets.count()), pets.DP(epsilon=HUGE))
    n = r.df.set_index("g")["n"].round().astype(int)
    want = NR.clip(upper=2).droplevel("pid")[first]
    assert n[first].to_dict() == want.to_dict()  # both kept: 2 groups ≤ max_groups 3


# ------------------------------------------------------------------ hidden columns


def test_hidden_columns_never_show(holder: pets.Holder, tmp_path: Path) -> None:
    ds = holder._dataset("copy")
    raw = holder._engine._raw(ds.source)
    assert any(n.startswith(BOUND_PREFIX) for n, _ in raw)  # they are stored …
    assert set(holder._engine.schema(ds.source)) == {"pid", "g", "v"}  # … and hidden
    assert set(ds.schema) == {"pid", "g", "v"}
    s = _session(holder)
    hidden = next(n for n, _ in raw if n.startswith(BOUND_PREFIX))
    # refused by name (reserved) before any lookup in the schema
    with pytest.raises(pets.QueryError, match="unknown column|reserves for its hidden columns"):
        s.release(s.table("copy").agg(t=pets.sum(hidden, bounds=(0, 9))), pets.DP(epsilon=1.0))
    with pytest.raises(pets.QueryError, match="unknown column|reserves for its hidden columns"):
        s.release(s.table("copy").group_by(hidden, keys=[0, 1]).agg(n=pets.count()), pets.DP(epsilon=1.0))


def test_a_k_anonymous_extract_has_only_the_selected_columns(tmp_path: Path) -> None:
    df = med_frame(n=600)
    df["pid"] = [f"PID-{i % 200:06d}" for i in range(len(df))]  # three rows per person
    pol = med_policy(tmp_path / "hier", df, privacy_unit="pid", max_groups=2)
    pol["columns"]["edu"]["keys"] = ["none", "primary", "secondary", "bachelor", "master", "phd"]
    h = pets.Holder(tmp_path / "home")
    h.register("med", df, pol)
    assert {o.column for o in h._dataset("med").source.ordinals} == {None, "edu"}
    h.grant("ann", dataset="med", purpose=PURPOSE, epsilon=1.0)
    s = h.session("ann", purpose=PURPOSE)
    x = s.release(s.table("med").select("age", "edu", "diagnosis"), pets.KAnonymity(k=4, max_suppression=0.2))
    assert list(x.df.columns) == ["age", "edu", "diagnosis"]


def test_the_copy_keeps_the_source_row_order(holder: pets.Holder) -> None:
    """Computing the ordinals groups rows by person; the copy is written back in the
    source's order, so record-level extracts do not list a person's rows together."""
    ds = holder._dataset("copy")
    rows = holder._engine.fetch(ds.source, ("pid", "g", "v"), ())
    assert rows["v"].tolist() == DATA["v"].tolist()


def test_source_columns_with_the_reserved_prefix_are_refused(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    df = DATA.assign(**{HIDDEN_PREFIX + "x": 1})
    with pytest.raises(pets.DataError, match="reserves") as info:
        h.register("bad", df, _policy())
    assert "rename it" in str(info.value)
    assert h.datasets() == [] and not list((tmp_path / "home" / "data").glob("*.parquet"))


# ------------------------------------------------------------- re-registration


def test_re_registration_gives_a_new_source_version_and_fresh_ordinals(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    pol = _policy()
    del pol["columns"]["v"]  # no encoded column: the copies differ only in their data
    h.register("r", DATA[["pid", "g"]].assign(v=DATA["v"]), pol)
    first = h._dataset("r")
    h.grant("ann", dataset="r", purpose=PURPOSE, epsilon=1e9)
    s = h.session("ann", purpose=PURPOSE)
    q = s.table("r").group_by("g").agg(n=pets.count())
    s.release(q, pets.DP(epsilon=HUGE))
    # the same name, path and policy; other columns and fewer persons
    second_df = DATA[DATA["pid"].isin(["P00", "P01"])][["pid", "g"]].assign(w=1.5)
    h.register("r", second_df, pol, replace=True)
    second = h._dataset("r")
    assert second.source.path == first.source.path and second.source.version != first.source.version
    assert second.version != first.version
    assert set(h._engine.schema(second.source)) == {"pid", "g", "w"}
    r = s.release(q, pets.DP(epsilon=HUGE * 1.000001))
    n = r.df.set_index("g")["n"]
    own = second_df[second_df["g"] != "zz"]
    want = own.groupby("pid")["g"].nunique().clip(upper=3).sum()
    assert int((n > 0.5).sum()) == int(want)
    # a policy with other keys: the ordinals follow it
    h.register("r", DATA, _policy(keys=KEYS[:10]), replace=True)
    o = next(o for o in h._dataset("r").source.ordinals if o.column == "g")
    assert o.keys == tuple(KEYS[:10])


def test_ordinals_too_large_for_integer_offsets_are_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A person-group with ≥ 2^30 rows would overflow the INTEGER offsets: such ordinals
    are left unused and the release bounds with windows (here the limit is lowered)."""
    monkeypatch.setattr(duck, "_MAX_ORDINAL", 6)  # the largest person-group has 6 rows
    h = pets.Holder(tmp_path / "home")
    h.register("d", DATA, _policy())
    src = h._dataset("d").source
    assert [o.column for o in src.ordinals] == []  # both have a count of 6 or more
    got = h._engine.aggregate(src, _request(True, 3, 2, 77)).set_index("g")
    n = got["n"].reindex(KEYS, fill_value=0)
    assert int((n > 0).sum()) == int(NG.clip(upper=3).sum())


def test_ordinals_are_stored_only_for_columns_a_dp_release_can_group_by(tmp_path: Path) -> None:
    df = DATA.assign(k=DATA["v"] % 3, hidden=DATA["g"], banned=DATA["g"], text=(DATA["v"] % 2).astype(str))
    pol = _policy()
    pol["negative_list"] = ["banned"]
    pol["columns"].update({
        "k": {"role": "attribute", "grade": 1, "keys": [0, 1, 2]},
        "hidden": {"role": "attribute", "grade": 2, "keys": KEYS},  # grade 2: no DP
        "banned": {"role": "attribute", "grade": 1, "keys": KEYS},
        "text": {"role": "attribute", "grade": 1, "keys": [0, 1]},  # numbers for text
    })
    pol["grades"]["2"] = {"allow": ["kanon"]}
    h = pets.Holder(tmp_path / "home")
    h.register("d", df, pol)
    src = h._dataset("d").source
    assert [o.column for o in src.ordinals] == [None, "g", "k"]
    assert set(h._engine.schema(src)) == set(df.columns)
    # and without a privacy unit, none
    del pol["dataset"]
    h.register("e", df, pol)
    assert h._dataset("e").source.ordinals == ()


def test_a_case_group_named_like_a_keyed_column_is_bounded_by_its_own_groups(tmp_path: Path) -> None:
    """A CASE group called "g" whose literal keys equal g's public keys must not use g's
    stored ordinals: they bound the person's g-groups, not the CASE groups."""
    # one person, all rows in g = "a" (one g-group), but v puts them in both CASE groups
    df = pd.DataFrame({"pid": ["P"] * 6, "g": ["a"] * 6, "v": [1, 2, 3, 7, 8, 9]})
    h = pets.Holder(tmp_path / "home")
    h.register("d", df, _policy(max_groups=1, max_rows=6, keys=["a", "b"]))
    h.grant("ann", dataset="d", purpose=PURPOSE, epsilon=1e9)
    s = h.session("ann", purpose=PURPOSE)
    q = s.table("d").group_by(g=pets.case((col("v") < 5, "a"), default="b")).agg(n=pets.count())
    src = h._dataset("d").source
    assert any(o.column == "g" for o in src.ordinals)
    for i in range(5):
        r = s.release(q, pets.DP(epsilon=HUGE + i))
        counts = dict(zip(r.df["g"], r.df["n"].round().astype(int)))
        # the person is kept in one CASE group only (max_groups = 1), with all 3 rows there
        assert sorted(counts.values()) == [0, 3], counts


def test_the_copy_is_clustered_by_the_bounded_group_column(holder: pets.Holder) -> None:
    """The stored copy holds each group's rows together (a bounded group-by reads them
    together), in the source's order within a group, with the source's row number: the
    fetch above restores the source's order from it."""
    path = holder._dataset("copy").source.path
    stored = duckdb.sql(f"SELECT pid, g, v, {BOUND_PREFIX}pos AS pos FROM read_parquet('{path}')").df()
    bounded = stored[stored["pid"].notna() & (stored["g"] != "zz")]  # the rows with ordinals
    runs = (bounded["g"] != bounded["g"].shift()).sum()
    assert runs == bounded["g"].nunique() == len(KEYS)  # one run per group
    assert stored.sort_values("pos")["v"].tolist() == DATA["v"].tolist()
    assert (stored.groupby("g", sort=False)["pos"].diff().dropna() > 0).all()


def test_a_bounded_group_by_on_the_copy_groups_by_the_key_index(holder: pets.Holder) -> None:
    """The copy stores each row's index among the keys; the fast path groups by it and
    names the groups after the keys: the same exact counts as the window functions."""
    src = holder._dataset("copy").source
    o = next(o for o in src.ordinals if o.column == "g")
    assert duck._key_index(o) in holder._engine.column_names(src)
    assert duck._key_index(o) not in holder._engine.schema(src)  # hidden
    fast = _kept(holder, "copy", _request(True, 8, 6, 3)).sort_index()
    slow = _kept(holder, "copy", _request(True, 8, 6, 3, use_ordinals=False)).sort_index()
    want = IN_KEYS.groupby("g").size()
    assert list(fast.index) == list(want.index) and fast["n"].tolist() == want.tolist()
    assert fast.equals(slow)
