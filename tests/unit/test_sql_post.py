"""SQL that analysts write (issue #13): HAVING, ORDER BY, LIMIT / TOP / OFFSET,
expressions over aggregates, VAR / STD names, literal coercion, qualifiers, GROUP BY
without aggregates, CASE groups not named, renamed groups — and refusals that say
where and what to do."""

from __future__ import annotations

import re

import pytest

from pets import QueryError
from pets.post import Call, Const, Ref
from pets.sql import parse_sql

TYPES = {"age": "int", "sex": "str", "education-num": "int", "hours-per-week": "int",
         "marital-status": "str", "flag": "bool", "race": "str", "education": "str"}


def sql(text: str):
    return parse_sql(text, schema=lambda d: TYPES)


def test_having_order_by_limit_offset():
    p = sql("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex HAVING COUNT(*) > 100 "
            "ORDER BY n DESC LIMIT 1 OFFSET 1")
    assert [a.name for a in p.aggs] == ["n"]  # COUNT(*) in HAVING is the same aggregate
    assert p.post.having == Call(">", (Ref("n"), Const(100)))
    assert p.post.order_by == ((Ref("n"), True, False),)
    assert (p.post.limit, p.post.offset, p.post.outputs) == (1, 1, None)


@pytest.mark.parametrize("text, limit", [
    ("SELECT TOP 5 sex, COUNT(*) AS n FROM adult GROUP BY sex", 5),
    ("SELECT TOP (7) sex, COUNT(*) AS n FROM adult GROUP BY sex", 7),
    ("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex FETCH FIRST 3 ROWS ONLY", 3),
    ("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex LIMIT 2", 2),
])
def test_top_fetch_and_limit(text, limit):
    assert sql(text).post.limit == limit


def test_order_by_position_and_nulls_first():
    p = sql("SELECT education, AVG(age) FROM adult GROUP BY education ORDER BY 2 DESC NULLS FIRST, 1")
    assert p.post.order_by == ((Ref("avg_age"), True, True), (Ref("education"), False, False))


def test_expressions_over_aggregates_compute_from_hidden_aggregates():
    p = sql("SELECT sex, SUM(age) / COUNT(*) AS m, POWER(SUM(age), 2) AS p2, 3 AS three, PI() "
            "FROM adult GROUP BY sex")
    assert [(a.name, a.kind) for a in p.aggs] == [("sum_age", "sum"), ("count", "count")]
    outs = dict(p.post.outputs)
    assert list(outs) == ["sex", "m", "p2", "three", "PI()"]
    assert outs["m"] == Call("/", (Ref("sum_age"), Ref("count")))
    assert outs["p2"] == Call("power", (Ref("sum_age"), Const(2)))
    assert outs["three"] == Const(3)


@pytest.mark.parametrize("name, kind", [
    ("VAR", "variance"), ("VARIANCE", "variance"), ("VAR_SAMP", "variance"),
    ("VAR_POP", "variance"), ("STD", "stddev"), ("STDDEV", "stddev"),
    ("STDDEV_SAMP", "stddev"), ("STDDEV_POP", "stddev"),
])
def test_variance_and_stddev_names(name, kind):
    p = sql(f"SELECT {name}(age) AS v FROM adult")
    assert [(a.name, a.kind, a.column) for a in p.aggs] == [("v", kind, "age")]


@pytest.mark.parametrize("where, value", [
    ("\"education-num\" = '8'", 8), ("age > ' 50 '", 50), ("age = '40.5'", 40.5),
    ("flag = 'true'", True), ("flag = 0", False),
])
def test_literals_are_coerced_as_a_database_would(where, value):
    p = sql(f"SELECT COUNT(*) FROM adult WHERE {where}")
    assert p.filters[0].right.value == value and type(p.filters[0].right.value) is type(value)


def test_in_and_between_are_coerced_too():
    p = sql("SELECT COUNT(*) FROM adult WHERE age IN ('30', '40') AND age BETWEEN '1' AND '99'")
    f = p.filters[0]
    assert f.left.values == (30, 40)


@pytest.mark.parametrize("where, msg", [
    ("age = 'abc'", r"'abc' is not a number, and column 'age' holds numbers at line 1, column 40"),
    ("sex = TRUE", r"column 'sex' holds text; it cannot be compared with TRUE at line 1, column 34"),
    ("sex = 8", r"column 'sex' holds text; it cannot be compared with 8 .*'8'"),
    ("age = TRUE", r"column 'age' holds numbers"),
    ("flag = 'maybe'", r"'maybe' is not a boolean"),
])
def test_literals_a_database_would_not_coerce_are_refused_where_written(where, msg):
    with pytest.raises(QueryError, match=msg):
        sql(f"SELECT COUNT(*) FROM adult WHERE {where}")


def test_qualifiers_are_checked_against_the_from_clause():
    p = sql("SELECT p.sex, AVG(p.age) AS a FROM adult AS p WHERE p.age > 3 GROUP BY p.sex")
    assert p.group_by[0].column == "sex" and p.aggs[0].column == "age"
    assert sql("SELECT adult.sex, COUNT(*) FROM adult GROUP BY adult.sex").group_by[0].column == "sex"
    with pytest.raises(QueryError, match=r"unknown table 'x' in x.sex at line 1, column 8: the query reads adult AS p"):
        sql("SELECT x.sex, COUNT(*) FROM adult AS p GROUP BY p.sex")
    with pytest.raises(QueryError, match=r"unknown table 'x'.* at line 1, column 49"):
        sql("SELECT p.sex, COUNT(*) FROM adult AS p GROUP BY x.sex")


