"""Arithmetic and CASE in queries: the plans the builder and SQL produce (the same
plan from both), their JSON round trip, the bounds derived by interval arithmetic,
the SQL the engine runs for them (on a real DuckDB), and every refusal with its
message and, for SQL, its position."""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pets
from pets import QueryError, col
from pets.engines.duckdb import _expr_sql
from pets.expressions import LIMIT, value_bounds, value_kind
from pets.plan import (
    COMPARE_OPS,
    Aggregation,
    Arith,
    Case,
    Col,
    Compare,
    GroupKey,
    IsNull,
    Lit,
    Neg,
    Plan,
    case_keys,
    expr_columns,
    expr_text,
)
from pets.query import Query, lit
from pets.sql import parse_sql

A = Query("adult")
BAND = pets.case((col("age") < 30, "young"), (col("age") < 60, "middle"), default="old")
BAND_NODE = Case(
    ((Compare("<", Col("age"), Lit(30)), Lit("young")),
     (Compare("<", Col("age"), Lit(60)), Lit("middle"))),
    Lit("old"),
)

# ---------------------------------------------------------------------------- builder


@pytest.mark.parametrize(
    "make, node",
    [
        (lambda: col("a") + col("b"), Arith("+", Col("a"), Col("b"))),
        (lambda: col("a") - 1, Arith("-", Col("a"), Lit(1))),
        (lambda: 1 - col("a"), Arith("-", Lit(1), Col("a"))),
        (lambda: col("a") * 2.5, Arith("*", Col("a"), Lit(2.5))),
        (lambda: 52 * col("h"), Arith("*", Lit(52), Col("h"))),
        (lambda: 3 + col("a"), Arith("+", Lit(3), Col("a"))),
        (lambda: col("a") / 12, Arith("/", Col("a"), Lit(12))),
        (lambda: col("a") / -0.5, Arith("/", Col("a"), Lit(-0.5))),
        (lambda: -col("a"), Neg(Col("a"))),
        (lambda: -(col("a") - col("b")) * 2,
         Arith("*", Neg(Arith("-", Col("a"), Col("b"))), Lit(2))),
    ],
)
def test_arithmetic_operators_build_arith_nodes(make, node):
    assert make().node == node


def test_arithmetic_in_a_filter_compares_the_computed_value():
    q = A.filter(col("age") + 1 > 30)
    assert q.plan.filters == (Compare(">", Arith("+", Col("age"), Lit(1)), Lit(30)),)


@pytest.mark.parametrize(
    "make",
    [lambda: col("a") / col("b"), lambda: 2 / col("a"), lambda: col("a") / 0,
     lambda: col("a") / 0.0, lambda: col("a") / (col("b") + 1), lambda: col("a") / True,
     lambda: col("a") / "x"],
    ids=["by-column", "rdiv", "by-zero", "by-zero-float", "by-expression", "by-bool", "by-text"],
)
def test_division_is_only_by_a_nonzero_number(make):
    with pytest.raises(QueryError, match=r"division is supported only by a nonzero number"):
        make()


@pytest.mark.parametrize("make", [lambda: col("a") % 2, lambda: col("a") // 2,
                                  lambda: col("a") ** 2, lambda: 2 ** col("a")])
def test_other_operators_are_refused(make):
    with pytest.raises(QueryError, match=r"only \+ - \* and / by a nonzero number"):
        make()


def test_case_builds_a_case_node_in_branch_order():
    assert BAND.node == BAND_NODE
    e = pets.case((col("sex") == "Male", 1))
    assert e.node == Case(((Compare("==", Col("sex"), Lit("Male")), Lit(1)),), None)


def test_case_values_may_be_expressions():
    e = pets.case((col("age") < 30, col("hours") * 52), default=0)
    assert e.node == Case(((Compare("<", Col("age"), Lit(30)), Arith("*", Col("hours"), Lit(52))),),
                          Lit(0))


