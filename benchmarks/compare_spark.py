"""A DP group-by on Spark: pets' Spark engine vs the plain Spark SQL aggregate, same
data, same session (and Tumult Analytics, the DP peer that runs on Spark, where it is
installed in its own environment).

Run from the repository root (needs ``pip install "pets[spark]"`` and Java 17)::

    python benchmarks/compare_spark.py                    # 10^7 rows, 3 rounds
    python benchmarks/compare_spark.py --rows 100000000   # 10^8 rows (≈ 1.6 GB of Parquet)
    python benchmarks/compare_spark.py --tumult /tmp/venv-tumult/bin/python

Data (test data, not noise; generated once with DuckDB into ``benchmarks/.data/``): one
Parquet file of ``rows`` rows: ``pid`` (rows / 20 persons: about 20 rows each),
``region`` (one of 20 public keys ``r00`` … ``r19``) and ``income`` (0 … 200,000).

Timed on one ``local[2]`` SparkSession, interleaved per round, median of the rounds:

* ``plain``          ``SELECT region, count(*), sum(clamped income) … GROUP BY region``
                     through ``spark.sql`` to pandas (what an analyst with raw access runs);
* ``pets``           ``release(group_by("region", keys=…).agg(count, sum), DP(ε=1))`` on
                     the dataset registered with ``engine="spark"`` (no privacy unit: one
                     row per person);
* ``plain-bounded``  the plain query after keeping at most 5 rows per person: 5 of the
                     person's regions chosen at random, one random row in each — the
                     window SQL a careful analyst would write by hand (one partition by
                     person, as pets does);
* ``pets-bounded``   the release on the dataset registered with ``privacy_unit = "pid"``,
                     ``max_groups = 5``, ``max_rows_per_group = 1``;
* ``pets-copy-bounded`` the same bounded release on the dataset registered with
                     ``copy=True``: Spark wrote a copy with the per-person ordinals and their
                     precomputed choices once, and a release keeps rows by a bit test;
* ``tumult`` / ``tumult-bounded`` (``--tumult PYTHON``): the same release with Tumult
                     Analytics (``QueryBuilder.groupby(KeySet).count()`` and ``.sum()``,
                     pure DP ε = 1 split in two; bounded: ``AddRowsWithID("pid")`` with
                     ``MaxRowsPerID(5)``), run in its own process and session by
                     ``benchmarks/peer_tumult.py``; the time of the query only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pets

KEYS = [f"r{i:02d}" for i in range(20)]
HERE = Path(__file__).resolve().parent


def make_data(rows: int, folder: Path) -> Path:
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"spark-{rows}.parquet"
    if not path.exists():
        t = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        duckdb.sql(f"""
            COPY (SELECT (hash(i, 1) % {max(rows // 20, 1)})::BIGINT AS pid,
                         'r' || lpad(((hash(i, 2) % 20))::VARCHAR, 2, '0') AS region,
                         round((hash(i, 3) % 200000001) / 1000.0, 2) AS income
                  FROM range({rows}) t(i))
            TO '{tmp}' (FORMAT parquet)""")
        os.replace(tmp, path)
        print(f"generated {rows:,} rows in {time.perf_counter() - t:.1f} s: {path}", flush=True)
    return path


def policy(bounded: bool) -> dict:
    pol: dict = {
        "columns": {
            "pid": {"role": "identifier", "grade": 1},
            "region": {"role": "attribute", "grade": 1, "keys": KEYS},
            "income": {"role": "attribute", "grade": 1, "bounds": [0, 200_000]},
        },
        "grades": {"1": {"allow": ["dp"]}},
        "dataset": {"max_rows": 10**9},
    }
    if bounded:
        pol["dataset"].update({"privacy_unit": "pid", "max_groups": 5, "max_rows_per_group": 1})
    return pol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=HERE / ".data")
    ap.add_argument("--tumult", help="a Python with tmlt.analytics installed (its own venv)")
    ap.add_argument("--driver-memory", default="4g", help="spark.driver.memory (default 4g)")
    ap.add_argument("--only", help="comma-separated workloads to run (default: all five), e.g. "
                    "plain,pets,pets-copy-bounded")
    args = ap.parse_args()

    from pyspark.sql import SparkSession

    from pets.engines.spark import SparkEngine

    path = make_data(args.rows, args.data)
    spark = (SparkSession.builder.master("local[2]").appName("pets-bench")
             .config("spark.driver.memory", args.driver_memory).config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    names = ["plain", "pets", "plain-bounded", "pets-bounded", "pets-copy-bounded"]
    only = args.only.split(",") if args.only else names
    if set(only) - set(names):
        ap.error(f"--only takes some of {', '.join(names)}")
    h = pets.Holder(tempfile.mkdtemp(prefix="pets-spark-bench-"), spark=SparkEngine(session=spark))
    t = time.perf_counter()
    h.register("t", path, policy(False), engine="spark")
    h.register("tb", path, policy(True), engine="spark")
    print(f"registered twice in place in {time.perf_counter() - t:.1f} s", flush=True)
    if "pets-copy-bounded" in only:
        t = time.perf_counter()
        h.register("tc", path, policy(True), engine="spark", copy=True)
        print(f"registered the bounded copy in {time.perf_counter() - t:.1f} s", flush=True)
    calls = [0]

    def release(name: str) -> int:
        calls[0] += 1  # a fresh purpose per release: its own grant
        h.grant("a", dataset=name, purpose=f"p{calls[0]}", epsilon=1.0)
        s = h.session("a", purpose=f"p{calls[0]}")
        q = s.table(name).group_by("region", keys=KEYS).agg(
            n=pets.count(), income=pets.sum("income", bounds=(0, 200_000)))
        return len(s.release(q, pets.DP(epsilon=1.0)).df)

    clamp = "CASE WHEN income > 200000 THEN 200000.0 WHEN income < 0 THEN 0.0 ELSE income END"
    src = f"parquet.`{path}`"
    plain_sql = f"SELECT region, count(*) AS n, sum({clamp}) AS income FROM {src} GROUP BY region"
    keys = ", ".join(f"'{k}'" for k in KEYS)
    bounded_sql = (
        f"SELECT region, count(*) AS n, sum({clamp}) AS income FROM ("
        f"SELECT *, dense_rank() OVER wg AS gr, row_number() OVER wr - rank() OVER wg + 1 AS rn FROM "
        f"(SELECT *, xxhash64(pid, region, 7) AS h, rand() AS r FROM {src} "
        f"WHERE region IN ({keys}) AND pid IS NOT NULL) "
        f"WINDOW wg AS (PARTITION BY pid ORDER BY h, region), wr AS (PARTITION BY pid ORDER BY h, region, r)) "
        f"WHERE gr <= 5 AND rn <= 1 GROUP BY region")

    def plain(sql: str) -> int:
        return len(spark.sql(sql).toArrow())

    work = {
        "plain": lambda: plain(plain_sql),
        "pets": lambda: release("t"),
        "plain-bounded": lambda: plain(bounded_sql),
        "pets-bounded": lambda: release("tb"),
        "pets-copy-bounded": lambda: release("tc"),
    }
    work = {k: v for k, v in work.items() if k in only}
    for fn in work.values():  # warm-up: JIT, file listing, the engine's cached frames
        fn()
    times: dict[str, list[float]] = {k: [] for k in work}
    order = list(work)
    for rnd in range(args.rounds):
        for name in order[rnd % len(order):] + order[:rnd % len(order)]:  # a rotating order
            t = time.perf_counter()
            n = work[name]()
            times[name].append(time.perf_counter() - t)
            assert n == 20, (name, n)
        print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
              + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    med.update({k: float("nan") for k in names if k not in med})
    spark.stop()

    peer: dict[str, float] = {}
    if args.tumult:
        out = subprocess.run([args.tumult, str(HERE / "peer_tumult.py"), str(path), str(args.rounds)],
                             capture_output=True, text=True)
        if out.returncode == 0:
            peer = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            print("tumult failed:\n" + out.stderr[-3000:], file=sys.stderr)

    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
          f"pyspark {spark.version}; rows {args.rows:,}; rounds {args.rounds} (median)")
    print(f"{'what':16} {'seconds':>8} {'ratio':>14}")
    print(f"{'plain':16} {med['plain']:8.2f}")
    print(f"{'pets':16} {med['pets']:8.2f} {med['pets'] / med['plain']:8.2f}× plain")
    print(f"{'plain-bounded':16} {med['plain-bounded']:8.2f} {med['plain-bounded'] / med['plain']:8.2f}× plain")
    print(f"{'pets-bounded':16} {med['pets-bounded']:8.2f} {med['pets-bounded'] / med['plain-bounded']:8.2f}× plain-bounded"
          f" ({med['pets-bounded'] / med['plain']:.2f}× plain)")
    print(f"{'pets-copy-bounded':16} {med['pets-copy-bounded']:8.2f} {med['pets-copy-bounded'] / med['plain']:8.2f}× plain"
          f" ({med['pets-copy-bounded'] / med['plain-bounded']:.2f}× plain-bounded)")
    for k, v in peer.items():
        ref = "pets-bounded" if k.endswith("bounded") else "pets"
        print(f"{k:16} {v:8.2f} {v / med[ref]:8.2f}× {ref}")


if __name__ == "__main__":
    main()
