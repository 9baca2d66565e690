"""Privacy models against a population and on the whole table, the population-uniqueness
estimators, hierarchical t-closeness and the early refusal (pets.anon, issue 17 part A).

Everything is checked against values computed independently:

- the optimum under δ-presence, k-map, average risk and sample uniques against a brute
  force over the whole lattice that generalises with the hierarchies' labels and counts
  classes with plain pandas (groupby), with the models' conditions written out here;
- the estimators against scipy (hypergeometric pmf, a numerical optimiser for Pitman's
  likelihood, a root finder for the SNB equations) and against their exact values when
  the sample is the population;
- hierarchical EMD against a transport linear programme (scipy.optimize.linprog) with
  the ground distance of Li et al.;
- the early refusal against the brute force (it never refuses a feasible request).
"""

from __future__ import annotations

import importlib
import itertools
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import pets.anon as anon
from pets.anon import metrics as M
from pets.anon.hierarchy import Hierarchy
from pets.anon.lattice import optimal_full_domain
from pets.anon.models import EntropyLDiversity, KAnonymity, TCloseness
from pets.errors import QueryError

R = importlib.import_module("pets.anon.risk")

ADULT = Path(__file__).resolve().parents[1] / "data" / "adult-arx"


def _h_numeric(name: str, n_vals: int, widths: list[int]) -> Hierarchy:
    rows = [[v] + [f"{v // w * w}-{v // w * w + w - 1}" for w in widths] + ["*"] for v in range(n_vals)]
    return Hierarchy.from_rows(rows, name=name)


ZIPS = ["1300", "1301", "1302", "1310", "1311", "1400", "1401", "1410"]
H = {
    "age": _h_numeric("age", 16, [4, 8]),
    "zip": Hierarchy.from_rows([[z, z[:3] + "*", z[:2] + "**"] for z in ZIPS], name="zip"),  # no single root
    "sex": Hierarchy.from_rows([["M", "*"], ["F", "*"]], name="sex"),
    "disease": Hierarchy.from_rows(
        [["flu", "infection", "*"], ["cold", "infection", "*"], ["hiv", "infection", "*"],
         ["cancer", "chronic", "*"], ["ulcer", "chronic", "*"]], name="disease"),
}
QIS = ["age", "zip", "sex"]


def population(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": np.clip(rng.normal(8, 4, n).round(), 0, 15).astype(int),
        "zip": rng.choice(ZIPS, n, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]),
        "sex": rng.choice(["M", "F"], n, p=[0.6, 0.4]),
        "disease": rng.choice(["flu", "cold", "cancer", "hiv", "ulcer"], n, p=[0.45, 0.3, 0.1, 0.1, 0.05]),
    })


def subset_mask(seed: int, n: int, share: float) -> np.ndarray:
    return np.random.default_rng(seed + 1000).random(n) < share


# ---------------------------------------------------------------------- brute force


def brute_force(sample: pd.DataFrame, pop: pd.DataFrame | None, max_suppression: float, *, k: int = 2,
                dmin=None, dmax=None, kmap=None, avg=None, uniques=None) -> dict:
    """Every lattice node: generalise sample and population with the hierarchies' labels,
    count classes with pandas, apply the models' definitions; None when infeasible."""
    n = len(sample)
    limit = math.floor(max_suppression * n + 1e-9)
    enc = [H[c].encode(sample[c]) for c in QIS]
    out = {}
    for lv in itertools.product(*[range(H[c].height + 1) for c in QIS]):
        g = pd.DataFrame({c: H[c].generalize(sample[c], h) for c, h in zip(QIS, lv)})
        f = g.groupby(QIS, sort=False).size().rename("f")
        frame = f.reset_index()
        if pop is not None:
            gp = pd.DataFrame({c: H[c].generalize(pop[c], h) for c, h in zip(QIS, lv)})
            F = gp.groupby(QIS, sort=False).size().rename("F").reset_index()
            frame = frame.merge(F, on=QIS, how="left")
        ok = frame["f"] >= k
        if dmin is not None:
            delta = frame["f"] / frame["F"]
            ok &= (delta >= dmin - 1e-12) & (delta <= dmax + 1e-12)
        if kmap is not None:
            ok &= frame["F"] >= kmap
        s = int(frame.loc[~ok, "f"].sum())
        if s > limit:
            out[lv] = None
            continue
        kept = frame.loc[ok, "f"].to_numpy()
        if avg is not None and kept.size and len(kept) / kept.sum() > avg + 1e-12:
            out[lv] = None
            continue
        if uniques is not None and kept.size and np.count_nonzero(kept == 1) / kept.sum() > uniques + 1e-12:
            out[lv] = None
            continue
        bad = g.merge(frame.loc[~ok, QIS].assign(_bad=True), on=QIS, how="left")["_bad"].eq(True).to_numpy()
        out[lv] = (M.loss(enc, lv, bad), s)
    return out


