"""Arithmetic and CASE, end to end on a real holder (DuckDB reading the bundled Adult
CSV, SQLite ledger and audit): released values against the exact pandas computation
of the same expression, CASE group keys, the bounds derived by interval arithmetic
(seen through explain), the policy rules applied to every column inside an
expression, and refusals that carry their position and spend nothing.

Noise cannot be seeded: every assertion about a noisy value checks that the
release's own interval at level 1 − 1e-6 (ALPHA) covers the exact value, so each
fails with probability at most 1e-6; the intervals' widths are checked against the
scale so a test with the wrong exact value cannot pass by a wide interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pets
from pets import PolicyError, QueryError, col
from pets.dp.samplers import laplace_scale

from ._util import ALL_GRADES, ANALYST, LEVEL, column, dlap_half_width, policy, snapshot

PURPOSE = "expressions"
BIG = pets.DP(epsilon=1e4)
EDUCATION = [
    "10th", "11th", "12th", "1st-4th", "5th-6th", "7th-8th", "9th", "Assoc-acdm",
    "Assoc-voc", "Bachelors", "Doctorate", "HS-grad", "Masters", "Preschool",
    "Prof-school", "Some-college",
]
GRADES = {**ALL_GRADES, "3": {"allow": ["dp"], "max_epsilon": 1.0, "min_group_size": 50}}
POLICY = policy(
    {
        "age": column(bounds=[17, 90]),
        "sex": column(keys=["Female", "Male"]),
        "education": column(keys=EDUCATION),
        "capital-gain": column(bounds=[0, 100000]),
        "capital-loss": column(bounds=[0, 5000]),
        # narrower than the data (up to 99 hours): clamping before the expression shows
        "hours-per-week": column(bounds=[1, 60]),
        "education-num": column(),  # no bounds
        "occupation": column(role="sensitive", grade=3),
        "race": column(grade=4),
        "native-country": column(role="identifier"),
    },
    grades=GRADES,
    negative_list=["fnlwgt"],
    dataset={"missing": ["?"]},
)


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    h = pets.Holder(tmp_path_factory.mktemp("home"))
    h.register("adult", pets.example_data(), POLICY)
    h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1e9)
    return h


@pytest.fixture(scope="module")
def s(holder):
    return holder.session(ANALYST, purpose=PURPOSE)


@pytest.fixture(scope="module")
def d():
    return pd.read_csv(pets.example_data(), skipinitialspace=True, na_values=["?"])


def interval(r: pets.Release, name: str) -> pd.DataFrame:
    ci = r.ci(LEVEL)
    return ci[ci["aggregate"] == name].reset_index(drop=True)


def assert_covers(r: pets.Release, name: str, exact, max_half_width: float) -> None:
    """The release's 1 − 1e-6 interval for ``name`` covers each exact value (fails with
    probability ≤ 1e-6 per cell) and is no wider than ±max_half_width. A mean's interval
    is computed in floating point, as pandas computes the exact mean: a relative 1e-12
    allows for their last bits."""
    ci = interval(r, name)
    exact = list(exact)
    assert len(ci) == len(exact)
    for i, x in enumerate(exact):
        lo, hi = ci.loc[i, "lower"], ci.loc[i, "upper"]
        tol = 1e-12 * max(1.0, abs(x))
        assert lo - tol <= x <= hi + tol, (name, i, lo, x, hi)
        assert hi - lo <= 2 * max_half_width, (name, i, hi - lo)


def half_width(r: pets.Release, name: str) -> float:
    """The 1 − 1e-6 half-width of a count or an integral sum, from the stated scale."""
    return float(dlap_half_width(r.scale[name], LEVEL))


# =====================================================================================
# values against pandas
# =====================================================================================


def test_sql_sum_of_a_difference_and_mean_of_a_product_match_pandas(s, d, holder):
    r = s.sql(
        'SELECT sex, COUNT(*) AS n, SUM("capital-gain" - "capital-loss") AS net, '
        'AVG("hours-per-week" * 52) AS yearly FROM adult GROUP BY sex',
        BIG,
    )
    assert list(r.df.columns) == ["sex", "n", "net", "yearly"]
    assert list(r.df["sex"]) == ["Female", "Male"]
    g = d.assign(net=d["capital-gain"] - d["capital-loss"],
                 yearly=d["hours-per-week"].clip(1, 60) * 52).groupby("sex")
    assert_covers(r, "n", g.size(), half_width(r, "n"))
    assert_covers(r, "net", g["net"].sum(), half_width(r, "net"))
    # a mean's interval also carries the noise of its count: ±0.05 hours a year is tight
    assert_covers(r, "yearly", g["yearly"].mean(), 0.05)
    # four measurements (rows, net, present hours, Σ hours·52): net's scale is 100000/(ε/4)
    assert r.scale["net"] == pytest.approx(100000 / (1e4 / 4))
    rec = {x["id"]: x for x in holder.audit().records()}[r.audit_id]
    assert rec["plan"]["aggs"][1]["expr"] == {
        "arith": "-", "left": {"col": "capital-gain"}, "right": {"col": "capital-loss"}}


def test_builder_and_sql_give_the_same_plan_and_the_same_explanation(s):
    sql = ('SELECT sex, SUM("capital-gain" - "capital-loss") AS net FROM adult '
           "WHERE age + 1 > 30 GROUP BY sex")
    q = (s.table("adult").filter(col("age") + 1 > 30).group_by("sex")
         .agg(net=pets.sum(col("capital-gain") - col("capital-loss"))))
    from pets.sql import parse_sql

    assert parse_sql(sql) == q.plan
    a, b = s.explain(parse_sql(sql), BIG), s.explain(q, BIG)
    pd.testing.assert_frame_equal(a.details, b.details)


def test_each_column_is_clamped_to_its_policy_bounds_before_the_expression(s, d):
    r = s.release(s.table("adult").agg(h=pets.sum(col("hours-per-week") * 2 - 1)), BIG)
    clamped = (d["hours-per-week"].clip(1, 60) * 2 - 1).sum()
    raw = (d["hours-per-week"] * 2 - 1).sum()
    h = half_width(r, "h")
    assert raw - clamped > 1000 * h  # the test tells the two apart
    assert_covers(r, "h", [clamped], h)


def test_explicit_bounds_clamp_the_expression_not_its_columns(s, d):
    q = s.table("adult").agg(h=pets.sum(col("hours-per-week") * 2, bounds=(0, 150)),
                             e=pets.sum(col("education-num") * 2, bounds=(0, 40)))
    r = s.release(q, BIG)
    exact = (d["hours-per-week"] * 2).clip(0, 150).sum()
    with_policy_clamp = (d["hours-per-week"].clip(1, 60) * 2).clip(0, 150).sum()
    h = half_width(r, "h")
    assert exact - with_policy_clamp > 1000 * h
    assert_covers(r, "h", [exact], h)
    # a column without policy bounds is fine once the expression has bounds
    assert_covers(r, "e", [(d["education-num"] * 2).sum()], half_width(r, "e"))


def test_case_inside_aggregates_counts_and_shares(s, d):
    r = s.sql(
        "SELECT SUM(CASE WHEN sex = 'Male' THEN 1 ELSE 0 END) AS men_sum, "
        "COUNT(CASE WHEN sex = 'Male' THEN 1 END) AS men_count, "
        "SUM(CASE sex WHEN 'Female' THEN 1 END) AS women, "
        "AVG(CASE WHEN sex = 'Male' THEN 1 ELSE 0 END) AS share "
        "FROM adult",
        BIG,
    )
    men = int((d["sex"] == "Male").sum())
    assert_covers(r, "men_sum", [men], half_width(r, "men_sum"))
    assert_covers(r, "men_count", [men], half_width(r, "men_count"))
    assert_covers(r, "women", [len(d) - men], half_width(r, "women"))
    assert_covers(r, "share", [men / len(d)], 1e-4)


def test_arithmetic_in_where_compares_the_raw_values(s, d):
    r = s.sql('SELECT COUNT(*) AS n FROM adult WHERE age + 1 > 30 AND "hours-per-week" * 2 >= 130',
              BIG)
    # filters see the data as it is: 65+ hours count although the bounds stop at 60
    exact = int(((d["age"] + 1 > 30) & (d["hours-per-week"] * 2 >= 130)).sum())
    assert exact > 500
    assert_covers(r, "n", [exact], half_width(r, "n"))


def test_quantile_of_an_expression_is_within_one_candidate_spacing(s, d):
    """Score gaps between the candidates next to the median and the others are in the
    hundreds of thousands (score units), the score noise scale is 500/ε = 0.05: a
    candidate further than one spacing wins with probability far below 1e-6."""
    r = s.sql('SELECT MEDIAN("hours-per-week" * 2) AS m FROM adult', BIG)
    exact = (d["hours-per-week"].clip(1, 60) * 2).median()
    spacing = (120 - 2) / 64
    assert abs(r.df["m"].iloc[0] - exact) <= spacing


# =====================================================================================
# CASE as a group key
# =====================================================================================

BAND_SQL = ("CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' ELSE 'old' END")


def bands(age: pd.Series) -> pd.Series:
    return pd.Series(np.where(age < 30, "young", np.where(age < 60, "middle", "old")),
                     index=age.index)


def test_case_group_by_releases_the_written_groups_in_order(s, d):
    r = s.sql(f"SELECT {BAND_SQL} AS band, COUNT(*) AS n, AVG(age) AS a FROM adult GROUP BY band",
              BIG)
    assert list(r.df.columns) == ["band", "n", "a"]
    assert list(r.df["band"]) == ["young", "middle", "old"]
    g = d.groupby(bands(d["age"]))
    assert_covers(r, "n", g.size().reindex(["young", "middle", "old"]), half_width(r, "n"))
    assert_covers(r, "a", g["age"].mean().reindex(["young", "middle", "old"]), 0.01)


def test_case_group_by_with_a_column_gives_every_combination(s, d):
    band = pets.case((col("age") < 30, "young"), (col("age") < 60, "middle"), default="old")
    q = s.table("adult").group_by("sex", band=band).agg(n=pets.count())
    r = s.release(q, BIG)
    assert list(zip(r.df["sex"], r.df["band"])) == [
        (sx, b) for sx in ["Female", "Male"] for b in ["young", "middle", "old"]]
    exact = d.groupby([d["sex"], bands(d["age"])]).size()
    assert_covers(r, "n", [exact[(sx, b)] for sx, b in zip(r.df["sex"], r.df["band"])],
                  half_width(r, "n"))


def test_rows_where_no_branch_holds_fall_in_no_group(s, d):
    r = s.sql("SELECT CASE WHEN age < 25 THEN 'under 25' WHEN age >= 65 THEN '65+' END AS b, "
              "COUNT(*) AS n FROM adult GROUP BY b", BIG)
    assert list(r.df["b"]) == ["under 25", "65+"]
    exact = [int((d["age"] < 25).sum()), int((d["age"] >= 65).sum())]
    assert sum(exact) < len(d) / 2
    assert_covers(r, "n", exact, half_width(r, "n"))


def test_numeric_case_keys(s, d):
    r = s.sql("SELECT CASE WHEN \"education-num\" >= 13 THEN 1 ELSE 0 END AS degree, "
              "COUNT(*) AS n FROM adult GROUP BY degree", BIG)
    assert list(r.df["degree"]) == [1, 0]
    exact = [int((d["education-num"] >= 13).sum()), int((d["education-num"] < 13).sum())]
    assert_covers(r, "n", exact, half_width(r, "n"))


def test_case_group_with_contribution_bounding_ignores_rows_outside_the_keys(tmp_path):
    """Each person has one row in 'young' and one whose CASE is NULL; with one group per
    person, a NULL row must not take the person's only slot: every young row counts."""
    n = 300
    df = pd.DataFrame({
        "pid": np.repeat(np.arange(n), 2),
        "age": np.tile([20, 45], n),
        "x": np.tile([3, 7], n),
    })
    h = pets.Holder(tmp_path / "home")
    pol = policy({"pid": column(role="identifier"), "age": column(bounds=[0, 100]),
                  "x": column(bounds=[0, 5])},
                 dataset={"privacy_unit": "pid", "max_groups": 1, "max_rows_per_group": 1})
    h.register("t", df, pol)
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=1e9)
    s2 = h.session(ANALYST, purpose=PURPOSE)
    q = (s2.table("t")
         .group_by(b=pets.case((col("age") < 30, "young"), (col("age") >= 60, "old")))
         .agg(n=pets.count(), s=pets.sum(col("x") * 2)))
    r = s2.release(q, BIG)
    assert list(r.df["b"]) == ["young", "old"]
    assert_covers(r, "n", [n, 0], half_width(r, "n"))
    assert_covers(r, "s", [n * 6, 0], half_width(r, "s"))


