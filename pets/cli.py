"""The ``pets`` command.

    pets demo                               the main job on the bundled Adult example
    pets register --home DIR NAME SOURCE --policy POLICY.toml
    pets grant --home DIR --analyst A --dataset D --purpose P --epsilon E [--delta D]
               [--accounting basic|zcdp]
    pets query --home DIR --analyst A --purpose P --epsilon 0.1 "SELECT ..."
    pets anonymize in.csv --qi age,sex --hierarchies DIR --k 5 [--l 2 --sensitive col] -o out.csv
    pets serve --home DIR [--host 127.0.0.1 --port 8000 --rate R --burst B --concurrency C
               --max-body BYTES --timeout S --workers N]
    pets keys issue --home DIR --analyst A        prints a new API key (shown once)
    pets keys list --home DIR [--analyst A]       key ids, analysts, dates: never secrets
    pets keys revoke --home DIR (--key KEY | --key-id ID | --analyst A)
    pets audit verify --home DIR [--head ID:HASH] [--key PATH]
    pets audit head --home DIR
    pets audit list --home DIR [--analyst A --kind dp --status refused --last N --format csv]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import unicodedata
from typing import Callable, Sequence, TypeVar

import pandas as pd

from . import __version__
from .errors import AuditError, PetsError, QueryError

__all__ = ["main"]

T = TypeVar("T")


class _Out:
    """Small helpers for readable terminal output."""

    def __init__(self, stream=None) -> None:  # type: ignore[no-untyped-def]
        self.s = stream or sys.stdout
        self.tty = hasattr(self.s, "isatty") and self.s.isatty()

    def line(self, text: str = "") -> None:
        print(text, file=self.s, flush=True)

    def head(self, text: str) -> None:
        self.line()
        self.line(f"== {text} ==")

    def step(self, label: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` showing ``label …`` and how long it took."""
        print(f"  {label} …", end="" if self.tty else "\n", file=self.s, flush=True)
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        if self.tty:
            print(f"\r  {label} … done ({dt:.2f} s)", file=self.s, flush=True)
        else:
            print(f"    done ({dt:.2f} s)", file=self.s, flush=True)
        return out

    def table(self, df: pd.DataFrame) -> None:
        with pd.option_context("display.width", 120, "display.max_columns", 20,
                               "display.float_format", "{:,.2f}".format):
            for row in df.to_string(index=False).splitlines():
                self.line("    " + row)


