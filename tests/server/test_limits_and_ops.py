"""Limits (429 with Retry-After), the keys command, fuzzing for 500s, and a server killed
mid-release whose ledger and audit log agree after a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pets

from .conftest import PURPOSE, ROOT, make_home, start, stop


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    home = tmp_path / "home"
    keys = make_home(home)
    srv = start(home, "--rate", "0.5", "--burst", "2")
    try:
        h = {"Authorization": f"Bearer {keys['alice']}"}
        codes = [httpx.get(srv.url + "/v1/datasets", headers=h) for _ in range(4)]
        assert [r.status_code for r in codes[:2]] == [200, 200]
        r = codes[2]
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        err = r.json()["error"]
        assert err["type"] == "ServerError" and "too many requests for this key" in err["message"]
        with pytest.raises(pets.ServerError) as e:
            pets.connect(srv.url, api_key=keys["alice"], purpose=PURPOSE).datasets()
        assert e.value.status == 429 and e.value.retry_after >= 1
        # another key has its own bucket
        other = {"Authorization": f"Bearer {keys['bob']}"}
        assert httpx.get(srv.url + "/v1/datasets", headers=other).status_code == 200
    finally:
        stop(srv)


def test_concurrency_limit_answers_429(tmp_path):
    home = tmp_path / "home"
    keys = make_home(home)
    srv = start(home, "--concurrency", "1", "--rate", "1000", "--burst", "1000")
    try:
        s = pets.connect(srv.url, api_key=keys["alice"], purpose=PURPOSE, timeout=120)
        q = pets.Query("adult").select("age", "sex", "race", "education")
        errors: list[BaseException] = []

        def one() -> None:
            try:
                s.release(q, pets.KAnonymity(k=5, algorithm="mondrian"))
            except pets.PetsError as e:
                errors.append(e)

        ts = [threading.Thread(target=one) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        limited = [e for e in errors if isinstance(e, pets.ServerError)]
        assert limited and all(e.status == 429 and "in flight" in str(e) for e in limited)
    finally:
        stop(srv)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pets.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_keys_command_issues_lists_without_secrets_and_revokes(server):
    out = _cli("keys", "issue", "--home", str(server.home), "--analyst", "alice")
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("pets_") and "shown only now" in out.stderr
    s = pets.connect(server.url, api_key=key, purpose=PURPOSE)
    assert s.remaining("adult").epsilon > 0
    listed = _cli("keys", "list", "--home", str(server.home), "--analyst", "alice")
    assert listed.returncode == 0 and key not in listed.stdout and "live" in listed.stdout
    assert all(k not in listed.stdout for k in server.keys.values())
    newest = listed.stdout.strip().splitlines()[-1].split()[0]
    rv = _cli("keys", "revoke", "--home", str(server.home), "--key-id", newest)
    assert rv.returncode == 0 and "revoked key" in rv.stdout
    with pytest.raises(pets.AuthError):
        s.remaining("adult")
    bad = _cli("keys", "revoke", "--home", str(server.home))
    assert bad.returncode != 0 and "exactly one of" in bad.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)
bodies = st.fixed_dictionaries(
    {},
    optional={"purpose": st.sampled_from([PURPOSE, "", "x" * 300]) | json_values,
              "plan": json_values | st.just(pets.Query("adult").agg(n=pets.count()).plan.to_dict()),
              "sql": st.sampled_from(["SELECT COUNT(*) AS n FROM adult", "SELEC", ""]) | json_values,
              "protection": json_values | st.fixed_dictionaries(
                  {"form": st.sampled_from(["dp", "kanon", "he"])},
                  optional={"epsilon": json_values, "k": json_values, "delta": json_values}),
              "ci_levels": json_values},
) | json_values


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/release", "/v1/explain", "/v1/dummy"]), body=bodies)
def test_fuzzed_bodies_never_get_a_500(server, path, body):
    r = httpx.post(server.url + path, content=json.dumps(body),
                   headers={**server.headers("carol"), "Content-Type": "application/json"})
    assert r.status_code < 500 or r.status_code == 501, r.text
    if r.status_code >= 400:
        assert r.json()["error"]["type"] in {"QueryError", "PolicyError", "BudgetExceeded",
                                              "ServerError"}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["dataset", "purpose", "kind", "status", "last"]),
                              st.text(max_size=30), max_size=5))
def test_fuzzed_query_strings_never_get_a_500(server, params):
    for path in ("/v1/remaining", "/v1/history"):
        r = httpx.get(server.url + path, params=params, headers=server.headers("carol"))
        assert r.status_code < 500, r.text


def test_sigkill_mid_release_leaves_ledger_and_audit_in_agreement(tmp_path):
    home = tmp_path / "home"
    keys = make_home(home)
    srv = start(home, "--rate", "1000", "--burst", "1000", "--concurrency", "64")
    answered: list[pets.Release] = []
    try:
        s = pets.connect(srv.url, api_key=keys["burst"], purpose=PURPOSE, timeout=30)

        def one(i: int) -> None:
            q = pets.Query("adult").filter(pets.col("age") >= 20 + i).agg(n=pets.count())
            try:
                answered.append(s.release(q, pets.DP(epsilon=0.01)))
            except pets.PetsError:
                pass

        ts = [threading.Thread(target=one, args=(i,)) for i in range(30)]
        for t in ts:
            t.start()
        import time

        time.sleep(0.4)  # some answered, some in flight
        srv.proc.send_signal(signal.SIGKILL)
        for t in ts:
            t.join()
    finally:
        stop(srv)
    h = pets.Holder(home)
    assert h.audit().verify() is True
    released = h.audit().records(analyst="burst", kind="dp", status="released")
    ids = {r["id"] for r in released}
    assert {r.audit_id for r in answered} <= ids  # every answer that left was charged
    spent = 1.0 - h.remaining("burst", dataset="adult", purpose=PURPOSE).epsilon
    assert spent == pytest.approx(0.01 * len(released))
    again = start(home)  # restarts on the same home
    try:
        r = pets.connect(again.url, api_key=keys["burst"], purpose=PURPOSE).remaining("adult")
        assert r == h.remaining("burst", dataset="adult", purpose=PURPOSE)
    finally:
        stop(again)
