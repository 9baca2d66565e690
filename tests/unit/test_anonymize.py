"""``pets.anon.anonymize`` — the front of the anonymisation module — checked from outside.

- Every released table is checked by pyCANON (an independent checker written by others)
  for k, l (distinct, entropy, recursive) and t (equal and ordered distance), on the
  Adult benchmark table (30,162 rows, 9 quasi-identifiers, its hierarchies) and on
  generated tables, for the optimal search and for Mondrian.
- The four ARX reference optima of ``/work/shared/notes/anonymisation.md`` are found.
- On small generated tables the whole lattice is enumerated with a feasibility check
  written here (plain pandas, no pets model) and ``pets.anon.metrics.loss``: the minimum
  must be what ``anonymize`` returns.
- Bad input fails with a clear :class:`pets.QueryError`.

pyCANON notes (read from its installed source, pycanon 1.3.5):

- it groups with ``DataFrame.groupby`` (rows with a missing quasi-identifier are dropped)
  and indexes classes with ``iloc`` on ``groupby().groups`` labels, so every table is
  passed with ``reset_index(drop=True)``;
- ``entropy_l_diversity`` returns ``int(min over classes of exp(entropy))``: a class
  with exactly l equally frequent values (entropy log l) comes out as l − 1 through
  floating point (exp(log 3) = 2.9999999999999996). We require pyCANON's value ≥ l − 1
  and check entropy ≥ log l exactly (to 1e-12) ourselves;
- ``recursive_c_l_diversity`` returns (c, l) with l the distinct l-diversity, but its c
  sorts the value counts ascending (r_1 is the *least* frequent value), so its c is not
  the c of Machanavajjhala et al. We use its l and check r_1 < c·(r_l + … + r_m) ourselves;
- ``t_closeness`` compares each class with the distribution of the table passed in (the
  released rows), ordered distance for numeric columns, equal distance for text. pets
  compares with the whole input table; the two agree when nothing is suppressed, so the
  pyCANON t checks use ``max_suppression=0`` and suppressed runs are checked here
  against the input's distribution.
"""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _crosscheck import anonymity

import pets
from pets.anon import Hierarchy, anonymize, load_hierarchies
from pets.anon import metrics as M
from pets.errors import QueryError

ADULT_DIR = Path(__file__).resolve().parents[1] / "data" / "adult-arx"
N_ADULT = 30_162


# ------------------------------------------------------------------------- helpers


@functools.cache
def adult() -> pd.DataFrame:
    df = pd.read_csv(ADULT_DIR / "adult.csv", sep=";", dtype=str, keep_default_na=False)
    assert len(df) == N_ADULT
    return df


@functools.cache
def adult_hierarchies() -> dict[str, Hierarchy]:
    h = load_hierarchies(ADULT_DIR, list(adult().columns))
    assert sorted(h) == sorted(adult().columns)
    return h


QIS9 = ["sex", "age", "race", "marital-status", "education", "native-country",
        "workclass", "occupation", "salary-class"]
QIS8 = [c for c in QIS9 if c != "occupation"]


@functools.cache
def adult_run(k: int, max_suppression: float):
    return anonymize(adult(), QIS9, adult_hierarchies(), k=k, max_suppression=max_suppression)


def reset(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)


def class_counts(df: pd.DataFrame, qis: list[str], sens: str) -> pd.Series:
    """Count of each (class, sensitive value)."""
    return df.groupby(qis + [sens], sort=False).size()


def min_entropy(df: pd.DataFrame, qis: list[str], sens: str) -> float:
    cnt = class_counts(df, qis, sens)
    p = cnt / cnt.groupby(level=qis).transform("sum")
    return float((-p * np.log(p)).groupby(level=qis).sum().min())


def recursive_ok(df: pd.DataFrame, qis: list[str], sens: str, c: float, l: int) -> bool:
    """r_1 < c · (r_l + … + r_m) in every class, counts sorted descending."""
    for _, counts in class_counts(df, qis, sens).groupby(level=qis):
        r = np.sort(counts.to_numpy())[::-1]
        if len(r) < l or not r[0] < c * r[l - 1:].sum():
            return False
    return True


