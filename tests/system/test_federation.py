"""Federated releases under Paillier with threshold decryption, in-process holders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets

KEYS = [f"k{i:04d}" for i in range(600)]
POLICY = {
    "dataset": {"privacy_unit": "pid"},
    "columns": {
        "region": {"role": "attribute", "grade": 1, "keys": ["a", "b", "c"]},
        "cell": {"role": "attribute", "grade": 1, "keys": KEYS},
        "amount": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
        "pid": {"role": "identifier", "grade": 1},
        "ward": {"role": "attribute", "grade": 3, "keys": ["w1", "w2"]},
    },
    "grades": {"1": {"allow": ["dp", "he", "he_exact"]},
               "3": {"allow": ["dp", "he"], "max_epsilon": 1.0}},
}
#: the same data, with one exact total per analyst
ONE_EXACT = {**POLICY, "dataset": {"privacy_unit": "pid", "max_exact_totals": 1}}


def _frame(seed: int, n: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # test DATA only, never noise
    return pd.DataFrame({
        "region": rng.choice(["a", "b", "c", "z"], n),
        "cell": rng.choice(KEYS, n),
        "amount": rng.uniform(-10, 120, n),
        "pid": [f"s{seed}-p{i}" for i in range(n)],
        "ward": rng.choice(["w1", "w2"], n),
    })


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    holders, frames = {}, {}
    for i, name in enumerate(["north", "south", "east"]):
        h = pets.Holder(tmp_path_factory.mktemp(name))
        frames[name] = _frame(i)
        h.register("visits", frames[name], POLICY)
        h.grant("alice", dataset="visits", purpose="p", epsilon=50.0)
        h.register("visits1", frames[name], ONE_EXACT)
        h.grant("alice", dataset="visits1", purpose="p", epsilon=50.0)
        holders[name] = h
    fed = pets.Federation(holders)
    fed._keyset(2048)  # deal once for the module (2048-bit key: fast enough for tests)
    return fed, holders, pd.concat(frames.values(), ignore_index=True)


def test_threshold_defaults_to_a_majority_and_validates(federation):
    fed, holders, _ = federation
    assert fed.threshold == 2
    with pytest.raises(pets.QueryError, match="threshold must be an integer in 2..3"):
        pets.Federation(holders, threshold=4)
    with pytest.raises(pets.QueryError, match="not a pets.Holder"):
        pets.Federation({"x": object()})  # type: ignore[dict-item]


def test_totals_without_dp_equal_the_exact_totals(federation):
    fed, holders, data = federation
    s = fed.session("alice", purpose="p")
    q = s.table("visits").group_by("region").agg(
        n=pets.count(), total=pets.sum("amount"), avg=pets.mean("amount"))
    r = s.release(q, pets.HE(key_bits=2048))
    got = r.df.set_index("region")
    d = data[data.region != "z"].assign(c=lambda x: x.amount.clip(0, 100))
    want = d.groupby("region").agg(n=("c", "size"), total=("c", "sum"), avg=("c", "mean"))
    assert list(got.index) == ["a", "b", "c"]
    np.testing.assert_array_equal(got["n"].to_numpy(), want["n"].to_numpy())
    np.testing.assert_allclose(got["total"], want["total"], atol=1e-3)  # fixed point, 4 decimals
    np.testing.assert_allclose(got["avg"], want["avg"], atol=1e-6)
    assert r.spent == pets.Cost(0.0, 0.0)
    # every holder recorded its own contribution, and its audit log verifies
    assert set(r.audit_ids) == {"north", "south", "east"}
    for name, h in holders.items():
        rec = [x for x in h.audit().records() if x["id"] == r.audit_ids[name]][0]
        assert rec["kind"] == "he_exact" and rec["status"] == "released"
        assert h.audit().verify() is True


def _sum_of_laplace_pmf(scale: float, draws: int, support: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(-support, support + 1)
    q = np.exp(-1.0 / scale)
    one = (1 - q) / (1 + q) * q ** np.abs(k)
    pmf = one
    for _ in range(draws - 1):
        pmf = np.convolve(pmf, one)
    ks = np.arange(-(len(pmf) // 2), len(pmf) // 2 + 1)
    return ks, pmf / pmf.sum()


def test_dp_totals_carry_the_sum_of_every_holders_noise(federation):
    """600 count cells, each the exact count plus three independent discrete Laplace
    draws of scale 1/ε (one per holder). Chi-square goodness of fit of the noise against
    the exact pmf of the sum, tails merged to expected counts >= 5; significance 1e-6,
    which is the false-failure rate (the noise is OpenDP's and cannot be seeded)."""
    fed, holders, data = federation
    s = fed.session("alice", purpose="p")
    before = {n: h.remaining("alice", dataset="visits", purpose="p") for n, h in holders.items()}
    r = s.release(s.table("visits").group_by("cell").agg(n=pets.count()),
                  pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    for n, h in holders.items():  # each holder charged its own ledger
        assert h.remaining("alice", dataset="visits", purpose="p").epsilon == pytest.approx(
            before[n].epsilon - 1.0)
    exact = data.groupby("cell").size().reindex(KEYS, fill_value=0).to_numpy()
    noise = r.df.set_index("cell").loc[KEYS, "n"].to_numpy() - exact
    ks, pmf = _sum_of_laplace_pmf(1.0, 3, 60)
    observed = np.array([(noise == k).sum() for k in ks], dtype=float)
    expected = pmf * len(noise)
    keep = expected >= 5
    lo, hi = ks[keep][0], ks[keep][-1]
    obs = np.concatenate([[observed[ks < lo].sum()], observed[keep], [observed[ks > hi].sum()]])
    exp = np.concatenate([[expected[ks < lo].sum()], expected[keep], [expected[ks > hi].sum()]])
    _, p = stats.chisquare(obs, exp)
    assert p > 1e-6, (p, obs, exp)
    # the reported 95% intervals cover at least 95% of cells (union bound: conservative)
    ci = r.ci(0.95).set_index("cell").loc[KEYS]
    covered = ((ci["lower"] <= exact) & (exact <= ci["upper"])).mean()
    assert covered >= 0.95


def test_a_holder_whose_policy_refuses_stops_the_release_before_any_charge(tmp_path, federation):
    fed, holders, _ = federation
    strict = pets.Holder(tmp_path / "strict")
    pol = {**POLICY, "grades": {**POLICY["grades"], "1": {"allow": ["dp"]}}}  # no "he"
    strict.register("visits", _frame(9), pol)
    strict.grant("alice", dataset="visits", purpose="p", epsilon=5.0)
    fed2 = pets.Federation({**holders, "strict": strict})
    before = {n: h.remaining("alice", dataset="visits", purpose="p") for n, h in holders.items()}
    s = fed2.session("alice", purpose="p")
    with pytest.raises(pets.PolicyError, match="does not allow 'he'") as e:
        s.release(s.table("visits").group_by("region").agg(n=pets.count()),
                  pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    assert e.value.rule == "grade"
    after = {n: h.remaining("alice", dataset="visits", purpose="p") for n, h in holders.items()}
    assert after == before


def test_a_holder_without_budget_stops_the_release_before_any_charge(tmp_path, federation):
    fed, holders, _ = federation
    poor = pets.Holder(tmp_path / "poor")
    poor.register("visits", _frame(7), POLICY)
    poor.grant("alice", dataset="visits", purpose="p", epsilon=0.5)
    fed2 = pets.Federation({**holders, "poor": poor})
    before = {n: h.remaining("alice", dataset="visits", purpose="p") for n, h in holders.items()}
    s = fed2.session("alice", purpose="p")
    with pytest.raises(pets.BudgetExceeded):
        s.release(s.table("visits").group_by("region").agg(n=pets.count()),
                  pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    assert {n: h.remaining("alice", dataset="visits", purpose="p") for n, h in holders.items()} == before


def test_holders_that_disagree_on_bounds_are_refused(tmp_path, federation):
    fed, holders, _ = federation
    other = pets.Holder(tmp_path / "other")
    pol = {**POLICY, "columns": {**POLICY["columns"],
                                 "amount": {"role": "attribute", "grade": 1, "bounds": [0, 50]}}}
    other.register("visits", _frame(3), pol)
    other.grant("alice", dataset="visits", purpose="p", epsilon=5.0)
    s = pets.Federation({**holders, "other": other}).session("alice", purpose="p")
    with pytest.raises(pets.QueryError, match="computes this query differently"):
        s.release(s.table("visits").agg(t=pets.sum("amount")), pets.HE(key_bits=2048))
    # bounds given in the query make them agree
    r = s.release(s.table("visits").agg(t=pets.sum("amount", bounds=(0, 50))), pets.HE(key_bits=2048))
    assert len(r.df) == 1


def test_histogram_totals_without_dp_are_the_exact_bin_counts_of_all_holders(federation):
    fed, _, data = federation
    s = fed.session("alice", purpose="p")
    edges = [-10, 0, 50, 100, 120]
    r = s.release(s.table("visits").group_by("region").agg(h=pets.histogram("amount", bins=edges)),
                  pets.HE(key_bits=2048))
    assert list(r.df.columns) == ["region", "amount", "h"]
    want = []
    for g in ["a", "b", "c"]:
        x = data.loc[data.region == g, "amount"]
        want += [int(((x >= lo) & ((x <= hi) if hi == 120 else (x < hi))).sum())
                 for lo, hi in zip(edges, edges[1:])]
    assert r.df["h"].tolist() == want


def test_aggregations_that_do_not_add_up_across_holders_are_refused(federation):
    fed, holders, _ = federation
    s = fed.session("alice", purpose="p")
    before = [len(h.audit()) for h in holders.values()]
    with pytest.raises(pets.QueryError, match=r"count_distinct\('cell'\) cannot be released across holders"):
        s.release(s.table("visits").agg(v=pets.count_distinct("cell")), pets.HE(key_bits=2048))
    with pytest.raises(pets.QueryError, match="quantile 'm' cannot be released across holders"):
        s.release(s.table("visits").agg(m=pets.quantile("amount", 0.5)), pets.HE(key_bits=2048))
    assert [len(h.audit()) for h in holders.values()] == before


# -- HE under the same rules as DP (issue 9) ------------------------------------------


def _remaining(holders, dataset="visits"):
    return {n: h.remaining("alice", dataset=dataset, purpose="p") for n, h in holders.items()}


def test_a_federation_needs_two_holders_and_a_threshold_of_two(federation):
    _, holders, _ = federation
    one = {"north": holders["north"]}
    with pytest.raises(pets.QueryError, match="needs at least two holders, got 1"):
        pets.Federation(one)
    with pytest.raises(pets.QueryError, match=r"threshold must be an integer in 2\.\.3 .*got 1"):
        pets.Federation(holders, threshold=1)
    with pytest.raises(pets.QueryError, match="listed twice"):
        pets.Federation({"a": holders["north"], "b": holders["north"]})


def test_exact_totals_need_the_he_exact_form_in_the_policy(federation):
    fed, holders, _ = federation
    s = fed.session("alice", purpose="p")
    before = [len(h.audit()) for h in holders.values()]
    # 'ward' is grade 3, which allows he (with DP) but not he_exact
    with pytest.raises(pets.PolicyError, match="does not allow 'he_exact' releases") as e:
        s.release(s.table("visits").group_by("ward").agg(n=pets.count()), pets.HE(key_bits=2048))
    assert e.value.rule == "grade" and e.value.column == "ward"
    assert s.explain(s.table("visits").group_by("ward").agg(n=pets.count()),
                     pets.HE(key_bits=2048))["north"]["rule"] == "grade"
    # the refusal is audited at the holder that refused (the first), nothing charged
    assert [len(h.audit()) for h in holders.values()] == [before[0] + 1] + before[1:]


def test_he_applies_the_per_release_epsilon_cap_and_the_budget(federation):
    fed, holders, _ = federation
    s = fed.session("alice", purpose="p")
    before = _remaining(holders)
    q = s.table("visits").group_by("ward").agg(n=pets.count())
    with pytest.raises(pets.PolicyError, match="above the cap of 1 per release") as e:
        s.release(q, pets.HE(key_bits=2048, dp=pets.DP(epsilon=2.0)))
    assert e.value.rule == "max_epsilon"
    with pytest.raises(pets.BudgetExceeded):
        s.release(s.table("visits").agg(n=pets.count()), pets.HE(key_bits=2048, dp=pets.DP(epsilon=60.0)))
    assert _remaining(holders) == before


@pytest.mark.parametrize("dp", [None, pets.DP(epsilon=1.0)], ids=["exact", "dp"])
def test_he_never_groups_by_an_identifier(federation, dp):
    fed, holders, _ = federation
    s = fed.session("alice", purpose="p")
    before = _remaining(holders)
    q = s.table("visits").group_by("pid", keys=["s0-p1", "s1-p1"]).agg(t=pets.sum("amount"))
    with pytest.raises(pets.PolicyError, match="is an identifier: grouping by it") as e:
        s.release(q, pets.HE(key_bits=2048, dp=dp))
    assert e.value.rule == "identifier_group_by" and e.value.column == "pid"
    with pytest.raises(pets.PolicyError, match="identifier and cannot be filtered on") as e:
        s.release(s.table("visits").filter(pets.col("pid") == "s0-p1").agg(t=pets.sum("amount")),
                  pets.HE(key_bits=2048, dp=dp))
    assert e.value.rule == "identifier"
    assert _remaining(holders) == before


def test_exact_totals_are_counted_and_small_groups_withheld(federation):
    fed, holders, data = federation
    s = fed.session("alice", purpose="p")
    q = s.table("visits1").group_by("cell").agg(n=pets.count())
    r = s.release(q, pets.HE(key_bits=2048))
    exact = data.groupby("cell").size().reindex(KEYS, fill_value=0)
    got = r.df.set_index("cell")["n"]
    small = exact < 10  # 4,500 rows over 600 keys: most cells are small
    assert small.sum() > 100 and (~small).sum() > 10
    assert got[small.to_numpy()].isna().all()
    np.testing.assert_array_equal(got[(~small).to_numpy()].to_numpy(), exact[~small].to_numpy())
    assert r.suppressed == int(small.sum())
    for name, h in holders.items():
        rec = [x for x in h.audit().records() if x["id"] == r.audit_ids[name]][0]
        assert rec["kind"] == "he_exact" and rec["policy_version"]
    with pytest.raises(pets.PolicyError, match="has had 1 of the 1 exact federated totals") as e:
        s.release(s.table("visits1").agg(n=pets.count()), pets.HE(key_bits=2048))
    assert e.value.rule == "max_exact_totals" and e.value.allowed == 1
    # DP totals are not counted against the exact quota
    r2 = s.release(s.table("visits1").agg(n=pets.count()), pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    assert r2.spent == pets.Cost(1.0, 0.0)


def test_a_single_holder_session_refuses_he_and_points_to_the_federation(federation):
    _, holders, _ = federation
    s = holders["north"].session("alice", purpose="p")
    with pytest.raises(pets.QueryError, match=r"pets.Federation"):
        s.release(s.table("visits").agg(n=pets.count()), pets.HE(dp=pets.DP(epsilon=1.0)))
