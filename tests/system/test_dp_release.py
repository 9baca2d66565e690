"""DP releases end to end: the shape and bookkeeping of a release on the bundled Adult
data, and the statistics of the noise against the scale and intervals pets states.

OpenDP's noise cannot be seeded, so every assertion about a noisy value is a test at a
stated false-failure rate (at most ALPHA = 1e-6 per assertion unless a docstring says
otherwise); assertions about bookkeeping are exact.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets
from pets import col

from ._util import (
    ALPHA,
    ANALYST,
    LEVEL,
    PURPOSE,
    column,
    dlap_fourth_moment,
    dlap_half_width,
    dlap_pmf,
    dlap_q,
    dlap_tail,
    dlap_variance,
    policy,
)

SEXES = ["Female", "Male", "Other"]
RACES = ["Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"]


def adult_query(s: pets.Session) -> pets.Query:
    return (
        s.table("adult")
        .filter(col("age") >= 18)
        .group_by("sex", keys=SEXES)
        .agg(n=pets.count(), hours=pets.mean("hours-per-week"))
    )


def ci_of(r: pets.Release, aggregate: str, level: float = LEVEL) -> pd.DataFrame:
    ci = r.ci(level)
    return ci[ci["aggregate"] == aggregate].reset_index(drop=True)


# =====================================================================================
# A release on Adult, end to end
# =====================================================================================


def test_release_has_one_row_per_public_key_including_keys_absent_from_the_data(session):
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    assert list(r.df["sex"]) == SEXES
    assert len(r.df) == 3


def test_release_columns_are_the_group_column_then_the_agg_names_in_order(session):
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    assert list(r.df.columns) == ["sex", "n", "hours"]
    assert r.df["n"].notna().all() and r.df["hours"].notna().all()


def test_changing_a_released_table_in_place_changes_no_later_release(session):
    """Key columns of small releases are kept between releases: a change the analyst
    makes to one result's table must not show in the next one."""
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    r.df.loc[0, "sex"] = "changed"
    r.df["sex"] = r.df["sex"].str.upper()
    again = session.release(adult_query(session).filter(col("age") >= 18), pets.DP(epsilon=0.5))
    assert list(again.df["sex"]) == SEXES and again.df["sex"].dtype == r.df["sex"].dtype


def test_released_counts_and_means_are_within_their_intervals_of_the_exact_adult_answers(
    session, adult_df
):
    """Each interval at level 1 − 1e-6 covers the exact value except with probability
    ≤ 1e-6; 6 intervals → false-failure rate ≤ 6e-6."""
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    adults = adult_df[adult_df["age"] >= 18]
    exact_n = adults.groupby("sex").size().reindex(SEXES, fill_value=0)
    exact_hours = adults.groupby("sex")["hours-per-week"].mean()
    n, hours = ci_of(r, "n"), ci_of(r, "hours")
    for i, sex in enumerate(SEXES):
        assert n.loc[i, "lower"] <= exact_n[sex] <= n.loc[i, "upper"], sex
    for i, sex in enumerate(["Female", "Male"]):
        assert hours.loc[i, "lower"] <= exact_hours[sex] <= hours.loc[i, "upper"], sex
    # the values in r.df are the values the intervals are built around
    assert list(n["value"]) == [float(v) for v in r.df["n"]]
    np.testing.assert_allclose(hours["value"], r.df["hours"])


def test_a_key_absent_from_the_data_gets_a_count_that_is_pure_noise_around_zero(session):
    """The absent key's count is discrete Laplace noise around 0: |noise| exceeds the
    1 − 1e-6 half-width with probability ≤ 1e-6. Its mean stays inside the bounds."""
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    other = r.df[r.df["sex"] == "Other"].iloc[0]
    h = dlap_half_width(r.scale["n"], LEVEL)
    assert abs(other["n"]) <= h
    assert 1 <= other["hours"] <= 99  # clipped into the policy's bounds [1, 99]