# =====================================================================================
# bounds, seen through explain
# =====================================================================================


@pytest.mark.parametrize(
    "spec, bounds, per_row_over_factor",
    [
        (pets.sum(col("capital-gain") - col("capital-loss")), (-5000.0, 100000.0), 100000),
        (pets.sum((col("age") - 50) * (col("hours-per-week") - 30)), (-1160.0, 1200.0), 1200),
        (pets.sum(col("hours-per-week") / 4), (0.25, 15.0), 15),
        (pets.sum(-col("age")), (-90.0, -17.0), 90),
        (pets.sum(pets.case((col("age") < 30, col("hours-per-week")), default=-1)), (-1.0, 60.0), 60),
        (pets.sum(pets.case((col("sex") == "Male", 1), default=0)), (0.0, 1.0), 1),
        (pets.sum(col("hours-per-week") * 2, bounds=(0, 150)), (0.0, 150.0), 150),
    ],
    ids=["difference", "product", "division", "negation", "case-hull", "case-literals",
         "explicit"],
)
def test_explain_shows_the_bounds_derived_by_interval_arithmetic(s, spec, bounds,
                                                                 per_row_over_factor):
    e = s.explain(s.table("adult").agg(x=spec), pets.DP(epsilon=2.0))
    assert e.allowed
    row = e.details.iloc[0]
    assert row["bounds"] == bounds
    # one measurement: the whole ε; the scale is the largest |value| over ε
    assert row["epsilon"] == 2.0
    assert row["noise_scale"] == pytest.approx(per_row_over_factor / 2.0, rel=1e-9)