def best_of(table: dict):
    feas = {lv: r for lv, r in table.items() if r is not None}
    if not feas:
        return None
    v = min(r[0] for r in feas.values())
    ties = [lv for lv, r in feas.items() if r[0] <= v + 1e-9 * max(1.0, v)]
    return min(ties, key=lambda lv: (sum(lv), lv)), v


def levels_of(r) -> tuple:
    return tuple(r.transformation[c] for c in QIS)


# ---------------------------------------------------------------------- δ-presence


@pytest.mark.parametrize("seed,n,share,dmin,dmax,sup", [
    (0, 400, 0.3, 0.0, 0.5, 0.0),
    (1, 400, 0.3, 0.1, 0.6, 0.1),
    (2, 300, 0.5, 0.2, 0.8, 0.05),
])
def test_delta_presence_matches_brute_force(seed, n, share, dmin, dmax, sup) -> None:
    pop = population(seed, n)
    mask = subset_mask(seed, n, share)
    sample = pop.loc[mask].reset_index(drop=True)
    expect = best_of(brute_force(sample, pop, sup, dmin=dmin, dmax=dmax))
    assert expect is not None
    r = anon.anonymize(pop, QIS, H, k=2, max_suppression=sup,
                       models=[anon.DeltaPresence(dmin, dmax, population=mask)])
    assert levels_of(r) == expect[0]
    assert r.metrics["loss"] == pytest.approx(expect[1], rel=1e-9)
    assert len(r.df) + r.suppressed == len(sample)  # only the research subset is released
    # the same with the population given as a table and the subset as the table
    r2 = anon.anonymize(sample, QIS, H, k=2, max_suppression=sup,
                        models=[anon.DeltaPresence(dmin, dmax, population=pop)])
    assert r2.transformation == r.transformation and r2.suppressed == r.suppressed
    # every released class has its δ in range, counted from the labels
    lv = levels_of(r)
    gp = pd.DataFrame({c: H[c].generalize(pop[c], h) for c, h in zip(QIS, lv)})
    F = gp.groupby(QIS).size()
    f = r.df.astype({c: str for c in QIS}).groupby(QIS).size()
    delta = f / F.reindex(f.index)
    assert ((delta >= dmin - 1e-12) & (delta <= dmax + 1e-12)).all()


def test_delta_presence_refused_when_no_class_can_meet_it() -> None:
    pop = population(3, 200)
    mask = subset_mask(3, 200, 0.9)
    with pytest.raises(QueryError, match=r"no transformation satisfies 2-anonymity, \(0, 0.5\)-presence"):
        anon.anonymize(pop, QIS, H, k=2, models=[anon.DeltaPresence(0.0, 0.5, population=mask)])


# ---------------------------------------------------------------------- k-map


