"""``demo``, the offline ``anonymize`` file tool, ``serve`` and ``federation deal|join``."""

from __future__ import annotations

import enum
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._app import Home, app, command, err, open_home, out, print_frame, split_list, step, usage_error
from .analyst_cmds import (Algorithm, AlgorithmOpt, KOpt, LOpt, MaxSuppressionOpt, Metric,
                           MetricOpt, SensitiveOpt, TOpt,
                           Aggregation, Recoding, Search, TDistance)

__all__: list[str] = []


# -- demo ------------------------------------------------------------------------------
@command()
def demo(
    home: Annotated[Optional[str], typer.Option(
        "--home", help="A new or empty folder to keep the demo's home in (default: a new "
                       "temporary folder). PETS_HOME is not used: the demo never writes "
                       "into a real home.")] = None,
) -> None:
    """Run the main job on the bundled UCI Adult example, in a fresh home."""
    import pandas as pd

    import pets
    from pets import col

    from .. import __version__

    if home is not None:
        p = Path(home).expanduser()
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            from ..errors import DataError

            raise DataError(
                f"--home {home!r} is not an empty folder: the demo registers 'adult' and "
                "writes demo grants into its home's audit log, so it only uses a new or "
                "empty folder. Leave out --home for a temporary one")
    home = home or tempfile.mkdtemp(prefix="pets-demo-")
    c = out()
    t0 = time.perf_counter()

    def line(text: str = "") -> None:
        c.print(text, markup=False, highlight=False)

    def head(text: str) -> None:
        line()
        c.print(f"[bold cyan]== {text} ==[/]", highlight=False)

    line(f"pets {__version__} demo — raw data stays in its domain; only releases leave it.")
    head("1. The holder registers a table under a policy")
    holder = pets.Holder(home)
    line(f"  home: {holder.home}  (SQLite: datasets, grants, ledger, audit log)")
    with step("registering the UCI Adult table (32,561 rows, '?' = missing) with the example "
              "policy", c):
        holder.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
    pol = holder.policy("adult")
    line(f"  policy: {len(pol.columns)} columns graded 1–4; negative list: "
         f"{', '.join(sorted(pol.negative_list))}")
    holder.grant("alice", dataset="adult", purpose="labour-statistics", epsilon=2.0)
    line("  granted alice ε = 2.0 on 'adult' for the purpose 'labour-statistics'")

    s = holder.session("alice", purpose="labour-statistics")
    q = (s.table("adult").filter(col("age") >= 18).group_by("sex")
         .agg(n=pets.count(), avg_hours=pets.mean("hours-per-week"), avg_age=pets.mean("age")))
    head("2. The analyst asks what a release would cost — spending nothing")
    for text in str(s.explain(q, pets.DP(epsilon=0.5))).splitlines():
        line("  " + text)

    head("3. Differentially private statistics by sex (ε = 0.5)")
    with step("charging the ledger, recording the audit, adding noise", c):
        r = s.release(q, pets.DP(epsilon=0.5))
    print_frame(r.df, console=c)
    line("  95% confidence intervals:")
    print_frame(r.ci(0.95), console=c)
    line(f"  spent {r.spent}; audit record #{r.audit_id}")

    head("4. The same in SQL: people by education (ε = 0.3)")
    r2 = s.sql("SELECT education, COUNT(*) AS n FROM adult WHERE age >= 25 GROUP BY education",
               pets.DP(epsilon=0.3))
    print_frame(r2.df.sort_values("n", ascending=False).head(8), console=c)
    half = r2.ci(0.95)["upper"].iloc[0] - r2.df["n"].iloc[0]
    line(f"  … {len(r2.df)} public keys in all; each ± {half:,.0f} at 95%")

    head("5. A refused query: the policy says which rule and which column")
    try:
        s.release(s.table("adult").agg(total=pets.sum("fnlwgt", bounds=(0, 1e6))), pets.DP(epsilon=0.1))
    except pets.PolicyError as e:
        line(f"  PolicyError [{e.rule}] {e}")
    try:
        s.release(s.table("adult").agg(gain=pets.sum("capital-gain")), pets.DP(epsilon=1.5))
    except pets.PolicyError as e:
        line(f"  PolicyError [{e.rule}] {e}")
    try:
        s.release(q, pets.DP(epsilon=5.0))
    except pets.BudgetExceeded as e:
        line(f"  BudgetExceeded {e}")
    line(f"  budget left for alice: {s.remaining('adult')}")

    head("6. A k-anonymous extract: rows, generalised until every row has 4 look-alikes")
    with step("searching the generalisation lattice for the least information loss", c):
        x = s.release(
            s.table("adult").select("age", "sex", "race", "education", "marital-status",
                                    "relationship"),
            pets.KAnonymity(k=5, l=2, sensitive="relationship", max_suppression=0.02))
    print_frame(x.df.head(5), console=c)
    line(f"  transformation {x.transformation}; {x.suppressed} rows suppressed; "
         f"{x.classes} classes; loss {x.metrics['loss']:.3f}; "
         f"{x.extracts_left} more extracts allowed")

    head("7. The auditor verifies the hash-chained log")
    log = holder.audit()
    with step("verifying every record and the ledger", c):
        ok = log.verify()
    rows = []
    for rec in log.records():
        cost = rec.get("cost") or {}
        if rec["kind"] == "grant":  # the holder's act: the budget it sets
            eps = f"{rec['epsilon']:g} granted"
        else:
            eps = f"{cost['epsilon']:g} spent" if cost and rec["kind"] == "dp" else ""
        rows.append({"record": rec["id"], "analyst": rec["analyst"], "kind": rec["kind"],
                     "status": rec["status"], "rule": rec.get("rule") or "", "epsilon": eps})
    print_frame(pd.DataFrame(rows), console=c)
    line(f"  audit log intact: {ok}")
    line()
    line(f"demo finished in {time.perf_counter() - t0:.1f} s. Home kept at {holder.home}")
    line(f"next: `pets datasets --home {holder.home}`, `pets grants --home {holder.home}`, "
         "docs/cli.md, README.md (the Python tour)")


