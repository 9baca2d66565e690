"""Concurrency: several processes (each with its own Holder on one home) and several
threads (sharing one Holder) never overspend a budget, and a second Holder in another
process sees everything the first one stored."""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pets

from ._util import ANALYST, PURPOSE, column, policy

PROCESSES = 4
RELEASES_EACH = 5
STEP = 0.1
GRANT = 1.25  # room for 12 steps of 0.1, not 13


def _release_in_process(home: str, barrier: Any, results: Any, worker: int = 0) -> None:
    """Spawned worker: its own Holder and Session, then RELEASES_EACH releases of ε=0.1
    as soon as every worker is ready — each a different query (an identical one would get
    the recorded answer back at no cost)."""
    try:
        h = pets.Holder(home)
        s = h.session(ANALYST, purpose=PURPOSE)
        base = s.table("adult").group_by("sex")
        s.explain(base.agg(n=pets.count()), pets.DP(epsilon=STEP))  # warm up the engine
        barrier.wait(timeout=60)
        ok, refused, ids = 0, 0, []
        for i in range(RELEASES_EACH):
            q = base.filter(pets.col("age") >= 17 + worker * RELEASES_EACH + i).agg(n=pets.count())
            try:
                r = s.release(q, pets.DP(epsilon=STEP))
                ok += 1
                ids.append(r.audit_id)
                assert list(r.df["sex"]) == ["Female", "Male"]
            except pets.BudgetExceeded as e:
                assert e.asked == pets.Cost(STEP)
                refused += 1
        results.put(("ok", ok, refused, ids))
    except BaseException:  # report, do not hang the parent
        results.put(("error", traceback.format_exc(), 0, []))


def test_concurrent_releases_from_four_processes_never_overspend(holder: pets.Holder):
    holder.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=GRANT)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_release_in_process, args=(str(holder.home), barrier, results, w))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        out = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
    errors = [o[1] for o in out if o[0] == "error"]
    assert not errors, errors[0]
    assert all(p.exitcode == 0 for p in procs)

    assert sum(o[1] for o in out) == 12
    assert sum(o[2] for o in out) == 8
    ids = [i for o in out for i in o[3]]
    assert len(set(ids)) == 12

    released = holder.audit().records(status="released")
    refused = holder.audit().records(status="refused")
    assert sorted(r["id"] for r in released) == sorted(ids)
    assert len(released) == 12
    assert len(refused) == 8 and {r["rule"] for r in refused} == {"budget"}
    spent = sum((Fraction(repr(r["cost"]["epsilon"])) for r in released), Fraction(0))
    assert spent == Fraction("1.2")
    assert holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(0.05)
    assert holder.audit().verify() is True


def test_concurrent_releases_from_threads_sharing_one_holder_never_overspend(holder):
    """Eight threads, each with its own session on one Holder (one DuckDB engine)."""
    holder.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    barrier = threading.Barrier(8)
    oks: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(w: int) -> None:
        try:
            s = holder.session(ANALYST, purpose=PURPOSE)
            barrier.wait(timeout=30)
            n = 0
            for i in range(3):
                # a different query each time: a repeat would get its recorded answer free
                q = (s.table("adult").filter(pets.col("age") >= 10 - 3 * w - i)
                     .group_by("race").agg(n=pets.count(), h=pets.mean("hours-per-week")))
                try:
                    r = s.release(q, pets.DP(epsilon=0.05))
                    assert len(r.df) == 5
                    n += 1
                except pets.BudgetExceeded:
                    pass
            with lock:
                oks.append(n)
        except BaseException:
            with lock:
                errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert sum(oks) == 20  # 1.0 / 0.05; 24 asked
    assert holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(0.0)
    assert len(holder.audit().records(status="released")) == 20
    assert holder.audit().verify() is True


# =====================================================================================
# A second Holder in another process
# =====================================================================================


