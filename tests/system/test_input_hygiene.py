"""Input hygiene (issue 9, items 4 and 8): data column names cannot steer the engine,
and every string or number that enters — names, purposes, ε and δ, k, bounds, SQL,
plans, policies — is checked where it enters, with a clear error that changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import pets
from pets import col

from ._util import ANALYST, PURPOSE, snapshot

# =====================================================================================
# Item 4: data column names cannot steer the engine
# =====================================================================================

ROWS_OF_P1 = 1000
OTHERS = 50


def _frame(unit: str, group: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One person with 1,000 rows and 50 persons with one row each, all in group 'A'."""
    n = ROWS_OF_P1 + OTHERS
    df = pd.DataFrame({unit: ["p1"] * ROWS_OF_P1 + [f"q{i}" for i in range(OTHERS)],
                       group: ["A"] * n, "v": [1] * n})
    for c in extra:
        df[c] = 1
    return df


def _write(df: pd.DataFrame, folder: Path, kind: str) -> Path:
    if kind == "csv":
        path = folder / "t.csv"
        df.to_csv(path, index=False)
    else:
        path = folder / "t.parquet"
        con = duckdb.connect()
        con.register("df", df)
        con.execute(f"COPY (SELECT * FROM df) TO '{path}' (FORMAT parquet)")
        con.close()
    return path


def _policy(unit: str, group: str) -> dict:
    return {
        "dataset": {"privacy_unit": unit, "max_groups": 1, "max_rows_per_group": 1},
        "columns": {unit: {"role": "identifier", "grade": 1},
                    group: {"role": "attribute", "grade": 1, "keys": ["A", "B"]},
                    "v": {"role": "attribute", "grade": 1, "bounds": [0, 1]}},
        "grades": {"1": {"allow": ["dp"]}},
    }


RESERVED = ["__pets_rn", "__pets_gr", "__PETS_RN", "__Pets_Rand", "__pets_g0", "__pets_bd__0_ri",
            "__pets_fx__v", "__pets_"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("name", RESERVED)
def test_a_reserved_column_name_is_refused_in_place(tmp_path, kind, name):
    """A column named like the engine's hidden bounding columns bound to its predicate:
    p1's 1,000 rows counted 1,000 times. Now refused at registration, in any case."""
    path = _write(_frame("person", "g", (name,)), tmp_path, kind)
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match=rf"column named '{name}': names starting with "
                                             r"'__pets' \(in any case\) are reserved.*rename"):
        h.register("t", path, _policy("person", "g"))
    assert h.datasets() == []
    assert len(h.audit()) == 0


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("name", ["__PETS_RN", "__pets_rn"])
def test_a_reserved_column_name_is_refused_in_every_source(tmp_path, name, copy):
    df = _frame("person", "g", (name,))
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match="reserved for the hidden columns"):
        h.register("df", df, _policy("person", "g"))
    path = _write(df, tmp_path, "csv")
    with pytest.raises(pets.DataError, match="reserved for the hidden columns"):
        h.register("t", path, _policy("person", "g"), copy=copy)
    assert h.datasets() == []


def test_a_dataset_registered_in_place_before_the_fix_is_refused_until_re_registered(tmp_path):
    """A store written by an older pets may hold a source with a reserved column: it is
    refused at use, never answered with the bounding switched off."""
    path = _write(_frame("person", "g"), tmp_path, "csv")
    h = pets.Holder(tmp_path / "home")
    h.register("t", path, _policy("person", "g"))
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=10.0)
    # what an older version stored: the reserved column in the schema and the file
    _write(_frame("person", "g", ("__pets_rn",)), tmp_path, "csv")
    rec = h._store.get_dataset("t")
    rec["schema"]["__pets_rn"] = "int"
    st = path.stat()
    rec.update(size=st.st_size, mtime_ns=st.st_mtime_ns,
               sha256=pets.holder._sha256(path))
    h._store.put_dataset("t", rec, replace=True)
    h2 = pets.Holder(tmp_path / "home")
    s = h2.session(ANALYST, purpose=PURPOSE)
    before = snapshot(h2, s)
    with pytest.raises(pets.DataError, match=r"'__pets_rn'.*reserved.*re-register it"):
        s.release(s.table("t").agg(n=pets.count()), pets.DP(epsilon=1.0))
    assert snapshot(h2, s) == before


