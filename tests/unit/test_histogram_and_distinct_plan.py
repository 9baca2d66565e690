"""pets.histogram and pets.count_distinct before any data: the plans they build, their
JSON form, the errors a malformed call gets, and the measurements and noise scales the
DP compiler derives for them (sensitivity by hand, against compile_dp)."""

from __future__ import annotations

import numpy as np
import pytest

import pets
from pets import QueryError, col
from pets.dp.aggregate import compile_dp, histogram_edges
from pets.dp.samplers import laplace_scale
from pets.governance import check_plan, persons_column
from pets.plan import MAX_BINS, Aggregation, GroupKey, Plan
from pets.query import Query

# ----------------------------------------------------------------------------- builder


def test_histogram_with_edges_builds_a_histogram_aggregation():
    q = Query("d").agg(h=pets.histogram("age", bins=[17, 30, 50.5, 90]))
    assert q.plan.aggs == (Aggregation("h", "histogram", "age", None, None, (17, 30, 50.5, 90)),)


def test_histogram_with_a_number_of_bins_keeps_the_number_and_the_bounds():
    q = Query("d").agg(h=pets.histogram("age", bins=8, bounds=(17, 90)))
    assert q.plan.aggs == (Aggregation("h", "histogram", "age", (17, 90), None, 8),)


def test_histogram_edges_from_numpy_become_python_numbers():
    a = pets.histogram("x", bins=np.array([0, 1, 2])).named("h")
    assert a.bins == (0, 1, 2) and all(type(v) is int for v in a.bins)  # type: ignore[union-attr]
    assert pets.histogram("x", bins=np.int64(3)).named("h").bins == 3


def test_count_distinct_without_and_with_a_column():
    q = Query("d").agg(p=pets.count_distinct(), v=pets.count_distinct("sex"))
    assert q.plan.aggs == (Aggregation("p", "count_distinct"),
                           Aggregation("v", "count_distinct", "sex"))
    assert q.plan.columns() == ["sex"]


@pytest.mark.parametrize("query", [
    Query("d").group_by("g", keys=["a"]).agg(h=pets.histogram("x", bins=[0, 1.5, 3])),
    Query("d").agg(h=pets.histogram("x", bins=1000, bounds=(-1.5, 2))),
    Query("d").agg(h=pets.histogram("x", bins=4)),
    Query("d").filter(col("x") > 1).agg(p=pets.count_distinct(), v=pets.count_distinct("y")),
])
def test_histogram_and_count_distinct_plans_round_trip_through_json(query):
    text = query.plan.to_json()
    back = Plan.from_json(text)
    assert back == query.plan
    assert repr(back) == repr(query.plan)  # 3 stays an int, 1.5 a float, edges a tuple
    assert back.to_json() == text


def test_histogram_json_holds_the_edges_or_the_number_of_bins():
    d = Query("d").agg(h=pets.histogram("x", bins=[0, 2])).plan.to_dict()
    assert d["aggs"][0]["bins"] == [0, 2]
    d = Query("d").agg(h=pets.histogram("x", bins=5, bounds=(0, 1))).plan.to_dict()
    assert d["aggs"][0]["bins"] == 5 and d["aggs"][0]["bounds"] == [0, 1]
    assert "bins" not in Query("d").agg(n=pets.count()).plan.to_dict()["aggs"][0]


def test_agg_spec_repr_shows_the_bins():
    assert repr(pets.histogram("x", bins=[0, 1])) == "histogram('x', bins=[0, 1])"
    assert repr(pets.histogram("x", bins=3, bounds=(0, 1))) == "histogram('x', bins=3, bounds=(0, 1))"


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("bins, message", [
    ([0, 10, 10], r"strictly increasing; 10 is followed by 10"),
    ([10, 0], r"strictly increasing; 10 is followed by 0"),
    ([5], r"needs at least two bin edges"),
    ([], r"needs at least two bin edges"),
    ([0, float("nan")], r"finite number"),
    ([0, float("inf")], r"finite number"),
    ([0, True], r"bin edges of histogram\('x'\) must be numbers"),
    ([0, "10"], r"bin edges of histogram\('x'\) must be numbers"),
    (0, rf"a histogram has 1 to {MAX_BINS} bins; histogram\('x'\) asks for 0"),
    (MAX_BINS + 1, rf"a histogram has 1 to {MAX_BINS} bins"),
    (list(range(MAX_BINS + 2)), rf"a histogram has 1 to {MAX_BINS} bins"),
    (2.5, r"a number of bins for histogram\('x'\) must be a whole number"),
    (True, r"a number of bins for histogram\('x'\) must be a whole number"),
    ("10", r"bins for histogram\('x'\) must be a list of edges or a number of bins"),
    (None, r"histogram\('x'\) needs bins"),
])
def test_bad_bins_are_refused_saying_what_to_change(bins, message):
    with pytest.raises(QueryError, match=message):
        pets.histogram("x", bins=bins)