def emd(df: pd.DataFrame, qis: list[str], sens: str, reference: pd.Series, ordered: bool) -> float:
    """Largest Earth Mover's Distance between a class's distribution of ``sens`` and
    ``reference`` (a distribution over the sorted values)."""
    values = reference.index
    worst = 0.0
    for _, g in df.groupby(qis, sort=False)[sens]:
        p = g.value_counts(normalize=True).reindex(values, fill_value=0.0).to_numpy()
        d = p - reference.to_numpy()
        if ordered:
            dist = np.abs(np.cumsum(d)[:-1]).sum() / (len(values) - 1)
        else:
            dist = 0.5 * np.abs(d).sum()
        worst = max(worst, float(dist))
    return worst


def distribution(s: pd.Series) -> pd.Series:
    return s.value_counts(normalize=True).sort_index()


# ------------------------------------------------- Adult benchmark, k-anonymity


@pytest.mark.parametrize("max_suppression", [0.0, 0.05])
@pytest.mark.parametrize("k", [2, 5, 10, 50])
def test_adult_release_is_k_anonymous_by_pycanon(k: int, max_suppression: float) -> None:
    df, H = adult(), adult_hierarchies()
    r = adult_run(k, max_suppression)
    out = reset(r.df)
    assert anonymity.k_anonymity(out, QIS9) >= k
    assert list(out.columns) == QIS9
    assert len(out) + r.suppressed == N_ADULT
    assert r.suppressed <= math.floor(max_suppression * N_ADULT)
    assert r.metrics["suppressed"] == r.suppressed
    assert r.classes == out.groupby(QIS9).ngroups == r.metrics["classes"]
    assert r.metrics["min_class_size"] == out.groupby(QIS9).size().min() >= k
    assert r.algorithm == "optimal" and r.models == [f"{k}-anonymity"]
    assert r.nodes_total == 12_960 and 1 <= r.nodes_checked <= 12_960
    assert set(r.transformation) == set(QIS9)

    # the released values are the input generalised to the transformation's levels, and
    # exactly the rows of classes smaller than k are suppressed
    gen = pd.DataFrame({c: H[c].generalize(df[c], r.transformation[c]) for c in QIS9})
    sizes = gen.groupby(QIS9).size()
    expected = sizes[sizes >= k].sort_index()
    got = out.groupby(QIS9).size().sort_index()
    pd.testing.assert_series_equal(got, expected, check_names=False)
    assert int(sizes[sizes < k].sum()) == r.suppressed
    if max_suppression == 0:
        pd.testing.assert_frame_equal(out, gen.astype(object), check_dtype=False)


# ARX 3.9.2's optima under its default Loss metric (notes/anonymisation.md)
REFERENCE = [
    # k, max suppression, [sex, age, race, marital, education, country, workclass, occupation, salary], suppressed, classes, loss
    (2, 0.0, [0, 4, 1, 1, 3, 2, 0, 2, 0], 0, 52, 0.5297),
    (5, 0.0, [0, 4, 1, 1, 3, 2, 2, 1, 0], 0, 24, 0.5732),
    (5, 0.05, [0, 3, 0, 0, 2, 1, 1, 2, 0], 1346, 397, 0.2419),
    (50, 0.05, [0, 4, 0, 1, 3, 1, 1, 2, 0], 1022, 41, 0.4089),
]


@pytest.mark.parametrize("k,max_suppression,levels,suppressed,classes,loss", REFERENCE)
def test_adult_reference_optima(k, max_suppression, levels, suppressed, classes, loss) -> None:
    r = adult_run(k, max_suppression)
    assert [r.transformation[c] for c in QIS9] == levels
    assert r.suppressed == suppressed
    assert r.classes == classes
    assert r.metrics["loss"] == pytest.approx(loss, abs=1e-3)
    # the reported loss is pets.anon.metrics.loss of that transformation
    enc = [adult_hierarchies()[c].encode(adult()[c]) for c in QIS9]
    H = adult_hierarchies()
    gen = pd.DataFrame({c: H[c].generalize(adult()[c], r.transformation[c]) for c in QIS9})
    small = gen.groupby(QIS9)[QIS9[0]].transform("size").to_numpy() < k
    assert r.metrics["loss"] == pytest.approx(M.loss(enc, levels, small), abs=1e-12)