STEERING = ["t", "f0", "select", "group", "from", "count", "rowid", "a b", 'we"ird', "it's",
            "x); DROP TABLE y; --", "*", "NULL", "true", "hash", "random", "wr", "wg", "order",
            "Person2", "per son"]


def _released_counts(h: pets.Holder, group: str) -> list[float]:
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=1000.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    dp = pets.DP(epsilon=200.0)  # noise scale 1/200: the count is exact to ±0.5 w.h.p.
    t = s.table("t")
    out = [s.release(t.agg(n=pets.count()), dp).df["n"].iloc[0],
           s.release(t.filter(col(group) == "A").agg(n=pets.count()), dp).df["n"].iloc[0]]
    r = s.release(t.group_by(group).agg(n=pets.count(), sv=pets.sum("v", bounds=(0, 1))), dp).df
    a = r[r[group] == "A"].iloc[0]
    out += [a["n"], a["sv"]]
    return out


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("name", STEERING)
def test_odd_column_names_cannot_switch_off_contribution_bounding(tmp_path, kind, name):
    """Names with quotes, spaces, SQL fragments, SQL keywords, engine aliases (t, wr, wg),
    as the privacy unit and as the group column: each person still counts once."""
    for i, (unit, group) in enumerate([("person", name), (name, "g")]):
        folder = tmp_path / str(i)
        folder.mkdir()
        path = _write(_frame(unit, group), folder, kind)
        h = pets.Holder(folder / "home")
        h.register("t", path, _policy(unit, group))
        counts = _released_counts(h, group)
        assert all(abs(c - (OTHERS + 1)) < 10 for c in counts), (unit, group, counts)


@pytest.mark.xfail(strict=True, reason="pets/dp/aggregate.py names its engine measures e0, e1, …:"
                   " a group column of that name cannot hold both (owner: dp; fix: __pets_e{n})")
def test_a_group_column_named_like_a_measure_key_is_counted_right(tmp_path):
    path = _write(_frame("person", "e0"), tmp_path, "csv")
    h = pets.Holder(tmp_path / "home")
    h.register("t", path, _policy("person", "e0"))
    assert all(abs(c - (OTHERS + 1)) < 10 for c in _released_counts(h, "e0"))


_X_POLICY = {"columns": {"x": {"role": "attribute", "grade": 1}}, "grades": {"1": {"allow": ["dp"]}}}


def test_columns_differing_only_by_case_are_refused_in_a_dataframe(tmp_path):
    df = pd.DataFrame({"x": [1, 2], "person": ["a", "b"], "PERSON": ["c", "d"]})
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match=r"'person' and 'PERSON', which differ only by case"):
        h.register("t", df, _X_POLICY)
    dup = pd.DataFrame([[1, 2, 3]], columns=["x", "a", "a"])
    with pytest.raises(pets.QueryError, match=r"two columns named 'a'; rename one"):
        h.register("t", dup, _X_POLICY)
    assert h.datasets() == []


def test_columns_differing_only_by_case_in_a_file_are_told_apart_by_the_engine(tmp_path):
    """DuckDB renames the second of two case-equal CSV headers (PERSON_1): the privacy
    unit is the column the policy names and each person counts once."""
    path = tmp_path / "t.csv"
    df = _frame("person", "g")
    df["PERSON"] = ["same"] * len(df)  # one value: if the engine bound it, all would be one person
    df.to_csv(path, index=False)
    h = pets.Holder(tmp_path / "home")
    h.register("t", path, _policy("person", "g"))
    assert "person" in h._dataset("t").schema
    assert all(abs(c - (OTHERS + 1)) < 10 for c in _released_counts(h, "g"))


@pytest.mark.parametrize("name", ["a\x1bb", "tab\there", "rtl\u202eevil", "nl\nname"])
def test_a_column_name_with_control_characters_is_refused(tmp_path, name):
    df = pd.DataFrame({name: [1, 2], "x": [1, 2]})
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match=r"column name with control characters .*rename"):
        h.register("t", df, _X_POLICY)
    assert h.datasets() == []
