"""ARX's metrics as search objectives (pets.anon.metrics, pets.anon.lattice).

Every metric is recomputed here from its definition, cell by cell with pandas (not with
pets' cost tables), on every node of small lattices; the search's optimum under each
metric, gs-factor and aggregation must be the brute-force optimum (ties: lower total
height, then lexicographically smaller levels) — which also checks that each metric's
pruning bounds are valid.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from pets import anon
from pets.anon import metrics as M
from pets.anon.lattice import optimal_full_domain
from pets.anon.models import DistinctLDiversity, EntropyLDiversity, KAnonymity
from pets.errors import QueryError

HIER_ROWS = {
    "age": [[v, f"{v // 4 * 4}-{v // 4 * 4 + 3}", f"{v // 8 * 8}-{v // 8 * 8 + 7}", "*"] for v in range(16)],
    "zip": [[z, z[:3] + "*", z[:2] + "**"] for z in ["1300", "1301", "1302", "1310", "1311", "1400", "1401", "1410"]],
    "sex": [["M", "*"], ["F", "*"]],
    "job": [["nurse", "health", "*"], ["doctor", "health", "*"], ["clerk", "office", "*"],
            ["manager", "office", "*"], ["cook", "service", "*"], ["driver", "service", "*"]],
}
H = {c: anon.Hierarchy.from_rows(r, name=c) for c, r in HIER_ROWS.items()}
QIS = ["age", "zip", "sex", "job"]


def table(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": np.clip(rng.normal(8, 4, n).round(), 0, 15).astype(int),
        "zip": rng.choice([r[0] for r in HIER_ROWS["zip"]], n, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]),
        "sex": rng.choice(["M", "F"], n, p=[0.6, 0.4]),
        "job": rng.choice([r[0] for r in HIER_ROWS["job"]], n),
        "disease": rng.choice(["flu", "cold", "cancer", "hiv", "ulcer"], n, p=[0.45, 0.3, 0.1, 0.1, 0.05]),
    })


# -- the definitions, cell by cell --------------------------------------------------------


_GEN_CACHE: dict = {}


def generalised(df: pd.DataFrame, col: str, h: int) -> pd.Series:
    key = (id(df), col, h)
    if key not in _GEN_CACHE:
        m = {str(r[0]): str(r[h]) for r in HIER_ROWS[col]}
        _GEN_CACHE[key] = (df, df[col].astype(str).map(m))
    return _GEN_CACHE[key][1]


def weights(gs: float) -> tuple[float, float]:
    return min(1.0, 2 * gs), min(1.0, 2 * (1 - gs))


def per_qi_by_definition(df, lv, sup, metric, gs):
    n = len(df)
    g, s = weights(gs)
    out = []
    for col, h in zip(QIS, lv):
        rows = HIER_ROWS[col]
        D, top = len(rows), len(rows[0]) - 1
        lab = generalised(df, col, h)
        if metric == "loss":
            leaves_under = {r[h]: sum(1 for q in rows if q[h] == r[h]) for r in rows}
            share = lab.map(leaves_under) / D
            tot = g * (share[~sup] - 1 / D).sum() + s * (1 - 1 / D) * sup.sum()
            out.append(tot / (n - n / D))
        elif metric == "entropy":
            F_h = lab.map(lab.value_counts())
            orig = df[col].astype(str)
            F_0 = orig.map(orig.value_counts())
            kept = np.log2(F_h / F_0)[~sup].sum()
            supp = np.log2(n / F_0)[sup].sum()
            out.append(g * kept + s * supp)
        elif metric == "precision":
            out.append((g * (h / top) * (~sup).sum() + s * sup.sum()) / n)
        elif metric == "monotonic_precision":
            out.append(h / top)
        elif metric == "height":
            out.append(float(h))
    return np.array(out)


def aggregate_by_definition(v, how):
    if how == "geometric":
        return math.prod(x + 1 for x in v) ** (1 / len(v)) - 1
    if how == "arithmetic":
        return sum(v) / len(v)
    if how == "sum":
        return sum(v)
    if how == "max":
        return max(v)
    return tuple(sorted((round(x, 10) for x in v), reverse=True))  # rank


def nodes(df, models, max_suppression):
    """Every node: its classes (by the generalised labels) and suppressed rows, or None."""
    n = len(df)
    limit = math.floor(max_suppression * n + 1e-9)
    out = {}
    for lv in itertools.product(*[range(len(HIER_ROWS[c][0])) for c in QIS]):
        g = pd.DataFrame({c: generalised(df, c, h) for c, h in zip(QIS, lv)})
        ids = g.groupby(QIS, sort=False).ngroup().to_numpy().astype(np.int64)
        nc = int(ids.max()) + 1
        ok = np.ones(nc, dtype=bool)
        for m in models:
            ok &= m.check(ids, nc)
        sup = ~ok[ids]
        out[lv] = None if sup.sum() > limit else (ids, sup)
    return out


_PER_QI_CACHE: dict = {}


def value_by_definition(df, lv, ids, sup, metric, gs, agg, k):
    n = len(df)
    if metric in M.PER_QI_METRICS:
        key = (id(df), lv, metric, gs, sup.tobytes())
        if key not in _PER_QI_CACHE:
            _PER_QI_CACHE[key] = per_qi_by_definition(df, lv, pd.Series(sup), metric, gs)
        return aggregate_by_definition(_PER_QI_CACHE[key], agg)
    all_sizes = np.bincount(ids)
    kept = np.bincount(ids[~sup], minlength=len(all_sizes))
    kept = kept[kept > 0]
    ns = int(sup.sum())
    if metric == "discernibility":
        return float((kept.astype(float) ** 2).sum() + n * ns)
    if metric == "dm*":
        return float((all_sizes.astype(float) ** 2).sum())
    if metric == "aecs":
        return (n - ns) / len(kept) / k if len(kept) else math.inf
    g, s = weights(gs)
    denom = s * len(kept) + (g if ns else 0)
    return n / denom if denom else math.inf


def close(a, b):
    if isinstance(a, tuple):
        return all(close(x, y) for x, y in zip(a, b))
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def brute_optimum(df, table_nodes, metric, gs, agg, k):
    best = None
    for lv, node in table_nodes.items():
        if node is None:
            continue
        v = value_by_definition(df, lv, *node, metric, gs, agg, k)
        key = (sum(lv), lv)
        if best is None or (not close(v, best[0]) and v < best[0]) or (close(v, best[0]) and key < best[1]):
            best = (v, key)
    return best


CASES = [(m, a) for m in M.PER_QI_METRICS for a in M.AGGREGATIONS] + [
    (m, None) for m in ("discernibility", "dm*", "aecs", "arx_aecs")]


@pytest.fixture(scope="module")
def lattices():
    out = {}
    for seed in (1, 2):
        df = table(seed)
        dc, dn = pd.factorize(df["disease"], sort=True)
        dc = dc.astype(np.int64)
        for name, models in {
            "k3": [KAnonymity(3)],
            "k4+l2": [KAnonymity(4), DistinctLDiversity(codes=dc, n_values=len(dn), l=2)],
            "k2+entropy-l": [KAnonymity(2), EntropyLDiversity(codes=dc, n_values=len(dn), l=1.5)],
        }.items():
            for supp in (0.0, 0.08):
                out[(seed, name, supp)] = (df, models, supp, nodes(df, models, supp))
    return out


@pytest.mark.parametrize("metric,agg", CASES)
def test_search_optimum_is_the_brute_force_optimum(lattices, metric, agg):
    for (seed, name, supp), (df, models, _s, table_nodes) in lattices.items():
        k = max(m.k for m in models if isinstance(m, KAnonymity))
        enc = [H[c].encode(df[c]) for c in QIS]
        for gs in (0.5, 0.2, 0.9):
            if metric in ("discernibility", "dm*", "aecs") and gs != 0.5:
                continue  # these ignore the gs-factor
            want = brute_optimum(df, table_nodes, metric, gs, agg, k)
            res = optimal_full_domain(enc, models, supp, metric=metric, gs_factor=gs, aggregation=agg)
            where = f"{metric}/{agg} gs={gs} seed={seed} {name} supp={supp}"
            assert res.levels == want[1][1], where
            got = value_by_definition(df, res.levels, *table_nodes[res.levels], metric, gs, agg, k)
            assert close(got, want[0]), where
            want_scalar = max(want[0]) if isinstance(want[0], tuple) else want[0]
            assert close(res.value, want_scalar), where


def test_metric_functions_match_the_definitions():
    df = table(3)
    enc = [H[c].encode(df[c]) for c in QIS]
    rng = np.random.default_rng(0)
    sup = rng.random(len(df)) < 0.1
    lv = (2, 1, 1, 1)
    for metric in M.PER_QI_METRICS:
        for gs in (0.5, 0.3, 1.0):
            want = per_qi_by_definition(df, lv, pd.Series(sup), metric, gs)
            assert np.allclose(M.per_qi(enc, lv, sup, metric, gs), want, rtol=1e-12, atol=1e-12)
    # the historical loss / precision are the gs = 0.5 forms
    assert M.loss(enc, lv, sup) == pytest.approx(aggregate_by_definition(per_qi_by_definition(df, lv, pd.Series(sup), "loss", 0.5), "geometric"))
    assert M.precision(enc, lv, sup) == pytest.approx(np.mean(per_qi_by_definition(df, lv, pd.Series(sup), "precision", 0.5)))
    assert M.entropy(enc, lv, sup) == pytest.approx(per_qi_by_definition(df, lv, pd.Series(sup), "entropy", 0.5).sum())
    assert M.height(enc, lv) == 5.0
    assert M.monotonic_precision(enc, lv) == pytest.approx(np.mean([2 / 3, 1 / 2, 1, 1 / 2]))
    assert M.dm_star([3, 2, 1]) == 14.0
    assert M.arx_aecs(10, 3, True) == 2.5 and M.arx_aecs(10, 5, False) == 2.0
    assert M.arx_aecs(10, 3, True, gs_factor=1.0) == 10.0  # suppression free: only its class counts
    assert M.gs_weights(0.5) == (1.0, 1.0) and M.gs_weights(0.0) == (0.0, 1.0) and M.gs_weights(1.0) == (1.0, 0.0)
    assert M.aggregate([0.5, 1.0], "geometric") == pytest.approx(math.sqrt(1.5 * 2) - 1)
    assert M.rank_key([0.1, 0.3, 0.2]) == (0.3, 0.2, 0.1)


def test_metrics_table_per_qi_and_totals():
    df = table(4)
    r = anon.anonymize(df, QIS, H, k=3, max_suppression=0.05)
    t = anon.metrics_table(df, H, r.transformation, r.suppressed_rows, k=3)
    assert list(t.index) == QIS + ["total"]
    lv = tuple(r.transformation[c] for c in QIS)
    sup = np.zeros(len(df), dtype=bool)
    sup[r.suppressed_rows] = True
    assert sup.sum() == r.suppressed
    for metric in M.PER_QI_METRICS:
        want = per_qi_by_definition(df, lv, pd.Series(sup), metric, 0.5)
        assert np.allclose(t.loc[QIS, metric].to_numpy(), want)
    assert t.loc["total", "loss"] == pytest.approx(r.metrics["loss"])
    assert t.loc["total", "discernibility"] == pytest.approx(r.metrics["discernibility"])
    assert t.loc["total", "dm*"] == pytest.approx(r.metrics["dm*"])
    assert t.loc["total", "suppressed"] == r.suppressed
    # the result carries the same table
    pd.testing.assert_frame_equal(r.metrics_table, t)
    with pytest.raises(QueryError, match="no hierarchy for 'job'"):
        anon.metrics_table(df, {c: H[c] for c in QIS[:3]}, r.transformation)
    with pytest.raises(QueryError, match="transformation must map"):
        anon.metrics_table(df, H, [1, 2])


def test_objective_options_through_anonymize():
    df = table(5)
    for metric in M.OBJECTIVES:
        r = anon.anonymize(df, QIS, H, k=3, max_suppression=0.05, metric=metric)
        assert r.objective["metric"] == metric
    r1 = anon.anonymize(df, QIS, H, k=3, max_suppression=0.1, metric="loss", gs_factor=1.0)
    r0 = anon.anonymize(df, QIS, H, k=3, max_suppression=0.1, metric="loss", gs_factor=0.0)
    assert r1.suppressed >= r0.suppressed  # free suppression suppresses at least as much
    with pytest.raises(QueryError, match="gs_factor must be a number in"):
        anon.anonymize(df, QIS, H, k=3, gs_factor=-1)
    with pytest.raises(QueryError, match="unknown aggregation 'median'"):
        anon.anonymize(df, QIS, H, k=3, aggregation="median")