@pytest.mark.parametrize("seed,n,share,kmap,sup", [(4, 500, 0.2, 5, 0.0), (5, 500, 0.2, 8, 0.05)])
def test_kmap_against_a_population_matches_brute_force(seed, n, share, kmap, sup) -> None:
    pop = population(seed, n)
    sample = pop.loc[subset_mask(seed, n, share)].reset_index(drop=True)
    expect = best_of(brute_force(sample, pop, sup, kmap=kmap))
    r = anon.anonymize(sample, QIS, H, k=2, max_suppression=sup, models=[anon.KMap(kmap, population=pop)])
    assert levels_of(r) == expect[0]
    assert r.metrics["loss"] == pytest.approx(expect[1], rel=1e-9)


@pytest.mark.parametrize("k,pi,estimator,alpha", [
    (5, 0.1, "poisson", 0.01), (5, 0.5, "zero-truncated-poisson", 0.01),
    (10, 0.05, "zero-truncated-poisson", 0.05), (3, 1.0, "poisson", 0.01),
])
def test_kmap_estimate_is_the_smallest_safe_sample_class_size(k, pi, estimator, alpha) -> None:
    def p_small(f: int) -> float:  # P(F < k) with F ~ Poisson(f / π) (given F ≥ 1)
        lam = f / pi
        p = stats.poisson.cdf(k - 1, lam)
        if estimator == "zero-truncated-poisson":
            p = (p - stats.poisson.pmf(0, lam)) / (1 - stats.poisson.pmf(0, lam))
        return p

    want = next(f for f in range(1, 10_000) if p_small(f) <= alpha)
    m = anon.KMap(k, sample_fraction=pi, estimator=estimator, significance=alpha)
    assert m.derived_k() == want
    # the search then equals k-anonymity with that k
    pop = population(6, 400)
    r = anon.anonymize(pop, QIS, H, k=2, max_suppression=0.05, models=[m])
    ref = anon.anonymize(pop, QIS, H, k=max(2, want), max_suppression=0.05)
    assert r.transformation == ref.transformation and r.suppressed == ref.suppressed


# ---------------------------------------------------------------------- table-level models


@pytest.mark.parametrize("seed,avg,uniques,sup", [
    (7, 0.1, None, 0.0), (8, 0.05, None, 0.05), (9, None, 0.0, 0.0), (10, None, 0.02, 0.05), (11, 0.08, 0.01, 0.02),
])
def test_average_risk_and_sample_uniques_match_brute_force(seed, avg, uniques, sup) -> None:
    sample = population(seed, 400)
    ms = []
    if avg is not None:
        ms.append(anon.AverageReidentificationRisk(avg))
    if uniques is not None:
        ms.append(anon.SampleUniques(uniques))
    # (with suppression, k=2 alone removes the uniques; the average risk still binds)
    expect = best_of(brute_force(sample, None, sup, avg=avg, uniques=uniques))
    r = anon.anonymize(sample, QIS, H, k=2, max_suppression=sup, models=ms)
    assert levels_of(r) == expect[0]
    sizes = r.df.astype(str).groupby(QIS).size().to_numpy()
    if avg is not None:
        assert len(sizes) / sizes.sum() <= avg + 1e-12
        assert r.metrics["prosecutor_risk_avg"] == pytest.approx(len(sizes) / sizes.sum())


def test_population_uniqueness_model_holds_on_the_release() -> None:
    df = pd.read_csv(ADULT / "adult.csv", sep=";")
    qis = ["sex", "age", "race", "marital-status", "education", "native-country"]
    h = anon.load_hierarchies(ADULT, qis)
    for model in ("dankar", "pitman", "zayatz", "snb"):
        m = anon.PopulationUniqueness(0.0005, model=model, sample_fraction=0.1)
        r = anon.anonymize(df, qis, h, k=2, models=[m])
        sizes = r.df.astype(str).groupby(qis).size().to_numpy()
        est = anon.estimate_population_uniques(sizes, 0.1, model)
        assert est.share <= 0.0005
        assert r.metrics["loss"] < 1.0  # something is released


