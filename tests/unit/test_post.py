"""Post-processing of a released table (pets.post): evaluation with SQL's NULL rules,
interval propagation, ordering and slicing, the JSON form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import pets
from pets import QueryError, out
from pets.plan import Aggregation, GroupKey, Plan
from pets.post import Call, Const, Post, Ref, apply, evaluate, interval, post_text


def _frame():
    return pd.DataFrame({"g": ["a", "b", "c", "d"], "n": [100, 5, 40, np.nan],
                         "s": [1000.0, 20.0, -40.0, np.nan]})


def _ci(values):
    def ci(level):
        # half-width grows with the level, as a real one does
        h = {"n": 2.0, "s": 10.0}
        k = 1.0 + (level - 0.95) * 100
        rows = []
        for name in ("n", "s"):
            for i, r in values.iterrows():
                v = r[name]
                rows.append({"g": r["g"], "aggregate": name, "value": v,
                             "lower": v - h[name] * k, "upper": v + h[name] * k})
        return pd.DataFrame(rows)
    return ci


def test_json_round_trip_of_every_node_kind():
    p = Post(outputs=(("g", Ref("g")), ("m", Call("round", (Call("/", (Ref("s"), Ref("n"))), Const(2))))),
             having=Call("and", (Call(">", (Ref("n"), Const(10))), Call("not", (Call("is_null", (Ref("s"),)),)))),
             order_by=((Ref("m"), True, False), (Ref("g"), False, True)), limit=2, offset=1)
    assert Post.from_dict(p.to_dict()) == p
    plan = Plan("adult", group_by=(GroupKey("g"),), aggs=(Aggregation("n", "count"),
                Aggregation("s", "sum", "x")), post=p)
    assert Plan.from_json(plan.to_json()) == plan
    # a plan without post-processing has the JSON form it always had
    assert "post" not in Plan("adult", aggs=(Aggregation("n", "count"),)).to_dict()


@pytest.mark.parametrize("bad, msg", [
    ({"outputs": "x"}, "must be a list"),
    ({"limit": -1}, "limit must be a whole number"),
    ({"limit": True}, "limit must be a whole number"),
    ({"having": {"call": "exec", "args": []}}, "unknown function 'exec'"),
    ({"having": {"ref": "n"}}, "HAVING needs a condition"),
    ({"order_by": [{"expr": {"ref": "n"}, "desc": "yes"}]}, "ORDER BY item"),
    ({"whatever": 1}, "unknown key 'whatever'"),
])
def test_malformed_post_json_is_a_query_error(bad, msg):
    with pytest.raises(QueryError, match=msg):
        Post.from_dict(bad)


def test_references_must_name_released_columns():
    with pytest.raises(QueryError, match="refers to 'zz'"):
        Plan("adult", aggs=(Aggregation("n", "count"),),
             post=Post(outputs=(("x", Ref("zz")),)))
    with pytest.raises(QueryError, match="already the name of an aggregate"):
        Plan("adult", aggs=(Aggregation("n", "count"),),
             post=Post(outputs=(("n", Call("+", (Ref("n"), Const(1)))),)))


def test_null_semantics_follow_sql():
    f = _frame()
    cond = evaluate(Call(">", (Ref("n"), Const(10))), f)
    assert cond.tolist() == [True, False, True, pd.NA]
    neg = evaluate(Call("not", (Call(">", (Ref("n"), Const(10))),)), f)
    assert neg.tolist() == [False, True, False, pd.NA]  # NOT NULL is NULL, not TRUE
    either = evaluate(Call("or", (Call(">", (Ref("n"), Const(10))), Const(True))), f)
    assert either.tolist() == [True, True, True, True]
    div = evaluate(Call("/", (Ref("s"), Call("-", (Ref("n"), Const(5))))), f)
    assert div.iloc[0] == pytest.approx(1000 / 95) and div.iloc[1] is pd.NA  # / 0 → NULL
    assert evaluate(Call("sqrt", (Ref("s"),)), f).iloc[2] is pd.NA  # sqrt(-40) → NULL
    assert evaluate(Call("coalesce", (Ref("n"), Const(0))), f).tolist() == [100, 5, 40, 0]
    assert evaluate(Call("round", (Const(2.5),)), f) == 3.0  # half away from zero, as DuckDB
    assert evaluate(Call("round", (Const(-2.5),)), f) == -3.0


def test_having_order_limit_offset_and_projection():
    f = _frame()
    p = Post(outputs=(("g", Ref("g")), ("avg", Call("/", (Ref("s"), Ref("n"))))),
             having=Call(">=", (Ref("n"), Const(5))), order_by=((Ref("avg"), True, False),),
             limit=2, offset=0)
    df, ci = apply(p, f, _ci(f), ("g",), ("n", "s"))
    assert df["g"].tolist() == ["a", "b"] and list(df.columns) == ["g", "avg"]
    assert df["avg"].tolist() == pytest.approx([10.0, 4.0])
    c = ci(0.95)
    assert c["g"].tolist() == ["a", "b"] and set(c["aggregate"]) == {"avg"}
    # the union bound: each input at 1 - 0.05/2 = 0.975, so wider than at 0.95
    a = c.iloc[0]
    assert a["lower"] < 10.0 < a["upper"]
    k = 1 + (0.975 - 0.95) * 100
    assert a["lower"] == pytest.approx((1000 - 10 * k) / (100 + 2 * k))
    assert a["upper"] == pytest.approx((1000 + 10 * k) / (100 - 2 * k))


def test_nulls_sort_last_unless_asked_and_ties_keep_the_key_order():
    f = pd.DataFrame({"g": list("abcd"), "n": [3.0, np.nan, 3.0, 1.0]})
    ci = lambda level: pd.DataFrame(  # noqa: E731
        {"g": list("abcd"), "aggregate": "n", "value": f["n"], "lower": f["n"], "upper": f["n"]})
    df, _ = apply(Post(order_by=((Ref("n"), True, False),)), f, ci, ("g",), ("n",))
    assert df["g"].tolist() == ["a", "c", "d", "b"]
    df, _ = apply(Post(order_by=((Ref("n"), False, True),)), f, ci, ("g",), ("n",))
    assert df["g"].tolist() == ["b", "d", "a", "c"]


@pytest.mark.parametrize("e, lo, hi", [
    (Call("*", (Ref("x"), Const(-2))), -8.0, -4.0),
    (Call("power", (Ref("x"), Const(2))), 4.0, 16.0),
    (Call("power", (Call("neg", (Ref("x"),)), Const(3))), -64.0, -8.0),
    (Call("abs", (Call("-", (Ref("x"), Const(3))),)), 0.0, 1.0),
    (Call("sqrt", (Ref("x"),)), math.sqrt(2), 2.0),
    (Call("/", (Const(8), Ref("x"))), 2.0, 4.0),
    (Call("/", (Const(8), Call("-", (Ref("x"), Const(3))))), math.nan, math.nan),  # reaches 0
    (Call(">", (Ref("x"), Const(3))), math.nan, math.nan),  # a condition: no interval
    (Call("case", (Call(">", (Ref("x"), Const(3))), Const(1), Const(0))), math.nan, math.nan),
])
def test_interval_arithmetic(e, lo, hi):
    v = pd.DataFrame({"x": [3.0]})
    got = interval(e, v, {"x": (np.array([2.0]), np.array([4.0]))}, 1)
    for g, want in zip(got, (lo, hi)):
        assert (math.isnan(g[0]) and math.isnan(want)) or g[0] == pytest.approx(want)


def test_the_builder_output_expression():
    e = (out("t") / out("n")).round(1)
    assert post_text(e.node) == "ROUND(t / n, 1)"
    assert post_text((out("n") > 3).node) == "n > 3"
    with pytest.raises(QueryError, match="no truth value"):
        bool(out("n") > 3)
    q = pets.Query("adult").group_by("sex").agg(n=pets.count(), t=pets.sum("age"))
    q2 = q.compute(avg=out("t") / out("n")).having(pets.col("n") > 10).order_by("avg", descending=True).limit(1)
    p = q2.plan.post
    assert [n for n, _ in p.outputs] == ["sex", "n", "t", "avg"]
    assert p.having == Call(">", (Ref("n"), Const(10))) and p.limit == 1
    assert Plan.from_json(q2.plan.to_json()) == q2.plan
    with pytest.raises(QueryError, match="refers to 'nope'"):
        q.having(out("nope") > 1)
    with pytest.raises(QueryError, match="limit must be a whole number"):
        q.limit(-3)
