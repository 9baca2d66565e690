"""Empirical privacy of the linear regression's released statistics (issue 12).

The regression releases one noisy vector: the upper triangle of QᵀQ (XᵀX, Xᵀy, n, Σy²
in fixed point). On neighbouring tables D and D' = D + one extreme row, the test checks
first that the exact vectors differ by no more than the sensitivities the release is
calibrated to (and that the bound is tight, so the test has teeth), then draws the
released vector many times on both tables with the calibrated noise and bounds the
privacy loss from below with Clopper–Pearson intervals (each at 1 − 1e-7) on the events
"the privacy-loss statistic exceeds t": the bound must stay below the claimed ε (with
δ subtracted for Gaussian noise). A test fails by chance only if an interval misses:
below 1e-6 in all. Half the calibrated noise makes them fail.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets
from pets.dp import fast
from pets.models import LinearRegression

ALPHA = 1e-7
RUNS = 200_000
POLICY = pets.Policy.from_dict({
    "columns": {
        "x": {"role": "attribute", "grade": 1, "bounds": [0, 10]},
        "g": {"role": "attribute", "grade": 1, "keys": ["a", "b"]},
        "y": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
    },
    "grades": {"1": {"allow": ["model"]}},
})
SCHEMA = {"x": "float", "g": "str", "y": "float"}
D = pd.DataFrame({"x": [1.0, 4.0, 7.5, 2.0, 9.0, 3.3], "g": ["a", "b", "a", "a", "b", None],
                  "y": [10.0, 40.0, 75.0, 20.0, 90.0, 33.0]})
EXTREME = pd.DataFrame({"x": [1e9], "g": ["b"], "y": [1e9]})  # clamped to the bounds


def _cp(k: int, n: int) -> tuple[float, float]:
    lo = stats.beta.ppf(ALPHA / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - ALPHA / 2, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def _loss_lower_bound(la: np.ndarray, lb: np.ndarray, t: float, delta: float) -> float:
    """Lower confidence bound on ε from the event {L ≥ t} (L: the log-likelihood ratio of
    D over D' at the output), both ways round, allowing δ."""
    best = 0.0
    for a, b in ((la >= t, lb >= t), (la <= -t, lb <= -t)):
        a_lo, _ = _cp(int(a.sum()), len(a))
        _, b_hi = _cp(int(b.sum()), len(b))
        if a_lo - delta > 0 and b_hi > 0:
            best = max(best, math.log((a_lo - delta) / b_hi))
    return best


def _trainer(dp: pets.DP):  # type: ignore[no-untyped-def]
    return LinearRegression("y", ["x", "g"]).compile(POLICY, SCHEMA, dp, 1)


@pytest.mark.parametrize("dp", [pets.DP(epsilon=1.0), pets.DP(epsilon=1.0, delta=1e-5, noise="gaussian")],
                         ids=["laplace", "gaussian"])
def test_neighbours_differ_by_at_most_the_calibrated_sensitivity(dp):
    tr = _trainer(dp)
    a = tr.exact(D)
    for extra in (EXTREME, pd.DataFrame({"x": [0.0], "g": ["a"], "y": [0.0]}),
                  pd.DataFrame({"x": [np.nan], "g": pd.Series([None], dtype=object), "y": [50.0]})):
        diff = tr.exact(pd.concat([D, extra], ignore_index=True)) - a
        assert np.abs(diff).sum() <= tr.l1 and math.sqrt(float((diff.astype(float) ** 2).sum())) <= tr.l2
    diff = tr.exact(pd.concat([D, EXTREME], ignore_index=True)) - a
    # the extreme row meets both bounds exactly
    assert np.abs(diff).sum() == tr.l1 and int((diff.astype(object) ** 2).sum()) == tr.l2sq
    assert tr.exact(pd.concat([D, pd.DataFrame({"x": [5.0], "g": ["a"], "y": [np.nan]})],
                              ignore_index=True)).tolist() == a.tolist()  # no target: left out


def test_laplace_release_privacy_loss_stays_below_epsilon():
    eps = 1.0
    tr = _trainer(pets.DP(epsilon=eps))
    a = tr.exact(D)
    b = tr.exact(pd.concat([D, EXTREME], ignore_index=True))
    scale = tr.cal.scales["ZtZ"]
    changed = np.nonzero(a != b)[0]  # unchanged coordinates add nothing to the loss
    a, b = a[changed], b[changed]
    k = len(changed)
    va = fast.add_discrete_laplace(np.tile(a, RUNS), scale).reshape(RUNS, k)
    vb = fast.add_discrete_laplace(np.tile(b, RUNS), scale).reshape(RUNS, k)

    def loss(v: np.ndarray) -> np.ndarray:  # ln P(v | D) − ln P(v | D')
        return (np.abs(v - b).sum(axis=1) - np.abs(v - a).sum(axis=1)) / scale

    la, lb = loss(va), loss(vb)
    bounds = [_loss_lower_bound(la, lb, t, 0.0) for t in (0.25, 0.5, 0.75, 0.95)]
    assert max(bounds) <= eps
    assert max(bounds) > 0.35 * eps  # the test has power (half the noise: about 1.4)


def test_gaussian_release_privacy_loss_stays_below_epsilon_delta():
    eps, delta = 1.0, 1e-5
    tr = _trainer(pets.DP(epsilon=eps, delta=delta, noise="gaussian"))
    a = tr.exact(D)
    b = tr.exact(pd.concat([D, EXTREME], ignore_index=True))
    sigma = tr.cal.scales["ZtZ"]
    changed = np.nonzero(a != b)[0]
    a, b = a[changed], b[changed]
    k = len(changed)
    va = np.tile(a, RUNS) + fast.discrete_gaussian(sigma, RUNS * k)
    vb = np.tile(b, RUNS) + fast.discrete_gaussian(sigma, RUNS * k)
    va, vb = va.reshape(RUNS, k).astype(float), vb.reshape(RUNS, k).astype(float)

    def loss(v: np.ndarray) -> np.ndarray:
        return (((v - b) ** 2).sum(axis=1) - ((v - a) ** 2).sum(axis=1)) / (2 * sigma**2)

    la, lb = loss(va), loss(vb)
    bounds = [_loss_lower_bound(la, lb, t, delta) for t in (0.1, 0.2, 0.3, 0.5)]
    assert max(bounds) <= eps
    # ρ-zCDP bounds the KL divergence (Rényi divergence of order 1) by ρ: the mean privacy
    # loss on D estimates it (its sd is sqrt(2·KL/RUNS); 5.4 sd: one-sided 3e-8)
    rho = tr.cal.rhos["ZtZ"]
    kl, sd = float(la.mean()), math.sqrt(2 * rho / RUNS)
    assert kl <= rho + 5.4 * sd
    assert kl >= 0.8 * rho - 5.4 * sd  # the extreme row meets the bound: KL = ρ (half the noise: 4ρ)
