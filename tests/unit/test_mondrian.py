"""Strict multidimensional Mondrian (pets.anon.mondrian).

Every partition is checked three ways: recomputed from ``class_ids`` here (sizes,
distinct / entropy l, EMD), by pyCANON (an independent checker) on a released table
built from the class ranges, and against a plain recursive implementation written from
the definition (same median rule, same dimension order), which must give exactly the
same classes. Maximality (no allowed split remains) is checked on final classes.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _crosscheck import anonymity

from pets.anon.models import (
    DistinctLDiversity,
    EntropyLDiversity,
    KAnonymity,
    RecursiveCLDiversity,
    TCloseness,
)
from pets.anon.mondrian import MondrianResult, mondrian
from pets.errors import QueryError

ROOT = Path(__file__).resolve().parents[2]
ADULT = ROOT / "tests" / "data" / "adult-arx" / "adult.csv"
SHARED_ADULT = ROOT.parent / "shared" / "data" / "adult-arx" / "adult.csv"


# ---------------------------------------------------------------- helpers

def _median_candidates(v: np.ndarray) -> list[np.ndarray]:
    """The two median splits of one dimension (left masks), the more balanced first:
    values ≤ the lower median, and values < it."""
    s = np.sort(v)
    med = s[(len(v) - 1) // 2]
    le, lt = v <= med, v < med
    n = len(v)
    if abs(2 * int(lt.sum()) - n) < abs(2 * int(le.sum()) - n):
        return [lt, le]
    return [le, lt]


def _split_allowed(rows: np.ndarray, left: np.ndarray, models) -> bool:  # type: ignore[no-untyped-def]
    nl = int(left.sum())
    if nl == 0 or nl == len(rows):
        return False
    cls = (~left).astype(np.int64)
    return all(bool(np.all(m.check(cls, 2, rows))) for m in models)


def reference_mondrian(X: np.ndarray, models, spans=None) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Plain recursive strict Mondrian from the definition: classes (row arrays) in
    left-first depth-first order."""
    d, n = X.shape
    sp = np.maximum(X.max(axis=1), 1).astype(float) if spans is None else np.asarray(spans, float)
    out: list[np.ndarray] = []

    def rec(rows: np.ndarray) -> None:
        V = X[:, rows]
        lo, hi = V.min(axis=1), V.max(axis=1)
        width = (hi - lo) / sp
        for j in sorted(range(d), key=lambda j: -width[j]):
            if hi[j] == lo[j]:
                continue
            for left in _median_candidates(V[j]):
                if _split_allowed(rows, left, models):
                    rec(rows[left])
                    rec(rows[~left])
                    return
        out.append(rows)

    rec(np.arange(n))
    return out


def released(res: MondrianResult, qis: list[str], extra: dict | None = None) -> pd.DataFrame:  # type: ignore[type-arg]
    """The released table: each row's QI value is its class's "lo-hi" range label."""
    data = {}
    for name, r in zip(qis, res.ranges):
        lab = np.array([f"{a}-{b}" if a != b else str(a) for a, b in r], dtype=object)
        data[name] = lab[res.class_ids]
    data.update(extra or {})
    return pd.DataFrame(data).reset_index(drop=True)


def check_structure(res: MondrianResult, X: np.ndarray) -> None:
    d, n = X.shape
    assert res.class_ids.dtype == np.int64 and res.class_ids.shape == (n,)
    assert set(np.unique(res.class_ids)) == set(range(res.n_classes))
    assert len(res.ranges) == d
    for j in range(d):
        r = res.ranges[j]
        assert r.shape == (res.n_classes, 2) and r.dtype.kind == "i"
        lo, hi = r[res.class_ids, 0], r[res.class_ids, 1]
        assert np.all(lo <= X[j]) and np.all(X[j] <= hi)  # every row's code inside
        # tight: lo and hi are attained in the class
        mins = np.full(res.n_classes, np.iinfo(np.int64).max)
        maxs = np.full(res.n_classes, -1)
        np.minimum.at(mins, res.class_ids, X[j])
        np.maximum.at(maxs, res.class_ids, X[j])
        assert np.array_equal(mins, r[:, 0]) and np.array_equal(maxs, r[:, 1])
    # classes are disjoint boxes: no two classes share their ranges in every QI
    boxes = np.concatenate([r for r in res.ranges], axis=1)
    assert len(np.unique(boxes, axis=0)) == res.n_classes
    assert res.seconds >= 0


