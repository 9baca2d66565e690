"""The Spark engine answers every request exactly as DuckDB does (issue 16).

Each request of the engine protocol runs on both engines over the same Parquet file and
the integer aggregates must be identical: counts, sums and sums of squares of clamped
fixed-point values, distinct counts, histogram bins, thresholds, expression measures,
filters, group-by with and without public keys, CASE groups. Bounding keeps a random
choice of rows, so it is compared where the bound does not bind, and checked row count
by row count where it does. k-anonymity's class sizes (a group-by over the
quasi-identifiers) agree too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pets import plan as P
from pets.engines import AggregateRequest, Bounding, DuckDBEngine, Measure, Source

from .conftest import write_parquet

pytestmark = [pytest.mark.spark,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]
pytest.importorskip("pyspark")


def _people(seed: int = 3, persons: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # test DATA only
    rows = []
    for i in range(persons):
        for j in range(int(rng.integers(1, 6))):  # groups per person
            g = ["a", "b", "c", "d", "e"][int(rng.integers(0, 5))]
            for _ in range(int(rng.integers(1, 5))):  # rows per person and group
                rows.append((f"P{i:03d}", g, float(rng.normal(50, 30)), int(rng.integers(-5, 120)),
                             bool(rng.integers(0, 2))))
    df = pd.DataFrame(rows, columns=["pid", "g", "x", "age", "flag"])
    df.loc[rng.choice(len(df), 25, replace=False), "x"] = np.nan  # missing values
    df.loc[rng.choice(len(df), 10, replace=False), "g"] = None
    df.loc[rng.choice(len(df), 6, replace=False), "pid"] = None  # rows of no person
    df.loc[rng.choice(len(df), 8, replace=False), "g"] = "zz"  # outside the public keys
    return df


DATA = _people()
KEYS = ("a", "b", "c", "d", "e")


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = write_parquet(DATA, tmp_path_factory.mktemp("engines") / "people.parquet")
    return Source("parquet", str(path))


@pytest.fixture(scope="module")
def duck() -> DuckDBEngine:
    return DuckDBEngine()


def _sorted(df: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    if not by:
        return df.reset_index(drop=True)
    return df.sort_values(list(by), na_position="last").reset_index(drop=True)


def _same(duck: DuckDBEngine, spark: Any, src: Source, req: AggregateRequest) -> pd.DataFrame:
    a = _sorted(duck.aggregate(src, req), req.group_columns)
    b = _sorted(spark.aggregate(src, req), req.group_columns)
    assert list(a.columns) == list(b.columns)
    for m in req.measures:
        assert b[m.key].dtype == np.int64, m.key
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    return b


MEASURES = (
    Measure("n", "rows"),
    Measure("present", "present", "x"),
    Measure("sum", "sum", "x", lower=0.0, upper=100.0, factor=1000),
    Measure("sumsq", "sumsq", "x", lower=0.0, upper=100.0, factor=10, center=500),
    Measure("isum", "sum", "age", lower=0, upper=99),
    Measure("isumsq", "sumsq", "age", lower=18, upper=99, center=40),
    Measure("distinct", "distinct", "age"),
    Measure("bin", "range", "x", lower=20.0, upper=40.0),
    Measure("binc", "range_closed", "age", lower=20.0, upper=40.0),
    Measure("lt", "lt", "x", lower=0.0, upper=100.0, threshold=37.5),
    Measure("le", "le", "age", lower=0.0, upper=99.0, threshold=40.0),
    Measure("expr", "sum", expr=P.Arith("*", P.Col("x"), P.Lit(1.5)), clamps=(("x", 0.0, 80.0),),
            lower=-10.0, upper=100.0, factor=100),
    Measure("case", "present", expr=P.Case(((P.Compare(">", P.Col("age"), P.Lit(65)), P.Lit(1)),))),
)


def test_the_data_has_what_the_comparisons_need() -> None:
    assert DATA["x"].isna().sum() == 25 and (DATA["x"] > 100).sum() > 0 and (DATA["x"] < 0).sum() > 0
    assert DATA["g"].isna().sum() >= 5 and (DATA["g"] == "zz").sum() == 8
    assert (DATA["age"] > 99).sum() > 0 and DATA["pid"].isna().sum() == 6


def test_schema_and_row_count_agree(duck: DuckDBEngine, spark_engine: Any, src: Source) -> None:
    assert spark_engine.schema(src) == duck.schema(src) == {
        "pid": "str", "g": "str", "x": "float", "age": "int", "flag": "bool"}
    req = AggregateRequest((), (), (), (Measure("n", "rows"),))
    assert int(spark_engine.aggregate(src, req)["n"].iloc[0]) == len(DATA)


REQUESTS = {
    "no-group": AggregateRequest((), (), (), MEASURES),
    "group": AggregateRequest((), ("g",), ((),), MEASURES),
    "group-keys": AggregateRequest((), ("g",), (KEYS,), MEASURES),
    "two-groups": AggregateRequest((), ("g", "flag"), (KEYS, (True, False)), MEASURES),
    "filters": AggregateRequest(
        (P.Compare(">=", P.Col("age"), P.Lit(18)),
         P.Or(P.IsIn(P.Col("g"), ("a", "b")), P.IsNull(P.Col("g"))),
         P.Not(P.Compare("==", P.Col("x"), P.Lit(None)))),
        ("g",), ((),), MEASURES),
    "arith-filter": AggregateRequest(
        (P.Compare("<", P.Arith("/", P.Neg(P.Col("x")), P.Lit(2.0)), P.Lit(-10.0)),),
        ("flag",), ((),), MEASURES),
    "case-group": AggregateRequest(
        (), ("band",), ((),), MEASURES,
        group_exprs=(P.Case(((P.Compare("<", P.Col("age"), P.Lit(30)), P.Lit("young")),
                             (P.Compare("<", P.Col("age"), P.Lit(60)), P.Lit("middle"))),
                            P.Lit("old")),)),
    "empty": AggregateRequest((P.Compare(">", P.Col("age"), P.Lit(10_000)),), ("g",), ((),), MEASURES),
    "empty-no-group": AggregateRequest((P.Compare(">", P.Col("age"), P.Lit(10_000)),), (), (), MEASURES),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_exact_aggregates_are_identical(duck: DuckDBEngine, spark_engine: Any, src: Source, name: str) -> None:
    out = _same(duck, spark_engine, src, REQUESTS[name])
    if name.startswith("empty"):
        assert len(out) == (0 if name == "empty" else 1)
    else:
        assert out["n"].sum() > 0


def test_fixed_point_rounding_breaks_ties_to_even_as_duckdb_does(duck: DuckDBEngine, spark_engine: Any,
                                                                 tmp_path: Path) -> None:
    """Ties and near-ties, one row each: the sums of the encoded values are equal."""
    xs = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.49999999999999994, 4503599627370495.5,
          0.125, -0.375, 1e-300, 2.675, 1.005]
    src = Source("parquet", str(write_parquet(pd.DataFrame({"i": range(len(xs)), "x": xs}), tmp_path / "ties.parquet")))
    for factor in (1, 2, 100, 1000):
        req = AggregateRequest((), ("i",), ((),), (Measure("s", "sum", "x", lower=-1e16, upper=1e16, factor=factor),
                                                  Measure("q", "sumsq", "x", lower=-3.0, upper=3.0, factor=factor)))
        out = _same(duck, spark_engine, src, req)
        if factor == 1:
            assert list(_sorted(out, ("i",))["s"][:6]) == [0, 2, 2, 0, -2, -2]


def test_the_stored_encoded_column_is_used_for_sums(duck: DuckDBEngine, spark_engine: Any,
                                                     tmp_path: Path) -> None:
    """A copy DuckDB materialised (pre-encoded fixed-point sums) reads the same on Spark."""
    dest = tmp_path / "copy.parquet"
    enc = (("x", 0.0, 100.0, 1000),)
    copy = duck.materialize(DATA, str(dest), (), enc)
    assert "x" in spark_engine.schema(copy) and not any(c.startswith("__pets") for c in spark_engine.schema(copy))
    _same(duck, spark_engine, copy, AggregateRequest((), ("g",), ((),), MEASURES))


# -- contribution bounding ----------------------------------------------------------------

IN_KEYS = DATA[DATA["pid"].notna() & DATA["g"].isin(KEYS)]
NG = IN_KEYS.groupby("pid")["g"].nunique()
NR = IN_KEYS.groupby(["pid", "g"]).size()


def _bounded(max_groups: int, max_rows: int, group: bool = True, seed: int = 11) -> AggregateRequest:
    return AggregateRequest((), ("g",) if group else (), (KEYS,) if group else (), MEASURES,
                            bounding=Bounding("pid", max_groups, max_rows, seed))


def test_the_data_makes_the_bounds_bind() -> None:
    assert NG.max() == 5 and (NG > 2).sum() > 20 and NR.max() >= 4 and (NR > 2).sum() > 20


@pytest.mark.parametrize("group", [True, False])
def test_bounding_that_does_not_bind_gives_identical_aggregates(duck: DuckDBEngine, spark_engine: Any,
                                                                src: Source, group: bool) -> None:
    """Bounds above every person's groups and rows: only rows of no person and (with
    public keys) rows outside the keys are dropped — exactly, on both engines."""
    req = _bounded(100, 1000, group)
    out = _same(duck, spark_engine, src, req)
    assert out["n"].sum() == (len(IN_KEYS) if group else DATA["pid"].notna().sum())


@pytest.mark.parametrize("max_groups,max_rows", [(1, 1), (2, 2), (3, 1)])
def test_bounding_that_binds_keeps_exactly_the_bound_per_person(spark_engine: Any, src: Source,
                                                                 max_groups: int, max_rows: int) -> None:
    """Grouped by person too: each person keeps exactly min(groups, max_groups) of their
    in-key groups and min(rows, max_rows) rows in each kept group."""
    req = AggregateRequest((), ("pid", "g"), ((), KEYS), (Measure("n", "rows"),),
                           bounding=Bounding("pid", max_groups, max_rows, seed=5))
    out = spark_engine.aggregate(src, req)
    assert out["pid"].notna().all() and set(out["g"]) <= set(KEYS)
    kept_groups = out.groupby("pid").size()
    assert (kept_groups == NG.clip(upper=max_groups).reindex(kept_groups.index)).all()
    assert set(kept_groups.index) == set(NG.index)
    for (pid, g), n in zip(zip(out["pid"], out["g"]), out["n"]):
        assert n == min(int(NR[(pid, g)]), max_rows)


def test_the_choice_of_rows_is_fresh_per_seed(spark_engine: Any, src: Source) -> None:
    """Different seeds keep different groups (over 120 persons, 5 groups each chosen
    among up to 5: identical choices for two seeds have probability far below 1e-6)."""
    req = lambda seed: AggregateRequest((), ("pid", "g"), ((), KEYS), (Measure("n", "rows"),),  # noqa: E731
                                        bounding=Bounding("pid", 1, 1, seed=seed))
    a = _sorted(spark_engine.aggregate(src, req(1)), ("pid", "g"))
    b = _sorted(spark_engine.aggregate(src, req(2)), ("pid", "g"))
    assert len(a) == len(b) == len(NG)
    assert not a.equals(b)


def test_filters_act_before_the_bounding(duck: DuckDBEngine, spark_engine: Any, src: Source) -> None:
    flt = (P.Compare(">=", P.Col("age"), P.Lit(50)),)
    req = AggregateRequest(flt, ("g",), (KEYS,), (Measure("n", "rows"),),
                           bounding=Bounding("pid", 100, 1000, seed=3))
    out = _same(duck, spark_engine, src, req)
    assert out["n"].sum() == (IN_KEYS["age"] >= 50).sum()


# -- k-anonymity: class sizes and fetched rows ---------------------------------------------


def test_k_anonymity_class_sizes_agree(duck: DuckDBEngine, spark_engine: Any, src: Source) -> None:
    """The equivalence classes over quasi-identifiers, counted in the engine."""
    req = AggregateRequest((P.Compare(">=", P.Col("age"), P.Lit(18)),), ("g", "flag", "age"),
                           ((), (), ()), (Measure("n", "rows"),))
    out = _same(duck, spark_engine, src, req)
    ref = DATA[DATA["age"] >= 18].groupby(["g", "flag", "age"], dropna=False).size()
    assert sorted(out["n"]) == sorted(ref)


def test_fetch_returns_the_same_rows(duck: DuckDBEngine, spark_engine: Any, src: Source) -> None:
    flt = (P.IsIn(P.Col("g"), ("a", "c")), P.Compare("<", P.Col("age"), P.Lit(60)))
    a = _sorted(duck.fetch(src, ("pid", "g", "age"), flt), ("pid", "g", "age"))
    b = _sorted(spark_engine.fetch(src, ("pid", "g", "age"), flt), ("pid", "g", "age"))
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert len(b) == (DATA["g"].isin(["a", "c"]) & (DATA["age"] < 60)).sum()


def test_fetch_counted_counts_each_distinct_row_in_spark(spark_engine: Any, src: Source) -> None:
    """A k-anonymous extract's rows come back as distinct tuples with their counts: the
    same multiset as fetch, counted in Spark (NULL is a value like any other)."""
    from pets.engines.base import COUNT_COLUMN

    flt = (P.Compare(">=", P.Col("age"), P.Lit(18)),)
    got = spark_engine.fetch_counted(src, ("g", "flag", "age"), flt)
    assert list(got.columns) == ["g", "flag", "age", COUNT_COLUMN]
    ref = DATA[DATA["age"] >= 18].groupby(["g", "flag", "age"], dropna=False).size()
    assert len(got) == len(ref) and got[COUNT_COLUMN].sum() == (DATA["age"] >= 18).sum()
    assert sorted(got[COUNT_COLUMN]) == sorted(ref)
    rows = got.loc[got.index.repeat(got.pop(COUNT_COLUMN))]
    pd.testing.assert_frame_equal(
        _sorted(rows.reset_index(drop=True), ("g", "flag", "age")),
        _sorted(spark_engine.fetch(src, ("g", "flag", "age"), flt), ("g", "flag", "age")),
        check_dtype=False)


def test_a_bad_column_is_a_data_error_naming_no_value(spark_engine: Any, src: Source) -> None:
    from pets.errors import DataError

    req = AggregateRequest((P.Compare("==", P.Col("nope"), P.Lit("P001")),), (), (), (Measure("n", "rows"),))
    with pytest.raises(DataError, match=r"could not compute this query \(\w+\)") as e:
        spark_engine.aggregate(src, req)
    assert "P001" not in str(e.value)