# ---------------------------------------------------------------------- estimators


@pytest.fixture(scope="module")
def adult_sizes() -> np.ndarray:
    df = pd.read_csv(ADULT / "adult.csv", sep=";")
    ids, k = M.classes(df, ["sex", "age", "race", "marital-status"])
    return np.bincount(ids, minlength=k)


def test_estimators_are_exact_when_the_sample_is_the_population(adult_sizes) -> None:
    s1 = int(np.count_nonzero(adult_sizes == 1))
    for model in R.ESTIMATORS:
        est = anon.estimate_population_uniques(adult_sizes, 1.0, model)
        assert est.uniques == s1 and est.population == adult_sizes.sum()


@pytest.mark.parametrize("pi", [0.05, 0.3, 0.8])
def test_zayatz_against_scipy_hypergeometric(adult_sizes, pi) -> None:
    n = int(adult_sizes.sum())
    N = round(n / pi) if abs(n / pi - round(n / pi)) < 1e-9 else n / pi
    js, counts = np.unique(adult_sizes, return_counts=True)
    # P(f = 1 | F = j): a population class of j people, n drawn out of N
    h = np.array([stats.hypergeom.pmf(1, int(round(N)), int(j), n) for j in js])
    p = counts / counts.sum()
    want = counts[js == 1][0] * (p[js == 1][0] * h[js == 1][0] / (p * h).sum()) / pi
    got = anon.estimate_population_uniques(adult_sizes, pi, "zayatz").uniques
    assert got == pytest.approx(want, rel=1e-6)


