"""A repeated identical query returns the recorded answer at no new cost: fresh noise
each time would let an analyst average the noise away."""

from __future__ import annotations

import pandas as pd

import pets


def _holder(tmp_path) -> pets.Holder:
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data(), pets.example_policy())
    for a in ("ann", "bob"):
        h.grant(a, dataset="adult", purpose="p", epsilon=1.0)
    return h


def test_a_repeat_returns_the_recorded_answer_free_and_is_audited(tmp_path):
    h = _holder(tmp_path)
    s = h.session("ann", purpose="p")
    q = s.table("adult").group_by("race").agg(n=pets.count(), hours=pets.mean("hours-per-week"))
    first = s.release(q, pets.DP(epsilon=0.2))
    again = s.release(q, pets.DP(epsilon=0.2))
    pd.testing.assert_frame_equal(first.df, again.df)
    pd.testing.assert_frame_equal(first.ci(0.9), again.ci(0.9))
    assert first.spent == pets.Cost(0.2) and again.spent == pets.Cost(0.0)
    assert first.repeat_of is None and again.repeat_of == first.audit_id
    assert s.remaining("adult") == pets.Cost(0.8)
    rec = [r for r in h.audit().records() if r["id"] == again.audit_id][0]
    assert rec["repeat_of"] == first.audit_id and rec["cost"] == {"epsilon": 0.0, "delta": 0.0}
    assert h.audit().verify() is True
    # another analyst's answers are their own (a shared one would reveal what ann asked)
    other = h.session("bob", purpose="p").release(q, pets.DP(epsilon=0.2))
    assert other.repeat_of is None and other.spent == pets.Cost(0.2)
    assert h.remaining("bob", dataset="adult", purpose="p") == pets.Cost(0.8)


def test_a_different_query_or_epsilon_gets_fresh_noise_and_is_charged(tmp_path):
    h = _holder(tmp_path)
    s = h.session("ann", purpose="p")
    q = s.table("adult").group_by("race").agg(n=pets.count())
    s.release(q, pets.DP(epsilon=0.2))
    r = s.release(q, pets.DP(epsilon=0.3))
    assert r.spent == pets.Cost(0.3) and r.repeat_of is None
    r2 = s.release(q.filter(pets.col("age") >= 18), pets.DP(epsilon=0.2))
    assert r2.spent == pets.Cost(0.2)
    assert s.remaining("adult") == pets.Cost(0.3)


def test_a_repeat_is_still_checked_against_the_policy_and_the_grant(tmp_path):
    h = _holder(tmp_path)
    q = pets.Query("adult").group_by("sex").agg(n=pets.count())
    h.session("ann", purpose="p").release(q, pets.DP(epsilon=0.2))
    stranger = h.session("eve", purpose="p")  # no grant
    try:
        stranger.release(q, pets.DP(epsilon=0.2))
        raise AssertionError("a repeat must not bypass the grant check")
    except pets.PolicyError as e:
        assert e.rule == "no_grant"


def test_re_registering_the_data_gives_fresh_answers(tmp_path):
    h = _holder(tmp_path)
    s = h.session("ann", purpose="p")
    q = s.table("adult").group_by("sex").agg(n=pets.count())
    s.release(q, pets.DP(epsilon=0.2))
    h.register("adult", pets.example_data(), pets.example_policy(), replace=True)
    r = s.release(q, pets.DP(epsilon=0.2))
    assert r.repeat_of is None and r.spent == pets.Cost(0.2)


def test_a_repeated_unknown_keys_release_returns_the_same_groups(tmp_path):
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data(), pets.example_policy())
    h.grant("ann", dataset="adult", purpose="p", epsilon=2.0, delta=1e-5)
    s = h.session("ann", purpose="p")
    q = s.table("adult").group_by("hours-per-week").agg(n=pets.count())
    hq = s.table("adult").group_by("native-country").agg(
        ages=pets.histogram("age", bins=[17, 40, 65, 91]))
    for query, noise in ((q, "laplace"), (hq, "laplace"), (q, "gaussian")):
        prot = pets.DP(epsilon=0.5, delta=1e-6, noise=noise)
        first = s.release(query, prot)
        again = s.release(query, prot)
        assert len(first.df) > 3 and first.df.notna().all().all()
        pd.testing.assert_frame_equal(first.df, again.df)
        pd.testing.assert_frame_equal(first.ci(0.95), again.ci(0.95))
        assert again.spent == pets.Cost() and again.repeat_of == first.audit_id