# -- anonymize (offline, ungoverned) ------------------------------------------------------
def detect_separator(path: str) -> str:
    """The field separator of a CSV file as ``Holder.register`` reads it (DuckDB's sniffer)."""
    import duckdb

    try:
        row = duckdb.connect().execute("SELECT delimiter FROM sniff_csv(?)", [path]).fetchone()
    except duckdb.Error as e:
        from ..errors import DataError

        raise DataError(f"cannot read {path!r} as CSV ({type(e).__name__})") from None
    return str(row[0]) if row and row[0] else ","


@command()
def anonymize(
    input: Annotated[str, typer.Argument(metavar="INPUT", help="The CSV file (its separator is detected, as "
                                              "`pets register` does).")],
    qi: Annotated[str, typer.Option("--qi", help="Quasi-identifiers, comma-separated.")],
    k: KOpt,
    output: Annotated[str, typer.Option("-o", "--output", help="The CSV file to write.")],
    hierarchies: Annotated[Optional[str], typer.Option(
        "--hierarchies", help="Folder of hierarchy CSVs (<col>.csv or *_hierarchy_<col>.csv).")
    ] = None,
    l: LOpt = None,
    t: TOpt = None,
    sensitive: SensitiveOpt = None,
    keep: Annotated[Optional[str], typer.Option(
        "--keep", help="Other columns to copy unchanged, comma-separated.")] = None,
    max_suppression: MaxSuppressionOpt = 0.0,
    algorithm: AlgorithmOpt = Algorithm.optimal,
    metric: MetricOpt = Metric.loss,
    sep: Annotated[Optional[str], typer.Option(
        "--sep", help="Field separator of the input (default: detected) and of the output "
                      "(default: the input's).")] = None,
    hierarchy_sep: Annotated[str, typer.Option(
        "--hierarchy-sep", help="Field separator of the hierarchy files (';' as ARX writes them).")
    ] = ";",
    missing: Annotated[Optional[list[str]], typer.Option(
        "--missing", help="A missing-value marker (repeatable).")] = None,
    gs_factor: Annotated[float, typer.Option(
        "--gs-factor", min=0.0, max=1.0,
        help="Weight of generalisation against suppression in the metric (0.5 alike; "
             "0 favours generalising, 1 suppressing).")] = 0.5,
    aggregation: Annotated[Optional[Aggregation], typer.Option(
        "--aggregation", help="How per-column losses combine (default: the metric's).")] = None,
    search: Annotated[Search, typer.Option(
        "--search", help="optimal: exhaustive; heuristic: best found in --time-limit with a "
                         "bound of the optimum; auto: heuristic for huge lattices.")] = Search.optimal,
    time_limit: Annotated[float, typer.Option(
        "--time-limit", min=0.001, help="Seconds for --search heuristic/auto.")] = 10.0,
    recoding: Annotated[Recoding, typer.Option(
        "--recoding", help="global: one level per column; local: search again on the "
                           "suppressed rows, which get their own levels; cells: replace the "
                           "fewest cells by '*' (no hierarchy needed).")] = Recoding.global_,
    max_nodes: Annotated[Optional[int], typer.Option(
        "--max-nodes", min=1, help="Bound --search heuristic/auto by this many lattice nodes "
                                   "instead of --time-limit (the same result on any machine).")] = None,
    keep_order: Annotated[bool, typer.Option(
        "--keep-order", help="Write the rows in the input's order. By default they are written in a "
                             "random order: in the input's order, two releases of one table can be "
                             "paired row by row.")] = False,
    t_distance: Annotated[Optional[TDistance], typer.Option(
        "--t-distance", help="Ground distance of --t: equal, ordered, or hierarchical (over the "
                             "sensitive column's hierarchy in --hierarchies).")] = None,
    population: Annotated[Optional[str], typer.Option(
        "--population", help="CSV of the population the input is a sample of (for "
                             "--delta-presence and --k-map).")] = None,
    delta_presence: Annotated[Optional[str], typer.Option(
        "--delta-presence", help="DMIN,DMAX: every class's share of its population that is "
                                 "released lies in [DMIN, DMAX] (needs --population).")] = None,
    k_map: Annotated[Optional[int], typer.Option(
        "--k-map", min=1, help="Every class matches at least this many people of --population, "
                               "or (with --sample-fraction) is estimated to.")] = None,
    sample_fraction: Annotated[Optional[float], typer.Option(
        "--sample-fraction", min=0.0, max=1.0,
        help="The input's share of the population (for --k-map without --population, and "
             "--max-uniqueness).")] = None,
    max_risk: Annotated[Optional[float], typer.Option(
        "--max-risk", min=0.0, max=1.0,
        help="Largest average re-identification risk (classes / released rows).")] = None,
    max_uniqueness: Annotated[Optional[float], typer.Option(
        "--max-uniqueness", min=0.0, max=1.0,
        help="Largest estimated share of the population that is unique (needs --sample-fraction).")
    ] = None,
) -> None:
    """Write a k-anonymous version of a CSV file (offline, ungoverned).

    A file tool: no policy, no budget, no audit record. For a governed extract from a
    holder's home, use `pets extract`."""
    import pandas as pd

    from ..anon.anonymize import anonymize as run_anonymize, load_hierarchies
    from ..errors import QueryError

    qis, sens, kept = split_list(qi), split_list(sensitive), split_list(keep)
    if not qis:
        raise usage_error("name at least one quasi-identifier", "--qi")
    from ..anon.metrics import PER_QI_METRICS

    if aggregation is not None and metric.value not in PER_QI_METRICS:
        raise usage_error(f"--aggregation applies only to --metric {', '.join(PER_QI_METRICS)} "
                          f"(--metric {metric.value} is one number for the whole table)", "--aggregation")
    if algorithm.value == "mondrian" and (search.value != "optimal" or recoding.value != "global"):
        raise usage_error("--search and --recoding apply to --algorithm optimal "
                          "(Mondrian recodes locally by itself)", "--algorithm")
    if recoding is Recoding.cells and search is not Search.optimal:
        raise usage_error("--search applies to --recoding global or local (cells searches no lattice)",
                          "--search")
    if max_nodes is not None and search is Search.optimal:
        raise usage_error("--max-nodes bounds --search heuristic or auto", "--max-nodes")
    if not Path(input).is_file():
        raise FileNotFoundError(2, "no such file", input)
    in_sep = sep or detect_separator(input)
    with step(f"reading {input}"):
        df = pd.read_csv(input, sep=in_sep, skipinitialspace=True, dtype=str,
                         keep_default_na=False, na_values=missing or [])
    for c in qis + sens + kept:
        if c not in df.columns:
            hint = "" if sep is None else f" (read with --sep {sep!r}; leave it out to detect it)"
            raise QueryError(f"unknown column {c!r}; the file has: {', '.join(df.columns)}{hint}")
    hierarchical = t_distance is not None and t_distance.value == "hierarchical"
    hs = load_hierarchies(hierarchies, qis + (sens if hierarchical else []), sep=hierarchy_sep) \
        if hierarchies else {}
    pop_df = None
    if population is not None:
        if not Path(population).is_file():
            raise usage_error(f"no such file: {population}", "--population")
        with step(f"reading {population}"):
            pop_df = pd.read_csv(population, sep=detect_separator(population), skipinitialspace=True,
                                 dtype=str, keep_default_na=False, na_values=missing or [])
    for c in qis + sens:  # numbers stay numbers where a column is numeric (Mondrian orders them)
        if c not in hs:
            conv = pd.to_numeric(df[c], errors="coerce")
            if conv.notna().all():
                df[c] = conv
    models = _population_models(pop_df, delta_presence, k_map, sample_fraction, max_risk,
                                max_uniqueness, t, t_distance)
    with step(f"searching for a {k}-anonymous release ({algorithm.value})"):
        res = run_anonymize(df, qis, hs, k=k, l=l, t=t, sensitive=sens or None,
                            max_suppression=max_suppression, algorithm=algorithm.value,
                            metric=metric.value, keep=kept, gs_factor=gs_factor,
                            aggregation=aggregation.value if aggregation else None,
                            search=search.value, time_limit=time_limit, recoding=recoding.value,
                            max_nodes=max_nodes,
                            models=models,
                            t_distance=t_distance.value if t_distance is not None else None)
    from ..anon.order import shuffled

    (res.df if keep_order else shuffled(res.df)).to_csv(output, index=False, sep=in_sep)
    e = err()
    e.print(f"wrote {len(res.df)} rows to {output}: {res.classes} classes, "
            f"{res.suppressed} suppressed, transformation {res.transformation}",
            markup=False, highlight=False)
    e.print("metrics: " + ", ".join(f"{n}={v:.4g}" for n, v in res.metrics.items()),
            markup=False, highlight=False)
    if res.nodes_total:
        e.print(f"lattice: {res.nodes_checked} of {res.nodes_total} nodes checked in "
                f"{res.seconds:.2f} s", markup=False, highlight=False)
    if res.search != "optimal" and res.lower_bound is not None:
        e.print(f"search: {res.search}; the optimum's {metric.value} is at least "
                f"{res.lower_bound:.4g} (gap {res.gap:.1%})", markup=False, highlight=False)


