"""DP count / sum / mean by region: pets vs OpenDP (and PipelineDP), same run, same data.

Run from the repository root::

    python benchmarks/compare_dp_peers.py                      # 1M rows, 7 rounds
    python benchmarks/compare_dp_peers.py --rows 200000 --rounds 3 --pdp-rounds 0

Data (numpy, seeded; the DATA only — every library draws its own noise): ``rows`` rows,
``region`` with 50 string keys (mildly skewed), ``income`` lognormal clamped to
[0, 200000] in the data itself. Two datasets:

* ``a``  one row per person, no person id. pets: policy without ``privacy_unit``;
  OpenDP: ``unit_of(contributions=1)``; PipelineDP: the row index as privacy id,
  1 partition × 1 contribution.
* ``b``  five rows per person (``rows / 5`` persons, ``person_id`` int64), each row's
  region drawn independently, so most people touch 5 distinct regions and the group
  bound binds. Bounds, the same for every library: at most **3 regions per person**
  and **5 rows per person and region**. pets: ``privacy_unit = "person_id"``,
  ``max_groups = 3``, ``max_rows_per_group = 5``; OpenDP:
  ``unit_of(contributions=1, identifier="person_id")`` then
  ``truncate_per_group(5, by=[region])`` and ``truncate_num_groups(3, by=[region],
  keep="first")`` (``keep="sample"`` fails at collect on 0.16.0); PipelineDP:
  ``max_partitions_contributed=3``, ``max_contributions_per_partition=5``.

ε = 1 for the whole release, split as each library does (pets: its own split over the
measures; OpenDP: one query, one global scale over the three expressions; PipelineDP:
its budget accountant, Laplace, δ = 0 with public partitions).

Timed workloads, interleaved rounds in a rotating order, medians:

* ``duckdb-df``      plain ``SELECT region, count(*), sum(income), avg(income) ... GROUP
                     BY region`` on the pandas frame, on pets' own DuckDB database
                     (``holder._engine._con``);
* ``duckdb-copy``    the same plain query on the Parquet copy pets stored at registration
                     (headline baseline for ``pets-copy``);
* ``duckdb-file``    the same on the Parquet file pets reads in place (baseline for
                     ``pets-inplace``);
* ``pets-copy``      ``session.release(q, pets.DP(epsilon=1))`` on the DataFrame
                     registered with ``holder.register(name, df, policy)`` (stored copy);
* ``pets-inplace``   the same on the Parquet file registered by path (read in place);
* ``polars``         plain Polars group-by on the in-memory LazyFrame (OpenDP's baseline);
* ``opendp-context`` ``dp.Context.compositor(...)`` + query + ``release().collect()``
                     per round (a fresh context each time; includes OpenDP's scale search);
* ``opendp-direct``  ``dp.m.make_private_lazyframe(..., global_scale=s)`` + invoke +
                     collect on the in-memory LazyFrame, the scale ``s`` found once
                     outside the timed part;
* ``opendp-direct-parquet``  the same measurement invoked on ``pl.scan_parquet(file)``.

PipelineDP (``LocalBackend``, pure Python) is timed ``--pdp-rounds`` times outside the
interleaving (it takes tens of seconds). SmartNoise SQL needs opendp < 0.15, so it
cannot share this interpreter: with ``--smartnoise-python PY`` it runs
``peer_smartnoise.py`` in the venv of ``PY`` on the same Parquet file, in the same run
(``--sn-rounds`` times, after the interleaved rounds).

``--profile`` (on by default) times pets' engine SQL for dataset ``b`` (as sent: the
per-person ordinals stored in the copy; and the window-function fallback pets uses
where they do not fit) and alternative SQL shapes of the same bounding directly in
DuckDB on the same database and file.
``--pets-only`` times only plain DuckDB and pets (for a quick run in a quiet moment).
Results go to stdout and ``benchmarks/.data/peers.md`` / ``peers.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import compare_dp as C  # timing helpers and the SQL recorder
import numpy as np
import pandas as pd

import pets

SEED = 20_240_601
REGIONS = tuple(f"region_{i:02d}" for i in range(50))
BOUNDS = (0.0, 200_000.0)
ROWS_PER_PERSON = 5
MAX_GROUPS = 3
MAX_ROWS_PER_GROUP = 5
EPSILON = 1.0

PLAIN = ("SELECT region, count(*) AS n, sum(income) AS total, avg(income) AS avg "
         "FROM {src} GROUP BY region")


def make_data(rows: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng([SEED, rows])
    w = np.linspace(1.0, 3.0, len(REGIONS))
    idx = rng.choice(len(REGIONS), size=rows, p=w / w.sum())
    income = np.clip(np.round(rng.lognormal(10.6, 0.8, size=rows), 2), *BOUNDS)
    region = np.asarray(REGIONS, dtype=object)[idx]
    a = pd.DataFrame({"region": region, "income": income})
    persons = rows // ROWS_PER_PERSON
    pid = np.repeat(np.arange(persons, dtype=np.int64), ROWS_PER_PERSON)
    pid = pid[rng.permutation(len(pid))]  # a person's rows are scattered over the table
    b = pd.DataFrame({"person_id": pid, "region": region[: len(pid)], "income": income[: len(pid)]})
    return {"a": a, "b": b}


def policy(kind: str) -> dict[str, Any]:
    p: dict[str, Any] = {
        "columns": {
            "region": {"role": "attribute", "grade": 1, "keys": list(REGIONS)},
            "income": {"role": "attribute", "grade": 1, "bounds": list(BOUNDS)},
        },
        "grades": {"1": {"allow": ["dp"]}},
    }
    if kind == "b":
        p["dataset"] = {"privacy_unit": "person_id", "max_groups": MAX_GROUPS,
                        "max_rows_per_group": MAX_ROWS_PER_GROUP}
    return p


class Setup:
    def __init__(self, kind: str, df: pd.DataFrame, home: Path, peers: bool = True) -> None:
        from pets.engines.duckdb import DuckDBEngine

        self.kind, self.df, self.peers = kind, df, peers
        self.engine = DuckDBEngine()
        self.con = self.engine._con
        self.holder = pets.Holder(home / "home", engine=self.engine)
        self.file = home / f"{kind}.parquet"
        df.to_parquet(self.file, index=False, row_group_size=122_880)
        self.register_s: dict[str, float] = {}
        for name, src in (("copy", df), ("inplace", str(self.file))):
            t = time.perf_counter()
            self.holder.register(name, src, policy(kind))
            self.register_s[name] = time.perf_counter() - t
            self.holder.grant("bench", dataset=name, purpose="bench", epsilon=1e9)
        self.copy_path = Path(self.holder._dataset("copy").source.path)
        self.session = self.holder.session("bench", purpose="bench")
        self.protection = pets.DP(epsilon=EPSILON)
        self.queries = {n: self.session.table(n).group_by("region").agg(
            n=pets.count(), total=pets.sum("income", bounds=BOUNDS),
            avg=pets.mean("income", bounds=BOUNDS)) for n in ("copy", "inplace")}
        self.sql = {
            "duckdb-df": PLAIN.format(src="raw_df"),
            "duckdb-copy": PLAIN.format(src=f"read_parquet({C._sql_str(self.copy_path)})"),
            "duckdb-file": PLAIN.format(src=f"read_parquet({C._sql_str(self.file)})"),
        }
        self.scale, self.scale_search_s = float("nan"), 0.0
        if peers:
            self._opendp_setup()

    # ---------------------------------------------------------------- OpenDP
    def _opendp_setup(self) -> None:
        import opendp.prelude as dp
        import polars as pl

        dp.enable_features("contrib")
        self.dp, self.pl = dp, pl
        self.lf = pl.from_pandas(self.df).lazy()
        self.margin = dp.polars.Margin(by=[pl.col("region")], max_length=len(self.df),
                                          max_groups=len(REGIONS))
        if self.kind == "a":
            self.unit = dp.unit_of(contributions=1)
        else:
            self.unit = dp.unit_of(contributions=1, identifier=pl.col("person_id"))
        # direct path: the domain, metric and plan a Context would build, scale once
        domain = dp.with_margin(dp.domain_of(self.lf, infer=True), self.margin)
        # the plan is built on an empty frame with the same schema: a plan holding the
        # data would be serialised into every constructor call of the scale search
        plan = self._bounded(pl.LazyFrame(schema=self.lf.collect_schema()))
        self.keys = pl.LazyFrame({"region": list(REGIONS)})
        # public keys: a left join of the key-set with the aggregate (what with_keys writes)
        plan = self.keys.join(plan.group_by("region").agg(self._exprs()), how="left", on=["region"],
                              nulls_equal=True)
        self._direct_args = (domain, self.unit[0], dp.max_divergence(), plan)

        def make(s: float) -> Any:
            return dp.m.make_private_lazyframe(*self._direct_args[:3], lazyframe=plan, global_scale=s)

        t = time.perf_counter()
        self.scale = dp.binary_search_param(make, self.unit[1], EPSILON, T=float)
        self.scale_search_s = time.perf_counter() - t

    def _exprs(self) -> list[Any]:
        pl = self.pl
        inc = pl.col("income").fill_null(0.0).fill_nan(0.0)
        return [pl.len().dp.noise().alias("n"), inc.dp.sum(BOUNDS).alias("total"),
                inc.dp.mean(BOUNDS).alias("avg")]

    def _bounded(self, lf: Any) -> Any:
        """OpenDP's truncations, written as its LazyFrameQuery methods write them."""
        pl = self.pl
        if self.kind == "a":
            return lf
        lf = lf.filter(pl.int_range(pl.len()).shuffle().over("person_id", "region") < MAX_ROWS_PER_GROUP)
        ranks = pl.struct("region").rank("dense", descending=False)
        return lf.filter(ranks.over("person_id") < MAX_GROUPS)

    def pets_release(self, name: str) -> Any:
        """A fresh release each call, at ε = 1 exactly. pets answers a repeated identical
        query from its ledger (no engine query, no noise), so each call names the mean's
        output differently (``avg1``, ``avg2`` ...): a new query with the same engine work
        and the same noise scales — as an analyst asking many questions at one ε. The
        noise tables of pets.dp.fast for those scales are then built by the first call
        (untimed warm-up) and reused."""
        self._calls = getattr(self, "_calls", 0) + 1
        q = self.session.table(name).group_by("region").agg(
            n=pets.count(), total=pets.sum("income", bounds=BOUNDS),
            **{f"avg{self._calls}": pets.mean("income", bounds=BOUNDS)})
        r = self.session.release(q, pets.DP(epsilon=EPSILON))
        assert r.spent.epsilon > 0, "answered from the ledger, not released"
        return r.df

    def opendp_context(self) -> Any:
        dp = self.dp
        ctx = dp.Context.compositor(data=self.lf, privacy_unit=self.unit,
                                    privacy_loss=dp.loss_of(epsilon=EPSILON),
                                    split_evenly_over=1, margins=[self.margin])
        q = ctx.query()
        if self.kind == "b":
            q = q.truncate_per_group(MAX_ROWS_PER_GROUP, by=["region"]).truncate_num_groups(
                MAX_GROUPS, by=["region"], keep="first")
        return q.group_by("region").agg(self._exprs()).with_keys(self.keys).release().collect()

    def opendp_direct(self) -> Any:
        m = self.dp.m.make_private_lazyframe(*self._direct_args[:3], lazyframe=self._direct_args[3],
                                             global_scale=self.scale)
        return m(self.lf).collect()

    def opendp_direct_parquet(self) -> Any:
        """The same measurement on ``pl.scan_parquet`` of the file: an in-memory frame is
        serialised into OpenDP's Rust core on every call (opendp #2232), a scan is not."""
        m = self.dp.m.make_private_lazyframe(*self._direct_args[:3], lazyframe=self._direct_args[3],
                                             global_scale=self.scale)
        return m(self.pl.scan_parquet(self.file)).collect()

    def polars(self) -> Any:
        pl = self.pl
        return self.lf.group_by("region").agg(pl.len().alias("n"), pl.col("income").sum().alias("total"),
                                             pl.col("income").mean().alias("avg")).collect()

    # ---------------------------------------------------------------- PipelineDP
    def pipeline_dp(self) -> Any:
        import pipeline_dp

        acc = pipeline_dp.NaiveBudgetAccountant(total_epsilon=EPSILON, total_delta=0.0)
        engine = pipeline_dp.DPEngine(acc, pipeline_dp.LocalBackend())
        b = self.kind == "b"
        params = pipeline_dp.AggregateParams(
            noise_kind=pipeline_dp.NoiseKind.LAPLACE,
            metrics=[pipeline_dp.Metrics.COUNT, pipeline_dp.Metrics.SUM, pipeline_dp.Metrics.MEAN],
            max_partitions_contributed=MAX_GROUPS if b else 1,
            max_contributions_per_partition=MAX_ROWS_PER_GROUP if b else 1,
            min_value=BOUNDS[0], max_value=BOUNDS[1])
        ex = pipeline_dp.DataExtractors(privacy_id_extractor=lambda r: r[0],
                                        partition_extractor=lambda r: r[1],
                                        value_extractor=lambda r: r[2])
        res = engine.aggregate(self._pdp_rows, params, ex, public_partitions=list(REGIONS))
        acc.compute_budgets()
        return list(res)

    @property
    def _pdp_rows(self) -> list[tuple[Any, ...]]:
        if not hasattr(self, "_rows_cache"):
            ids = self.df["person_id"].to_numpy() if self.kind == "b" else np.arange(len(self.df))
            self._rows_cache = list(zip(ids.tolist(), self.df["region"].tolist(), self.df["income"].tolist()))
        return self._rows_cache

    # ---------------------------------------------------------------- all
    def funcs(self) -> dict[str, Callable[[], Any]]:
        def run(sql: str) -> Callable[[], Any]:
            def f() -> Any:
                cur = self.con.cursor()  # a cursor per call, as pets does; the frame is
                cur.register("raw_df", self.df)  # a zero-copy view, visible to this cursor only
                return cur.execute(sql).df()
            return f

        f: dict[str, Callable[[], Any]] = {k: run(v) for k, v in self.sql.items()}
        f["pets-copy"] = lambda: self.pets_release("copy")
        f["pets-inplace"] = lambda: self.pets_release("inplace")
        if not self.peers:
            return f
        f["polars"] = self.polars
        f["opendp-context"] = self.opendp_context
        f["opendp-direct"] = self.opendp_direct
        f["opendp-direct-parquet"] = self.opendp_direct_parquet
        return f

    def check(self) -> dict[str, Any]:
        """Every workload answers the same question; kept rows after bounding."""
        exact = self.funcs()["duckdb-df"]().set_index("region").sort_index()
        out: dict[str, Any] = {}
        runs = [("pets-copy", self.funcs()["pets-copy"])]
        if self.peers:
            runs += [("opendp-direct", self.opendp_direct), ("opendp-context", self.opendp_context),
                     ("opendp-direct-parquet", self.opendp_direct_parquet)]
        for name, fn in runs:
            r = fn()
            r = (r.to_pandas() if hasattr(r, "to_pandas") else r).set_index("region").sort_index()
            assert len(r) == len(REGIONS), (name, len(r))
            out[name] = float(r["n"].sum() / exact["n"].sum())  # share of rows kept
        return out


