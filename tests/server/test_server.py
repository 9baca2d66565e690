"""The holder's server over real HTTP: auth, refusals, round trips, concurrency, bad
input. A real ``pets serve`` in a subprocess (conftest.py); the holder in this process
opens the same home to check the ledger and the audit log."""

from __future__ import annotations

import json
import threading

import httpx
import pandas as pd
import pytest

import pets
from pets import col

from .conftest import PURPOSE


def _q() -> pets.Query:
    return pets.Query("adult").group_by("sex").agg(n=pets.count(),
                                                 hours=pets.mean("hours-per-week", bounds=(0, 99)))


def _body(plan=None, protection=None, **kw):
    return {"purpose": PURPOSE, "plan": (plan or _q().plan).to_dict(),
            "protection": (protection or pets.DP(epsilon=0.1)).to_dict(), **kw}


# --------------------------------------------------------------------------- auth

def test_no_key_and_a_bad_key_get_401_and_are_audited_without_key_material(server):
    bad = "pets_" + "x" * 43
    r = httpx.post(server.url + "/v1/release", json=_body())
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "AuthError"
    assert "Authorization: Bearer" in r.json()["error"]["message"]
    r = httpx.get(server.url + "/v1/datasets", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    assert r.json() == {"error": {"type": "AuthError", "message": "unknown or revoked API key"}}
    with pytest.raises(pets.AuthError, match="unknown or revoked API key"):
        pets.connect(server.url, api_key=bad, purpose=PURPOSE).datasets()
    h = server.holder()
    recs = h.audit().records(kind="auth")
    assert {r["rule"] for r in recs} >= {"no_key", "bad_key"}
    assert all(r["status"] == "refused" and r["analyst"] is None for r in recs)
    assert bad not in json.dumps(recs) and "x" * 20 not in json.dumps(recs)
    assert h.audit().verify() is True


def test_a_purpose_without_grant_is_403_no_grant_and_audited(server):
    s = server.connect("alice", purpose="not-granted")
    with pytest.raises(pets.PolicyError) as e:
        s.release(_q(), pets.DP(epsilon=0.1))
    assert e.value.rule == "no_grant" and "has no grant for dataset 'adult'" in str(e.value)
    with pytest.raises(pets.PolicyError, match="no grant") as e2:
        s.remaining("adult")
    assert e2.value.rule == "no_grant"
    r = httpx.get(server.url + "/v1/remaining", params={"dataset": "adult", "purpose": "x"},
                  headers=server.headers())
    assert r.status_code == 403 and r.json()["error"]["rule"] == "no_grant"
    recs = server.holder().audit().records(analyst="alice", purpose="not-granted",
                                           status="refused")
    assert {r["kind"] for r in recs} == {"dp", "remaining"}
    assert all(r["rule"] == "no_grant" for r in recs)


def test_the_body_cannot_choose_the_analyst(server):
    r = httpx.post(server.url + "/v1/release", json={**_body(), "analyst": "alice"},
                   headers=server.headers("bob"))
    assert r.status_code == 422 and r.json()["error"]["type"] == "QueryError"
    assert "analyst" in r.json()["error"]["message"]


def test_a_revoked_key_is_refused(server, tmp_path):
    h = server.holder()
    key = h.issue_key("alice")
    s = pets.connect(server.url, api_key=key, purpose=PURPOSE)
    assert s.remaining("adult").epsilon > 0
    h._store.revoke_key(key)
    with pytest.raises(pets.AuthError):
        s.remaining("adult")


# --------------------------------------------------------------------------- same as local

@pytest.mark.parametrize("case", [
    "budget", "negative_list", "unknown_column", "bad_sql", "unknown_dataset", "max_epsilon",
])
def test_local_and_remote_raise_the_same_class_message_and_fields(server, case):
    h = server.holder()
    local, remote = h.session("carol", purpose=PURPOSE), server.connect("carol")
    q = pets.Query("adult")
    calls = {
        "budget": lambda s: s.release(q.group_by("sex").agg(n=pets.count()), pets.DP(epsilon=0.5)),
        "negative_list": lambda s: s.release(q.group_by("fnlwgt").agg(n=pets.count()),
                                             pets.DP(epsilon=0.05)),
        "unknown_column": lambda s: s.release(q.group_by("nope").agg(n=pets.count()),
                                              pets.DP(epsilon=0.05)),
        "bad_sql": lambda s: s.sql("SELEC sex FROM adult", pets.DP(epsilon=0.05)),
        "unknown_dataset": lambda s: s.explain(pets.Query("nope").agg(n=pets.count()),
                                               pets.DP(epsilon=0.05)),
        "max_epsilon": lambda s: s.explain(q.group_by("sex").agg(g=pets.sum("capital-gain")),
                                           pets.DP(epsilon=5.0)),
    }
    results = []
    for s in (local, remote):
        try:
            out = calls[case](s)
        except pets.PetsError as e:
            results.append((type(e), str(e), {k: v for k, v in vars(e).items()}))
        else:
            results.append(("ok", str(out), {}))
    assert results[0] == results[1]
    assert results[0][0] != "ok" or case == "max_epsilon"


def test_explain_is_the_same_remotely_and_spends_nothing(server):
    h = server.holder()
    before = h.remaining("alice", dataset="adult", purpose=PURPOSE)
    a = h.session("alice", purpose=PURPOSE).explain(_q(), pets.DP(epsilon=0.3))
    b = server.connect().explain(_q(), pets.DP(epsilon=0.3))
    assert (a.allowed, a.cost, a.scale, a.ci_width, a.remaining) == \
        (b.allowed, b.cost, b.scale, b.ci_width, b.remaining)
    pd.testing.assert_frame_equal(a.details, b.details)
    assert h.remaining("alice", dataset="adult", purpose=PURPOSE) == before
    no = server.connect("carol").explain(_q(), pets.DP(epsilon=5.0))
    assert no.allowed is False and no.rule == "budget"


# --------------------------------------------------------------------------- round trips

def test_a_dp_release_round_trips_with_dtypes_intervals_and_one_charge(server):
    h = server.holder()
    s = server.connect()
    q = _q().filter(col("age") >= 30)
    before = s.remaining("adult")
    r = s.release(q, pets.DP(epsilon=0.25), ci_levels=[0.95, 0.99])
    assert isinstance(r, pets.Release) and r.spent == pets.Cost(0.25) and r.repeat_of is None
    assert list(r.df.columns) == ["sex", "n", "hours"]
    assert str(r.df["n"].dtype) == "int64" and str(r.df["hours"].dtype) == "float64"
    assert s.remaining("adult") == pets.Cost(before.epsilon - 0.25)
    again = s.release(q, pets.DP(epsilon=0.25))
    pd.testing.assert_frame_equal(r.df, again.df)
    assert again.spent == pets.Cost() and again.repeat_of == r.audit_id
    # the same analyst's local session gets the same recorded answer and intervals
    local = h.session("alice", purpose=PURPOSE).release(q, pets.DP(epsilon=0.25))
    pd.testing.assert_frame_equal(local.df, r.df)
    for level in (0.95, 0.99, 0.9):  # 0.9 was not sent: asked again, free
        pd.testing.assert_frame_equal(local.ci(level), r.ci(level))
    assert r.scale == local.scale and r.suppressed == local.suppressed
    assert s.remaining("adult") == pets.Cost(before.epsilon - 0.25)  # charged once
    with pytest.raises(pets.QueryError, match="not alpha"):
        r.ci(0.05)
    assert h.audit().verify() is True


def test_sql_over_http(server):
    s = server.connect()
    r = s.sql("SELECT race, COUNT(*) AS n FROM adult GROUP BY race", pets.DP(epsilon=0.1))
    assert list(r.df.columns) == ["race", "n"] and r.spent == pets.Cost(0.1)
    assert r.audit_id in {x["id"] for x in s.history(kind="dp")}
    # the plan the server parsed comes back, as a local session's Release has it
    from pets.plan import Plan

    assert isinstance(r.plan, Plan) and r.plan.dataset == "adult"
    assert [g.column for g in r.plan.group_by] == ["race"]


def test_a_kanon_extract_round_trips(server):
    s = server.connect()
    x = s.release(pets.Query("adult").select("age", "sex", "race"), pets.KAnonymity(k=5))
    assert isinstance(x, pets.Extract)
    assert list(x.df.columns) == ["age", "sex", "race"] and len(x.df) > 30_000
    assert x.df.groupby(["age", "sex", "race"]).size().min() >= 5
    assert x.transformation["age"] >= 1 and x.models == ["5-anonymity"]
    assert x.extracts_left is not None and x.spent == pets.Cost()
    rec = [r for r in s.history() if r["id"] == x.audit_id][0]
    assert rec["kind"] == "kanon" and rec["status"] == "released"


def test_datasets_history_and_remaining_show_only_the_callers_own(server):
    alice, bob = server.connect(), server.connect("bob", purpose="other")
    ds = alice.datasets()
    assert [d["name"] for d in ds] == ["adult"]
    cols = {c["name"]: c for c in ds[0]["columns"]}
    assert cols["age"]["bounds"] == [17, 90] and cols["sex"]["keys"] == ["Female", "Male"]
    assert cols["age"]["role"] == "quasi_identifier" and "dp" in cols["age"]["allowed_forms"]
    assert [g["purpose"] for g in ds[0]["grants"]] == [PURPOSE]
    assert set(ds[0]) == {"name", "columns", "privacy_unit", "settings", "grades", "grants"}
    bob.release(_q(), pets.DP(epsilon=0.1))
    assert {r["analyst"] for r in alice.history()} == {"alice"}
    assert {r["analyst"] for r in bob.history()} == {"bob"}
    assert all("answer_digest" not in r and "key_ids" not in r for r in alice.history())
    # grants are in it, but not which of the holder's staff accounts made them
    assert any(r["kind"] == "grant" for r in alice.history())
    assert all("by" not in r for r in alice.history())
    assert bob.remaining() == pets.Cost(0.9)
    assert len(alice.history(last=2)) == 2


def test_he_through_a_single_release_endpoint_is_refused_clearly(server):
    with pytest.raises(pets.QueryError, match="HE contributions are not released by /v1/release"):
        server.connect().release(pets.Query("adult").agg(t=pets.sum("age")),
                                 pets.HE(dp=pets.DP(epsilon=0.1)))


def test_dummy_tables_and_dummy_releases_over_http_match_the_local_ones(server):
    s = server.connect()
    local = server.holder().session("alice", purpose=s.purpose)
    df = s.dummy("adult", rows=50, seed=1)
    assert len(df) == 50 and "age" in df.columns and "fnlwgt" not in df.columns
    assert df.equals(s.dummy("adult", rows=50, seed=1))
    before = s.remaining("adult")
    q = pets.Query("adult").group_by("sex").agg(n=pets.count())
    r = s.release(q, pets.DP(epsilon=0.1), dummy=True, rows=200, seed=3)
    assert r.dummy is True and list(r.df["sex"]) == ["Female", "Male"]
    assert s.remaining("adult") == before
    assert local.dummy("adult", rows=50, seed=1).equals(df)  # the same frame, remote or local
    with pytest.raises(pets.QueryError, match="pass dummy=True"):
        s.release(q, pets.DP(epsilon=0.1), rows=200)


# --------------------------------------------------------------------------- concurrency

def test_fifty_concurrent_releases_never_overspend(server):
    s = server.connect("burst", timeout=120)
    outcomes: list[object] = []
    lock = threading.Lock()

    def one(i: int) -> None:  # distinct queries: no recorded answer to reuse
        q = pets.Query("adult").filter(col("age") >= 17 + i).agg(n=pets.count())
        try:
            r = s.release(q, pets.DP(epsilon=0.1))
            out: object = r.spent
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
    refused = [o for o in outcomes if isinstance(o, pets.BudgetExceeded)]
    assert len(ok) == 10 and len(refused) == 40, outcomes
    assert all(o == pets.Cost(0.1) for o in ok)
    h = server.holder()
    assert h.remaining("burst", dataset="adult", purpose=PURPOSE) == pets.Cost(0.0)
    assert len(h.audit().records(analyst="burst", kind="dp", status="released")) == 10
    assert h.audit().verify() is True


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("content, status, match", [
    (b"{not json", 422, "not valid JSON"),
    (b"[1, 2]", 422, "malformed request"),
    (b'{"purpose": 3, "plan": {}, "protection": {"form": "dp", "epsilon": 1}}', 422,
     "purpose"),
    (b'{"purpose": "labour-stats", "plan": {"dataset": 1}, '
     b'"protection": {"form": "dp", "epsilon": 0.1}}', 422, "plan"),
    (b'{"purpose": "labour-stats", "protection": {"form": "dp", "epsilon": 0.1}}', 422,
     "exactly one of 'plan'"),
    (b'{"purpose": "labour-stats", "sql": "SELECT 1", "protection": {"form": "xx"}}', 422,
     "protection"),
    (b'{"purpose": "labour-stats", "sql": "SELECT COUNT(*) FROM adult", '
     b'"protection": {"form": "dp", "epsilon": "0.1"}}', 422, "epsilon"),
    (b'{"purpose": "labour-stats", "sql": "SELECT COUNT(*) FROM adult", '
     b'"protection": {"form": "dp", "epsilon": -1}}', 422, "epsilon"),
    (b'{"purpose": "labour-stats", "sql": "SELECT COUNT(*) FROM adult", "ci_levels": [2], '
     b'"protection": {"form": "dp", "epsilon": 0.1}}', 422, "confidence level"),
    (b"[" * 50_000 + b"]" * 50_000, 422, "malformed request"),
    (b'{"purpose": "labour-stats", "plan": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000
     + b', "protection": {"form": "dp", "epsilon": 0.1}}', 422, "malformed"),
])
def test_malformed_bodies_get_4xx_with_a_pets_error_and_change_nothing(server, content, status,
                                                                        match):
    h = server.holder()
    n = len(h.audit())
    r = httpx.post(server.url + "/v1/release", content=content,
                   headers={**server.headers("carol"), "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "QueryError" and match in err["message"], err
    assert len(h.audit()) == n  # nothing recorded, nothing spent
    assert h.remaining("carol", dataset="adult", purpose=PURPOSE) == pets.Cost(0.1)


def test_oversized_bodies_get_413_before_parsing(server):
    big = b'{"purpose": "' + b"x" * (2 << 20) + b'"}'
    r = httpx.post(server.url + "/v1/release", content=big, headers=server.headers())
    assert r.status_code == 413 and r.json()["error"]["type"] == "ServerError"
    assert "larger than the server's limit of 1,048,576 bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"x" * 65536

    r = httpx.post(server.url + "/v1/release", content=chunks(), headers=server.headers())
    assert r.status_code == 413


def test_unknown_paths_and_methods_are_4xx_pets_errors(server):
    r = httpx.get(server.url + "/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "ServerError"
    r = httpx.get(server.url + "/v1/release", headers=server.headers())
    assert r.status_code == 405
    r = httpx.get(server.url + "/v1/history", params={"last": "many"}, headers=server.headers())
    assert r.status_code == 422 and "last" in r.json()["error"]["message"]


def test_openapi_docs_and_health(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/datasets", "/v1/explain", "/v1/release", "/v1/remaining", "/v1/history",
            "/healthz", "/readyz"} <= set(spec["paths"])
    req = spec["paths"]["/v1/release"]["post"]["requestBody"]["content"]["application/json"]
    assert req["schema"]["$ref"].endswith("/QueryRequest")
    assert "409" in spec["paths"]["/v1/release"]["post"]["responses"]
    assert httpx.get(server.url + "/docs").status_code == 200
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").json() == {"status": "ready"}


def test_the_client_example_in_docs_server_md_runs(server):
    import re
    from pathlib import Path

    md = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", md, flags=re.S)
    assert len(blocks) == 1
    code = blocks[0].replace("http://127.0.0.1:8000", server.url)
    ns: dict[str, object] = {"key": server.keys["alice"]}
    exec(compile(code, "docs/server.md", "exec"), ns)
    r = ns["r"]
    assert isinstance(r, pets.Release) and r.spent == pets.Cost(0.5)
    assert set(r.ci(0.9).columns) >= {"lower", "upper"}