def _population_models(pop_df: Any, delta_presence: str | None, k_map: int | None,
                       sample_fraction: float | None, max_risk: float | None,
                       max_uniqueness: float | None, t: float | None, t_distance: Any) -> list[Any]:
    """The privacy models of `pets anonymize`'s population and risk flags (checked in the
    flags' terms)."""
    from .. import anon

    if t_distance is not None and t is None:
        raise usage_error("--t-distance needs --t", "--t-distance")
    models: list[Any] = []
    if delta_presence is not None:
        parts = delta_presence.split(",")
        try:
            dmin, dmax = (float(x) for x in parts)
        except ValueError:
            raise usage_error(f"give DMIN,DMAX (two numbers in [0, 1]), not {delta_presence!r}",
                              "--delta-presence") from None
        if not (0 <= dmin <= dmax <= 1):
            raise usage_error(f"need 0 <= DMIN <= DMAX <= 1, got {delta_presence!r}", "--delta-presence")
        if pop_df is None:
            raise usage_error("--delta-presence needs --population (the population the input is a "
                              "subset of)", "--delta-presence")
        models.append(anon.DeltaPresence(dmin, dmax, population=pop_df))
    if k_map is not None:
        if pop_df is not None:
            models.append(anon.KMap(k_map, population=pop_df))
        elif sample_fraction:
            models.append(anon.KMap(k_map, sample_fraction=sample_fraction))
        else:
            raise usage_error("--k-map needs --population or --sample-fraction", "--k-map")
    elif pop_df is not None and delta_presence is None:
        raise usage_error("--population is used by --delta-presence or --k-map; give one", "--population")
    if max_risk is not None:
        if max_risk <= 0:
            raise usage_error("must be above 0", "--max-risk")
        models.append(anon.AverageReidentificationRisk(max_risk))
    if max_uniqueness is not None:
        if not sample_fraction:
            raise usage_error("--max-uniqueness needs --sample-fraction (the input's share of the "
                              "population)", "--max-uniqueness")
        models.append(anon.PopulationUniqueness(max_uniqueness, sample_fraction=sample_fraction))
    if sample_fraction is not None and sample_fraction <= 0:
        raise usage_error("must be above 0", "--sample-fraction")
    return models


