"""A release with a million cells: pets (pure DP and with a δ) vs the plain DuckDB
group-by, same data, same process.

Run from the repository root::

    python benchmarks/compare_big_release.py               # 2M rows, 100³ cells, 3 rounds
    python benchmarks/compare_big_release.py --keys 50 --rounds 5

Data: ``rows`` rows with three integer columns a, b, c uniform on ``keys`` values each
(generated in memory with a fixed seed; test data, not noise), registered as a DataFrame
(pets stores a Parquet copy). The policy declares all ``keys`` values of each column as
public keys, so a count by (a, b, c) has ``keys³`` cells, most of them empty.

Timed, interleaved per round (each run is a fresh release, under a fresh grant):

* ``duckdb``      ``SELECT a, b, c, count(*) FROM <pets' stored copy> GROUP BY a, b, c``
                  fetched to pandas (only the non-empty cells; no noise, no key frame);
* ``pets-delta``  ``release(q, DP(epsilon=1, delta=1e-5))``;
* ``pets-pure``   ``release(q, DP(epsilon=1))``: pure DP.

Both draw their discrete Laplace noise with pets.dp.fast, which is exact (≥ 1,024 draws;
the audit records name the sampler, printed below), and spend no δ. (Before the Laplace
sampler was exact, pure-DP releases used OpenDP's sampler: 6.6 s here.)
The grant is ε = 5, δ = 1e-3.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    k = args.keys
    df = pd.DataFrame({c: rng.integers(0, k, args.rows) for c in "abc"})
    pol = {"columns": {c: {"role": "attribute", "grade": 1, "keys": list(range(k))} for c in "abc"},
           "grades": {"1": {"allow": ["dp"]}}}
    h = pets.Holder(tempfile.mkdtemp(prefix="pets-big-"))
    h.register("t", df, pol)
    h.grant("a", dataset="t", purpose="p", epsilon=5.0, delta=1e-3)
    s = h.session("a", purpose="p")
    q = s.table("t").group_by("a", "b", "c").agg(n=pets.count())
    path = h._dataset("t").source.path
    con = h._engine._con
    calls = [0]

    def plain() -> int:
        return len(con.cursor().execute(
            f"SELECT a, b, c, count(*) AS n FROM read_parquet('{path}') GROUP BY a, b, c").df())

    def release(delta: float) -> int:
        calls[0] += 1  # a fresh purpose per release: each has its own grant of ε = 5
        h.grant("a", dataset="t", purpose=f"p{calls[0]}", epsilon=5.0, delta=1e-3)
        sp = h.session("a", purpose=f"p{calls[0]}")
        r = sp.release(q, pets.DP(epsilon=1.0, delta=delta))
        return len(r.df)

    work = {"duckdb": plain, "pets-delta": lambda: release(1e-5), "pets-pure": lambda: release(0.0)}
    times: dict[str, list[float]] = {name: [] for name in work}
    cells = 0
    for rnd in range(args.rounds):
        names = list(work)
        names = names[rnd % len(names):] + names[: rnd % len(names)]
        for name in names:
            t = time.perf_counter()
            n = work[name]()
            times[name].append(time.perf_counter() - t)
            if name != "duckdb":
                cells = n
    audit = [r.get("sampler") for r in h.audit().records() if r.get("status") == "released"]
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"# {args.rows:,} rows, {cells:,} cells (keys {k}³), {args.rounds} rounds, "
          f"{platform.processor() or platform.machine()}, pets {pets.__version__}")
    print(f"# samplers used: {sorted(set(audit))}")
    print("| workload | median | ÷ duckdb |")
    print("|---|---:|---:|")
    for name, m in med.items():
        print(f"| {name} | {m:.3f} s | {m / med['duckdb']:.1f}× |")
    print(f"\npets-pure ÷ pets-delta: {med['pets-pure'] / med['pets-delta']:.2f}×")


if __name__ == "__main__":
    main()
