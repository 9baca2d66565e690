"""SmartNoise SQL on the peer benchmark's data, in its own interpreter.

SmartNoise SQL 1.0.10 needs ``opendp < 0.15`` and pets needs 0.16, so the two cannot
share an environment. ``compare_dp_peers.py --smartnoise-python PY`` runs this script
with the interpreter ``PY`` of a separate venv, in the same benchmark run, on the same
Parquet files, and reads its timings (JSON on stdout)::

    python3 -m venv /tmp/snv
    /tmp/snv/bin/pip install smartnoise-sql==1.0.10 "opendp>=0.14.1,<0.15" pyarrow
    python benchmarks/compare_dp_peers.py --smartnoise-python /tmp/snv/bin/python

or on its own: ``/tmp/snv/bin/python benchmarks/peer_smartnoise.py --file a.parquet
--kind a --rounds 5``.

Query: ``SELECT region, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS mean_income FROM
bench.bench.t GROUP BY region``, ε = 1, δ = 1e-6 (SmartNoise asks for a δ), income
bounds [0, 200000]. Dataset ``a``: ``row_privacy: true`` (one row per person). Dataset
``b``: ``person_id`` is the private id with ``max_ids: 15`` — SmartNoise bounds the rows
per person overall (reservoir sampling), not per group, so 15 = 3 groups × 5 rows is the
closest setting to the others' bounds. ``censor_dims: false``: every region found is
released, like the public-key releases of the others (SmartNoise has no public-key mode;
with censoring it would threshold the groups, which costs little time). Timed: a fresh
``snsql.from_df(df, ...)`` + ``execute`` per round on the frame already in memory (the
Parquet read is timed separately as ``read``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--kind", choices=("a", "b"), required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import pandas as pd
    import snsql
    from snsql import Privacy

    t = time.perf_counter()
    df = pd.read_parquet(args.file)
    read = time.perf_counter() - t
    table: dict = {"censor_dims": False,
                   "region": {"type": "string"},
                   "income": {"type": "float", "lower": 0.0, "upper": 200000.0}}
    if args.kind == "a":
        table["row_privacy"] = True
        df = df[["region", "income"]]
    else:
        table["max_ids"] = 15
        table["person_id"] = {"type": "int", "private_id": True}
        df = df[["person_id", "region", "income"]]
    meta = {"bench": {"bench": {"t": table}}}
    sql = ("SELECT region, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS mean_income "
           "FROM bench.t GROUP BY region")
    times = []
    groups = 0
    for _ in range(args.rounds):
        t = time.perf_counter()
        reader = snsql.from_df(df, privacy=Privacy(epsilon=1.0, delta=1e-6), metadata=meta)
        res = reader.execute(sql)
        times.append(time.perf_counter() - t)
        groups = len(res) - 1  # the first row is the header
    from importlib.metadata import version

    json.dump({"median_s": statistics.median(times), "times_s": times, "read_s": read,
               "groups": groups, "versions": {"smartnoise-sql": version("smartnoise-sql"),
                                              "opendp": version("opendp")}},
              sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