def test_pitman_fit_is_the_likelihood_maximum_and_its_uniques_formula(adult_sizes) -> None:
    sizes = adult_sizes
    n, u = int(sizes.sum()), len(sizes)

    def negll(x):
        th, a = x
        if not (0 <= a < 1 and th > 0):
            return 1e18
        ll = sum(math.log(th + i * a) for i in range(1, u))
        ll -= sum(math.log(th + i) for i in range(1, n))
        ll += sum(sum(math.log(i - a) for i in range(1, int(j))) for j in sizes)
        return -ll

    th, a = R._pitman_fit(sizes)
    opt = optimize.minimize(negll, x0=[50.0, 0.3], method="Nelder-Mead",
                            options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    assert negll([th, a]) <= opt.fun + 1e-6
    assert th == pytest.approx(opt.x[0], rel=1e-3) and a == pytest.approx(opt.x[1], abs=1e-4)
    # population uniques = N · Π_{m=1}^{N−1} (θ + α + m − 1) / (θ + m)  (a product, for N = n / 0.5)
    N = 2 * n
    m = np.arange(1, N)
    want = N * math.exp(np.log((th + a + m - 1) / (th + m)).sum())
    assert anon.estimate_population_uniques(sizes, 0.5, "pitman").uniques == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("pi", [0.2, 0.5])
def test_snb_solves_its_moment_equations(adult_sizes, pi) -> None:
    sizes = adult_sizes
    u, s1, s2 = len(sizes), int((sizes == 1).sum()), int((sizes == 2).sum())
    w = 1 - pi

    def expected(r, p):  # (classes, uniques, pairs) per population class, by series over F
        F = np.arange(1, 20_000, dtype=float)
        logpf = (stats.nbinom.logpmf(F - 1, r, p))
        pf = np.exp(logpf)
        seen = (pf * (1 - w ** F)).sum()
        one = (pf * F * pi * w ** (F - 1)).sum()
        two = (pf * F * (F - 1) / 2 * pi**2 * w ** (F - 2)).sum()
        return seen, one, two

    def eqs(x):
        r, p = math.exp(x[0]), 1 / (1 + math.exp(-x[1]))
        seen, one, two = expected(r, p)
        return [one / seen - s1 / u, two / seen - s2 / u]

    sol = optimize.fsolve(eqs, x0=[0.0, 0.0], xtol=1e-12)
    r, p = math.exp(sol[0]), 1 / (1 + math.exp(-sol[1]))
    seen, _, _ = expected(r, p)
    want = u / seen * p**r
    assert anon.estimate_population_uniques(sizes, pi, "snb").uniques == pytest.approx(want, rel=1e-4)


def test_dankar_rule_picks_as_documented(adult_sizes) -> None:
    low = anon.estimate_population_uniques(adult_sizes, 0.05, "dankar")
    assert low.model == "pitman"
    assert low.uniques == anon.estimate_population_uniques(adult_sizes, 0.05, "pitman").uniques
    high = anon.estimate_population_uniques(adult_sizes, 0.4, "dankar")
    z = anon.estimate_population_uniques(adult_sizes, 0.4, "zayatz").uniques
    s = anon.estimate_population_uniques(adult_sizes, 0.4, "snb").uniques
    assert high.uniques == min(z, s) and high.model == ("snb" if s < z else "zayatz")


def test_risk_reports_the_estimates() -> None:
    df = pd.read_csv(ADULT / "adult.csv", sep=";")
    qis = ["sex", "age", "race", "marital-status"]
    r = anon.risk(df, qis, sample_fraction=0.1)
    sizes = df.groupby(qis).size().to_numpy()
    assert r["sample_uniques"] == pytest.approx((sizes == 1).sum() / len(df))
    assert r["population_uniqueness_model"] == "pitman"
    assert r["population_uniqueness"] == pytest.approx(r["population_uniques"] / (len(df) / 0.1))
    assert set(r["population_uniqueness_by_model"]) == {"pitman", "zayatz", "snb"}
    assert anon.population_uniqueness(df, qis, 0.1) == r["population_uniqueness"]
    assert "population_uniqueness" not in anon.risk(df, qis)


# ---------------------------------------------------------------------- hierarchical t


def lp_emd(p: np.ndarray, q: np.ndarray, dist: np.ndarray) -> float:
    m = len(p)
    A, b = [], []
    for i in range(m):  # out of i: p_i
        row = np.zeros((m, m)); row[i, :] = 1; A.append(row.ravel()); b.append(p[i])
    for j in range(m):  # into j: q_j
        row = np.zeros((m, m)); row[:, j] = 1; A.append(row.ravel()); b.append(q[j])
    res = optimize.linprog(dist.ravel(), A_eq=np.array(A), b_eq=np.array(b), bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun)


def lca_distance(h: Hierarchy) -> np.ndarray:
    enc = h.encode(pd.Series(list(h.values)))
    gen = np.asarray(enc.gen)
    top = gen.shape[1] - 1
    single_root = len(np.unique(gen[:, -1])) == 1
    height = top if single_root else top + 1
    m = gen.shape[0]
    d = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i != j:
                same = [lvl for lvl in range(gen.shape[1]) if gen[i, lvl] == gen[j, lvl]]
                d[i, j] = (same[0] if same else height) / height
    return d


@pytest.mark.parametrize("hname", ["disease", "zip", "occupation"])
def test_hierarchical_emd_equals_the_transport_programme(hname) -> None:
    h = anon.Hierarchy.from_csv(ADULT / "adult_hierarchy_occupation.csv", sep=";", name="occupation") \
        if hname == "occupation" else H[hname]
    enc = h.encode(pd.Series(list(h.values)))
    m = enc.n_leaves
    rng = np.random.default_rng(12)
    codes = rng.integers(0, m, 300)
    classes = rng.integers(0, 12, 300)
    model = TCloseness(codes=codes, n_values=m, t=0.3, distance="hierarchical", hierarchy=h)
    got = model.distances(classes, 12)
    q = np.bincount(codes, minlength=m) / len(codes)
    dist = lca_distance(h)
    for c in range(12):
        p = np.bincount(codes[classes == c], minlength=m) / max((classes == c).sum(), 1)
        assert got[c] == pytest.approx(lp_emd(p, q, dist), abs=1e-9)


def test_hierarchical_t_closeness_release_checked_by_lp() -> None:
    pop = population(13, 600)
    r = anon.anonymize(pop, QIS, H, k=3, t=0.15, sensitive="disease", t_distance="hierarchical",
                       max_suppression=0.05)
    assert r.models[-1] == "0.15-closeness (hierarchical distance) of disease"
    leaves = list(H["disease"].values)
    dist = lca_distance(H["disease"])
    q = pop["disease"].value_counts().reindex(leaves, fill_value=0).to_numpy() / len(pop)
    for _, g in r.df.astype({c: str for c in QIS}).groupby(QIS):
        p = g["disease"].value_counts().reindex(leaves, fill_value=0).to_numpy() / len(g)
        assert lp_emd(p, q, dist) <= 0.15 + 1e-9
    # the hierarchy lets more through than the equal distance (distances are smaller)
    eq = anon.anonymize(pop, QIS, H, k=3, t=0.15, sensitive="disease", t_distance="equal", max_suppression=0.05)
    assert r.metrics["loss"] <= eq.metrics["loss"] + 1e-12


# ---------------------------------------------------------------------- early refusal


def test_entropy_l_refused_in_milliseconds_on_adult() -> None:
    df = pd.read_csv(ADULT / "adult.csv", sep=";")
    qis = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation"]
    h = anon.load_hierarchies(ADULT, qis)
    t0 = time.perf_counter()
    with pytest.raises(QueryError, match=r"entropy at most 0\.5723 = log\(1\.772\) < log\(2\).*lower l to at most 1\.772 "
                                         r"or allow more suppression"):
        anon.anonymize(df, qis, h, k=5, l=2, sensitive="salary-class", l_kind="entropy", max_suppression=0.04)
    assert time.perf_counter() - t0 < 0.5  # 3.6 s before the check (the whole lattice)
    with pytest.raises(QueryError, match=r"has 2 distinct values, fewer than l = 3; lower l to at most 2"):
        anon.anonymize(df, qis, h, k=5, l=3, sensitive="salary-class", max_suppression=0.04)
    # the heuristic search refuses the same way, at once, not after its time limit
    t0 = time.perf_counter()
    with pytest.raises(QueryError, match=r"found before searching: .*entropy at most 0\.5723"):
        anon.anonymize(df, qis, h, k=5, l=2, sensitive="salary-class", l_kind="entropy",
                       max_suppression=0.04, search="heuristic", time_limit=30)
    assert time.perf_counter() - t0 < 5
    # with every row allowed to go, a (useless) release exists
    r = anon.anonymize(df, qis[:3], h, k=5, l=2, sensitive="salary-class", l_kind="entropy", max_suppression=1.0)
    kept = r.df.groupby(qis[:3])["salary-class"].value_counts(normalize=True)
    entropy = (-kept * np.log(kept)).groupby(level=list(range(3))).sum()
    assert (entropy >= math.log(2) - 1e-12).all() and len(r.df) + r.suppressed == len(df)


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_early_refusal_never_refuses_a_feasible_request(seed) -> None:
    pop = population(seed, 120)
    codes, uniq = pd.factorize(pop["disease"], sort=True)
    enc = [H[c].encode(pop[c]) for c in QIS]
    for l in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0):
        for sup in (0.0, 0.05, 0.3):
            ms = [KAnonymity(2), EntropyLDiversity(codes=codes.astype(np.int64), n_values=len(uniq), l=l)]
            feasible = False
            n, limit = len(pop), math.floor(sup * len(pop) + 1e-9)
            for lv in itertools.product(*[range(e.height + 1) for e in enc]):
                cols = np.stack([e.gen[e.codes, h] for e, h in zip(enc, lv)], axis=1)
                _, ids = np.unique(cols, axis=0, return_inverse=True)
                ids = ids.ravel()
                ok = np.ones(ids.max() + 1, dtype=bool)
                for m in ms:
                    ok &= m.check(ids, ids.max() + 1)
                if (~ok[ids]).sum() <= limit:
                    feasible = True
                    break
            try:
                optimal_full_domain(enc, ms, max_suppression=sup)
                assert feasible
            except QueryError:
                assert not feasible, (l, sup)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize("make,match", [
    (lambda: anon.DeltaPresence(0.6, 0.5, population=np.ones(3, bool)), r"dmin \(0.6\) must be at most dmax \(0.5\)"),
    (lambda: anon.DeltaPresence(0.1, 1.5, population=np.ones(3, bool)), r"dmax must be a number in \[0, 1\], got 1.5"),
    (lambda: anon.DeltaPresence(0.1, 0.5), r"δ-presence needs population="),
    (lambda: anon.DeltaPresence(0.1, 0.5, population=[1, 2]), r"population must be a DataFrame .* or a boolean mask"),
    (lambda: anon.KMap(5), r"either population= .* or sample_fraction="),
    (lambda: anon.KMap(5, sample_fraction=0.0), r"sample_fraction must be a number in \(0, 1\], got 0.0"),
    (lambda: anon.KMap(5, sample_fraction=0.1, estimator="normal"), r"estimator must be one of poisson, zero-truncated-poisson"),
    (lambda: anon.PopulationUniqueness(0.01, model="mu-argus"), r"unknown estimator 'mu-argus'; use one of dankar, pitman, zayatz, snb"),
    (lambda: anon.AverageReidentificationRisk(0), r"max_risk must be a number in \(0, 1\], got 0"),
    (lambda: anon.SampleUniques(-0.1), r"max_share must be a number in \[0, 1\], got -0.1"),
    (lambda: TCloseness(codes=np.zeros(3, np.int64), t=0.2, distance="hierarchical"), r"needs hierarchy="),
    (lambda: TCloseness(codes=np.zeros(3, np.int64), t=0.2, distance="tree"), r"distance must be one of equal, ordered, hierarchical"),
    (lambda: anon.population_uniqueness(population(0, 10), QIS, 1.5), r"sample_fraction must be a number in \(0, 1\]"),
])
def test_bad_model_arguments(make, match) -> None:
    with pytest.raises(QueryError, match=match):
        make()