def test_explain_names_the_expression(s):
    e = s.explain(s.table("adult").agg(
        net=pets.sum(col("capital-gain") - col("capital-loss")),
        c=pets.count(pets.case((col("sex") == "Male", 1)))), pets.DP(epsilon=1.0))
    assert list(e.details["column"]) == ['"capital-gain" - "capital-loss"',
                                         "CASE WHEN sex = 'Male' THEN 1 END"]
    assert e.details["bounds"].iloc[1] is None


def test_integral_expressions_keep_an_exact_integer_encoding(s):
    e = s.explain(s.table("adult").agg(net=pets.sum(col("capital-gain") - col("capital-loss"))),
                  pets.DP(epsilon=1.0))
    # factor 1: the scale is exactly sensitivity / ε in the data's own units
    assert e.scale["net"] == laplace_scale(100000, 1.0)


def test_an_expression_over_a_column_without_bounds_asks_for_bounds_and_spends_nothing(
        s, holder):
    before = snapshot(holder, s)
    with pytest.raises(QueryError, match=r"needs bounds, and column 'education-num' has none: "
                                         r"pass bounds=\(lower, upper\) for the expression"):
        s.sql('SELECT SUM("education-num" * 2) FROM adult', pets.DP(epsilon=1.0))
    assert snapshot(holder, s) == before


