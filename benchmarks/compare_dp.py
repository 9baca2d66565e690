"""DP group-by release vs plain DuckDB vs plain pandas, same data, same process.

Run from the repository root::

    python benchmarks/compare_dp.py                       # 1M and 10M rows, 21 rounds
    python benchmarks/compare_dp.py --rows 1000000 --rounds 5 --out results.md

Data: one Parquet file per size (generated once, deterministically, into
``benchmarks/.data/``). pets registers it twice in one holder:

* ``synth``          ``holder.register("synth", path, policy, copy=True)``: pets stores a
                     Parquet copy in its home, every bounded numeric column also stored
                     pre-encoded as fixed-point int32 (``__pets_fx__<col>``), so DP sums
                     need no per-row clamping (the normal way to register a table for
                     repeated releases; the registration is timed once, separately);
* ``synth_inplace``  ``holder.register("synth_inplace", path, policy)``: the file is read
                     in place and every release clamps and encodes per row.

Timed workloads (keys of ``Workloads.by_name``):

* ``duckdb``         ``SELECT region, count(*) AS n, sum(income) AS total, avg(income) AS
                     avg FROM read_parquet(<original file>) GROUP BY region`` with ``.df()``
                     — what an analyst with raw access would run;
* ``duckdb-copy``    the same plain query on pets' stored copy
                     (``holder._dataset("synth").source.path``);
* ``pandas``         ``df.groupby("region").agg(...)`` on the frame already in memory;
* ``pandas+read``    ``pd.read_parquet(path, columns=[region, income])`` then the same;
* ``pets-copy``      ``session.release(q, pets.DP(epsilon=1.0))`` for count / sum / mean
                     of income by region (keys and bounds from the policy) on ``synth``;
* ``pets-inplace``   the same release on ``synth_inplace``.

The headline ratio of each mode compares it with the plain query on the file it reads:
``pets-copy / duckdb-copy`` and ``pets-inplace / duckdb``; both cross ratios are
reported too.

Rounds are interleaved (every round runs each workload once, in a rotating order) so
that drift hits all workloads alike; the tables report medians. DuckDB runs with its
default thread count (the number of cores); the plain baselines run on the very DuckDB
database pets' engine uses (separate in-memory DuckDB instances in one process turned
out to run the same scan at one of two speeds, ~61 or ~69 ms at 10M rows, chosen at
random per instance).

``--breakdown`` (on by default) replays ``Session.release`` phase by phase with the
same internals it calls, for both modes, and times variants of the SQL pets' engine
sends, to show where the time of a release goes.

``conftest.py`` imports this module for the pytest-benchmark run
(``pytest benchmarks/ --benchmark-only``), so both measure exactly the same calls.
Results go to stdout and to ``benchmarks/.data/results.md`` (+ ``results.json`` with
every timing) unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python benchmarks/compare_dp.py` from anywhere
    sys.path.insert(0, str(ROOT))

import duckdb
import numpy as np
import pandas as pd

import pets

# --------------------------------------------------------------------------- data

#: Where the generated Parquet files live (gitignored); override with PETS_BENCH_DATA.
DATA_DIR = Path(os.environ.get("PETS_BENCH_DATA", HERE / ".data"))
#: Bump when the generator changes, so stale files are not reused.
DATA_VERSION = 1
SEED = 20_240_501  # seeds the DATA only; pets' noise comes from OpenDP's CSPRNG
ROW_GROUP = 122_880  # DuckDB's own default row-group size: both engines can parallelise
REGIONS: tuple[str, ...] = tuple(f"region_{i:02d}" for i in range(50))
BOUNDS = (0, 200_000)
DEFAULT_ROWS = (1_000_000, 10_000_000)

POLICY: dict[str, Any] = {
    "columns": {
        "region": {"role": "attribute", "grade": 1, "keys": list(REGIONS)},
        "income": {"role": "attribute", "grade": 1, "bounds": list(BOUNDS)},
        "age": {"role": "attribute", "grade": 1, "bounds": [18, 90]},
    },
    "grades": {"1": {"allow": ["dp"]}},
}



def compile_release(session: Any, plan: Any, protection: Any) -> Any:
    """The compiled DP aggregate of a release, through the pipeline's checks (no charge)."""
    from pets import pipeline

    return pipeline.prepare(session, plan, protection, record_refusals=False).compiled.compiled