def test_edges_and_bounds_together_are_refused():
    with pytest.raises(QueryError, match="either bin edges or a number of bins with bounds"):
        pets.histogram("x", bins=[0, 1, 2], bounds=(0, 2))


def test_histogram_needs_a_column_and_bins_only_go_to_histograms():
    with pytest.raises(QueryError, match=r"histogram\(\) needs a column"):
        Aggregation("h", "histogram", None, None, None, (0, 1))
    with pytest.raises(QueryError, match=r"only histogram\(\) takes bins, not count\(\)"):
        Aggregation("n", "count", None, None, None, 3)
    with pytest.raises(QueryError, match=r"bounds for histogram\('x'\) must be \(lower, upper\)"):
        pets.histogram("x", bins=3, bounds=(5, 1))


def test_count_distinct_takes_no_bounds():
    with pytest.raises(QueryError, match=r"count_distinct\(\) takes no bounds"):
        Aggregation("d", "count_distinct", "x", (0, 1))


def test_a_histogram_must_be_the_only_aggregation_of_its_query():
    with pytest.raises(QueryError, match="histogram 'h' must be the only aggregation of its query"):
        Query("d").agg(n=pets.count(), h=pets.histogram("x", bins=[0, 1]))
    with pytest.raises(QueryError, match="must be the only aggregation"):
        Query("d").agg(h=pets.histogram("x", bins=[0, 1])).agg(n=pets.count())
    with pytest.raises(QueryError, match="must be the only aggregation"):
        Plan("d", aggs=(Aggregation("h", "histogram", "x", None, None, (0, 1)),
                        Aggregation("n", "count")))


def test_a_histogram_column_that_is_a_group_column_or_its_own_name_is_refused():
    with pytest.raises(QueryError, match="which is also a group-by column"):
        Query("d").group_by("x").agg(h=pets.histogram("x", bins=[0, 1]))
    with pytest.raises(QueryError, match="which is also a group-by column"):
        Query("d").agg(h=pets.histogram("x", bins=[0, 1])).group_by("x")
    with pytest.raises(QueryError, match="output name 'x' is the histogram's column"):
        Query("d").agg(x=pets.histogram("x", bins=[0, 1]))


def test_agg_error_names_the_new_aggregations():
    with pytest.raises(QueryError, match=r"pets.histogram\(\) or pets.count_distinct\(\)"):
        Query("d").agg(n=5)  # type: ignore[arg-type]


def test_malformed_bins_in_plan_json_are_refused():
    bad = ('{"aggs":[{"bins":[3,1],"bounds":null,"column":"x","kind":"histogram","name":"h"}],'
           '"dataset":"d","filters":[],"group_by":[],"select":null}')
    with pytest.raises(QueryError, match="strictly increasing"):
        Plan.from_json(bad)


# ---------------------------------------------------------------------- equal-width bins


def test_integer_bounds_divisible_by_the_bins_give_integer_edges():
    a = Aggregation("h", "histogram", "age", (20, 90), None, 7)
    assert histogram_edges(a, POLICY) == (20, 30, 40, 50, 60, 70, 80, 90)


def test_other_equal_width_bins_are_floats_with_exact_ends():
    a = Aggregation("h", "histogram", "age", (17, 90), None, 8)
    e = histogram_edges(a, POLICY)
    assert e[0] == 17 and e[-1] == 90 and len(e) == 9
    assert e[1] == 26.125
    # twelve significant digits: 0.1 steps read as 0.1, 0.2, 0.3
    a = Aggregation("h", "histogram", "age", (0, 1), None, 10)
    assert histogram_edges(a, POLICY)[3] == 0.3


