"""The holder's commands: register, datasets, grant, revoke, grants, budget, keys, audit."""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any, Optional

import typer

from ._app import (EXIT_AUDIT, Home, app, command, cost_dict, err, open_home, out, print_frame,
                   printable, step, usage_error)

__all__: list[str] = []


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"


class EngineName(str, enum.Enum):
    duckdb = "duckdb"
    spark = "spark"


class Accounting(str, enum.Enum):
    basic = "basic"
    zcdp = "zcdp"


FormatOpt = Annotated[Format, typer.Option(
    "--format", help="table (for people), csv or json (records, for programs).")]
Analyst = Annotated[str, typer.Option("--analyst", help="The analyst's name.")]
Purpose = Annotated[str, typer.Option(
    "--purpose", help="The purpose the grant is for (grants are per dataset and purpose).")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="A registered dataset's name.")]


# -- datasets ------------------------------------------------------------------------------
@command()
def register(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The dataset's name (letters, digits, '_', '-').")],
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="A CSV or Parquet file (separator detected); with "
                                               "--engine spark also a folder of Parquet files "
                                               "or a Spark table name.")],
    policy: Annotated[str, typer.Option("--policy", help="The policy TOML file.")],
    home: Home = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace a dataset of this name (its spent budget stays spent).")] = False,
    copy: Annotated[bool, typer.Option(
        "--copy", help="Store a typed Parquet snapshot inside the home (faster queries; later "
                       "changes to SOURCE do not matter) instead of referencing SOURCE in place.")
    ] = False,
    engine: Annotated[EngineName, typer.Option(
        "--engine", help="The engine that runs the dataset's releases: duckdb (embedded) or "
                         "spark (needs pets[spark]; session from HOME/spark.toml).")
    ] = EngineName.duckdb,
) -> None:
    """Register a dataset under a policy (creates the home if needed)."""
    if copy and engine is EngineName.spark:
        raise usage_error("--copy stores a copy with DuckDB; --engine spark reads the source "
                          "in place: drop one of them", "--copy")
    h = open_home(home, create=True)
    with step(f"registering {name!r} from {source}" + (" (copying into the home)" if copy else "")):
        h.register(name, source, policy, replace=replace, copy=copy, engine=engine.value)
    verb = "replaced" if replace else "registered"
    out().print(f"{verb} {name!r} in {h.home}", markup=False, highlight=False)


@command()
def datasets(home: Home = None, format: FormatOpt = Format.table) -> None:
    """List the registered datasets: columns, where stored, when registered."""
    import pandas as pd

    h = open_home(home)
    rows = []
    for name in h.datasets():
        rec = h._store.get_dataset(name) or {}
        src = rec.get("source", {})
        origin = rec.get("origin", {})
        rows.append({
            "dataset": name,
            "columns": len(rec.get("schema", {})),
            "stored": "copy" if str(src.get("path", "")).startswith(str(h.home / "data"))
                      else "in place",
            "source": origin.get("path", "(a DataFrame)"),
            "registered": str(rec.get("registered_at", "")).replace("T", " ").rstrip("Z"),
        })
    df = pd.DataFrame(rows, columns=["dataset", "columns", "stored", "source", "registered"])
    if df.empty and format is Format.table:
        err().print("no datasets registered", highlight=False)
        return
    print_frame(df, format.value)


# -- grants and budgets ------------------------------------------------------------------
@command()
def grant(
    analyst: Analyst,
    dataset: DatasetOpt,
    purpose: Purpose,
    epsilon: Annotated[float, typer.Option("--epsilon", help="The total ε of the grant.")],
    home: Home = None,
    delta: Annotated[float, typer.Option("--delta", help="The total δ of the grant (0 or in "
                                                          "[1e-100, 1)).")] = 0.0,
    accounting: Annotated[Accounting, typer.Option(
        "--accounting", help="How releases compose: basic sums (ε, δ); zcdp sums ρ (needs "
                             "--delta > 0; cheaper for many Gaussian releases).")
    ] = Accounting.basic,
) -> None:
    """Grant an analyst a privacy budget on a dataset for one purpose (sets its total)."""
    h = open_home(home)
    h.grant(analyst, dataset=dataset, purpose=purpose, epsilon=epsilon, delta=delta,
            accounting=accounting.value)
    out().print(f"granted {analyst!r} epsilon={epsilon:g}, delta={delta:g} "
                f"({accounting.value} accounting) on {dataset!r} for {purpose!r}",
                markup=False, highlight=False)