def test_an_explicit_null_default_is_no_default():
    assert Case(((Compare("<", Col("a"), Lit(1)), Lit(1)),), Lit(None)).default is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: pets.case(), r"case\(\) needs at least one \(condition, value\) pair"),
        (lambda: pets.case(col("a") > 1), r"case\(\) takes \(condition, value\) pairs"),
        (lambda: pets.case((col("a") > 1, 1, 2)), r"case\(\) takes \(condition, value\) pairs"),
        (lambda: pets.case(("a > 1", 1)), r"a case\(\) condition must be a column condition"),
        (lambda: pets.case((col("a") > 1, [1])), r"must be a string, number, boolean or None"),
    ],
)
def test_bad_case_arguments_are_refused(make, message):
    with pytest.raises(QueryError, match=message):
        make()


def test_aggregations_take_an_expression_where_they_take_a_column():
    q = A.agg(
        net=pets.sum(col("gain") - col("loss")),
        yearly=pets.mean(col("hours") * 52, bounds=(0, 5200)),
        v=pets.variance(-col("x")),
        med=pets.quantile(col("age") + 0.5, 0.5),
        men=pets.count(pets.case((col("sex") == "Male", 1))),
    )
    assert q.plan.aggs == (
        Aggregation("net", "sum", expr=Arith("-", Col("gain"), Col("loss"))),
        Aggregation("yearly", "mean", bounds=(0, 5200), expr=Arith("*", Col("hours"), Lit(52))),
        Aggregation("v", "variance", expr=Neg(Col("x"))),
        Aggregation("med", "quantile", q=0.5, expr=Arith("+", Col("age"), Lit(0.5))),
        Aggregation("men", "count",
                    expr=Case(((Compare("==", Col("sex"), Lit("Male")), Lit(1)),))),
    )


def test_an_aggregation_of_a_plain_column_expression_is_the_column():
    assert pets.sum(col("age")).named("s") == Aggregation("s", "sum", "age")
    assert Aggregation("s", "sum", expr=Col("age")) == Aggregation("s", "sum", "age")


def test_an_aggregation_of_a_condition_is_refused_with_the_fix():
    with pytest.raises(QueryError, match=r"sum\(\) of a condition \(age > 1\).*pets\.case"):
        pets.sum(col("age") > 1)


def test_an_aggregation_takes_a_column_or_an_expression_not_both():
    with pytest.raises(QueryError, match="not both"):
        Aggregation("s", "sum", "a", expr=Arith("+", Col("a"), Lit(1)))


def test_bounds_errors_name_the_expression():
    with pytest.raises(QueryError, match=r"bounds for sum\(a - b\) must be .* lower < upper"):
        pets.sum(col("a") - col("b"), bounds=(5, 1))


def test_group_by_a_named_case():
    q = A.group_by("sex", band=BAND).agg(n=pets.count())
    assert q.plan.group_by == (GroupKey("sex"), GroupKey("band", None, BAND_NODE))
    assert [g.column for g in q.plan.group_by] == ["sex", "band"]
    # a named CASE alone, and a second group_by call putting it first
    assert A.group_by(band=BAND).plan.group_by == (GroupKey("band", None, BAND_NODE),)
    assert A.group_by(band=BAND).group_by("sex").plan.group_by[0].column == "band"


def test_case_keys_are_the_distinct_literal_results_in_written_order():
    assert case_keys(BAND_NODE) == ("young", "middle", "old")
    e = pets.case((col("a") < 1, 2), (col("a") < 2, None), (col("a") < 3, 1), (col("a") < 4, 2))
    assert case_keys(e.node) == (2, 1)


@pytest.mark.parametrize(
    "group, message",
    [
        (lambda: pets.case((col("a") < 1, col("b"))), r"must be a literal value .* not b"),
        (lambda: pets.case((col("a") < 1, "x"), default=col("b") + 1),
         r"must be a literal value .* not b \+ 1"),
        (lambda: pets.case((col("a") < 1, "x"), default=1), r"mix number and text"),
        (lambda: pets.case((col("a") < 1, None)), r"no non-NULL result"),
        (lambda: col("a") + 1, r"must be a CASE with literal results"),
        (lambda: col("a"), r"must be a CASE with literal results"),
    ],
)
def test_group_by_a_case_needs_literal_results_of_one_kind(group, message):
    with pytest.raises(QueryError, match=message):
        A.group_by(g=group())


