"""Accuracy and noise: confidence half-widths of discrete Laplace noise against brute
force and against OpenDP, the scale search against OpenDP's privacy map, the sampler's
distribution, and the fixed-point factor."""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pytest
from scipy import stats

from pets import QueryError
from pets.dp.accuracy import check_level, laplace_half_width, tail_probability
from pets.dp.aggregate import fixed_point_factor
from pets.dp.samplers import add_discrete_laplace, discrete_laplace, laplace_epsilon, laplace_scale

dp.enable_features("contrib")

SCALES = [0.5, 1.0, 2.0, 3.0, 7.5, 10.0, 33.3, 100.0, 250.5, 1000.0]
LEVELS = [0.5, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999]


def _tails(scale: float) -> np.ndarray:
    """T[h] = P(|X| > h) for h = 0, 1, …, by summing the pmf
    P(k) = (1 − q)/(1 + q)·q^|k|, q = exp(−1/scale), from the far tail inwards."""
    q = math.exp(-1.0 / scale)
    kmax = int(scale * 60) + 10  # q**kmax = e^-60: the mass left out is negligible
    k = np.arange(kmax + 1, dtype=np.float64)
    pmf = (1.0 - q) / (1.0 + q) * q**k
    suffix = np.cumsum(pmf[::-1])[::-1]  # suffix[j] = P(X >= j), j >= 0
    return 2.0 * suffix[1:]  # P(|X| > h) = 2·P(X >= h + 1)


def _brute_half_width(scale: float, level: float) -> int:
    tails = _tails(scale)
    ok = np.nonzero(tails <= 1.0 - level)[0]
    assert ok.size, "grid too short"
    return int(ok[0])


# ------------------------------------------------------------------- half-widths


@pytest.mark.parametrize("scale", SCALES)
def test_half_width_is_the_smallest_covering_integer_by_brute_force(scale):
    tails = _tails(scale)
    for level in LEVELS:
        alpha = 1.0 - level
        h = laplace_half_width(scale, level)
        assert isinstance(h, int)
        assert h == _brute_half_width(scale, level), (scale, level)
        # the property itself: covers, and one less would not
        assert tails[h] <= alpha
        if h > 0:
            assert tails[h - 1] > alpha


@pytest.mark.parametrize("scale", SCALES)
def test_half_width_agrees_with_opendp_accuracy(scale):
    """OpenDP's accuracy a (a float) satisfies P(|X| >= a) = alpha. For integer noise
    P(|X| >= a) = P(|X| >= ceil(a)), so the smallest integer m with P(|X| >= m) <= alpha
    is ceil(a), and our h (P(|X| > h) <= alpha, i.e. P(|X| >= h + 1) <= alpha) is
    ceil(a) - 1 — which is floor(a) unless a is a whole number."""
    for level in LEVELS:
        alpha = 1.0 - level
        a = dp.discrete_laplacian_scale_to_accuracy(float(scale), alpha)
        h = laplace_half_width(scale, level)
        if abs(a - round(a)) < 1e-9:  # a whole number up to rounding: either side is exact
            assert h in (round(a) - 1, round(a))
        else:
            assert h + 1 == math.ceil(a), (scale, level, a, h)
            assert h == math.floor(a)


def test_half_width_grows_with_scale_and_level():
    for level in LEVELS:
        hs = [laplace_half_width(s, level) for s in SCALES]
        assert hs == sorted(hs)
    for scale in SCALES:
        hs = [laplace_half_width(scale, lv) for lv in LEVELS]
        assert hs == sorted(hs)


def test_half_width_known_values():
    # scale 1, level 0.95: P(|X| > h) = 2 q^(h+1)/(1+q), q = 1/e → h = 3 (tail 0.0268; h=2: 0.0729)
    assert laplace_half_width(1.0, 0.95) == 3
    # tiny scale: the noise is 0 almost surely
    assert laplace_half_width(1e-6, 0.999) == 0


def test_tail_probability_matches_brute_force():
    for scale in (0.5, 3.0, 100.0):
        tails = _tails(scale)
        hs = np.arange(0, 20)
        np.testing.assert_allclose(tail_probability(scale, hs), tails[hs], rtol=1e-9)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.999, 1 - 1e-9])
def test_check_level_accepts_confidence_levels(level):
    assert check_level(level) == level


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.5, 1.5, float("nan"), "x", "0.95", None, True])
def test_check_level_rejects_out_of_range_and_non_numbers(bad):
    with pytest.raises(QueryError, match=r"confidence level must be between 0 and 1"):
        check_level(bad)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.1, 0.49])
def test_check_level_rejects_alpha_saying_it_wants_the_confidence_level(alpha):
    with pytest.raises(QueryError, match=r"confidence level \(e\.g\. 0\.95 for 95%\), not alpha"):
        check_level(alpha)


# ----------------------------------------------------------------------- scales


def _opendp_epsilon(sensitivity: int, scale: float) -> float:
    """OpenDP's own privacy map, built here independently of pets."""
    meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale)
    return float(meas.map(sensitivity))


def _ulps_between(a: float, b: float) -> int:
    n = 0
    while a < b:
        a = math.nextafter(a, math.inf)
        n += 1
        if n > 1000:
            break
    return n