def dataset_path(rows: int, data_dir: Path | None = None) -> Path:
    """The Parquet file with ``rows`` synthetic rows, generated on first use.

    Columns: ``region`` (50 string keys, mildly skewed), ``income`` (lognormal, median
    ≈ 40,000, clipped to [0, 500,000] so that 2.2% lies above the DP bound of 200,000),
    ``age`` (int32, 18–90). Deterministic: same rows, same bytes, every time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = Path(data_dir) if data_dir is not None else DATA_DIR
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"synth_v{DATA_VERSION}_{rows}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng([SEED, rows])
    weights = np.linspace(1.0, 3.0, len(REGIONS))
    idx = rng.choice(len(REGIONS), size=rows, p=weights / weights.sum()).astype(np.int32)
    income = np.clip(np.round(rng.lognormal(mean=10.6, sigma=0.8, size=rows), 2), 0.0, 500_000.0)
    age = rng.integers(18, 91, size=rows, dtype=np.int32)
    region = pa.array(list(REGIONS), type=pa.string()).take(pa.array(idx))  # plain strings
    table = pa.table({"region": region, "income": income, "age": age})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="snappy")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- workloads

PLAIN_SQL = (
    "SELECT region, count(*) AS n, sum(income) AS total, avg(income) AS avg "
    "FROM read_parquet({path}) GROUP BY region"
)


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def pandas_groupby(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("region").agg(
        n=("income", "size"), total=("income", "sum"), avg=("income", "mean")
    )


#: Workload keys, in table order, with their labels.
LABELS: dict[str, str] = {
    "duckdb": "DuckDB plain, original file",
    "duckdb-copy": "DuckDB plain, pets' copy file",
    "pandas": "pandas (in memory)",
    "pandas+read": "pandas incl. read_parquet",
    "pets-copy": "pets (stored copy)",
    "pets-inplace": "pets (in place)",
}
#: Each pets mode and the plain DuckDB run on the same file (its headline baseline).
MODES: dict[str, str] = {"pets-copy": "duckdb-copy", "pets-inplace": "duckdb"}
DATASETS: dict[str, str] = {"pets-copy": "synth", "pets-inplace": "synth_inplace"}


@dataclass
class Workloads:
    """Everything set up once for one data size; each method is one timed call."""

    rows: int
    path: Path
    home: Path
    epsilon: float = 1.0
    _df: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from pets.engines.duckdb import DuckDBEngine

        # One DuckDB database (in-memory, default threads = cores) for pets' engine and
        # the plain baselines: separate DuckDB instances in one process run this scan at
        # either ~61 or ~69 ms (10M rows, by instance, at random), which would swamp
        # the comparison. Sharing the instance compares like with like.
        self.engine = DuckDBEngine()
        self.con = self.engine._con
        self.holder = pets.Holder(self.home, engine=self.engine)
        #: seconds taken by each registration (None: already registered in this home)
        self.register_s: dict[str, float | None] = {}
        have = set(self.holder.datasets())
        for name, copy in (("synth", True), ("synth_inplace", False)):
            if name in have:
                self.register_s[name] = None
                continue
            t = time.perf_counter()
            self.holder.register(name, str(self.path), POLICY, copy=copy)
            self.register_s[name] = time.perf_counter() - t
            self.holder.grant("bench", dataset=name, purpose="bench", epsilon=1e9)
        self.copy_path = Path(self.holder._dataset("synth").source.path)
        assert self.holder._dataset("synth").source.encoded, "the copy has no encoded columns"
        assert self.holder._dataset("synth_inplace").source.path == str(self.path.resolve())
        self.sql = PLAIN_SQL.format(path=_sql_str(self.path))
        self.sql_copy = PLAIN_SQL.format(path=_sql_str(self.copy_path))
        self.session = self.holder.session("bench", purpose="bench")
        self.queries = {mode: self._query(ds) for mode, ds in DATASETS.items()}
        self.query = self.queries["pets-copy"]
        self.protection = pets.DP(epsilon=self.epsilon)
        self._calls = 0


    def _fresh(self) -> "pets.DP":
        """An ε that differs by 1e-12 per call: pets answers an identical repeated query
        from its record at no cost, which would time a lookup, not a release."""
        self._calls += 1
        return pets.DP(epsilon=self.epsilon * (1 + self._calls * 1e-12))
    def _query(self, dataset: str) -> Any:
        return (
            self.session.table(dataset)
            .group_by("region")
            .agg(
                n=pets.count(),
                total=pets.sum("income", bounds=BOUNDS),
                avg=pets.mean("income", bounds=BOUNDS),
            )
        )

    @property
    def df(self) -> pd.DataFrame:
        if self._df is None:
            self._df = pd.read_parquet(self.path, columns=["region", "income"])
        return self._df

    # the six timed calls -------------------------------------------------------------
    def duckdb(self) -> pd.DataFrame:
        return self.con.cursor().execute(self.sql).df()  # a cursor per call, as pets does

    def duckdb_copy(self) -> pd.DataFrame:
        return self.con.cursor().execute(self.sql_copy).df()

    def pandas(self) -> pd.DataFrame:
        return pandas_groupby(self.df)

    def pandas_read(self) -> pd.DataFrame:
        return pandas_groupby(pd.read_parquet(self.path, columns=["region", "income"]))

    def pets_copy(self) -> pd.DataFrame:
        return self.session.release(self.queries["pets-copy"], self._fresh()).df

    def pets_inplace(self) -> pd.DataFrame:
        return self.session.release(self.queries["pets-inplace"], self._fresh()).df

    def by_name(self) -> dict[str, Callable[[], Any]]:
        return {
            "duckdb": self.duckdb,
            "duckdb-copy": self.duckdb_copy,
            "pandas": self.pandas,
            "pandas+read": self.pandas_read,
            "pets-copy": self.pets_copy,
            "pets-inplace": self.pets_inplace,
        }

    def check(self) -> None:
        """The workloads answer the same question (50 groups; pets within noise)."""
        d = self.duckdb().set_index("region").sort_index()
        dc = self.duckdb_copy().set_index("region").sort_index()
        p = self.pandas().sort_index()
        assert len(d) == len(dc) == len(p) == len(REGIONS), (len(d), len(dc), len(p))
        assert (d["n"].to_numpy() == p["n"].to_numpy()).all()
        assert (d["n"].to_numpy() == dc["n"].to_numpy()).all()
        assert np.allclose(d["total"].to_numpy(), p["total"].to_numpy(), rtol=1e-9)
        assert np.allclose(d["total"].to_numpy(), dc["total"].to_numpy(), rtol=1e-9)
        clamped = (
            self.df.assign(income=self.df["income"].clip(*BOUNDS)).groupby("region")["income"]
            .sum().sort_index().to_numpy()
        )
        # ε = 1 over 3 measurements on ≥ 10^4 rows per region (1M rows and up): relative
        # error ≪ 1%; the quick mode's 100,000 rows (2,000 per region): ≪ 10%
        small = max(1.0, 1_000_000 / max(self.rows, 1))
        for fn in (self.pets_copy, self.pets_inplace):
            r = fn().set_index("region").sort_index()
            assert len(r) == len(REGIONS)
            assert np.allclose(r["n"].to_numpy(), d["n"].to_numpy(), rtol=0.01 * small)
            assert np.allclose(r["total"].to_numpy(), clamped, rtol=0.05 * small)  # sum noise ≪ 5%

    def close(self) -> None:
        self.con.close()  # the engine's connection: this Workloads' holder is done


# --------------------------------------------------------------------------- timing


def _cpu_jiffies() -> int:
    """Busy CPU time of the whole machine, in clock ticks (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # minus idle and iowait


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Contention:
    """Rounds repeated because other processes used the CPU while they ran."""

    retried: int = 0
    accepted: int = 0  # still contended after the retries: kept


def _others_busy(window: float = 0.2) -> float:
    """Cores' worth of CPU that other processes used over ``window`` seconds."""
    b0, c0 = _cpu_jiffies(), time.process_time()
    time.sleep(window)
    return ((_cpu_jiffies() - b0) / _HZ - (time.process_time() - c0)) / window


def _wait_quiet(max_wait: float = 30.0) -> None:
    """Wait (at most ``max_wait`` s) until other processes use < 0.1 core."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline and _others_busy() > 0.1:
        pass


def _timed(fn: Callable[[], Any], contention: Contention | None, retries: int = 5) -> float:
    """Wall time of one call. When other processes took more than a tenth of a core
    during it (busy CPU of the machine minus this process's own CPU time), the call is
    repeated once the machine is quiet again, up to ``retries`` times, so that a
    neighbour's burst does not land in the data."""
    for attempt in range(retries + 1):
        b0, c0 = _cpu_jiffies(), time.process_time()
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
        others = (_cpu_jiffies() - b0) / _HZ - (time.process_time() - c0)
        if contention is None or others <= 0.02 + 0.1 * wall:
            return wall
        if attempt < retries:
            contention.retried += 1
            _wait_quiet()
    assert contention is not None
    contention.accepted += 1
    return wall


def time_interleaved(
    funcs: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1,
    contention: Contention | None = None,
) -> dict[str, list[float]]:
    """Seconds per call, ``rounds`` per function, interleaved in a rotating order."""
    names = list(funcs)
    for _ in range(warmup):
        for n in names:
            funcs[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            out[n].append(_timed(funcs[n], contention))
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt_s(x: float) -> str:
    if x >= 1.0:
        return f"{x:.2f} s"
    if x >= 0.1:
        return f"{x * 1e3:.0f} ms"
    if x >= 0.001:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} µs"


# --------------------------------------------------------------------------- breakdown


PHASES = (
    "dataset lookup",
    "policy check + compile",
    "budget check",
    "engine query",
    "ledger + audit commit",
    "noise (OpenDP)",
    "result frame",
)


def release_phases(
    w: Workloads, rounds: int, contention: Contention | None = None
) -> dict[str, dict[str, list[float]]]:
    """Replay ``Session.release`` step by step (same calls, same order) for each pets
    mode and time each phase; the modes alternate round by round. Mirrors
    pets/pipeline.py; update both together."""
    from pets.release import Release
    from pets.pipeline import _check_protection, plan_of as _plan_of

    s, h = w.session, w.holder

    def one(query: Any) -> list[float]:
        t = [time.perf_counter()]
        plan = _plan_of(query)
        _check_protection(w.protection)
        ds = h._dataset(plan.dataset)
        t.append(time.perf_counter())
        compiled = compile_release(s, plan, w.protection)  # policy, compile and budget
        t.append(time.perf_counter())
        # (the budget check is part of the pipeline's prepare, timed above)
        t.append(time.perf_counter())
        exact_df = h._engine.aggregate(ds.source, compiled.request())
        t.append(time.perf_counter())
        record = {
            "analyst": s.analyst, "purpose": s.purpose, "dataset": plan.dataset,
            "kind": w.protection.form, "status": "released", "plan": plan.to_dict(),
            "protection": w.protection.to_dict(),
            "cost": {"epsilon": compiled.cost.epsilon, "delta": compiled.cost.delta},
            "cells": compiled.cells, "noise_scale": compiled.output_scales(),
        }
        audit_id = h._store.charge(s.analyst, plan.dataset, s.purpose, compiled.cost, record)
        t.append(time.perf_counter())
        noisy = compiled.noise(exact_df)
        del exact_df
        t.append(time.perf_counter())
        Release(df=noisy.values(), spent=compiled.cost, audit_id=audit_id, plan=plan,
                protection=w.protection, scale=compiled.output_scales(),
                suppressed=int(noisy.suppressed.sum()), _ci=noisy.ci)
        t.append(time.perf_counter())
        return t

    out: dict[str, dict[str, list[float]]] = {
        mode: {p: [] for p in PHASES + ("total",)} for mode in MODES
    }
    for q in w.queries.values():
        one(q)  # warm-up
    for r in range(rounds):
        modes = list(MODES)[r % 2:] + list(MODES)[: r % 2]
        for mode in modes:
            box: list[list[float]] = []
            _timed(functools.partial(_append_call, box, one, w.queries[mode]), contention)
            t = box[-1]
            for k, p in enumerate(PHASES):
                out[mode][p].append(t[k + 1] - t[k])
            out[mode]["total"].append(t[-1] - t[0])
    return out


def noise_calls(w: Workloads, rounds: int) -> tuple[int, int, float]:
    """(OpenDP calls per release, cells, median seconds of ``compiled.noise``) for the
    benchmark query on the stored copy, with the engine result computed once."""
    s, h = w.session, w.holder
    ds = h._dataset("synth")
    compiled = compile_release(s, w.queries["pets-copy"].plan, w.protection)
    exact_df = h._engine.aggregate(ds.source, compiled.request())
    compiled.noise(exact_df)
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        compiled.noise(exact_df)
        ts.append(time.perf_counter() - t)
    return len(compiled.scales), compiled.cells, median(ts)


class _SqlRecorder:
    """Stands in for an engine's DuckDB connection to capture the SQL it sends."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.sql: str | None = None
        self.params: list[Any] | None = None

    def cursor(self) -> Any:
        rec, cur = self, self._con.cursor()

        class _Cur:
            def execute(self, sql: str, params: Any = None) -> Any:
                rec.sql, rec.params = sql, list(params or [])
                return cur.execute(sql, params)

            def close(self) -> None:
                cur.close()

        return _Cur()

    def execute(self, *a: Any, **k: Any) -> Any:
        return self._con.execute(*a, **k)


def pets_sql(w: Workloads, mode: str = "pets-copy") -> tuple[str, list[Any]]:
    """The SQL and parameters pets' DuckDB engine sends for the benchmark query."""
    from pets.engines.duckdb import DuckDBEngine

    ds = w.holder._dataset(DATASETS[mode])
    compiled = compile_release(w.session, w.queries[mode].plan, w.protection)
    eng = DuckDBEngine()
    rec = _SqlRecorder(eng._con)
    eng._con = rec  # type: ignore[assignment]
    eng.aggregate(ds.source, compiled.request())
    assert rec.sql is not None and rec.params is not None
    return rec.sql, rec.params


def sql_variants(w: Workloads) -> dict[str, tuple[str, str, list[Any]]]:
    """The engine query pets sends in each mode, next to hand-written variants that each
    add one ingredient to the plain group-by on the same file (so the cost of each is
    visible whatever SQL the engine currently generates). Values: (file, sql, params),
    file = "original" or "copy"."""
    from pets.engines.duckdb import ENCODED_PREFIX

    sql_c, params_c = pets_sql(w, "pets-copy")
    sql_i, params_i = pets_sql(w, "pets-inplace")
    po, pc = _sql_str(w.path), _sql_str(w.copy_path)
    lo, hi = float(BOUNDS[0]), float(BOUNDS[1])
    x = "income::DOUBLE"
    clamp_if = f"if({x} > {hi!r}, {hi!r}, if({x} < {lo!r}, {lo!r}, {x}))"
    fx = f'"{ENCODED_PREFIX}income"'
    head = "SELECT region, count(*), count(income), "

    def tail(p: str) -> str:
        return f" FROM read_parquet({p}) GROUP BY region"

    return {
        "plain group-by, original file (baseline)": ("original", PLAIN_SQL.format(path=po), []),
        "pets' engine SQL, in place, as sent": ("original", sql_i, params_i),
        "orig.: `count(*), count(income), sum(income)`": ("original", head + "sum(income)" + tail(po), []),
        "orig.: … sum of the clamped value, `if()` clamp, DOUBLE": (
            "original", head + f"sum({clamp_if})" + tail(po), []),
        "orig.: … fixed-point `coalesce(sum((clamp * 10^4)::BIGINT), 0)`": (
            "original", head + f"coalesce(sum(({clamp_if} * 10000)::BIGINT), 0)::BIGINT" + tail(po), []),
        "plain group-by, pets' copy file (baseline)": ("copy", PLAIN_SQL.format(path=pc), []),
        "pets' engine SQL, stored copy, as sent": ("copy", sql_c, params_c),
        "copy: `count(*), count(income), sum(income)`": ("copy", head + "sum(income)" + tail(pc), []),
        "copy: `count(*), count(income), sum(<int32 fixed-point column>)`": (
            "copy", head + f"sum({fx})" + tail(pc), []),
        "copy: … as `coalesce(sum(<int32>), 0)::BIGINT`": (
            "copy", head + f"coalesce(sum({fx}), 0)::BIGINT" + tail(pc), []),
        "copy: `count(*), sum(income)` only": ("copy", "SELECT region, count(*), sum(income)" + tail(pc), []),
        "copy: `count(*), sum(<int32>)` only": ("copy", f"SELECT region, count(*), sum({fx})" + tail(pc), []),
    }


def time_sql_variants(
    w: Workloads, rounds: int, contention: Contention | None = None
) -> dict[str, list[float]]:
    con = w.con  # the DuckDB instance pets' engine uses (see Workloads)
    variants = sql_variants(w)
    funcs: dict[str, Callable[[], Any]] = {
        name: functools.partial(_run_sql, con, sql, params)
        for name, (_f, sql, params) in variants.items()
    }
    return time_interleaved(funcs, rounds, contention=contention)


def _run_sql(con: Any, sql: str, params: list[Any]) -> Any:
    return con.cursor().execute(sql, params).df()


def _append_call(box: list[Any], fn: Callable[[Any], Any], arg: Any) -> None:
    box.append(fn(arg))


def ledger_growth(w: Workloads, releases: int) -> tuple[float, float]:
    """Median budget-check + charge time with the ledger as it is, then after
    ``releases`` more charges on the same (analyst, dataset, purpose)."""
    from pets.cost import Cost

    s, st = w.session, w.holder._store
    rec = {"kind": "dp", "plan": w.query.plan.to_dict(), "protection": w.protection.to_dict()}

    def one() -> float:
        t = time.perf_counter()
        st.budget_state(s.analyst, "synth", s.purpose)
        st.charge("bench", "synth", "bench", Cost(1.0), dict(rec))
        return time.perf_counter() - t

    before = median([one() for _ in range(15)])
    for _ in range(releases):
        st.charge("bench", "synth", "bench", Cost(1.0), dict(rec))
    after = median([one() for _ in range(15)])
    return before, after


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, str]:
    from importlib.metadata import version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    row = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()
    threads = row[0] if row else "?"
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "pets"],
                               capture_output=True, text=True, check=True).stdout.split("\n")
        changed = sorted(line[3:] for line in dirty if line.strip())
        tree = head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        tree = "unknown"
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "Python": platform.python_version(),
        "DuckDB": duckdb.__version__ + f" (threads = {threads})",
        "OpenDP": version("opendp"),
        "pandas": pd.__version__,
        "pyarrow": version("pyarrow"),
        "numpy": np.__version__,
        "pets": f"{pets.__version__} (tree {tree})",
    }


