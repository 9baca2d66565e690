"""Verification over HTTP: a real `pets serve` on loopback; RemoteSession.verify,
verify_batch, verify_hidden (and verify_psi with pets[psi]) give the same answers as
the data and the local session, refusals keep their rule, bad bodies are 4xx."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import pets
from pets import col
from pets.verify import HiddenVerifier

from .conftest import start, stop

httpx = pytest.importorskip("httpx")
PURPOSE = "loan-checks"


def _adult() -> pd.DataFrame:
    df = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values=["?"]).head(3000)
    df.insert(0, "person_id", [f"P-{i:05d}" for i in range(len(df))])
    return df


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return _adult()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, adult: pd.DataFrame):
    home = tmp_path_factory.mktemp("verify-server") / "home"
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["columns"]["person_id"] = {"role": "identifier", "grade": 2}
    pol["verify"] = {"subject_keys": ["person_id"], "max_per_subject": 3, "max_per_analyst": 10_000,
                     "claims": {"age": {"operators": [">=", "<"], "granularity": 5},
                                "education": {"operators": ["==", "isin"]}}}
    h = pets.Holder(home)
    h.register("adult", adult, pol)
    h.grant("bank", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    key = h.issue_key("bank")
    srv = start(home, "--rate", "1000", "--burst", "1000")
    srv.keys = {"bank": key}
    try:
        yield srv
    finally:
        stop(srv)


def test_single_and_batch_over_http(server, adult: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    s = server.connect("bank", purpose=PURPOSE)
    v = s.verify("adult", {"person_id": "P-00001"}, col("age") >= 45)
    assert (v.match, v.answer) == (True, "match") and v.audit_id > 0
    e = s.verify("adult", {"person_id": "P-00001"}, col("age") >= 45, explain=True)
    assert e.allowed and "3 bits" in e.message
    ids = adult[["person_id"]].iloc[100:400].reset_index(drop=True)
    claim = (col("age") >= 30) & col("education").isin(["Bachelors", "HS-grad"])
    b = s.verify_batch("adult", ids, claim)
    truth = adult.iloc[100:400]
    want = ((truth["age"] >= 30) & truth["education"].isin(["Bachelors", "HS-grad"])).to_numpy()
    assert (b.match.to_numpy() == want).all() and list(b.df["person_id"]) == list(ids["person_id"])


def test_refusals_keep_their_rule_over_http(server) -> None:  # type: ignore[no-untyped-def]
    s = server.connect("bank", purpose=PURPOSE)
    with pytest.raises(pets.PolicyError) as e:
        s.verify("adult", {"person_id": "P-00002"}, col("age") >= 47)
    assert e.value.rule == "verify_granularity"
    with pytest.raises(pets.PolicyError) as e:
        s.verify("adult", {"person_id": "P-00002"}, col("occupation") == "Sales")
    assert e.value.rule == "verify_claims"
    with pytest.raises(pets.QueryError, match="not a claim"):
        s.verify("adult", {"person_id": "P-00002"}, (col("age") >= 30) | (col("age") < 20))


def test_hidden_claims_over_http(server) -> None:  # type: ignore[no-untyped-def]
    s = server.connect("bank", purpose=PURPOSE)
    me = HiddenVerifier(key_bits=2048)
    assert s.verify_hidden("adult", {"person_id": "P-00011"}, "education", "Bachelors", verifier=me).match
    assert not s.verify_hidden("adult", {"person_id": "P-00011"}, "education", "Masters", verifier=me).match


def test_psi_over_http(server, adult: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("private_set_intersection.python")
    s = server.connect("bank", purpose=PURPOSE)
    pairs = adult[["person_id", "education"]].iloc[500:700].copy()
    pairs.iloc[::3, 1] = "Doctorate"
    b = s.verify_psi("adult", pairs, keys=["person_id"])
    truth = pairs.merge(adult[["person_id", "education"]], how="left", indicator=True)["_merge"] == "both"
    assert (b.match.to_numpy() == truth.to_numpy()).all()


@pytest.mark.parametrize("path,body", [
    ("/v1/verify", {"purpose": PURPOSE, "dataset": "adult", "subject": {"person_id": "P-1"}}),
    ("/v1/verify", {"purpose": PURPOSE, "dataset": "adult", "subject": {"person_id": ["x"]},
                    "claim": {"kind": "col", "name": "age"}}),
    ("/v1/verify/batch", {"purpose": PURPOSE, "dataset": "adult",
                          "subjects": {"person_id": ["a"], "age": [1, 2]},
                          "claim": {"kind": "col", "name": "age"}}),
    ("/v1/verify/hidden", {"purpose": PURPOSE, "dataset": "adult", "subject": {"person_id": "P-1"},
                           "column": "education", "n": "abc", "ciphertext": "1"}),
    ("/v1/verify/psi", {"purpose": PURPOSE, "dataset": "adult", "keys": ["person_id"],
                        "columns": ["education"], "request": "%%%"}),
])
def test_bad_bodies_are_client_errors(server, path: str, body: dict) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(server.url + path, json=body, headers=server.headers("bank"))
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