def test_group_by_without_aggregate_is_a_list_of_groups():
    p = sql("SELECT sex FROM adult GROUP BY sex")
    assert [(a.name, a.kind) for a in p.aggs] == [("count", "count")]
    assert p.post.outputs == (("sex", Ref("sex")),)
    assert p.post.having == Call(">", (Ref("count"), Const(0)))
    d = sql("SELECT DISTINCT sex, race FROM adult")
    assert [g.column for g in d.group_by] == ["sex", "race"]


def test_case_in_group_by_not_named_and_renamed_groups():
    p = sql("SELECT COUNT(*) AS n FROM adult GROUP BY CASE WHEN age < 30 THEN 'y' ELSE 'o' END")
    assert p.group_by[0].column == "case_1" and p.group_by[0].expr is not None
    r = sql('SELECT "marital-status" AS m, COUNT(*) AS n FROM adult GROUP BY "marital-status"')
    assert r.post.outputs == (("m", Ref("marital-status")), ("n", Ref("n")))
    g = sql("SELECT race AS r, COUNT(*) FROM adult GROUP BY r HAVING r <> 'White'")
    assert g.group_by[0].column == "race"
    assert g.post.having == Call("!=", (Ref("race"), Const("White")))
    assert sql("SELECT education, COUNT(*) FROM adult GROUP BY 1").group_by[0].column == "education"


def test_hyphenated_names_and_double_quoted_strings_say_what_to_do():
    with pytest.raises(QueryError, match=r'hours-per-week at line 1, column 12 reads as a '
                       r'subtraction.*double quotes: "hours-per-week"'):
        sql("SELECT AVG(hours-per-week) FROM adult")
    with pytest.raises(QueryError, match=r'"marital-status"'):
        sql("SELECT COUNT(*) FROM adult GROUP BY marital-status")
    with pytest.raises(QueryError, match=r"unknown column \"Male\" at line 1, column 40: double "
                       r"quotes name a column; write text in single quotes: 'Male'"):
        sql('SELECT COUNT(*) FROM adult WHERE sex = "Male"')


def test_a_dash_alone_and_parser_internals_never_surface():
    with pytest.raises(QueryError, match=r"'-' is not SQL"):
        sql("-")
    for bad in ("SELECT COUNT(* FROM adult", "SELEC x", "SELECT COUNT(*) FROM adult WHERE ((",
                "SELECT 'unterminated FROM adult"):
        with pytest.raises(QueryError) as info:
            sql(bad)
        m = str(info.value)
        assert "\x1b" not in m and "Line " not in m and "Col:" not in m, m


LOC = re.compile(r"at line (\d+), column (\d+)")


@pytest.mark.parametrize("text", [
    "SELECT COUNT(*) FROM adult ORDER BY 5",
    "SELECT COUNT(*) FROM adult GROUP BY 7",
    "SELECT COUNT(*) FROM adult LIMIT 1.5",
    "SELECT sex, COUNT(*) FROM adult GROUP BY sex HAVING age > 3",
    "SELECT sex, COUNT(*) FROM adult GROUP BY sex ORDER BY age",
    "SELECT LOG(2, COUNT(*)) FROM adult",
    "SELECT CAST(COUNT(*) AS VARCHAR) FROM adult",
    "SELECT COUNT(*) AS n, COUNT(*) AS n FROM adult",
    "SELECT SUM(age) AS sex, sex FROM adult GROUP BY sex",
    "SELECT MAX(age) FROM adult",
    "SELECT *, COUNT(*) FROM adult",
    "SELECT COUNT(*)",
    "SELECT 1 FROM adult",
    "SELECT DISTINCT age + 1 FROM adult",
    "SELECT age, COUNT(*) FROM adult",
    "SELECT COUNT(*) FROM adult; SELECT 1",
    "SELECT sex, COUNT(*) FROM adult GROUP BY sex WITH ROLLUP",
    "SELECT COUNT(*) FROM adult TABLESAMPLE (10%)",
    "SELECT COUNT(*) FROM adult CLUSTER BY age",
    "SELECT COUNT(*) FILTER (WHERE age > 3) FROM adult",
])
def test_every_refusal_has_a_position(text):
    with pytest.raises(QueryError) as info:
        sql(text)
    assert LOC.search(str(info.value)), str(info.value)


def test_an_unknown_column_says_where_and_what_was_meant():
    with pytest.raises(QueryError, match=r"unknown column 'agee' in dataset 'adult' at line 2, "
                       r"column 12; did you mean 'age'\?"):
        sql("SELECT sex,\n       AVG(agee) FROM adult GROUP BY sex")
    # names of outputs are not columns
    assert sql("SELECT COUNT(*) AS n FROM adult HAVING n > 1 ORDER BY n").post is not None


def test_a_case_over_an_ungrouped_column_in_select_says_which_column():
    # was "expression in SELECT"; a CASE over aggregates is fine now, over a raw column not
    with pytest.raises(QueryError, match=r"column 'age' is selected but not in GROUP BY at "
                       r"line 1, column 18"):
        sql("SELECT CASE WHEN age < 30 THEN 'y' ELSE 'o' END AS b, COUNT(*) FROM adult")
    assert sql("SELECT SUM(age) + 1 FROM adult").post.outputs[0][0] == "SUM(age) + 1"
