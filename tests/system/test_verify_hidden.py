"""Hidden equality claims: the verifier encrypts its claim under its own Paillier key;
the holder — here in another process, given only the ciphertext — answers
Enc(r·(x − claim)); the verifier's decryption equals the data on Adult."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import pets
from pets.verify import HiddenVerifier

from .test_verify import BANK, PURPOSE, adult_with_ids, make_holder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return adult_with_ids().head(3000)


@pytest.fixture(scope="module")
def verifier() -> HiddenVerifier:
    return HiddenVerifier(key_bits=2048)


@pytest.fixture
def holder(tmp_path: Path, adult: pd.DataFrame) -> pets.Holder:
    return make_holder(tmp_path / "h", adult, max_per_subject=20)


def test_hidden_answers_equal_the_data(holder: pets.Holder, adult: pd.DataFrame,
                                       verifier: HiddenVerifier) -> None:
    s = holder.session(BANK, purpose=PURPOSE)
    for i in (0, 1, 7, 123, 2999):
        r = adult.iloc[i]
        pid = {"person_id": r["person_id"]}
        assert s.verify_hidden("adult", pid, "education", r["education"], verifier=verifier).match
        other = "Doctorate" if r["education"] != "Doctorate" else "Preschool"
        assert not s.verify_hidden("adult", pid, "education", other, verifier=verifier).match
        assert s.verify_hidden("adult", pid, "capital-gain", int(r["capital-gain"]),
                               verifier=verifier).answer == "match"
        assert not s.verify_hidden("adult", pid, "capital-gain", int(r["capital-gain"]) + 1,
                                   verifier=verifier).match
        band = int(r["age"]) // 5 * 5  # granularity 5: a claim names the 5-year band
        assert s.verify_hidden("adult", pid, "age", band, verifier=verifier).match
        assert not s.verify_hidden("adult", pid, "age", band + 5, verifier=verifier).match
    absent = s.verify_hidden("adult", {"person_id": "nobody"}, "education", "Bachelors",
                             verifier=verifier)
    assert (absent.match, absent.answer) == (False, "no_match")


def test_absent_subjects_with_membership_revealed(tmp_path: Path, adult: pd.DataFrame,
                                                  verifier: HiddenVerifier) -> None:
    h = make_holder(tmp_path / "h", adult, membership="reveal")
    s = h.session(BANK, purpose=PURPOSE)
    assert s.verify_hidden("adult", {"person_id": "nobody"}, "education", "Bachelors",
                           verifier=verifier).answer == "no_subject"


HOLDER_PROCESS = textwrap.dedent("""
    import json, sys
    import pets
    from pets import pipeline
    from pets.mechanisms.verify import HiddenClaim
    from pets.plan import Plan
    req = json.load(open(sys.argv[2]))
    s = pets.Holder(sys.argv[1]).session(req["analyst"], purpose=req["purpose"])
    prot = HiddenClaim(subject=req["subject"], column=req["column"], public_key=req["n"],
                       ciphertext=req["ciphertext"])
    a = pipeline.release(s, Plan("adult", select=tuple(prot.keys) + (prot.column,)), prot)
    json.dump({"ciphertext": a.ciphertext, "audit_id": a.audit_id}, open(sys.argv[3], "w"))