# ------------------------------------- Adult benchmark, l-diversity and t-closeness

L_CASES = [
    # kind, l, c, max_suppression
    ("distinct", 3, None, 0.0),
    ("distinct", 3, None, 0.05),
    ("entropy", 3, None, 0.0),
    ("entropy", 3, None, 0.05),
    ("recursive", 3, 2.0, 0.0),
    ("recursive", 2, 3.0, 0.05),
]


@pytest.mark.parametrize("kind,l,c,max_suppression", L_CASES)
def test_adult_l_diversity_by_pycanon(kind: str, l: int, c: float | None, max_suppression: float) -> None:
    kw = {"c": c} if c is not None else {}
    H = {q: adult_hierarchies()[q] for q in QIS8}
    r = anonymize(adult(), QIS8, H, k=5, l=l, l_kind=kind, sensitive="occupation",
                  max_suppression=max_suppression, **kw)
    out = reset(r.df)
    assert list(out.columns) == QIS8 + ["occupation"]
    assert "occupation" not in r.transformation
    assert len(out) + r.suppressed == N_ADULT
    assert r.suppressed <= math.floor(max_suppression * N_ADULT)
    assert anonymity.k_anonymity(out, QIS8) >= 5
    described = {"distinct": f"distinct {l}-diversity of occupation",
                 "entropy": f"entropy {l}-diversity of occupation",
                 "recursive": f"recursive ({c:g},{l})-diversity of occupation" if c else ""}[kind]
    assert r.models == ["5-anonymity", described]
    # distinct l: pyCANON's l is the smallest number of distinct values in a class
    pyc_l = anonymity.l_diversity(out, QIS8, ["occupation"])
    if kind == "distinct":
        assert pyc_l >= l
    elif kind == "entropy":
        assert anonymity.entropy_l_diversity(out, QIS8, ["occupation"]) >= l - 1  # floors exp(H)
        assert min_entropy(out, QIS8, "occupation") >= math.log(l) - 1e-12
        assert pyc_l >= l  # entropy l implies distinct l
    else:
        _, pyc_rl = anonymity.recursive_c_l_diversity(out, QIS8, ["occupation"])
        assert pyc_rl == pyc_l >= l
        assert recursive_ok(out, QIS8, "occupation", c, l)


def test_adult_t_closeness_equal_distance_by_pycanon() -> None:
    H = {q: adult_hierarchies()[q] for q in QIS8}
    r = anonymize(adult(), QIS8, H, k=5, t=0.2, sensitive="occupation")
    out = reset(r.df)
    assert r.models == ["5-anonymity", "0.2-closeness (equal distance) of occupation"]
    assert anonymity.k_anonymity(out, QIS8) >= 5
    t = anonymity.t_closeness(out, QIS8, ["occupation"])
    assert t <= 0.2 + 1e-12
    assert t == pytest.approx(emd(out, QIS8, "occupation", distribution(adult()["occupation"]), ordered=False),
                              abs=1e-12)


def test_adult_t_closeness_with_suppression_is_against_the_input_distribution() -> None:
    H = {q: adult_hierarchies()[q] for q in QIS8}
    r = anonymize(adult(), QIS8, H, k=5, t=0.15, l=3, sensitive="occupation", max_suppression=0.05)
    out = reset(r.df)
    assert 0 < r.suppressed <= math.floor(0.05 * N_ADULT)
    assert anonymity.k_anonymity(out, QIS8) >= 5
    assert anonymity.l_diversity(out, QIS8, ["occupation"]) >= 3
    assert emd(out, QIS8, "occupation", distribution(adult()["occupation"]), ordered=False) <= 0.15 + 1e-12