def test_release_charges_exactly_its_epsilon_and_returns_cost_zero_delta(session):
    before = session.remaining()
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    assert r.spent == pets.Cost(0.5, 0)
    assert before == pets.Cost(2.0, 0)
    assert session.remaining() == pets.Cost(1.5, 0)
    r2 = session.release(adult_query(session), pets.DP(epsilon=0.1))
    assert r2.spent == pets.Cost(0.1, 0)
    assert session.remaining() == pets.Cost(float(Fraction(2) - Fraction("0.6")), 0)


def test_counts_and_means_spend_no_delta_even_when_delta_is_allowed(session):
    r = session.release(adult_query(session), pets.DP(epsilon=0.5, delta=1e-6))
    assert r.spent == pets.Cost(0.5, 0)
    assert session.remaining() == pets.Cost(1.5, 0)


def test_release_audit_id_names_a_released_record_with_the_plan_and_cost(holder, session):
    r = session.release(adult_query(session), pets.DP(epsilon=0.5))
    assert isinstance(r.audit_id, int) and not isinstance(r.audit_id, bool)
    recs = {rec["id"]: rec for rec in holder.audit().records()}
    rec = recs[r.audit_id]
    assert rec["status"] == "released"
    assert rec["kind"] == "dp"
    assert (rec["analyst"], rec["dataset"], rec["purpose"]) == (ANALYST, "adult", PURPOSE)
    assert rec["cost"] == {"epsilon": 0.5, "delta": 0.0}
    assert rec["plan"]["group_by"] == [{"column": "sex", "keys": SEXES}]
    assert [a["name"] for a in rec["plan"]["aggs"]] == ["n", "hours"]
    assert holder.audit().verify() is True


def test_each_release_gets_a_new_audit_id(session):
    ids = [session.release(adult_query(session), pets.DP(epsilon=0.1)).audit_id for _ in range(3)]
    assert len(set(ids)) == 3 and ids == sorted(ids)


def test_explain_spends_nothing_and_records_nothing(holder, session):
    before_left, before_len = session.remaining(), len(holder.audit())
    for _ in range(3):
        e = session.explain(adult_query(session), pets.DP(epsilon=0.5))
        assert e.allowed is True
    assert session.remaining() == before_left
    assert len(holder.audit()) == before_len


def test_explain_gives_allowed_cost_scale_and_ci_width_per_output(session):
    e = session.explain(adult_query(session), pets.DP(epsilon=0.5))
    assert e.allowed is True and e.rule is None
    assert e.cost == pets.Cost(0.5, 0)
    assert e.remaining == pets.Cost(2.0, 0)
    assert set(e.scale) == {"n", "hours"} and all(v > 0 for v in e.scale.values())
    # a count's interval is known before running: twice the smallest integer half-width
    assert e.ci_width["n"] == 2 * dlap_half_width(e.scale["n"], 0.95)
    assert e.ci_width["hours"] is None  # a mean's width depends on the group's size
    assert "n" in str(e) and "hours" in str(e)


def test_explain_matches_the_release_it_describes(session):
    q = adult_query(session)
    e = session.explain(q, pets.DP(epsilon=0.5))
    r = session.release(q, pets.DP(epsilon=0.5))
    assert r.spent == e.cost
    assert r.scale == pytest.approx(e.scale)
    n = ci_of(r, "n", 0.95)
    assert ((n["upper"] - n["lower"]) == e.ci_width["n"]).all()


def test_explain_of_a_refused_query_returns_allowed_false_with_the_rule(holder, session):
    before = (session.remaining(), len(holder.audit()))
    q = session.table("adult").filter(col("fnlwgt") > 0).agg(n=pets.count())
    e = session.explain(q, pets.DP(epsilon=0.5))
    assert e.allowed is False
    assert e.rule == "negative_list" and e.column == "fnlwgt"
    assert "negative list" in e.message
    e2 = session.explain(
        session.table("adult").agg(g=pets.sum("capital-gain")), pets.DP(epsilon=1.5)
    )
    assert (e2.allowed, e2.rule, e2.column) == (False, "max_epsilon", "capital-gain")
    # explaining a refusal is not a refusal: nothing recorded, nothing spent
    assert (session.remaining(), len(holder.audit())) == before


