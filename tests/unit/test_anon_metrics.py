"""Risk and utility metrics (pets.anon.metrics) on hand-computed examples, the Adult
reference figures, and 1M rows."""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pets.anon import metrics as M
from pets.errors import QueryError

ADULT = Path(__file__).resolve().parents[1] / "data" / "adult-arx"


@pytest.fixture
def small():
    # classes: (x, 1) × 3, (y, 2) × 2, (z, 3) × 1
    return pd.DataFrame({"a": ["x", "x", "y", "x", "y", "z"], "b": [1, 1, 2, 1, 2, 3], "s": list("pqrstu")})


# ---------------------------------------------------------------------------------------
# classes and risk


def test_classes_and_sizes(small):
    ids, k = M.classes(small, ["a", "b"])
    assert k == 3
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [0, 0, 1, 0, 1, 2])  # order of first appearance
    np.testing.assert_array_equal(M.class_sizes(small, ["a", "b"]), [3, 2, 1])
    np.testing.assert_array_equal(M.class_sizes(small, "a"), [3, 2, 1])
    np.testing.assert_array_equal(M.class_sizes(small, ["s"]), [1] * 6)


def test_missing_values_are_a_value():
    df = pd.DataFrame({"a": ["x", None, np.nan, "x"], "b": [1.0, np.nan, np.nan, 1.0]})
    ids, k = M.classes(df, ["a", "b"])
    assert k == 2 and ids[1] == ids[2] and ids[0] == ids[3] != ids[1]
    ids1, k1 = M.classes(df, ["b"])
    assert k1 == 2 and ids1[1] == ids1[2]


def test_prosecutor_and_marketer_risk(small):
    r = M.risk(small, ["a", "b"])
    assert r["records"] == 6 and r["classes"] == 3
    assert r["prosecutor_highest"] == 1.0
    assert r["prosecutor_average"] == pytest.approx(0.5)  # mean of 1/3,1/3,1/3,1/2,1/2,1
    assert r["records_at_risk"] == 1.0  # every 1/f > 0.2
    assert r["highest_risk_records"] == pytest.approx(1 / 6)
    assert r["marketer"] == pytest.approx(0.5)
    # without a population the journalist risk is the prosecutor risk
    assert r["journalist_highest"] == 1.0 and r["journalist_average"] == pytest.approx(0.5)
    assert r["journalist_from_population"] is False
    r4 = M.risk(small, ["a", "b"], threshold=0.4)
    assert r4["records_at_risk"] == pytest.approx(3 / 6)  # 1/2 and 1/1 exceed 0.4, 1/3 does not
    assert r["min_class_size"] == 1 and r["avg_class_size"] == 2.0


def test_size_distribution(small):
    dist = M.risk(small, ["a", "b"])["size_distribution"]
    assert list(dist["size"]) == ["1", "2", "3-4", "5-9", "10-19", "20+"]
    assert list(dist["classes"]) == [1, 1, 1, 0, 0, 0]
    assert list(dist["records"]) == [1, 2, 3, 0, 0, 0]
    assert dist["share_records"].sum() == pytest.approx(1.0)
    d2 = M.size_distribution(np.array([1, 4, 5, 9, 10, 19, 20, 1000]))
    assert list(d2["classes"]) == [1, 0, 1, 2, 2, 2]
    assert list(d2["records"]) == [1, 0, 4, 14, 29, 1020]


def test_journalist_risk_with_population(small):
    pop = pd.concat(
        [
            pd.DataFrame({"a": ["x"] * 6, "b": [1] * 6}),
            pd.DataFrame({"a": ["y"] * 4, "b": [2] * 4}),
            pd.DataFrame({"a": ["z"] * 2, "b": [3] * 2}),
            pd.DataFrame({"a": ["w"] * 5, "b": [9] * 5}),
        ]
    )
    r = M.risk(small, ["a", "b"], population=pop)
    assert r["journalist_from_population"] is True
    assert r["journalist_highest"] == pytest.approx(1 / 2)
    assert r["journalist_average"] == pytest.approx((3 / 6 + 2 / 4 + 1 / 2) / 6)
    assert r["marketer"] == pytest.approx((3 / 6 + 2 / 4 + 1 / 2) / 6)
    assert r["prosecutor_highest"] == 1.0  # unchanged
    # the same from per-class population sizes (class order of classes())
    r2 = M.risk(small, ["a", "b"], population=np.array([6, 4, 2]))
    assert r2["journalist_average"] == pytest.approx(r["journalist_average"])
    assert r2["marketer"] == pytest.approx(r["marketer"])


