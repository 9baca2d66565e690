"""Issue 17's speed targets: the exhaustive search on Adult, this tree against another.

    python benchmarks/compare_anon_speed.py --base /tmp/anonspeed-base [--rounds 5]

``--base`` is a checkout of the code to compare with (e.g. ``git worktree add
/tmp/anonspeed-base <commit>``). Each round runs every case once in a fresh process
per tree, the two trees alternating (base first on even rounds, this tree first on odd
ones), so both see the same machine load; each process runs the case once to warm up
and then times ``optimal_full_domain`` (search and result, on pre-encoded columns).
Prints one Markdown row per case: the median time of each tree, their ratio, the
nodes evaluated, and whether both found the same transformation and value.

Cases: t = 0.2 closeness on occupation (hierarchical and equal distance; 8 QIs,
4,320 nodes) with k = 5 and 5% suppression, and every metric as the objective with
k = 5 and k = 50 at 5% suppression (the nine benchmark QIs, 12,960 nodes). A script,
not a test: the default test run does not collect benchmarks/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["loss", "entropy", "precision", "monotonic_precision", "height", "discernibility", "dm*", "aecs",
           "arx_aecs"]
CASES = ([f"t-{dist}" for dist in ("hierarchical", "equal")]
         + [f"{m}/{k}" for m in METRICS for k in (5, 50)])


def run_case(case: str) -> dict:
    """One case in this process (whichever ``pets`` is on the path)."""
    import pandas as pd

    import pets.anon as anon
    from pets.anon.lattice import optimal_full_domain
    from pets.anon.models import KAnonymity, TCloseness

    data = ROOT / "tests" / "data" / "adult-arx"
    qis9 = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation",
            "salary-class"]
    df = pd.read_csv(data / "adult.csv", sep=";", dtype=str)
    H = anon.load_hierarchies(data, qis9)
    if case.startswith("t-"):
        dist = case[2:]
        qis = [q for q in qis9 if q != "occupation"]
        enc = [H[q].encode(df[q]) for q in qis]
        occ = H["occupation"].encode(df["occupation"])

        def call():  # type: ignore[no-untyped-def]
            t = TCloseness(codes=occ.codes, t=0.2, distance=dist,
                           hierarchy=H["occupation"] if dist == "hierarchical" else None)
            return optimal_full_domain(enc, [KAnonymity(5), t], 0.05, "loss")
    else:
        metric, k = case.split("/")
        enc = [H[q].encode(df[q]) for q in qis9]

        def call():  # type: ignore[no-untyped-def]
            return optimal_full_domain(enc, [KAnonymity(int(k))], 0.05, metric)

    call()
    t0 = time.perf_counter()
    r = call()
    return {"s": time.perf_counter() - t0, "nodes": r.nodes_checked, "levels": list(r.levels), "value": r.value}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="a checkout of the code to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    trees = {"base": Path(args.base).resolve(), "new": ROOT}
    rows = []
    for case in [c for c in CASES if args.only in c]:
        got: dict[str, list[dict]] = {"base": [], "new": []}
        for r in range(args.rounds):
            for name in (("base", "new") if r % 2 == 0 else ("new", "base")):
                env = dict(os.environ, PYTHONPATH=str(trees[name]))
                out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--base", args.base,
                                      "--case", case], env=env, cwd=trees[name], check=True,
                                     capture_output=True, text=True).stdout
                got[name].append(json.loads(out.strip().splitlines()[-1]))
        b = statistics.median(x["s"] for x in got["base"])
        n = statistics.median(x["s"] for x in got["new"])
        same = (got["base"][0]["levels"] == got["new"][0]["levels"]
                and abs(got["base"][0]["value"] - got["new"][0]["value"]) <= 1e-9 * max(1.0, abs(got["base"][0]["value"])))
        rows.append(f"| {case} | {b:.3f} | {n:.3f} | {b / n:.2f}× | {got['base'][0]['nodes']:,} | "
                    f"{got['new'][0]['nodes']:,} | {'yes' if same else 'NO'} |")
        print(rows[-1], file=sys.stderr, flush=True)
    print("| case (Adult, 5% suppression) | base s | new s | base ÷ new | base nodes | new nodes | same optimum |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nload average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
