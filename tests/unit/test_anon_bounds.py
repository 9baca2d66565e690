"""The search's speed-ups must not change its answers (issue 17, the speed targets).

- the class × value count matrix checks of t-closeness (equal, ordered, hierarchical)
  and entropy l-diversity agree with the models' row-level checks on every node;
- the suppression bound of a node (rows every node below it must suppress, from the
  convexity of EMD / concavity of entropy) is never above the rows a node below it
  really suppresses, over whole small lattices (every pair of comparable nodes);
- the optimum under t-closeness (all three distances) and entropy l-diversity with
  suppression is the brute-force optimum;
- the class-count bound of the class-count objectives (dm*, aecs, arx_aecs) is below
  each node's true value.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from pets.anon import Hierarchy
from pets.anon import metrics as M
from pets.anon.lattice import _Search, optimal_full_domain
from pets.anon.models import EntropyLDiversity, KAnonymity, TCloseness

HIERARCHIES = {
    "age": Hierarchy.from_rows(
        [[v, f"{v // 4 * 4}-{v // 4 * 4 + 3}", f"{v // 8 * 8}-{v // 8 * 8 + 7}", "*"] for v in range(16)], name="age"),
    "zip": Hierarchy.from_rows(
        [[z, z[:3] + "*", z[:2] + "**"] for z in ["1300", "1301", "1302", "1310", "1311", "1400", "1401", "1410"]],
        name="zip"),
    "sex": Hierarchy.from_rows([["M", "*"], ["F", "*"]], name="sex"),
    "job": Hierarchy.from_rows(
        [["nurse", "health", "*"], ["doctor", "health", "*"], ["clerk", "office", "*"],
         ["manager", "office", "*"], ["cook", "service", "*"], ["driver", "service", "*"]], name="job"),
}
DISEASE = Hierarchy.from_rows(
    [["flu", "respiratory", "*"], ["cold", "respiratory", "*"], ["cancer", "chronic", "*"],
     ["hiv", "chronic", "*"], ["ulcer", "digestive", "*"]], name="disease")
QIS = ["age", "zip", "sex", "job"]


def table(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": np.clip(rng.normal(8, 4, n).round(), 0, 15).astype(int),
        "zip": rng.choice(["1300", "1301", "1302", "1310", "1311", "1400", "1401", "1410"], n,
                          p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]),
        "sex": rng.choice(["M", "F"], n, p=[0.6, 0.4]),
        "job": rng.choice(["nurse", "doctor", "clerk", "manager", "cook", "driver"], n),
        "disease": rng.choice(["flu", "cold", "cancer", "hiv", "ulcer"], n, p=[0.45, 0.3, 0.1, 0.1, 0.05]),
        "income": rng.integers(0, 8, n),
    })


def model_sets(df: pd.DataFrame) -> dict[str, list]:
    dc = DISEASE.encode(df["disease"]).codes.astype(np.int64)
    ic = df["income"].to_numpy().astype(np.int64)
    return {
        "t-equal": [KAnonymity(2), TCloseness(codes=dc, t=0.25)],
        "t-ordered": [KAnonymity(2), TCloseness(codes=ic, n_values=8, t=0.15, distance="ordered")],
        "t-hierarchical": [KAnonymity(2), TCloseness(codes=dc, t=0.2, distance="hierarchical", hierarchy=DISEASE)],
        "t-alone": [TCloseness(codes=dc, t=0.15)],
        "entropy-l": [KAnonymity(2), EntropyLDiversity(codes=dc, l=1.6)],
        "entropy-l-alone": [EntropyLDiversity(codes=dc, l=2.0)],
        "t+entropy": [KAnonymity(3), TCloseness(codes=dc, t=0.3), EntropyLDiversity(codes=dc, l=1.4)],
    }


def all_nodes(enc: list) -> list[tuple[int, ...]]:
    return list(itertools.product(*[range(e.gen.shape[1]) for e in enc]))


def row_level(enc: list, models: list, lv: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Classes by numpy unique over the generalised columns; the rows failing the models'
    own row-level checks and their number."""
    cols = np.stack([e.gen[e.codes, h] for e, h in zip(enc, lv)], axis=1)
    _, ids = np.unique(cols, axis=0, return_inverse=True)
    ids = ids.ravel().astype(np.int64)
    nc = int(ids.max()) + 1
    ok = np.ones(nc, dtype=bool)
    for m in models:
        ok &= m.check(ids, nc)
    sup = ~ok[ids]
    return sup, int(sup.sum())


