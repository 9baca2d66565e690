"""The answers a newcomer trips on (issue #14, items 8 and 9): explain states each
statistic's expected error in its own units, free post-processing, numeric order of
released unknown keys, integer counts, the compact ci(), grants as a DataFrame, Cost's
one printed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets

from ._util import ALPHA, ANALYST, PURPOSE


@pytest.fixture
def rich(holder: pets.Holder) -> pets.Session:
    holder.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1000.0, delta=1e-3)
    return holder.session(ANALYST, purpose=PURPOSE)


def test_explain_states_errors_in_the_statistics_own_units(session: pets.Session) -> None:
    q = session.table("adult").group_by("sex").agg(
        n=pets.count(), m=pets.mean("age", bounds=(17, 90)), t=pets.sum("hours-per-week"),
        med=pets.quantile("age", 0.5, bounds=(17, 90)))
    e = session.explain(q, pets.DP(epsilon=0.5))
    text = str(e)
    assert "noise scale" not in text and "depends on group size" not in text
    hw = e.details.set_index("aggregate").loc["n", "ci95_half_width"]  # exact discrete Laplace
    assert f"n (count): ±{hw:.0f} rows (95%)" in text
    assert "m (mean of age, bounds [17, 90]): ±" in text and "at 1,000 rows per group" in text
    assert "med (median of age, bounds [17, 90]): within ±" in text
    err = e.expected_error(group_size=10_000).set_index("aggregate")
    assert err.loc["n", "unit"] == "rows" and err.loc["t", "unit"] == "hours-per-week"
    assert err.loc["m", "unit"] == "age" and err.loc["med", "unit"] == "age"
    # a mean's error falls like 1/n; bigger groups, smaller errors
    small = e.expected_error(group_size=100).set_index("aggregate")
    assert err.loc["m", "error"] < small.loc["m", "error"] / 50
    assert small.loc["m", "error"] <= 73  # never wider than the bounds
    assert str(e.at(group_size=10_000)).count("at 10,000 rows per group") == 2
    with pytest.raises(pets.QueryError, match="group_size must be a whole number of rows >= 1"):
        e.at(group_size=0)


def test_a_means_expected_error_covers_its_released_error(rich: pets.Session, adult_df: pd.DataFrame) -> None:
    """Over repeated releases, |released mean − exact mean| exceeds the expected error
    explain stated (at the group's exact size) in at most 5% of the cells; the bound is
    conservative. False-failure rate ≤ ALPHA by the binomial tail."""
    exact = adult_df.groupby("education")["age"].agg(["mean", "size"])  # 16 groups, 51 … 10,501 rows
    dp = pets.DP(epsilon=0.05)
    releases, misses, cells = 15, 0, 0
    for i in range(releases):
        q = rich.table("adult").filter(pets.col("age") >= 17 - i).group_by("education").agg(
            m=pets.mean("age", bounds=(17, 90)))  # a new query each time: no recalled answer
        err = rich.explain(q, dp)
        r = rich.release(q, dp)
        for key, m in zip(r.df["education"], r.df["m"]):
            n = int(exact.loc[key, "size"])
            bound = float(err.expected_error(group_size=n)["error"].iloc[0])
            misses += abs(m - exact.loc[key, "mean"]) > bound
            cells += 1
    limit = stats.binom.isf(ALPHA, cells, 0.05)
    assert misses <= limit, (misses, cells, limit)


def test_free_postprocessing_of_counts_and_rounding(rich: pets.Session) -> None:
    q = rich.table("adult").group_by("race").agg(n=pets.count(), m=pets.mean("age", bounds=(17, 90)))
    r = rich.release(q, pets.DP(epsilon=0.002))  # noise ± thousands: some counts negative
    p = r.postprocess(non_negative=True, decimals=1)
    assert (p.df["n"] >= 0).all() and (p.df["n"] == r.df["n"].clip(lower=0)).all()
    assert np.allclose(p.df["m"], r.df["m"].round(1))
    ci = p.ci(wide=True)
    assert (ci["n_lower"] >= 0).all() and (ci["n_upper"] == r.ci(wide=True)["n_upper"].clip(lower=0)).all()
    assert p.spent == r.spent and p.audit_id == r.audit_id
    # the release itself is untouched
    assert r.df["m"].equals(rich.release(q, pets.DP(epsilon=0.002)).df["m"])  # recalled answer
    with pytest.raises(pets.QueryError, match="decimals must be a whole number >= 0"):
        r.postprocess(decimals=-1)


def test_unknown_keys_of_an_integer_column_come_in_numeric_order(rich: pets.Session) -> None:
    r = rich.release(rich.table("adult").group_by("education-num").agg(n=pets.count()),
                     pets.DP(epsilon=1.0, delta=1e-6))
    keys = r.df["education-num"].tolist()
    assert len(keys) >= 10 and keys == sorted(keys)


def test_counts_are_integers_even_with_suppressed_cells(rich: pets.Session) -> None:
    q = rich.table("adult").group_by("native-country").agg(n=pets.count(), g=pets.sum("capital-gain"))
    r = rich.release(q, pets.DP(epsilon=1.0))  # grade 3 column: min_group_size 10
    assert r.suppressed > 0
    assert str(r.df["n"].dtype) == "Int64" and r.df["n"].isna().sum() == r.suppressed
    assert ".00" not in r.df.to_string()
    wide = r.ci(wide=True)
    assert str(wide["n"].dtype) == "Int64" and {"n_lower", "n_upper", "g", "g_lower", "g_upper"} <= set(wide.columns)
    assert len(wide) == len(r.df) and wide["native-country"].tolist() == r.df["native-country"].tolist()
    plain = rich.release(rich.table("adult").group_by("sex").agg(n=pets.count()), pets.DP(epsilon=1.0))
    assert str(plain.df["n"].dtype) == "int64"


def test_grants_are_a_dataframe(holder: pets.Holder) -> None:
    holder.grant("bob", dataset="adult", purpose="p", epsilon=1.0, delta=1e-6, accounting="zcdp")
    g = holder.grants()
    assert isinstance(g, pd.DataFrame) and len(g) == 2
    assert list(g.columns[:10]) == ["analyst", "dataset", "purpose", "accounting", "epsilon", "delta",
                                    "spent_epsilon", "spent_delta", "remaining_epsilon", "remaining_delta"]
    assert g.set_index("analyst").loc["alice", "remaining_epsilon"] == 2.0
    assert np.isnan(g.set_index("analyst").loc["alice", "rho"])
    empty = holder.grants("nobody")
    assert empty.empty and list(empty.columns)[:3] == ["analyst", "dataset", "purpose"]


def test_cost_prints_one_way(holder: pets.Holder, session: pets.Session) -> None:
    r = session.release(session.table("adult").group_by("sex").agg(n=pets.count()), pets.DP(epsilon=0.5))
    assert repr(r.spent) == "Cost(epsilon=0.5, delta=0)" == f"Cost({r.spent})"
    left = holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE)
    assert repr(left) == repr(session.remaining()) == "Cost(epsilon=1.5, delta=0)"
