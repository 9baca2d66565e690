"""A DataFrame source, or a path registered with copy=True, is stored in the home as
Parquet with bounded columns pre-encoded; the exact aggregates must not change."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import pets
from pets import col
from pets.dp.aggregate import compile_dp
from pets.engines.duckdb import ENCODED_PREFIX

POLICY = {
    "dataset": {"missing": ["?"]},
    "columns": {
        "g": {"role": "attribute", "grade": 1, "keys": ["a", "b", "c"]},
        "x": {"role": "attribute", "grade": 1, "bounds": [-1.5, 2.25]},
        "n": {"role": "attribute", "grade": 1, "bounds": [0, 7]},
    },
    "grades": {"1": {"allow": ["dp"]}},
}


def _frame(seed: int = 3, rows: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # test DATA only, never noise
    x = rng.normal(0.4, 1.5, rows)
    x[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({
        "g": rng.choice(["a", "b", "c", "d"], rows),
        "x": x,
        "n": rng.integers(-3, 11, rows),
    })


def _exact(holder: pets.Holder, name: str, q: pets.Query) -> pd.DataFrame:
    ds = holder._dataset(name)
    compiled = compile_dp(q.plan, ds.policy, ds.schema, pets.DP(epsilon=1.0))
    vec = compiled.exact_vectors(holder._engine.aggregate(ds.source, compiled.request()))
    return pd.DataFrame(vec)


def test_encoded_copy_gives_the_same_exact_aggregates_as_the_original(tmp_path: Path) -> None:
    df = _frame()
    raw = tmp_path / "raw.parquet"
    duckdb.from_df(df).write_parquet(str(raw))
    h = pets.Holder(tmp_path / "home")
    h.register("ref", raw, POLICY)                 # referenced in place, computed per query
    h.register("mem", df, POLICY)                  # stored copy with encoded columns
    h.register("cp", raw, POLICY, copy=True)
    assert h._dataset("ref").source.encoded == ()
    assert {e[0] for e in h._dataset("mem").source.encoded} == {"x", "n"}
    q = pets.Query("ref").group_by("g").agg(
        c=pets.count(), s=pets.sum("x"), m=pets.mean("x"), sn=pets.sum("n"), mn=pets.mean("n"),
        v=pets.variance("x"), s2=pets.sum("x", bounds=(0, 1)),
    )
    want = _exact(h, "ref", q)
    for name in ("mem", "cp"):
        got = _exact(h, name, pets.Query.from_plan(pets.plan.Plan.from_dict({**q.plan.to_dict(), "dataset": name})))
        pd.testing.assert_frame_equal(got, want)
    assert int(want.iloc[0, 0]) == int((df.g == "a").sum())
    # and the released clamped sum and mean are what pandas says
    h.grant("ann", dataset="mem", purpose="p", epsilon=1e7)
    s = h.session("ann", purpose="p")
    r = s.release(s.table("mem").group_by("g").agg(s=pets.sum("x"), m=pets.mean("x")),
                  pets.DP(epsilon=1e6))
    clamped = df[df.g == "a"].x.dropna().clip(-1.5, 2.25)
    got = r.df.set_index("g")
    assert got.loc["a", "s"] == pytest.approx(clamped.sum(), abs=1e-2)
    assert got.loc["a", "m"] == pytest.approx(clamped.mean(), abs=1e-4)


def test_encoded_columns_are_hidden_from_analysts(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    h.register("mem", _frame(), POLICY)
    assert set(h._dataset("mem").schema) == {"g", "x", "n"}
    h.grant("ann", dataset="mem", purpose="p", epsilon=5)
    s = h.session("ann", purpose="p")
    # refused by name (reserved) before any lookup in the schema
    with pytest.raises(pets.QueryError, match="unknown column|reserves for its hidden columns"):
        s.release(s.table("mem").agg(t=pets.sum(ENCODED_PREFIX + "x", bounds=(0, 1))),
                  pets.DP(epsilon=1))


def test_a_csv_copy_is_a_snapshot_with_missing_markers_applied(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("g, x, n\na, 1.0, 2\nb, ?, 3\n ?, 2.0, ?\na, 0.5, 1\n")
    h = pets.Holder(tmp_path / "home")
    h.register("d", csv, POLICY, copy=True)
    csv.write_text("g, x, n\nz, 9, 9\n")  # the original changes: the copy does not care
    h.grant("ann", dataset="d", purpose="p", epsilon=1e7)
    s = h.session("ann", purpose="p")
    r = s.release(s.table("d").group_by("g").agg(c=pets.count(), cx=pets.count("x"),
                                                 sx=pets.sum("x")), pets.DP(epsilon=1e6))
    got = r.df.set_index("g")
    assert got.loc["a", "c"] == 2 and got.loc["b", "c"] == 1 and got.loc["c", "c"] == 0
    assert got.loc["b", "cx"] == 0  # '?' is missing
    assert abs(got.loc["a", "sx"] - 1.5) < 1e-3
    # a referenced CSV, by contrast, is refused once it changes
    h.register("ref", csv, POLICY)
    csv.write_text("g, x, n\nz, 8, 8\n")
    with pytest.raises(pets.DataError, match="changed since it was registered"):
        s.table("ref")