def test_equal_width_bins_take_the_policys_bounds_or_ask_for_them():
    a = Aggregation("h", "histogram", "x", None, None, 4)
    assert histogram_edges(a, POLICY) == (0.0, 2.5, 5.0, 7.5, 10.0)
    a = Aggregation("h", "histogram", "y", None, None, 4)
    with pytest.raises(QueryError, match=r"needs bounds for its equal-width bins: pass bounds="):
        compile_dp(Plan("d", aggs=(a,)), POLICY, SCHEMA, pets.DP(epsilon=1.0))


# -------------------------------------------------------------- sensitivity and scales

POLICY = pets.Policy.from_dict({
    "columns": {
        "pid": {"role": "identifier", "grade": 1},
        "g": {"role": "attribute", "grade": 1, "keys": ["a", "b", "c"]},
        "x": {"role": "attribute", "grade": 1, "bounds": [0.0, 10.0]},
        "y": {"role": "attribute", "grade": 1},
        "age": {"role": "attribute", "grade": 1},
        "s": {"role": "attribute", "grade": 1},
    },
    "grades": {"1": {"allow": ["dp", "he"]}},
    "dataset": {"privacy_unit": "pid", "max_groups": 2, "max_rows_per_group": 5},
})
SCHEMA = {"pid": "int", "g": "str", "x": "float", "y": "float", "age": "int", "s": "str"}
NO_UNIT = pets.Policy.from_dict({**POLICY.to_dict(), "dataset": {}})


def _compile(*aggs: Aggregation, policy=POLICY, group=True, keys=None, epsilon=1.0, delta=0.0):  # type: ignore[no-untyped-def]
    gb = (GroupKey("g", keys),) if group else ()
    return compile_dp(Plan("d", group_by=gb, aggs=aggs), policy, SCHEMA,
                      pets.DP(epsilon=epsilon, delta=delta))


def test_histogram_is_one_measurement_whatever_its_number_of_bins():
    """One row lies in one bin: the whole histogram has the sensitivity of one count,
    min(max_groups, cells) · max_rows_per_group = 2 · 5, and all of ε."""
    for bins in ((0, 10), (0, 1, 2, 3), tuple(range(101))):
        c = _compile(Aggregation("h", "histogram", "x", None, None, bins))
        assert len(c.scales) == len(bins) - 1
        assert set(c.scales.values()) == {laplace_scale(10, 1.0)}
        assert c.epsilon_each == 1.0
        assert c.details()["epsilon"].tolist() == [1.0]
        assert c.output_scales() == {"h": laplace_scale(10, 1.0)}


def test_histogram_measures_are_filtered_counts_on_the_raw_column_last_bin_closed():
    c = _compile(Aggregation("h", "histogram", "x", None, None, (0, 1, 5)))
    assert [(m.kind, m.column, m.lower, m.upper) for m in c.measures] == [
        ("range", "x", 0.0, 1.0), ("range_closed", "x", 1.0, 5.0)]


def test_distinct_persons_have_sensitivity_of_the_groups_a_person_touches_not_rows():
    c = _compile(Aggregation("p", "count_distinct"))
    assert c.output_scales() == {"p": laplace_scale(2, 1.0)}  # min(2 groups, 3 cells)
    (m,) = c.measures
    assert (m.kind, m.column) == ("distinct", "pid")
    # one cell: a person is in at most one
    assert _compile(Aggregation("p", "count_distinct"), group=False).output_scales() == {
        "p": laplace_scale(1, 1.0)}
    # two public keys: at most 2 groups
    assert _compile(Aggregation("p", "count_distinct"), keys=("a", "b")).output_scales() == {
        "p": laplace_scale(2, 1.0)}


def test_counting_the_privacy_unit_column_is_counting_distinct_persons():
    a = _compile(Aggregation("p", "count_distinct"))
    b = _compile(Aggregation("p", "count_distinct", "pid"))
    assert a.output_scales() == b.output_scales()
    assert [(m.kind, m.column) for m in a.measures] == [(m.kind, m.column) for m in b.measures]


