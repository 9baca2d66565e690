"""pets' fixed per-release cost, old code against new, paired in one run (issues 10, 16).

Run from the repository root (not part of the test suite)::

    python benchmarks/compare_pipeline.py --base /tmp/pipe-base --new . \\
        --file /tmp/scale1m/scale-1000000.parquet --work /tmp/pipe-bench --rounds 6 --n 40

``--base`` and ``--new`` are two source trees of pets (e.g. ``git archive <commit>``
unpacked in a temporary folder, and this worktree). Each gets its own holder home in
``--work`` (the bundled Adult as a stored copy; with ``--file``, the 1M-row Parquet of
benchmarks/compare_scale.py registered as ``a-copy`` and ``b-inplace``), built once.
Then, in ``--rounds`` rounds alternating which tree goes first, a fresh process per tree
and workload releases ``--n`` distinct queries (after 5 warm-up releases) and reports
the CPU of that one process per release (``time.process_time``) and the wall median.
Workloads: ``adult`` — the small query of benchmarks/compare_server.py (a count by sex
under three filter thresholds, ε = 0.1, distinct thresholds per call); ``a-copy`` /
``b-inplace`` — count, sum and mean of income by region, ε = 1 (a new output name per call).
Prints medians over rounds per tree and the ratio new ÷ base, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, statistics, warnings
tree, home, mode, n, file = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, tree)
import pets
assert pets.__file__.startswith(tree), pets.__file__
sys.path.insert(0, tree + "/benchmarks")
import compare_scale as cs
from pathlib import Path
if mode == "setup":
    h = pets.Holder(home)
    h.register("adult", pets.example_data(), pets.example_policy(), copy=True)
    h.grant("bench", dataset="adult", purpose="bench", epsilon=1e9)
    if file:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in ("a-copy", "b-inplace"):
                kind, m = name.split("-")
                h.register(name, file, cs.policy(kind), copy=m == "copy")
                h.grant("bench", dataset=name, purpose="bench", epsilon=1e9)
    print(json.dumps({}))
    sys.exit(0)
s = pets.Holder(home).session("bench", purpose="bench")
import random
seed = int.from_bytes(__import__("os").urandom(4), "little")
calls = [seed * 1000]
def one():
    calls[0] += 1
    i = calls[0]
    if mode == "adult":
        a, b, hh = 17 + i % 40, 57 + (i // 40) % 34, 1 + (i // 1360) % 99
        q = (pets.Query("adult")
             .filter((pets.col("age") >= a) & (pets.col("age") <= b) & (pets.col("hours-per-week") >= hh))
             .group_by("sex").agg(**{f"n{i}": pets.count()}))
        r = s.release(q, pets.DP(epsilon=0.1))
    else:
        q = s.table(mode).group_by("region").agg(
            n=pets.count(), total=pets.sum("income", bounds=cs.BOUNDS),
            **{f"avg{i}": pets.mean("income", bounds=cs.BOUNDS)})
        r = s.release(q, pets.DP(epsilon=1.0))
    assert r.spent.epsilon > 0
for _ in range(5):
    one()
walls = []
c0 = time.process_time()
for _ in range(n):
    t = time.perf_counter()
    one()
    walls.append(time.perf_counter() - t)
cpu = (time.process_time() - c0) / n
print(json.dumps({"cpu_ms": cpu * 1000, "wall_ms": statistics.median(walls) * 1000}))
"""


def child(tree: str, home: str, mode: str, n: int, file: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, tree, home, mode, str(n), file],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": tree})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", default=".")
    ap.add_argument("--file", default="")
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--workloads", default="")
    a = ap.parse_args()
    trees = {"base": str(Path(a.base).resolve()), "new": str(Path(a.new).resolve())}
    homes = {}
    for name, tree in trees.items():
        home = Path(a.work) / name / "home"
        if not home.exists():
            child(tree, str(home), "setup", 0, a.file)
        homes[name] = str(home)
    modes = a.workloads.split(",") if a.workloads else (["adult"] + (["a-copy", "b-inplace"] if a.file else []))
    load0 = os.getloadavg()
    res: dict = {m: {t: [] for t in trees} for m in modes}
    for r in range(a.rounds):
        for m in modes:
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for t in order:
                res[m][t].append(child(trees[t], homes[t], m, a.n, a.file))
    print("| workload | base CPU/release | new CPU/release | new ÷ base | base wall median | new wall median | new ÷ base |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m in modes:
        c = {t: statistics.median(x["cpu_ms"] for x in res[m][t]) for t in trees}
        w = {t: statistics.median(x["wall_ms"] for x in res[m][t]) for t in trees}
        print(f"| {m} | {c['base']:.2f} ms | {c['new']:.2f} ms | {c['new'] / c['base']:.2f} "
              f"| {w['base']:.2f} ms | {w['new']:.2f} ms | {w['new'] / w['base']:.2f} |")
    print("load at start", load0, "at end", os.getloadavg(), "rounds", a.rounds, "n", a.n)


if __name__ == "__main__":
    main()