def test_group_by_a_case_takes_no_keys():
    with pytest.raises(QueryError, match="a CASE group's keys are its THEN / ELSE values"):
        A.group_by(band=BAND, keys=["young"])
    with pytest.raises(QueryError, match="give no keys for it"):
        GroupKey("band", ("young",), BAND_NODE)


def test_group_by_a_name_that_is_not_an_expression_is_refused():
    with pytest.raises(QueryError, match=r"group_by\(band=\.\.\.\) takes a pets\.case"):
        A.group_by(band="young")  # type: ignore[arg-type]


def test_plan_columns_include_every_column_inside_expressions():
    q = (A.filter(col("w") * 2 > 1)
         .group_by(band=pets.case((col("age") < 30, "y"), default="o"))
         .agg(s=pets.sum(col("gain") - col("loss")),
              c=pets.count(pets.case((col("sex") == "M", col("z"))))))
    assert q.plan.columns() == ["w", "age", "gain", "loss", "sex", "z"]
    # the name of a CASE group is not a column
    assert "band" not in q.plan.columns()
    assert expr_columns(BAND_NODE) == ["age"]


def test_expression_text_is_sql_like():
    e = pets.case((col("age") < 30, col("hours-per-week") * 52), default=-1)
    assert expr_text(e.node) == 'CASE WHEN age < 30 THEN "hours-per-week" * 52 ELSE -1 END'
    assert expr_text((-(col("a") - col("b")) / 2).node) == "-(a - b) / 2"


# --------------------------------------------------------------------- SQL == builder