def test_distinct_values_of_a_column_have_the_sensitivity_of_a_count():
    c = _compile(Aggregation("v", "count_distinct", "s"), Aggregation("n", "count", "s"))
    assert c.output_scales() == {"v": laplace_scale(10, 0.5), "n": laplace_scale(10, 0.5)}
    assert [(m.kind, m.column) for m in c.measures] == [("distinct", "s"), ("present", "s")]


def test_without_a_privacy_unit_distinct_persons_are_rows_and_share_counts_measurement():
    c = _compile(Aggregation("p", "count_distinct"), Aggregation("n", "count"), policy=NO_UNIT)
    assert [(m.kind, m.column) for m in c.measures] == [("rows", None)]
    assert c.epsilon_each == 1.0
    assert c.output_scales() == {"p": laplace_scale(1, 1.0), "n": laplace_scale(1, 1.0)}


def test_with_unknown_keys_distinct_persons_take_max_groups_and_the_row_count_a_share():
    c = _compile(Aggregation("p", "count_distinct"), keys=None, epsilon=1.0, delta=1e-6,
                 policy=pets.Policy.from_dict({**POLICY.to_dict(), "columns": {
                     **POLICY.to_dict()["columns"], "g": {"role": "attribute", "grade": 1}}}))
    assert c.cost == pets.Cost(1.0, 1e-6)
    assert c.epsilon_each == 0.5  # the thresholded row count and the distinct persons
    assert c.output_scales() == {"p": laplace_scale(2, 0.5)}


def test_a_histogram_with_unknown_keys_spends_one_share_on_the_row_count_and_one_on_bins():
    pol = pets.Policy.from_dict({**POLICY.to_dict(), "columns": {
        **POLICY.to_dict()["columns"], "g": {"role": "attribute", "grade": 1}}})
    c = _compile(Aggregation("h", "histogram", "x", None, None, (0, 5, 10)), policy=pol,
                 keys=None, delta=1e-6)
    assert c.epsilon_each == 0.5
    assert c.output_scales() == {"h": laplace_scale(10, 0.5)}  # max_groups 2 · 5 rows


# -------------------------------------------------------------------------- governance


def test_the_privacy_unit_may_be_counted_although_it_is_an_identifier():
    plan = Query("d").group_by("g").agg(p=pets.count_distinct("pid")).plan
    check_plan(POLICY, plan, SCHEMA, "dp", 1.0)  # no refusal
    assert persons_column(POLICY, plan) == "pid"


@pytest.mark.parametrize("query, rule", [
    (Query("d").group_by("pid").agg(p=pets.count_distinct("pid")), "identifier_group_by"),
    (Query("d").filter(col("pid") > 3).agg(p=pets.count_distinct("pid")), "identifier"),
    (Query("d").agg(p=pets.count_distinct("pid"), n=pets.count("pid")), "identifier"),
    (Query("d").agg(h=pets.histogram("pid", bins=[0, 10])), "identifier"),
])
def test_grouping_filtering_or_aggregating_the_identifier_otherwise_stays_refused(query, rule):
    with pytest.raises(pets.PolicyError) as info:
        check_plan(POLICY, query.plan, SCHEMA, "dp", 1.0)
    assert (info.value.rule, info.value.column) == (rule, "pid")


def test_an_identifier_that_is_not_the_privacy_unit_is_not_counted():
    plan = Query("d").agg(p=pets.count_distinct("pid")).plan
    with pytest.raises(pets.PolicyError, match="is an identifier") as info:
        check_plan(NO_UNIT, plan, SCHEMA, "dp", 1.0)
    assert info.value.rule == "identifier"


def test_a_privacy_unit_on_the_negative_list_is_refused_when_named():
    pol = pets.Policy.from_dict({**POLICY.to_dict(), "negative_list": ["pid"]})
    with pytest.raises(pets.PolicyError) as info:
        check_plan(pol, Query("d").agg(p=pets.count_distinct("pid")).plan, SCHEMA, "dp", 1.0)
    assert info.value.rule == "negative_list"
    check_plan(pol, Query("d").agg(p=pets.count_distinct()).plan, SCHEMA, "dp", 1.0)