# =====================================================================================
# governance: every column inside an expression is a column of the query
# =====================================================================================


@pytest.mark.parametrize(
    "build, rule, column_name",
    [
        (lambda q: q.agg(n=pets.count(pets.case((col("fnlwgt") > 1, 1)))),
         "negative_list", "fnlwgt"),
        (lambda q: q.agg(n=pets.sum(col("age") - col("fnlwgt"), bounds=(0, 1))),
         "negative_list", "fnlwgt"),
        (lambda q: q.filter(col("fnlwgt") * 2 > 1).agg(n=pets.count()), "negative_list", "fnlwgt"),
        (lambda q: q.group_by(b=pets.case((col("fnlwgt") > 1e5, "hi"), default="lo"))
         .agg(n=pets.count()), "negative_list", "fnlwgt"),
        (lambda q: q.group_by(b=pets.case((col("native-country") == "Cuba", "c"), default="o"))
         .agg(n=pets.count()), "identifier_group_by", "native-country"),
        (lambda q: q.agg(n=pets.count(pets.case((col("native-country") == "Cuba", 1)))),
         "identifier", "native-country"),
        (lambda q: q.agg(n=pets.sum(pets.case((col("race") == "White", 1), default=0))),
         "grade", "race"),
        (lambda q: q.group_by(b=pets.case((col("race") == "White", "w"), default="o"))
         .agg(n=pets.count()), "grade", "race"),
        (lambda q: q.group_by(b=pets.case((col("occupation") == "Sales", "s"), default="o"))
         .agg(n=pets.count()), "max_epsilon", "occupation"),
    ],
    ids=["neg-in-count-case", "neg-in-sum", "neg-in-where", "neg-in-case-group",
         "identifier-case-group", "identifier-in-aggregate", "grade-in-aggregate",
         "grade-in-case-group", "epsilon-cap-of-case-group"],
)
def test_policy_rules_apply_to_columns_inside_expressions(s, holder, build, rule, column_name):
    before_left = s.remaining("adult")
    with pytest.raises(PolicyError) as info:
        s.release(build(s.table("adult")), pets.DP(epsilon=2.0))
    assert info.value.rule == rule
    assert info.value.column == column_name
    assert s.remaining("adult") == before_left
    last = holder.audit().records()[-1]
    assert last["status"] == "refused" and last["rule"] == rule


