"""Homomorphic aggregation: pets.he vs python-paillier (``phe`` 1.5), same keys, same run.

Run from the repository root::

    python benchmarks/compare_he.py                       # 2048 and 3072 bits (~4-6 min)
    python benchmarks/compare_he.py --bits 3072 --rounds 3 --group-rounds 1 --pool-rounds 1

Both libraries use the *same* key at each size (pets generates it; phe's
``PaillierPublicKey(n)`` / ``PaillierPrivateKey(pub, p, q)`` are built from its numbers).
Four measurements, each at every key size:

1. **Encryption, one value per ciphertext** (random non-negative ints < 2^32):

   * ``phe``                ``[public_key.encrypt(v) for v in values]`` — phe's public-key
                            encryption (r^n mod n², r uniform; its only randomiser);
   * ``pets djn``           ``pub.encrypt_many(values, workers=1)`` — pets' default: the
                            public-key DJN randomiser hs^x (x of ⌈k/2⌉ bits) with the
                            fixed-base table (built once per key, before timing; its
                            one-off cost is reported separately). **The headline
                            comparison** (public key against public key);
   * ``pets djn, key owner (CRT)`` ``priv.encrypt_many(values, workers=1)``;
   * ``pets short_exponent`` ``pub.encrypt_many(values, profile="short_exponent",
                            workers=1)`` (x of 4λ bits; rests on the short-exponent
                            assumption, see ``pets.he.paillier``);
   * ``pets phe profile``   ``pub.encrypt_many(values, profile="phe", workers=1)`` — phe's
                            own algorithm in pets, for reference.

   The ratio is phe's CPU time per value divided by pets' (i.e. pets' rate / phe's rate).
   Target (issue 4): ≥ 12× at the default parameters (3072 bits, ``djn``, public key).

2. **Encrypted sum of 100,000 values by group** (50 groups drawn uniformly at random,
   values uniform in [0, 2^32), fixed seed), per value:

   * ``pets``  ``Packer(pub, value_bits=33, max_summands=100_000).encrypt_grouped(values,
     groups, 50, workers=...)`` (packs one value per group into each row's plaintext,
     encrypts every row, multiplies the rows together) then ``priv.decrypt_many(packed)``;
     the 50 totals are checked against the exact plaintext totals. ``value_bits=33``
     because the packer offset-encodes signed values (a value < 2^32 needs 33 signed
     bits); ``max_summands`` is declared as the number of values, a bound that does not
     depend on the data. Variants: public key with ``workers=1`` (the per-value ratio,
     single process like phe), public key with the default pool, key owner (CRT).
   * ``phe``   for a *sample*: 2 values of each group per round (100 values), each
     ``public_key.encrypt(v)``, then the ciphertexts of a group added with ``+``, then
     the 50 group totals decrypted with ``private_key.decrypt``; the totals are checked.
     phe's cost for 100,000 values is **extrapolated** from the sampled values:
     100,000 × (encrypt + add per sampled value, median over rounds) + the measured
     decryption of 50 totals.

   Target: ≥ 300× phe per value for packed group sums.

3. **Cost model**: ``pets.he.paillier.modmul_count(bits)`` — the multiplications mod n²
   one default encryption needs (one per byte of the ⌈k/2⌉-bit exponent, the first a
   table read, plus one for (1 + n·m)·R: 128 at 2048 bits, 192 at 3072) — and the
   measured CPU time of one gmpy2 multiplication mod n² (``r = r * y % n2`` in a Python
   loop over random y < n², the exact statement pets' table loop runs). Ratio: measured
   ``pets djn`` encryption (1.) / (count × one multiplication). Target: ≤ 1.3×.

4. **Process pool**: ``pub.encrypt_many(10_000 values, workers=1)`` vs the default
   (``workers=None``: all available CPUs, 2 here) — wall time and total CPU time (this
   process + the pool's workers, reaped at pool shutdown).

Timing: every workload is warmed up once (tables built, pools forked once); rounds are
interleaved (each round runs every workload of the section once, at every key size, in
a rotating order); medians are reported. Each call records wall time
(``time.perf_counter``), CPU time (``time.process_time`` + ``RUSAGE_CHILDREN`` for pool
workers) and the CPU other processes used meanwhile (``/proc/stat`` busy time minus
ours), since another benchmark may share this 2-core machine. Per-value ratios use CPU
time; the pool comparison is about wall time and is reported with the neighbours' load.

Results go to stdout and to ``benchmarks/.data/he_results.md`` (+ ``he_results.json``
with every timing) unless ``--out`` says otherwise. ``bench_he.py`` runs the same calls
under pytest-benchmark (``pytest benchmarks/bench_he.py --benchmark-only``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gmpy2
import numpy as np
import phe

from pets import he
from pets.he.paillier import POOL_THRESHOLD, modmul_count

BITS = (2048, 3072)
DEFAULT_BITS = 3072
N_VALUES = 100_000
N_GROUPS = 50
VALUE_BITS = 33  # values in [0, 2^32): 33 bits once offset-encoded as signed
POOL_VALUES = 10_000
SEED = 20240604

TARGET_ENC = 12.0
TARGET_GROUP = 300.0
TARGET_MODMUL = 1.3

ENC_MODES = ("pets djn", "pets djn, key owner (CRT)", "pets short_exponent", "pets phe profile")
GROUP_MODES = ("pets packed, workers=1", "pets packed, pool (default workers)",
               "pets packed, key owner (CRT), workers=1")

# phe's figures from the project's notes (notes/paillier.md): measured by others on this
# machine class, not in this run.
NOTES_PHE = {
    "encrypt_per_s_2048": "≈ 100",
    "encrypt_per_s_3072": "≈ 25–33",
    "sum_100k_cpu_s_2048": "≈ 1,070",
    "modmul_us_2048": "≈ 6.3",
    "djn_ms": "0.82 (3072: 2.0)",
    "packed_ratio_2048": "≈ 426×",
}


# --------------------------------------------------------------------------- keys and data


@dataclass
class Keys:
    """One key pair, seen by pets and by phe (the same n, p, q)."""

    bits: int
    pub: he.PublicKey
    priv: he.PrivateKey
    ppub: phe.PaillierPublicKey
    ppriv: phe.PaillierPrivateKey
    packer: he.Packer
    keygen_s: float = 0.0
    table_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def generate(cls, bits: int) -> Keys:
        t = time.process_time()
        pub, priv = he.generate_keypair(bits)
        keygen = time.process_time() - t
        ppub = phe.PaillierPublicKey(pub.n)
        ppriv = phe.PaillierPrivateKey(ppub, priv.p, priv.q)
        packer = he.Packer(pub, value_bits=VALUE_BITS, max_summands=N_VALUES)
        return cls(bits, pub, priv, ppub, ppriv, packer, keygen)

    def build_tables(self) -> None:
        """Build pets' fixed-base tables (one-off per key) and time them."""
        for name, fn in (
            ("djn (public key)", lambda: self.pub.encrypt_many([1], workers=1)),
            ("djn (key owner, CRT)", lambda: self.priv.encrypt_many([1], workers=1)),
            ("short_exponent", lambda: self.pub.encrypt_many([1], profile="short_exponent",
                                                               workers=1)),
        ):
            t = time.process_time()
            fn()
            self.table_s[name] = time.process_time() - t

    def check_interop(self) -> None:
        """Sanity, untimed: pets ↔ phe ciphertexts decrypt on the other side."""
        vals = [0, 1, 2**32 - 1, 123456789]
        ev = self.pub.encrypt_many(vals, workers=1)
        got = [self.ppriv.decrypt(phe.EncryptedNumber(self.ppub, c, ev.exponent))
               for c in ev.ciphertexts]
        assert got == vals, (got, vals)
        cs = [self.ppub.encrypt(v) for v in vals]
        back = self.priv.decrypt_many(he.EncryptedVector(self.pub, [c.ciphertext() for c in cs],
                                                          cs[0].exponent))
        assert [int(x) for x in back] == vals


