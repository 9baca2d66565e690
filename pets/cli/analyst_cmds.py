"""The analyst's commands, through the session and the release pipeline (charged and
audited): ``query`` (DP statistics in SQL), ``extract`` (a governed k-anonymous extract),
``he query`` (totals across holders under homomorphic encryption)."""

from __future__ import annotations

import enum
import json
import sys
from typing import Annotated, Any, Optional

import typer

from ._app import (EXIT_REFUSED, Home, app, command, cost_dict, err, open_home, print_frame,
                   split_list, step, usage_error)
from .holder_cmds import Format, FormatOpt

__all__: list[str] = []


class Noise(str, enum.Enum):
    laplace = "laplace"
    gaussian = "gaussian"


class Algorithm(str, enum.Enum):
    optimal = "optimal"
    mondrian = "mondrian"


class Metric(str, enum.Enum):
    loss = "loss"
    entropy = "entropy"
    precision = "precision"
    monotonic_precision = "monotonic_precision"
    height = "height"
    discernibility = "discernibility"
    dm_star = "dm*"
    aecs = "aecs"
    arx_aecs = "arx_aecs"


class Aggregation(str, enum.Enum):
    geometric = "geometric"
    arithmetic = "arithmetic"
    sum = "sum"
    max = "max"
    rank = "rank"


class Search(str, enum.Enum):
    optimal = "optimal"
    heuristic = "heuristic"
    auto = "auto"


class Recoding(str, enum.Enum):
    global_ = "global"
    local = "local"
    cells = "cells"


class TDistance(str, enum.Enum):
    equal = "equal"
    ordered = "ordered"
    hierarchical = "hierarchical"


# the k-anonymity flags `extract` and `anonymize` share
KOpt = Annotated[int, typer.Option("--k", min=2, help="Every row shares its quasi-identifiers "
                                                      "with at least k-1 others.")]
LOpt = Annotated[Optional[float], typer.Option(
    "--l", help="l-diversity of the --sensitive column(s) in every class.")]
TOpt = Annotated[Optional[float], typer.Option(
    "--t", help="t-closeness of the --sensitive column(s) (Earth Mover's Distance).")]
SensitiveOpt = Annotated[Optional[str], typer.Option(
    "--sensitive", help="Sensitive column(s) for --l/--t, comma-separated.")]
MaxSuppressionOpt = Annotated[float, typer.Option(
    "--max-suppression", min=0.0, max=1.0, help="Largest share of rows that may be left out.")]
AlgorithmOpt = Annotated[Algorithm, typer.Option(
    "--algorithm", help="optimal: full-domain generalisation by the hierarchies (the policy's, "
                        "for extract); mondrian: local recoding.")]
MetricOpt = Annotated[Metric, typer.Option(
    "--metric", help="The loss to minimise (ARX's metrics; docs/anonymisation.md#metrics).")]

Analyst = Annotated[str, typer.Option("--analyst", help="Who asks (needs a grant).")]
Purpose = Annotated[str, typer.Option("--purpose", help="The purpose of the grant to spend from.")]
Explain = Annotated[bool, typer.Option(
    "--explain", help="Show what the release would cost and how accurate it would be, "
                      "spending nothing (exit code 3 when the policy would refuse it).")]
SQL = Annotated[str, typer.Argument(
    metavar="SQL",
    help="One SELECT statement; '-' reads it from stdin. Double quotes for column names "
         "(\"hours-per-week\"), single quotes for strings ('Male').")]