EQUIVALENT = [
    ('SELECT SUM("capital-gain" - "capital-loss") AS net FROM adult',
     A.agg(net=pets.sum(col("capital-gain") - col("capital-loss")))),
    ("SELECT AVG(hours * 52) AS y FROM adult", A.agg(y=pets.mean(col("hours") * 52))),
    ("SELECT SUM(a + b) FROM adult", A.agg(sum_expr=pets.sum(col("a") + col("b")))),
    ("SELECT AVG(-x) AS m FROM adult", A.agg(m=pets.mean(-col("x")))),
    ("SELECT AVG(-(x)) AS m FROM adult", A.agg(m=pets.mean(-col("x")))),
    ("SELECT SUM(x * -2) AS s FROM adult", A.agg(s=pets.sum(col("x") * -2))),
    ("SELECT SUM(2.5 * x - 1) AS s FROM adult", A.agg(s=pets.sum(2.5 * col("x") - 1))),
    ("SELECT SUM((a + b) * c) AS s FROM adult", A.agg(s=pets.sum((col("a") + col("b")) * col("c")))),
    ("SELECT SUM(a / 4) AS s FROM adult", A.agg(s=pets.sum(col("a") / 4))),
    ("SELECT SUM(a / (4)) AS s FROM adult", A.agg(s=pets.sum(col("a") / 4))),
    ("SELECT SUM(a / -0.5) AS s FROM adult", A.agg(s=pets.sum(col("a") / -0.5))),
    ("SELECT VAR_POP(a - b) AS v FROM adult", A.agg(v=pets.variance(col("a") - col("b")))),
    ("SELECT MEDIAN(age + 1) AS m FROM adult", A.agg(m=pets.quantile(col("age") + 1, 0.5))),
    ("SELECT SUM(CASE WHEN sex = 'Male' THEN 1 ELSE 0 END) AS men FROM adult",
     A.agg(men=pets.sum(pets.case((col("sex") == "Male", 1), default=0)))),
    ("SELECT SUM(CASE sex WHEN 'Male' THEN 1 ELSE 0 END) AS men FROM adult",
     A.agg(men=pets.sum(pets.case((col("sex") == "Male", 1), default=0)))),
    ("SELECT COUNT(CASE WHEN sex = 'Male' THEN 1 END) AS men FROM adult",
     A.agg(men=pets.count(pets.case((col("sex") == "Male", 1))))),
    ("SELECT COUNT(CASE WHEN sex = 'Male' THEN 1 ELSE NULL END) AS men FROM adult",
     A.agg(men=pets.count(pets.case((col("sex") == "Male", 1))))),
    ("SELECT SUM(CASE WHEN age < 30 AND sex = 'F' THEN h * 2 WHEN age IS NULL THEN 0 END) AS s "
     "FROM adult",
     A.agg(s=pets.sum(pets.case(((col("age") < 30) & (col("sex") == "F"), col("h") * 2),
                                (col("age").is_null(), 0))))),
    ("SELECT COUNT(*) AS n FROM adult WHERE age + 1 > 30",
     A.filter(col("age") + 1 > 30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE a * 2 <= b - 1",
     A.filter(col("a") * 2 <= col("b") - 1).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE -age < -30",
     A.filter(-col("age") < -30).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE a + 1 BETWEEN 2 AND 3",
     A.filter(((col("a") + 1) >= 2) & ((col("a") + 1) <= 3)).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE a * 2 IN (2, 4)",
     A.filter((col("a") * 2).isin([2, 4])).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n FROM adult WHERE CASE WHEN a > 1 THEN 'x' ELSE 'y' END = 'x'",
     A.filter(pets.case((col("a") > 1, "x"), default="y") == "x").agg(n=pets.count())),
    ("SELECT CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' ELSE 'old' END AS band, "
     "COUNT(*) AS n FROM adult GROUP BY band",
     A.group_by(band=BAND).agg(n=pets.count())),
    ("SELECT COUNT(*) AS n, CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' "
     "ELSE 'old' END AS band FROM adult GROUP BY band",
     A.group_by(band=BAND).agg(n=pets.count())),
    ("SELECT CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' ELSE 'old' END AS band, "
     "COUNT(*) AS n FROM adult "
     "GROUP BY CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' ELSE 'old' END",
     A.group_by(band=BAND).agg(n=pets.count())),
    ("SELECT sex, CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' ELSE 'old' END "
     "AS band, SUM(h * 52) AS y FROM adult GROUP BY sex, band",
     A.group_by("sex", band=BAND).agg(y=pets.sum(col("h") * 52))),
    ("SELECT CASE education WHEN 'Bachelors' THEN 1 WHEN 'Masters' THEN 2 END AS lvl, "
     "COUNT(*) AS n FROM adult GROUP BY lvl",
     A.group_by(lvl=pets.case((col("education") == "Bachelors", 1),
                              (col("education") == "Masters", 2))).agg(n=pets.count())),
    ("SELECT CASE WHEN age < 30 THEN -1 ELSE 1 END AS s, COUNT(*) AS n FROM adult GROUP BY s",
     A.group_by(s=pets.case((col("age") < 30, -1), default=1)).agg(n=pets.count())),
]


@pytest.mark.parametrize("sql, query", EQUIVALENT, ids=[s for s, _ in EQUIVALENT])
def test_sql_expressions_compile_to_the_same_plan_as_the_builder(sql, query):
    plan = parse_sql(sql)
    assert plan == query.plan
    assert plan.to_json() == query.plan.to_json()
    assert repr(plan) == repr(query.plan)
    assert Plan.from_json(plan.to_json()) == plan


def test_sql_expression_aggregates_get_a_default_name():
    p = parse_sql("SELECT SUM(a - b), AVG(a * 2) FROM t")
    assert [a.name for a in p.aggs] == ["sum_expr", "avg_expr"]
    with pytest.raises(QueryError, match=r"output name 'sum_expr' is used twice; add AS"):
        parse_sql("SELECT SUM(a - b), SUM(a + b) FROM t")


def test_count_of_a_literal_is_count_of_rows():
    assert parse_sql("SELECT COUNT(1) AS n FROM t") == Query("t").agg(n=pets.count()).plan


# ------------------------------------------------------------------------ JSON form

# output and group names: any text but pets' reserved prefix, which plans refuse in any
# case (RESERVED_PREFIX; a name such as "__PETS" is a refusal, not a round trip)
names = st.text(min_size=1, max_size=6).filter(lambda n: not n.lower().startswith("__pets"))
numbers = st.one_of(st.integers(-(2**40), 2**40), st.floats(-1e9, 1e9, allow_nan=False))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=5))
nonzero = st.one_of(st.integers(1, 99), st.integers(-99, -1),
                    st.floats(0.001, 1e6), st.floats(-1e6, -0.001))
