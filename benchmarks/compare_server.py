"""The holder's server: added latency of one DP release over HTTP, and releases per second.

Run from the repository root (needs ``pets[server]``)::

    python benchmarks/compare_server.py                 # both registrations, 300 pairs
    python benchmarks/compare_server.py --pairs 100 --clients 1,4,8 --seconds 5

What it does, in one run:

1. Builds a holder home in a temporary folder with the bundled Adult (32,561 rows)
   registered twice under its policy: ``adult`` as a stored copy
   (``register(..., copy=True)``, Parquet) and ``adult_csv`` in place (the CSV is read
   by the engine at every release). One analyst, a grant large enough for every release.
2. Starts a real ``pets serve`` on 127.0.0.1 in a subprocess (uvicorn, one process,
   ``--workers`` release threads; limits raised so that none refuses), its JSON log
   going to a file as in production.
3. **Latency** — the same small DP query (a count by sex under three filters, ε = 0.1)
   released alternately in process (``holder.session(...).release``) and through
   the server (``pets.connect(...).release``), ``--pairs`` times each; every call has
   distinct filter thresholds so that no answer is recalled from the record (a recalled
   answer is measured separately, ``recall``). ``--vary epsilon`` also gives every call
   a fresh ε (each release then builds and maps a new OpenDP measurement: the worst
   case, and what runs before 2026-12-02 measured). Wall time around the call; medians, the
   added milliseconds (remote − local, per pair, median) and the ratio of medians.
4. **Throughput** — N client threads (each its own ``pets.connect``, i.e. its own httpx
   keep-alive connection), each releasing distinct queries back to back for
   ``--seconds``; releases per second = answered releases / wall time. The same with N
   threads on a local session, for the in-process ceiling on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

import pets  # noqa: E402

PURPOSE = "bench"
_counter = itertools.count()


#: how requests are kept distinct (so that none is recalled from the record):
#: "filter" (default) — one ε, a distinct combination of three filter thresholds per call,
#: as an analyst varying a query; "epsilon" — also a distinct ε per call, so that every
#: release builds and maps a fresh OpenDP measurement (the worst case; earlier runs)
VARY = ["filter"]
EPSILON = 0.1


def _thresholds(i: int) -> tuple[int, int, int]:
    """The i-th distinct (age ≥ a, age ≤ b, hours-per-week ≥ h): 134,640 combinations."""
    return 17 + i % 40, 57 + (i // 40) % 34, 1 + (i // 1360) % 99


def _epsilon(i: int) -> float:
    return EPSILON + i * 1e-9 if VARY[0] == "epsilon" else EPSILON


def _small(dataset: str, a: int, b: int, h: int) -> pets.Query:
    """The small DP query: a count by sex under three filter thresholds."""
    return (pets.Query(dataset)
            .filter((pets.col("age") >= a) & (pets.col("age") <= b) & (pets.col("hours-per-week") >= h))
            .group_by("sex").agg(n=pets.count()))


def query(dataset: str) -> tuple[pets.Query, pets.DP]:
    """The small DP query, never a repeat."""
    i = next(_counter)
    return _small(dataset, *_thresholds(i)), pets.DP(epsilon=_epsilon(i))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_home(home: Path, clients: int) -> dict[str, str]:
    h = pets.Holder(home)
    h.register("adult", pets.example_data(), pets.example_policy(), copy=True)
    h.register("adult_csv", pets.example_data(), pets.example_policy())
    keys = {}
    for a in ["lat"] + [f"c{i}" for i in range(clients)]:
        for ds in ("adult", "adult_csv"):
            h.grant(a, dataset=ds, purpose=PURPOSE, epsilon=1e6)
        keys[a] = h.issue_key(a)
    return keys


def start(home: Path, workers: int, log: Path, processes: int = 1,
          log_level: str = "info") -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "pets.cli", "serve", "--home", str(home),
            "--port", str(port), "--rate", "1000000", "--burst", "1000000",
            "--concurrency", "1000", "--workers", str(workers), "--processes", str(processes),
            "--log-level", log_level]
    proc = subprocess.Popen(args, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("pets serve exited: " + log.read_text()[-2000:])
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pets serve did not become ready")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def latency(local: pets.Session, remote: pets.RemoteSession, dataset: str, pairs: int) -> dict:
    for _ in range(10):  # warm both paths (imports, caches, connections)
        local.release(*query(dataset))
        remote.release(*query(dataset))
    lo, re_, added = [], [], []
    for i in range(pairs):
        order = (local, remote) if i % 2 == 0 else (remote, local)
        t = {}
        for s in order:
            q, p = query(dataset)
            t0 = time.perf_counter()
            s.release(q, p)
            t[id(s)] = (time.perf_counter() - t0) * 1000
        lo.append(t[id(local)])
        re_.append(t[id(remote)])
        added.append(t[id(remote)] - t[id(local)])
    ml, mr = statistics.median(lo), statistics.median(re_)
    return {"dataset": dataset, "pairs": pairs, "local_ms": ml, "remote_ms": mr,
            "added_ms": statistics.median(added), "ratio": mr / ml,
            "remote_p90_ms": statistics.quantiles(re_, n=10)[-1]}


def recall(local: pets.Session, remote: pets.RemoteSession, dataset: str, n: int) -> dict:
    """A repeated identical release, answered from the record at no cost."""
    q, p = query(dataset)
    local.release(q, p)
    lo, re_ = [], []
    for _ in range(n):
        for s, out in ((local, lo), (remote, re_)):
            t0 = time.perf_counter()
            s.release(q, p)
            out.append((time.perf_counter() - t0) * 1000)
    ml, mr = statistics.median(lo), statistics.median(re_)
    return {"dataset": dataset, "n": n, "local_ms": ml, "remote_ms": mr, "added_ms": mr - ml,
            "ratio": mr / ml}


def throughput(sessions: list, dataset: str, seconds: float) -> dict:
    stop_at = [0.0]
    done = [0] * len(sessions)
    errors: list[str] = []

    def worker(k: int, s) -> None:
        while time.perf_counter() < stop_at[0]:
            q, p = query(dataset)
            try:
                s.release(q, p)
                done[k] += 1
            except pets.PetsError as e:  # would be a bug: the limits are raised
                errors.append(f"{type(e).__name__}: {e}")

    for s in sessions:  # warm
        s.release(*query(dataset))
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    ts = [threading.Thread(target=worker, args=(k, s)) for k, s in enumerate(sessions)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return {"dataset": dataset, "clients": len(sessions), "releases": sum(done),
            "wall_s": wall, "per_s": sum(done) / wall, "errors": len(errors),
            "first_error": errors[0] if errors else None}


def raw_throughput(url: str, keys: list[str], dataset: str, seconds: float) -> dict:
    """Releases/s with a minimal HTTP/1.1 client per thread (a raw keep-alive socket and a
    request body made by string substitution): the server's own ceiling, with almost no
    client CPU taken from the shared cores. Every request is a distinct query."""
    host, port = url.rsplit("//", 1)[1].split(":")
    sentinels, sentinel_eps = (123456781, 123456782, 123456783), 0.987654321
    q = _small(dataset, *sentinels)
    template = json.dumps({"purpose": PURPOSE, "plan": q.plan.to_dict(),
                           "protection": pets.DP(epsilon=sentinel_eps).to_dict(),
                           "ci_levels": [0.95]})
    assert all(str(x) in template for x in sentinels) and repr(sentinel_eps) in template
    stop_at = [0.0]
    done = [0] * len(keys)
    errors: list[str] = []

    def worker(k: int, key: str) -> None:
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        head = (f"POST /v1/release HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n")
        try:
            while time.perf_counter() < stop_at[0]:
                i = next(_counter)
                body = template.replace(repr(sentinel_eps), repr(_epsilon(i)))
                for x, v in zip(sentinels, _thresholds(i)):
                    body = body.replace(str(x), str(v))
                body = body.encode()
                sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = int(f.readline().split()[1])
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answer = f.read(length)
                if status == 200:
                    done[k] += 1
                else:
                    errors.append(f"{status}: {answer[:200]!r}")
        finally:
            sock.close()

    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    ts = [threading.Thread(target=worker, args=(k, key)) for k, key in enumerate(keys)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return {"dataset": dataset, "clients": len(keys), "releases": sum(done), "wall_s": wall,
            "per_s": sum(done) / wall, "errors": len(errors),
            "first_error": errors[0] if errors else None, "where": "server, raw client"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=8, help="pets serve --workers")
    ap.add_argument("--processes", type=int, default=1,
                    help="pets serve --processes (one per core for throughput)")
    ap.add_argument("--log-level", default="info", help="pets serve --log-level")
    ap.add_argument("--datasets", default="adult,adult_csv")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--duckdb-threads", type=int, default=None,
                    help="threads of each server process's DuckDB (the home's engine.toml); "
                         "default DuckDB's, one per core")
    ap.add_argument("--raw", action="store_true",
                    help="also measure with minimal raw-socket HTTP clients (the server's "
                         "own ceiling: almost no client CPU on the shared cores)")
    ap.add_argument("--vary", choices=["filter", "epsilon"], default="filter",
                    help="keep requests distinct by filter thresholds at one epsilon (an "
                         "analyst varying a query), or also by a fresh epsilon each call")
    a = ap.parse_args()
    VARY[0] = a.vary
    clients = [int(x) for x in a.clients.split(",")]
    datasets = a.datasets.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="pets-srvbench-"))
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()},
                 "workers": a.workers, "processes": a.processes, "duckdb_threads": a.duckdb_threads, "latency": [], "recall": [], "throughput": []}
    try:
        if a.duckdb_threads:
            (tmp / "home").mkdir(parents=True)
            (tmp / "home" / "engine.toml").write_text(f"[duckdb]\nthreads = {a.duckdb_threads}\n")
        keys = make_home(tmp / "home", max(clients))
        holder = pets.Holder(tmp / "home")
        proc, url = start(tmp / "home", a.workers, tmp / "server.log", a.processes,
                          a.log_level)
        try:
            local = holder.session("lat", purpose=PURPOSE)
            remote = pets.connect(url, api_key=keys["lat"], purpose=PURPOSE)
            for ds in datasets:
                r = latency(local, remote, ds, a.pairs)
                out["latency"].append(r)
                print(f"latency {ds:10s} local {r['local_ms']:7.2f} ms  remote {r['remote_ms']:7.2f} ms"
                      f"  added {r['added_ms']:6.2f} ms  ratio {r['ratio']:.2f}  "
                      f"(remote p90 {r['remote_p90_ms']:.2f} ms, {a.pairs} pairs)", flush=True)
                r = recall(local, remote, ds, 50)
                out["recall"].append(r)
                print(f"recall  {ds:10s} local {r['local_ms']:7.2f} ms  remote {r['remote_ms']:7.2f} ms"
                      f"  added {r['added_ms']:6.2f} ms", flush=True)
            for ds in datasets:
                for n in clients:
                    for where in ("server", "in-process"):
                        if where == "server":
                            ss = [pets.connect(url, api_key=keys[f"c{i}"], purpose=PURPOSE)
                                  for i in range(n)]
                        else:
                            ss = [holder.session(f"c{i}", purpose=PURPOSE) for i in range(n)]
                        r = throughput(ss, ds, a.seconds)
                        r["where"] = where
                        out["throughput"].append(r)
                        print(f"throughput {ds:10s} {where:10s} {n} clients: {r['per_s']:7.1f} "
                              f"releases/s ({r['releases']} in {r['wall_s']:.1f} s, "
                              f"{r['errors']} errors)", flush=True)
                        if r["first_error"]:
                            print("   first error:", r["first_error"])
                        if where == "server":
                            for s in ss:
                                s.close()
                    if a.raw:
                        r = raw_throughput(url, [keys[f"c{i}"] for i in range(n)], ds, a.seconds)
                        out["throughput"].append(r)
                        print(f"throughput {ds:10s} raw client {n} clients: {r['per_s']:7.1f} "
                              f"releases/s ({r['releases']} in {r['wall_s']:.1f} s, "
                              f"{r['errors']} errors)", flush=True)
                        if r["first_error"]:
                            print("   first error:", r["first_error"])
        finally:
            stop(proc)
        lines = (tmp / "server.log").read_text().splitlines()
        reqs = [json.loads(x) for x in lines if x.startswith("{") and '"request"' in x]
        reqs = [r for r in reqs if r.get("event") == "request"]
        if reqs:
            ms = statistics.median(r["ms"] for r in reqs if r["path"] == "/v1/release")
            out["server_median_ms"] = ms
            print(f"server-side median per release (its access log): {ms:.2f} ms "
                  f"over {len(reqs)} requests")
        aud = holder.audit().verify()
        print("audit verifies after the run:", aud)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
