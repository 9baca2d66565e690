"""Releases with post-processing (HAVING, ORDER BY, LIMIT, expressions over aggregates):
computed from the noisy values after the charge, at no extra cost, with intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pets
from pets import out


def test_post_processing_costs_nothing_extra_and_explain_is_unchanged(session):
    plain = "SELECT education, COUNT(*) AS n FROM adult GROUP BY education"
    post = plain + " HAVING COUNT(*) > 500 ORDER BY n DESC LIMIT 3"
    from pets.sql import parse_sql

    a = session.explain(parse_sql(plain), pets.DP(epsilon=0.1))
    b = session.explain(parse_sql(post), pets.DP(epsilon=0.1))
    assert (a.cost, a.scale, a.ci_width) == (b.cost, b.scale, b.ci_width)
    pd.testing.assert_frame_equal(a.details, b.details)
    before = session.remaining("adult")
    r = session.sql(post, pets.DP(epsilon=0.1))
    assert r.spent == pets.Cost(0.1)
    assert session.remaining("adult") == pets.Cost(before.epsilon - 0.1)
    # HAVING and ORDER BY act on the released (noisy) values
    assert len(r.df) == 3 and (r.df["n"] > 500).all()
    assert r.df["n"].is_monotonic_decreasing
    ci = r.ci()
    assert ci["education"].tolist() == r.df["education"].tolist()
    assert ci["value"].tolist() == r.df["n"].astype(float).tolist()


def test_expressions_are_computed_from_the_released_values(session, adult_df):
    r = session.sql("SELECT sex, SUM(age) AS s, COUNT(*) AS n, SUM(age) / COUNT(*) AS m, "
                    "ROUND(AVG(age), 1) AS a1, VAR_POP(age) AS v, STDDEV(age) AS sd "
                    "FROM adult GROUP BY sex ORDER BY sex", pets.DP(epsilon=1.0))
    df = r.df
    assert list(df.columns) == ["sex", "s", "n", "m", "a1", "v", "sd"]
    np.testing.assert_allclose(df["m"], df["s"] / df["n"])
    assert (df["a1"] * 10).round(6).mod(1).eq(0).all()
    np.testing.assert_allclose(df["sd"], np.sqrt(df["v"]))  # the same noisy measurements
    ci = r.ci(0.95)
    m = ci[ci["aggregate"] == "m"]
    assert (m["lower"] <= m["value"]).all() and (m["value"] <= m["upper"]).all()
    exact = adult_df.groupby("sex")["age"].std(ddof=0)
    np.testing.assert_allclose(df.set_index("sex")["sd"], exact, rtol=0.05)


def test_a_list_of_groups_releases_only_the_groups(session):
    r = session.sql("SELECT race FROM adult GROUP BY race", pets.DP(epsilon=0.5))
    assert list(r.df.columns) == ["race"]
    assert set(r.df["race"]) == {"Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"}


def test_the_builder_and_sql_give_the_same_plan(session):
    from pets.sql import parse_sql

    q = (session.table("adult").group_by("sex").agg(n=pets.count())
         .having(out("n") > 100).order_by("n", descending=True).limit(1))
    p = parse_sql("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex HAVING n > 100 "
                  "ORDER BY n DESC LIMIT 1")
    assert q.plan == p
    r = session.release(q, pets.DP(epsilon=0.2))
    assert r.df["sex"].tolist() == ["Male"]


def test_post_processing_is_refused_for_other_forms(session):
    from pets.plan import Aggregation, Plan
    from pets.post import Post

    plan = Plan("adult", aggs=(Aggregation("n", "count"),), post=Post(limit=1))
    with pytest.raises(pets.QueryError, match="apply to DP releases"):
        session.release(plan, pets.KAnonymity(k=5))


def test_the_same_aggregates_post_processed_another_way_are_free(session):
    first = session.sql("SELECT race, COUNT(*) AS n, SUM(age) AS s FROM adult GROUP BY race",
                        pets.DP(epsilon=0.3))
    again = session.sql("SELECT race, COUNT(*) AS n, SUM(age) AS s, SUM(age) / COUNT(*) AS m "
                        "FROM adult GROUP BY race HAVING n > 1000 ORDER BY n DESC",
                        pets.DP(epsilon=0.3))
    assert first.spent == pets.Cost(0.3)
    assert again.spent == pets.Cost() and again.repeat_of == first.audit_id
    want = first.df[first.df["n"] > 1000].sort_values("n", ascending=False, kind="stable")
    assert again.df["race"].tolist() == want["race"].tolist()
    np.testing.assert_allclose(again.df["m"], want["s"] / want["n"])


@pytest.mark.parametrize("text, msg", [
    ("SELECT sex, CASE WHEN COUNT(*) > 5 THEN 'big' ELSE 0 END AS b FROM adult GROUP BY sex",
     "CASE mix number and text"),
    ("SELECT sex, sex + 1 AS b, COUNT(*) FROM adult GROUP BY sex", "arithmetic on a text column"),
    ("SELECT sex, COUNT(*) FROM adult GROUP BY sex HAVING COUNT(*) AND sex = 'Male'",
     "a value used as a condition"),
    ("SELECT sex, COUNT(*) FROM adult GROUP BY sex HAVING sex = 3", "comparison of a number with text"),
])
def test_type_errors_of_post_processing_come_before_the_charge(session, text, msg):
    from pets.sql import parse_sql

    before = session.remaining("adult")
    with pytest.raises(pets.QueryError, match=msg):
        session.sql(text, pets.DP(epsilon=0.1))
    assert session.remaining("adult") == before