conditions = st.builds(Compare, st.sampled_from(COMPARE_OPS), names.map(Col), scalars.map(Lit))


def _grow(children):
    return st.one_of(
        st.builds(Arith, st.sampled_from(["+", "-", "*"]), children, children),
        st.builds(Arith, st.just("/"), children, nonzero.map(Lit)),
        st.builds(Neg, children),
        st.builds(
            Case,
            st.lists(st.tuples(st.one_of(conditions, st.builds(IsNull, children)), children),
                     min_size=1, max_size=3).map(tuple),
            st.one_of(st.none(), children),
        ),
    )


values = st.recursive(st.one_of(names.map(Col), numbers.map(Lit)), _grow, max_leaves=10)
literal_cases = st.builds(
    Case,
    st.lists(st.tuples(conditions, st.text(max_size=4).map(Lit)), min_size=1, max_size=4).map(tuple),
    st.one_of(st.none(), st.text(max_size=4).map(Lit)),
)


@st.composite
def plans(draw):
    groups = draw(st.lists(names, unique=True, max_size=2))
    group_by = tuple(GroupKey(g, None, draw(literal_cases)) for g in groups)
    out = draw(st.lists(names.filter(lambda n: n not in groups), unique=True, min_size=1,
                        max_size=3))
    aggs = []
    for n in out:
        kind = draw(st.sampled_from(["count", "sum", "mean", "variance", "quantile"]))
        e = draw(values.filter(lambda v: not isinstance(v, (Col, Lit))))
        aggs.append(Aggregation(n, kind, None, None, 0.5 if kind == "quantile" else None,
                                expr=e))
    filters = tuple(draw(st.lists(st.builds(Compare, st.sampled_from(COMPARE_OPS), values, values),
                                  max_size=2)))
    return Plan("d", filters=filters, group_by=group_by, aggs=tuple(aggs))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_plans_with_expressions_round_trip_through_json_exactly(plan):
    text = plan.to_json()
    back = Plan.from_json(text)
    assert back == plan
    assert repr(back) == repr(plan)
    assert back.to_json() == text


def test_plans_without_expressions_keep_their_json_form():
    # no "expr" keys appear unless an expression is used (recorded answers stay valid)
    p = A.group_by("sex").agg(n=pets.count(), s=pets.sum("age")).plan
    assert '"expr"' not in p.to_json()


@pytest.mark.parametrize(
    "expr, message",
    [
        ({"arith": "%", "left": {"col": "a"}, "right": {"lit": 2}}, "unknown arithmetic '%'"),
        ({"arith": "/", "left": {"col": "a"}, "right": {"col": "b"}}, "division is supported only"),
        ({"arith": "/", "left": {"col": "a"}, "right": {"lit": 0}}, "division is supported only"),
        ({"arith": "+", "left": {"col": "a"}}, "malformed plan"),
        ({"case": "x"}, "malformed expression"),
        ({"case": []}, "at least one WHEN"),
        ({"case": [[{"col": "a"}]]}, "malformed plan"),
    ],
)
def test_malformed_expression_json_is_refused(expr, message):
    text = json.dumps({"dataset": "d", "filters": [{"op": ">", "left": expr, "right": {"lit": 1}}]})
    with pytest.raises(QueryError, match=message):
        Plan.from_json(text)


def test_malformed_case_group_json_is_refused():
    text = json.dumps({"dataset": "d", "group_by": [
        {"column": "g", "keys": None,
         "expr": {"case": [[{"op": "<", "left": {"col": "a"}, "right": {"lit": 1}}, {"col": "b"}]],
                  "else": None}}]})
    with pytest.raises(QueryError, match="must be a literal value"):
        Plan.from_json(text)


