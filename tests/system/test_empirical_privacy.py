"""Empirical privacy checks: run the mechanisms many times on two neighbouring datasets
and bound the privacy loss from below with Clopper–Pearson intervals on a distinguishing
event. The lower bound must stay below the claimed ε (and δ).

Each test can fail only if a Clopper–Pearson interval (each at 1 − 1e-7) misses, so the
false-failure rate is below 1e-6; a mechanism with half the noise it claims fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets
from pets.dp.aggregate import compile_dp
from pets.dp.samplers import add_discrete_laplace
from pets.plan import Aggregation, GroupKey, Plan

# 200,000 runs per mechanism (≈ 40 s in all): out of the default run, in CI's own step (.ci/run)
pytestmark = pytest.mark.slow

ALPHA = 1e-7  # per interval
RUNS = 200_000


def _cp(k: int, n: int) -> tuple[float, float]:
    lo = stats.beta.ppf(ALPHA / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - ALPHA / 2, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def _epsilon_lower_bound(a: np.ndarray, b: np.ndarray, event) -> float:  # type: ignore[no-untyped-def]
    """A lower confidence bound on ε from P(event | D) vs P(event | D'), both directions."""
    ka, kb = int(event(a).sum()), int(event(b).sum())
    a_lo, a_hi = _cp(ka, len(a))
    b_lo, b_hi = _cp(kb, len(b))
    best = 0.0
    if a_lo > 0 and b_hi > 0:
        best = max(best, math.log(a_lo / b_hi))
    if b_lo > 0 and a_hi > 0:
        best = max(best, math.log(b_lo / a_hi))
    return best


POLICY = pets.Policy.from_dict({
    "columns": {
        "g": {"role": "attribute", "grade": 1, "keys": ["a"]},
        "x": {"role": "attribute", "grade": 1, "bounds": [0, 10]},
    },
    "grades": {"1": {"allow": ["dp"]}},
})
SCHEMA = {"g": "str", "x": "float"}


def _compiled(agg: Aggregation, epsilon: float, delta: float = 0.0, keys=("a",)):  # type: ignore[no-untyped-def]
    plan = Plan("d", group_by=(GroupKey("g", keys),), aggs=(agg,))
    return compile_dp(plan, POLICY, SCHEMA, pets.DP(epsilon=epsilon, delta=delta))


@pytest.mark.parametrize("epsilon", [0.5, 1.0])
def test_count_privacy_loss_stays_below_epsilon(epsilon):
    c = _compiled(Aggregation("n", "count"), epsilon)
    (key,) = c.scales
    a = add_discrete_laplace(np.full(RUNS, 100), c.scales[key])  # D: 100 people
    b = add_discrete_laplace(np.full(RUNS, 101), c.scales[key])  # D': one more
    for t in (99, 100, 101, 102, 103):
        assert _epsilon_lower_bound(a, b, lambda v, t=t: v >= t) <= epsilon
    # and the test has power: the bound is close to ε on the best event
    assert _epsilon_lower_bound(a, b, lambda v: v >= 101) > 0.8 * epsilon


def test_bounded_sum_privacy_loss_stays_below_epsilon():
    epsilon = 1.0
    c = _compiled(Aggregation("s", "sum", "x", (0.0, 10.0)), epsilon)
    (key,) = c.scales
    f = [o.factor for o in c.outputs][0]
    base = 1234 * f
    a = add_discrete_laplace(np.full(RUNS, base), c.scales[key])
    b = add_discrete_laplace(np.full(RUNS, base + 10 * f), c.scales[key])  # one person with x = 10
    for t in np.linspace(base - 5 * f, base + 15 * f, 9):
        assert _epsilon_lower_bound(a, b, lambda v, t=t: v >= t) <= epsilon
    assert _epsilon_lower_bound(a, b, lambda v: v >= base + 10 * f) > 0.8 * epsilon


def test_histogram_privacy_loss_stays_below_epsilon_for_a_person_in_two_bins():
    """A person with two rows (max_rows_per_group = 2) in two bins changes both bin
    counts by 1: L1 distance 2. The histogram is one measurement of all of ε, so both
    bins get scale 2/ε, and the joint event "both counts at least the larger value" has
    a likelihood ratio of exactly e^ε: the bound must stay below ε and come close."""
    epsilon = 1.0
    pol = pets.Policy.from_dict({**POLICY.to_dict(), "dataset": {
        "privacy_unit": "pid", "max_groups": 1, "max_rows_per_group": 2}})
    plan = Plan("d", group_by=(GroupKey("g", ("a",)),),
                aggs=(Aggregation("h", "histogram", "x", None, None, (0, 5, 10)),))
    c = compile_dp(plan, pol, {**SCHEMA, "pid": "int"}, pets.DP(epsilon=epsilon))
    k0, k1 = c.outputs[0].keys["bin0"], c.outputs[0].keys["bin1"]
    assert c.scales[k0] == c.scales[k1]

    def run(n0: int, n1: int) -> np.ndarray:
        return np.stack([add_discrete_laplace(np.full(RUNS, n0), c.scales[k0]),
                         add_discrete_laplace(np.full(RUNS, n1), c.scales[k1])], axis=1)

    a, b = run(100, 50), run(101, 51)  # D' adds the person: one row in each bin
    for t0, t1 in [(101, 51), (100, 50), (102, 52), (101, 50)]:
        assert _epsilon_lower_bound(
            a, b, lambda v, t0=t0, t1=t1: (v[:, 0] >= t0) & (v[:, 1] >= t1)) <= epsilon
    assert _epsilon_lower_bound(a, b, lambda v: (v[:, 0] >= 101) & (v[:, 1] >= 51)) > 0.8 * epsilon


def test_thresholded_group_by_releases_a_single_person_group_with_probability_at_most_delta():
    """D has one person in group 'rare'; D' has none, so 'rare' is never released on D'.
    P(released | D) must be at most δ (up to e^ε factors, which make it stricter here)."""
    epsilon, delta = 1.0, 1e-3
    plan = Plan("d", group_by=(GroupKey("g", None),), aggs=(Aggregation("n", "count"),))
    pol = pets.Policy.from_dict({"columns": {"g": {"role": "attribute", "grade": 1}},
                                 "grades": {"1": {"allow": ["dp"]}}})
    c = compile_dp(plan, pol, {"g": "str"}, pets.DP(epsilon=epsilon, delta=delta))
    runs = 20_000
    released = sum("rare" in c.threshold({"big": 1000, "rare": 1}) for _ in range(runs))
    lo, hi = _cp(released, runs)
    assert lo <= delta  # the release probability is not above δ
    big = sum("big" in c.threshold({"big": 1000, "rare": 1}) for _ in range(200))
    assert big == 200  # and large groups are released


def _approx_epsilon_lower_bound(a: np.ndarray, b: np.ndarray, event, delta: float) -> float:  # type: ignore[no-untyped-def]
    """As _epsilon_lower_bound, for (ε, δ)-DP: P(E | D) ≤ e^ε · P(E | D') + δ."""
    ka, kb = int(event(a).sum()), int(event(b).sum())
    a_lo, a_hi = _cp(ka, len(a))
    b_lo, b_hi = _cp(kb, len(b))
    best = 0.0
    if a_lo - delta > 0 and b_hi > 0:
        best = max(best, math.log((a_lo - delta) / b_hi))
    if b_lo - delta > 0 and a_hi > 0:
        best = max(best, math.log((b_lo - delta) / a_hi))
    return best


def test_gaussian_count_privacy_loss_stays_below_epsilon_delta():
    from pets.dp.samplers import add_discrete_gaussian

    epsilon, delta = 1.0, 1e-6
    plan = Plan("d", group_by=(GroupKey("g", ("a",)),), aggs=(Aggregation("n", "count"),))
    c = compile_dp(plan, POLICY, SCHEMA, pets.DP(epsilon=epsilon, delta=delta, noise="gaussian"))
    (key,) = c.scales
    a = add_discrete_gaussian(np.full(RUNS, 100), c.scales[key])
    b = add_discrete_gaussian(np.full(RUNS, 101), c.scales[key])
    sigma = c.scales[key]
    bounds = [_approx_epsilon_lower_bound(a, b, lambda v, t=t: v >= t, delta)
              for t in range(int(100 - 3 * sigma), int(101 + 4 * sigma))]
    assert max(bounds) <= epsilon
    # the test has power: the bound reaches ≈ 0.38 here (≈ 0.93 with half the sigma; a
    # Gaussian's loss on threshold events stays far below its ε, which is spent on δ)
    assert max(bounds) > 0.2


def test_release_path_laplace_noise_privacy_loss_stays_below_epsilon():
    """The release path itself (CompiledDP.noise on a vector of RUNS public cells, which
    uses pets.dp.fast's exact sampler and charges no δ): each cell is a count of 100 in D
    and 101 in D' — the per-cell privacy loss must stay below ε, and come close."""
    epsilon = 1.0
    keys = tuple(f"k{i}" for i in range(RUNS))
    c = _compiled(Aggregation("n", "count"), epsilon, keys=keys)
    assert c.sampler == "fast" and c.cost == pets.Cost(epsilon, 0.0)
    (measure,) = c.measures
    (key,) = c.scales

    def run(count: int) -> np.ndarray:
        exact = pd.DataFrame({"g": list(keys), measure.key: np.full(RUNS, count, dtype=np.int64)})
        return c.noise(exact).noisy[key]

    a, b = run(100), run(101)
    for t in (99, 100, 101, 102, 103):
        assert _epsilon_lower_bound(a, b, lambda v, t=t: v >= t) <= epsilon
    assert _epsilon_lower_bound(a, b, lambda v: v >= 101) > 0.8 * epsilon
