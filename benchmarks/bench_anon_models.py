"""Time of the optimal full-domain search on the Adult benchmark table (ARX's 30,162
rows and hierarchies) under each privacy model of pets.anon — issue 17 part A.

    PYTHONPATH=. python benchmarks/bench_anon_models.py [--rounds 5]

A script (no test functions: the default test run does not collect benchmarks/).
Prints one markdown row per setting: the median wall time of ``anonymize`` over the
rounds (after one warm-up call), the lattice nodes evaluated, the rows suppressed and
the Loss. The entropy-l row is a request that cannot be met: the time to refuse it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pets.anon as anon
from pets.errors import QueryError

ADULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "adult-arx"
QIS9 = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass",
        "occupation", "salary-class"]
QIS8 = [q for q in QIS9 if q != "occupation"]
QIS8S = [q for q in QIS9 if q != "salary-class"]


def settings(df: pd.DataFrame) -> list[tuple[str, list[str], dict]]:
    subset = np.random.default_rng(0).random(len(df)) < 0.3
    sample = df[subset]
    return [
        ("k=5 (reference)", QIS9, dict(df=df, k=5, max_suppression=0.05)),
        ("δ-presence [0, 0.5], 30% subset (mask)", QIS9,
         dict(df=df, k=2, max_suppression=0.05, models=[anon.DeltaPresence(0.0, 0.5, population=subset)])),
        ("k-map 5 against the population (30% sample)", QIS9,
         dict(df=sample, k=2, max_suppression=0.05, models=[anon.KMap(5, population=df)])),
        ("k-map 10 estimated (π = 0.1, zero-truncated Poisson)", QIS9,
         dict(df=df, k=2, max_suppression=0.05, models=[anon.KMap(10, sample_fraction=0.1)])),
        ("average risk ≤ 0.05", QIS9,
         dict(df=df, k=2, max_suppression=0.05, models=[anon.AverageReidentificationRisk(0.05)])),
        ("sample uniques ≤ 1%, no suppression", QIS9,
         dict(df=df, k=2, models=[anon.SampleUniques(0.01)])),
        ("population uniqueness ≤ 0.1% (Dankar, π = 0.1), no suppression", QIS9,
         dict(df=df, k=2, models=[anon.PopulationUniqueness(0.001, sample_fraction=0.1)])),
        ("population uniqueness ≤ 0.1% (Dankar, π = 0.1), 5%", QIS9,
         dict(df=df, k=2, max_suppression=0.05, models=[anon.PopulationUniqueness(0.001, sample_fraction=0.1)])),
        ("t = 0.2 hierarchical on occupation, no suppression", QIS8,
         dict(df=df, k=5, t=0.2, sensitive="occupation", t_distance="hierarchical")),
        ("t = 0.2 hierarchical on occupation, 5%", QIS8,
         dict(df=df, k=5, t=0.2, sensitive="occupation", t_distance="hierarchical", max_suppression=0.05)),
        ("t = 0.2 equal on occupation, 5% (existing model, for comparison)", QIS8,
         dict(df=df, k=5, t=0.2, sensitive="occupation", t_distance="equal", max_suppression=0.05)),
        ("entropy l = 2 on salary-class, 4%: refused (cannot be met)", QIS8S,
         dict(df=df, k=5, l=2, l_kind="entropy", sensitive="salary-class", max_suppression=0.04)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    df = pd.read_csv(ADULT / "adult.csv", sep=";")
    H = anon.load_hierarchies(ADULT, QIS9)
    print("| model (Adult, ARX hierarchies, Loss) | median s | nodes checked / total | suppressed | Loss |")
    print("|---|---|---|---|---|")
    for name, qis, kw in settings(df):
        kw = dict(kw)
        data = kw.pop("df")

        def call():
            try:
                return anon.anonymize(data, qis, H, **kw)
            except QueryError as e:
                return e

        call()  # warm-up
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            r = call()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        if isinstance(r, QueryError):
            print(f"| {name} | {med:.4f} | refused: {str(r)[:60]}… | – | – |")
        else:
            print(f"| {name} | {med:.3f} | {r.nodes_checked:,} / {r.nodes_total:,} | {r.suppressed:,} | "
                  f"{r.metrics['loss']:.4f} |")


if __name__ == "__main__":
    main()
