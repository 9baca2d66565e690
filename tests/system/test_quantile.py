"""DP quantiles: the exponential mechanism (OpenDP's report noisy max) over candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pets

POLICY = {
    "columns": {
        "g": {"role": "attribute", "grade": 1, "keys": ["a", "b"]},
        "x": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
    },
    "grades": {"1": {"allow": ["dp"]}},
}


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(11)  # test DATA only
    df = pd.DataFrame({"g": ["a"] * 4000 + ["b"] * 4000,
                       "x": np.concatenate([rng.uniform(0, 40, 4000), rng.uniform(50, 100, 4000)])})
    df.loc[::50, "x"] = np.nan  # missing values are left out
    h = pets.Holder(tmp_path / "h")
    h.register("d", df, POLICY)
    h.grant("ann", dataset="d", purpose="p", epsilon=100.0)
    return h.session("ann", purpose="p"), df


def test_quantiles_are_close_to_the_truth_with_a_large_epsilon(setup):
    s, df = setup
    r = s.release(s.table("d").group_by("g").agg(med=pets.quantile("x", 0.5),
                                                 p10=pets.quantile("x", 0.1)),
                  pets.DP(epsilon=20.0))
    got = r.df.set_index("g")
    step = 100 / 64  # candidates are 65 points over the bounds
    for g in ("a", "b"):
        x = df[df.g == g].x.dropna()
        assert abs(got.loc[g, "med"] - x.median()) <= 2 * step
        assert abs(got.loc[g, "p10"] - x.quantile(0.1)) <= 2 * step
    assert r.spent == pets.Cost(20.0)
    assert r.ci(0.95).query("aggregate == 'med'")["lower"].isna().all()


def test_quantile_arguments_are_checked():
    with pytest.raises(pets.QueryError, match="q strictly between 0 and 1"):
        pets.quantile("x", 1.5)
    with pytest.raises(pets.QueryError, match="q strictly between 0 and 1"):
        pets.quantile("x", 0)


def test_a_quantile_plan_round_trips_through_json():
    q = pets.Query("d").agg(m=pets.quantile("x", 0.25, bounds=(0, 10)))
    assert pets.plan.Plan.from_json(q.plan.to_json()) == q.plan


def test_explain_states_the_quantiles_rank_error_and_it_holds(tmp_path):
    import math

    import numpy as np

    h = pets.Holder(tmp_path / "home")
    df = pd.DataFrame({"x": np.arange(1000) % 100})
    h.register("d", df, {"columns": {"x": {"role": "attribute", "grade": 1, "bounds": [0, 64]}},
                         "grades": {"1": {"allow": ["dp"]}}})
    h.grant("a", dataset="d", purpose="p", epsilon=100.0)
    s = h.session("a", purpose="p")
    q = s.table("d").agg(m=pets.quantile("x", 0.5))
    e = s.explain(q, pets.DP(epsilon=2.0))
    err = e.details.loc[0, "rank_error95"]
    assert err == pytest.approx(e.scale["m"] * math.log(65 / 0.05) / 1000)
    # candidates 0, 1, ..., 64; values clamp to 64
    x = np.minimum(df["x"].to_numpy(), 64)

    def miss(c: float) -> float:
        return abs(int((x < c).sum()) - 0.5 * int((x != c).sum()))

    best = min(miss(c) for c in range(65))
    misses = 0
    for i in range(40):  # vary ε by 1e-9 so each release is fresh
        c = float(s.release(q, pets.DP(epsilon=2.0 + i * 1e-9)).df["m"].iloc[0])
        misses += miss(c) > best + err
    # each miss has probability ≤ 5%: P(more than 12 of 40) < 1e-6
    assert misses <= 12
