"""A federation of three real `pets serve` processes on loopback: each home holds only its
own key share (dealt by `pets federation deal` in a separate process and installed with
`pets federation join`), applies its own policy, budget and audit; the client (this test
process) never holds a share."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from .conftest import ROOT, start, stop

import pets  # noqa: E402
from pets.he.threshold import KeyShare  # noqa: E402

httpx = pytest.importorskip("httpx")

NAMES = ["north", "south", "east"]
FED = "fed-test"
POLICY = {
    "dataset": {"privacy_unit": "pid"},
    "columns": {
        "region": {"role": "attribute", "grade": 1, "keys": ["a", "b", "c"]},
        "amount": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
        "pid": {"role": "identifier", "grade": 1},
    },
    "grades": {"1": {"allow": ["dp", "he", "he_exact"]}},
}
#: east's stricter policy for one dataset: no federated totals at all
STRICT = {**POLICY, "grades": {"1": {"allow": ["dp"]}}}


def _frame(seed: int, n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # test DATA only, never noise
    return pd.DataFrame({
        "region": rng.choice(["a", "b", "c"], n),
        "amount": rng.integers(0, 101, n),
        "pid": [f"s{seed}-p{i}" for i in range(n)],
    })


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pets.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    base = tmp_path_factory.mktemp("fedhttp")
    servers, keys, frames = {}, {}, {}
    try:
        for i, name in enumerate(NAMES):
            home = base / name
            h = pets.Holder(home)
            frames[name] = _frame(i)
            h.register("visits", frames[name], POLICY)
            h.register("strict", frames[name], STRICT if name == "east" else POLICY)
            for ds in ("visits", "strict"):
                h.grant("alice", dataset=ds, purpose="p", epsilon=20.0)
            keys[name] = h.issue_key("alice")
            servers[name] = start(home, "--rate", "1000", "--burst", "1000")
        # the dealer: a separate, one-off process; then each holder installs its own file
        out = base / "dealer"
        members = ",".join(f"{n}={servers[n].url}" for n in NAMES)
        r = _cli("federation", "deal", "--members", members, "--threshold", "2",
                 "--bits", "2048", "--id", FED, "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == FED
        for name in NAMES:
            r = _cli("federation", "join", "--home", str(servers[name].home),
                     "--share", str(out / f"{name}.share.json"))
            assert r.returncode == 0, r.stderr
        shutil.rmtree(out)  # the dealer forgets everything
        yield servers, keys, pd.concat(frames.values(), ignore_index=True)
    finally:
        for srv in servers.values():
            stop(srv)


def _federation(fed, **kw):
    servers, keys, _ = fed
    return pets.Federation({n: servers[n].url for n in NAMES}, api_keys=keys, **kw)


def _remaining(fed, dataset="visits"):
    servers, _, _ = fed
    return {n: servers[n].holder().remaining("alice", dataset=dataset, purpose="p")
            for n in NAMES}


def test_each_home_holds_exactly_its_own_share_and_no_endpoint_shows_one(fed):
    servers, keys, _ = fed
    indexes = set()
    for name in NAMES:
        shares = sorted((servers[name].home / "federation").glob("*/share.json"))
        assert [p.parent.name for p in shares] == [FED]
        assert oct(shares[0].stat().st_mode & 0o777) == "0o600"
        share = KeyShare.from_dict(json.loads(shares[0].read_text()))
        indexes.add(share.index)
        cfg = json.loads((shares[0].parent / "config.json").read_text())
        assert cfg["member"] == name and set(cfg["members"]) == set(NAMES)
        assert "share" not in cfg and "secret" not in json.dumps(cfg)
        ident = httpx.get(servers[name].url + "/v1/federation/identity").json()
        assert "secret" not in json.dumps(ident)
        assert ident["federations"][0]["member"] == name
        assert ident["verify_key"] == cfg["members"][name]["verify_key"]
    assert indexes == {1, 2, 3}  # three distinct shares, one per home
    # a second share for the same federation cannot be installed
    again = _cli("federation", "join", "--home", str(servers["north"].home),
                 "--share", str(servers["north"].home / "federation" / FED / "config.json"))
    assert again.returncode == 5 and "not a pets federation share file" in again.stderr


def test_an_analyst_key_cannot_install_or_read_a_share(fed):
    servers, keys, _ = fed
    url, h = servers["north"].url, {"Authorization": f"Bearer {keys['north']}"}
    for method, path in (("POST", "/v1/federation/join"), ("PUT", "/v1/federation/share"),
                         ("GET", "/v1/federation/share"), ("POST", "/v1/federation/identity")):
        r = httpx.request(method, url + path, headers=h, json={"share": {"secret": "1"}})
        assert r.status_code in (404, 405), (method, path)
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    assert not [p for p in paths if "share" in p or "join" in p]


def test_exact_total_over_three_servers_equals_the_sum_of_the_exact_totals(fed):
    _, _, data = fed
    f = _federation(fed)
    assert isinstance(f, pets.RemoteFederation) and f.threshold == 2 and f.id == FED
    s = f.session(purpose="p")
    q = s.table("visits").group_by("region").agg(n=pets.count(), total=pets.sum("amount"))
    r = s.release(q, pets.HE(key_bits=2048))
    got = r.df.set_index("region")
    want = data.groupby("region").agg(n=("amount", "size"), total=("amount", "sum"))
    assert list(got.index) == ["a", "b", "c"]
    np.testing.assert_array_equal(got["n"].to_numpy(), want["n"].to_numpy())
    np.testing.assert_allclose(got["total"].to_numpy(), want["total"].to_numpy(), atol=1e-3)
    assert r.spent == pets.Cost(0.0, 0.0)
    assert set(r.audit_ids) == set(NAMES)
    servers = fed[0]
    for n in NAMES:
        rec = [x for x in servers[n].holder().audit().records(kind="he_exact")
               if x["id"] == r.audit_ids[n]]
        assert rec and rec[0]["federation"] == FED and rec[0]["status"] == "released"
        assert servers[n].holder().audit().verify()


def _flat(text: str) -> str:
    """A usage error's text out of rich's box (wrapped at the terminal's width)."""
    return " ".join(text.replace("│", " ").split())


def test_pets_he_query_over_three_servers_with_each_holders_key(fed):
    servers, keys, data = fed
    members = [a for n in NAMES for a in ("--member", f"{n}={servers[n].url}")]
    sql = "SELECT region, COUNT(*) AS n FROM visits GROUP BY region"
    each = [a for n in NAMES for a in ("--api-key", f"{n}={keys[n]}")]
    r = _cli("he", "query", *members, "--purpose", "p", *each, sql)
    assert r.returncode == 5 and "has a 2048-bit key: ask with --key-bits 2048" in r.stderr
    r = _cli("he", "query", *members, "--purpose", "p", "--format", "json", "--key-bits",
             "2048", *each, sql)
    assert r.returncode == 0, r.stderr  # no --analyst: each key says who asks
    got = {row["region"]: row["n"] for row in json.loads(r.stdout)}
    assert got == data["region"].value_counts().to_dict()
    r = _cli("he", "query", *members, "--purpose", "p",
             "--api-key", f"{NAMES[0]}={keys[NAMES[0]]}", "--api-key", "x", sql)
    assert r.returncode == 2 and "each must be NAME=KEY" in _flat(r.stderr)
    r = _cli("he", "query", *members, "--purpose", "p",
             "--api-key", f"{NAMES[0]}={keys[NAMES[0]]}", "--api-key", f"{NAMES[1]}={keys[NAMES[1]]}", sql)
    assert r.returncode == 2 and f"no --api-key for member(s) {NAMES[2]}" in _flat(r.stderr)


def test_dp_total_over_three_servers_charges_each_its_own_budget(fed):
    _, _, data = fed
    before = _remaining(fed)
    s = _federation(fed).session(purpose="p")
    q = s.table("visits").group_by("region").agg(n=pets.count())
    r = s.release(q, pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    want = data.groupby("region").size().to_numpy()
    got = r.df.set_index("region")["n"].to_numpy()
    # three holders' discrete Laplace noises of scale 1: far inside ±60
    assert np.all(np.abs(got - want) <= 60)
    assert r.spent == pets.Cost(1.0, 0.0)
    after = _remaining(fed)
    for n in NAMES:
        assert after[n].epsilon == pytest.approx(before[n].epsilon - 1.0)
    ci = r.ci(0.95)
    assert list(ci.columns)[-2:] == ["lower", "upper"] and (ci.upper > ci.lower).all()


def test_refusal_by_one_members_policy_charges_nobody(fed):
    servers = fed[0]
    before = _remaining(fed, "strict")
    s = _federation(fed).session(purpose="p")
    q = s.table("strict").agg(total=pets.sum("amount"))
    with pytest.raises(pets.PolicyError, match="member 'east'") as e:
        s.release(q, pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    assert e.value.rule is not None
    assert _remaining(fed, "strict") == before
    for n in NAMES:
        assert not servers[n].holder().audit().records(dataset="strict", status="released",
                                                       kind="he")
    refused = servers["east"].holder().audit().records(dataset="strict", status="refused")
    assert refused and refused[-1]["kind"] == "he"
    # and explain shows who refuses, spending nothing
    ex = s.explain(q, pets.HE(key_bits=2048, dp=pets.DP(epsilon=1.0)))
    assert ex["north"]["allowed"] and not ex["east"]["allowed"]


# -- the decryption endpoint is not an oracle ------------------------------------------

def _contribute(fed, release: str) -> dict[str, dict]:
    servers, keys, _ = fed
    plan = pets.Query("visits").group_by("region").agg(n=pets.count()).plan.to_dict()
    prot = pets.HE(key_bits=2048, dp=pets.DP(epsilon=0.5)).to_dict()
    body = {"purpose": "p", "federation": FED, "plan": plan, "protection": prot}
    structures = set()
    for n in NAMES:
        r = httpx.post(servers[n].url + "/v1/he/prepare", json=body,
                       headers={"Authorization": f"Bearer {keys[n]}"})
        assert r.status_code == 200 and r.json()["allowed"], r.text
        structures.add(r.json()["structure"])
    (structure,) = structures
    out = {}
    for n in NAMES:
        r = httpx.post(servers[n].url + "/v1/he/contribute",
                       json={**body, "release": release, "structure": structure},
                       headers={"Authorization": f"Bearer {keys[n]}"}, timeout=60)
        if r.status_code != 200:
            return {"error": r}
        d = r.json()
        out[n] = {k: d[k] for k in ("member", "plan", "protection", "ciphertexts", "signature")}
    return out


def _product(cts: list[list[str]], n: int) -> list[str]:
    n2 = n * n
    total = [1] * len(cts[0])
    for c in cts:
        total = [a * int(b) % n2 for a, b in zip(total, c)]
    return [str(x) for x in total]


def test_decrypt_refuses_forged_missing_duplicated_and_single_contributions(fed):
    servers, keys, _ = fed
    f = _federation(fed)
    rid = "test-release-0000000001"
    contribs = _contribute(fed, rid)
    good = _product([contribs[n]["ciphertexts"] for n in NAMES], f.n)
    url, h = servers["north"].url, {"Authorization": f"Bearer {keys['north']}"}

    def decrypt(contributions, aggregate):
        return httpx.post(url + "/v1/he/decrypt", headers=h, timeout=60, json={
            "purpose": "p", "federation": FED, "release": rid,
            "contributions": contributions, "aggregate": aggregate})

    forged = dict(contribs["south"], ciphertexts=list(contribs["north"]["ciphertexts"]))
    cases = {
        "signature": ([contribs["north"], forged, contribs["east"]],
                      _product([contribs["north"]["ciphertexts"]] * 2
                               + [contribs["east"]["ciphertexts"]], f.n)),
        "members": ([contribs["north"], contribs["south"]],
                    _product([contribs[n]["ciphertexts"] for n in ("north", "south")], f.n)),
        "members ": ([contribs["north"], contribs["north"], contribs["south"]],
                     _product([contribs[n]["ciphertexts"] for n in ("north", "north", "south")],
                              f.n)),
        "aggregate": ([contribs[n] for n in NAMES], list(contribs["south"]["ciphertexts"])),
    }
    for rule, (cs, agg) in cases.items():
        r = decrypt(cs, agg)
        assert r.status_code == 403, (rule, r.text)
        err = r.json()["error"]
        assert err["type"] == "PolicyError" and err["rule"] == rule.strip(), err
    refused = servers["north"].holder().audit().records(kind="he_decrypt", status="refused")
    assert [x["rule"] for x in refused[-4:]] == ["signature", "members", "members", "aggregate"]
    assert all(x["release"] == rid for x in refused[-4:])
    # the honest request is answered once, then never again for this release id
    r = decrypt([contribs[n] for n in NAMES], good)
    assert r.status_code == 200, r.text
    assert len(r.json()["partials"]) == len(good)
    assert servers["north"].holder().audit().records(kind="he_decrypt",
                                                     status="released")[-1]["release"] == rid
    r = decrypt([contribs[n] for n in NAMES], good)
    assert r.status_code == 403 and r.json()["error"]["rule"] == "already_decrypted"
    # a member that contributed nothing to a release id decrypts nothing for it
    r = httpx.post(url + "/v1/he/decrypt", headers=h, json={
        "purpose": "p", "federation": FED, "release": "never-contributed-000001",
        "contributions": [contribs[n] for n in NAMES], "aggregate": good})
    assert r.status_code == 403 and r.json()["error"]["rule"] == "own_contribution"


def test_a_release_id_contributes_once(fed):
    servers, keys, _ = fed
    rid = "test-release-0000000002"
    assert set(_contribute(fed, rid)) == set(NAMES)
    before = _remaining(fed)
    r = _contribute(fed, rid)["error"]
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "QueryError"
    assert "release id 'test-release-0000000002' was already used" in r.json()["error"]["message"]
    assert _remaining(fed) == before  # refused before anything was charged
    r = httpx.post(servers["north"].url + "/v1/he/decrypt",
                   headers={"Authorization": "Bearer not-a-key"}, json={})
    assert r.status_code == 401


def test_a_member_lost_before_decryption_is_replaced_by_another(fed):
    """Threshold 2 of 3: the first member's server dies (SIGKILL) after contributing; the
    client asks the third member instead and the exact total still comes out. (Last in
    this module: it kills a server.)"""
    servers, _, data = fed
    f = _federation(fed)
    s = f.session(purpose="p")
    real_call = f._call
    asked: list[str] = []

    def call(member, method, path, json=None):
        if path == "/v1/he/decrypt":
            asked.append(member)
            if member == NAMES[0] and servers[member].proc.poll() is None:
                servers[member].proc.kill()  # a real crash, between contribute and decrypt
                servers[member].proc.wait()
        return real_call(member, method, path, json)

    f._call = call
    q = s.table("visits").agg(n=pets.count())
    r = s.release(q, pets.HE(key_bits=2048))
    assert int(r.df["n"].iloc[0]) == len(data)
    assert sorted(asked) == sorted(NAMES)  # the first two at once, then the spare
    assert set(r.audit_ids) == set(NAMES)  # all three had contributed (and charged)