def test_explain_of_a_query_over_budget_is_refused_by_the_budget_rule(session):
    e = session.explain(adult_query(session), pets.DP(epsilon=2.5))
    assert e.allowed is False and e.rule == "budget"
    assert "2.5" in e.message


def test_group_by_two_columns_with_a_keys_dict_gives_the_cross_product(session, adult_df):
    """Every cell's interval at level 1 − 1e-6: false-failure rate ≤ 15e-6."""
    q = session.table("adult").group_by(
        "sex", "race", keys={"sex": SEXES, "race": RACES}
    ).agg(n=pets.count())
    r = session.release(q, pets.DP(epsilon=0.5))
    assert len(r.df) == len(SEXES) * len(RACES)
    assert list(r.df.columns) == ["sex", "race", "n"]
    assert list(zip(r.df["sex"], r.df["race"])) == list(itertools.product(SEXES, RACES))
    exact = adult_df.groupby(["sex", "race"]).size()
    ci = ci_of(r, "n")
    for i, (sx, rc) in enumerate(zip(ci["sex"], ci["race"])):
        e = int(exact.get((sx, rc), 0))
        assert ci.loc[i, "lower"] <= e <= ci.loc[i, "upper"], (sx, rc)


def test_group_by_two_columns_takes_missing_keys_from_the_policy(session):
    q = session.table("adult").group_by("sex", "race", keys={"sex": ["Male"]}).agg(n=pets.count())
    r = session.release(q, pets.DP(epsilon=0.5))
    assert list(zip(r.df["sex"], r.df["race"])) == [("Male", race) for race in RACES]


def test_a_release_without_group_by_has_one_row(session, adult_df):
    r = session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.5))
    assert list(r.df.columns) == ["n"] and len(r.df) == 1
    ci = r.ci(LEVEL)
    assert ci.loc[0, "lower"] <= len(adult_df) <= ci.loc[0, "upper"]


def test_ci_rejects_a_level_outside_zero_one_and_alpha_instead_of_level(session):
    r = session.release(adult_query(session), pets.DP(epsilon=0.1))
    with pytest.raises(pets.QueryError, match="between 0 and 1"):
        r.ci(1.5)
    with pytest.raises(pets.QueryError, match="not alpha"):
        r.ci(0.05)


# =====================================================================================
# The noise against the stated scale
# =====================================================================================