def test_a_column_the_policy_does_not_list_is_denied_inside_an_expression(s):
    with pytest.raises(PolicyError, match="'workclass'"):
        s.release(s.table("adult").agg(n=pets.count(pets.case((col("workclass") == "Private", 1)))),
                  BIG)


def test_unknown_column_inside_an_expression(s):
    with pytest.raises(QueryError, match=r"unknown column 'agee'.*did you mean 'age'"):
        s.release(s.table("adult").agg(x=pets.sum(col("agee") * 2, bounds=(0, 1))), BIG)


def test_min_group_size_of_a_column_read_by_a_case_group_applies(s, d):
    """Armed-Forces over 60 is empty; its noisy count (ε = 1, one measurement, scale 1)
    reaches the grade's min_group_size of 50 with probability e^-50: it is withheld; the
    other group (32,561 rows) is not (its count would have to fall by 32,511)."""
    assert ((d["occupation"] == "Armed-Forces") & (d["age"] > 60)).sum() == 0
    q = s.table("adult").group_by(
        b=pets.case(((col("occupation") == "Armed-Forces") & (col("age") > 60), "af60"),
                    default="other")).agg(n=pets.count())
    r = s.release(q, pets.DP(epsilon=1.0))
    assert r.suppressed == 1
    assert pd.isna(r.df["n"].iloc[0]) and r.df["n"].iloc[1] > 30000  # a withheld count: <NA>


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda q: q.agg(x=pets.sum(col("sex") * 2, bounds=(0, 2))),
         r"arithmetic \(\*\) needs numbers, but column 'sex' holds text"),
        (lambda q: q.filter(col("age") + 1 == "x").agg(n=pets.count()),
         r"\(age \+ 1\) = 'x' compares numbers with text"),
        (lambda q: q.agg(x=pets.count(pets.case((col("age") == "x", 1)))),
         r"column 'age' holds numbers; compare it with a value of that kind"),
        (lambda q: q.agg(x=pets.sum(pets.case((col("age") > 1, "a"), default="b"))),
         r"needs numbers, but CASE WHEN age > 1 THEN 'a' ELSE 'b' END yields text"),
    ],
)
def test_type_errors_in_expressions_are_query_errors_that_spend_nothing(s, holder, build, message):
    before = snapshot(holder, s)
    with pytest.raises(QueryError, match=message):
        s.release(build(s.table("adult")), BIG)
    assert snapshot(holder, s) == before


# =====================================================================================
# SQL refusals through a session: named, placed, free
# =====================================================================================


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT SUM(sex * 2) FROM adult",
         r"unsupported SQL: arithmetic on the text column 'sex' \(sex \* 2\) at line 1, column 12"),
        ("SELECT SUM(age / \"hours-per-week\") FROM adult",
         r"unsupported SQL: division by anything but a nonzero number .* at line 1, column 12"),
        ("SELECT CASE WHEN age < 30 THEN age END AS b, COUNT(*) FROM adult GROUP BY b",
         r"unsupported SQL: CASE in GROUP BY whose result is not a literal .* at line 1, column 32"),
        ("SELECT SUM(ln(age)) FROM adult", r"unsupported SQL: function LN .* at line 1, column 12"),
    ],
)
def test_refused_sql_names_the_construct_and_its_position_and_spends_nothing(s, holder, sql,
                                                                              message):
    before = snapshot(holder, s)
    with pytest.raises(QueryError, match=message):
        s.sql(sql, BIG)
    assert snapshot(holder, s) == before