# -- serve -------------------------------------------------------------------------------
class LogLevel(str, enum.Enum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


@command()
def serve(
    home: Home = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (put a TLS reverse "
                                                     "proxy in front for anything but loopback).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    rate: Annotated[float, typer.Option("--rate", help="Requests per second per key.")] = 20.0,
    burst: Annotated[int, typer.Option("--burst", help="Token-bucket size per key.")] = 40,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight per key.")] = 4,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body in bytes.")] = 1 << 20,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 60.0,
    workers: Annotated[int, typer.Option("--workers", help="Threads computing answers, in each process.")] = 8,
    processes: Annotated[int, typer.Option(
        "--processes", help="Server processes sharing the port (one per core for throughput; "
                            "the per-key limits then hold across processes).")] = 1,
    log_level: Annotated[LogLevel, typer.Option("--log-level", help="Log level (JSON lines).")
                         ] = LogLevel.info,
) -> None:
    """Serve the holder's home over HTTP (needs the server extra)."""
    try:
        import uvicorn  # noqa: F401

        from ..server import Limits
        from ..server.app import serve as run_server
    except ImportError as e:  # pragma: no cover - the extra is not installed
        raise usage_error(f"the server needs pets[server] (pip install 'pets[server]'): {e}") from None
    from ..server.jsonlog import configure

    h = open_home(home)  # an existing home only
    configure(log_level.value)  # every line JSON; uvicorn's plain access log is off
    try:
        limits = Limits(rate=rate, burst=burst, concurrency=concurrency, max_body=max_body,
                        timeout=timeout, workers=workers, processes=processes)
    except ValueError as e:  # "Limits.max_body must be ..." -> "--max-body must be ..."
        name, _, rest = str(e).partition(" ")
        flag = "--" + name.removeprefix("Limits.").replace("_", "-")
        raise usage_error(f"{flag} {rest}", flag) from None
    run_server(str(h.home), host=host, port=port, limits=limits, log_level=log_level.value)