def _demo(args: argparse.Namespace) -> int:
    import pets
    from pets import col

    out = _Out()
    t0 = time.perf_counter()
    home = args.home or tempfile.mkdtemp(prefix="pets-demo-")
    out.line(f"pets {__version__} demo — raw data stays in its domain; only releases leave it.")
    out.head("1. The holder registers a table under a policy")
    holder = pets.Holder(home)
    out.line(f"  home: {holder.home}  (SQLite: datasets, grants, ledger, audit log)")
    out.step(
        "registering the UCI Adult table (32,561 rows, '?' = missing) with the example policy",
        lambda: holder.register("adult", pets.example_data("adult"), pets.example_policy("adult"),
                                replace=True),
    )
    pol = holder.policy("adult")
    out.line(f"  policy: {len(pol.columns)} columns graded 1–4; negative list: "
             f"{', '.join(sorted(pol.negative_list))}")
    holder.grant("alice", dataset="adult", purpose="labour-statistics", epsilon=2.0)
    out.line("  granted alice ε = 2.0 on 'adult' for the purpose 'labour-statistics'")

    s = holder.session("alice", purpose="labour-statistics")
    q = (
        s.table("adult")
        .filter(col("age") >= 18)
        .group_by("sex")
        .agg(n=pets.count(), avg_hours=pets.mean("hours-per-week"), avg_age=pets.mean("age"))
    )
    out.head("2. The analyst asks what a release would cost — spending nothing")
    ex = s.explain(q, pets.DP(epsilon=0.5))
    for line in str(ex).splitlines():
        out.line("  " + line)

    out.head("3. Differentially private statistics by sex (ε = 0.5)")
    r = out.step("charging the ledger, recording the audit, adding noise", lambda: s.release(q, pets.DP(epsilon=0.5)))
    out.table(r.df)
    out.line("  95% confidence intervals:")
    ci = r.ci(0.95)
    out.table(ci)
    out.line(f"  spent {r.spent}; audit record #{r.audit_id}")

    out.head("4. The same in SQL: people by education (ε = 0.3)")
    r2 = s.sql(
        "SELECT education, COUNT(*) AS n FROM adult WHERE age >= 25 GROUP BY education",
        pets.DP(epsilon=0.3),
    )
    out.table(r2.df.sort_values("n", ascending=False).head(8))
    out.line(f"  … {len(r2.df)} public keys in all; each ± {r2.ci(0.95)['upper'].iloc[0] - r2.df['n'].iloc[0]:,.0f} at 95%")

    out.head("5. A refused query: the policy says which rule and which column")
    try:
        s.release(s.table("adult").agg(total=pets.sum("fnlwgt", bounds=(0, 1e6))), pets.DP(epsilon=0.1))
    except pets.PolicyError as e:
        out.line(f"  PolicyError [{e.rule}] {e}")
    try:
        s.release(s.table("adult").agg(gain=pets.sum("capital-gain")), pets.DP(epsilon=1.5))
    except pets.PolicyError as e:
        out.line(f"  PolicyError [{e.rule}] {e}")
    try:
        s.release(q, pets.DP(epsilon=5.0))
    except pets.BudgetExceeded as e:
        out.line(f"  BudgetExceeded {e}")
    out.line(f"  budget left for alice: {s.remaining('adult')}")

    out.head("6. A k-anonymous extract: rows, generalised until every row has 4 look-alikes")
    x = out.step(
        "searching the generalisation lattice for the least information loss",
        lambda: s.release(
            s.table("adult").select("age", "sex", "race", "education", "marital-status",
                                    "relationship"),
            pets.KAnonymity(k=5, l=2, sensitive="relationship", max_suppression=0.02),
        ),
    )
    out.table(x.df.head(5))
    out.line(f"  transformation {x.transformation}; {x.suppressed} rows suppressed; "
             f"{x.classes} classes; loss {x.metrics['loss']:.3f}; "
             f"{x.extracts_left} more extracts allowed")

    out.head("7. The auditor verifies the hash-chained log")
    log = holder.audit()
    ok = out.step("verifying every record and the ledger", log.verify)
    rows = []
    for rec in log.records():
        cost = rec.get("cost") or {}
        if rec["kind"] == "grant":  # the holder's act: the budget it sets
            eps = f"{rec['epsilon']:g} granted"
        else:
            eps = f"{cost['epsilon']:g} spent" if cost and rec["kind"] == "dp" else ""
        rows.append({
            "record": rec["id"], "analyst": rec["analyst"], "kind": rec["kind"],
            "status": rec["status"], "rule": rec.get("rule") or "", "epsilon": eps,
        })
    out.table(pd.DataFrame(rows))
    out.line(f"  audit log intact: {ok}")
    out.line()
    out.line(f"demo finished in {time.perf_counter() - t0:.1f} s. Home kept at {holder.home}")
    out.line("next: README.md (the Python tour), docs/policy.md, `pets query --help`")
    return 0


def _register(args: argparse.Namespace) -> int:
    import pets

    h = pets.Holder(args.home)
    h.register(args.name, args.source, args.policy, replace=args.replace)
    print(f"registered {args.name!r} in {h.home}")
    return 0


def _grant(args: argparse.Namespace) -> int:
    import pets

    h = pets.Holder(args.home)
    h.grant(args.analyst, dataset=args.dataset, purpose=args.purpose, epsilon=args.epsilon,
            delta=args.delta, accounting=args.accounting)
    print(f"granted {args.analyst!r} epsilon={args.epsilon:g}, delta={args.delta:g} "
          f"({args.accounting} accounting) on {args.dataset!r} for {args.purpose!r}")
    return 0


