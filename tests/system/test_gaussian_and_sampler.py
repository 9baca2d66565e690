"""Gaussian noise under zCDP, zCDP grants, and the fast sampler inside real releases.

Noise inside a release cannot be seeded, so the distribution checks are chi-square
goodness-of-fit tests against the exact pmf at a false-failure rate of 1e-6 each: a
release over many public keys that have no rows is a vector of pure noise draws.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pets
from pets.dp.accountant import grant_rho
from pets.dp.accuracy import gaussian_half_width
from pets.dp.samplers import zcdp_epsilon, zcdp_rho

from ._util import snapshot

FALSE_FAILURE = 1e-6
BIG = 3000  # public keys: 3000 draws ≥ FAST_MIN_DRAWS (2048)
SMALL = 1500  # below it: OpenDP's exact sampler for Gaussian noise


def _holder(tmp_path: Path, keys: int, epsilon: float = 10.0, delta: float = 1e-6,
            accounting: str = "basic") -> pets.Holder:
    h = pets.Holder(tmp_path / "home")
    rng = np.random.default_rng(7)  # test data, not noise
    df = pd.DataFrame({
        "k": ["k0"] * 40 + ["k1"] * 20,
        "g": ["big"] * 59 + ["tiny"],
        "x": rng.uniform(0, 10, 60).round(2),
    })
    pol = {
        "columns": {
            "k": {"role": "attribute", "grade": 1, "keys": [f"k{i}" for i in range(keys)]},
            "g": {"role": "attribute", "grade": 1},
            "x": {"role": "attribute", "grade": 1, "bounds": [0, 10]},
        },
        "grades": {"1": {"allow": ["dp", "he"]}},
    }
    h.register("d", df, pol)
    h.grant("alice", dataset="d", purpose="p", epsilon=epsilon, delta=delta, accounting=accounting)
    return h


def _chi_square_p(noise: np.ndarray, pmf) -> float:  # type: ignore[no-untyped-def]
    """p-value of a chi-square fit of integer draws to ``pmf`` (bins of ≥ 5 expected)."""
    n = len(noise)
    lo, hi = int(noise.min()) - 1, int(noise.max()) + 1
    ks = np.arange(lo - 200, hi + 201)
    p = pmf(ks)
    p = p / p.sum()
    # merge neighbouring values into bins with at least 20 expected draws
    edges, acc = [ks[0]], 0.0
    for k, pk in zip(ks, p):
        acc += pk
        if acc * n >= 20:
            edges.append(k + 1)
            acc = 0.0
    edges[-1] = ks[-1] + 1
    idx = np.searchsorted(np.asarray(edges[1:]), noise, side="right")
    observed = np.bincount(idx, minlength=len(edges) - 1)
    cdf = np.concatenate([[0.0], np.cumsum(p)])
    pos = np.asarray(edges) - ks[0]
    expected = np.diff(cdf[pos]) * n
    stat = float(((observed - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(stat, len(expected) - 1))


def _dgauss(sigma: float):  # type: ignore[no-untyped-def]
    return lambda k: np.exp(-(k.astype(float) ** 2) / (2 * sigma * sigma))


def _dlap(scale: float):  # type: ignore[no-untyped-def]
    return lambda k: np.exp(-np.abs(k.astype(float)) / scale)


def _noise(r: pets.Release, name: str = "n") -> np.ndarray:
    df = r.df
    empty = ~df["k"].isin(["k0", "k1"])
    return df.loc[empty, name].to_numpy(dtype=np.int64)


def _sampler(h: pets.Holder, audit_id: int) -> str:
    rec = [x for x in h.audit().records() if x["id"] == audit_id][0]
    return rec["sampler"]


def test_gaussian_release_has_the_stated_sigma_and_distribution(tmp_path: Path) -> None:
    h = _holder(tmp_path, SMALL)
    s = h.session("alice", purpose="p")
    q = s.table("d").group_by("k").agg(n=pets.count())
    prot = pets.DP(epsilon=1.0, delta=1e-6, noise="gaussian")
    e = s.explain(q, prot)
    rho = zcdp_rho(1.0, 1e-6)
    sigma = e.scale["n"]
    assert sigma == pytest.approx(math.sqrt(1 / (2 * rho)), rel=1e-12)
    assert e.ci_width["n"] == 2 * gaussian_half_width(sigma, 0.95)
    assert e.details.loc[0, "noise"] == "gaussian" and e.details.loc[0, "rho"] == pytest.approx(rho)
    r = s.release(q, prot)
    assert r.spent == pets.Cost(1.0, 1e-6)  # basic accounting charges (epsilon, delta)
    assert _sampler(h, r.audit_id) == "opendp"
    noise = _noise(r)
    assert len(noise) == SMALL - 2
    assert _chi_square_p(noise, _dgauss(sigma)) > FALSE_FAILURE
    # and it is not Laplace noise of the same variance (the test has power)
    b = sigma / math.sqrt(2)
    assert _chi_square_p(noise, _dlap(b)) < 1e-6  # ≈ 1e-20 or less in practice


def test_large_releases_use_the_exact_fast_sampler_and_charge_no_delta(tmp_path: Path) -> None:
    """Laplace noise: pets.dp.fast is exact, so releases use it (≥ FAST_LAPLACE_MIN_DRAWS
    draws, or scales whose tables are built) and charge exactly what was asked, with or
    without δ; the noise still fits the exact pmf (chi-square, false-failure 1e-6)."""
    h = _holder(tmp_path, BIG, epsilon=10.0)
    s = h.session("alice", purpose="p")
    q = s.table("d").group_by("k").agg(n=pets.count())
    r = s.release(q, pets.DP(epsilon=1.0, delta=1e-6))
    assert _sampler(h, r.audit_id) == "fast"
    assert r.spent == pets.Cost(1.0, 0.0)  # public keys, Laplace: no δ is used at all
    assert _chi_square_p(_noise(r), _dlap(1.0)) > FALSE_FAILURE
    # pure DP asked: the same exact sampler, no delta
    r0 = s.release(q, pets.DP(epsilon=0.5))
    assert _sampler(h, r0.audit_id) == "fast" and r0.spent == pets.Cost(0.5, 0.0)
    assert _chi_square_p(_noise(r0), _dlap(2.0)) > FALSE_FAILURE
    # a small release at a scale not built yet: OpenDP's exact sampler (cheaper than a
    # table build); once a large release has built that scale, small ones use it too
    h.grant("alice", dataset="d", purpose="small", epsilon=10.0)
    small = h.session("alice", purpose="small")
    qs = small.table("d").group_by("g", keys=["big", "tiny"]).agg(n=pets.count())
    odd = 0.7731  # a scale no other test builds
    r1 = small.release(qs, pets.DP(epsilon=odd))
    assert _sampler(h, r1.audit_id) == "opendp" and r1.spent == pets.Cost(odd, 0.0)
    rb = s.release(q, pets.DP(epsilon=odd))
    assert _sampler(h, rb.audit_id) == "fast"
    assert _chi_square_p(_noise(rb), _dlap(1 / odd)) > FALSE_FAILURE
    qs3 = small.table("d").group_by("g", keys=["big", "tiny", "none"]).agg(n=pets.count())
    r2 = small.release(qs3, pets.DP(epsilon=odd))  # same scale, a new query
    assert _sampler(h, r2.audit_id) == "fast" and r2.spent == pets.Cost(odd, 0.0)
    # Gaussian: TV ≤ 2^-47 a draw, times 1 + e^10 of this grant, is more than δ/100 ...
    g = s.release(q, pets.DP(epsilon=2.0, delta=1e-7, noise="gaussian"))
    assert _sampler(h, g.audit_id) == "opendp" and g.spent == pets.Cost(2.0, 1e-7)
    # ... under a grant of ε = 3 it is not
    h.grant("alice", dataset="d", purpose="g", epsilon=3.0, delta=1e-6)
    sg = h.session("alice", purpose="g")
    g = sg.release(sg.table("d").group_by("k").agg(n=pets.count()),
                   pets.DP(epsilon=2.0, delta=1e-6, noise="gaussian"))
    assert _sampler(h, g.audit_id) == "fast" and g.spent == pets.Cost(2.0, 1e-6)
    assert _chi_square_p(_noise(g), _dgauss(g.scale["n"])) > FALSE_FAILURE


def test_a_small_release_repeated_at_its_scales_moves_to_the_fast_sampler(tmp_path: Path) -> None:
    """A small release (few draws) uses OpenDP's sampler the first time its scales are
    asked for; from the FAST_LAPLACE_MIN_USES-th time on, pets.dp.fast (exact) — whatever
    the data, the filters or the output names; and that noise fits the exact pmf."""
    from pets.dp import aggregate

    assert aggregate.FAST_LAPLACE_MIN_USES == 2
    h = _holder(tmp_path, 600, epsilon=100.0)
    s = h.session("alice", purpose="p")
    odd = 0.6180339  # scale 1/odd: no other test asks for it
    first = s.release(s.table("d").group_by("g", keys=["big", "tiny"]).agg(n=pets.count()),
                      pets.DP(epsilon=odd))
    assert _sampler(h, first.audit_id) == "opendp"
    # another query (a filter, another output name) at the same scale: fast now
    q = s.table("d").filter(pets.col("x") >= 1).group_by("k").agg(m=pets.count())
    second = s.release(q, pets.DP(epsilon=odd))
    assert _sampler(h, second.audit_id) == "fast" and second.spent == pets.Cost(odd, 0.0)
    noise = _noise(second, "m")
    assert len(noise) == 598 and _chi_square_p(noise, _dlap(1 / odd)) > FALSE_FAILURE
    # a second scale in the same release, never asked for before: OpenDP until it too
    # has been asked for twice (sum's scale differs from the count's)
    qm = s.table("d").group_by("g", keys=["big", "tiny"]).agg(n=pets.count(), t=pets.sum("x"))
    assert _sampler(h, s.release(qm, pets.DP(epsilon=2 * odd)).audit_id) == "opendp"
    qm2 = s.table("d").filter(pets.col("x") >= 2).group_by("g", keys=["big", "tiny"]).agg(
        n=pets.count(), t=pets.sum("x"))
    assert _sampler(h, s.release(qm2, pets.DP(epsilon=2 * odd)).audit_id) == "fast"


def test_the_scale_use_counts_stay_bounded_and_forget_the_oldest() -> None:
    from pets.dp import aggregate

    for i in range(aggregate._SCALE_USES_MAX + 10):  # scales nobody uses: fresh each
        assert aggregate._fast_laplace([1e6 + i + 0.5], 1) is False
    assert len(aggregate._scale_uses) == aggregate._SCALE_USES_MAX
    assert aggregate._fast_laplace([1e6 + 0.5], 1) is False  # forgotten: a first use again
    assert aggregate._fast_laplace([1e6 + 0.5], 1) is True  # a second use
    assert aggregate._fast_laplace([7e6 + 0.5], aggregate.FAST_LAPLACE_MIN_DRAWS) is True


def test_a_zcdp_grant_allows_more_gaussian_releases_and_reports_epsilon_delta(tmp_path: Path) -> None:
    h = _holder(tmp_path, 2, epsilon=1.0, delta=1e-6, accounting="zcdp")
    s = h.session("alice", purpose="p")
    prot = pets.DP(epsilon=0.3, delta=1e-8, noise="gaussian")
    rho = zcdp_rho(0.3, 1e-8)
    n = 0
    while True:
        q = s.table("d").filter(pets.col("x") >= n / 100).group_by("k").agg(n=pets.count())
        try:
            r = s.release(q, prot)
        except pets.BudgetExceeded as e:
            assert "rho=" in str(e)
            break
        n += 1
        assert r.spent == pets.Cost(0.3, 1e-8, rho)
        left = s.remaining()
        assert left.rho == pytest.approx(grant_rho(1.0, 1e-6) - n * rho, rel=1e-9)
        assert left.epsilon == pytest.approx(1.0 - zcdp_epsilon(n * rho, 5e-7), rel=1e-9)
        assert left.delta == pytest.approx(5e-7)
    assert n == math.floor(grant_rho(1.0, 1e-6) / rho + 1e-9)
    assert n >= 3 * 3  # basic composition would have allowed 3
    assert h.audit().verify() is True
    # a Laplace release under zCDP is charged epsilon^2 / 2
    h.grant("alice", dataset="d", purpose="q", epsilon=1.0, delta=1e-6, accounting="zcdp")
    lap = h.session("alice", purpose="q").release(
        h.session("alice", purpose="q").table("d").agg(n=pets.count()), pets.DP(epsilon=0.2))
    assert lap.spent == pets.Cost(0.2, 0.0, 0.02)


def test_gaussian_with_unknown_keys_and_a_quantile(tmp_path: Path) -> None:
    h = _holder(tmp_path, 2, epsilon=10.0, delta=1e-3)
    s = h.session("alice", purpose="p")
    q = s.table("d").group_by("g").agg(n=pets.count())
    r = s.release(q, pets.DP(epsilon=1.0, delta=1e-6, noise="gaussian"))
    # σ ≈ 4.67 and the threshold ≈ 23: "big" (59 rows, 7.7σ above it) is released, a
    # one-person group only with probability ≤ δ/2 (the threshold's share)
    assert list(r.df["g"]) == ["big"]
    assert abs(int(r.df["n"].iloc[0]) - 59) <= gaussian_half_width(r.scale["n"], 1 - 1e-7)
    assert r.spent == pets.Cost(1.0, 1e-6)
    m = s.release(s.table("d").agg(med=pets.quantile("x", 0.5, bounds=(0, 10))),
                  pets.DP(epsilon=5.0, delta=1e-6, noise="gaussian"))
    assert 0 <= m.df["med"].iloc[0] <= 10


def test_bad_noise_requests_are_refused_and_change_nothing(tmp_path: Path) -> None:
    h = _holder(tmp_path, 2)
    s = h.session("alice", purpose="p")
    before = snapshot(h, s)
    with pytest.raises(pets.QueryError, match="Gaussian noise needs delta > 0"):
        pets.DP(epsilon=1.0, noise="gaussian")
    with pytest.raises(pets.QueryError, match="must be one of 'laplace', 'gaussian'"):
        pets.DP(epsilon=1.0, delta=1e-6, noise="cauchy")
    with pytest.raises(pets.QueryError, match="Gaussian noise is not supported in federated"):
        pets.HE(dp=pets.DP(epsilon=1.0, delta=1e-6, noise="gaussian"))
    with pytest.raises(pets.QueryError, match="delta > 0"):
        h.grant("bob", dataset="d", purpose="p", epsilon=1.0, accounting="zcdp")
    assert snapshot(h, s) == before
    s.release(s.table("d").agg(n=pets.count()), pets.DP(epsilon=0.1))
    after = snapshot(h, s)
    with pytest.raises(pets.QueryError, match="cannot switch to 'zcdp'"):
        h.grant("alice", dataset="d", purpose="p", epsilon=10.0, delta=1e-6, accounting="zcdp")
    assert snapshot(h, s) == after
    assert h.grants("alice")["accounting"].iloc[0] == "basic"


def test_cli_grants_zcdp_and_queries_with_gaussian_noise(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    pd.DataFrame({"k": ["a", "b"] * 50, "x": range(100)}).to_csv(src, index=False)
    pol = tmp_path / "p.toml"
    pol.write_text('[columns.k]\nrole = "attribute"\ngrade = 1\nkeys = ["a", "b"]\n'
                   '[grades.1]\nallow = ["dp"]\n')
    home = str(tmp_path / "h")

    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "pets.cli", *args], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    run("register", "--home", home, "d", str(src), "--policy", str(pol))
    assert "zcdp accounting" in run("grant", "--home", home, "--analyst", "a", "--dataset", "d",
                                    "--purpose", "p", "--epsilon", "1", "--delta", "1e-6",
                                    "--accounting", "zcdp")
    out = run("query", "--home", home, "--analyst", "a", "--purpose", "p", "--epsilon", "0.5",
              "--delta", "1e-7", "--noise", "gaussian", "--format", "json",
              "SELECT k, COUNT(*) AS n FROM d GROUP BY k")
    rows = json.loads(out)
    assert [r["k"] for r in rows] == ["a", "b"]
    assert pets.Holder(home).remaining("a", dataset="d", purpose="p").rho > 0


def test_gaussian_scales_use_l2_sensitivity_of_bounded_persons(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    df = pd.DataFrame({"pid": [i // 4 for i in range(400)], "k": ["a", "b", "c", "d"] * 100,
                       "x": [float(i % 10) for i in range(400)]})
    h.register("d", df, {
        "dataset": {"privacy_unit": "pid", "max_groups": 2, "max_rows_per_group": 5},
        "columns": {"pid": {"role": "identifier", "grade": 1},
                    "k": {"role": "attribute", "grade": 1, "keys": ["a", "b", "c", "d"]},
                    "x": {"role": "attribute", "grade": 1, "bounds": [0, 10]}},
        "grades": {"1": {"allow": ["dp"]}}})
    h.grant("a", dataset="d", purpose="p", epsilon=10.0, delta=1e-5)
    s = h.session("a", purpose="p")
    prot = pets.DP(epsilon=1.0, delta=1e-6, noise="gaussian")
    q = s.table("d").group_by("k").agg(n=pets.count(), persons=pets.count_distinct(),
                                        ages=pets.sum("x"))
    e = s.explain(q, prot)
    rho_each = zcdp_rho(1.0, 1e-6) / 3  # three measurements
    # a person: ≤ 2 groups × ≤ 5 rows; L2² = 2·5² for counts, 2 for distinct persons,
    # 2·(5·10)² for the sum of values in [0, 10]
    assert e.scale["n"] == pytest.approx(math.sqrt(50 / (2 * rho_each)), rel=1e-9)
    assert e.scale["persons"] == pytest.approx(math.sqrt(2 / (2 * rho_each)), rel=1e-9)
    assert e.scale["ages"] == pytest.approx(math.sqrt(2 * 50**2 / (2 * rho_each)), rel=1e-9)
    hist = s.table("d").group_by("k").agg(h=pets.histogram("x", bins=[0, 5, 10]))
    eh = s.explain(hist, prot)
    rho_one = zcdp_rho(1.0, 1e-6)  # one measurement: all bins share it
    assert eh.scale["h"] == pytest.approx(math.sqrt(50 / (2 * rho_one)), rel=1e-9)
    r = s.release(q, prot)
    assert list(r.df["k"]) == ["a", "b", "c", "d"]
    # every person has one row in each of the 4 groups and is kept in 2 of them: the
    # four distinct-person counts add up to 2 · 100 (4 draws: sd 2σ; 6 sd ⇒ < 1e-8)
    assert abs(int(r.df["persons"].sum()) - 200) <= 12 * e.scale["persons"]
