"""Tumult Analytics on the data of compare_spark.py, in its own environment (it pins
pyspark 3.5 and pandas < 2, so it never shares pets' venv)::

    python3 -m venv /tmp/venv-tumult && /tmp/venv-tumult/bin/pip install tmlt.analytics
    /tmp/venv-tumult/bin/python benchmarks/peer_tumult.py PARQUET ROUNDS

Prints one JSON line: the median seconds of ``tumult`` (count and sum by region with 20
public keys, pure DP ε = 1 split in two, one row per person: ``AddOneRow``) and
``tumult-bounded`` (``AddRowsWithID("pid")``, at most 5 regions per person and 1 row per
person and region: ``MaxGroupsPerID`` / ``MaxRowsPerGroupPerID``), each on a fresh
Session over the same ``local[2]`` SparkSession. The session's start is not timed, the
evaluation of both aggregates is (results brought to pandas).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

# Spark's Python workers must run this interpreter (the one with tmlt installed)
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from pyspark.sql import SparkSession
from tmlt.analytics import (AddOneRow, AddRowsWithID, KeySet, MaxGroupsPerID, MaxRowsPerGroupPerID,
                            PureDPBudget, QueryBuilder, Session)

KEYS = [f"r{i:02d}" for i in range(20)]


def main() -> None:
    path, rounds = sys.argv[1], int(sys.argv[2])
    spark = (SparkSession.builder.master("local[2]").appName("tumult-bench")
             .config("spark.driver.memory", "4g").config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(path)
    keys = KeySet.from_dict({"region": KEYS})

    def run(bounded: bool) -> float:
        change = AddRowsWithID("pid") if bounded else AddOneRow()
        session = Session.from_dataframe(PureDPBudget(1.0), "t", df, change)
        q = QueryBuilder("t")
        if bounded:
            q = q.enforce(MaxGroupsPerID("region", 5)).enforce(MaxRowsPerGroupPerID("region", 1))
        t = time.perf_counter()
        a = session.evaluate(q.groupby(keys).count(), PureDPBudget(0.5)).toPandas()
        b = session.evaluate(q.groupby(keys).sum("income", 0, 200_000), PureDPBudget(0.5)).toPandas()
        took = time.perf_counter() - t
        assert len(a) == len(b) == 20
        return took

    run(False)  # warm-up
    times: dict[str, list[float]] = {"tumult": [], "tumult-bounded": []}
    for _ in range(rounds):
        times["tumult"].append(run(False))
        times["tumult-bounded"].append(run(True))
        print(f"tumult {times['tumult'][-1]:.2f} s, bounded {times['tumult-bounded'][-1]:.2f} s",
              file=sys.stderr, flush=True)
    print(json.dumps({k: statistics.median(v) for k, v in times.items()}))


if __name__ == "__main__":
    main()
