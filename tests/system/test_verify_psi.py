"""PSI verification (openmined-psi): the answers equal a plain join on Adult with a
generated key, the holder's side sees only a blinded request of known size, and it is
audited and counted as a batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("private_set_intersection.python", reason="pip install 'pets[psi]'")

import pets  # noqa: E402
from pets.mechanisms.verify import PSI  # noqa: E402
from pets.verify.psi import PSIVerifier  # noqa: E402

from .test_verify import BANK, PURPOSE, adult_with_ids, make_holder  # noqa: E402


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return adult_with_ids()


@pytest.fixture
def holder(tmp_path: Path, adult: pd.DataFrame) -> pets.Holder:
    """A holder of the first 2,000 rows (PSI setup costs ~0.15 ms per holder record)."""
    return make_holder(tmp_path / "h", adult.head(2000), max_per_analyst=5000, max_batch=3000)


def test_psi_answers_equal_a_plain_join(tmp_path: Path, adult: pd.DataFrame) -> None:
    holder = make_holder(tmp_path / "h", adult, max_per_analyst=5000, max_batch=3000)
    rng = np.random.default_rng(11)
    pairs = adult[["person_id", "education"]].sample(2000, random_state=3).reset_index(drop=True)
    wrong = rng.random(len(pairs)) < 0.4
    pairs.loc[wrong, "education"] = rng.choice(["Doctorate", "Preschool", "Masters"], wrong.sum())
    pairs.loc[:49, "person_id"] = [f"X-{i}" for i in range(50)]  # not in the table
    b = holder.session(BANK, purpose=PURPOSE).verify_psi("adult", pairs, keys=["person_id"])
    joined = pairs.merge(adult[["person_id", "education"]], how="left", indicator=True)
    truth = (joined["_merge"] == "both").to_numpy()
    assert list(b.df["person_id"]) == list(pairs["person_id"])
    assert (b.match.to_numpy() == truth).all()
    assert 0 < truth.sum() < len(truth)
    assert b.answers_left == 3000


def test_psi_reads_numbers_at_the_policy_granularity(holder: pets.Holder, adult: pd.DataFrame) -> None:
    pairs = adult[["person_id", "age"]].head(200).copy()
    pairs["age"] = pairs["age"] // 5 * 5  # the 5-year band the subject is in
    pairs.loc[::2, "age"] += 5  # the next band: no match
    b = holder.session(BANK, purpose=PURPOSE).verify_psi("adult", pairs, keys="person_id")
    assert (b.match.to_numpy() == (np.arange(200) % 2 == 1)).all()


def test_the_holder_sees_only_a_blinded_request_and_its_size(holder: pets.Holder, adult: pd.DataFrame) -> None:
    pairs = adult[["person_id", "education"]].head(300)
    v = PSIVerifier(pairs, ["person_id"], ["education"])
    prot = v.request()
    # what crosses to the holder: bytes and column names; no key or claimed value in them
    assert isinstance(prot, PSI) and prot.items == 300
    blob = bytes(prot.request)
    for value in ("P-00000", "P-00299", "Bachelors", "HS-grad"):
        assert value.encode() not in blob
    s = holder.session(BANK, purpose=PURPOSE)
    plan = pets.plan.Plan("adult", select=("person_id", "education"))
    answer = pets.pipeline.release(s, plan, prot)
    assert (v.matches(answer.setup, answer.response)).all()
    rec = [r for r in holder.audit().records() if r["kind"] == "verify"][-1]
    assert rec["mode"] == "psi" and rec["subjects"] == 300
    text = json.dumps(rec)
    assert "P-00000" not in text and "Bachelors" not in text
    assert holder.audit().verify()


def test_psi_is_refused_by_the_policy_and_counted_as_a_batch(tmp_path: Path, adult: pd.DataFrame) -> None:
    h = make_holder(tmp_path / "h", adult.head(1000), max_per_analyst=250, max_batch=200)
    s = h.session(BANK, purpose=PURPOSE)
    cases = [
        (adult[["person_id", "occupation"]].head(5), "verify_claims"),
        (adult[["person_id", "hours-per-week"]].head(5), "verify_operators"),  # >=, < only
        (adult[["person_id", "education"]].head(201), "verify_max_batch"),
    ]
    for pairs, rule in cases:
        with pytest.raises(pets.PolicyError) as e:
            s.verify_psi("adult", pairs, keys=["person_id"])
        assert e.value.rule == rule
    assert s.verify_psi("adult", adult[["person_id", "education"]].head(200),
                        keys=["person_id"]).answers_left == 50
    with pytest.raises(pets.PolicyError) as e:
        s.verify_psi("adult", adult[["person_id", "education"]].head(51), keys=["person_id"])
    assert e.value.rule == "verify_max_per_analyst"
    e2 = s.verify_psi("adult", adult[["person_id", "education"]].head(51), keys=["person_id"],
                      explain=True)
    assert not e2.allowed and e2.rule == "verify_max_per_analyst"


@pytest.mark.parametrize("call,match", [
    (lambda s, a: s.verify_psi("adult", a[["person_id"]].head(3), keys=["person_id"]), "claimed column"),
    (lambda s, a: s.verify_psi("adult", a[["person_id", "education"]].head(0), keys=["person_id"]), "non-empty"),
    (lambda s, a: s.verify_psi("adult", a[["person_id", "workclass"]].head(30), keys=["person_id"]), "missing values"),
    (lambda s, a: s.verify_psi("adult", [1, 2], keys=["person_id"]), "DataFrame"),
    (lambda s, a: PSI(request=b"\x00garbage", keys=("person_id",), columns=("age",)), "not a PSI request"),
])
def test_bad_psi_input_is_a_clear_error(holder: pets.Holder, adult: pd.DataFrame, call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pets.QueryError, match=match):
        call(holder.session(BANK, purpose=PURPOSE), adult)