K = 4000  # public keys per release
ABSENT = 500  # the last keys never occur in the data (exact count 0)
ROWS = 20_000
COUNT_EPSILON = 0.5  # one measurement: discrete Laplace with scale 1/0.5 = 2
COUNT_RELEASES = 3  # 12,000 noise draws in all
SUM_BOUNDS = (0.0, 1.5)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A DataFrame source with known exact answers: key ``k`` (0 … K−ABSENT−1 occur),
    coarse key ``g`` = k // 10, and ``x`` in thousandths from −0.5 to 2.0 (so clamping
    to [0, 1.5] matters and the fixed-point sums are exact)."""
    rng = np.random.default_rng(7)
    k = rng.integers(0, K - ABSENT, size=ROWS)
    milli = rng.integers(-500, 2001, size=ROWS)
    df = pd.DataFrame({"k": k, "g": k // 10, "x": milli / 1000.0})
    pol = policy(
        {
            "k": column(grade=1),
            "g": column(grade=1),
            "x": column(grade=2, bounds=list(SUM_BOUNDS)),
        }
    )
    h = pets.Holder(tmp_path_factory.mktemp("synthetic") / "home")
    h.register("syn", df, pol)
    h.grant(ANALYST, dataset="syn", purpose=PURPOSE, epsilon=1000.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    clamped_milli = np.clip(milli, 0, 1500)
    exact = pd.DataFrame({"k": k, "g": k // 10, "cm": clamped_milli})
    return {
        "holder": h,
        "session": s,
        "exact_count": exact.groupby("k").size().reindex(range(K), fill_value=0).to_numpy(),
        # exact clamped sums in fixed-point units of 1e-6 (pets uses F = 10^6 here)
        "exact_sum_units": (exact.groupby("k")["cm"].sum().reindex(range(K), fill_value=0)
                            .to_numpy().astype(np.int64) * 1000),
        "exact_mean_g": exact.groupby("g")["cm"].mean() / 1000.0,
        "groups_g": sorted(exact["g"].unique().tolist()),
    }


@pytest.fixture(scope="module")
def count_noise(synthetic):
    """COUNT_RELEASES releases of a count over K public keys: the releases and the noise
    (released − exact) of every cell."""
    s = synthetic["session"]
    # a different (always true) filter per release: an identical query would get its
    # recorded answer back instead of fresh noise
    releases = [
        s.release(s.table("syn").filter(pets.col("k") >= -1 - i)
                  .group_by("k", keys=list(range(K))).agg(n=pets.count()),
                  pets.DP(epsilon=COUNT_EPSILON))
        for i in range(COUNT_RELEASES)
    ]
    exact = synthetic["exact_count"]
    noise = np.concatenate([r.df["n"].to_numpy(dtype=np.int64) - exact for r in releases])
    return releases, noise


def test_count_release_on_integer_keys_has_every_key_in_order(count_noise):
    releases, _ = count_noise
    for r in releases:
        assert list(r.df["k"]) == list(range(K))
        assert r.df["n"].dtype.kind == "i"
        assert r.scale["n"] == pytest.approx(1 / COUNT_EPSILON)


def test_reference_pmf_of_these_tests_is_scipys_discrete_laplace():
    for scale in (0.5, 2.0, 7.3):
        k = np.arange(-30, 31)
        np.testing.assert_allclose(dlap_pmf(k, scale), stats.dlaplace(1 / scale).pmf(k), rtol=1e-12)
        assert dlap_variance(scale) == pytest.approx(stats.dlaplace(1 / scale).var(), rel=1e-9)


def test_count_noise_follows_the_discrete_laplace_pmf_at_the_stated_scale(count_noise):
    """Chi-square goodness of fit of 12,000 noise draws against the exact pmf
    P(k) = (1−q)/(1+q)·q^|k|, q = exp(−1/scale), scale = 1/ε = 2, with bins of expected
    count ≥ 5 and both tails merged. Significance 1e-6 (false-failure rate ≈ 1e-6,
    chi-square asymptotics)."""
    releases, noise = count_noise
    scale = releases[0].scale["n"]
    n = noise.size
    p0 = dlap_pmf(0, scale)
    top = 0
    while n * p0 * dlap_q(scale) ** (top + 1) >= 5:
        top += 1
    ks = np.arange(-top, top + 1)
    probs = dlap_pmf(ks, scale)
    tail = dlap_tail(scale, top) / 2  # P(X > top) = P(X < −top)
    expected = n * np.concatenate([[tail], probs, [tail]])
    observed = np.concatenate(
        [[np.sum(noise < -top)], [np.sum(noise == k) for k in ks], [np.sum(noise > top)]]
    )
    assert expected.sum() == pytest.approx(n)
    result = stats.chisquare(observed, expected * n / expected.sum())
    assert result.pvalue > ALPHA, (result, dict(zip(ks.tolist(), observed[1:-1].tolist())))


def test_count_noise_has_mean_zero_and_the_discrete_laplace_variance(count_noise):
    """Mean and second moment of 12,000 draws against 0 and 2q/(1−q)²: each a two-sided
    z-test at 1e-6 with the exact variance of the estimator (E X⁴ from the pmf); CLT
    approximation, false-failure rate ≈ 2e-6 in all."""
    releases, noise = count_noise
    scale = releases[0].scale["n"]
    n = noise.size
    var = dlap_variance(scale)
    z = stats.norm.isf(ALPHA / 2)
    assert abs(noise.mean()) <= z * math.sqrt(var / n)
    m2 = float(np.mean(noise.astype(np.float64) ** 2))
    sd_m2 = math.sqrt((dlap_fourth_moment(scale) - var**2) / n)
    assert abs(m2 - var) <= z * sd_m2, (m2, var, sd_m2)


def test_count_ci_covers_the_exact_count_at_least_at_the_stated_level(synthetic, count_noise):
    """Coverage of the 95% intervals over 12,000 independent cells: the number covering
    is at least Binomial(12000, 0.95), so it falls below that binomial's 1e-6 quantile
    with probability ≤ 1e-6 (exact bound)."""
    releases, _ = count_noise
    exact = synthetic["exact_count"]
    covered = 0
    for r in releases:
        ci = ci_of(r, "n", 0.95)
        covered += int(np.sum((ci["lower"] <= exact) & (exact <= ci["upper"])))
    n = K * len(releases)
    assert covered >= stats.binom.ppf(ALPHA, n, 0.95), covered / n


def test_count_ci_is_the_tightest_integer_interval_at_its_level(count_noise):
    releases, _ = count_noise
    r = releases[0]
    for level in (0.5, 0.9, 0.95, 0.99, LEVEL):
        ci = ci_of(r, "n", level)
        h = dlap_half_width(r.scale["n"], level)
        assert ((ci["upper"] - ci["value"]) == h).all(), level
        assert ((ci["value"] - ci["lower"]) == h).all(), level


@pytest.fixture(scope="module")
def sum_releases(synthetic):
    s = synthetic["session"]
    # distinct (always true) filters: an identical query would return its recorded answer
    return [s.release(s.table("syn").filter(pets.col("k") >= -1 - i)
                      .group_by("k", keys=list(range(K))).agg(total=pets.sum("x")),
                      pets.DP(epsilon=1.0)) for i in range(2)]


def test_fixed_point_sum_noise_is_laplace_at_the_stated_scale(synthetic, sum_releases):
    """Released − exact clamped sum over 8,000 cells, divided by the stated scale,
    against Laplace(0, 1): Kolmogorov–Smirnov at significance 1e-6 (the noise is discrete
    Laplace in units of 1e-6 with a scale of 1.5e6 units, so the continuous reference is
    off by ~1e-6 in CDF, far below the test's resolution). False-failure rate ≈ 1e-6."""
    exact_units = synthetic["exact_sum_units"]
    z = []
    for r in sum_releases:
        assert r.scale["total"] == pytest.approx(SUM_BOUNDS[1] / 1.0)
        units = np.round(r.df["total"].to_numpy() * 1e6).astype(np.int64)
        z.append((units - exact_units) / 1e6 / r.scale["total"])
    z = np.concatenate(z)
    result = stats.kstest(z, stats.laplace.cdf)
    assert result.pvalue > ALPHA, result


def test_fixed_point_sum_ci_covers_the_exact_clamped_sum_at_the_stated_level(
    synthetic, sum_releases
):
    """95% intervals of the sums of x clamped to [0, 1.5] over 8,000 cells: covering
    cells ≥ the 1e-6 quantile of Binomial(8000, 0.95) except with probability ≤ 1e-6.
    Compared in exact fixed-point units, so float rounding cannot decide a cell."""
    exact_units = synthetic["exact_sum_units"]
    covered, n = 0, 0
    for r in sum_releases:
        ci = ci_of(r, "total", 0.95)
        lo = np.round(ci["lower"].to_numpy() * 1e6).astype(np.int64)
        hi = np.round(ci["upper"].to_numpy() * 1e6).astype(np.int64)
        covered += int(np.sum((lo <= exact_units) & (exact_units <= hi)))
        n += len(ci)
    assert covered >= stats.binom.ppf(ALPHA, n, 0.95), covered / n


def test_mean_ci_covers_the_exact_clamped_mean_at_the_stated_level(synthetic):
    """95% intervals of means of x clamped to [0, 1.5] over ~350 groups of ~57 rows, in
    4 releases: covering cells ≥ the 1e-6 quantile of Binomial(cells, 0.95) except with
    probability ≤ 1e-6. The intervals must also be informative (median width well
    below the bounds' range), or covering would prove nothing."""
    s = synthetic["session"]
    groups = synthetic["groups_g"]
    exact = synthetic["exact_mean_g"].reindex(groups).to_numpy()
    covered, n, widths = 0, 0, []
    for i in range(4):
        q = s.table("syn").filter(pets.col("k") >= -1 - i).group_by("g", keys=groups).agg(
            m=pets.mean("x"))
        r = s.release(q, pets.DP(epsilon=2.0))
        assert list(r.df["g"]) == groups
        ci = ci_of(r, "m", 0.95)
        assert (ci["lower"] >= SUM_BOUNDS[0]).all() and (ci["upper"] <= SUM_BOUNDS[1]).all()
        covered += int(np.sum((ci["lower"] - 1e-9 <= exact) & (exact <= ci["upper"] + 1e-9)))
        n += len(ci)
        widths.append(ci["upper"] - ci["lower"])
    assert covered >= stats.binom.ppf(ALPHA, n, 0.95), covered / n
    assert float(np.median(np.concatenate(widths))) < 0.5 * (SUM_BOUNDS[1] - SUM_BOUNDS[0])


# =====================================================================================
# A privacy unit: each person's contribution is bounded
# =====================================================================================


def test_a_release_under_a_privacy_unit_bounds_each_persons_rows_and_groups(tmp_path):
    """Persons 0–4 have 5 rows in 'a', persons 5–8 have 5 rows in 'b', person 9 has 5
    rows in 'b' and 3 in 'a'. With max_groups = 1 and max_rows_per_group = 2 each
    person adds at most 2 to one group. ε = 10^4: noise 0 except with probability
    < 1e-100."""
    rows = [(p, "a" if p < 5 else "b") for p in range(10) for _ in range(5)] + [(9, "a")] * 3
    df = pd.DataFrame(rows, columns=["pid", "g"])
    pol = policy(
        {"pid": column("identifier", 1), "g": column(keys=["a", "b", "c"])},
        grades={"1": {"allow": ["dp"]}},
        dataset={"privacy_unit": "pid", "max_groups": 1, "max_rows_per_group": 2},
    )
    h = pets.Holder(tmp_path / "home")
    h.register("persons", df, pol)
    h.grant(ANALYST, dataset="persons", purpose=PURPOSE, epsilon=1e6)
    s = h.session(ANALYST, purpose=PURPOSE)
    r = s.release(s.table("persons").group_by("g").agg(n=pets.count()), pets.DP(epsilon=1e4))
    assert r.scale["n"] == pytest.approx(2 / 1e4)  # sensitivity 1 group × 2 rows
    n = dict(zip(r.df["g"], r.df["n"]))
    assert n["c"] == 0
    assert (n["a"], n["b"]) in {(12, 8), (10, 10)}


def test_explain_ci_width_of_a_fixed_point_sum_matches_the_released_intervals(synthetic):
    s = synthetic["session"]
    q = s.table("syn").group_by("k", keys=[0, 1, 2]).agg(total=pets.sum("x"))
    e = s.explain(q, pets.DP(epsilon=1.0))
    r = s.release(q, pets.DP(epsilon=1.0))
    scale_units = e.scale["total"] * 1e6  # F = 10^6 for bounds (0, 1.5)
    assert e.ci_width["total"] == pytest.approx(2 * dlap_half_width(scale_units, 0.95) / 1e6)
    ci = ci_of(r, "total", 0.95)
    np.testing.assert_allclose(ci["upper"] - ci["lower"], e.ci_width["total"], rtol=1e-9)