def _query(args: argparse.Namespace) -> int:
    import pets

    h = pets.Holder(args.home)
    s = h.session(args.analyst, purpose=args.purpose)
    prot = pets.DP(epsilon=args.epsilon, delta=args.delta, noise=args.noise)
    from .sql import parse_sql

    plan = parse_sql(args.sql, schema=s._sql_schema)
    if args.explain:
        print(s.explain(plan, prot))
        return 0
    r = s.release(plan, prot)
    df = r.ci(args.level) if args.ci else r.df
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(df.to_json(orient="records"))
    else:
        _Out().table(df)
        print(f"spent {r.spent}; left {s.remaining(plan.dataset)}; audit record #{r.audit_id}",
              file=sys.stderr)
    return 0


def _anonymize(args: argparse.Namespace) -> int:
    from .anon.anonymize import anonymize, load_hierarchies

    qis = [c.strip() for c in args.qi.split(",") if c.strip()]
    sens = [c.strip() for c in (args.sensitive or "").split(",") if c.strip()]
    keep = [c.strip() for c in (args.keep or "").split(",") if c.strip()]
    out = _Out(sys.stderr)
    df = out.step(
        f"reading {args.input}",
        lambda: pd.read_csv(args.input, sep=args.sep, skipinitialspace=True, dtype=str,
                            keep_default_na=False, na_values=args.missing or []),
    )
    for c in qis + sens + keep:
        if c not in df.columns:
            raise QueryError(f"unknown column {c!r}; the file has: {', '.join(df.columns)}")
    hierarchies = load_hierarchies(args.hierarchies, qis, sep=args.hierarchy_sep) if args.hierarchies else {}
    # numbers stay numbers where a column is numeric (Mondrian orders them)
    for c in qis + sens:
        if c not in hierarchies:
            conv = pd.to_numeric(df[c], errors="coerce")
            if conv.notna().all():
                df[c] = conv  # numbers: ordered for Mondrian and for t-closeness
    res = out.step(
        f"searching for a {args.k}-anonymous release ({args.algorithm})",
        lambda: anonymize(df, qis, hierarchies, k=args.k, l=args.l, t=args.t,
                          sensitive=sens or None, max_suppression=args.max_suppression,
                          algorithm=args.algorithm, metric=args.metric, keep=keep),
    )
    res.df.to_csv(args.output, index=False, sep=args.sep)
    out.line(f"wrote {len(res.df)} rows to {args.output}: {res.classes} classes, "
             f"{res.suppressed} suppressed, transformation {res.transformation}")
    out.line("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in res.metrics.items()))
    if res.nodes_total:
        out.line(f"lattice: {res.nodes_checked} of {res.nodes_total} nodes checked in {res.seconds:.2f} s")
    return 0


def _audit_home(args: argparse.Namespace) -> str:
    home = args.home or os.environ.get("PETS_HOME")
    if not home:
        raise SystemExit("pets: error: --home is required (or set PETS_HOME)")
    return home


def _audit_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the log verifies, 6 (with the reason on stderr) when it does not."""
    import pets
    from pets.store import Head

    head = Head.parse(args.head) if args.head is not None else None  # bad --head: exit 2
    try:
        h = pets.Holder(_audit_home(args), audit_key=args.key)
        log = h.audit()
        log.verify(head=head)
    except AuditError as e:
        print(f"pets: audit verification failed: {e}", file=sys.stderr)
        return 6
    against = f"; head {head.id} still in the log" if head is not None else ""
    print(f"audit log of {h.home}: {len(log)} records, chain, signatures and ledger "
          f"intact{against}")
    return 0


def _audit_head(args: argparse.Namespace) -> int:
    """Print the head to publish or pin: ``ID:HASH``."""
    import pets

    h = pets.Holder(_audit_home(args), audit_key=args.key)
    print(h.audit().head())
    return 0


def _summary(rec: dict) -> str:
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


def _printable(value: object) -> object:
    """A stored string with its control, format and other non-printing characters
    (Unicode category C: escape sequences, bidi overrides, …) shown as escapes, so
    that nothing in the log can drive the terminal or hide text. Other values as they are."""
    if not isinstance(value, str):
        return value
    if all(not unicodedata.category(ch).startswith("C") for ch in value):
        return value
    out = []
    for ch in value:
        if unicodedata.category(ch).startswith("C"):
            esc = ch.encode("unicode_escape").decode("ascii")
            out.append(esc if esc != ch else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _audit_list(args: argparse.Namespace) -> int:
    import pets

    h = pets.Holder(args.home)
    filters = {k: getattr(args, k) for k in ("analyst", "dataset", "purpose", "kind", "status")
               if getattr(args, k) is not None}
    recs = h.audit().records(**filters)
    if args.last:
        recs = recs[-args.last:]
    rows = [{"id": r["id"], "ts": r["ts"][:19].replace("T", " "), "analyst": r.get("analyst") or "",
             "purpose": r.get("purpose") or "", "dataset": r.get("dataset") or "",
             "kind": r["kind"], "status": r["status"], "what": _summary(r)} for r in recs]
    # stored strings can hold anything an older version let in: never print them raw
    rows = [{k: _printable(v) for k, v in row.items()} for row in rows]
    df = pd.DataFrame(rows, columns=["id", "ts", "analyst", "purpose", "dataset", "kind",
                                     "status", "what"])
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(df.to_json(orient="records"))
    elif df.empty:
        print("no audit records match")
    else:
        _Out().table(df)
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .server import Limits, create_app
    except ImportError as e:  # pragma: no cover - the extra is not installed
        raise SystemExit(f"pets: error: the server needs pets[server] "
                         f"(pip install 'pets[server]'): {e}") from None
    from .server.jsonlog import configure

    configure(args.log_level)  # every line JSON; uvicorn's plain access log is off
    try:
        limits = Limits(rate=args.rate, burst=args.burst, concurrency=args.concurrency,
                        max_body=args.max_body, timeout=args.timeout, workers=args.workers)
    except ValueError as e:
        raise SystemExit(f"pets: error: {e}") from None
    app = create_app(_audit_home(args), limits=limits)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                log_config=None, access_log=False, timeout_graceful_shutdown=args.timeout)
    return 0


def _federation(args: argparse.Namespace) -> int:
    from . import fedstore

    if args.federation_command == "deal":
        members = {}
        for item in args.members.split(","):
            name, sep, url = item.strip().partition("=")
            if not sep:
                raise SystemExit("pets: error: --members is name=URL,name=URL,...")
            members[name] = url
        fid = fedstore.deal(members, args.threshold, out=args.out, bits=args.bits,
                            federation_id=args.id)
        print(fid)
        print(f"dealt federation {fid!r}: one share file per member in {args.out}; deliver "
              "each to its holder only, then delete them all", file=sys.stderr)
    else:
        import pets

        cfg = fedstore.join(pets.Holder(_audit_home(args)), args.share)
        print(f"joined federation {cfg.id!r} as {cfg.member!r}; delete {args.share}",
              file=sys.stderr)
    return 0


def _keys(args: argparse.Namespace) -> int:
    import pets

    store = pets.Holder(_audit_home(args))._store
    if args.keys_command == "issue":
        print(store.issue_key(args.analyst))
        print(f"issued an API key for {args.analyst!r}; it is shown only now (the store keeps "
              "its hash)", file=sys.stderr)
    elif args.keys_command == "list":
        rows = store.list_keys(args.analyst)
        if not rows:
            print("no API keys")
        for r in rows:
            state = f"revoked {r['revoked']}" if r["revoked"] else "live"
            print(f"{r['key_id']}  {r['analyst']}  created {r['created']}  {state}")
    else:
        given = [x for x in (args.key, args.key_id, args.analyst) if x]
        if len(given) != 1:
            raise SystemExit("pets: error: give exactly one of --key, --key-id, --analyst")
        if args.key:
            store.revoke_key(args.key)
            print("revoked 1 key")
        elif args.key_id:
            who = store.revoke_key_id(args.key_id)
            print(f"revoked key {args.key_id} of {who!r}")
        else:
            print(f"revoked {store.revoke_keys(args.analyst)} key(s) of {args.analyst!r}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pets", description="Release results, never raw data.")
    p.add_argument("--version", action="version", version=f"pets {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the main job on the bundled Adult example")
    d.add_argument("--home", help="holder home to use (default: a new temporary folder)")
    d.set_defaults(fn=_demo)

    r = sub.add_parser("register", help="register a dataset under a policy")
    r.add_argument("--home", required=True)
    r.add_argument("name")
    r.add_argument("source", help="CSV or Parquet file")
    r.add_argument("--policy", required=True, help="policy TOML file")
    r.add_argument("--replace", action="store_true")
    r.set_defaults(fn=_register)

    g = sub.add_parser("grant", help="grant an analyst a budget for one purpose")
    g.add_argument("--home", required=True)
    g.add_argument("--analyst", required=True)
    g.add_argument("--dataset", required=True)
    g.add_argument("--purpose", required=True)
    g.add_argument("--epsilon", type=float, required=True)
    g.add_argument("--delta", type=float, default=0.0)
    g.add_argument("--accounting", choices=("basic", "zcdp"), default="basic",
                   help="how releases compose: sum of (epsilon, delta), or of zCDP rho")
    g.set_defaults(fn=_grant)

    q = sub.add_parser("query", help="answer one SQL question under DP")
    q.add_argument("--home", required=True)
    q.add_argument("--analyst", required=True)
    q.add_argument("--purpose", required=True)
    q.add_argument("--epsilon", type=float, required=True)
    q.add_argument("--delta", type=float, default=0.0)
    q.add_argument("--noise", choices=("laplace", "gaussian"), default="laplace")
    q.add_argument("--explain", action="store_true", help="show cost and accuracy; spend nothing")
    q.add_argument("--ci", action="store_true", help="print confidence intervals")
    q.add_argument("--level", type=float, default=0.95, help="confidence level for --ci")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("sql")
    q.set_defaults(fn=_query)

    an = sub.add_parser("anonymize", help="write a k-anonymous version of a CSV file")
    an.add_argument("input", help="CSV file")
    an.add_argument("--qi", required=True, help="quasi-identifiers, comma-separated")
    an.add_argument("--hierarchies", help="folder of hierarchy CSVs (<col>.csv or *_hierarchy_<col>.csv)")
    an.add_argument("--k", type=int, required=True)
    an.add_argument("--l", type=float)
    an.add_argument("--t", type=float)
    an.add_argument("--sensitive", help="sensitive column(s), comma-separated")
    an.add_argument("--keep", help="other columns to release unchanged, comma-separated")
    an.add_argument("--max-suppression", type=float, default=0.0, dest="max_suppression")
    an.add_argument("--algorithm", choices=("optimal", "mondrian"), default="optimal")
    an.add_argument("--metric", choices=("loss", "discernibility", "aecs"), default="loss")
    an.add_argument("--sep", default=",", help="field separator of the input and output CSV")
    an.add_argument("--hierarchy-sep", default=";", dest="hierarchy_sep",
                    help="field separator of the hierarchy files (default ';', as ARX writes them)")
    an.add_argument("--missing", action="append", help="a missing-value marker (repeatable)")
    an.add_argument("-o", "--output", required=True)
    an.set_defaults(fn=_anonymize)

    sv = sub.add_parser("serve", help="serve the holder's home over HTTP (pets[server])")
    sv.add_argument("--home", help="holder home (default: $PETS_HOME)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                    "put a TLS reverse proxy in front for anything else)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--rate", type=float, default=20.0, help="requests per second per key")
    sv.add_argument("--burst", type=int, default=40, help="token-bucket size per key")
    sv.add_argument("--concurrency", type=int, default=4, help="requests in flight per key")
    sv.add_argument("--max-body", type=int, default=1 << 20, dest="max_body",
                    help="largest request body in bytes")
    sv.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    sv.add_argument("--workers", type=int, default=8, help="threads computing answers")
    sv.add_argument("--log-level", default="info", dest="log_level",
                    choices=("critical", "error", "warning", "info", "debug"))
    sv.set_defaults(fn=_serve)

    fe = sub.add_parser("federation", help="federations over HTTP: deal the key, join")
    fsub = fe.add_subparsers(dest="federation_command", required=True)
    fd = fsub.add_parser("deal", help="the trusted dealer: one share file per member")
    fd.add_argument("--members", required=True, help="name=URL,name=URL,... (the servers)")
    fd.add_argument("--threshold", type=int, required=True, help="members needed to decrypt")
    fd.add_argument("--bits", type=int, default=3072, help="Paillier key size (2048 or more)")
    fd.add_argument("--id", help="the federation id (default: random)")
    fd.add_argument("--out", required=True, help="folder for the share files")
    fd.set_defaults(fn=_federation)
    fj = fsub.add_parser("join", help="install this holder's own share file in its home")
    fj.add_argument("--home", help="holder home (default: $PETS_HOME)")
    fj.add_argument("--share", required=True, help="the share file the dealer wrote for it")
    fj.set_defaults(fn=_federation)

    k = sub.add_parser("keys", help="API keys for server mode (stored hashed)")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ki = ksub.add_parser("issue", help="issue a key for an analyst; prints it once")
    ki.add_argument("--home", help="holder home (default: $PETS_HOME)")
    ki.add_argument("--analyst", required=True)
    ki.set_defaults(fn=_keys)
    kl = ksub.add_parser("list", help="list keys: ids, analysts, dates (never secrets)")
    kl.add_argument("--home", help="holder home (default: $PETS_HOME)")
    kl.add_argument("--analyst")
    kl.set_defaults(fn=_keys)
    kr = ksub.add_parser("revoke", help="revoke one key (--key or --key-id) or all of --analyst")
    kr.add_argument("--home", help="holder home (default: $PETS_HOME)")
    kr.add_argument("--key", help="the key itself")
    kr.add_argument("--key-id", dest="key_id", help="its id, as `pets keys list` shows it")
    kr.add_argument("--analyst", help="revoke every key of this analyst")
    kr.set_defaults(fn=_keys)

    a = sub.add_parser("audit", help="audit log tools")
    asub = a.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser("verify", help="verify the hash chain, signatures and the ledger "
                                        "(exit code 6 when verification fails)")
    av.add_argument("--home", help="holder home (default: $PETS_HOME)")
    av.add_argument("--head", help="a head published or pinned earlier (ID:HASH, as "
                                   "'pets audit head' prints it): detects truncation and "
                                   "rollback since")
    av.add_argument("--key", help="the audit key, or its public half (.pub) to verify "
                                  "without the secret (default: $PETS_AUDIT_KEY, else "
                                  "HOME/audit-key.pem)")
    av.set_defaults(fn=_audit_verify)
    ah = asub.add_parser("head", help="print the audit head (ID:HASH) to publish or pin")
    ah.add_argument("--home", help="holder home (default: $PETS_HOME)")
    ah.add_argument("--key", help="the audit key or its public half (default as for verify)")
    ah.set_defaults(fn=_audit_head)
    al = asub.add_parser("list", help="list audit records (releases, refusals, grants, keys)")
    al.add_argument("--home", required=True)
    for f in ("analyst", "dataset", "purpose", "kind", "status"):
        al.add_argument(f"--{f}", help=f"only records with this {f}")
    al.add_argument("--last", type=int, help="only the newest N records")
    al.add_argument("--format", choices=("table", "csv", "json"), default="table")
    al.set_defaults(fn=_audit_list)
    from .cli_verify import add_parsers  # pets verify, pets deid

    add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except PetsError as e:
        print(f"pets: error: {type(e).__name__}: {_printable(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing or unreadable file or folder
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"pets: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
