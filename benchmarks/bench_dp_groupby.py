"""DP release of count / sum / mean by region vs the same group-by in plain DuckDB and
plain pandas, on the same Parquet data (1M and 10M rows by default).

    pytest benchmarks/ --benchmark-only

Not collected by the default test run (see conftest.py). Each benchmark runs a fixed
number of pedantic rounds (15 at ≤ 1M rows, 7 above; ``--bench-rounds N``) after one
warm-up round; before each round (untimed) it waits, up to 3 s, until other processes
use less than a tenth of a core (``--bench-no-wait`` to skip).

Workloads (see ``compare_dp.py``): ``duckdb`` (plain group-by on the original Parquet
file), ``duckdb-copy`` (the same on pets' stored copy), ``pandas`` (in memory),
``pandas+read`` (incl. ``read_parquet``), ``pets-copy`` (``session.release`` on the
dataset registered with ``copy=True``) and ``pets-inplace`` (registered as a path,
read in place). Registration happens once per size in the ``workloads`` fixture and
is not timed here; the terminal summary prints its duration, the medians, and each
pets mode's ratio to plain DuckDB on the same file (the headline) and on the other.

These runs are sequential per workload; ``compare_dp.py`` interleaves the workloads
and repeats calls disturbed by other processes, so its ratios are the ones to quote.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.benchmark

WORKLOADS = ("duckdb", "duckdb-copy", "pandas", "pandas+read", "pets-copy", "pets-inplace")


@pytest.mark.parametrize("workload", WORKLOADS)
def test_groupby(
    benchmark: Any, workloads: Any, workload: str, bench_rounds: Any, record_median: Any,
    wait_quiet: Any,
) -> None:
    fn = workloads.by_name()[workload]
    benchmark.group = f"count/sum/mean by region, {workloads.rows:,} rows"
    benchmark.extra_info.update(rows=workloads.rows, workload=workload)
    result = benchmark.pedantic(
        fn, setup=wait_quiet, rounds=bench_rounds(workloads.rows), iterations=1, warmup_rounds=1
    )
    assert len(result) == 50
    record_median(workloads.rows, workload, benchmark)
