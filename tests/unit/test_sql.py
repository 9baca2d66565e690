"""SQL front end: the supported grammar compiles to the same plan as the builder, and
every unsupported construct is refused with a QueryError that names it and says where
it is."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import pets
from pets import QueryError, col
from pets.plan import Aggregation, And, Col, Compare, GroupKey, IsIn, IsNull, Lit, Not, Or, Plan
from pets.query import Query, lit
from pets.sql import parse_sql

A = Query("adult")

# (sql, equivalent builder query)
EQUIVALENT = [
    ("SELECT COUNT(*) FROM adult", A.agg(count=pets.count())),
    ("select count(*) as n from adult", A.agg(n=pets.count())),
    ("SELECT COUNT(*) n FROM adult", A.agg(n=pets.count())),
    ("SELECT COUNT(age) FROM adult", A.agg(count_age=pets.count("age"))),
    ("SELECT COUNT(1) FROM adult", A.agg(count=pets.count())),
    ("SELECT SUM(age) FROM adult", A.agg(sum_age=pets.sum("age"))),
    ("SELECT SUM(age) AS total FROM adult", A.agg(total=pets.sum("age"))),
    ("SELECT AVG(age) FROM adult", A.agg(avg_age=pets.mean("age"))),
    ("SELECT VAR_POP(age) FROM adult", A.agg(var_age=pets.variance("age"))),
    ("SELECT VARIANCE(age) AS v FROM adult", A.agg(v=pets.variance("age"))),
    ('SELECT AVG("hours-per-week") FROM adult',
     A.agg(**{"avg_hours-per-week": pets.mean("hours-per-week")})),
    ('SELECT AVG("hours-per-week") AS hours FROM adult',
     A.agg(hours=pets.mean("hours-per-week"))),
    ("SELECT COUNT(*) AS n, SUM(age) AS s, AVG(age) AS m FROM adult",
     A.agg(n=pets.count(), s=pets.sum("age"), m=pets.mean("age"))),
    ("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex",
     A.group_by("sex").agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult GROUP BY sex",
     A.group_by("sex").agg(n=pets.count())),
    ('SELECT sex, race, COUNT(*) AS n, AVG("hours-per-week") AS h FROM adult GROUP BY sex, race',
     A.group_by("sex", "race").agg(n=pets.count(), h=pets.mean("hours-per-week"))),
    ("SELECT COUNT(*) AS n FROM adult WHERE age = 30", A.filter(col("age") == 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age <> 30", A.filter(col("age") != 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age != 30", A.filter(col("age") != 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age < 30", A.filter(col("age") < 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age <= 30", A.filter(col("age") <= 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age > 30", A.filter(col("age") > 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age >= 30", A.filter(col("age") >= 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE 30 < age", A.filter(lit(30) < col("age")).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age > -5", A.filter(col("age") > -5).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age > -2.5", A.filter(col("age") > -2.5).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age = 30.0", A.filter(col("age") == 30.0).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE sex = 'Female'",
     A.filter(col("sex") == "Female").agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE sex = 'O''Brien'",
     A.filter(col("sex") == "O'Brien").agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE flag = TRUE",
     A.filter(col("flag") == True).agg(n=pets.count())),  # noqa: E712
    ("SELECT COUNT(*) AS n FROM adult WHERE age > 30 AND sex = 'Male'",
     A.filter((col("age") > 30) & (col("sex") == "Male")).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age > 30 OR sex = 'Male'",
     A.filter((col("age") > 30) | (col("sex") == "Male")).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE a = 1 OR b = 2 AND c = 3",
     A.filter((col("a") == 1) | ((col("b") == 2) & (col("c") == 3))).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE (a = 1 OR b = 2) AND c = 3",
     A.filter(((col("a") == 1) | (col("b") == 2)) & (col("c") == 3)).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE NOT age > 30",
     A.filter(~(col("age") > 30)).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE race IN ('White', 'Black')",
     A.filter(col("race").isin(["White", "Black"])).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age IN (1, -2, 3.5)",
     A.filter(col("age").isin([1, -2, 3.5])).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE race NOT IN ('White')",
     A.filter(~col("race").isin(["White"])).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age BETWEEN 20 AND 30",
     A.filter((col("age") >= 20) & (col("age") <= 30)).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age BETWEEN -3 AND 2.5",
     A.filter((col("age") >= -3) & (col("age") <= 2.5)).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE workclass IS NULL",
     A.filter(col("workclass").is_null()).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE workclass IS NOT NULL",
     A.filter(~col("workclass").is_null()).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE age > education_num",
     A.filter(col("age") > col("education_num")).agg(n=pets.count())),
    ('SELECT COUNT(*) AS n FROM adult WHERE "hours-per-week" >= 40',
     A.filter(col("hours-per-week") >= 40).agg(n=pets.count())),
    ("SELECT education, COUNT(*) AS n, AVG(age) AS age_mean FROM adult "
     "WHERE sex = 'Female' AND age BETWEEN 18 AND 65 GROUP BY education",
     A.filter((col("sex") == "Female") & ((col("age") >= 18) & (col("age") <= 65)))
     .group_by("education").agg(n=pets.count(), age_mean=pets.mean("age"))),
    ("SELECT sex, COUNT(DISTINCT person_id) AS persons, COUNT(DISTINCT education) FROM adult "
     "GROUP BY sex",
     A.group_by("sex").agg(persons=pets.count_distinct("person_id"),
                           count_distinct_education=pets.count_distinct("education"))),
]


@pytest.mark.parametrize("sql, query", EQUIVALENT, ids=[s for s, _ in EQUIVALENT])
def test_sql_compiles_to_the_same_plan_as_the_builder(sql, query):
    plan = parse_sql(sql)
    assert plan == query.plan
    # == does not tell True from 1 or 2.0 from 2; the JSON and repr forms do
    assert plan.to_json() == query.plan.to_json()
    assert repr(plan) == repr(query.plan)


def test_literal_types_are_kept():
    p = parse_sql("SELECT COUNT(*) FROM t WHERE a IN (1, 1.0, '1', TRUE, NULL, -7, 1e3)")
    values = p.filters[0].values
    assert [type(v) for v in values] == [int, float, str, bool, type(None), int, float]
    assert values[-2:] == (-7, 1000.0)


def test_sql_plan_shape_in_full():
    p = parse_sql(
        'SELECT sex, COUNT(*) AS n, AVG("hours-per-week") FROM adult '
        "WHERE age >= 18 AND NOT (workclass IS NULL OR race IN ('A')) GROUP BY sex"
    )
    assert p == Plan(
        dataset="adult",
        filters=(
            And(
                Compare(">=", Col("age"), Lit(18)),
                Not(Or(IsNull(Col("workclass")), IsIn(Col("race"), ("A",)))),
            ),
        ),
        group_by=(GroupKey("sex"),),
        aggs=(Aggregation("n", "count"), Aggregation("avg_hours-per-week", "mean", "hours-per-week")),
    )


def test_sql_leaves_bounds_and_keys_to_the_policy():
    p = parse_sql("SELECT sex, SUM(age) FROM adult GROUP BY sex")
    assert p.group_by[0].keys is None
    assert p.aggs[0].bounds is None


def test_duplicate_default_names_ask_for_an_alias():
    with pytest.raises(QueryError, match=r"output name 'count' is used twice; add AS <name>"):
        parse_sql("SELECT COUNT(*), COUNT(*) FROM adult")


def test_output_named_like_a_group_column_is_refused():
    with pytest.raises(QueryError, match="output name 'sex' is already used by a group-by column"):
        parse_sql("SELECT sex, COUNT(*) AS sex FROM adult GROUP BY sex")


def test_empty_sql_is_refused():
    with pytest.raises(QueryError, match="non-empty string"):
        parse_sql("   ")


def test_infinite_literal_is_refused():
    with pytest.raises(QueryError, match="finite number"):
        parse_sql("SELECT COUNT(*) FROM adult WHERE age = 1e400")


# ------------------------------------------------------------------------ refusals

LOC = re.compile(r"at line (\d+), column (\d+)")

# (sql, the offending text, pattern the message must match); the reported location
# must fall inside the offending text.
REFUSED_WITH_LOCATION = [
    ("SELECT COUNT(*) FROM adult a JOIN b ON a.x = b.x", "JOIN b ON a.x = b.x", r"unsupported SQL: JOIN"),
    ("SELECT SUM(DISTINCT age) FROM adult", "SUM(DISTINCT age)",
     r"unsupported SQL: DISTINCT inside an aggregate"),
    ("SELECT COUNT(DISTINCT sex, race) FROM adult", "COUNT(DISTINCT sex, race)",
     r"unsupported SQL: COUNT\(DISTINCT \.\.\.\) other than of one column"),
    ("SELECT COUNT(*) FROM (SELECT * FROM adult)", "(SELECT * FROM adult)",
     r"unsupported SQL: FROM other than one dataset name"),
    ("SELECT COUNT(*) FROM adult WHERE age IN (SELECT age FROM adult)",
     "age IN (SELECT age FROM adult)", r"unsupported SQL: IN with a sub-query"),
    ("SELECT MAX(age) FROM adult", "MAX(age)", r"unsupported SQL: aggregate MAX"),
    ("SELECT MIN(age) FROM adult", "MIN(age)", r"unsupported SQL: aggregate MIN"),
    ("SELECT COUNT(*) FROM adult WHERE age % 2 = 1", "age % 2", r"unsupported SQL: modulo \(%\) \(age % 2\)"),
    ("SELECT COUNT(*) FROM adult WHERE lower(sex) = 'male'", "lower(sex)", r"unsupported SQL: function LOWER"),
    ("SELECT COUNT(*) FROM adult WHERE sex LIKE 'M%'", "sex LIKE 'M%'", r"unsupported SQL: LIKE in WHERE"),
    ("SELECT SUM(age + 1 > 2) FROM adult", "age + 1 > 2", r"unsupported SQL: a condition used as a value"),
    ("SELECT SUM(2) FROM adult", "SUM(2)", r"unsupported SQL: SUM of a constant"),
    ("SELECT sex, COUNT(*) FROM adult", "sex", r"column 'sex' is selected but not in GROUP BY"),
    ("SELECT COUNT(*) FROM adult GROUP BY age + 1", "age + 1", r"unsupported SQL: GROUP BY on an expression"),
    ("SELECT COUNT(*) FROM main.adult", "main.adult", r"unsupported SQL: FROM other than one dataset name"),
    ("SELECT COUNT(*) FROM adult WHERE x.age > 3", "x.age", r"unknown table 'x' in x.age"),
    ("SELECT COUNT(*) FROM adult AS p WHERE adult.age > 3", "adult.age", r"unknown table 'adult'.*refer to the table as p"),
    ("SELECT COUNT(*) FROM adult ORDER BY 2", "2", r"unsupported SQL: ORDER BY position"),
    ("SELECT COUNT(*) FROM adult LIMIT 'a'", "LIMIT 'a'", r"unsupported SQL: LIMIT other than a whole number"),
    ("SELECT sex, COUNT(*) FROM adult GROUP BY sex HAVING age > 5", "age", r"column 'age' in HAVING is neither a GROUP BY column nor inside an aggregate"),
    ("SELECT MAX(age) * 2 FROM adult", "MAX(age)", r"unsupported SQL: aggregate MAX"),
    ("SELECT SUM(age) % 2 FROM adult", "SUM(age) % 2", r"unsupported SQL: modulo"),
    ("SELECT UPPER('a'), COUNT(*) FROM adult", "UPPER('a')", r"unsupported SQL: function UPPER"),
    ("SELECT COUNT(*) OVER () FROM adult", "COUNT(*) OVER ()", r"unsupported SQL: window function"),
    ("SELECT DISTINCT sex, COUNT(*) FROM adult GROUP BY sex", "DISTINCT", r"SELECT DISTINCT with GROUP BY"),
    ("SELECT * FROM adult", "*", r"SELECT \* returns rows; ask for aggregates such as COUNT\(\*\)"),
    ("SELECT COUNT(*)", "SELECT COUNT(*)", r"the query needs FROM <dataset>"),
    ("SELECT 3 AS three FROM adult", "SELECT 3 AS three FROM adult", r"select at least one aggregate"),
    ("WITH t AS (SELECT 1) SELECT COUNT(*) FROM t", "WITH t AS (SELECT 1)", r"unsupported SQL: WITH"),
    ("INSERT INTO adult VALUES (1)", "INSERT INTO adult VALUES (1)",
     r"unsupported SQL: statement other than SELECT"),
    ("DELETE FROM adult", "DELETE FROM adult", r"unsupported SQL: statement other than SELECT"),
    ("UPDATE adult SET age = 1", "UPDATE adult SET age = 1", r"unsupported SQL: statement other than SELECT"),
    ("SELECT COUNT(*) FROM adult UNION SELECT COUNT(*) FROM adult",
     "SELECT COUNT(*) FROM adult UNION SELECT COUNT(*) FROM adult",
     r"unsupported SQL: statement other than SELECT"),
    ("SELECT COUNT(* FROM adult", "COUNT(* FROM adult", r"SQL syntax error"),
    ("SELECT COUNT(*) FROM adult WHERE", "WHERE", r"SQL syntax error"),
]


@pytest.mark.parametrize("sql, where, pattern", REFUSED_WITH_LOCATION,
                         ids=[s for s, _, _ in REFUSED_WITH_LOCATION])
def test_unsupported_sql_is_refused_naming_the_construct_and_where(sql, where, pattern):
    with pytest.raises(QueryError, match=pattern) as info:
        parse_sql(sql)
    m = LOC.search(str(info.value))
    assert m, f"no 'at line L, column C' in {str(info.value)!r}"
    line, column = int(m.group(1)), int(m.group(2))
    assert line == 1
    start = sql.index(where) + 1  # 1-based
    end = start + len(where) - 1
    assert start <= column <= end, (column, start, end)


REFUSED_WITHOUT_LOCATION = [
    ("SELECT COUNT(*) FROM adult; SELECT COUNT(*) FROM adult", r"give exactly one SQL statement, got 2"),
]


@pytest.mark.parametrize("sql, pattern", REFUSED_WITHOUT_LOCATION,
                         ids=[s for s, _ in REFUSED_WITHOUT_LOCATION])
def test_unsupported_sql_is_refused_naming_the_construct(sql, pattern):
    with pytest.raises(QueryError, match=pattern):
        parse_sql(sql)


def test_syntax_error_points_at_a_line_and_column():
    with pytest.raises(QueryError, match=r"^SQL syntax error at line 1, column \d+: "):
        parse_sql("SELECT COUNT(* FROM adult")


def test_location_counts_lines():
    with pytest.raises(QueryError, match=r"modulo \(%\) \(age % 2\) at line 3, column \d+"):
        parse_sql("SELECT COUNT(*)\nFROM adult\nWHERE age % 2 > 3")


@pytest.mark.parametrize(
    "sql, line, column",
    [
        ("SELECT COUNT(*) FROM adult WHERE age % 1 > 30", 1, 34),
        ("SELECT COUNT(*)\nFROM adult\nWHERE age % 2 > 3", 3, 7),
        ("SELECT sex, MAX(age) FROM adult GROUP BY sex", 1, 13),
        ("SELECT COUNT(*) FROM adult WHERE lower(sex) = 'x'", 1, 34),
    ],
)
def test_location_is_where_the_construct_starts(sql, line, column):
    with pytest.raises(QueryError, match=rf"at line {line}, column {column}\b"):
        parse_sql(sql)


# ----------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    holder = pets.Holder(tmp_path_factory.mktemp("pets-home"))
    holder.register("adult", pets.example_data(), pets.example_policy())
    holder.grant("alice", dataset="adult", purpose="sql-tests", epsilon=1e7)
    return holder.session("alice", purpose="sql-tests")


@pytest.fixture(scope="module")
def adult_df():
    df = pd.read_csv(pets.example_data(), skipinitialspace=True, na_values=["?"])
    return df


HUGE = pets.DP(epsilon=1e6)  # noise scale ~1e-6: every released value is the exact one


def test_sql_release_matches_the_builder_release(session):
    r_sql = session.sql(
        'SELECT education, COUNT(*) AS n, AVG("hours-per-week") AS hours FROM adult '
        "WHERE age >= 18 AND sex = 'Female' GROUP BY education",
        HUGE,
    )
    q = (
        session.table("adult")
        .filter(col("age") >= 18)
        .filter(col("sex") == "Female")
        .group_by("education")
        .agg(n=pets.count(), hours=pets.mean("hours-per-week"))
    )
    r_b = session.release(q, HUGE)
    assert list(r_sql.df.columns) == ["education", "n", "hours"]
    assert list(r_sql.df.columns) == list(r_b.df.columns)
    pd.testing.assert_frame_equal(r_sql.df, r_b.df)
    assert r_sql.scale == r_b.scale


def test_sql_release_counts_are_the_exact_counts(session, adult_df):
    r = session.sql(
        "SELECT education, COUNT(*) AS n FROM adult "
        "WHERE age BETWEEN 18 AND 40 AND sex = 'Female' GROUP BY education",
        HUGE,
    )
    d = adult_df
    exact = d[(d["age"] >= 18) & (d["age"] <= 40) & (d["sex"] == "Female")].groupby("education").size()
    got = r.df.set_index("education")["n"]
    assert got.sum() == exact.sum()
    for key, n in exact.items():
        assert got[key] == n


def test_sql_default_names_reach_the_released_table(session):
    r = session.sql('SELECT sex, COUNT(*), AVG("hours-per-week") FROM adult GROUP BY sex', HUGE)
    assert list(r.df.columns) == ["sex", "count", "avg_hours-per-week"]
    assert sorted(r.df["sex"]) == ["Female", "Male"]


def test_refused_sql_spends_nothing(session):
    before = session.remaining("adult")
    with pytest.raises(QueryError, match="aggregate MAX"):
        session.sql("SELECT MAX(age) FROM adult", pets.DP(epsilon=0.5))
    assert session.remaining("adult") == before


@pytest.mark.parametrize(
    "sql, name, q",
    [
        ("SELECT sex, MEDIAN(age) AS m FROM adult GROUP BY sex", "m", 0.5),
        ("SELECT QUANTILE_CONT(age, 0.9) FROM adult", "quantile_age", 0.9),
        ("SELECT PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY age) AS p FROM adult", "p", 0.25),
    ],
)
def test_sql_quantiles_parse_to_dp_quantiles(sql, name, q):
    (agg,) = parse_sql(sql).aggs
    assert (agg.name, agg.kind, agg.column, agg.q) == (name, "quantile", "age", q)


def test_sql_quantile_fraction_out_of_range_is_refused():
    with pytest.raises(QueryError, match="q strictly between 0 and 1"):
        parse_sql("SELECT PERCENTILE_CONT(2) WITHIN GROUP (ORDER BY age) FROM adult")