@pytest.mark.parametrize(
    "sensitivity, epsilon",
    [(1, 0.1), (1, 1 / 3), (6, 0.3), (7, 0.7), (3, 1e6), (147, 0.5), (10**8, 0.01), (2, 1e-5), (49, 0.123456789)],
)
def test_laplace_scale_is_minimal_and_within_opendps_map(sensitivity, epsilon):
    scale = laplace_scale(sensitivity, epsilon)
    assert _opendp_epsilon(sensitivity, scale) <= epsilon
    assert laplace_epsilon(sensitivity, scale) <= epsilon
    ideal = sensitivity / epsilon
    assert scale >= ideal
    assert _ulps_between(ideal, scale) <= 4
    if scale > ideal:  # it was nudged: one ulp less would overspend by OpenDP's map
        assert _opendp_epsilon(sensitivity, math.nextafter(scale, 0.0)) > epsilon


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_laplace_scale_rejects_bad_epsilon(bad):
    with pytest.raises(QueryError, match="epsilon must be a finite number > 0"):
        laplace_scale(1, bad)


# --------------------------------------------------------------------- sampler


@pytest.mark.parametrize("size", [0, 1, 7, 1000])
def test_discrete_laplace_returns_int64_of_the_size_asked(size):
    x = discrete_laplace(2.0, size)
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.int64
    assert x.shape == (size,)


def test_discrete_laplace_accepts_an_int_scale():
    assert discrete_laplace(3, 5).dtype == np.int64


@pytest.mark.parametrize("bad", [0, 0.0, -1, -1.0, float("nan"), float("inf")])
def test_discrete_laplace_rejects_bad_scales(bad):
    with pytest.raises(QueryError, match=r"scale must be a finite number > 0"):
        discrete_laplace(bad, 3)


def test_discrete_laplace_rejects_negative_size():
    with pytest.raises(QueryError, match=r"size must be >= 0"):
        discrete_laplace(1.0, -1)


def test_discrete_laplace_matches_the_exact_pmf():
    """Goodness of fit of 200,000 draws at scale 3 to P(k) = (1−q)/(1+q)·q^|k|.

    Bins k = −K … K with K the largest value whose expected count is ≥ 5, plus the two
    tails (k < −K, k > K) each merged into one bin. Pearson's chi-square at
    significance 1e-6: OpenDP's sampler draws from a secure generator and cannot be
    seeded, so a correct sampler still fails this test about once in a million runs
    (plus the small error of the chi-square approximation).
    """
    n, scale = 200_000, 3.0
    x = discrete_laplace(scale, n)
    q = math.exp(-1.0 / scale)
    c = (1.0 - q) / (1.0 + q)
    kmax = int(math.floor(math.log(5.0 / (n * c)) / math.log(q)))
    assert n * c * q**kmax >= 5.0
    ks = np.arange(-kmax, kmax + 1)
    expected_inner = n * c * q ** np.abs(ks)
    tail = n * q ** (kmax + 1) / (1.0 + q)  # P(X > K) = q^(K+1)/(1+q)
    assert tail >= 5.0
    observed_inner = np.array([(x == k).sum() for k in ks])
    observed = np.concatenate([[(x < -kmax).sum()], observed_inner, [(x > kmax).sum()]])
    expected = np.concatenate([[tail], expected_inner, [tail]])
    assert observed.sum() == n
    np.testing.assert_allclose(expected.sum(), n, rtol=1e-9)
    expected = expected * (n / expected.sum())
    result = stats.chisquare(observed, expected)
    assert result.pvalue > 1e-6, (result, observed, expected)


def test_discrete_laplace_draws_are_not_constant():
    x = discrete_laplace(10.0, 2000)
    assert len(np.unique(x)) > 20
    assert x.min() < 0 < x.max()


def test_add_discrete_laplace_keeps_integers_and_shape():
    values = np.array([0, 5, -3, 2**40], dtype=np.int64)
    out = add_discrete_laplace(values, 1e-6)  # noise 0 almost surely at this scale
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, values)
    assert add_discrete_laplace(np.array([], dtype=np.int64), 1.0).shape == (0,)


# ---------------------------------------------------------------- fixed point


@pytest.mark.parametrize(
    "lower, upper, integral, limit, factor",
    [
        (17, 90, True, 2**31, 1),  # integer column with integer bounds: exact
        (0, 10**12, True, 2**31, 1),
        (0, 99.5, False, 2**31, 10**6),  # 99.5e6 <= 2^31: the cap of 10^6
        (0, 1, False, 2**31, 10**6),
        (0, 100_000, False, 2**31, 10**4),  # 1e9 <= 2^31 < 1e10
        (-5000, 10, False, 2**31, 10**5),  # the larger magnitude decides
        (0, 1e9, False, 2**31, 1),
        (49.75, 49.75, False, 2**18, 10**3),  # 49,750 <= 262,144 < 497,500
        (0.5, 0.5, False, 2**18, 10**5),  # 50,000 <= 2^18 < 500,000
        (0, 0.001, False, 2**18, 10**6),
    ],
)
def test_fixed_point_factor(lower, upper, integral, limit, factor):
    f = fixed_point_factor(lower, upper, integral, limit)
    assert f == factor
    if not integral and factor > 1:
        m = max(abs(lower), abs(upper))
        assert m * f <= limit
        assert f == 10**6 or m * f * 10 > limit  # the largest power of ten that fits