@pytest.mark.parametrize("seed,n,qis", [(0, 150, ["age", "zip", "sex"]), (1, 400, QIS), (7, 90, ["zip", "job", "sex"])])
def test_count_matrix_checks_and_the_suppression_bound(seed, n, qis):
    df = table(seed, n)
    enc = [HIERARCHIES[c].encode(df[c]) for c in qis]
    bound_bit = 0
    for name, models in model_sets(df).items():
        s = _Search(enc, models, 1.0, "loss", None)
        assert s.dense, name  # the models take the count-matrix path
        nodes = all_nodes(enc)
        real, lb = {}, {}
        for lv in nodes:
            ev = s.evaluate(list(lv))
            sup, ns = row_level(enc, models, lv)
            # the count-matrix check suppresses exactly the rows the row-level checks do
            assert ev.s == ns, (name, lv)
            np.testing.assert_array_equal(ev.fail[ev.codes][s.inverse], sup)
            real[lv], lb[lv] = ns, ev.s_lb
            assert ev.s_strong <= ev.s_lb <= ns, (name, lv)
            bound_bit += ev.s_lb > ev.s_strong
        for hi in nodes:  # every node below suppresses at least the bound
            for lo in nodes:
                if all(a <= b for a, b in zip(lo, hi)):
                    assert real[lo] >= lb[hi], (name, hi, lo)
    assert bound_bit > 0  # the bound says more than k-anonymity's rows on these tables


@pytest.mark.parametrize("seed,n,qis", [(2, 300, QIS), (3, 500, ["age", "zip", "job"]), (4, 120, QIS),
                                        (1010, 459, ["age", "zip", "job"]), (1032, 102, ["sex", "zip", "job"])])
@pytest.mark.parametrize("max_suppression", [0.02, 0.06, 0.15])
def test_optimum_with_suppression_is_the_brute_force_optimum(seed, n, qis, max_suppression):
    df = table(seed, n)
    enc = [HIERARCHIES[c].encode(df[c]) for c in qis]
    limit = math.floor(max_suppression * n + 1e-9)
    for name, models in model_sets(df).items():
        feasible = {}
        for lv in all_nodes(enc):
            sup, ns = row_level(enc, models, lv)
            if ns <= limit:
                feasible[lv] = sup
        for metric in ("loss", "precision", "discernibility"):
            if not feasible:
                with pytest.raises(Exception, match="no transformation satisfies"):
                    optimal_full_domain(enc, models, max_suppression, metric=metric)
                continue
            vals = {}
            for lv, sup in feasible.items():
                if metric == "loss":
                    vals[lv] = M.loss(enc, lv, sup)
                elif metric == "precision":
                    vals[lv] = M.precision(enc, lv, sup)
                else:
                    cols = np.stack([e.gen[e.codes, h] for e, h in zip(enc, lv)], axis=1)[~sup]
                    sizes = np.unique(cols, axis=0, return_counts=True)[1] if len(cols) else np.zeros(0)
                    vals[lv] = M.discernibility(sizes, int(sup.sum()), n)
            v = min(vals.values())
            best = min((lv for lv, x in vals.items() if x <= v + 1e-9 * max(1.0, abs(v))),
                       key=lambda lv: (sum(lv), lv))
            res = optimal_full_domain(enc, models, max_suppression, metric=metric)
            what = f"{name}, {metric}, seed {seed}, {max_suppression:.0%}"
            assert res.levels == best, what
            assert res.value == pytest.approx(v, rel=1e-9, abs=1e-12), what
            np.testing.assert_array_equal(res.suppressed, feasible[best])


@pytest.mark.parametrize("seed,n,k", [(0, 300, 2), (1, 500, 3), (5, 800, 5)])
@pytest.mark.parametrize("max_suppression", [0.0, 0.05, 0.2])
def test_class_count_bounds_are_below_the_values(seed, n, k, max_suppression):
    df = table(seed, n)
    enc = [HIERARCHIES[c].encode(df[c]) for c in QIS]
    for metric in ("dm*", "aecs", "arx_aecs", "discernibility"):
        s = _Search(enc, [KAnonymity(k)], max_suppression, metric, None)
        L = np.array(all_nodes(enc), dtype=np.int64)
        lb = np.asarray(s.lower_bounds(L))
        for i, lv in enumerate(L.tolist()):
            ev = s.evaluate(lv)
            if ev.s > s.limit:
                continue
            v = s.value(lv, ev)
            assert lb[i] <= v * (1 + 1e-12) + 1e-12, (metric, lv)


