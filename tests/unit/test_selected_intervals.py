"""Intervals after selection (issue 9, item 10).

With unknown keys a group is released when its noisy row count passes a threshold T;
the released count is then biased upward near T. Its interval must cover the exact
count with probability ≥ level *conditionally on the release* (the docstring of
``ci()``). The old symmetric interval covered a group 4 noise scales below T never.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets
from pets.dp.accuracy import selection_margin
from pets.dp.aggregate import compile_dp
from pets.policy import Policy

ALPHA = 1e-6  # false-failure rate of each statistical assertion
POLICY = Policy.from_dict({
    "columns": {"city": {"role": "attribute", "grade": 1}},
    "grades": {"1": {"allow": ["dp"]}},
})
SCHEMA = {"city": "str"}


def _compiled(noise: str) -> pets.dp.aggregate.CompiledDP:
    plan = pets.Query("d").group_by("city").agg(n=pets.count()).plan
    return compile_dp(plan, POLICY, SCHEMA, pets.DP(epsilon=1.0, delta=1e-6, noise=noise))


@pytest.mark.parametrize("noise", ["laplace", "gaussian"])
def test_released_counts_near_the_threshold_are_covered_conditionally(noise: str) -> None:
    """Three populations of groups: exact count far below T (released only by a large
    noise draw), at T, and well above. Given the selection, each released group's miss
    indicator is an independent Bernoulli with p ≤ 0.05, so the misses among n released
    groups exceed binom.isf(1e-6, n, 0.05) with probability ≤ 1e-6."""
    c = _compiled(noise)
    t = c.threshold_value
    scale = c.scales[c.rows_key]
    assert t is not None and t > 0
    gap = int(math.ceil((4 if noise == "laplace" else 2) * scale))
    xs = {"below": max(1, t - gap), "at": t, "above": t + int(10 * scale) + 5}
    groups, counts = [], []
    per = 10_000
    for name, x in xs.items():
        groups += [f"{name}{i}" for i in range(per)]
        counts += [x] * per
    rows_engine = c.derived[c.rows_key][0][0]
    exact = pd.DataFrame({"city": groups, rows_engine: np.asarray(counts, dtype=np.int64)})
    released = misses = below_released = below_misses = 0
    for _ in range(5):
        f = c.noise(exact).ci(0.95)
        x = f["city"].str.replace(r"\d+$", "", regex=True).map(xs).to_numpy()
        miss = (f["lower"].to_numpy() > x) | (f["upper"].to_numpy() < x)
        released += len(f)
        misses += int(miss.sum())
        below = f["city"].str.startswith("below").to_numpy()
        below_released += int(below.sum())
        below_misses += int(miss[below].sum())
    # enough groups from below the threshold were released to see the old failure
    # (expected ≥ 5 × 10,000 × 0.012; fewer than 200 has probability far below 1e-6)
    assert below_released >= 200
    assert misses <= stats.binom.isf(ALPHA, released, 0.05)
    assert below_misses <= stats.binom.isf(ALPHA, below_released, 0.05)


def test_far_above_the_threshold_the_interval_is_the_usual_one_widened_below() -> None:
    c = _compiled("laplace")
    t, s = c.threshold_value, c.scales[c.rows_key]
    k = selection_margin("laplace", s, 0.025)
    y = np.array([t, t + k, t + k + 1, t + 1000], dtype=np.int64)
    lo, hi = c.selected_interval(y, 0.95)
    h = c.half_width(c.rows_key, 0.95)
    h_lo = c.half_width(c.rows_key, 0.975)
    assert list(hi) == list(y + h)
    assert list(lo[:2]) == [0.0, 0.0]  # within the margin: says nothing below
    assert list(lo[2:]) == list(y[2:] - h_lo)


def test_public_key_intervals_are_unchanged() -> None:
    plan = pets.Query("d").group_by("city", keys=["a", "b"]).agg(n=pets.count()).plan
    c = compile_dp(plan, POLICY, SCHEMA, pets.DP(epsilon=1.0))
    assert c.threshold_value is None
    exact = pd.DataFrame({"city": ["a", "b"], c.measures[0].key: np.array([5, 7], dtype=np.int64)})
    r = c.noise(exact)
    f = r.ci(0.95)
    h = c.half_width(c.rows_key or c.outputs[0].keys["count"], 0.95)
    assert list(f["upper"] - f["value"]) == [h, h] and list(f["value"] - f["lower"]) == [h, h]


def test_selection_margin_laplace_closed_form() -> None:
    for s, a in [(1.0, 0.025), (10.0, 0.025), (3.3, 0.01)]:
        k = selection_margin("laplace", s, a)
        q = math.exp(-1 / s)
        assert q**k <= a < q ** (k - 1)