@command()
def revoke(analyst: Analyst, dataset: DatasetOpt, purpose: Purpose, home: Home = None) -> int:
    """Withdraw a grant (spent budget stays on the ledger; audited)."""
    h = open_home(home)
    if h._store.get_grant(analyst, dataset, purpose) is None:
        from ..errors import QueryError

        raise QueryError(f"{analyst!r} has no grant on {dataset!r} for {purpose!r}; "
                         "`pets grants` lists them")
    h.revoke(analyst, dataset=dataset, purpose=purpose)
    out().print(f"revoked the grant of {analyst!r} on {dataset!r} for {purpose!r}",
                markup=False, highlight=False)
    return 0


def _grant_rows(h: Any, analyst: str | None) -> "Any":
    df = h.grants(analyst).copy()  # a DataFrame, one row per grant
    for c in df.columns:  # names come from the holder's input: never let them drive the terminal
        if df[c].dtype == object or str(df[c].dtype).startswith(("str", "string")):
            df[c] = df[c].map(printable)
    cols = ["analyst", "dataset", "purpose", "accounting", "epsilon", "delta", "spent_epsilon",
            "spent_delta", "remaining_epsilon", "remaining_delta"]
    return df.reindex(columns=cols + [c for c in df.columns if c not in cols])


@command()
def grants(
    home: Home = None,
    analyst: Annotated[Optional[str], typer.Option("--analyst", help="Only this analyst's.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """List grants with what was spent and what is left."""
    h = open_home(home)
    df = _grant_rows(h, analyst)
    if df.empty and format is Format.table:
        err().print("no grants", highlight=False)
        return
    if format is Format.table:
        show = df[["analyst", "dataset", "purpose", "accounting", "epsilon", "delta",
                   "spent_epsilon", "remaining_epsilon", "remaining_delta"]].rename(columns={
                       "spent_epsilon": "spent ε", "remaining_epsilon": "left ε",
                       "remaining_delta": "left δ", "epsilon": "ε", "delta": "δ"})
        print_frame(show.astype({"δ": str, "left δ": str}))
    else:
        print_frame(df, format.value)


@command()
def budget(
    analyst: Analyst, purpose: Purpose, home: Home = None,
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", help="The dataset (may be left out when the analyst has a grant for "
                          "this purpose on one dataset only).")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """The budget an analyst has left for one purpose."""
    h = open_home(home)
    s = h.session(analyst, purpose=purpose)
    left = s.remaining(dataset)
    if json:
        import json as _json

        sys.stdout.write(_json.dumps(cost_dict(left)) + "\n")
    else:
        out().print(f"{analyst} has {left} left for {purpose!r}", markup=False, highlight=False)


# -- API keys -----------------------------------------------------------------------------
keys_app = typer.Typer(help="API keys for server mode (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@command(keys_app, "issue")
def keys_issue(analyst: Analyst, home: Home = None) -> None:
    """Issue a key for an analyst; prints it once (the store keeps its hash)."""
    store = open_home(home)._store
    sys.stdout.write(store.issue_key(analyst) + "\n")
    err().print(f"issued an API key for {analyst!r}; it is shown only now (the store keeps "
                "its hash)", markup=False, highlight=False)


@command(keys_app, "list")
def keys_list(
    home: Home = None,
    analyst: Annotated[Optional[str], typer.Option("--analyst", help="Only this analyst's keys.")] = None,
) -> None:
    """List keys: ids, analysts, dates (never secrets). One key per line: ID ANALYST ..."""
    store = open_home(home)._store
    rows = store.list_keys(analyst)
    if not rows:
        out().print("no API keys")
    for r in rows:
        state = f"revoked {r['revoked']}" if r["revoked"] else "live"
        out().print(f"{r['key_id']}  {printable(r['analyst'])}  created {r['created']}  {state}",
                    markup=False, highlight=False)


@command(keys_app, "revoke")
def keys_revoke(
    home: Home = None,
    key: Annotated[Optional[str], typer.Option("--key", help="The key itself.")] = None,
    key_id: Annotated[Optional[str], typer.Option(
        "--key-id", help="Its id, as `pets keys list` shows it.")] = None,
    analyst: Annotated[Optional[str], typer.Option(
        "--analyst", help="Revoke every key of this analyst.")] = None,
) -> None:
    """Revoke one key (--key or --key-id) or all of --analyst's."""
    given = [x for x in (key, key_id, analyst) if x]
    if len(given) != 1:
        raise usage_error("give exactly one of --key, --key-id, --analyst")
    store = open_home(home)._store
    if key:
        store.revoke_key(key)
        out().print("revoked 1 key")
    elif key_id:
        who = store.revoke_key_id(key_id)
        out().print(f"revoked key {key_id} of {who!r}", markup=False, highlight=False)
    else:
        n = store.revoke_keys(analyst)
        out().print(f"revoked {n} key(s) of {analyst!r}", markup=False, highlight=False)


# -- the audit log ------------------------------------------------------------------------
audit_app = typer.Typer(help="The audit log: verify it, print its head, list records.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")

AuditKey = Annotated[Optional[str], typer.Option(
    "--key", help="The audit key, or its public half (.pub) to verify without the secret "
                  "(default: $PETS_AUDIT_KEY, else HOME/audit-key.pem).")]


@command(audit_app, "verify")
def audit_verify(
    home: Home = None,
    head: Annotated[Optional[str], typer.Option(
        "--head", help="A head published or pinned earlier (ID:HASH, as `pets audit head` "
                       "prints it): also detects truncation and rollback since.")] = None,
    key: AuditKey = None,
) -> int:
    """Verify the hash chain, signatures and the ledger (exit code 6 when it fails)."""
    from ..errors import AuditError
    from ..store import Head

    if head is not None:
        try:
            pinned = Head.parse(head)
        except Exception as e:  # noqa: BLE001 - a malformed flag value
            raise usage_error(str(e), "--head") from None
    else:
        pinned = None
    try:
        h = open_home(home, audit_key=key)
        log = h.audit()
        log.verify(head=pinned)
    except AuditError as e:
        err().print("[bold red]pets: audit verification failed:[/] ", end="")
        err().print(printable(str(e)), markup=False, highlight=False, soft_wrap=True)
        return EXIT_AUDIT
    against = f"; head {pinned.id} still in the log" if pinned is not None else ""
    out().print(f"audit log of {h.home}: {len(log)} records, chain, signatures and ledger "
                f"intact{against}", markup=False, highlight=False, soft_wrap=True)
    return 0


@command(audit_app, "head")
def audit_head(home: Home = None, key: AuditKey = None) -> None:
    """Print the audit head (ID:HASH) to publish or pin."""
    h = open_home(home, audit_key=key)
    sys.stdout.write(f"{h.audit().head()}\n")


def _summary(rec: dict[str, Any]) -> str:
    """One line of what an audit record says (never data values: the log holds none)."""
    kind, status = rec.get("kind"), rec.get("status")
    if status == "refused":
        col = f" on column {rec['column']!r}" if rec.get("column") else ""
        return f"refused by rule {rec.get('rule')}{col}"
    if kind == "grant":
        acc = rec.get("accounting", "basic")
        return f"granted epsilon={rec.get('epsilon')}, delta={rec.get('delta')} ({acc})"
    if kind == "revoke":
        return "grant revoked"
    if kind == "key":
        return f"API key {rec.get('action')}"
    if kind == "register":
        verb = "replaced" if rec.get("replaced") else "registered"
        version = rec.get("policy_version")
        return f"{verb} (policy {version[:12]})" if isinstance(version, str) else verb
    if kind == "migrate":
        return f"store upgraded to schema {rec.get('to_schema')}; records signed from here"
    cost = rec.get("cost") or {}
    if rec.get("repeat_of"):
        return f"repeat of #{rec['repeat_of']} (no cost)"
    parts = [f"{k}={cost[k]:g}" for k in ("epsilon", "delta", "rho", "zdelta")
             if isinstance(cost.get(k), (int, float))]
    return ", ".join(parts) if parts else "released"


def _only(what: str) -> Any:
    return typer.Option(f"--{what}", help=f"Only records with this {what}.")


@command(audit_app, "list")
def audit_list(
    home: Home = None,
    analyst: Annotated[Optional[str], _only("analyst")] = None,
    dataset: Annotated[Optional[str], _only("dataset")] = None,
    purpose: Annotated[Optional[str], _only("purpose")] = None,
    kind: Annotated[Optional[str], typer.Option(
        "--kind", help="Only records of this kind (dp, kanon, he, grant, revoke, key, "
                       "register, …).")] = None,
    status: Annotated[Optional[str], typer.Option(
        "--status", help="Only records with this status (released, refused, recorded).")] = None,
    last: Annotated[Optional[int], typer.Option("--last", min=1, help="Only the newest N records.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """List audit records: releases, refusals, grants, keys."""
    import pandas as pd

    h = open_home(home)
    filters = {k: v for k, v in (("analyst", analyst), ("dataset", dataset), ("purpose", purpose),
                                 ("kind", kind), ("status", status)) if v is not None}
    recs = h.audit().records(**filters)
    if last:
        recs = recs[-last:]
    rows = [{"id": r["id"], "ts": r["ts"][:19].replace("T", " "), "analyst": r.get("analyst") or "",
             "purpose": r.get("purpose") or "", "dataset": r.get("dataset") or "",
             "kind": r["kind"], "status": r["status"], "what": _summary(r)} for r in recs]
    # stored strings can hold anything an older version let in: never print them raw
    rows = [{k: printable(v) for k, v in row.items()} for row in rows]
    df = pd.DataFrame(rows, columns=["id", "ts", "analyst", "purpose", "dataset", "kind",
                                     "status", "what"])
    if df.empty and format is Format.table:
        out().print("no audit records match")
        return
    print_frame(df, format.value)