def _check_level(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(f"must be in (0, 1), e.g. 0.95; got {value:g}")
    return value


def _sql_text(sql: str) -> str:
    return sys.stdin.read() if sql == "-" else sql


def _explanation_dict(ex: Any) -> dict[str, Any]:
    """An Explanation as plain JSON."""
    return {
        "allowed": ex.allowed, "rule": ex.rule, "message": ex.message, "column": ex.column,
        "cost": cost_dict(ex.cost),
        "scale": dict(ex.scale), "ci_width": dict(ex.ci_width),
        "remaining": cost_dict(ex.remaining) if ex.remaining is not None else None,
    }


def _print_explanation(ex: Any, fmt: Format) -> int:
    from ._app import cli_message

    if fmt is Format.table:
        sys.stdout.write(cli_message(str(ex)) + "\n")
    else:
        d = _explanation_dict(ex)
        if d["message"]:
            d["message"] = cli_message(d["message"])
        sys.stdout.write(json.dumps(d) + "\n")
    return 0 if ex.allowed else EXIT_REFUSED


@command()
def query(
    sql: SQL,
    analyst: Analyst,
    purpose: Purpose,
    epsilon: Annotated[float, typer.Option("--epsilon", help="The ε this release spends.")],
    home: Home = None,
    delta: Annotated[float, typer.Option("--delta", help="The δ it spends (Gaussian noise "
                                                          "needs δ > 0).")] = 0.0,
    noise: Annotated[Noise, typer.Option("--noise", help="The noise distribution.")] = Noise.laplace,
    explain: Explain = False,
    ci: Annotated[bool, typer.Option("--ci", help="Print confidence intervals (lower/upper "
                                                   "per released cell).")] = False,
    level: Annotated[float, typer.Option("--level", callback=_check_level,
                                         help="Confidence level for --ci, in (0, 1).")] = 0.95,
    format: FormatOpt = Format.table,
) -> int:
    """Answer one SQL question under differential privacy (charged and audited)."""
    import pets
    from ..sql import parse_sql

    h = open_home(home)
    s = h.session(analyst, purpose=purpose)
    prot = pets.DP(epsilon=epsilon, delta=delta, noise=noise.value)
    plan = parse_sql(_sql_text(sql), schema=s._sql_schema)
    if explain:
        return _print_explanation(s.explain(plan, prot), format)
    with step("charging the ledger, recording the audit, adding noise"):
        r = s.release(plan, prot)
    df = r.ci(level) if ci else r.df
    print_frame(df, format.value)
    if format is Format.table:
        err().print(f"spent {r.spent}; left {s.remaining(plan.dataset)}; audit record "
                    f"#{r.audit_id}", markup=False, highlight=False)
    return 0


@command()
def extract(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help="The registered dataset.")],
    analyst: Analyst,
    purpose: Purpose,
    columns: Annotated[str, typer.Option(
        "--columns", help="The columns to extract, comma-separated (the policy says which "
                          "are quasi-identifiers).")],
    k: KOpt,
    output: Annotated[Optional[str], typer.Option(
        "-o", "--output", help="The CSV file to write ('-' for stdout).")] = None,
    home: Home = None,
    l: LOpt = None,
    t: TOpt = None,
    sensitive: SensitiveOpt = None,
    max_suppression: MaxSuppressionOpt = 0.0,
    algorithm: AlgorithmOpt = Algorithm.optimal,
    metric: MetricOpt = Metric.loss,
    explain: Explain = False,
    format: Annotated[Format, typer.Option(
        "--format", help="For --explain: table (text) or json.")] = Format.table,
    gs_factor: Annotated[Optional[float], typer.Option(
        "--gs-factor", min=0.0, max=1.0, help="Weight of generalisation against suppression in "
                                              "the metric (default: the policy's, else 0.5).")] = None,
    aggregation: Annotated[Optional[Aggregation], typer.Option(
        "--aggregation", help="How per-column losses combine (default: the policy's, else the "
                              "metric's).")] = None,
    search: Annotated[Optional[Search], typer.Option(
        "--search", help="optimal (exhaustive), heuristic, or auto (default: the policy's, else "
                         "optimal); the heuristic is bounded by --max-nodes.")] = None,
    max_nodes: Annotated[Optional[int], typer.Option(
        "--max-nodes", min=1, help="Lattice nodes the heuristic search may evaluate (default: "
                                   "the policy's [kanon] max_nodes).")] = None,
    recoding: Annotated[Optional[Recoding], typer.Option(
        "--recoding", help="global, local, or cells (cell suppression); default: the policy's, "
                           "else global.")] = None,
    t_distance: Annotated[Optional[TDistance], typer.Option(
        "--t-distance", help="Ground distance of --t: equal, ordered, or hierarchical (over the "
                             "policy's hierarchy of the sensitive column).")] = None,
) -> int:
    """A k-anonymous extract from a home, governed by its policy.

    Checked against the policy, counted against its max_extracts and audited, unlike
    the offline `pets anonymize`."""
    import pets

    cols = split_list(columns)
    if not cols:
        raise usage_error("name at least one column", "--columns")
    if not explain and not output:
        raise usage_error("give -o FILE (or '-' for stdout), or --explain", "--output")
    sens = split_list(sensitive)
    if algorithm is Algorithm.mondrian:
        for flag, v in (("--gs-factor", gs_factor), ("--aggregation", aggregation), ("--search", search),
                        ("--max-nodes", max_nodes), ("--recoding", recoding)):
            if v is not None:
                raise usage_error(f"{flag} applies to --algorithm optimal (Mondrian recodes locally "
                                  "by itself)", flag)
    if recoding is Recoding.cells and (search not in (None, Search.optimal) or max_nodes is not None):
        raise usage_error("--search and --max-nodes choose the lattice search of --recoding global or "
                          "local; --recoding cells searches no lattice", "--search")
    if t_distance is not None and t is None:
        raise usage_error("--t-distance needs --t", "--t-distance")
    if aggregation is not None and algorithm is Algorithm.optimal:
        from ..anon.metrics import PER_QI_METRICS

        if metric.value not in PER_QI_METRICS:
            raise usage_error(f"--aggregation applies only to --metric {', '.join(PER_QI_METRICS)} "
                              f"(--metric {metric.value} is one number for the whole table)", "--aggregation")
    prot = pets.KAnonymity(
        k=k, l=l, t=t, sensitive=(sens[0] if len(sens) == 1 else tuple(sens)) if sens else None,
        max_suppression=max_suppression, algorithm=algorithm.value, metric=metric.value,
        gs_factor=gs_factor, aggregation=aggregation.value if aggregation else None,
        search=search.value if search else None, max_nodes=max_nodes,
        recoding=recoding.value if recoding else None,
        t_distance=t_distance.value if t_distance else None)
    h = open_home(home)
    s = h.session(analyst, purpose=purpose)
    q = s.table(dataset).select(*cols)
    if explain:
        return _print_explanation(s.explain(q, prot), format)
    with step(f"searching for a {k}-anonymous extract ({algorithm.value})"):
        x = s.release(q, prot)
    if output == "-":
        x.df.to_csv(sys.stdout, index=False)
    else:
        x.df.to_csv(output, index=False)
    left = "unlimited" if x.extracts_left is None else x.extracts_left
    err().print(
        f"wrote {len(x.df):,} rows{'' if output == '-' else ' to ' + str(output)}: "
        f"{x.classes:,} classes, {x.suppressed:,} suppressed, transformation "
        f"{x.transformation}; audit record #{x.audit_id}; extracts left: {left}",
        markup=False, highlight=False)
    return 0