@dataclass
class Data:
    values: np.ndarray  # int64, [0, 2^32)
    groups: np.ndarray  # int64, [0, N_GROUPS)
    totals: np.ndarray  # exact int64 totals by group
    by_group: list[np.ndarray]

    @classmethod
    def make(cls, n: int = N_VALUES, n_groups: int = N_GROUPS, seed: int = SEED) -> Data:
        rng = np.random.default_rng(seed)
        values = rng.integers(0, 2**32, size=n, dtype=np.int64)
        groups = rng.integers(0, n_groups, size=n, dtype=np.int64)
        totals = np.zeros(n_groups, dtype=np.int64)
        np.add.at(totals, groups, values)
        by_group = [np.flatnonzero(groups == g) for g in range(n_groups)]
        return cls(values, groups, totals, by_group)

    @property
    def rows(self) -> int:
        return int(np.bincount(self.groups).max())

    def sample(self, per_group: int, seed: int) -> tuple[list[int], list[int]]:
        """``per_group`` values of every group (values, groups), order shuffled."""
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.choice(ix, per_group, replace=False) for ix in self.by_group])
        rng.shuffle(idx)
        return [int(v) for v in self.values[idx]], [int(g) for g in self.groups[idx]]


def random_values(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(v) for v in rng.integers(0, 2**32, size=n, dtype=np.int64)]


