"""Anonymisation search: every metric as the objective, heuristic search, local recoding.

Run from the repository root (not part of the test suite)::

    python benchmarks/compare_anon_search.py                       # everything (~6 min)
    python benchmarks/compare_anon_search.py --reference-seconds 30 --rounds 3

1. **Adult, exhaustive** (``tests/data/adult-arx``: 30,162 rows, the nine benchmark
   quasi-identifiers and hierarchies, 12,960 lattice nodes): ``optimal_full_domain``
   under every metric (ARX's defaults: gs-factor 0.5, the metric's aggregation), k = 5
   and 50, at most 0% and 5% suppressed. Median time of ``--rounds`` runs after a
   warm-up; the value and the nodes evaluated. Target: ≤ 0.5 s each.
2. **A generated register of 1M rows, 9 quasi-identifiers** (:func:`register`: Adult
   resampled with age jittered, so classes are not trivially large; 12,960 nodes): the
   exhaustive search (on pre-encoded columns) and ``anonymize()`` end to end (with the
   encoding of the 1M-row columns), k = 10 / 5%, 50 / 5%, 100 / 2%. Target: ≤ 3 s.
3. **15 quasi-identifiers, heuristic** (the bundled full Adult, ``pets.example_data()``,
   rows with missing values dropped: 30,162 rows, all 15 columns as quasi-identifiers;
   the benchmark hierarchies for nine, interval / grouping hierarchies for the other six;
   210 million lattice nodes): ``heuristic_full_domain`` with 2, 5 and 10 s, k = 5 / 5%.
   *Best known* = the best loss of longer runs (``--reference-seconds`` each, two
   seeds) and of the timed runs; reported: the loss, its ratio to the best known, the
   lower bound of the optimum and the gap. Target: within 5% of the best known in ≤ 10 s.
4. **Local vs global recoding** on Adult (8 QIs, k = 10, 10% suppression): rows
   suppressed, loss, time.

Results go to stdout as Markdown tables (pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import pets  # noqa: E402
from pets import anon  # noqa: E402
from pets.anon.heuristic import heuristic_full_domain  # noqa: E402
from pets.anon.lattice import optimal_full_domain  # noqa: E402
from pets.anon.metrics import OBJECTIVES  # noqa: E402
from pets.anon.models import KAnonymity  # noqa: E402

ADULT_DIR = ROOT / "tests" / "data" / "adult-arx"
QIS9 = ["sex", "age", "race", "marital-status", "education", "native-country",
        "workclass", "occupation", "salary-class"]


def timed(fn, rounds: int):  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def adult9() -> tuple[pd.DataFrame, dict]:
    df = pd.read_csv(ADULT_DIR / "adult.csv", sep=";", dtype=str)
    return df, anon.load_hierarchies(ADULT_DIR, QIS9)


def adult15() -> tuple[pd.DataFrame, dict, list[str]]:
    """The full Adult table (15 columns), rows with a missing value dropped (30,162)."""
    df = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values="?").dropna()
    df = df.reset_index(drop=True)
    H = anon.load_hierarchies(ADULT_DIR, QIS9)
    H["fnlwgt"] = anon.Hierarchy.intervals(df["fnlwgt"].unique(), [10000, 50000, 100000, 500000], start=0, name="fnlwgt")
    H["education-num"] = anon.Hierarchy.intervals(df["education-num"].unique(), [2, 4, 8], start=0, name="education-num")
    H["capital-gain"] = anon.Hierarchy.intervals(df["capital-gain"].unique(), [1000, 5000, 10000, 100000], start=0, name="capital-gain")
    H["capital-loss"] = anon.Hierarchy.intervals(df["capital-loss"].unique(), [500, 1000, 5000], start=0, name="capital-loss")
    H["hours-per-week"] = anon.Hierarchy.intervals(df["hours-per-week"].unique(), [5, 10, 20, 100], start=0, name="hours-per-week")
    rel = {"Husband": "spouse", "Wife": "spouse", "Own-child": "relative", "Other-relative": "relative",
           "Not-in-family": "other", "Unmarried": "other"}
    H["relationship"] = anon.Hierarchy.from_rows([[k, v, "*"] for k, v in rel.items()], name="relationship")
    return df, H, list(df.columns)


def register(rows: int = 1_000_000, seed: int = 7) -> tuple[pd.DataFrame, dict, list[str]]:
    """A generated register of ``rows`` rows on the nine Adult benchmark quasi-identifiers:
    Adult's rows resampled, age jittered by −3 … +3 years (clipped to 17 … 90) so that
    new combinations arise (plain resampling adds none, and small k would be trivially
    met); about 110,000 distinct tuples at 1M rows; the benchmark hierarchies (12,960
    lattice nodes)."""
    rng = np.random.default_rng(seed)
    df, H = adult9()
    out = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
    age = out["age"].astype(np.int64).to_numpy() + rng.integers(-3, 4, rows)
    out["age"] = np.clip(age, 17, 90).astype(str)
    return out, H, list(QIS9)


def lattice_size(enc) -> int:  # type: ignore[no-untyped-def]
    return math.prod(int(e.gen.shape[1]) for e in enc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference-seconds", type=float, default=60.0)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: adult,register,heuristic,local")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}\n")

    if "adult" not in skip:
        df, H = adult9()
        enc = [H[c].encode(df[c]) for c in QIS9]
        print(f"## Adult, exhaustive ({len(df):,} rows, 9 QIs, {lattice_size(enc):,} nodes)\n")
        print("| metric | k | max supp. | time (s) | value | transformation | suppressed | nodes evaluated |")
        print("|---|---|---|---|---|---|---|---|")
        worst = 0.0
        for metric in OBJECTIVES:
            for k, supp in ((5, 0.0), (5, 0.05), (50, 0.05)):
                t, r = timed(lambda: optimal_full_domain(enc, [KAnonymity(k)], supp, metric=metric), a.rounds)
                worst = max(worst, t)
                print(f"| {metric} | {k} | {supp:.0%} | {t:.3f} | {r.value:.6g} | {list(r.levels)} | "
                      f"{r.n_suppressed:,} | {r.nodes_checked:,} |")
        print(f"\nslowest: {worst:.3f} s (target ≤ 0.5 s)\n")

    if "register" not in skip:
        t0 = time.perf_counter()
        df, H, qis = register()
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc = [H[c].encode(df[c]) for c in qis]
        enc_s = time.perf_counter() - t0
        key = pd.MultiIndex.from_arrays([e.codes for e in enc])
        print(f"## Generated register ({len(df):,} rows, {len(qis)} QIs, {lattice_size(enc):,} nodes, "
              f"{key.nunique():,} distinct tuples; generated in {gen_s:.1f} s, encoded in {enc_s:.2f} s)\n")
        print("| setting | search only (s) | anonymize() end to end (s) | loss | transformation | suppressed | classes | nodes evaluated |")
        print("|---|---|---|---|---|---|---|---|")
        for k, supp in ((10, 0.05), (50, 0.05), (100, 0.02)):
            ts, r = timed(lambda: optimal_full_domain(enc, [KAnonymity(k)], supp), a.rounds)
            te, _x = timed(lambda: anon.anonymize(df, qis, H, k=k, max_suppression=supp), 1)
            print(f"| k={k}, {supp:.0%} | {ts:.2f} | {te:.2f} | {r.value:.4f} | {list(r.levels)} | "
                  f"{r.n_suppressed:,} | {r.n_classes:,} | {r.nodes_checked:,} |")
        print("\n(target ≤ 3 s)\n")

    if "heuristic" not in skip:
        df, H, qis = adult15()
        enc = [H[c].encode(df[c]) for c in qis]
        models = [KAnonymity(5)]
        print(f"## 15 quasi-identifiers, heuristic ({len(df):,} rows, {lattice_size(enc):,} nodes, k=5, 5%)\n")
        runs = []
        for seed in (1, 2):
            r = heuristic_full_domain(enc, models, 0.05, time_limit=a.reference_seconds, seed=seed)
            runs.append(("reference", a.reference_seconds, seed, r))
        for tl in (2.0, 5.0, 10.0):
            t = time.perf_counter()
            r = heuristic_full_domain(enc, models, 0.05, time_limit=tl, seed=0)
            runs.append(("timed", time.perf_counter() - t, 0, r))
        best = min(r.value for *_x, r in runs)
        lb = max(r.lower_bound for *_x, r in runs)
        print("| run | seconds | seed | loss | / best known | lower bound | gap | nodes evaluated | transformation |")
        print("|---|---|---|---|---|---|---|---|---|")
        for kind, secs, seed, r in runs:
            print(f"| {kind} | {secs:.1f} | {seed} | {r.value:.4f} | {r.value / best:.3f} | "
                  f"{r.lower_bound:.4f} | {r.gap:.1%} | {r.nodes_checked:,} | {list(r.levels)} |")
        print(f"\nbest known loss {best:.4f}; best lower bound of the optimum {lb:.4f}\n")

    if "local" not in skip:
        df, H = adult9()
        qis = QIS9[:-1]
        print("## Local vs global recoding (Adult, 8 QIs, k=10, at most 10% suppressed)\n")
        print("| recoding | time (s) | suppressed | classes | loss | precision | iterations |")
        print("|---|---|---|---|---|---|---|")
        for rec in ("global", "local"):
            t, r = timed(lambda: anon.anonymize(df, qis, H, k=10, max_suppression=0.1, recoding=rec), a.rounds)
            print(f"| {rec} | {t:.2f} | {r.suppressed:,} | {r.classes:,} | {r.metrics['loss']:.4f} | "
                  f"{r.metrics['precision']:.4f} | {int(r.metrics.get('iterations', 1))} |")
        print()


if __name__ == "__main__":
    main()
