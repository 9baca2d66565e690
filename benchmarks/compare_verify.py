"""Verification (核验): single answers per second, a batch of 10^5 subjects, and PSI
through pets against openmined-psi on its own, in the same run.

Run from the repository root (PSI needs ``pip install 'pets[psi]'``)::

    python benchmarks/compare_verify.py                         # all, PSI 10^5 x 10^6 (~10 min)
    python benchmarks/compare_verify.py --psi 10000x100000      # a quicker PSI cell
    python benchmarks/compare_verify.py --skip-psi

What is measured (CPU seconds of this process where said, else wall seconds):

1. **Single verifications per second**: ``s.verify(...)`` one after another on Adult
   (32,561 rows, a generated ``person_id``), each a different subject, a range claim
   on age. Each answer is a full pipeline run: grant and policy checks, the claim
   rules, the ledger's quota check, two DuckDB scans of the key column filtered on the
   subject (one with the claim), then one SQLite transaction (quota count + signed audit
   record, ``synchronous=FULL``, fsync).
2. **Batch of 10^5 subjects** against a table of 10^6 rows (``person_id``, age,
   education; synthetic, seeded): ``s.verify_batch(...)``, checked against pandas. The
   baseline is the same answer computed by pandas alone on the in-memory frame
   (``isin`` + a join), i.e. what a holder would do with no governance at all.
3. **PSI**, verifier items × holder records: ``s.verify_psi(...)`` (the verifier's
   blinding, the holder's pipeline with its DuckDB scan, the GCS setup and response,
   the quota commit, the verifier's finish) against the same exchange made with
   ``private_set_intersection.python`` directly on the same item strings (client
   request, server setup + response, client intersection), both at fpr 10^-9 with GCS.
   The ratio is pets / library (wall time; both single-threaded in the library).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import pets  # noqa: E402
from pets import col  # noqa: E402

PURPOSE = "bench"


def policy(claims: dict, **verify: object) -> dict:
    return {
        "columns": {"person_id": {"role": "identifier", "grade": 2},
                    "age": {"role": "quasi_identifier", "grade": 2, "bounds": [17, 90]},
                    "education": {"role": "attribute", "grade": 1}},
        "grades": {"1": {"allow": ["dp", "verify"]}, "2": {"allow": ["dp", "verify"]}},
        "dataset": {"max_rows": 2**26},
        "verify": {"subject_keys": ["person_id"], "max_per_analyst": 10_000_000,
                   "max_batch": 10_000_000, "claims": claims, **verify},
    }


CLAIMS = {"age": {"operators": [">=", "<", "=="], "granularity": 5},
          "education": {"operators": ["==", "isin"]}}


def holder_of(df: pd.DataFrame, root: Path, name: str) -> pets.Session:
    h = pets.Holder(root / name)
    h.register("t", df, policy(CLAIMS))
    h.grant("bank", dataset="t", purpose=PURPOSE, epsilon=1.0)
    return h.session("bank", purpose=PURPOSE)


def synthetic(rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    edu = np.array(["Bachelors", "HS-grad", "Masters", "Doctorate", "Some-college"])
    return pd.DataFrame({
        "person_id": [f"P-{i:08d}" for i in range(rows)],
        "age": rng.integers(17, 91, rows),
        "education": edu[rng.integers(0, len(edu), rows)],
    })


def bench_single(root: Path, n: int) -> dict:
    adult = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values=["?"])
    df = pd.DataFrame({"person_id": [f"P-{i:08d}" for i in range(len(adult))],
                       "age": adult["age"], "education": adult["education"]})
    s = holder_of(df, root, "single")
    s.verify("t", {"person_id": "P-00000000"}, col("age") >= 30)  # warm the engine
    ids = np.random.default_rng(1).choice(len(df), n, replace=False)
    t, c = time.perf_counter(), time.process_time()
    ok = 0
    for i in ids:
        v = s.verify("t", {"person_id": f"P-{i:08d}"}, (col("age") >= 30) & (col("age") < 50))
        ok += v.match == bool(30 <= df["age"][i] < 50)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert ok == n
    return {"n": n, "wall": wall, "cpu": cpu, "per_s": n / wall}


def bench_batch(root: Path, rows: int, batch: int) -> dict:
    df = synthetic(rows)
    s = holder_of(df, root, "batch")
    rng = np.random.default_rng(2)
    ids = pd.DataFrame({"person_id": [f"P-{i:08d}" for i in rng.choice(rows + batch // 10, batch, replace=False)]})
    claim = (col("age") >= 30) & col("education").isin(["Bachelors", "Masters"])
    t = time.perf_counter()
    b = s.verify_batch("t", ids, claim)
    wall = time.perf_counter() - t
    t = time.perf_counter()
    m = ids.merge(df, on="person_id", how="left")
    want = ((m["age"] >= 30) & m["education"].isin(["Bachelors", "Masters"])).to_numpy()
    base = time.perf_counter() - t
    assert (b.match.to_numpy() == want).all()
    return {"rows": rows, "batch": batch, "wall": wall, "pandas": base, "ratio": wall / base}


def bench_psi(root: Path, client: int, server: int) -> dict:
    import private_set_intersection.python as psi

    from pets.verify.psi import FPR, encode_pairs

    df = synthetic(server, seed=3)
    s = holder_of(df, root, f"psi-{client}-{server}")
    rng = np.random.default_rng(4)
    half = client // 2
    pick = rng.choice(server, half, replace=False)
    pairs = pd.concat([
        df.iloc[pick][["person_id", "education"]],
        pd.DataFrame({"person_id": [f"X-{i:08d}" for i in range(client - half)],
                      "education": "Bachelors"}),
    ], ignore_index=True)
    # pets, end to end
    t = time.perf_counter()
    b = s.verify_psi("t", pairs, keys=["person_id"])
    pets_wall = time.perf_counter() - t
    assert int(b.match.sum()) == half
    # the library alone, on the same item strings (encoded outside the timing)
    c_items = encode_pairs(pairs[["person_id"]].to_numpy(dtype=object).tolist(),
                           pairs[["education"]].to_numpy(dtype=object).tolist(), [None])
    s_items = encode_pairs(df[["person_id"]].to_numpy(dtype=object).tolist(),
                           df[["education"]].to_numpy(dtype=object).tolist(), [None])
    t = time.perf_counter()
    cl = psi.client.CreateWithNewKey(True)
    req = cl.CreateRequest(c_items)
    t_req = time.perf_counter()
    sv = psi.server.CreateWithNewKey(True)
    setup = sv.CreateSetupMessage(FPR, client, s_items, psi.DataStructure.GCS)
    t_setup = time.perf_counter()
    resp = sv.ProcessRequest(req)
    t_resp = time.perf_counter()
    got = cl.GetIntersection(setup, resp)
    lib_wall = time.perf_counter() - t
    assert len(got) == half
    return {"client": client, "server": server, "pets": pets_wall, "library": lib_wall,
            "ratio": pets_wall / lib_wall, "lib_request": t_req - t, "lib_setup": t_setup - t_req,
            "lib_response": t_resp - t_setup, "lib_finish": time.perf_counter() - t - (t_resp - t)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", type=int, default=500, help="single verifications to time")
    ap.add_argument("--rows", type=int, default=1_000_000, help="table rows for the batch")
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--psi", default="100000x1000000", help="CLIENTxSERVER, comma-separated")
    ap.add_argument("--skip-psi", action="store_true")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    print(f"pets {pets.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    r = bench_single(root, a.single)
    print(f"single: {r['n']} verifications in {r['wall']:.2f} s wall ({r['cpu']:.2f} s CPU): "
          f"{r['per_s']:.0f}/s")
    r = bench_batch(root, a.rows, a.batch)
    print(f"batch: {r['batch']:,} subjects against {r['rows']:,} rows: pets {r['wall']:.2f} s, "
          f"pandas alone {r['pandas']:.2f} s, ratio {r['ratio']:.1f}x")
    if not a.skip_psi:
        for cell in a.psi.split(","):
            c, sv = (int(x) for x in cell.lower().split("x"))
            r = bench_psi(root, c, sv)
            print(f"psi {c:,} x {sv:,}: pets {r['pets']:.1f} s, openmined-psi alone "
                  f"{r['library']:.1f} s (request {r['lib_request']:.1f}, setup "
                  f"{r['lib_setup']:.1f}, response {r['lib_response']:.1f}, finish "
                  f"{r['lib_finish']:.1f}), ratio {r['ratio']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
