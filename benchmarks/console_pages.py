"""How fast the console's pages answer with 10^5 audit records.

    PYTHONPATH=. python benchmarks/console_pages.py [--records 100000] [--repeat 20]

Builds a home with two registered datasets, then writes N audit records straight into
the store's tables (releases with their ledger rows and spent totals, refusals with
rules, over 50 analysts and 2 purposes each — written by SQL, not signed one by one,
which would take minutes; the pages read them the same way), starts the real server
(uvicorn on 127.0.0.1) and times GET requests of each page with a signed-in console
session: median and 95th percentile in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import httpx
import uvicorn

import pets
from pets.console import add_holder
from pets.server import create_app

ANALYSTS = [f"analyst{i:02d}" for i in range(50)]
PURPOSES = ["labour-stats", "health-survey"]
RULES = ["budget", "grade", "negative_list", "no_grant", "max_epsilon"]


def fill(home: Path, n: int) -> None:
    import sqlite3

    rnd = random.Random(1)  # benchmark data, not privacy noise
    h = pets.Holder(home)
    h.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
    for a in ANALYSTS:
        for p in PURPOSES:
            h.grant(a, dataset="adult", purpose=p, epsilon=1e6)
    con = sqlite3.connect(home / "pets.db")
    last_id, last_hash = con.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    audit, ledger = [], []
    spent: dict[tuple[str, str, str], Fraction] = {}
    t0 = time.time() - n * 6
    for i in range(n):
        rid = last_id + 1 + i
        a, p = rnd.choice(ANALYSTS), rnd.choice(PURPOSES)
        eps = rnd.choice([0.01, 0.05, 0.1])
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i * 6)) + ".000000+00:00"
        plan = {"aggs": [{"bounds": None, "column": None, "kind": "count", "name": "n"}],
                "dataset": "adult", "filters": [], "group_by": [{"column": "sex", "keys": None}],
                "select": None}
        body: dict = {"plan": plan, "protection": {"delta": 0.0, "epsilon": eps, "form": "dp"}}
        if rnd.random() < 0.85:
            status = "released"
            body.update(cost={"delta": 0.0, "epsilon": eps}, noise_scale={"n": 1 / eps},
                        cells=2, charged=True)
            ledger.append((rid, a, "adult", p, eps, repr(eps), 0.0, "0.0", "0.0", "0.0"))
            spent[(a, "adult", p)] = spent.get((a, "adult", p), Fraction(0)) + Fraction(repr(eps))
        else:
            status = "refused"
            body.update(rule=rnd.choice(RULES), column=None)
        audit.append((rid, ts, a, p, "adult", "dp", status, json.dumps(body), "0" * 64, "0" * 64))
    with con:
        con.executemany("INSERT INTO audit (id, ts, analyst, purpose, dataset, kind, status, body, "
                        "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)", audit)
        con.executemany("INSERT INTO ledger (audit_id, analyst, dataset, purpose, epsilon, "
                        "epsilon_text, delta, delta_text, rho_text, zdelta_text) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?)", ledger)
        for (a, d, p), e in spent.items():
            con.execute("INSERT OR REPLACE INTO spent (analyst, dataset, purpose, epsilon_text, "
                        "delta_text) VALUES (?,?,?,?,?)", (a, d, p, str(e), "0"))
        con.execute("UPDATE audit_head SET last_id = ?", (last_id + n,))
    con.close()


def measure(records: int = 100_000, repeat: int = 20) -> dict[str, tuple[float, float]]:
    """{page: (median ms, p95 ms)} over ``repeat`` GETs each, with ``records`` records."""
    home = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    fill(home, records)
    print(f"filled {records:,} audit records in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    add_holder(home, "steward", "benchmark password")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(pets.Holder(home)), host="127.0.0.1",
                                        port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    out: dict[str, tuple[float, float]] = {}
    try:
        while not srv.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}/console"
        c = httpx.Client(base_url=base, headers={"Origin": f"http://127.0.0.1:{port}"},
                         timeout=120)
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        c.post("/login", data={"csrf": csrf, "account": "steward",
                               "password": "benchmark password", "next": "/console/grants"})
        deep = records // 50
        pages = {
            "releases (newest)": "/releases",
            "releases, analyst": "/releases?analyst=analyst07",
            "releases, refused": "/releases?status=refused",
            "releases, rule": "/releases?rule=max_epsilon",
            "releases, analyst+purpose+status":
                "/releases?analyst=analyst07&purpose=health-survey&status=released",
            "releases, deep page": f"/releases?before={deep}",
            "releases, live fragment": "/releases?fragment=1",
            "audit log": "/audit",
            "grants (20 grants of 10 analysts, burn-downs)": "/grants",
            "datasets": "/datasets",
            "keys": "/keys",
        }
        for name, url in pages.items():
            c.get(url)  # warm
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                r = c.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (url, r.status_code)
            times.sort()
            out[name] = (statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))])
    finally:
        srv.should_exit = True
        th.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print("| page | median ms | p95 ms |\n|---|---|---|")
    for name, (med, p95) in measure(args.records, args.repeat).items():
        print(f"| {name} | {med:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