""")


def test_the_holder_process_never_sees_the_plaintext_claim(holder: pets.Holder, tmp_path: Path,
                                                           verifier: HiddenVerifier) -> None:
    """The holder runs in its own process and gets only what the request file holds:
    the subject, the column, the verifier's public modulus and Enc(claim)."""
    answers = {}
    for claim in ("Bachelors", "Masters"):  # P-00001 holds a Bachelors degree
        req = {"analyst": BANK, "purpose": PURPOSE, "subject": {"person_id": "P-00001"},
               "column": "education", "n": verifier.public_key.n,
               "ciphertext": verifier.encrypt(claim)}
        sent = tmp_path / f"request-{claim}.json"
        sent.write_text(json.dumps(req))
        assert claim not in sent.read_text()
        got = tmp_path / f"answer-{claim}.json"
        p = subprocess.run([sys.executable, "-c", HOLDER_PROCESS, str(holder._store.home),
                            str(sent), str(got)], capture_output=True, text=True,
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"}, timeout=120)
        assert p.returncode == 0, p.stderr
        answers[claim] = verifier.match(json.loads(got.read_text())["ciphertext"])
    assert answers == {"Bachelors": True, "Masters": False}
    recs = [r for r in holder.audit().records() if r.get("mode") == "hidden"]
    assert len(recs) == 2 and "Bachelors" not in json.dumps(recs) and "P-00001" not in json.dumps(recs)
    assert holder.audit().verify()


def test_a_non_match_decrypts_to_a_random_unit(holder: pets.Holder, verifier: HiddenVerifier) -> None:
    """r·(x − c) for uniform r: two answers to the same false claim differ (a fixed or
    small multiple of x − c would let the verifier narrow x − c)."""
    import math

    from pets.mechanisms.verify import HiddenClaim

    s = holder.session(BANK, purpose=PURPOSE)
    prot = HiddenClaim(subject={"person_id": "P-00001"}, column="capital-gain",
                       public_key=verifier.public_key, ciphertext=verifier.encrypt(10))
    plan = pets.plan.Plan("adult", select=("person_id", "capital-gain"))
    outs = [verifier.private_key.raw_decrypt(pets.pipeline.release(s, plan, prot).ciphertext)
            for _ in range(3)]
    n = verifier.public_key.n
    assert len(set(outs)) == 3 and all(o != 0 for o in outs)
    # each is a unit far from 0 and from any small multiple: above n / 2^64 with
    # probability 1 - 2^-64 per draw
    assert all(min(o, n - o) > n >> 64 for o in outs)
    assert all(math.gcd(o, n) == 1 for o in outs)


def test_hidden_claims_follow_the_policy(holder: pets.Holder, verifier: HiddenVerifier) -> None:
    s = holder.session(BANK, purpose=PURPOSE)
    for column, rule in (("hours-per-week", "verify_operators"), ("occupation", "verify_claims")):
        with pytest.raises(pets.PolicyError) as e:
            s.verify_hidden("adult", {"person_id": "P-00001"}, column, 40, verifier=verifier)
        assert e.value.rule == rule
    with pytest.raises(pets.PolicyError) as e:
        s.verify_hidden("adult", {"age": 50}, "education", "Bachelors", verifier=verifier)
    assert e.value.rule == "verify_subject_keys"


def test_hidden_claims_count_against_the_per_subject_quota(tmp_path: Path, adult: pd.DataFrame,
                                                           verifier: HiddenVerifier) -> None:
    h = make_holder(tmp_path / "h", adult, max_per_subject=2)
    s = h.session(BANK, purpose=PURPOSE)
    for v in ("Masters", "Doctorate"):
        s.verify_hidden("adult", {"person_id": "P-00001"}, "education", v, verifier=verifier)
    with pytest.raises(pets.PolicyError) as e:
        s.verify_hidden("adult", {"person_id": "P-00001"}, "education", "Bachelors", verifier=verifier)
    assert e.value.rule == "verify_max_per_subject"


@pytest.mark.parametrize("change,match", [
    (dict(ciphertext=0), "ciphertext"),
    (dict(public_key=2**64 + 1), "n|modulus|bits"),
    (dict(column=""), "column"),
    (dict(subject={}), "subject"),
])
def test_bad_hidden_requests_are_clear_errors(verifier: HiddenVerifier, change, match) -> None:  # type: ignore[no-untyped-def]
    from pets.mechanisms.verify import HiddenClaim

    kw = dict(subject={"person_id": "P-00001"}, column="education",
              public_key=verifier.public_key, ciphertext=verifier.encrypt("Bachelors"))
    kw.update(change)
    with pytest.raises(pets.QueryError, match=match):
        HiddenClaim(**kw)