def _inspect_in_process(home: str, results: Any) -> None:
    try:
        h = pets.Holder(home)
        out: dict[str, Any] = {
            "datasets": h.datasets(),
            "grants": sorted((g["analyst"], g["dataset"], g["purpose"]) for g in h.grants().to_dict("records")),
            "remaining_syn": h.remaining(ANALYST, dataset="syn", purpose=PURPOSE),
            "audit_len": len(h.audit()),
            "verify": h.audit().verify(),
        }
        s = h.session(ANALYST, purpose=PURPOSE)
        r = s.release(
            s.table("syn").group_by("g").agg(n=pets.count(), t=pets.sum("v")), pets.DP(epsilon=500.0)
        )
        out["df"] = r.df.to_dict(orient="list")
        out["audit_id"] = r.audit_id
        out["remaining_after"] = s.remaining("syn")
        results.put(("ok", out))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def test_a_holder_in_another_process_sees_datasets_grants_spent_budget_and_audit(tmp_path: Path):
    home = tmp_path / "home"
    h = pets.Holder(home)
    h.register("adult", pets.example_data(), pets.example_policy())
    df = pd.DataFrame({"g": ["a"] * 30 + ["b"] * 20, "v": np.r_[np.full(30, 2), np.full(20, 5)]})
    h.register("syn", df, policy({"g": column(keys=["a", "b", "c"]), "v": column(bounds=[0, 10])},
                                 grades={"1": {"allow": ["dp"]}}))
    h.grant(ANALYST, dataset="syn", purpose=PURPOSE, epsilon=1000.0)
    h.grant("bob", dataset="adult", purpose="census", epsilon=1.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    s.release(s.table("syn").agg(n=pets.count()), pets.DP(epsilon=0.5))

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    p = ctx.Process(target=_inspect_in_process, args=(str(home), results))
    p.start()
    try:
        status, out = results.get(timeout=120)
    finally:
        p.join(timeout=60)
    assert status == "ok", out
    assert p.exitcode == 0

    assert out["datasets"] == ["adult", "syn"]
    assert out["grants"] == [(ANALYST, "syn", PURPOSE), ("bob", "adult", "census")]
    assert out["remaining_syn"] == pets.Cost(999.5)
    # two registrations, two grants, one release
    assert out["audit_len"] == 2 + 2 + 1 and out["verify"] is True
    # the DataFrame source, stored in the home as Parquet, answers in the other process
    # (ε = 500 over 2 measures; the sum's scale is 10/250, so each noise is 0 except
    # with probability < 1e-10)
    assert out["df"]["g"] == ["a", "b", "c"]
    assert out["df"]["n"] == [30, 20, 0]
    assert out["df"]["t"] == [60, 100, 0]
    assert out["remaining_after"] == pets.Cost(499.5)
    # and what the other process spent and recorded is seen here
    assert s.remaining() == pets.Cost(499.5)
    assert out["audit_id"] == 6 and len(h.audit()) == 6
    assert h.audit().records()[-1]["analyst"] == ANALYST
    assert h.audit().verify() is True


def test_a_restarted_holder_in_this_process_sees_the_same_state(holder, session):
    session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.25))
    again = pets.Holder(holder.home)
    assert again.datasets() == ["adult"]
    assert again.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(1.75)
    assert again.policy("adult") == holder.policy("adult")
    assert [r["kind"] for r in again.audit().records()] == ["register", "grant", "dp"]
    assert again.audit().verify() is True


def _same_query_in_process(home: str, barrier: Any, results: Any) -> None:
    try:
        s = pets.Holder(home).session(ANALYST, purpose=PURPOSE)
        q = s.table("adult").group_by("sex").agg(n=pets.count())
        barrier.wait(timeout=60)
        out = []
        for _ in range(RELEASES_EACH):
            r = s.release(q, pets.DP(epsilon=STEP))
            out.append((tuple(int(x) for x in r.df["n"]), r.spent.epsilon))
        results.put(("ok", out))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def test_concurrent_identical_queries_get_one_answer_and_one_charge(holder: pets.Holder):
    """20 identical releases from 4 processes at once: exactly one is charged, and all
    20 get the same noisy answer (fresh noise per repeat could be averaged away)."""
    holder.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=GRANT)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_same_query_in_process, args=(str(holder.home), barrier, results))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        out = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
    assert all(o[0] == "ok" for o in out), [o[1] for o in out if o[0] != "ok"]
    answers = [a for o in out for a in o[1]]
    assert len(answers) == 20
    assert len({a[0] for a in answers}) == 1
    assert sorted(a[1] for a in answers) == [0.0] * 19 + [STEP]
    assert holder.remaining(ANALYST, dataset="adult", purpose=PURPOSE) == pets.Cost(GRANT - STEP)
    assert holder.audit().verify() is True