# --------------------------------------------------------------------------- workloads


def phe_encrypt(k: Keys, values: list[int]) -> list[Any]:
    enc = k.ppub.encrypt
    return [enc(v) for v in values]


def pets_encrypt(k: Keys, mode: str, values: list[int], workers: int | None = 1) -> Any:
    if mode == "pets djn":
        return k.pub.encrypt_many(values, workers=workers)
    if mode == "pets djn, key owner (CRT)":
        return k.priv.encrypt_many(values, workers=workers)
    if mode == "pets short_exponent":
        return k.pub.encrypt_many(values, profile="short_exponent", workers=workers)
    if mode == "pets phe profile":
        return k.pub.encrypt_many(values, profile="phe", workers=workers)
    raise ValueError(mode)


def pets_group_encrypt(k: Keys, d: Data, mode: str) -> he.PackedVector:
    if mode == "pets packed, workers=1":
        return k.packer.encrypt_grouped(d.values, d.groups, N_GROUPS, workers=1)
    if mode == "pets packed, pool (default workers)":
        return k.packer.encrypt_grouped(d.values, d.groups, N_GROUPS)
    if mode == "pets packed, key owner (CRT), workers=1":
        return k.packer.encrypt_grouped(d.values, d.groups, N_GROUPS, private_key=k.priv,
                                        workers=1)
    raise ValueError(mode)


def pets_group_sum(k: Keys, d: Data, mode: str) -> np.ndarray:
    """encrypt_grouped + decrypt, checked against the exact totals."""
    totals = k.priv.decrypt_many(pets_group_encrypt(k, d, mode))
    assert np.array_equal(np.asarray(totals, dtype=np.int64), d.totals), "wrong totals"
    return totals


class PheGroup:
    """phe's group sum over a sample, phase by phase: encrypt, add by group, decrypt."""

    def __init__(self, k: Keys, values: list[int], groups: list[int]) -> None:
        self.k, self.values, self.groups = k, values, groups
        self.cts: list[Any] = []
        self.acc: list[Any] = []

    def encrypt(self) -> None:
        self.cts = phe_encrypt(self.k, self.values)

    def add(self) -> None:
        acc: list[Any] = [None] * N_GROUPS
        for g, c in zip(self.groups, self.cts):
            acc[g] = c if acc[g] is None else acc[g] + c
        self.acc = acc

    def decrypt(self) -> list[int]:
        dec = self.k.ppriv.decrypt
        out = [dec(a) for a in self.acc]
        exact = [0] * N_GROUPS
        for g, v in zip(self.groups, self.values):
            exact[g] += v
        assert out == exact, "phe: wrong totals"
        return out

    def run(self) -> list[int]:
        self.encrypt()
        self.add()
        return self.decrypt()


def modmul_loop(k: Keys, reps: int = 4000, seed: int = 1) -> Callable[[], None]:
    """``r = r * y % n2`` over ``reps`` random y < n² (pets' table loop statement)."""
    rng = np.random.default_rng(seed)
    n2 = gmpy2.mpz(k.pub.n) ** 2
    nbytes = (int(n2).bit_length() + 7) // 8
    ys = [gmpy2.mpz(int.from_bytes(rng.bytes(nbytes), "little")) % n2 for _ in range(reps)]
    r0 = ys[0]

    def run() -> None:
        r = r0
        for y in ys:
            r = r * y % n2

    run.reps = reps  # type: ignore[attr-defined]
    return run


# --------------------------------------------------------------------------- timing


