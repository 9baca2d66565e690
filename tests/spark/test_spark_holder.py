"""Datasets registered with ``engine="spark"``: the same releases, charges and audit
records as on DuckDB (issue 16).

One Parquet file is registered twice — with the default engine and with Spark — under
the same policy; the same DP release on each must charge the same budget, write the
same kind of audit record and, with a budget so large that the noise is far below the
rounding (ε = 10⁶ on a sensitivity of 1), release the same values. A k-anonymous extract
gives the same generalisation. Folders of Parquet files and catalog tables register
too; what pets cannot pin, or what the Spark engine does not do, is refused before
anything is stored or charged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pets
from pets import col
from pets.errors import DataError, QueryError

from .conftest import write_parquet

pytestmark = [pytest.mark.spark,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]
pytest.importorskip("pyspark")

ANALYST, PURPOSE = "alice", "statistics"
HUGE = 1e6  # ε: Laplace noise of scale 1e-6 on counts rounds away with probability 1 − 1e-300


def _data(seed: int = 9, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # test DATA only
    return pd.DataFrame({
        "pid": [f"P{i:04d}" for i in rng.integers(0, 1500, n)],
        "region": rng.choice(["north", "south", "east", "west"], n),
        "sex": rng.choice(["F", "M"], n),
        "age": rng.integers(18, 90, n),
        "income": rng.gamma(2.0, 20_000.0, n).round(2),
    })


DATA = _data()
PER_PERSON = DATA.groupby("pid").size().max()


def _policy(max_rows: int) -> dict[str, Any]:
    return {
        "dataset": {"privacy_unit": "pid", "max_groups": 4, "max_rows_per_group": max_rows},
        "columns": {
            "pid": {"role": "identifier", "grade": 1},
            "region": {"role": "attribute", "grade": 1, "keys": ["north", "south", "east", "west"]},
            "sex": {"role": "attribute", "grade": 1, "keys": ["F", "M"]},
            "age": {"role": "attribute", "grade": 1, "bounds": [18, 90]},
            "income": {"role": "attribute", "grade": 1, "bounds": [0, 200_000]},
        },
        "grades": {"1": {"allow": ["dp"]}},
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, spark_engine: Any) -> tuple[pets.Holder, Path]:
    tmp = tmp_path_factory.mktemp("spark-holder")
    path = write_parquet(DATA, tmp / "people.parquet")
    h = pets.Holder(tmp / "home", spark=spark_engine)
    pol = _policy(max_rows=int(PER_PERSON))  # the bound never binds: releases are comparable
    h.register("duck", path, pol)
    h.register("spark", path, pol, engine="spark")
    for name in ("duck", "spark"):
        h.grant(ANALYST, dataset=name, purpose=PURPOSE, epsilon=1e8)
    return h, tmp


def _query(s: pets.Session, name: str) -> pets.Query:
    return (s.table(name).filter(col("age") >= 30).group_by("region", keys=["north", "south", "east", "west"])
            .agg(n=pets.count(), income=pets.sum("income", bounds=(0, 100_000)),
                 avg_age=pets.mean("age", bounds=(18, 90))))


def test_a_dp_release_on_spark_charges_and_audits_like_duckdb(home: tuple[pets.Holder, Path]) -> None:
    h, _ = home
    s = h.session(ANALYST, purpose=PURPOSE)
    before = {n: s.remaining(n) for n in ("duck", "spark")}
    audit_len = len(h.audit())
    rd = s.release(_query(s, "duck"), pets.DP(epsilon=HUGE))
    rs = s.release(_query(s, "spark"), pets.DP(epsilon=HUGE))
    assert rd.spent == rs.spent == pets.Cost(HUGE)
    for n in ("duck", "spark"):
        assert s.remaining(n) == pets.Cost(before[n].epsilon - HUGE)
    recs = h.audit().records()[audit_len:]
    assert [(r["kind"], r["status"], r["dataset"]) for r in recs] == [("dp", "released", "duck"),
                                                                       ("dp", "released", "spark")]
    assert [r["id"] for r in recs] == [rd.audit_id, rs.audit_id]
    strip = lambda r: {k: v for k, v in r.items()  # noqa: E731
                       if k not in ("id", "dataset", "ts", "time", "prev", "hash", "answer_digest",
                                    "registration", "policy_version", "signature", "at")}
    assert sorted(strip(recs[0])) == sorted(strip(recs[1]))
    assert h.audit().verify()
    # the same values: noise of scale ≤ 1e-1 on these sums, far below their rounding here
    exact = DATA[DATA["age"] >= 30].groupby("region").size()
    a, b = rd.df.set_index("region"), rs.df.set_index("region")
    assert list(a.index) == list(b.index)
    assert (a["n"].round() == exact.reindex(a.index)).all()
    assert (b["n"].round() == exact.reindex(b.index)).all()
    # the sums: each release's interval at level 1 − 1e-6 covers the exact clamped sum
    old = DATA[DATA["age"] >= 30]
    exact_income = old["income"].clip(0, 100_000).groupby(old["region"]).sum()
    for r in (rd, rs):
        ci = r.ci(1 - 1e-6)
        ci = ci[ci["aggregate"] == "income"].set_index("region")
        assert ((ci["lower"] <= exact_income.reindex(ci.index))
                & (exact_income.reindex(ci.index) <= ci["upper"])).all()


def test_explain_and_sql_answer_alike(home: tuple[pets.Holder, Path]) -> None:
    h, _ = home
    s = h.session(ANALYST, purpose=PURPOSE)
    ed, es = s.explain(_query(s, "duck"), pets.DP(epsilon=1.0)), s.explain(_query(s, "spark"), pets.DP(epsilon=1.0))
    assert (ed.allowed, ed.cost) == (es.allowed, es.cost)
    r = s.sql("SELECT sex, COUNT(*) AS n FROM spark GROUP BY sex", pets.DP(epsilon=HUGE))
    assert dict(zip(r.df["sex"], r.df["n"].round())) == DATA.groupby("sex").size().to_dict()


def test_the_bound_holds_on_spark_where_it_binds(home: tuple[pets.Holder, Path]) -> None:
    """One row per person and group: the released count per region is the number of
    persons with a row there (each person's region chosen at random, counted once)."""
    h, tmp = home
    h.register("spark1", tmp / "people.parquet", _policy(max_rows=1), engine="spark")
    h.grant(ANALYST, dataset="spark1", purpose=PURPOSE, epsilon=1e8)
    s = h.session(ANALYST, purpose=PURPOSE)
    r = s.release(s.table("spark1").group_by("region", keys=["north", "south", "east", "west"])
                  .agg(n=pets.count()), pets.DP(epsilon=HUGE))
    persons = DATA.groupby("region")["pid"].nunique()
    assert (r.df.set_index("region")["n"].round() == persons.reindex(r.df["region"]).to_numpy()).all()
    assert persons.sum() < len(DATA)  # the bound did bind


def test_a_spark_parquet_folder_and_a_catalog_table_register(home: tuple[pets.Holder, Path],
                                                             spark_session: Any) -> None:
    h, tmp = home
    sdf = spark_session.read.parquet(str(tmp / "people.parquet"))
    folder = tmp / "people-folder"
    sdf.repartition(3).write.parquet(str(folder))
    sdf.write.saveAsTable("people_tbl")
    h.register("folder", folder, _policy(int(PER_PERSON)), engine="spark")
    h.register("tbl", "people_tbl", _policy(int(PER_PERSON)), engine="spark")
    for name in ("folder", "tbl"):
        h.grant(ANALYST, dataset=name, purpose=PURPOSE, epsilon=1e8)
    s = h.session(ANALYST, purpose=PURPOSE)
    for name in ("folder", "tbl"):
        r = s.release(s.table(name).group_by("sex", keys=["F", "M"]).agg(n=pets.count()), pets.DP(epsilon=HUGE))
        assert dict(zip(r.df["sex"], r.df["n"].round())) == DATA.groupby("sex").size().to_dict(), name
    # a new part file in the folder, a rewrite of the table: refused until re-registered
    spark_session.createDataFrame(DATA.head(5)).write.mode("append").parquet(str(folder))
    spark_session.createDataFrame(DATA.head(5)).write.mode("append").saveAsTable("people_tbl")
    for name in ("folder", "tbl"):
        before = s.remaining(name)
        with pytest.raises(DataError, match=f"the source of dataset '{name}' has changed"):
            s.release(s.table(name).agg(n=pets.count()), pets.DP(epsilon=1.0))
        assert s.remaining(name) == before


def test_an_in_memory_view_cannot_be_pinned(home: tuple[pets.Holder, Path], spark_session: Any) -> None:
    h, _ = home
    spark_session.createDataFrame(DATA).createOrReplaceTempView("people_view")
    with pytest.raises(DataError, match="not backed by files"):
        h.register("view", "people_view", _policy(4), engine="spark")
    assert "view" not in h.datasets()


@pytest.mark.parametrize("source,kw,message", [
    ("nowhere_table", {}, "neither a file, a folder nor a table"),
    ("frame", {}, "register a pandas DataFrame with the default engine"),
    ("empty-dir", {}, "holds no .parquet files"),
])
def test_what_the_spark_engine_cannot_register_is_refused_and_nothing_stored(
        home: tuple[pets.Holder, Path], source: str, kw: dict[str, Any], message: str) -> None:
    h, tmp = home
    (tmp / "empty-dir").mkdir(exist_ok=True)
    src: Any = DATA if source == "frame" else (tmp / source if source != "nowhere_table" else source)
    names = h.datasets()
    with pytest.raises((DataError, QueryError), match=message):
        h.register("bad", src, _policy(4), engine="spark", **kw)
    assert h.datasets() == names


def test_an_unknown_engine_is_refused(home: tuple[pets.Holder, Path]) -> None:
    h, tmp = home
    with pytest.raises(QueryError, match="engine must be 'duckdb' or 'spark', got 'hadoop'"):
        h.register("bad", tmp / "people.parquet", _policy(4), engine="hadoop")


def test_a_k_anonymous_extract_on_spark_equals_duckdbs(tmp_path: Path, spark_engine: Any) -> None:
    from pets.anon import Hierarchy

    df = DATA[["age", "sex", "region"]].copy()
    path = write_parquet(df, tmp_path / "kanon.parquet")
    age = Hierarchy.intervals(range(18, 90), [5, 10, 20])
    hier = tmp_path / "age.csv"
    age.to_csv(hier)
    pol = {"columns": {"age": {"role": "quasi_identifier", "grade": 1, "hierarchy": str(hier)},
                       "sex": {"role": "attribute", "grade": 1},
                       "region": {"role": "sensitive", "grade": 1}},
           "grades": {"1": {"allow": ["kanon"]}}}
    h = pets.Holder(tmp_path / "home", spark=spark_engine)
    h.register("duck", path, pol)
    h.register("spark", path, pol, engine="spark")
    out = {}
    for name in ("duck", "spark"):
        h.grant(ANALYST, dataset=name, purpose=PURPOSE, epsilon=1.0)
        s = h.session(ANALYST, purpose=PURPOSE)
        out[name] = s.release(s.table(name).select("age", "region"), pets.KAnonymity(k=20))
    a, b = out["duck"], out["spark"]
    assert a.transformation == b.transformation and a.suppressed == b.suppressed and a.classes == b.classes
    key = ["age", "region"]
    pd.testing.assert_frame_equal(a.df.sort_values(key).reset_index(drop=True),
                                  b.df.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert [(r["dataset"], r["status"]) for r in h.audit().records() if r["kind"] == "kanon"] == \
        [("duck", "released"), ("spark", "released")]


def test_spark_toml_configures_the_holders_session(tmp_path: Path) -> None:
    from pets.engines.sparkreg import engine_from_home
    from pets.errors import PolicyFormatError

    (tmp_path / "spark.toml").write_text('master = "local[1]"\n[conf]\n"spark.executor.memory" = "2g"\n')
    e = engine_from_home(tmp_path)
    assert (e.master, e.config) == ("local[1]", {"spark.executor.memory": "2g"})
    (tmp_path / "spark.toml").write_text('mastr = "local[1]"\n')
    with pytest.raises(PolicyFormatError, match="unknown key 'mastr'"):
        engine_from_home(tmp_path)
    os.remove(tmp_path / "spark.toml")
    assert engine_from_home(tmp_path).master == "local[2]"


def test_a_missing_integer_key_falls_in_no_key_on_either_engine(tmp_path: Path, spark_engine: Any) -> None:
    """Rows whose integer group key is NULL belong to no public key — not to key 0 (Arrow
    hands Spark's NULL over as NaN, DuckDB's as a masked 0): both engines agree."""
    df = pd.DataFrame({"k": pd.array([1] * 3 + [None] * 500 + [0] * 2, dtype="Int64")})
    path = write_parquet(df, tmp_path / "keys.parquet")
    pol = {"columns": {"k": {"role": "attribute", "grade": 1, "keys": [0, 1]}},
           "grades": {"1": {"allow": ["dp"]}}}
    h = pets.Holder(tmp_path / "home", spark=spark_engine)
    h.register("duck", path, pol)
    h.register("spark", path, pol, engine="spark")
    for name in ("duck", "spark"):
        h.grant(ANALYST, dataset=name, purpose=PURPOSE, epsilon=1e8)
        s = h.session(ANALYST, purpose=PURPOSE)
        r = s.release(s.table(name).group_by("k").agg(n=pets.count()), pets.DP(epsilon=HUGE))
        assert r.df.set_index("k")["n"].to_dict() == {0: 2, 1: 3}, name
