"""Operations of a real ``pets serve``: every line it writes is JSON, one line per
request without protected values; SIGTERM while releases are in flight lets them finish
(each answered release charged and audited, nothing charged that was not answered)."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

import pets

from .conftest import PURPOSE, make_home, start, stop

SECRET = "s3cr3t-Value-7f1c9a"


def test_each_request_logs_one_json_line_without_body_values_or_keys(tmp_path):
    home = tmp_path / "home"
    keys = make_home(home)
    srv = start(home, "--log-level", "info")
    h = {"Authorization": f"Bearer {keys['alice']}"}
    sent = []
    try:
        s = pets.connect(srv.url, api_key=keys["alice"], purpose=PURPOSE)
        q = pets.Query("adult").filter(pets.col("native-country") == SECRET).agg(n=pets.count())
        r = s.release(q, pets.DP(epsilon=0.5))
        assert r.df["n"].dtype.kind in "if"
        sent.append(("POST", "/v1/release", 200, "alice"))
        # a secret-looking value in a refused body, a query string and a bad key
        bad = httpx.post(srv.url + "/v1/release", headers=h,
                         json={"purpose": PURPOSE, "sql": f"SELECT '{SECRET}' FROM adult",
                               "protection": {"form": "dp", "epsilon": 0.5}})
        assert bad.status_code == 422
        sent.append(("POST", "/v1/release", 422, "alice"))
        rem = httpx.get(srv.url + "/v1/remaining", headers=h,
                        params={"dataset": SECRET, "purpose": PURPOSE})
        assert rem.status_code == 403
        sent.append(("GET", "/v1/remaining", 403, "alice"))
        wrong = httpx.get(srv.url + "/v1/datasets",
                          headers={"Authorization": f"Bearer pets_{SECRET}"})
        assert wrong.status_code == 401
        sent.append(("GET", "/v1/datasets", 401, None))
    finally:
        srv.proc.send_signal(signal.SIGTERM)
        _, err = srv.proc.communicate(timeout=30)
    text = err.decode()
    # uvicorn re-raises the signal after its graceful shutdown: the exit says SIGTERM
    assert srv.proc.returncode in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert all({"ts", "level", "logger", "event"} <= set(x) for x in lines)
    start_line = [x for x in lines if x["event"] == "start"]
    assert len(start_line) == 1 and start_line[0]["processes"] == 1 and start_line[0]["workers"] >= 1
    reqs = [x for x in lines if x["event"] == "request" and x["path"] != "/readyz"]
    assert [(x["method"], x["path"], x["status"], x["analyst"]) for x in reqs] == sent
    for x in reqs:
        assert set(x) == {"ts", "level", "logger", "event", "method", "path", "status", "ms",
                          "analyst", "key_id"}
        assert isinstance(x["ms"], float) and x["ms"] >= 0
    assert reqs[0]["key_id"] and reqs[0]["key_id"] not in keys["alice"]
    refused = [x for x in lines if x["event"] == "auth_refused"]
    assert [(x["rule"], x["audited"]) for x in refused] == [("bad_key", True)]
    assert SECRET not in text and SECRET.lower() not in text.lower()
    assert all(k not in text and k[5:] not in text for k in keys.values())
    assert "Started server process" in text and "Application shutdown complete." in text


def test_sigterm_lets_in_flight_releases_finish_and_charges_only_answers(tmp_path):
    home = tmp_path / "home"
    keys = make_home(home)
    srv = start(home, "--rate", "1000", "--burst", "1000", "--concurrency", "64",
                "--workers", "4")
    answered: list[pets.Release] = []
    failed: list[BaseException] = []
    done_at: list[float] = []
    first = threading.Event()
    try:
        s = pets.connect(srv.url, api_key=keys["burst"], purpose=PURPOSE, timeout=60)

        def one(i: int) -> None:
            q = pets.Query("adult").filter(pets.col("age") >= 20 + i).agg(n=pets.count())
            try:
                answered.append(s.release(q, pets.DP(epsilon=0.01)))
                done_at.append(time.monotonic())
                first.set()
            except pets.PetsError as e:
                failed.append(e)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(30)]
        for t in ts:
            t.start()
        assert first.wait(60)
        srv.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        for t in ts:
            t.join()
        assert srv.proc.wait(timeout=60) in (0, -signal.SIGTERM)  # not a kill
        assert time.monotonic() - t0 < 60
    finally:
        stop(srv)
    assert any(t > t0 for t in done_at)  # releases in flight at SIGTERM were answered
    # whatever was refused was refused as unreachable, never half-done
    assert all(isinstance(e, pets.ServerError) for e in failed), failed
    assert len(answered) + len(failed) == 30 and 0 < len(answered)
    h = pets.Holder(home)
    assert h.audit().verify() is True
    released = h.audit().records(analyst="burst", kind="dp", status="released")
    # every answer that left was charged and audited, and nothing else was charged
    assert sorted(r["id"] for r in released) == sorted(r.audit_id for r in answered)
    spent = 1.0 - h.remaining("burst", dataset="adult", purpose=PURPOSE).epsilon
    assert spent == pytest.approx(0.01 * len(answered))
    again = start(home)  # restarts on the same home; ledger and audit agree
    try:
        r = pets.connect(again.url, api_key=keys["burst"], purpose=PURPOSE).remaining("adult")
        assert r == h.remaining("burst", dataset="adult", purpose=PURPOSE)
        assert pets.Holder(home).audit().verify() is True
    finally:
        stop(again)