def _cpu_jiffies() -> int:
    """Busy CPU time of the whole machine, in clock ticks (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # minus idle and iowait


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Sample:
    wall: float
    cpu: float  # this process + reaped children (pool workers)
    others: float  # CPU seconds other processes used meanwhile


def measure(fn: Callable[[], Any]) -> Sample:
    b0, c0, ch0 = _cpu_jiffies(), time.process_time(), _children_cpu()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    cpu = (time.process_time() - c0) + (_children_cpu() - ch0)
    others = max(0.0, (_cpu_jiffies() - b0) / _HZ - cpu)
    return Sample(wall, cpu, others)


def interleaved(tasks: dict[str, Callable[[], Any]], rounds: int, warmup: bool = True,
                log: Callable[[str], None] | None = None) -> dict[str, list[Sample]]:
    names = list(tasks)
    if warmup:
        for n in names:
            tasks[n]()
    out: dict[str, list[Sample]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            out[n].append(measure(tasks[n]))
        if log:
            log(f"  round {r + 1}/{rounds} done")
    return out


def med(samples: list[Sample], attr: str = "cpu") -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def load(samples: list[Sample]) -> float:
    """Mean cores' worth of CPU that other processes used during these calls."""
    wall = sum(s.wall for s in samples)
    return sum(s.others for s in samples) / wall if wall else 0.0


def fmt_t(x: float) -> str:
    if x >= 1.0:
        return f"{x:,.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.1f} µs"