def test_bad_anonymize_arguments() -> None:
    pop = population(30, 100)
    with pytest.raises(QueryError, match=r"a population mask must be booleans, one per row of the table \(100\)"):
        anon.anonymize(pop, QIS, H, k=2, models=[anon.DeltaPresence(0, 0.5, population=np.ones(5, bool))])
    with pytest.raises(QueryError, match=r"population table lacks the quasi-identifier column\(s\) 'sex'"):
        anon.anonymize(pop, QIS, H, k=2, models=[anon.KMap(3, population=pop.drop(columns="sex"))])
    with pytest.raises(QueryError, match=r"the population must contain the released table"):
        anon.anonymize(pop, QIS, H, k=2, models=[anon.KMap(3, population=pop.iloc[:50])])
    with pytest.raises(QueryError, match=r"t_distance must be one of equal, ordered, hierarchical, got 'tree'"):
        anon.anonymize(pop, QIS, H, k=2, t=0.2, sensitive="disease", t_distance="tree")
    with pytest.raises(QueryError, match=r"t_distance='hierarchical' needs a hierarchy of the sensitive column 'disease'"):
        anon.anonymize(pop, QIS, {c: H[c] for c in QIS}, k=2, t=0.2, sensitive="disease", t_distance="hierarchical")
    with pytest.raises(QueryError, match=r"needs algorithm='optimal'"):
        anon.anonymize(pop, QIS, H, k=2, algorithm="mondrian", models=[anon.SampleUniques(0.0)])
    with pytest.raises(QueryError, match=r"models= takes privacy models"):
        anon.anonymize(pop, QIS, H, k=2, models=["k-map"])


