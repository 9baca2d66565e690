"""Post-processing travels with the plan's JSON form: HAVING, ORDER BY, LIMIT and
expressions over aggregates over HTTP give what the local session gives."""

from __future__ import annotations

import pandas as pd

import pets
from pets import out

from .conftest import PURPOSE


def test_sql_with_post_processing_over_http_matches_the_local_answer(server):
    s = server.connect()
    text = ("SELECT education AS e, COUNT(*) AS n, SUM(age) / COUNT(*) AS m FROM adult "
            "GROUP BY education HAVING COUNT(*) > 300 ORDER BY n DESC LIMIT 4")
    r = s.sql(text, pets.DP(epsilon=0.2))
    assert list(r.df.columns) == ["e", "n", "m"] and len(r.df) == 4
    assert r.df["n"].is_monotonic_decreasing and (r.df["n"] > 300).all()
    assert r.plan is None or r.plan.post is not None
    local = server.holder().session("alice", purpose=PURPOSE).sql(text, pets.DP(epsilon=0.2))
    pd.testing.assert_frame_equal(local.df, r.df)  # the recorded answer, post-processed alike
    pd.testing.assert_frame_equal(local.ci(0.9), r.ci(0.9))


def test_a_builder_plan_with_post_processing_round_trips(server):
    s = server.connect()
    q = (pets.Query("adult").group_by("sex").agg(n=pets.count(), t=pets.sum("age"))
         .compute(avg=out("t") / out("n")).order_by("avg").limit(1))
    r = s.release(q, pets.DP(epsilon=0.1))
    assert list(r.df.columns) == ["sex", "n", "t", "avg"] and len(r.df) == 1
