"""Side doors of the model and synthetic-data releases (issue 12): the harness of
test_side_doors.py on fits and syntheses — released ones, and every refusal path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pets
from pets.models import Fit, LinearRegression, LogisticRegression, NaiveBayes
from pets.synth import Synthetic

from .side_doors import ANALYST, RELEASED, STRANGER, Case, check_case, refused
from .test_side_doors import (
    ADULT_NEIGHBOURS, UNIT_NEIGHBOURS, UNIT_POLICY, adult, adult_policy_with, adult_setup, case,
    dummy_release, frame_setup, release, unit,
)

pytestmark = pytest.mark.filterwarnings("ignore::pets.holder.HierarchyWarning")

DP = pets.DP
T = lambda s: s.table("adult")  # noqa: E731
LIN = LinearRegression("hours-per-week", ["age", "education-num", "sex", "capital-gain"],
                       log=["capital-gain"])
LOGIT = LogisticRegression("salary-class", ["age", "education-num", "sex", "occupation"])
NB = NaiveBayes("salary-class", ["age", "hours-per-week", "race", "marital-status"])
GAUSS = DP(epsilon=0.5, delta=1e-6, noise="gaussian")

UNIT_MODEL_POLICY = {**UNIT_POLICY, "grades": {"1": {"allow": ["dp", "model", "synthetic"]}}}
#: x has neither bounds nor keys: a model or a synthesizer has no public encoding of it
NO_ENCODING_POLICY = {"columns": {"x": {"role": "attribute", "grade": 1},
                                  "y": {"role": "attribute", "grade": 1, "bounds": [0, 10]}},
                      "grades": {"1": {"allow": ["model", "synthetic"]}}}


def xy() -> dict[str, pd.DataFrame]:
    return {"main": pd.DataFrame({"x": [float(i % 7) for i in range(50)],
                                  "y": [float(i % 10) for i in range(50)]})}


def _no_model_in_grade3(pol: dict[str, Any], d: Path) -> None:
    pol["grades"]["3"]["allow"] = [f for f in pol["grades"]["3"]["allow"]
                                   if f not in ("model", "synthetic")]


def _xy_neighbours() -> tuple[Any, ...]:
    from .side_doors import Neighbour

    return (
        Neighbour("+extreme", lambda d: pd.concat([d, pd.DataFrame({"x": [1e12], "y": [1e9]})])),
        Neighbour("-one", lambda d: d.iloc[1:]),
    )


def synth(q: Any, dp: Any, rows: int | None = 200):
    return release(q, Synthetic(dp, rows=rows))


CASES: list[Case] = [
    case("model_linear_regression", adult, adult_setup(), release(T, Fit(LIN, DP(epsilon=0.5))),
         RELEASED, why="DP linear regression (sufficient statistics)"),
    case("model_logistic_regression", adult, adult_setup(), release(T, Fit(LOGIT, DP(epsilon=0.5))),
         RELEASED, why="DP logistic regression (objective perturbation)"),
    case("model_naive_bayes_gaussian", adult, adult_setup(), release(T, Fit(NB, GAUSS)),
         RELEASED, why="DP naive Bayes with Gaussian noise"),
    case("model_filtered", adult, adult_setup(),
         release(lambda s: s.table("adult").filter(pets.col("age") >= 40), Fit(LIN, DP(epsilon=1.0))),
         RELEASED, why="a model on a filtered table"),
    case("model_unit_bounded", unit, frame_setup(UNIT_MODEL_POLICY),
         release(lambda s: s.table("t"), Fit(LinearRegression("cost", ["clinic"]), DP(epsilon=0.5))),
         RELEASED, neighbours=UNIT_NEIGHBOURS, why="a model with several rows per person"),
    case("model_refused_negative_list", adult, adult_setup(),
         release(T, Fit(LinearRegression("hours-per-week", ["age", "fnlwgt"]), DP(epsilon=0.5))),
         refused(pets.PolicyError, "negative_list"), neighbours=ADULT_NEIGHBOURS[3:],
         why="a model reading a negative-listed column"),
    case("model_refused_grade", adult, adult_setup(adult_policy_with(g=_no_model_in_grade3)),
         release(T, Fit(LOGIT, DP(epsilon=0.5))), refused(pets.PolicyError, "grade"),
         neighbours=ADULT_NEIGHBOURS[3:], why="a model on a grade that does not allow models"),
    case("model_refused_epsilon_cap", adult, adult_setup(),
         release(T, Fit(LOGIT, DP(epsilon=2.0))), refused(pets.PolicyError, "max_epsilon"),
         neighbours=ADULT_NEIGHBOURS[3:], why="a model above the grade's per-release epsilon"),
    case("model_refused_default_deny", unit, frame_setup(UNIT_MODEL_POLICY),
         release(lambda s: s.table("t"), Fit(LinearRegression("cost", ["score"]), DP(epsilon=0.5))),
         refused(pets.PolicyError), neighbours=UNIT_NEIGHBOURS[:1],
         why="a model on a column the policy does not list"),
    case("model_refused_identifier", unit, frame_setup(UNIT_MODEL_POLICY),
         release(lambda s: s.table("t"), Fit(LinearRegression("cost", ["person_id"]), DP(epsilon=0.5))),
         refused(pets.PolicyError, "identifier"), neighbours=UNIT_NEIGHBOURS[:1],
         why="a model on the identifier"),
    case("model_refused_no_encoding", xy, frame_setup(NO_ENCODING_POLICY),
         release(lambda s: s.table("t"), Fit(LinearRegression("y", ["x"]), DP(epsilon=0.5))),
         refused(pets.PolicyError, "model_encoding"), neighbours=_xy_neighbours(),
         why="a model feature without public bounds or keys"),
    case("model_dummy", adult, adult_setup(), dummy_release(T, Fit(LOGIT, DP(epsilon=0.5))),
         RELEASED, release_form=False, neighbours=ADULT_NEIGHBOURS[3:],
         why="a model fitted on the dummy table"),
    case("no_grant_model", adult, adult_setup(),
         release(T, Fit(LOGIT, DP(epsilon=0.5)), analyst=STRANGER),
         refused(pets.PolicyError, "no_grant"), neighbours=ADULT_NEIGHBOURS[3:],
         why="an analyst without a grant asks for a model"),
    # ---------------------------------------------------------------- synthetic data
    case("synthetic_adult", adult, adult_setup(),
         synth(lambda s: s.table("adult").select("age", "sex", "race", "salary-class"), DP(epsilon=1.0)),
         RELEASED, why="MST synthetic data"),
    case("synthetic_gaussian_noisy_rows", adult, adult_setup(),
         synth(lambda s: s.table("adult").select("education-num", "workclass", "hours-per-week"),
               GAUSS, rows=None),
         RELEASED, why="MST with Gaussian noise, as many rows as the noisy count"),
    case("synthetic_unit_bounded", unit, frame_setup(UNIT_MODEL_POLICY),
         synth(lambda s: s.table("t").select("clinic", "cost"), DP(epsilon=0.5)),
         RELEASED, neighbours=UNIT_NEIGHBOURS, why="synthetic data with several rows per person"),
    case("synthetic_refused_grade", adult, adult_setup(adult_policy_with(g=_no_model_in_grade3)),
         synth(lambda s: s.table("adult").select("age", "occupation"), DP(epsilon=0.5)),
         refused(pets.PolicyError, "grade"), neighbours=ADULT_NEIGHBOURS[3:],
         why="synthetic data of a column whose grade does not allow it"),
    case("synthetic_refused_negative_list", adult, adult_setup(),
         synth(lambda s: s.table("adult").select("age", "fnlwgt"), DP(epsilon=0.5)),
         refused(pets.PolicyError, "negative_list"), neighbours=ADULT_NEIGHBOURS[3:],
         why="synthetic data of a negative-listed column"),
    case("synthetic_refused_no_domain", xy, frame_setup(NO_ENCODING_POLICY),
         synth(lambda s: s.table("t").select("x", "y"), DP(epsilon=0.5)),
         refused(pets.PolicyError, "synthetic_domain"), neighbours=_xy_neighbours(),
         why="synthetic data of a column without public bounds or keys"),
]


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_models_and_synthetic_data_have_no_side_doors(c: Case, tmp_path: Path) -> None:
    check_case(c, tmp_path)