def test_population_models_without_one_mixed_radix_key(monkeypatch) -> None:
    """The re-factorising path (when ∏ labels does not fit in int64) gives the same optimum."""
    from pets.anon import lattice

    pop = population(31, 500)
    mask = subset_mask(31, 500, 0.4)
    ms = lambda: [anon.DeltaPresence(0.1, 0.7, population=mask), anon.KMap(4, population=None, sample_fraction=0.4)]  # noqa: E731
    want = anon.anonymize(pop, QIS, H, k=2, max_suppression=0.05, models=ms())
    monkeypatch.setattr(lattice, "_INT_LIMIT", 8)
    got = anon.anonymize(pop, QIS, H, k=2, max_suppression=0.05, models=ms())
    assert got.transformation == want.transformation and got.suppressed == want.suppressed


# ---------------------------------------------------------------------- pyCANON


def test_releases_under_the_new_models_checked_by_pycanon() -> None:
    """k (and t where pyCANON measures it: equal distance) of releases under the new
    models, by pyCANON on RangeIndex frames (skipped where pyCANON is not installed)."""
    from _crosscheck import anonymity

    pop = population(40, 600)
    mask = subset_mask(40, 600, 0.5)
    runs = [
        anon.anonymize(pop, QIS, H, k=3, max_suppression=0.05,
                       models=[anon.DeltaPresence(0.1, 0.7, population=mask)]),
        anon.anonymize(pop.loc[mask], QIS, H, k=2, max_suppression=0.05,
                       models=[anon.KMap(6, population=pop)]),
        anon.anonymize(pop, QIS, H, k=2, models=[anon.AverageReidentificationRisk(0.05),
                                                  anon.PopulationUniqueness(0.01, sample_fraction=0.2)]),
    ]
    for r in runs:
        df = r.df.astype(str).reset_index(drop=True)
        assert anonymity.k_anonymity(df, QIS) >= 2
    r = anon.anonymize(pop, QIS, H, k=3, t=0.2, sensitive="disease", t_distance="equal", max_suppression=0.05)
    df = r.df.astype({c: str for c in QIS}).reset_index(drop=True)
    assert anonymity.t_closeness(df, QIS, ["disease"]) <= 0.2 + 1e-9