TARGET = 1.3  # the issue: a DP release at most 1.3x the plain DuckDB group-by at 10M rows


def results_table(res: dict[int, dict[str, list[float]]]) -> str:
    """Medians per workload."""
    names = list(LABELS)
    lines = ["| rows | " + " | ".join(LABELS[n] for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    for rows, r in res.items():
        lines.append(f"| {rows:,} | " + " | ".join(fmt_s(median(r[n])) for n in names) + " |")
    return "\n".join(lines)


def ratio_rows(res: dict[int, dict[str, list[float]]], stat: Callable[[list[float]], float] = median
               ) -> list[dict[str, Any]]:
    """Per size and pets mode: the ratios of its median (or ``stat``) to each baseline."""
    out = []
    for rows, r in res.items():
        m = {k: stat(v) for k, v in r.items()}
        for mode, same in MODES.items():
            out.append({
                "rows": rows, "mode": mode, "pets": m[mode],
                "headline": m[mode] / m[same],
                "vs duckdb": m[mode] / m["duckdb"], "vs duckdb-copy": m[mode] / m["duckdb-copy"],
                "vs pandas": m[mode] / m["pandas"], "vs pandas+read": m[mode] / m["pandas+read"],
            })
    return out


def ratios_table(res: dict[int, dict[str, list[float]]]) -> str:
    lines = [
        ("| rows | pets mode | release | **÷ plain DuckDB on the same file (headline)** "
        "| ÷ DuckDB, original file | ÷ DuckDB, copy file | ÷ pandas (in memory) "
        "| ÷ pandas incl. read | headline on minima |"),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mins = {(x["rows"], x["mode"]): x for x in ratio_rows(res, min)}
    for x in ratio_rows(res):
        target = ""
        if x["rows"] >= 10_000_000:
            target = " ✓" if x["headline"] <= TARGET else " ✗"
        lines.append(
            f"| {x['rows']:,} | {LABELS[x['mode']]} | {fmt_s(x['pets'])} | "
            f"**{x['headline']:.2f}×**{target} | {x['vs duckdb']:.2f}× | {x['vs duckdb-copy']:.2f}× | "
            f"{x['vs pandas']:.2f}× | {x['vs pandas+read']:.2f}× | "
            f"{mins[(x['rows'], x['mode'])]['headline']:.2f}× |"
        )
    return "\n".join(lines)


def spread_table(res: dict[int, dict[str, list[float]]]) -> str:
    lines = ["| rows | workload | rounds | min | median | max |",
             "|---:|---|---:|---:|---:|---:|"]
    for rows, r in res.items():
        for name, xs in r.items():
            lines.append(f"| {rows:,} | {LABELS[name]} | {len(xs)} | {fmt_s(min(xs))} | "
                         f"{fmt_s(median(xs))} | {fmt_s(max(xs))} |")
    return "\n".join(lines)


def registration_table(reg: dict[int, dict[str, float | None]], sizes: dict[int, dict[str, int]]) -> str:
    lines = [("| rows | `register(..., copy=True)` (stored copy) | copy file size | "
             "`register(path)` (in place) | original file size |"),
             "|---:|---:|---:|---:|---:|"]
    for rows, r in reg.items():
        def f(x: float | None) -> str:
            return fmt_s(x) if x is not None else "(already registered)"
        lines.append(f"| {rows:,} | {f(r['synth'])} | {sizes[rows]['copy'] / 1e6:.0f} MB | "
                     f"{f(r['synth_inplace'])} | {sizes[rows]['original'] / 1e6:.0f} MB |")
    return "\n".join(lines)


def phases_table(ph: dict[int, dict[str, dict[str, list[float]]]]) -> str:
    cols = [(r, mode) for r in ph for mode in MODES]
    head = "| phase | " + " | ".join(
        f"{r:,} rows, {'stored copy' if m == 'pets-copy' else 'in place'}" for r, m in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for p in PHASES + ("total",):
        cells = []
        for r, mode in cols:
            d = ph[r][mode]
            m, tot = median(d[p]), median(d["total"])
            cells.append(f"{fmt_s(m)} ({100 * m / tot:.0f}%)" if p != "total" else f"**{fmt_s(m)}**")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    cells = []
    for r, mode in cols:
        d = ph[r][mode]
        outside = [t - e for t, e in zip(d["total"], d["engine query"])]
        cells.append(fmt_s(median(outside)))
    lines.append("| total minus engine query (per release) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variants_table(v: dict[int, dict[str, list[float]]], files: dict[str, str]) -> str:
    sizes = list(v)
    head = "| engine query | " + " | ".join(f"{r:,} rows" for r in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]
    base = {"original": "plain group-by, original file (baseline)",
            "copy": "plain group-by, pets' copy file (baseline)"}
    for name in next(iter(v.values())):
        cells = []
        for r in sizes:
            m, b = median(v[r][name]), median(v[r][base[files[name]]])
            cells.append(f"{fmt_s(m)} ({m / b:.2f}×)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    ap.add_argument("--rounds", type=int, default=21, help="timed rounds per workload (default 21)")
    ap.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    ap.add_argument("--no-contention-guard", dest="guard", action="store_false",
                    help="keep rounds during which other processes used the CPU")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the markdown here (default benchmarks/.data/results.md)")
    args = ap.parse_args(argv)

    info = machine_info()
    out = [f"# pets DP group-by benchmark ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += [f"- command: `python benchmarks/compare_dp.py {' '.join(argv or sys.argv[1:])}`".rstrip(),
            f"- rounds: {args.rounds} per workload, interleaved, after 1 warm-up round", ""]
    print("\n".join(out), flush=True)

    res: dict[int, dict[str, list[float]]] = {}
    reg: dict[int, dict[str, float | None]] = {}
    sizes: dict[int, dict[str, int]] = {}
    phases: dict[int, dict[str, dict[str, list[float]]]] = {}
    variants: dict[int, dict[str, list[float]]] = {}
    files: dict[str, str] = {}
    sql_text: dict[str, str] = {}
    growth: tuple[float, float] | None = None
    noise: tuple[int, int, float] | None = None
    cont = Contention() if args.guard else None
    for rows in args.rows:
        t = time.perf_counter()
        path = dataset_path(rows)
        print(f"[{rows:,} rows] data {path} ({path.stat().st_size / 1e6:.0f} MB, "
              f"{time.perf_counter() - t:.1f} s)", flush=True)
        home = Path(tempfile.mkdtemp(prefix="pets-bench-home-"))
        if cont is not None:
            _wait_quiet(10.0)  # registration is timed once: do it on a quiet machine
        w = Workloads(rows, path, home)
        try:
            reg[rows] = dict(w.register_s)
            sizes[rows] = {"original": path.stat().st_size, "copy": w.copy_path.stat().st_size}
            print(f"[{rows:,} rows] registration: stored copy {fmt_s(reg[rows]['synth'] or 0.0)}, "
                  f"in place {fmt_s(reg[rows]['synth_inplace'] or 0.0)}", flush=True)
            _ = w.df  # load the in-memory frame outside the timings
            w.check()
            res[rows] = time_interleaved(w.by_name(), args.rounds, contention=cont)
            print(ratios_table({rows: res[rows]}), flush=True)
            if args.breakdown:
                phases[rows] = release_phases(w, args.rounds, cont)
                variants[rows] = time_sql_variants(w, args.rounds, cont)
                if rows == args.rows[0]:
                    files = {k: f for k, (f, _s, _a) in sql_variants(w).items()}
                    for mode in MODES:
                        sql_text[mode] = pets_sql(w, mode)[0].replace(str(w.copy_path), "<copy>") \
                            .replace(str(w.path.resolve()), "<original>")
                    noise = noise_calls(w, args.rounds)
                    growth = ledger_growth(w, 2000)
        finally:
            w.close()
            shutil.rmtree(home, ignore_errors=True)
            w._df = None

    body = ["## Medians", "", results_table(res), "",
            ("## Ratios (medians; the headline compares each mode with plain DuckDB on the "
            "file it reads)"), "", ratios_table(res), "",
            (f"Target from the issue: a DP release ≤ {TARGET}× the plain DuckDB group-by at 10M "
            "rows (✓ met, ✗ not met, on the headline ratio)."), "",
            "## Registration (once per size, not in the timings above)", "",
            registration_table(reg, sizes), "",
            "### Spread", "", spread_table(res), ""]
    if cont is not None:
        body += [(f"Contention guard: {cont.retried} timed calls were repeated because other "
                 f"processes used more than a tenth of a core meanwhile; {cont.accepted} were "
                 "kept after 5 repeats (the medians are "
                 "trustworthy when that number is small; the minima are less sensitive to "
                 "contention)."), ""]
    if phases:
        body += ["## Where a release's time goes (Session.release replayed phase by phase)", "",
                 phases_table(phases), ""]
        if noise is not None:
            body += [(f"`compiled.noise` alone: {noise[0]} OpenDP calls over {noise[1]} cells, "
                     f"{fmt_s(noise[2])} (median)."), ""]
        body += [("## Engine query: pets' SQL vs variants (same DuckDB database; ratios to "
                 "the plain group-by on the same file)"), "",
                 variants_table(variants, files), ""]
        if growth is not None:
            body += [(f"Budget check + ledger/audit commit: {fmt_s(growth[0])} with a near-empty "
                     f"ledger, {fmt_s(growth[1])} after 2,000 more charges to the same "
                     "(analyst, dataset, purpose)."), ""]
        for mode, text in sql_text.items():
            body += [f"Engine SQL as sent by {LABELS[mode]}:", "", "```sql", text, "```", ""]
    text = "\n".join(out + body)
    print("\n".join(body))
    dest = args.out or (DATA_DIR / "results.md")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text + "\n")
    raw = {"info": info, "rounds": args.rounds, "workloads": res, "registration": reg,
           "file_sizes": sizes, "ratios": ratio_rows(res), "phases": phases,
           "engine_sql": variants, "noise": noise, "ledger_growth": growth}
    dest.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print(f"written to {dest} (raw timings: {dest.with_suffix('.json').name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