def test_population_must_contain_the_sample(small):
    with pytest.raises(QueryError, match="population does not contain the sample"):
        M.risk(small, ["a", "b"], population=pd.DataFrame({"a": ["x"] * 5, "b": [1] * 5}))
    with pytest.raises(QueryError, match="population does not contain the sample"):
        M.risk(small, ["a", "b"], population=np.array([6, 1, 2]))
    with pytest.raises(QueryError, match="one population size per class"):
        M.risk(small, ["a", "b"], population=np.array([6, 4]))


def test_bad_input(small):
    with pytest.raises(QueryError, match="unknown quasi-identifier column 'nope'"):
        M.risk(small, ["a", "nope"])
    with pytest.raises(QueryError, match="at least one"):
        M.classes(small, [])
    with pytest.raises(QueryError, match="threshold"):
        M.risk(small, ["a"], threshold=2)
    with pytest.raises(QueryError, match="empty"):
        M.risk(small.iloc[:0], ["a"])
    with pytest.raises(QueryError, match="DataFrame"):
        M.classes([1, 2], ["a"])


def test_summary_before_after(small):
    before = M.summary(small, ["a", "b"])
    after = M.summary(small.assign(b="*"), ["a", "b"])
    table = pd.DataFrame({"before": before, "after": after})
    assert table.loc["classes", "before"] == 3 and table.loc["classes", "after"] == 3
    assert table.loc["classes_of_size_1", "before"] == 1
    assert table.loc["records_in_size_3-4", "before"] == 3
    coarse = M.summary(small.assign(a="*", b="*"), ["a", "b"])
    assert coarse["prosecutor_highest"] == pytest.approx(1 / 6)
    assert coarse["records_at_risk"] == 0.0
    assert all(isinstance(v, float) for v in before.values())


# ---------------------------------------------------------------------------------------
# utility metrics


def _enc(values, leaves, levels, codes_of=None):
    """An EncodedHierarchy-like object: leaves, and for each level a label per leaf."""
    idx = {v: i for i, v in enumerate(leaves)}
    gen = np.zeros((len(leaves), len(levels) + 1), dtype=np.int32)
    gen[:, 0] = np.arange(len(leaves))
    labels = [list(leaves)]
    shares = [np.full(len(leaves), 1 / len(leaves))]
    for h, lab in enumerate(levels, start=1):
        uniq = list(dict.fromkeys(lab))
        gen[:, h] = [uniq.index(x) for x in lab]
        labels.append(uniq)
        shares.append(np.bincount(gen[:, h], minlength=len(uniq)) / len(leaves))
    return SimpleNamespace(
        name=None, codes=np.array([idx[v] for v in values], dtype=np.int32), gen=gen,
        labels=labels, leaf_share=shares, order=None,
    )


@pytest.fixture
def encoded():
    letters = _enc(["a", "a", "b", "c"], ["a", "b", "c", "d"], [["ab", "ab", "cd", "cd"], ["*"] * 4])
    sex = _enc(["M", "F", "M", "M"], ["M", "F"], [["*", "*"]])
    return [letters, sex]


def test_loss_hand_computed(encoded):
    # letters at level 1: every row's label covers 2 of 4 leaves: tot = 4·0.5 = 2, n/D = 1
    # → (2 − 1)/(4 − 1) = 1/3; sex at level 0: tot = 4·0.5 = n/D → 0
    np.testing.assert_allclose(M.loss_per_qi(encoded, [1, 0]), [1 / 3, 0.0])
    assert M.loss(encoded, [1, 0]) == pytest.approx(math.sqrt(4 / 3) - 1)
    # row 3 suppressed: letters tot = 3·0.5 + 1 → 0.5; sex tot = 3·0.5 + 1 → (2.5 − 2)/2
    sup = np.array([False, False, False, True])
    np.testing.assert_allclose(M.loss_per_qi(encoded, [1, 0], sup), [0.5, 0.25])
    assert M.loss(encoded, [1, 0], sup) == pytest.approx(math.sqrt(1.5 * 1.25) - 1)
    assert M.loss(encoded, [0, 0]) == 0.0
    assert M.loss(encoded, [2, 1]) == pytest.approx(1.0)
    assert M.loss(encoded, [0, 0], np.ones(4, bool)) == pytest.approx(1.0)