# --------------------------------------------------------------------------- profile

def profile_sql(s: Setup, rounds: int) -> dict[str, Any]:
    """pets' engine SQL for dataset b (stored ordinals, and the window fallback) vs
    alternative shapes of the same bounding."""
    import dataclasses

    ds = s.holder._dataset("copy")
    compiled = C.compile_release(s.session, s.queries["copy"].plan, s.protection)
    from pets.engines.duckdb import DuckDBEngine

    def record(request: Any) -> tuple[str, list[Any]]:
        eng = DuckDBEngine()
        rec = C._SqlRecorder(eng._con)
        eng._con = rec  # type: ignore[assignment]
        eng.aggregate(ds.source, request)
        eng._con = rec._con
        eng._con.close()
        assert rec.sql is not None and rec.params is not None
        return rec.sql, rec.params

    request = compiled.request()
    pets_sql, params = record(request)
    assert request.bounding is not None
    window_sql, window_params = record(dataclasses.replace(
        request, bounding=dataclasses.replace(request.bounding, use_ordinals=False)))
    src = f"read_parquet({C._sql_str(s.copy_path)})"
    # DuckDB refuses volatile ORDER BY in a window: random() is a column, as pets does
    rsrc = f"(SELECT *, random() AS r FROM {src})"
    keys = "region IN (" + ", ".join("'" + k + "'" for k in REGIONS) + ")"
    meas = ("count(*) AS n, coalesce(sum(__pets_fx__income), 0)::BIGINT AS total")
    G, K, seed = MAX_GROUPS, MAX_ROWS_PER_GROUP, 12345
    v: dict[str, str] = {
        "plain group-by (copy file)": f"SELECT region, {meas} FROM {src} GROUP BY region",
        "scan+filter only (no window)": f"SELECT region, {meas} FROM {src} WHERE {keys} AND person_id IS NOT NULL GROUP BY region",
        "only row_number window": (
            f"SELECT region, {meas} FROM (SELECT *, row_number() OVER (PARTITION BY person_id, region "
            f"ORDER BY r) AS rn FROM {rsrc} WHERE {keys}) WHERE rn <= {K} GROUP BY region"),
        "only dense_rank window": (
            f"SELECT region, {meas} FROM (SELECT *, dense_rank() OVER (PARTITION BY person_id ORDER BY "
            f"hash(person_id, region, {seed}), region) AS gr FROM {src} WHERE {keys}) WHERE gr <= {G} GROUP BY region"),
        "A: two windows, one SELECT (no random() column)": (
            f"SELECT region, {meas} FROM (SELECT *, row_number() OVER (PARTITION BY person_id, region "
            f"ORDER BY r) AS rn, dense_rank() OVER (PARTITION BY person_id ORDER BY "
            f"hash(person_id, region, {seed}), region) AS gr FROM {rsrc} WHERE {keys}) "
            f"WHERE rn <= {K} AND gr <= {G} GROUP BY region"),
        "E: one sort per person: row_number and rank over (person ORDER BY h, region[, r])": (
            # rows within a group = row_number over (h, region, r) - rank over (h, region) + 1;
            # both windows share PARTITION BY person and an order prefix
            f"SELECT region, {meas} FROM (SELECT *, dense_rank() OVER wg AS gr, "
            f"row_number() OVER wr - rank() OVER wg + 1 AS rn FROM (SELECT *, hash(person_id, region, {seed}) AS h "
            f"FROM {rsrc} WHERE {keys}) WINDOW wg AS (PARTITION BY person_id ORDER BY h, region), "
            f"wr AS (PARTITION BY person_id ORDER BY h, region, r)) "
            f"WHERE rn <= {K} AND gr <= {G} GROUP BY region"),
        "B: pre-aggregate per (person, region), then rank groups": (
            # rows per (person, region) sampled inside the aggregate; then one window over
            # the (smaller) per-(person, region) table
            f"WITH pg AS (SELECT person_id, region, least(count(*), {K}) AS n, "
            f"list_sum(list_slice(list(__pets_fx__income ORDER BY random()), 1, {K})) AS s "
            f"FROM {src} WHERE {keys} GROUP BY person_id, region) "
            f"SELECT region, sum(n)::BIGINT AS n, coalesce(sum(s), 0)::BIGINT AS total FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY hash(person_id, region, {seed}), region) AS gr "
            f"FROM pg) WHERE gr <= {G} GROUP BY region"),
        "C: pre-aggregate, groups by per-person arg_min list (no window)": (
            f"WITH pg AS (SELECT person_id, region, least(count(*), {K}) AS n, "
            f"list_sum(list_slice(list(__pets_fx__income ORDER BY random()), 1, {K})) AS s, "
            f"hash(person_id, region, {seed}) AS h FROM {src} WHERE {keys} GROUP BY person_id, region), "
            f"th AS (SELECT person_id, list_sort(list(h))[{G}] AS t FROM pg GROUP BY person_id) "
            f"SELECT region, sum(n)::BIGINT AS n, coalesce(sum(s), 0)::BIGINT AS total FROM pg "
            f"LEFT JOIN th USING (person_id) WHERE t IS NULL OR h <= t GROUP BY region"),
        "D: pre-aggregate with count/sum when <= K rows, list only otherwise": (
            f"WITH pg AS (SELECT person_id, region, count(*) AS c, sum(__pets_fx__income) AS s0, "
            f"CASE WHEN count(*) > {K} THEN list_sum(list_slice(list(__pets_fx__income ORDER BY random()), 1, {K})) END AS s1 "
            f"FROM {src} WHERE {keys} GROUP BY person_id, region) "
            f"SELECT region, sum(least(c, {K}))::BIGINT AS n, coalesce(sum(coalesce(s1, s0)), 0)::BIGINT AS total FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY hash(person_id, region, {seed}), region) AS gr "
            f"FROM pg) WHERE gr <= {G} GROUP BY region"),
    }
    # The shape pets now uses (its ordinals are stored at registration; this is the
    # first hand-written version): per-person ordinals computed ONCE (at registration,
    # into the stored copy); a release then needs no window, only a row-wise predicate. __gi: the row's
    # group among the person's groups, __ng: how many groups the person has, __ri: the
    # row among the person's rows in that group (random order), __nr: how many.
    ords = s.copy_path.with_name("ordinals.parquet")
    t = time.perf_counter()
    s.con.cursor().execute(
        f"COPY (SELECT * EXCLUDE (__r0), "
        f"(dense_rank() OVER (PARTITION BY person_id ORDER BY region) - 1)::SMALLINT AS __gi, "
        f"(count(DISTINCT region) OVER (PARTITION BY person_id))::SMALLINT AS __ng, "
        f"(row_number() OVER (PARTITION BY person_id, region ORDER BY __r0) - 1)::INTEGER AS __ri, "
        f"(count(*) OVER (PARTITION BY person_id, region))::INTEGER AS __nr "
        f"FROM (SELECT *, random() AS __r0 FROM {src})) TO {C._sql_str(ords)} "
        f"(FORMAT parquet, ROW_GROUP_SIZE 122880)")
    ordinals_s = time.perf_counter() - t
    osrc = f"read_parquet({C._sql_str(ords)})"
    # a fresh random selection per release: a random cyclic run of G of the person's
    # groups and of K of the rows per group (offsets from a keyed hash, new seed per
    # release); int casts matter: UBIGINT arithmetic made this 10x slower
    v["F: precomputed ordinals + per-release random cyclic choice (no window)"] = (
        f"SELECT region, {meas} FROM {osrc} WHERE {keys} AND "
        f"((__gi + (hash(person_id, {seed}) % 65521)::INTEGER) % __ng) < {G} AND "
        f"((__ri + (hash(person_id, region, {seed + 1}) % 65521)::INTEGER) % __nr) < {K} GROUP BY region")
    v["F': the same, row cap dropped (registration saw max rows per person-group <= K)"] = (
        f"SELECT region, {meas} FROM {osrc} WHERE {keys} AND "
        f"((__gi + (hash(person_id, {seed}) % 65521)::INTEGER) % __ng) < {G} GROUP BY region")
    v["F'': precomputed ordinals, fixed choice (__gi < G AND __ri < K)"] = (
        f"SELECT region, {meas} FROM {osrc} WHERE {keys} AND __gi < {G} AND __ri < {K} GROUP BY region")
    max_nr = s.con.cursor().execute(f"SELECT max(__nr) FROM {osrc}").fetchone()[0]
    def run(q: str, qp: list[Any] | None = None) -> Callable[[], Any]:
        return lambda: s.con.cursor().execute(q, qp).fetchnumpy()

    funcs: dict[str, Callable[[], Any]] = {
        "pets' engine SQL (as sent: stored ordinals)": run(pets_sql, params),
        "pets' fallback SQL (windows: filters, other keys, in place)": run(window_sql, window_params),
    }
    funcs.update({k: run(sql) for k, sql in v.items()})
    times = C.time_interleaved(funcs, rounds)
    # the same answer: rows kept by each bounded variant
    kept = {}
    for k, fn in funcs.items():
        r = fn()
        kept[k] = int(np.asarray(next(iter(v for c, v in r.items() if c != "region"))).sum())
    # EXPLAIN ANALYZE of pets' SQL: the operators and their times
    prof = s.con.cursor().execute("EXPLAIN ANALYZE " + pets_sql, params).fetchall()
    return {"sql": pets_sql, "times": times, "kept": kept, "explain": prof[0][1] if prof else "",
            "ordinals_s": ordinals_s, "max_rows_per_person_group": max_nr}