# -- homomorphic encryption ------------------------------------------------------------------
he_app = typer.Typer(help="Totals across several holders under homomorphic encryption "
                          "(Paillier, threshold decryption).", no_args_is_help=True)
app.add_typer(he_app, name="he")


def _members(member: list[str]) -> dict[str, str]:
    members: dict[str, str] = {}
    for item in member:
        name, sep, where = item.partition("=")
        if not sep or not name.strip() or not where.strip():
            raise usage_error(f"{item!r} is not NAME=HOME (or NAME=URL)", "--member")
        if name.strip() in members:
            raise usage_error(f"member {name.strip()!r} is given twice", "--member")
        members[name.strip()] = where.strip()
    if len(members) < 2:
        raise usage_error("a federation needs at least two --member NAME=HOME", "--member")
    return members


def _api_keys(given: list[str], members: dict[str, str]) -> dict[str, Any]:
    """``--api-key`` values as Federation's keyword: one key for all, or NAME=KEY each."""
    named: dict[str, str] = {}
    for item in given:
        name, sep, key = item.partition("=")
        if sep and name in members:
            if name in named:
                raise usage_error(f"two keys for member {name!r}", "--api-key")
            named[name] = key.strip()
        elif len(given) == 1:
            return {"api_key": item}
        else:
            raise usage_error("with several --api-key values each must be NAME=KEY with NAME "
                              f"one of the members ({', '.join(sorted(members))})", "--api-key")
    missing = sorted(set(members) - set(named))
    if missing:
        raise usage_error(f"no --api-key for member(s) {', '.join(missing)}: give NAME=KEY "
                          "for each", "--api-key")
    return {"api_keys": named}