# ------------------------------------------------------------- bounds by intervals

SCHEMA = {"gain": "int", "loss": "int", "hours": "int", "age": "int", "edu": "int",
          "score": "float", "sex": "str", "free": "int", "flag": "bool"}
BOUNDS = {"gain": (0, 100000), "loss": (0, 5000), "hours": (1, 99), "age": (17, 90),
          "edu": (1, 16), "score": (-0.5, 2.5), "sex": None, "free": None}


@pytest.mark.parametrize(
    "expr, lower, upper, integral, clamped",
    [
        (col("gain") - col("loss"), -5000, 100000, True, ["gain", "loss"]),
        (col("gain") + col("loss"), 0, 105000, True, ["gain", "loss"]),
        (col("hours") * 52, 52, 5148, True, ["hours"]),
        (-col("hours"), -99, -1, True, ["hours"]),
        ((col("edu") - 10) * (col("age") - 50), -360, 297, True, ["age", "edu"]),
        (col("hours") / 4, 0.25, 24.75, False, ["hours"]),
        (col("hours") / -2, -49.5, -0.5, False, ["hours"]),
        (col("score") * 2, -1.0, 5.0, False, ["score"]),
        (col("age") + 0.5, 17.5, 90.5, False, ["age"]),
        (pets.case((col("sex") == "Male", 1), default=0), 0, 1, True, []),
        (pets.case((col("sex") == "Male", 1)), 1, 1, True, []),
        (pets.case((col("age") < 30, col("hours")), default=0), 0, 99, True, ["hours"]),
        (pets.case((col("free") > 3, col("hours") * 2), (col("age") > 80, -7)), -7, 198, True,
         ["hours"]),
        (pets.case((col("age") < 30, 1.5), default=col("edu")), 1, 16, False, ["edu"]),
        (pets.case((col("age") < 30, None), default=col("edu") - 1), 0, 15, True, ["edu"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bounds_follow_by_interval_arithmetic_from_the_columns_bounds(
        expr, lower, upper, integral, clamped):
    b = value_bounds(expr.node, SCHEMA, BOUNDS.get)
    assert (b.lower, b.upper, b.integral) == (lower, upper, integral)
    # only the columns the value comes from are clamped, with their bounds
    assert b.clamps == tuple((c, float(BOUNDS[c][0]), float(BOUNDS[c][1])) for c in clamped)


@pytest.mark.parametrize(
    "expr, message",
    [
        (col("gain") - col("free"),
         r"needs bounds, and column 'free' has none: pass bounds=\(lower, upper\) for the "
         r"expression, or have the holder declare the column's \(\[columns.free\] bounds"),
        (col("sex") * 2, r"column 'sex' holds text"),
        (col("flag") + 1, r"column 'flag' holds booleans"),
        (pets.case((col("age") < 3, None)), r"always NULL"),
        (col("gain") * col("gain") * col("gain") * col("gain"), r"beyond ±2\^53.*narrower bounds"),
        (pets.case((col("age") < 3, "x"), default=1), r"'x' is not a number"),
    ],
)
def test_bounds_that_cannot_be_derived_are_refused_saying_what_to_add(expr, message):
    with pytest.raises(QueryError, match=message):
        value_bounds(expr.node, SCHEMA, BOUNDS.get, label="sum(x)")


def test_the_bound_limit_is_two_to_the_53():
    assert LIMIT == 2.0**53
    ok = col("gain") * col("gain") * 900  # 9e12
    assert value_bounds(ok.node, SCHEMA, BOUNDS.get).upper == 9e12


@pytest.mark.parametrize(
    "expr, kind",
    [
        (col("age") + 1, "int"), (col("age") * 1.5, "float"), (col("age") / 2, "float"),
        (col("score") - col("age"), "float"), (-col("age"), "int"),
        (pets.case((col("age") < 3, "a"), default="b"), "str"),
        (pets.case((col("age") < 3, 1), default=2.5), "float"),
        (pets.case((col("age") < 3, None)), "null"),
        (col("age") + lit(None), "null"),
    ],
)
def test_value_kinds(expr, kind):
    assert value_kind(expr.node, SCHEMA) == kind


def test_case_results_of_different_kinds_are_refused():
    with pytest.raises(QueryError, match=r"mix numbers and text"):
        value_kind(pets.case((col("age") < 3, "a"), default=1).node, SCHEMA)


# --------------------------------------------------- the engine's SQL, on DuckDB itself

ROWS = [(20, 50, "Male"), (35, None, "Female"), (70, 120, "Male"), (None, 10, None)]


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect(":memory:")
    c.execute("CREATE TABLE t (age INTEGER, hours INTEGER, sex VARCHAR)")
    c.executemany("INSERT INTO t VALUES (?, ?, ?)", ROWS)
    yield c
    c.close()


@pytest.mark.parametrize(
    "expr, clamps, expected",
    [
        (col("age") + 1, None, [21, 36, 71, None]),
        (col("hours") * 2, {"hours": (1, 99)}, [100, None, 198, 20]),
        (col("hours") * 2, None, [100, None, 240, 20]),
        (-col("age") / 4, None, [-5, -8.75, -17.5, None]),
        (col("age") - col("hours"), {"age": (17, 60), "hours": (1, 99)}, [-30, None, -39, None]),
        (pets.case((col("age") < 30, col("hours")), (col("sex") == "Male", 1), default=0),
         {"hours": (1, 99)}, [50, 0, 1, 0]),
        # a CASE condition reads the column as it is: age 70 is not clamped to 60 there
        (pets.case((col("age") >= 70, "old"), default="young"), {"age": (17, 60)},
         ["young", "young", "old", "young"]),
        (pets.case((col("sex") == "Male", 1)), None, [1, None, 1, None]),
        (pets.case((col("sex") == "O'Brien", 1), default=-2), None, [-2, -2, -2, -2]),
    ],
)
def test_the_engine_computes_expressions_with_value_columns_clamped_first(con, expr, clamps,
                                                                         expected):
    sql = _expr_sql(expr.node, None, clamps)
    got = [r[0] for r in con.execute(f"SELECT {sql} FROM t ORDER BY rowid").fetchall()]
    assert got == expected


def test_the_engine_sql_of_a_filter_keeps_parameters_in_order(con):
    params: list = []
    cond = ((col("age") + 1 > 30) & (col("sex") == "Male")).node
    sql = _expr_sql(cond, params)
    assert params == [30, "Male"]  # the 1 inside the arithmetic is written inline
    n = con.execute(f"SELECT count(*) FROM t WHERE {sql}", params).fetchone()[0]
    assert n == 1


def test_inline_literals_cannot_break_out_of_the_sql_text(con):
    e = pets.case((col("sex") == "x' OR 1=1 --", "a"), default="--b'; DROP TABLE t; --")
    sql = _expr_sql(e.node, None)
    got = [r[0] for r in con.execute(f"SELECT {sql} FROM t").fetchall()]
    assert got == ["--b'; DROP TABLE t; --"] * 4
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 4


def test_negative_literals_do_not_become_sql_comments(con):
    e = Arith("-", Col("age"), Lit(-5))  # "age - -5" would start a comment
    assert con.execute(f"SELECT {_expr_sql(Neg(e), None)} FROM t ORDER BY rowid").fetchone()[0] == -25


# ----------------------------------------------------------------- SQL refusals

LOC = re.compile(r"at line (\d+), column (\d+)")

REFUSED = [
    ("SELECT COUNT(*) FROM adult WHERE age % 2 = 1", "age % 2", r"modulo \(%\)"),
    ("SELECT COUNT(*) FROM adult WHERE age // 2 = 1", "age // 2", r"integer division"),
    ("SELECT COUNT(*) FROM adult WHERE age ** 2 > 1", "age ** 2", r"power"),
    ("SELECT SUM(age / hours) FROM adult", "age / hours",
     r"division by anything but a nonzero number"),
    ("SELECT SUM(age / 0) FROM adult", "age / 0", r"division by anything but a nonzero number"),
    ("SELECT SUM(age / (1 - 1)) FROM adult", "age / (1 - 1)", r"division by anything but"),
    ("SELECT SUM(age || 'x') FROM adult", "age || 'x'", r"string concatenation"),
    ("SELECT SUM(age + 'x') FROM adult", "age + 'x'", r"arithmetic on text"),
    ("SELECT SUM(-'x') FROM adult", "-'x'", r"arithmetic on text"),
    ("SELECT SUM(age + TRUE) FROM adult", "age + TRUE", r"arithmetic on a boolean"),
    ("SELECT AVG(abs(age)) FROM adult", "abs(age)", r"function ABS"),
    ("SELECT SUM(age + (SELECT 1)) FROM adult", "(SELECT 1)", r"sub-query"),
    ("SELECT COUNT(*) FROM adult WHERE age + 1 > (SELECT 1)", "(SELECT 1)", r"sub-query"),
    ("SELECT SUM(age > 1) FROM adult", "age > 1", r"a condition used as a value"),
    ("SELECT SUM(CASE sex WHEN NULL THEN 1 END) FROM adult", "CASE sex WHEN NULL",
     r"CASE x WHEN NULL"),
    ("SELECT SUM(CASE WHEN lower(sex) = 'm' THEN 1 END) FROM adult", "lower(sex)",
     r"function LOWER"),
    ("SELECT SUM(CASE WHEN flag THEN 1 END) FROM adult", "flag", r"COLUMN in CASE WHEN"),
    ("SELECT CASE WHEN age < 30 THEN age ELSE 0 END AS band, COUNT(*) FROM adult GROUP BY band",
     "THEN age", r"CASE in GROUP BY whose result is not a literal"),
    ("SELECT CASE WHEN age < 30 THEN 'y' ELSE 1 END AS b, COUNT(*) FROM adult GROUP BY b",
     "ELSE 1", r"CASE in GROUP BY whose results mix text and number"),
    ("SELECT age + 1 AS a1, COUNT(*) FROM adult GROUP BY a1", "age + 1",
     r"GROUP BY on an expression other than a column or a CASE"),
    ("SELECT SUM(2 * 3) FROM adult", "SUM(2 * 3)", r"SUM of a constant"),
    ("SELECT COUNT(1 + 1) FROM adult", "COUNT(1 + 1)", r"COUNT of a constant"),
]


@pytest.mark.parametrize("sql, where, pattern", REFUSED, ids=[s for s, _, _ in REFUSED])
def test_unsupported_expressions_are_refused_naming_the_construct_and_where(sql, where, pattern):
    with pytest.raises(QueryError, match=r"unsupported SQL: .*" + pattern) as info:
        parse_sql(sql)
    m = LOC.search(str(info.value))
    assert m, f"no 'at line L, column C' in {str(info.value)!r}"
    start = sql.index(where) + 1
    assert int(m.group(1)) == 1
    assert start <= int(m.group(2)) <= start + len(where) - 1, (m.group(2), start, where)


def test_arithmetic_on_a_text_column_is_refused_where_it_is_when_the_types_are_known():
    types = {"sex": "str", "age": "int", "ok": "bool"}
    sql = "SELECT COUNT(*)\nFROM adult\nWHERE age > 1 AND sex * 2 > 1"
    with pytest.raises(QueryError, match=r"arithmetic on the text column 'sex' \(sex \* 2\) "
                                         r"at line 3, column 19"):
        parse_sql(sql, schema=lambda dataset: types if dataset == "adult" else None)
    with pytest.raises(QueryError, match=r"arithmetic on the boolean column 'ok'"):
        parse_sql("SELECT SUM(-ok) FROM adult", schema=lambda d: types)
    # unknown types: left to the policy check, which says the same without a position
    assert parse_sql("SELECT SUM(-ok) FROM adult", schema=lambda d: None).aggs[0].expr == Neg(Col("ok"))