# -- federation over HTTP -------------------------------------------------------------------
federation_app = typer.Typer(help="Federations over HTTP: deal the threshold key, join.",
                             no_args_is_help=True)
app.add_typer(federation_app, name="federation")


@command(federation_app, "deal")
def federation_deal(
    members: Annotated[str, typer.Option("--members", help="name=URL,name=URL,... (the servers).")],
    threshold: Annotated[int, typer.Option("--threshold", help="Members needed to decrypt.")],
    out_dir: Annotated[str, typer.Option("--out", help="Folder for the share files.")],
    bits: Annotated[int, typer.Option("--bits", help="Paillier key size (2048 or more).")] = 3072,
    id: Annotated[Optional[str], typer.Option("--id", help="The federation id (default: random).")] = None,
) -> None:
    """The trusted dealer: one share file per member."""
    from .. import fedstore

    parsed: dict[str, Any] = {}
    for item in members.split(","):
        name, sep, url = item.strip().partition("=")
        if not sep:
            raise usage_error("--members is name=URL,name=URL,...", "--members")
        parsed[name] = url
    with step(f"dealing a {bits}-bit threshold key ({threshold} of {len(parsed)})"):
        fid = fedstore.deal(parsed, threshold, out=out_dir, bits=bits, federation_id=id)
    sys.stdout.write(f"{fid}\n")
    err().print(f"dealt federation {fid!r}: one share file per member in {out_dir}; deliver "
                "each to its holder only, then delete them all", markup=False, highlight=False)


@command(federation_app, "join")
def federation_join(
    share: Annotated[str, typer.Option("--share", help="The share file the dealer wrote for it.")],
    home: Home = None,
) -> None:
    """Install this holder's own share file in its home."""
    from .. import fedstore

    cfg = fedstore.join(open_home(home), share)
    err().print(f"joined federation {cfg.id!r} as {cfg.member!r}; delete {share}",
                markup=False, highlight=False)