def fmt_rate(per_value_s: float) -> str:
    r = 1.0 / per_value_s
    return f"{r:,.0f}" if r >= 100 else f"{r:,.1f}"


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, str]:
    info = {"python": platform.python_version(), "phe": phe.__version__,
            "gmpy2": gmpy2.version(), "gmp": gmpy2.mp_version(), "numpy": np.__version__,
            "nproc": str(os.cpu_count()), "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import pets

        info["pets"] = getattr(pets, "__version__", "?")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "pets/he"],
                               capture_output=True, text=True, check=True).stdout.strip()
        info["commit"] = head + (" (uncommitted changes under pets/he/)" if dirty else
                                 " (no uncommitted changes under pets/he/)")
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bits", default="2048,3072", help="key sizes (default 2048,3072)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds for encryption and modmul")
    ap.add_argument("--phe-values", type=int, default=30,
                    help="values phe (and pets' phe profile) encrypt per round (default 30)")
    ap.add_argument("--pets-values", type=int, default=300,
                    help="values each pets table-based mode encrypts per round (default 300)")
    ap.add_argument("--group-rounds", type=int, default=3)
    ap.add_argument("--phe-group-per-group", type=int, default=2,
                    help="phe group-sum sample: values per group per round (default 2)")
    ap.add_argument("--pool-rounds", type=int, default=3)
    ap.add_argument("--pool-values", type=int, default=POOL_VALUES)
    ap.add_argument("--out", default=str(HERE / ".data" / "he_results.md"))
    args = ap.parse_args(argv)
    bits_list = [int(b) for b in args.bits.split(",") if b.strip()]
    assert args.pets_values < POOL_THRESHOLD, "keep per-value batches below the pool threshold"
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    keys: dict[int, Keys] = {}
    for b in bits_list:
        k = Keys.generate(b)
        k.build_tables()
        k.check_interop()
        keys[b] = k
        log(f"{b}-bit key: keygen {k.keygen_s:.2f} s CPU, tables "
            + ", ".join(f"{n} {s:.2f} s" for n, s in k.table_s.items()))
    data = Data.make()
    log(f"data: {N_VALUES:,} values in {N_GROUPS} groups, largest group {data.rows:,} values")

    # 1 + 3: encryption per value, and one multiplication mod n²
    # fresh values for every call, generated before the timing starts
    tasks: dict[str, Callable[[], Any]] = {}
    seed = iter(range(SEED + 1, SEED + 1_000_000))

    def supply(n: int) -> Callable[[], list[int]]:
        lists = iter([random_values(n, next(seed)) for _ in range(args.rounds + 1)])
        return lambda: next(lists)

    for b, k in keys.items():
        nxt = supply(args.phe_values)
        tasks[f"{b} phe"] = (lambda k=k, nxt=nxt: phe_encrypt(k, nxt()))
        for mode in ENC_MODES:
            nxt = supply(args.phe_values if mode == "pets phe profile" else args.pets_values)
            tasks[f"{b} {mode}"] = (lambda k=k, mode=mode, nxt=nxt: pets_encrypt(k, mode, nxt()))
        tasks[f"{b} modmul"] = modmul_loop(k)
    log("section 1+3: encryption per value, modmul")
    enc = interleaved(tasks, args.rounds, log=log)

    def per_value(name: str, n: int, attr: str = "cpu") -> float:
        return med(enc[name], attr) / n

    enc_res: dict[int, dict[str, dict[str, float]]] = {}
    for b in keys:
        row: dict[str, dict[str, float]] = {}
        for mode in ("phe",) + ENC_MODES:
            n = args.phe_values if mode in ("phe", "pets phe profile") else args.pets_values
            row[mode] = {"cpu": per_value(f"{b} {mode}", n),
                         "wall": per_value(f"{b} {mode}", n, "wall"), "n": n}
        reps = tasks[f"{b} modmul"].reps  # type: ignore[attr-defined]
        row["modmul"] = {"cpu": med(enc[f"{b} modmul"]) / reps,
                         "wall": med(enc[f"{b} modmul"], "wall") / reps, "n": reps}
        enc_res[b] = row

    # 2: group sums
    log("section 2: encrypted sum of 100,000 values by group")
    gtasks: dict[str, Callable[[], Any]] = {}
    for b, k in keys.items():
        for mode in GROUP_MODES:
            gtasks[f"{b} {mode}"] = (lambda k=k, mode=mode: pets_group_sum(k, data, mode))
    # phe's phases are timed separately inside its task: wrap to record them
    phe_phase: dict[int, list[dict[str, Sample]]] = {b: [] for b in keys}

    def phe_phased(b: int) -> Callable[[], None]:
        def run() -> None:
            k = keys[b]
            vals, grps = data.sample(args.phe_group_per_group, SEED + 1000 + len(phe_phase[b]))
            pg = PheGroup(k, vals, grps)
            ph = {"encrypt": measure(pg.encrypt), "add": measure(pg.add),
                  "decrypt": measure(pg.decrypt)}
            phe_phase[b].append(ph)
        return run

    for b in keys:
        gtasks[f"{b} phe sample"] = phe_phased(b)
    # warm-up on 2,000 values (code paths, pool start-up; the tables are built already);
    # phe needs none
    small = Data.make(2000)
    for k in keys.values():
        for mode in GROUP_MODES:
            pets_group_sum(k, small, mode)
    grp = interleaved(gtasks, args.group_rounds, warmup=False, log=log)

    per_sample = N_GROUPS * args.phe_group_per_group
    group_res: dict[int, dict[str, Any]] = {}
    for b, k in keys.items():
        phs = phe_phase[b]
        enc_pv = statistics.median(p["encrypt"].cpu for p in phs) / per_sample
        add_pv = statistics.median(p["add"].cpu for p in phs) / per_sample
        dec50 = statistics.median(p["decrypt"].cpu for p in phs)
        phe_total = N_VALUES * (enc_pv + add_pv) + dec50
        row = {"phe": {"encrypt_per_value": enc_pv, "add_per_value": add_pv,
                       "decrypt_50": dec50, "total_extrapolated": phe_total,
                       "per_value": phe_total / N_VALUES,
                       "sampled_values": per_sample * len(phs)}}
        for mode in GROUP_MODES:
            s = grp[f"{b} {mode}"]
            row[mode] = {"cpu": med(s), "wall": med(s, "wall"),
                         "cpu_per_value": med(s) / N_VALUES, "wall_per_value": med(s, "wall") / N_VALUES,
                         "load": load(s)}
        per_row = k.packer.n_plaintexts(N_GROUPS)
        row["layout"] = {"slot_bits": k.packer.slot_bits,
                         "slots_per_plaintext": k.packer.slots_per_plaintext,
                         "ciphertexts_per_row": per_row, "rows": data.rows,
                         "encryptions": per_row * data.rows}
        group_res[b] = row

    # 4: process pool
    log(f"section 4: process pool, {args.pool_values:,} values")
    pvals = random_values(args.pool_values, SEED + 7)
    ptasks: dict[str, Callable[[], Any]] = {}
    for b, k in keys.items():
        ptasks[f"{b} workers=1"] = (lambda k=k: k.pub.encrypt_many(pvals, workers=1))
        ptasks[f"{b} default"] = (lambda k=k: k.pub.encrypt_many(pvals))
    # warm-up with a short batch (imports, pool start-up code paths), not the full run
    for k in keys.values():
        k.pub.encrypt_many(pvals[: 2 * POOL_THRESHOLD])
    pool = interleaved(ptasks, args.pool_rounds, warmup=False, log=log)
    pool_res = {b: {m: {"wall": med(pool[f"{b} {m}"], "wall"), "cpu": med(pool[f"{b} {m}"]),
                        "load": load(pool[f"{b} {m}"])}
                    for m in ("workers=1", "default")} for b in keys}
    elapsed = time.perf_counter() - t_start
    all_samples = [s for d in (enc, grp, pool) for v in d.values() for s in v]
    run_load = load(all_samples)
    log(f"done in {elapsed:.0f} s; other processes used {run_load:.2f} cores on average")

    md = report(keys, enc_res, group_res, pool_res, args, data, machine_info(), elapsed, run_load)
    print()
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    raw = {
        "args": vars(args), "machine": machine_info(), "elapsed_s": elapsed,
        "other_load_cores": run_load,
        "keys": {b: {"keygen_s": k.keygen_s, "tables_s": k.table_s} for b, k in keys.items()},
        "encryption": enc_res, "group_sum": group_res, "pool": pool_res,
        "timings": {sect: {n: [vars(s) for s in v] for n, v in d.items()}
                    for sect, d in (("encryption", enc), ("group", grp), ("pool", pool))},
        "phe_group_phases": {b: [{p: vars(s) for p, s in ph.items()} for ph in v]
                             for b, v in phe_phase.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"\nwritten: {out} and {out.with_suffix('.json')}")
    return 0


def report(keys: dict[int, Keys], enc: dict, grp: dict, pool: dict, args: Any, data: Data,
           info: dict[str, str], elapsed: float, run_load: float) -> str:
    L: list[str] = []
    L.append("### Encryption, one value per ciphertext (CPU time per value, medians)")
    L.append("")
    L.append("| bits | encryptor | CPU / value | values/s (CPU) | wall / value | × phe (CPU) |")
    L.append("|---:|---|---:|---:|---:|---:|")
    for b in keys:
        base = enc[b]["phe"]["cpu"]
        for mode in ("phe",) + ENC_MODES:
            r = enc[b][mode]
            name = {"phe": "phe 1.5 `encrypt` (public key)",
                    "pets djn": "**pets `djn` (default), public key**"}.get(mode, mode)
            L.append(f"| {b} | {name} | {fmt_t(r['cpu'])} | {fmt_rate(r['cpu'])} | "
                     f"{fmt_t(r['wall'])} | {base / r['cpu']:.1f}× |")
    L.append("")
    L.append(f"Per round: phe and pets' phe profile {args.phe_values} values, the table-based "
             f"modes {args.pets_values} values; {args.rounds} interleaved rounds "
             f"(phe: {args.phe_values * args.rounds} values per size). One-off table builds "
             "(CPU, not in the figures above): "
             + "; ".join(f"{b}: " + ", ".join(f"{n} {fmt_t(s)}" for n, s in k.table_s.items())
                         for b, k in keys.items()) + ".")
    L.append("")
    d = DEFAULT_BITS if DEFAULT_BITS in keys else max(keys)
    r = enc[d]["phe"]["cpu"] / enc[d]["pets djn"]["cpu"]
    L.append(f"Target ≥ {TARGET_ENC:g}× phe at the default parameters ({d} bits, `djn`, public "
             f"key): **{r:.1f}× — {'met' if r >= TARGET_ENC else 'not met'}**.")
    L.append("")
    L.append(f"### Encrypted sum of {N_VALUES:,} values by group ({N_GROUPS} groups)")
    L.append("")
    L.append("| bits | method | total | per value | × phe per value |")
    L.append("|---:|---|---:|---:|---:|")
    for b in keys:
        g = grp[b]
        ph = g["phe"]
        L.append(f"| {b} | phe: encrypt + add + decrypt 50 totals (**extrapolated** from "
                 f"{ph['sampled_values']} values) | {fmt_t(ph['total_extrapolated'])} CPU | "
                 f"{fmt_t(ph['per_value'])} | 1× |")
        for mode in GROUP_MODES:
            m = g[mode]
            label = {"pets packed, workers=1": "**pets packed, public key, workers=1** (CPU)",
                     "pets packed, pool (default workers)":
                         "pets packed, public key, pool of 2 (wall)",
                     "pets packed, key owner (CRT), workers=1":
                         "pets packed, key owner (CRT), workers=1 (CPU)"}[mode]
            t = m["wall"] if "pool" in mode else m["cpu"]
            L.append(f"| {b} | {label} | {fmt_t(t)} | {fmt_t(t / N_VALUES)} | "
                     f"{ph['per_value'] * N_VALUES / t:,.0f}× |")
    L.append("")
    L.append("phe's phases per sampled value (CPU, medians): "
             + "; ".join(f"{b}: encrypt {fmt_t(grp[b]['phe']['encrypt_per_value'])}, add "
                         f"{fmt_t(grp[b]['phe']['add_per_value'])}, decrypt of the 50 totals "
                         f"{fmt_t(grp[b]['phe']['decrypt_50'])}" for b in keys) + ".")
    L.append("Packing: " + "; ".join(
        f"{b}: slots of {grp[b]['layout']['slot_bits']} bits, "
        f"{grp[b]['layout']['slots_per_plaintext']} per plaintext, "
        f"{grp[b]['layout']['ciphertexts_per_row']} ciphertext(s) per row of {N_GROUPS} groups, "
        f"{grp[b]['layout']['rows']:,} rows = {grp[b]['layout']['encryptions']:,} encryptions"
        for b in keys) + ". pets' 50 totals equal the exact plaintext totals in every round "
        "(checked); so do phe's sample totals.")
    L.append("")
    ok = [grp[b]["phe"]["per_value"] * N_VALUES / grp[b]["pets packed, workers=1"]["cpu"]
          for b in keys]
    L.append(f"Target ≥ {TARGET_GROUP:g}× per value for packed group sums (public key, "
             "one process, CPU): " + ", ".join(
                 f"{b}: **{x:,.0f}× — {'met' if x >= TARGET_GROUP else 'not met'}**"
                 for b, x in zip(keys, ok)) + ".")
    L.append("")
    L.append("### Cost model: multiplications mod n²")
    L.append("")
    L.append("| bits | `modmul_count` | one multiplication mod n² (CPU) | count × multiplication | "
             "measured `djn` encryption (CPU) | measured / model |")
    L.append("|---:|---:|---:|---:|---:|---:|")
    for b in keys:
        c = modmul_count(b)
        mm = enc[b]["modmul"]["cpu"]
        e = enc[b]["pets djn"]["cpu"]
        L.append(f"| {b} | {c} | {fmt_t(mm)} | {fmt_t(c * mm)} | {fmt_t(e)} | "
                 f"**{e / (c * mm):.2f}×** |")
    L.append("")
    worst = max(enc[b]["pets djn"]["cpu"] / (modmul_count(b) * enc[b]["modmul"]["cpu"])
                for b in keys)
    L.append(f"Target ≤ {TARGET_MODMUL:g}×: worst {worst:.2f}× — "
             f"**{'met' if worst <= TARGET_MODMUL else 'not met'}**.")
    L.append("")
    L.append(f"### Process pool: encrypting {args.pool_values:,} values (`djn`, public key)")
    L.append("")
    L.append("| bits | workers=1 wall | default (2) wall | speed-up (wall) | workers=1 CPU | "
             "default CPU (incl. workers) | others' load during default |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|")
    for b in keys:
        p1, p2 = pool[b]["workers=1"], pool[b]["default"]
        L.append(f"| {b} | {fmt_t(p1['wall'])} | {fmt_t(p2['wall'])} | "
                 f"{p1['wall'] / p2['wall']:.2f}× | {fmt_t(p1['cpu'])} | {fmt_t(p2['cpu'])} | "
                 f"{p2['load']:.2f} cores |")
    L.append("")
    L.append(f"Run: {elapsed:.0f} s wall; other processes used {run_load:.2f} cores on average "
             f"during the timed calls. Machine: {info.get('cpu', '?')}, {info.get('nproc')} "
             f"CPUs; Python {info['python']}, phe {info['phe']}, gmpy2 {info['gmpy2']} "
             f"({info['gmp']}), numpy {info['numpy']}; pets {info.get('pets', '?')} at "
             f"{info.get('commit', '?')}.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