def test_precision_hand_computed(encoded):
    assert M.precision(encoded, [1, 0]) == pytest.approx((1 / 2 + 0) / 2)
    sup = np.array([False, False, False, True])
    assert M.precision(encoded, [1, 0], sup) == pytest.approx(((3 * 0.5 + 1) / 4 + (0 + 1) / 4) / 2)
    assert M.precision(encoded, [2, 1]) == 1.0


def test_transformation_errors(encoded):
    with pytest.raises(QueryError, match="levels for"):
        M.loss(encoded, [1])
    with pytest.raises(QueryError, match="outside"):
        M.loss(encoded, [3, 0])
    with pytest.raises(QueryError, match="bool array of 4 rows"):
        M.loss(encoded, [1, 0], np.zeros(3, bool))


def test_discernibility_and_aecs():
    assert M.discernibility([3, 2], 1, 6) == 9 + 4 + 6
    assert M.discernibility(np.array([], dtype=np.int64), 6, 6) == 36
    assert M.aecs(5, 2, 2) == 1.25
    assert M.aecs(6, 6, 1) == 1.0
    assert M.aecs(0, 0, 2) == math.inf


@pytest.fixture(scope="module")
def adult():
    if not (ADULT / "adult.csv").exists():
        pytest.skip("tests/data/adult-arx is missing")
    from pets.anon.hierarchy import Hierarchy

    qis = ["sex", "age", "race", "marital-status", "education", "native-country",
           "workclass", "occupation", "salary-class"]
    df = pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str)
    enc = [Hierarchy.from_csv(ADULT / f"adult_hierarchy_{c}.csv").encode(df[c]) for c in qis]
    return df, enc


def test_loss_matches_arx_on_adult(adult):
    """ARX 3.9.2's Loss of its optima on the benchmark (notes/anonymisation.md)."""
    _, enc = adult
    assert M.loss(enc, [0, 4, 1, 1, 3, 2, 0, 2, 0]) == pytest.approx(0.5297, abs=1e-4)
    assert M.loss(enc, [0, 4, 1, 1, 3, 2, 2, 1, 0]) == pytest.approx(0.5732, abs=1e-4)
    for levels, k, sup_n, n_cls, value in [
        ([0, 3, 0, 0, 2, 1, 1, 2, 0], 5, 1346, 397, 0.2419),
        ([0, 4, 0, 1, 3, 1, 1, 2, 0], 50, 1022, 41, 0.4089),
    ]:
        gen = pd.DataFrame({j: e.gen[e.codes, h] for j, (e, h) in enumerate(zip(enc, levels))})
        ids, _ = M.classes(gen, list(gen.columns))
        sizes = np.bincount(ids)
        sup = sizes[ids] < k
        assert sup.sum() == sup_n and (sizes >= k).sum() == n_cls
        assert M.loss(enc, levels, sup) == pytest.approx(value, abs=1e-4)


# ---------------------------------------------------------------------------------------
# vectorised: 1M rows


def test_one_million_rows_fast():
    rng = np.random.default_rng(0)
    n = 1_000_000
    df = pd.DataFrame(
        {
            "age": rng.integers(17, 91, n),
            "sex": rng.choice(["M", "F"], n),
            "zip": rng.integers(0, 300, n).astype(str),
            "edu": rng.choice(["a", "b", "c", "d", "e"], n),
        }
    )
    t0 = time.perf_counter()
    s = M.summary(df, ["age", "sex", "zip", "edu"])
    elapsed = time.perf_counter() - t0
    assert s["records"] == n
    assert elapsed < 2.0, f"summary of 1M rows took {elapsed:.2f} s"
    leaves = [str(a) for a in range(100)]
    enc = _enc([], leaves, [[str(int(a) // 10) for a in leaves], ["*"] * 100])
    enc.codes = rng.integers(0, 100, n).astype(np.int32)
    t0 = time.perf_counter()
    v = M.loss([enc, enc], [1, 0], rng.random(n) < 0.05)
    assert time.perf_counter() - t0 < 1.0
    assert 0 < v < 1
