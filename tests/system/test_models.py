"""DP models and synthetic data through the release pipeline (issue 12): each charges
exactly what explain says, is audited, refuses what the policy refuses, rejects bad
input without changing anything, round-trips through JSON, and is useful."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets
from pets.models import Fit, LinearRegression, LogisticRegression, NaiveBayes, load
from pets.models.glm import newton_logistic
from pets.synth import Synthetic

PURPOSE = "models"
LIN = LinearRegression("hours-per-week", ["age", "education-num", "sex", "capital-gain"],
                       log=["capital-gain"])
LOGIT = LogisticRegression("salary-class", ["age", "education-num", "sex", "hours-per-week",
                                            "marital-status", "occupation", "relationship",
                                            "capital-gain", "capital-loss"],
                           log=["capital-gain", "capital-loss"])
NB = NaiveBayes("salary-class", ["age", "hours-per-week", "sex", "marital-status", "occupation"])
#: small models where only the mechanics matter (the fits are fast)
LOGIT_SMALL = LogisticRegression("salary-class", ["age", "education-num", "sex"])
MODELS = {"linear": LIN, "logistic": LOGIT_SMALL, "naive_bayes": NB}
LAPLACE = pets.DP(epsilon=0.5)
GAUSS = pets.DP(epsilon=0.5, delta=1e-6, noise="gaussian")


@pytest.fixture(scope="module")
def adult_df() -> pd.DataFrame:
    return pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values="?")


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> pets.Holder:
    h = pets.Holder(tmp_path_factory.mktemp("home"))
    h.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
    h.grant("basic", dataset="adult", purpose=PURPOSE, epsilon=1000.0, delta=1e-3)
    h.grant("zcdp", dataset="adult", purpose=PURPOSE, epsilon=1000.0, delta=1e-3, accounting="zcdp")
    # the same table without the grade-3 cap of epsilon = 1 per release
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    del pol["grades"]["3"]["max_epsilon"]
    h.register("uncapped", pets.example_data("adult"), pol)
    h.grant("basic", dataset="uncapped", purpose=PURPOSE, epsilon=1e9)
    return h


def _left(h: pets.Holder, analyst: str) -> pets.Cost:
    return h.remaining(analyst, dataset="adult", purpose=PURPOSE)


# ------------------------------------------------------------------ charge == explain
@pytest.mark.parametrize("analyst", ["basic", "zcdp"])
@pytest.mark.parametrize("dp", [LAPLACE, GAUSS], ids=["laplace", "gaussian"])
@pytest.mark.parametrize("name", list(MODELS))
def test_fit_charges_exactly_what_explain_says_and_is_audited(holder, analyst, dp, name):
    s = holder.session(analyst, purpose=PURPOSE)
    q, model = s.table("adult"), MODELS[name]
    e = s.explain(q, Fit(model, dp))
    assert e.allowed and e.details is not None and e.scale and not e.ci_width
    assert "depends" not in str(e) and "noise scale" in str(e)
    before = _left(holder, analyst)
    m = s.fit(q, model, dp)
    after = _left(holder, analyst)
    assert m.cost == e.cost
    if analyst == "basic":
        assert before.epsilon - after.epsilon == pytest.approx(e.cost.epsilon, abs=1e-9)
        assert before.delta - after.delta == pytest.approx(e.cost.delta, abs=1e-15)
    else:
        assert e.cost.rho > 0
        assert before.rho - after.rho == pytest.approx(e.cost.rho, rel=1e-9)
    (rec,) = [r for r in holder.audit().records(analyst=analyst) if r["id"] == m.audit_id]
    assert (rec["kind"], rec["status"], rec["model"]) == ("model", "released", model.name)
    assert rec["protection"]["model"]["features"] == list(model.features)
    assert holder.audit().verify()


@pytest.mark.parametrize("dp", [LAPLACE, GAUSS], ids=["laplace", "gaussian"])
def test_synthesize_charges_exactly_what_explain_says_and_is_audited(holder, dp):
    s = holder.session("basic", purpose=PURPOSE)
    q = s.table("adult").select("age", "sex", "race", "education-num", "salary-class")
    e = s.explain(q, Synthetic(dp, rows=500))
    assert e.allowed and list(e.details["step"]) == ["one_way", "select", "pairs"]
    before = _left(holder, "basic")
    y = s.synthesize(q, dp, rows=500)
    after = _left(holder, "basic")
    assert y.spent == e.cost
    assert before.epsilon - after.epsilon == pytest.approx(dp.epsilon, abs=1e-9)
    (rec,) = [r for r in holder.audit().records(analyst="basic") if r["id"] == y.audit_id]
    assert (rec["kind"], rec["status"], rec["rows"]) == ("synthetic", "released", 500)
    assert len(rec["marginals"]) == 4 == len(y.marginals)


# ------------------------------------------------------------------ refusals and bad input
@pytest.mark.parametrize("request_, rule, column", [
    (lambda s: s.fit(s.table("adult"), LinearRegression("hours-per-week", ["fnlwgt"]), LAPLACE),
     "negative_list", "fnlwgt"),
    (lambda s: s.fit(s.table("adult"), LOGIT, pets.DP(epsilon=1.5)), "max_epsilon", "salary-class"),
    (lambda s: s.synthesize(s.table("adult").select("age", "fnlwgt"), LAPLACE, rows=10),
     "negative_list", "fnlwgt"),
    (lambda s: s.synthesize(s.table("adult").select("occupation"), pets.DP(epsilon=3.0), rows=10),
     "max_epsilon", "occupation"),
], ids=["fit_negative_list", "fit_epsilon_cap", "synth_negative_list", "synth_epsilon_cap"])
def test_policy_refusals_are_audited_and_charge_nothing(holder, request_, rule, column):
    s = holder.session("basic", purpose=PURPOSE)
    before = _left(holder, "basic")
    with pytest.raises(pets.PolicyError) as err:
        request_(s)
    assert (err.value.rule, err.value.column) == (rule, column)
    assert _left(holder, "basic") == before
    last = holder.audit().records(analyst="basic")[-1]
    assert (last["status"], last["rule"]) == ("refused", rule)


def test_a_grade_without_the_model_form_refuses_it(tmp_path):
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["grades"]["3"]["allow"] = ["dp"]
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data("adult"), pol)
    h.grant("a", dataset="adult", purpose="p", epsilon=1.0)
    s = h.session("a", purpose="p")
    e = s.explain(s.table("adult"), Fit(LOGIT, LAPLACE))
    assert not e.allowed and e.rule == "grade"
    with pytest.raises(pets.PolicyError, match="does not allow 'model' releases") as err:
        s.fit(s.table("adult"), LOGIT, LAPLACE)
    assert err.value.rule == "grade" and err.value.column == "salary-class"
    with pytest.raises(pets.PolicyError, match="does not allow 'synthetic' releases"):
        s.synthesize(s.table("adult").select("sex", "salary-class"), LAPLACE, rows=10)
    # without the forms in any grade (the default grades), models are refused too
    pol2 = pets.Policy.from_dict({"columns": {"x": {"role": "attribute", "grade": 1, "bounds": [0, 1]},
                                              "y": {"role": "attribute", "grade": 1, "bounds": [0, 1]}},
                                  "grades": {"1": {"allow": ["dp"]}}})
    h.register("xy", pd.DataFrame({"x": [0.1, 0.5], "y": [0.2, 0.3]}), pol2)
    h.grant("a", dataset="xy", purpose="p", epsilon=1.0)
    with pytest.raises(pets.PolicyError, match="does not allow 'model'"):
        s.fit(s.table("xy"), LinearRegression("y", ["x"]), LAPLACE)
    assert s.remaining("adult").epsilon == 1.0


@pytest.mark.parametrize("make, message", [
    (lambda: LinearRegression("y", []), "non-empty list of column names"),
    (lambda: LinearRegression("y", ["y"]), "also a feature"),
    (lambda: LinearRegression("y", ["x", "x"]), "names a column twice"),
    (lambda: LinearRegression(3, ["x"]), "target must be a column name"),
    (lambda: LinearRegression("y", ["x"], log=["z"]), "not a feature"),
    (lambda: LogisticRegression("y", ["x"], regularization_share=1.5), "regularization_share"),
    (lambda: Fit("not a model", LAPLACE), "must be one of pets.models"),
    (lambda: Fit(LIN, 0.5), "pets.DP"),
    (lambda: Synthetic(LAPLACE, rows=0), "rows must be an integer"),
    (lambda: Synthetic(LAPLACE, rows=10, bins=1), "bins must be an integer"),
])
def test_bad_model_arguments_are_clear_query_errors(make, message):
    with pytest.raises(pets.QueryError, match=message):
        make()


@pytest.mark.parametrize("request_, message", [
    (lambda s: s.fit(s.table("adult"), LogisticRegression("race", ["age"]), LAPLACE), "two classes"),
    (lambda s: s.fit(s.table("adult"), LogisticRegression("salary-class", ["age"], positive="rich"),
                     LAPLACE), "not one of the target's classes"),
    (lambda s: s.fit(s.table("adult").group_by("sex").agg(n=pets.count()), LIN, LAPLACE), "not group_by"),
    (lambda s: s.fit(s.table("adult").select("age"), LIN, LAPLACE), "leaves out"),
    (lambda s: s.synthesize(s.table("adult"), LAPLACE, rows=10), r"\.select\("),
    (lambda s: s.fit(s.table("adult"), LinearRegression("hours", ["age"]), LAPLACE), "unknown column"),
])
def test_bad_requests_change_nothing(holder, request_, message):
    s = holder.session("basic", purpose=PURPOSE)
    before = _left(holder, "basic")
    n = len(holder.audit().records())
    with pytest.raises(pets.QueryError, match=message):
        request_(s)
    assert _left(holder, "basic") == before
    assert len(holder.audit().records()) == n


def test_a_target_without_public_keys_or_bounds_is_refused_by_rule(holder):
    s = holder.session("basic", purpose=PURPOSE)
    with pytest.raises(pets.PolicyError) as err:
        s.fit(s.table("adult"), LinearRegression("sex", ["age"]), LAPLACE)
    assert (err.value.rule, err.value.column) == ("model_encoding", "sex")


# ------------------------------------------------------------------ JSON, shape, dummy
@pytest.mark.parametrize("name", list(MODELS))
def test_fitted_models_round_trip_through_json(holder, adult_df, name, tmp_path):
    s = holder.session("basic", purpose=PURPOSE)
    m = s.fit(s.table("adult"), MODELS[name], pets.DP(epsilon=1.0))
    path = tmp_path / "m.json"
    text = m.to_json(path)
    assert "pickle" not in text and json.loads(text)["model"] == m.name
    for back in (load(text), load(path), load(json.loads(text))):
        assert type(back) is type(m) and back.cost == m.cost and back.audit_id == m.audit_id
        np.testing.assert_array_equal(back.predict(adult_df.head(200)), m.predict(adult_df.head(200)))
        assert back.score(adult_df) == m.score(adult_df)
    if name != "linear":
        p = m.predict_proba(adult_df.head(50))
        assert p.shape == (50, len(m.classes_)) and np.allclose(p.sum(axis=1), 1.0)
    assert len(m.feature_names_out_) == m.transform(adult_df.head(3)).shape[1]


def test_loading_garbage_is_a_query_error(tmp_path):
    with pytest.raises(pets.QueryError, match="malformed"):
        load("{not json")
    with pytest.raises(pets.QueryError, match="not a pets model"):
        load("{}")
    with pytest.raises(pets.QueryError, match="cannot read model file"):
        load(tmp_path / "missing.json")
    with pytest.raises(pets.QueryError, match="not fitted"):
        LIN.predict(pd.DataFrame({"age": [1]}))


def test_fit_on_the_dummy_table_spends_nothing(holder):
    s = holder.session("basic", purpose=PURPOSE)
    before = _left(holder, "basic")
    m = s.fit(s.table("adult"), LOGIT_SMALL, LAPLACE, dummy=True, rows=500, seed=3)
    assert m.dummy and m.audit_id == 0 and m.cost == pets.Cost(0.5, 0.0)
    assert _left(holder, "basic") == before


# ------------------------------------------------------------------ utility and correctness
def test_linear_regression_at_large_epsilon_matches_least_squares(holder, adult_df):
    s = holder.session("basic", purpose=PURPOSE)
    m = s.fit(s.table("uncapped"), LIN, pets.DP(epsilon=1e6))
    x = m.transform(adult_df)
    y = adult_df["hours-per-week"].clip(1, 99).to_numpy(dtype=float)
    x1 = np.hstack([x, np.ones((len(x), 1))])
    w, *_ = np.linalg.lstsq(x1, y, rcond=None)
    # one-hot blocks sum to the intercept: compare predictions, not coefficients
    assert np.abs(m.predict(adult_df) - x1 @ w).max() < 0.05
    assert m.n_ == pytest.approx(len(adult_df), abs=5)


def test_logistic_regression_at_large_epsilon_matches_the_non_private_fit(holder, adult_df):
    s = holder.session("basic", purpose=PURPOSE)
    m = s.fit(s.table("uncapped"), LOGIT, pets.DP(epsilon=1e4))
    x = np.hstack([m.transform(adult_df), np.ones((len(adult_df), 1))])
    y = (adult_df["salary-class"] == ">50K").to_numpy(dtype=float)
    w = newton_logistic(x, y, 0.01, np.zeros(x.shape[1]))
    ref = (x @ w > 0)
    assert (m.predict(adult_df) == np.where(ref, ">50K", "<=50K")).mean() > 0.995


def test_models_are_useful_at_epsilon_one(holder, adult_df):
    """At ε = 1 (each fit's noise is far below these margins: a failure means a defect)."""
    s = holder.session("basic", purpose=PURPOSE)
    assert s.fit(s.table("adult"), LOGIT, pets.DP(epsilon=1.0)).score(adult_df) > 0.82
    assert s.fit(s.table("adult"), NB, pets.DP(epsilon=1.0)).score(adult_df) > 0.76
    assert s.fit(s.table("adult"), LIN, pets.DP(epsilon=1.0)).score(adult_df) > 0.04


def test_synthetic_rows_have_the_schema_and_the_marginals(holder, adult_df):
    s = holder.session("basic", purpose=PURPOSE)
    cols = ["age", "sex", "race", "education-num", "salary-class", "hours-per-week"]
    y = s.synthesize(s.table("uncapped").select(*cols), pets.DP(epsilon=5.0), rows=20_000)
    df = y.df
    assert list(df.columns) == cols and len(df) == 20_000
    assert set(df["sex"].dropna()) <= {"Female", "Male"}
    assert df["age"].dropna().between(17, 90).all() and df["age"].dtype == "Int64"
    assert df["education-num"].dropna().isin(range(1, 17)).all()
    assert set(y.error["marginal"]) >= set(cols) and (y.error["expected_tv"] < 0.05).all()
    for c in ("sex", "race", "salary-class"):  # 1-way TV: noise + sampling, far below 0.03
        real = adult_df[c].value_counts(normalize=True)
        synth = df[c].value_counts(normalize=True)
        tv = 0.5 * real.sub(synth, fill_value=0).abs().sum()
        assert tv < 0.03, (c, tv)
    # a measured pair keeps its dependence
    from pets.synth.mst import column_of

    policy = pets.Policy.load(pets.example_policy("adult"))
    schema = {c: ("str" if adult_df[c].dtype == object else "int") for c in cols}
    for a, b in y.marginals:
        ca, cb = column_of(policy, schema, a, 16), column_of(policy, schema, b, 16)
        real = pd.crosstab(ca.index(adult_df[a]), cb.index(adult_df[b]), normalize=True)
        synth = pd.crosstab(ca.index(df[a]), cb.index(df[b]), normalize=True)
        assert 0.5 * real.sub(synth, fill_value=0).abs().sum().sum() < 0.06, (a, b)
