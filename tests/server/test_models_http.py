"""DP models and synthetic data over HTTP (POST /v1/fit, /v1/synthesize) against a real
server on loopback: the same answers, charges and errors as the local session."""

from __future__ import annotations

import pandas as pd
import pytest

import pets
from pets.models import Fit, LinearRegression, LogisticRegression
from pets.synth import Synthetic

from .conftest import PURPOSE

LOGIT = LogisticRegression("salary-class", ["age", "education-num", "sex"])


def test_fit_over_http_charges_what_explain_says_and_the_model_travels_as_json(server):
    r = server.connect("alice")
    q = r.table("adult")
    e = r.explain(q, Fit(LOGIT, pets.DP(epsilon=0.5)))
    assert e.allowed and e.cost == pets.Cost(0.5, 0.0) and "objective" in e.scale
    before = r.remaining("adult")
    m = r.fit(q, LOGIT, pets.DP(epsilon=0.5))
    assert before.epsilon - r.remaining("adult").epsilon == pytest.approx(0.5)
    assert isinstance(m, LogisticRegression) and m.cost == e.cost and m.audit_id > 0
    df = pd.read_csv(pets.example_data(), skipinitialspace=True, na_values="?")
    assert m.score(df) > 0.7 and list(m.classes_) == ["<=50K", ">50K"]
    rec = [x for x in server.holder().audit().records(analyst="alice") if x["id"] == m.audit_id]
    assert rec and rec[0]["kind"] == "model"
    d = r.fit(q, LOGIT, pets.DP(epsilon=0.5), dummy=True, rows=300, seed=1)
    assert d.dummy and d.audit_id == 0


def test_synthesize_over_http(server):
    r = server.connect("alice")
    q = r.table("adult").select("age", "sex", "salary-class")
    e = r.explain(q, Synthetic(pets.DP(epsilon=0.5), rows=100))
    assert e.allowed and set(e.scale) == {"one_way", "select", "pairs"}
    y = r.synthesize(q, pets.DP(epsilon=0.5), rows=100)
    assert list(y.df.columns) == ["age", "sex", "salary-class"] and len(y.df) == 100
    assert y.spent == pets.Cost(0.5, 0.0) and len(y.marginals) == 2
    assert set(y.df["sex"].dropna()) <= {"Female", "Male"} and len(y.error) == 5


def test_refusals_and_bad_requests_over_http_are_the_local_errors(server):
    r = server.connect("alice")
    before = r.remaining("adult")
    with pytest.raises(pets.PolicyError) as err:
        r.fit(r.table("adult"), LinearRegression("hours-per-week", ["fnlwgt"]), pets.DP(epsilon=0.5))
    assert err.value.rule == "negative_list"
    with pytest.raises(pets.PolicyError) as err:
        r.synthesize(r.table("adult").select("occupation"), pets.DP(epsilon=2.0), rows=10)
    assert err.value.rule == "max_epsilon"
    with pytest.raises(pets.QueryError, match="unknown model"):
        r._call("POST", "/v1/fit", json={"purpose": PURPOSE, "plan": {"dataset": "adult"},
                                          "model": {"model": "Forest"},
                                          "protection": {"form": "dp", "epsilon": 1.0}})
    with pytest.raises(pets.PetsError):
        r._call("POST", "/v1/synthesize", json={"purpose": PURPOSE, "plan": {"dataset": "adult"},
                                                 "protection": {"form": "dp", "epsilon": 1.0}, "rows": 0})
    assert r.remaining("adult") == before
    with pytest.raises(pets.BudgetExceeded):
        server.connect("carol").fit(r.table("adult"), LOGIT, pets.DP(epsilon=0.5))