def generated_numeric(seed: int = 7, n: int = 1200) -> tuple[pd.DataFrame, dict[str, Hierarchy]]:
    """Age, a 4-digit postcode and an income that depends on age (so classes of similar
    age have similar incomes and the ordered distance matters)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 70, n)
    df = pd.DataFrame({
        "age": age,
        "zip": [f"{z:04d}" for z in rng.integers(1000, 1100, n)],
        "income": (age * 20 + rng.integers(0, 3000, n)) // 500 * 500,
    })
    H = {"age": Hierarchy.intervals(df["age"].unique(), [5, 10, 20], name="age"),
         "zip": Hierarchy.masking(df["zip"].unique(), name="zip")}
    return df, H


@pytest.mark.parametrize("t", [0.1, 0.2, 0.3])
def test_generated_t_closeness_ordered_distance_by_pycanon(t: float) -> None:
    df, H = generated_numeric()
    r = anonymize(df, ["age", "zip"], H, k=4, t=t, sensitive="income")
    out = reset(r.df)
    assert r.models == ["4-anonymity", f"{t:g}-closeness (ordered distance) of income"]
    assert out["income"].dtype.kind == "i"  # released unchanged, still numeric
    assert anonymity.k_anonymity(out, ["age", "zip"]) >= 4
    pyc_t = anonymity.t_closeness(out, ["age", "zip"], ["income"])  # ordered EMD for numbers
    assert pyc_t <= t + 1e-12
    assert pyc_t == pytest.approx(emd(out, ["age", "zip"], "income", distribution(df["income"]), True), abs=1e-12)


def test_generated_ordered_distance_is_less_strict_than_equal_distance() -> None:
    """Equal distance bounds the ordered one, so the ordered search never needs more
    generalisation; on this table it needs strictly less."""
    df, H = generated_numeric()
    ordered = anonymize(df, ["age", "zip"], H, k=4, t=0.15, sensitive="income")
    equal = anonymize(df, ["age", "zip"], H, k=4, t=0.15, sensitive="income", ordered={"income": False})
    assert equal.models[1] == "0.15-closeness (equal distance) of income"
    assert ordered.metrics["loss"] < equal.metrics["loss"]
    out = reset(equal.df)
    assert anonymity.t_closeness(out.astype({"income": str}), ["age", "zip"], ["income"]) <= 0.15 + 1e-12


# ------------------------------------------------------------------------- Mondrian


@pytest.mark.parametrize("k", [5, 50])
def test_adult_mondrian_is_k_anonymous_by_pycanon(k: int) -> None:
    r = anonymize(adult(), QIS9, adult_hierarchies(), k=k, algorithm="mondrian")
    out = reset(r.df)
    assert r.transformation == "mondrian" and r.algorithm == "mondrian"
    assert r.suppressed == 0 and len(out) == N_ADULT
    assert anonymity.k_anonymity(out, QIS9) >= k
    assert r.metrics["min_class_size"] >= k
    # local recoding loses far less than the full-domain optimum
    assert r.metrics["ncp"] < adult_run(k, 0.05).metrics["loss"]
    # categories come out as hierarchy labels, sets or leaves; ages as ranges
    assert out["age"].str.fullmatch(r"\d+(-\d+)?").all()


def test_adult_mondrian_reports_the_classes_of_the_extract() -> None:
    r = anonymize(adult(), QIS9, adult_hierarchies(), k=5, algorithm="mondrian")
    out = reset(r.df)
    assert r.classes == out.groupby(QIS9).ngroups
    assert r.metrics["avg_class_size"] == pytest.approx(len(out) / out.groupby(QIS9).ngroups)


def test_adult_mondrian_l_diversity_by_pycanon() -> None:
    df = adult().iloc[:6000]
    H = {q: adult_hierarchies()[q] for q in QIS8}
    r = anonymize(df, QIS8, H, k=5, l=3, sensitive="occupation", algorithm="mondrian")
    out = reset(r.df)
    assert len(out) == 6000
    assert anonymity.k_anonymity(out, QIS8) >= 5
    assert anonymity.l_diversity(out, QIS8, ["occupation"]) >= 3


@pytest.mark.parametrize("kind,l", [("entropy", 3), ("recursive", 2)])
def test_generated_mondrian_entropy_and_recursive_l(kind: str, l: int) -> None:
    rng = np.random.default_rng(11)
    n = 1500
    df = pd.DataFrame({"a": rng.integers(0, 100, n), "b": rng.normal(50, 10, n).round(1),
                       "s": rng.choice(list("ABCDEFG"), n, p=[.3, .2, .15, .1, .1, .1, .05])})
    r = anonymize(df, ["a", "b"], None, k=5, l=l, l_kind=kind, c=2.0, sensitive="s", algorithm="mondrian")
    out = reset(r.df)
    assert anonymity.k_anonymity(out, ["a", "b"]) >= 5
    assert anonymity.l_diversity(out, ["a", "b"], ["s"]) >= l
    if kind == "entropy":
        assert anonymity.entropy_l_diversity(out, ["a", "b"], ["s"]) >= l - 1
        assert min_entropy(out, ["a", "b"], "s") >= math.log(l) - 1e-12
    else:
        assert recursive_ok(out, ["a", "b"], "s", 2.0, l)
    assert len(out) == n


def test_generated_mondrian_ordered_t_by_pycanon() -> None:
    df, _ = generated_numeric(seed=3, n=1500)
    df = df.assign(zip=df["zip"].astype(int))
    r = anonymize(df, ["age", "zip"], None, k=7, t=0.2, sensitive="income", algorithm="mondrian")
    out = reset(r.df)
    assert anonymity.k_anonymity(out, ["age", "zip"]) >= 7
    assert anonymity.t_closeness(out, ["age", "zip"], ["income"]) <= 0.2 + 1e-12
    # every released range contains the row's original value (rows keep their order)
    ranges = out["age"].astype(str).str.extract(r"^(\d+)(?:-(\d+))?$")
    assert ranges[0].notna().all()
    lo = ranges[0].astype(int)
    hi = ranges[1].fillna(ranges[0]).astype(int)
    assert ((lo <= df["age"]) & (df["age"] <= hi)).all()


# ---------------------------------------------------------- brute force, small tables


def small_table(seed: int, n: int) -> tuple[pd.DataFrame, dict[str, Hierarchy]]:
    rng = np.random.default_rng(seed)
    jobs = ["clerk", "cook", "nurse", "pilot", "smith", "tutor"]
    df = pd.DataFrame({
        "age": rng.integers(20, 36, n),
        "zip": rng.choice(["411", "412", "421", "422", "431"], n),
        "job": rng.choice(jobs, n),
        "sex": rng.choice(["F", "M"], n, p=[0.4, 0.6]),
        "dx": rng.choice(["flu", "cold", "asthma", "ulcer"], n, p=[0.4, 0.3, 0.2, 0.1]),
    })
    H = {
        "age": Hierarchy.intervals(range(20, 36), [2, 4, 8], name="age"),  # height 4
        "zip": Hierarchy.masking(["411", "412", "421", "422", "431"], name="zip"),  # height 3
        "job": Hierarchy.ordered(jobs, [2], name="job"),  # height 2
        "sex": Hierarchy.from_dict({"F": "*", "M": "*"}, name="sex"),  # height 1
    }
    return df, H


def brute_force(df, H, qis, k, max_suppression, *, sens=None, l=None, kind="distinct", c=3.0, t=None):
    """Every node of the lattice: (levels, loss, discernibility) of the feasible ones,
    with a feasibility check written from the definitions (pandas only)."""
    n = len(df)
    limit = math.floor(max_suppression * n)
    enc = [H[q].encode(df[q]) for q in qis]
    glob = df[sens].value_counts(normalize=True) if sens else None
    out = []
    for levels in itertools.product(*(range(H[q].height + 1) for q in qis)):
        gen = pd.DataFrame({q: H[q].generalize(df[q], h) for q, h in zip(qis, levels)})
        cls = gen.groupby(qis, sort=False).ngroup().to_numpy()
        size = np.bincount(cls)
        ok = size >= k
        if sens is not None:
            tab = pd.crosstab(cls, df[sens].to_numpy())  # class × value counts
            counts = tab.to_numpy()
            if l is not None:
                distinct = (counts > 0).sum(axis=1)
                if kind == "distinct":
                    ok &= distinct >= l
                elif kind == "entropy":
                    p = counts / counts.sum(axis=1, keepdims=True)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ent = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
                    ok &= ent >= math.log(l) - 1e-12
                else:
                    r = -np.sort(-counts, axis=1)
                    ok &= (distinct >= l) & (r[:, 0] < c * r[:, l - 1:].sum(axis=1))
            if t is not None:
                p = counts / counts.sum(axis=1, keepdims=True)
                q = glob.reindex(tab.columns).to_numpy()
                ok &= 0.5 * np.abs(p - q).sum(axis=1) <= t + 1e-12
        suppressed = ~ok[cls]
        if suppressed.sum() > limit:
            continue
        kept = size[ok]
        disc = float((kept.astype(float) ** 2).sum() + n * suppressed.sum())
        out.append((levels, M.loss(enc, levels, suppressed), disc, int(suppressed.sum())))
    return out


BRUTE = [
    # seed, rows, qis, k, max_suppression, extra models
    (0, 240, ["age", "zip", "job", "sex"], 3, 0.0, {}),
    (1, 240, ["age", "zip", "job", "sex"], 3, 0.05, {}),
    (2, 400, ["age", "zip", "job"], 5, 0.1, {}),
    (3, 300, ["age", "zip", "job", "sex"], 2, 0.04, {"sens": "dx", "l": 2}),
    (4, 300, ["age", "zip", "job"], 3, 0.08, {"sens": "dx", "l": 2, "kind": "entropy"}),
    (5, 300, ["age", "zip", "sex"], 3, 0.08, {"sens": "dx", "l": 2, "kind": "recursive", "c": 2.0}),
    (6, 300, ["age", "zip", "job"], 2, 0.05, {"sens": "dx", "t": 0.25}),
    (7, 200, ["age", "job", "sex"], 2, 0.1, {"sens": "dx", "t": 0.3}),
]


@pytest.mark.parametrize("seed,n,qis,k,max_suppression,extra", BRUTE)
def test_optimal_matches_brute_force_over_the_whole_lattice(seed, n, qis, k, max_suppression, extra) -> None:
    df, H = small_table(seed, n)
    table = brute_force(df, H, qis, k, max_suppression, **extra)
    nodes = math.prod(H[q].height + 1 for q in qis)
    assert table, "the case must have a feasible node"
    kw = {}
    if "sens" in extra:
        kw = {"sensitive": extra["sens"], "l": extra.get("l"), "t": extra.get("t"),
              "l_kind": extra.get("kind", "distinct"), "c": extra.get("c", 3.0)}
    for metric, col in (("loss", 1), ("discernibility", 2)):
        best = min(row[col] for row in table)
        r = anonymize(df, qis, H, k=k, max_suppression=max_suppression, metric=metric, **kw)
        levels = tuple(r.transformation[q] for q in qis)
        mine = {row[0]: row for row in table}
        assert levels in mine, f"{metric}: {levels} is not feasible by the brute-force check"
        assert r.nodes_total == nodes
        assert r.metrics[metric] == pytest.approx(best, rel=1e-9, abs=1e-12), metric
        assert mine[levels][col] == pytest.approx(best, rel=1e-9, abs=1e-12), metric
        assert r.suppressed == mine[levels][3]
        assert len(r.df) + r.suppressed == n
        assert anonymity.k_anonymity(reset(r.df), qis) >= k


def test_infeasible_models_are_refused_like_the_brute_force_says() -> None:
    """dx has entropy exp(H) ≈ 3.6 in the whole table: no class can reach 3.7."""
    df, H = small_table(8, 60)
    assert brute_force(df, H, ["age", "zip"], 2, 0.0, sens="dx", l=3.7, kind="entropy") == []
    with pytest.raises(QueryError, match=r"no transformation satisfies 2-anonymity, entropy 3.7-diversity of dx "
                                         r"with at most 0 of 60 rows suppressed"):
        anonymize(df, ["age", "zip"], H, k=2, l=3.7, l_kind="entropy", sensitive="dx")


# ---------------------------------------------------------------------- bad input


def _bad(**over):
    df, H = small_table(0, 100)
    args = {"df": df, "quasi_identifiers": ["age", "zip"], "hierarchies": H, "k": 3}
    args.update(over)
    return args


def _with_value(col: str, value: str) -> pd.DataFrame:
    df = small_table(0, 100)[0].astype({"age": object})
    df.loc[17, col] = value
    return df


BAD = [
    ("unknown column", _bad(quasi_identifiers=["age", "postcode"]),
     r"unknown column 'postcode'; the table has: age, zip, job, sex, dx"),
    ("unknown sensitive column", _bad(sensitive="diagnosis", l=2),
     r"unknown column 'diagnosis'"),
    ("value missing from its hierarchy", _bad(df=_with_value("zip", "999")),
     r"value '999' of column 'zip' is not in its hierarchy; add it"),
    ("k < 2", _bad(k=1), r"k must be an integer >= 2, got 1"),
    ("k not an integer", _bad(k=2.5), r"k must be an integer >= 2, got 2.5"),
    ("k larger than the table", _bad(k=101),
     r"k=101 is larger than the table \(100 rows\); no extract can be 101-anonymous"),
    ("sensitive also a QI", _bad(sensitive="zip", l=2),
     r"column 'zip' is both a quasi-identifier and sensitive"),
    ("l without sensitive", _bad(l=2), r"l-diversity and t-closeness need sensitive=<column>"),
    ("t without sensitive", _bad(t=0.2), r"l-diversity and t-closeness need sensitive=<column>"),
    ("max_suppression above 1", _bad(max_suppression=1.5), r"max_suppression must be a share in \[0, 1\], got 1.5"),
    ("max_suppression negative", _bad(max_suppression=-0.01),
     r"max_suppression must be a share in \[0, 1\], got -0.01"),
    ("max_suppression percent", _bad(max_suppression=5), r"max_suppression must be a share in \[0, 1\], got 5"),
    ("unknown algorithm", _bad(algorithm="flash"),
     r"algorithm must be one of optimal, mondrian, got 'flash'"),
    ("optimal without a hierarchy", _bad(hierarchies={"age": small_table(0, 1)[1]["age"]}),
     r"quasi-identifier 'zip' has no hierarchy; give one .* or use algorithm='mondrian'"),
    ("unknown metric", _bad(metric="ambiguity"), r"unknown metric 'ambiguity'"),
    ("unknown l kind", _bad(sensitive="dx", l=2, l_kind="shannon"),
     r"l_kind must be one of distinct, entropy, recursive, got 'shannon'"),
    ("t out of range", _bad(sensitive="dx", t=1.5), r"t must be a number in \[0, 1\], got 1.5"),
    ("no quasi-identifier", _bad(quasi_identifiers=[]), r"give at least one quasi-identifier"),
    ("not a DataFrame", _bad(df=[[1, 2]]), r"anonymize\(\) takes a pandas DataFrame, got list"),
]


@pytest.mark.parametrize("what,args,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_error(what: str, args: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        anonymize(**args)


def test_bad_input_errors_are_pets_errors() -> None:
    with pytest.raises(pets.PetsError):
        anonymize(**_bad(k=1))


def test_missing_quasi_identifier_value_is_named_without_the_data() -> None:
    df = small_table(0, 100)[0].astype({"age": object})
    df.loc[3, "age"] = None
    with pytest.raises(QueryError, match=r"column 'age' has 1 missing value \(None/NaN\); replace them"):
        anonymize(df, ["age", "zip"], small_table(0, 1)[1], k=3)
