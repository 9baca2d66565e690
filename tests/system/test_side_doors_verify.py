"""Side doors of verification (核验): the harness of test_side_doors.py run on
verification requests. An absent subject and a present one, a subject whose record
changed or is duplicated, a new person: everything observable but the answer itself
(which comes out of the counted mechanism) must be the same — explain, refusals, quota
counts, result metadata — and with ``membership = "hide"`` the answer for an absent
subject is the same as for a present one whose claim is false."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pets
from pets import col

from .side_doors import (
    PURPOSE, RELEASED, STRANGER, Case, Data, Neighbour, World, ANALYST, check_case, refused,
    run_case,
)

ROWS = 300
SUBJECT = {"person_id": "P-00001"}  # age 50, Bachelors


@functools.lru_cache(maxsize=1)
def _adult() -> pd.DataFrame:
    df = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values=["?"]).head(ROWS)
    df.insert(0, "person_id", [f"P-{i:05d}" for i in range(len(df))])
    return df


def data() -> Data:
    return {"main": _adult().copy()}


def _add(df: pd.DataFrame, **changes: Any) -> pd.DataFrame:
    row = df.iloc[[1]].copy()
    for k, v in changes.items():
        row[k] = v
    return pd.concat([df, row], ignore_index=True)


def _change(df: pd.DataFrame, **changes: Any) -> pd.DataFrame:
    for k, v in changes.items():
        df.loc[df["person_id"] == SUBJECT["person_id"], k] = v
    return df


NEIGHBOURS = (
    Neighbour("+ordinary", lambda d: _add(d, person_id="P-90000")),
    Neighbour("+extreme", lambda d: _add(d, person_id="P-90001", age=90, **{"hours-per-week": 99})),
    Neighbour("-subject", lambda d: d[d["person_id"] != SUBJECT["person_id"]]),
    Neighbour("subject changed", lambda d: _change(d, age=20, education="Doctorate")),
    Neighbour("+subject's key twice", lambda d: _add(d, age=18)),
    Neighbour("subject's values missing", lambda d: _change(d, age=None, education=None)),
)


def policy(**verify: Any) -> dict[str, Any]:
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["columns"]["person_id"] = {"role": "identifier", "grade": 2}
    pol["verify"] = {"subject_keys": ["person_id"], "max_per_subject": 3,
                     "claims": {"age": {"operators": [">=", "<"], "granularity": 5},
                                "education": {"operators": ["==", "isin"]}}, **verify}
    return pol


def setup(**verify: Any):
    def go(d: Path, data: Data) -> World:
        h = pets.Holder(d / "home")
        h.register("adult", data["main"], policy(**verify))
        h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1.0)
        w = World(d, {"main": h}, "adult")
        w.session = w.local()
        return w
    return go


def verify(subject: Any, claim: Any, *, analyst: str = ANALYST, before: int = 0):
    """The request (after ``before`` identical verifications) and its explain."""
    def go(w: World) -> Any:
        s = w.local(analyst)
        for _ in range(before):
            s.verify("adult", subject, claim)
        return s.verify("adult", subject, claim)

    def why(w: World) -> Any:
        return w.local(analyst).verify("adult", subject, claim, explain=True)
    return go, why


def batch(ids: list[str], claim: Any):
    frame = pd.DataFrame({"person_id": ids})

    def go(w: World) -> Any:
        return w.local().verify_batch("adult", frame, claim)

    def why(w: World) -> Any:
        return w.local().verify_batch("adult", frame, claim, explain=True)
    return go, why


def case(name: str, request: tuple[Any, Any], expect: Any, why: str, **verify: Any) -> Case:
    go, ex = request
    return Case(name=name, data=data, setup=setup(**verify), request=go, explain=ex,
                expect=expect, neighbours=NEIGHBOURS, why=why)


CLAIM = col("age") >= 45
CASES = [
    case("verify_membership_hidden", verify(SUBJECT, CLAIM), RELEASED,
         "absent and present subjects, membership hidden"),
    case("verify_membership_revealed", verify(SUBJECT, CLAIM), RELEASED,
         "absent and present subjects, membership revealed", membership="reveal"),
    case("verify_conjunction", verify(SUBJECT, (col("age") >= 45) & col("education").isin(
        ["Bachelors", "Masters"])), RELEASED, "a conjunction of a range and an isin"),
    case("verify_batch", batch(["P-00001", "P-00002", "P-99999", "P-00001"], CLAIM), RELEASED,
         "a batch naming present, absent and repeated subjects"),
    case("refuse_verify_claims", verify(SUBJECT, col("occupation") == "Sales"),
         refused(pets.PolicyError, "verify_claims"), "a column the policy does not let be claimed"),
    case("refuse_verify_granularity", verify(SUBJECT, col("age") >= 47),
         refused(pets.PolicyError, "verify_granularity"), "a threshold finer than the granularity"),
    case("refuse_verify_membership", verify(SUBJECT, col("age") >= 15),
         refused(pets.PolicyError, "verify_membership"), "a claim true of every declared value"),
    case("refuse_verify_subject_quota", verify(SUBJECT, CLAIM, before=3),
         refused(pets.PolicyError, "verify_max_per_subject"),
         "the fourth claim about one subject in a period"),
    case("refuse_verify_stranger", verify(SUBJECT, CLAIM, analyst=STRANGER),
         refused(pets.PolicyError, "no_grant"), "an analyst without a grant"),
]


def test_case_names_are_unique() -> None:
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_nothing_observable_depends_on_the_data_unless_counted(c: Case, tmp_path: Path) -> None:
    check_case(c, tmp_path)


def test_hidden_membership_answers_absent_as_a_false_claim(tmp_path: Path) -> None:
    """With membership hidden, an absent subject's answer is the answer of a present
    subject whose claim is false: the two worlds look the same to the verifier."""
    c = CASES[0]
    go, _ = verify(SUBJECT, col("age") >= 60)  # the subject is 50: false
    obs = {}
    for name, d in [("D", data()), ("-subject", {"main": NEIGHBOURS[2].change(data()["main"])})]:
        w = setup()(tmp_path / name.strip("-"), d)
        obs[name] = go(w)
    assert (obs["D"].match, obs["D"].answer) == (obs["-subject"].match, obs["-subject"].answer) \
        == (False, "no_match")
    assert c.name == "verify_membership_hidden"