@pytest.mark.parametrize("seed,n,k", [(0, 300, 2), (1, 500, 3), (6, 700, 4)])
@pytest.mark.parametrize("max_suppression", [0.0, 0.05, 0.2])
def test_split_bounds_from_every_node_hold_for_every_node_below(seed, n, k, max_suppression):
    """:meth:`_Search.split_bound` from an evaluated node P bounds the value of every
    feasible node below P (all comparable pairs of small lattices), and the bounds it
    pushes during a search are such bounds (the search's optimum is checked against brute
    force in test_anon_objectives.py)."""
    df = table(seed, n)
    enc = [HIERARCHIES[c].encode(df[c]) for c in QIS]
    nodes = all_nodes(enc)
    models = [KAnonymity(k), EntropyLDiversity(codes=DISEASE.encode(df["disease"]).codes.astype(np.int64), l=1.3)]
    for metric in ("dm*", "aecs", "arx_aecs", "discernibility"):
        s = _Search(enc, models, max_suppression, metric, None)
        s._setup_fans()
        evs = {lv: s.evaluate(list(lv)) for lv in nodes}
        vals = {lv: s.value(list(lv), ev) for lv, ev in evs.items() if ev.s <= s.limit}
        lifted = 0
        for hi in nodes:
            o = s.split_origin(0, list(hi), evs[hi])
            for lo in vals:
                if lo == hi or not all(a <= b for a, b in zip(lo, hi)):
                    continue
                f = np.ones(evs[hi].n_cls)
                for q in range(len(QIS)):
                    if lo[q] < hi[q]:
                        f = f * s.fan[q][hi[q]][lo[q]][s._labels(o, q)]
                b = s.split_bound(evs[hi].sizes, f)
                assert b <= vals[lo] * (1 + 1e-12) + 1e-12, (metric, hi, lo, b, vals[lo])
                lifted += b > float(np.asarray(s.lower_bounds(np.array([lo])))[0]) * (1 + 1e-9)
        if metric in ("dm*", "discernibility"):
            assert lifted > 0, metric  # tighter than the static bound somewhere


@pytest.mark.parametrize("seed,n,k,max_suppression", [(0, 400, 3, 0.1), (3, 900, 5, 0.05)])
def test_classes_refined_from_a_node_above_are_the_node_classes(seed, n, k, max_suppression):
    """The exhaustive search counts a node's classes by splitting the classes of an
    evaluated node above it (_Search.evaluate with ``base``): for every comparable pair
    of a small lattice the same partition of the rows, class sizes and suppressed rows as
    the direct count; with ``quick`` an infeasible node reports its suppressed rows."""
    df = table(seed, n)
    enc = [HIERARCHIES[c].encode(df[c]) for c in QIS]
    nodes = all_nodes(enc)
    s = _Search(enc, [KAnonymity(k)], max_suppression, "aecs", None)
    assert s._simple
    direct = {lv: s.evaluate(list(lv)) for lv in nodes}
    pairs = 0
    for hi in nodes:
        s._b_codes, s._b_n, s._b_node, s._b_slot = [], [], [], {}
        s.keep_base(0, list(hi), direct[hi])
        for lo in nodes:
            if lo == hi or not all(a <= b for a, b in zip(lo, hi)):
                continue
            want = direct[lo]
            for quick in (False, True):
                got = s.evaluate(list(lo), base=0, quick=quick)
                assert got.s == want.s and got.s_strong == want.s_strong, (hi, lo)
                if quick and want.s > s.limit:
                    continue
                assert got.n_cls == want.n_cls, (hi, lo)
                # the same partition of the distinct tuples, numbered differently
                pairs_ = set(zip(got.codes.tolist(), want.codes.tolist()))
                assert len(pairs_) == want.n_cls, (hi, lo)
                assert np.array_equal(np.sort(got.sizes), np.sort(want.sizes)), (hi, lo)
                pairs += 1
    assert pairs > 100


@pytest.mark.parametrize("metric", ["aecs", "dm*", "arx_aecs", "discernibility", "loss"])
def test_search_answer_does_not_depend_on_the_memory_for_refinement(monkeypatch, metric):
    """Whether the search refines classes of kept nodes (and how many it keeps, whether
    it sums keys per group of QIs, whether it keeps the labels of the nodes whose classes
    bound the nodes below) changes neither its answer nor the nodes it evaluates."""
    import pets.anon.lattice as lattice

    df = table(5, 1500)
    enc = [HIERARCHIES[c].encode(df[c]) for c in QIS]

    def run():  # type: ignore[no-untyped-def]
        r = optimal_full_domain(enc, [KAnonymity(4)], 0.06, metric)
        return r.levels, r.value, r.nodes_checked, r.n_suppressed

    want = run()
    nt = len(np.unique(np.stack([e.codes for e in enc], axis=1), axis=0))
    for base_bytes, combos, key_bytes, labels in [(0, 1, 0, 0), (3 * 8 * nt, 256, 16 << 20, 4_000_000),
                                                  (8 * nt, 4, 1, 2000)]:
        monkeypatch.setattr(lattice, "_BASE_BYTES", base_bytes)
        monkeypatch.setattr(lattice, "_GROUP_COMBOS", combos)
        monkeypatch.setattr(lattice, "_GROUP_KEY_BYTES", key_bytes)
        monkeypatch.setattr(lattice, "_ORIGIN_LABELS", labels)
        assert run() == want, (base_bytes, combos, key_bytes, labels)