def emd(sens: np.ndarray, class_ids: np.ndarray, n_classes: int, m: int, ordered: bool) -> np.ndarray:
    q = np.bincount(sens, minlength=m) / len(sens)
    P = np.zeros((n_classes, m))
    np.add.at(P, (class_ids, sens), 1.0)
    P /= P.sum(axis=1, keepdims=True)
    if ordered:
        return np.abs(np.cumsum(P - q, axis=1)[:, :-1]).sum(axis=1) / (m - 1)
    return 0.5 * np.abs(P - q).sum(axis=1)


def check_maximal(res: MondrianResult, X: np.ndarray, models, n_check: int = 25, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Strictness: for random final classes, every median split on every dimension
    (both tie-breaking variants) would violate a model."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(res.n_classes, size=min(n_check, res.n_classes), replace=False)
    for c in picks:
        rows = np.flatnonzero(res.class_ids == c)
        for j in range(X.shape[0]):
            for left in _median_candidates(X[j, rows]):
                assert not _split_allowed(rows, left, models), (c, j)


def gen_table(n: int, ms: list[int], seed: int) -> np.ndarray:
    """Integer QIs: an age-like bell, a skewed zip-like column, uniform others."""
    rng = np.random.default_rng(seed)
    cols = []
    for j, m in enumerate(ms):
        if j % 3 == 0:
            c = np.clip(np.rint(rng.normal(m / 2, m / 6, n)), 0, m - 1)
        elif j % 3 == 1:
            c = (rng.zipf(1.4, n) - 1) % m
        else:
            c = rng.integers(0, m, n)
        cols.append(c.astype(np.int64))
    return np.stack(cols)


def same_partition(res: MondrianResult, ref: list[np.ndarray]) -> None:
    assert res.n_classes == len(ref)
    for c, rows in enumerate(ref):  # same classes, same (leaf) order
        assert np.array_equal(np.flatnonzero(res.class_ids == c), np.sort(rows))


# ---------------------------------------------------------------- k-anonymity

@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_k_anonymity_matches_reference_and_pycanon(k: int, seed: int) -> None:
    X = gen_table(1500, [30, 20, 8, 4], seed)
    models = [KAnonymity(k)]
    res = mondrian(list(X), models)
    check_structure(res, X)
    sizes = np.bincount(res.class_ids)
    assert sizes.min() >= k
    same_partition(res, reference_mondrian(X, models))
    check_maximal(res, X, models)
    qis = [f"q{j}" for j in range(X.shape[0])]
    df = released(res, qis)
    assert df.groupby(qis).ngroups == res.n_classes
    assert anonymity.k_anonymity(df, qis) >= k


def test_distinct_values_give_classes_of_k_to_2k_minus_1() -> None:
    # no ties: every median split is exact, so classes have k … 2k − 1 rows
    rng = np.random.default_rng(3)
    n = 4000
    X = np.stack([rng.permutation(n), rng.permutation(n)])
    res = mondrian(list(X), [KAnonymity(7)])
    sizes = np.bincount(res.class_ids)
    assert sizes.min() >= 7 and sizes.max() <= 13
    check_structure(res, X)


def test_heavy_ties_use_the_other_side_of_the_median() -> None:
    # 90% of rows at one value: "≤ median" puts everything left; "< median" splits
    n = 1000
    v = np.zeros(n, dtype=np.int64)
    v[:100] = np.arange(100) % 5 + 1
    v[100:] = 3
    X = v[None, :]
    res = mondrian([v], [KAnonymity(5)])
    ref = reference_mondrian(X, [KAnonymity(5)])
    same_partition(res, ref)
    assert res.n_classes > 1
    check_structure(res, X)
    check_maximal(res, X, [KAnonymity(5)], n_check=res.n_classes)


def test_large_code_ranges_use_the_sorting_path() -> None:
    # codes spread over 0 … 10⁶: ranges are far larger than partitions
    rng = np.random.default_rng(5)
    n = 3000
    X = np.stack([rng.integers(0, 1_000_000, n), rng.integers(0, 7, n), rng.integers(0, 50_000, n)])
    models = [KAnonymity(4)]
    res = mondrian(list(X), models)
    check_structure(res, X)
    same_partition(res, reference_mondrian(X, models))
    assert np.bincount(res.class_ids).min() >= 4


def test_spans_change_the_dimension_order() -> None:
    X = gen_table(1200, [40, 40, 40], 7)
    models = [KAnonymity(5)]
    spans = [1.0, 1000.0, 1000.0]  # dimension 0 looks much wider: cut it first
    res = mondrian(list(X), models, spans=spans)
    same_partition(res, reference_mondrian(X, models, spans))
    assert not np.array_equal(res.class_ids, mondrian(list(X), models).class_ids)
    check_structure(res, X)


def test_single_row_values_and_constant_columns() -> None:
    X = np.stack([np.zeros(50, np.int64), np.arange(50) % 10])
    res = mondrian(list(X), [KAnonymity(5)])
    check_structure(res, X)
    assert np.bincount(res.class_ids).min() >= 5
    assert np.all(res.ranges[0] == 0)
    # the whole table, unsplittable, is one class
    res1 = mondrian([np.zeros(12, np.int64)], [KAnonymity(3)])
    assert res1.n_classes == 1 and res1.ranges[0].tolist() == [[0, 0]]


# ---------------------------------------------------------------- l-diversity, t-closeness

def _sensitive(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.choice(m, size=n, p=np.linspace(1, 3, m) / np.linspace(1, 3, m).sum())
    s[:m] = np.arange(m)  # every value present
    return s.astype(np.int64)


@pytest.mark.parametrize("l", [2, 3])
def test_distinct_l_diversity(l: int) -> None:
    n = 1500
    X = gen_table(n, [30, 20, 8], 11)
    s = _sensitive(n, 6, 12)
    models = [KAnonymity(3), DistinctLDiversity(codes=s, n_values=6, l=l, column="s")]
    res = mondrian(list(X), models)
    check_structure(res, X)
    same_partition(res, reference_mondrian(X, models))
    check_maximal(res, X, models)
    per_class = pd.Series(s).groupby(res.class_ids).nunique()
    assert per_class.min() >= l
    assert np.bincount(res.class_ids).min() >= 3
    qis = ["a", "b", "c"]
    df = released(res, qis, {"s": np.array([f"v{x}" for x in s], dtype=object)})
    assert anonymity.k_anonymity(df, qis) >= 3
    assert anonymity.l_diversity(df, qis, ["s"]) >= l


def test_l_diversity_without_k() -> None:
    n = 800
    X = gen_table(n, [25, 25], 13)
    s = _sensitive(n, 4, 14)
    models = [DistinctLDiversity(codes=s, n_values=4, l=2)]
    res = mondrian(list(X), models)
    same_partition(res, reference_mondrian(X, models))
    assert pd.Series(s).groupby(res.class_ids).nunique().min() >= 2


def test_entropy_and_recursive_l_diversity() -> None:
    n = 1200
    X = gen_table(n, [30, 20, 8], 15)
    s = _sensitive(n, 5, 16)
    models = [
        KAnonymity(2),
        EntropyLDiversity(codes=s, n_values=5, l=2.0),
        RecursiveCLDiversity(codes=s, n_values=5, c=3.0, l=2),
    ]
    res = mondrian(list(X), models)
    check_structure(res, X)
    same_partition(res, reference_mondrian(X, models))
    check_maximal(res, X, models)
    for c in range(res.n_classes):
        counts = np.bincount(s[res.class_ids == c])
        counts = np.sort(counts[counts > 0])[::-1]
        p = counts / counts.sum()
        assert -(p * np.log(p)).sum() >= math.log(2) - 1e-9
        assert counts[0] < 3.0 * counts[1:].sum()


@pytest.mark.parametrize("ordered", [False, True])
def test_t_closeness(ordered: bool) -> None:
    n = 1500
    X = gen_table(n, [30, 20, 8], 17)
    m = 6
    s = _sensitive(n, m, 18)
    t = 0.25
    models = [KAnonymity(3), TCloseness(codes=s, n_values=m, t=t, ordered=ordered)]
    res = mondrian(list(X), models)
    check_structure(res, X)
    same_partition(res, reference_mondrian(X, models))
    check_maximal(res, X, models)
    assert emd(s, res.class_ids, res.n_classes, m, ordered).max() <= t + 1e-9
    qis = ["a", "b", "c"]
    sens = s if ordered else np.array([f"v{x}" for x in s], dtype=object)  # numeric → ordered EMD
    df = released(res, qis, {"s": sens})
    assert anonymity.t_closeness(df, qis, ["s"]) <= t + 1e-9
    assert anonymity.k_anonymity(df, qis) >= 3


# ---------------------------------------------------------------- errors

def test_infeasible_raises_query_error() -> None:
    X = gen_table(100, [10, 10], 19)
    with pytest.raises(QueryError, match="whole table does not satisfy.*lower k"):
        mondrian(list(X), [KAnonymity(101)])
    s = np.zeros(100, np.int64)
    s[0] = 1
    with pytest.raises(QueryError, match="whole table does not satisfy"):
        mondrian(list(X), [KAnonymity(2), DistinctLDiversity(codes=s, n_values=2, l=3)])
    # k equal to the table size: one class
    res = mondrian(list(X), [KAnonymity(100)])
    assert res.n_classes == 1 and np.all(res.class_ids == 0)


def test_bad_input() -> None:
    a = np.arange(10)
    with pytest.raises(QueryError, match="unequal lengths"):
        mondrian([a, a[:5]], [KAnonymity(2)])
    with pytest.raises(QueryError, match="negative"):
        mondrian([a - 1], [KAnonymity(2)])
    with pytest.raises(QueryError, match="integer"):
        mondrian([a.astype(float)], [KAnonymity(2)])
    with pytest.raises(QueryError, match="spans"):
        mondrian([a, a], [KAnonymity(2)], spans=[1.0])
    with pytest.raises(QueryError, match="spans"):
        mondrian([a], [KAnonymity(2)], spans=[0.0])
    with pytest.raises(QueryError, match="empty"):
        mondrian([a[:0]], [KAnonymity(2)])
    with pytest.raises(QueryError, match="at least one"):
        mondrian([], [KAnonymity(2)])
    with pytest.raises(QueryError, match="not a privacy model"):
        mondrian([a], [5])  # type: ignore[list-item]


def test_progress_reports_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    X = gen_table(500, [20, 20], 21)
    mondrian(list(X), [KAnonymity(5)], progress=True)
    assert "mondrian depth 0" in capsys.readouterr().err


# ---------------------------------------------------------------- the Adult benchmark

def _adult() -> pd.DataFrame:
    if not ADULT.exists():  # CC BY 4.0 benchmark copy, shared with other tests
        ADULT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_ADULT, ADULT)
    return pd.read_csv(ADULT, sep=";")


def _encode(df: pd.DataFrame, cols: list[str]) -> list[np.ndarray]:
    out = []
    for c in cols:
        if c == "age":  # numeric: ranked
            out.append(pd.factorize(df[c], sort=True)[0].astype(np.int64))
        else:  # categorical: by order of first appearance
            out.append(pd.factorize(df[c])[0].astype(np.int64))
    return out


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return _adult()


@pytest.mark.parametrize("k", [5, 10])
def test_adult_all_nine_qis(adult: pd.DataFrame, k: int) -> None:
    qis = list(adult.columns)
    cols = _encode(adult, qis)
    t0 = time.perf_counter()
    res = mondrian(cols, [KAnonymity(k)])
    assert time.perf_counter() - t0 < 1.0
    X = np.stack(cols)
    check_structure(res, X)
    assert np.bincount(res.class_ids).min() >= k
    # optimal full-domain generalisation gives 24 classes at k = 5 (ARX's Loss optimum)
    assert 300 <= res.n_classes <= len(adult) // k
    check_maximal(res, X, [KAnonymity(k)], n_check=40)
    df = released(res, qis)
    assert df.groupby(qis).ngroups == res.n_classes
    assert anonymity.k_anonymity(df, qis) >= k


def test_adult_l_diversity_of_occupation(adult: pd.DataFrame) -> None:
    qis = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass"]
    cols = _encode(adult, qis)
    occ, _ = pd.factorize(adult["occupation"])
    models = [KAnonymity(5), DistinctLDiversity(codes=occ.astype(np.int64), n_values=int(occ.max()) + 1, l=3)]
    t0 = time.perf_counter()
    res = mondrian(cols, models)
    assert time.perf_counter() - t0 < 1.0
    check_structure(res, np.stack(cols))
    assert pd.Series(occ).groupby(res.class_ids).nunique().min() >= 3
    assert res.n_classes >= 300
    df = released(res, qis, {"occupation": adult["occupation"].to_numpy()})
    assert anonymity.k_anonymity(df, qis) >= 5
    assert anonymity.l_diversity(df, qis, ["occupation"]) >= 3


# ---------------------------------------------------------------- scale

@pytest.mark.slow
@pytest.mark.parametrize("k", [5, 10])
def test_one_million_rows_six_qis_under_ten_seconds(k: int) -> None:
    n = 1_000_000
    X = gen_table(n, [74, 100, 50, 90, 60, 80], 23)
    t0 = time.perf_counter()
    res = mondrian(list(X), [KAnonymity(k)])
    elapsed = time.perf_counter() - t0
    print(f"1M x 6, k={k}: {elapsed:.2f} s, {res.n_classes} classes")
    assert elapsed < 10.0
    sizes = np.bincount(res.class_ids)
    assert sizes.min() >= k and res.n_classes > n // (4 * k)
    for j in range(6):
        r = res.ranges[j]
        assert np.all(r[res.class_ids, 0] <= X[j]) and np.all(X[j] <= r[res.class_ids, 1])
    check_maximal(res, X, [KAnonymity(k)], n_check=20)