@command(he_app, "query")
def he_query(
    sql: SQL,
    member: Annotated[list[str], typer.Option(
        "--member", help="A holder: NAME=HOME (its home folder, in this process) or NAME=URL "
                         "(its `pets serve`, with --api-key). Repeat for each holder.")],
    purpose: Purpose,
    analyst: Annotated[Optional[str], typer.Option(
        "--analyst", help="Who asks (needs a grant at every holder), with NAME=HOME members; "
                          "with NAME=URL members the API key says who asks.")] = None,
    epsilon: Annotated[Optional[float], typer.Option(
        "--epsilon", help="Each holder adds discrete Laplace noise for this ε before "
                          "encrypting (policy form he). Without it the totals are exact "
                          "(form he_exact, which a policy must allow).")] = None,
    key_bits: Annotated[int, typer.Option(
        "--key-bits", help="Paillier modulus size: 2048, 3072 (128-bit security) or 4096.")] = 3072,
    threshold: Annotated[Optional[int], typer.Option(
        "--threshold", help="Holders needed to decrypt (default: a majority, at least 2).")] = None,
    api_key: Annotated[Optional[list[str]], typer.Option(
        "--api-key", envvar="PETS_API_KEY", show_envvar=True, metavar="NAME=KEY",
        help="For NAME=URL members: NAME=KEY, the key that holder issued to you (repeat for "
             "each holder), or one KEY every holder accepts.")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Per holder: allowed or the rule that refuses, and the cost; "
                          "nothing computed or spent.")] = False,
    ci: Annotated[bool, typer.Option("--ci", help="Print confidence intervals (with --epsilon).")] = False,
    level: Annotated[float, typer.Option("--level", callback=_check_level,
                                         help="Confidence level for --ci, in (0, 1).")] = 0.95,
    format: FormatOpt = Format.table,
) -> int:
    """Totals of one SQL question across holders, under Paillier encryption.

    Each holder checks its own policy and grant, charges its own ledger and hands over
    only ciphertexts."""
    import pets
    from ..sql import parse_sql

    members = _members(member)
    urls = [m for m in members.values() if m.startswith(("http://", "https://"))]
    if urls and len(urls) != len(members):
        raise usage_error("members are either all home folders or all URLs", "--member")
    if urls:
        if not api_key:
            raise usage_error("URL members need --api-key NAME=KEY for each holder (or "
                              "PETS_API_KEY)", "--api-key")
        kw: dict[str, Any] = _api_keys(api_key, members)
        if threshold is not None:
            kw["threshold"] = threshold
        fed = pets.Federation(members, **kw)
    else:
        if analyst is None:
            raise usage_error("home-folder members need --analyst (who asks)", "--analyst")
        holders = {name: open_home(home) for name, home in members.items()}
        fed = pets.Federation(holders, threshold=threshold)
    prot = pets.HE(key_bits=key_bits, dp=pets.DP(epsilon=epsilon) if epsilon is not None else None)
    if ci and epsilon is None:
        raise usage_error("exact totals have no confidence intervals; add --epsilon", "--ci")
    s = fed.session(analyst, purpose=purpose)
    plan = parse_sql(_sql_text(sql))
    if explain:
        per = s.explain(plan, prot)
        rows = {n: ({**v, "cost": cost_dict(v["cost"])} if "cost" in v else v) for n, v in per.items()}
        if format is Format.table:
            from ._app import cli_message

            for n, v in per.items():
                what = (f"allowed, costs {v['cost']}" if v["allowed"]
                        else f"refused by rule {v['rule']!r}: {cli_message(str(v['message']))}")
                sys.stdout.write(f"{n}: {what}\n")
        else:
            sys.stdout.write(json.dumps(rows) + "\n")
        return 0 if all(v["allowed"] for v in rows.values()) else EXIT_REFUSED
    with step(f"encrypting at {len(members)} holders, aggregating, decrypting "
              f"({key_bits}-bit key: the first release deals it)"):
        r = s.release(plan, prot)
    print_frame(r.ci(level) if ci else r.df, format.value)
    if format is Format.table:
        ids = ", ".join(f"{n} #{i}" for n, i in (r.audit_ids or {}).items())
        err().print(f"spent {r.spent} at each holder; audit records: {ids}",
                    markup=False, highlight=False)
    return 0