# --------------------------------------------------------------------------- main

LABELS = {
    "duckdb-df": "DuckDB plain, pandas frame",
    "duckdb-copy": "DuckDB plain, pets' copy file",
    "duckdb-file": "DuckDB plain, original file",
    "pets-copy": "pets, DataFrame registered (stored copy)",
    "pets-inplace": "pets, path registered (in place)",
    "polars": "Polars plain (in memory)",
    "opendp-context": "OpenDP Context API",
    "opendp-direct": "OpenDP make_private_lazyframe (scale precomputed), in-memory frame",
    "opendp-direct-parquet": "OpenDP make_private_lazyframe (scale precomputed), scan_parquet",
    "pipeline-dp": "PipelineDP LocalBackend",
    "smartnoise-sql": "SmartNoise SQL 1.0.10 (own venv, opendp 0.14.2; from_df + execute)",
}
BASE = {"pets-copy": "duckdb-copy", "pets-inplace": "duckdb-file"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pdp-rounds", type=int, default=1, help="PipelineDP runs (0: skip)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--pets-only", action="store_true",
                    help="time only plain DuckDB and pets (no OpenDP, Polars, PipelineDP or profile)")
    ap.add_argument("--smartnoise-python", default=None,
                    help="python of a venv with smartnoise-sql 1.0.10 + opendp 0.14 (see peer_smartnoise.py)")
    ap.add_argument("--sn-rounds", type=int, default=3, help="SmartNoise SQL runs per dataset")
    ap.add_argument("--out", default=str(C.DATA_DIR / "peers.md"))
    a = ap.parse_args(argv)
    vers = {p: md.version(p) for p in ("duckdb", "opendp", "polars", "pipeline-dp", "numpy", "pandas")
            if _has(p)}
    print("versions:", vers, flush=True)
    data = make_data(a.rows)
    report: dict[str, Any] = {"rows": a.rows, "rounds": a.rounds, "versions": vers, "sets": {}}
    lines = [f"rows {a.rows:,}, {a.rounds} interleaved rounds, medians; versions {vers}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("a", "b"):
            s = Setup(kind, data[kind], Path(tmp) / kind, peers=not a.pets_only)
            kept = s.check()
            cont = C.Contention()
            times = C.time_interleaved(s.funcs(), a.rounds, contention=cont)
            if a.pdp_rounds and _has("pipeline-dp") and not a.pets_only:
                times["pipeline-dp"] = [C._timed(s.pipeline_dp, None) for _ in range(a.pdp_rounds)]
            if a.smartnoise_python and not a.pets_only:
                sn = _smartnoise(a.smartnoise_python, s.file, kind, a.sn_rounds)
                times["smartnoise-sql"] = sn["times_s"]
                report.setdefault("smartnoise", {})[kind] = sn
            med = {k: statistics.median(v) for k, v in times.items()}
            base = med["duckdb-df"]
            title = ("a: one row per person" if kind == "a" else
                     f"b: {ROWS_PER_PERSON} rows per person, bounds {MAX_GROUPS} groups × {MAX_ROWS_PER_GROUP} rows")
            lines += [f"### {title}", "",
                      "| workload | median | min–max | / DuckDB plain (same source) | / DuckDB on frame |",
                      "|---|---:|---:|---:|---:|"]
            for k, v in times.items():
                same = BASE.get(k)
                r_same = f"{med[k] / med[same]:.2f}×" if same else ("—" if k.startswith("duckdb") else "")
                if k in ("polars", "opendp-context", "opendp-direct", "opendp-direct-parquet"):
                    r_same = f"{med[k] / med['polars']:.2f}× Polars"
                lines.append(f"| {LABELS[k]} | {C.fmt_s(med[k])} | {C.fmt_s(min(v))}–{C.fmt_s(max(v))} "
                             f"| {r_same} | {med[k] / base:.2f}× |")
            lines += ["", (f"share of rows kept (released n / true n): {kept}; "
                      f"OpenDP scale search (untimed for direct) {s.scale_search_s * 1e3:.0f} ms, scale {s.scale:.1f}; "
                      f"registration: copy {s.register_s['copy'] * 1e3:.0f} ms, path {s.register_s['inplace'] * 1e3:.0f} ms; "
                      f"contended rounds retried {cont.retried}, accepted {cont.accepted}"), ""]
            report["sets"][kind] = {"times": times, "kept": kept, "scale": s.scale,
                                    "scale_search_s": s.scale_search_s, "register_s": s.register_s}
            print("\n".join(lines[-(len(times) + 6):]), flush=True)
            if kind == "b" and not a.no_profile and not a.pets_only:
                p = profile_sql(s, a.rounds)
                pm = {k: statistics.median(v) for k, v in p["times"].items()}
                b0 = pm["plain group-by (copy file)"]
                lines += ["### b: pets' bounding SQL vs other shapes (DuckDB, copy file)", "",
                          "| SQL | median | / plain | rows kept |", "|---|---:|---:|---:|"]
                lines += [f"| {k} | {C.fmt_s(t)} | {t / b0:.2f}× | {p['kept'][k]:,} |" for k, t in pm.items()]
                lines += ["", (f"ordinals computed once (registration-time cost) in {p['ordinals_s'] * 1e3:.0f} ms; "
                          f"max rows per (person, region) in the data: {p['max_rows_per_person_group']}"),
                          "", "pets' SQL:", "", "```sql", p["sql"], "```", "", "EXPLAIN ANALYZE:", "", "```",
                          p["explain"], "```", ""]
                report["profile"] = {k: p[k] for k in ("sql", "times", "kept", "ordinals_s", "max_rows_per_person_group")}
                print("\n".join(lines[-(len(pm) + 18):-6]), flush=True)
            s.con.close()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out}")
    return 0


def _smartnoise(python: str, file: Path, kind: str, rounds: int) -> dict[str, Any]:
    """SmartNoise SQL's timings on the same Parquet file, from its own interpreter."""
    import subprocess

    out = subprocess.run([python, str(HERE / "peer_smartnoise.py"), "--file", str(file),
                          "--kind", kind, "--rounds", str(rounds)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"SmartNoise SQL run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def _has(p: str) -> bool:
    try:
        md.version(p)
        return True
    except md.PackageNotFoundError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