@pytest.mark.parametrize("pi, p, z, s, want", [
    (0.05, 7.0, 9.0, 8.0, ("pitman", 7.0)),
    (0.05, 0.0, 9.0, 8.0, ("zayatz", 9.0)),          # a fit that collapsed to 0: fallback
    (0.05, float("nan"), 9.0, 8.0, ("zayatz", 9.0)),
    (0.5, 7.0, 5.0, 3.0, ("snb", 3.0)),               # the smaller of Zayatz and SNB
    (0.5, 7.0, 3.0, 5.0, ("zayatz", 3.0)),
    (0.5, 7.0, 4.0, 4.0, ("snb", 4.0)),               # a tie: SNB, as ARX
    (0.5, 7.0, 6.0, 0.0, ("zayatz", 6.0)),            # SNB 0 is no estimate
    (0.5, 7.0, 6.0, float("nan"), ("zayatz", 6.0)),
    (0.5, 7.0, float("nan"), 3.0, ("snb", 3.0)),
])
def test_dankar_rule_chooses_as_arx_does(monkeypatch, pi, p, z, s, want) -> None:
    """The decision rule's choice, case by case as ARX's RiskModelPopulationUniqueness
    makes it (the estimators themselves are checked above against independent fits)."""
    risk = importlib.import_module("pets.anon.risk")
    monkeypatch.setattr(risk, "pitman", lambda sizes, f: p)
    monkeypatch.setattr(risk, "zayatz", lambda sizes, f: z)
    monkeypatch.setattr(risk, "snb", lambda sizes, f: s)
    est = risk.estimate_population_uniques([1, 1, 2, 3, 5], pi, "dankar")
    assert (est.model, est.uniques) == want
