"""``pets serve --processes N``: several server processes on one port and one home. The
budget never overspends across processes, and the per-key limits hold across them (they
are kept in ``<home>/server-limits.db``, not in each process's memory)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import pets
from pets.server.limits import LIMITS_FILE, SharedLimits

from .conftest import PURPOSE, ROOT, make_home, start, stop


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _workers(pid: int) -> list[int]:
    """The uvicorn worker processes under ``pets serve`` (the multiprocessing resource
    tracker is a child too, but runs no server)."""
    found = []
    for p in _children(pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmd:
            found.append(p)
    return found


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("procs") / "home"
    keys = make_home(home)
    srv = start(home, "--processes", "2", "--rate", "1000", "--burst", "1000",
                "--concurrency", "64")
    srv.keys = keys
    try:
        yield srv
    finally:
        stop(srv)


def test_two_processes_serve_one_home(two):
    assert len(_workers(two.proc.pid)) == 2
    s = two.connect()
    q = pets.Query("adult").group_by("sex").agg(n=pets.count())
    r = s.release(q, pets.DP(epsilon=0.1))
    assert set(r.df["sex"]) == {"Female", "Male"}
    assert s.release(q, pets.DP(epsilon=0.1)).repeat_of == r.audit_id  # one record store
    assert (two.home / LIMITS_FILE).exists()


def test_fifty_concurrent_releases_over_two_processes_never_overspend(two):
    outcomes: list[object] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        # a connection per thread: the kernel spreads them over both processes
        s = two.connect("burst", timeout=120)
        q = pets.Query("adult").filter(pets.col("age") >= 17 + i).agg(n=pets.count())
        try:
            out: object = s.release(q, pets.DP(epsilon=0.1)).spent
        except pets.BudgetExceeded as e:
            out = e
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [o for o in outcomes if isinstance(o, pets.Cost)]
    assert len(ok) == 10 and len(outcomes) == 50, outcomes
    h = two.holder()
    assert h.remaining("burst", dataset="adult", purpose=PURPOSE) == pets.Cost(0.0)
    assert len(h.audit().records(analyst="burst", kind="dp", status="released")) == 10
    assert h.audit().verify() is True


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory):
    """Two processes with tight limits: 6 requests per key, then one per 20 s; one
    request in flight per key."""
    home = tmp_path_factory.mktemp("limited") / "home"
    keys = make_home(home)
    srv = start(home, "--processes", "2", "--rate", "0.05", "--burst", "6",
                "--concurrency", "1")
    srv.keys = keys
    try:
        yield srv
    finally:
        stop(srv)


def test_rate_limit_holds_across_processes(limited):
    h = limited.headers("bob")
    # a new connection per request: requests land on either process
    codes = []
    for _ in range(9):
        with httpx.Client() as c:
            codes.append(c.get(limited.url + "/v1/datasets", headers=h))
    assert [r.status_code for r in codes] == [200] * 6 + [429] * 3
    assert int(codes[6].headers["Retry-After"]) >= 1
    assert "too many requests for this key" in codes[6].json()["error"]["message"]


def test_concurrency_limit_holds_across_processes(limited):
    q = pets.Query("adult").select("age", "sex", "race", "education")
    errors: list[BaseException] = []
    done: list[object] = []

    def one() -> None:
        s = limited.connect("alice", timeout=120)
        try:
            done.append(s.release(q, pets.KAnonymity(k=5, algorithm="mondrian")))
        except pets.PetsError as e:
            errors.append(e)

    ts = [threading.Thread(target=one) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    limited_ = [e for e in errors if isinstance(e, pets.ServerError)]
    assert done and limited_, (done, errors)
    assert all(e.status == 429 and "in flight" in str(e) for e in limited_), errors


def test_bad_processes_flag_is_refused_in_cli_terms(tmp_path):
    pets.Holder(tmp_path)  # an existing home: the flag is what is wrong
    r = subprocess.run([sys.executable, "-m", "pets.cli", "serve", "--home", str(tmp_path),
                        "--processes", "0"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr  # a usage error
    assert "--processes" in r.stderr and "positive integer" in r.stderr


# --------------------------------------------------------------------------- the shared file

def _hold_slot(home: str, ready) -> None:  # a process that takes a slot and never gives it back
    SharedLimits(home, 10.0, 10, 1).acquire("k")
    ready.set()
    time.sleep(600)


def test_slots_of_a_killed_process_are_freed(tmp_path):
    lim = SharedLimits(tmp_path, 10.0, 10, 1)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_slot, args=(str(tmp_path), ready))
    p.start()
    try:
        assert ready.wait(60)
        assert lim.acquire("k") is False  # the other process holds the only slot
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert lim.acquire("k") is True  # its slot died with it
        assert lim.acquire("k") is False
        lim.release("k")
        assert lim.acquire("k") is True
    finally:
        if p.is_alive():
            p.kill()


def test_shared_bucket_refills_at_its_rate(tmp_path):
    lim = SharedLimits(tmp_path, 1.0, 2, 1)
    other = SharedLimits(tmp_path, 1.0, 2, 1)  # another process's view of the same file
    assert lim.take("k") == 0.0 and other.take("k") == 0.0
    assert 0 < other.take("k") <= 1.0  # the bucket is shared: empty for both
    fast = SharedLimits(tmp_path, 1000.0, 1, 1)
    assert fast.take("j") == 0.0
    time.sleep(0.05)  # 50 tokens' worth at 1000/s: full again (burst 1)
    assert fast.take("j") == 0.0
    SharedLimits.reset(tmp_path)
    assert not (tmp_path / LIMITS_FILE).exists()
