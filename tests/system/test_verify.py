"""Verification (核验): answers equal the data on Adult with a generated subject key;
the policy's [verify] rules refuse what they must; quotas hold per analyst and per
subject per period, also under concurrent processes; the binary-search attack is
stopped at the stated bound; every answer is audited without the subject's key."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pets
from pets import col
from pets.verify import ledger

BANK, PURPOSE = "bank", "loan-checks"


def adult_with_ids() -> pd.DataFrame:
    df = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values=["?"])
    df.insert(0, "person_id", [f"P-{i:05d}" for i in range(len(df))])
    return df


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return adult_with_ids()


def verify_policy(**verify: Any) -> dict[str, Any]:
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["columns"]["person_id"] = {"role": "identifier", "grade": 2}
    v = {"subject_keys": ["person_id"], "max_per_subject": 3, "max_per_analyst": 100_000,
         "claims": {"age": {"operators": [">=", "<", "=="], "granularity": 5},
                    "education": {"operators": ["==", "isin"]},
                    "hours-per-week": {"operators": [">=", "<"], "granularity": 10},
                    "capital-gain": {"operators": ["=="]}}}
    v.update(verify)
    pol["verify"] = v
    return pol


def make_holder(home: Path, df: pd.DataFrame, **verify: Any) -> pets.Holder:
    h = pets.Holder(home)
    h.register("adult", df, verify_policy(**verify))
    for a in (BANK, "employer"):
        h.grant(a, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    return h


@pytest.fixture
def holder(tmp_path: Path, adult: pd.DataFrame) -> pets.Holder:
    """Adult's first 4,000 rows (registering all of it is for the one test that needs it)."""
    return make_holder(tmp_path / "home", adult.head(4000))


@pytest.fixture
def bank(holder: pets.Holder) -> pets.Session:
    return holder.session(BANK, purpose=PURPOSE)


# ----------------------------------------------------------------------------- answers
def test_batch_answers_equal_the_data_on_all_of_adult(tmp_path: Path, adult: pd.DataFrame) -> None:
    bank = make_holder(tmp_path / "all", adult).session(BANK, purpose=PURPOSE)
    subjects = adult[["person_id"]].sample(frac=1.0, random_state=7).reset_index(drop=True)
    claim = (col("age") >= 30) & (col("age") < 45) & col("education").isin(["Bachelors", "Masters"])
    b = bank.verify_batch("adult", subjects, claim)
    truth = adult.set_index("person_id").loc[subjects["person_id"]]
    want = ((truth["age"] >= 30) & (truth["age"] < 45)
            & truth["education"].isin(["Bachelors", "Masters"])).to_numpy()
    assert len(b.match) == len(adult)
    assert list(b.df["person_id"]) == list(subjects["person_id"])  # in the frame's order
    assert (b.match.to_numpy() == want).all()
    assert 0 < want.sum() < len(want)  # both answers occur
    assert set(b.answer) == {"match", "no_match"}


@pytest.mark.parametrize("claim_of", [
    lambda r: col("education") == r["education"],
    lambda r: col("education") == ("Doctorate" if r["education"] != "Doctorate" else "Preschool"),
    lambda r: col("age") >= 40,
    lambda r: (col("hours-per-week") >= 40) & (col("hours-per-week") < 50),
    lambda r: col("capital-gain") == 0,
])
def test_single_answers_equal_the_data(holder: pets.Holder, adult: pd.DataFrame, claim_of: Any) -> None:
    sessions = [holder.session(a, purpose=PURPOSE) for a in (BANK, "employer")]
    for i in range(0, 3000, 250):  # 12 subjects, 1 claim each
        r = adult.iloc[i]
        claim = claim_of(r)
        got = sessions[i % 2].verify("adult", {"person_id": r["person_id"]}, claim)
        want = _holds(claim.node, r)
        assert got.match is want and got.answer == ("match" if want else "no_match"), (i, claim)


def _holds(e: Any, row: pd.Series) -> bool:
    """An independent evaluation of a claim on one record (pandas row)."""
    from pets import plan as P

    if isinstance(e, P.And):
        return _holds(e.left, row) and _holds(e.right, row)
    if isinstance(e, P.IsIn):
        v = row[e.operand.name]
        return bool(pd.notna(v) and v in e.values)
    v, c = row[e.left.name], e.right.value
    if pd.isna(v):
        return False
    return bool({"==": v == c, ">=": v >= c, "<": v < c}[e.op])


def test_absent_subject_answers_no_match_when_membership_is_hidden(bank: pets.Session) -> None:
    v = bank.verify("adult", {"person_id": "P-99999"}, col("age") >= 30)
    assert (v.match, v.answer) == (False, "no_match")


def test_absent_subject_answers_no_subject_when_membership_is_revealed(tmp_path: Path, adult: pd.DataFrame) -> None:
    h = make_holder(tmp_path / "h", adult.head(4000), membership="reveal")
    s = h.session(BANK, purpose=PURPOSE)
    assert s.verify("adult", {"person_id": "P-99999"}, col("age") >= 30).answer == "no_subject"
    assert s.verify("adult", {"person_id": "P-00001"}, col("age") >= 30).answer == "match"
    b = s.verify_batch("adult", pd.DataFrame({"person_id": ["P-00001", "nobody", "P-00004"]}),
                       col("age") >= 30)
    assert list(b.answer) == ["match", "no_subject", "no_match"]  # ages 50, -, 28
    # the same through the path for large batches (over 200 subjects: one scan, pandas)
    ids = pd.DataFrame({"person_id": [f"P-{i:05d}" for i in range(150)] + [f"X-{i}" for i in range(100)]})
    big = s.verify_batch("adult", ids, col("age") >= 30)
    want = ["match" if a >= 30 else "no_match" for a in adult["age"].head(150)] + ["no_subject"] * 100
    assert list(big.answer) == want


def test_a_missing_claimed_value_is_no_match(bank: pets.Session, adult: pd.DataFrame) -> None:
    i = int(adult.index[adult["workclass"].isna()][0])
    pid = adult.loc[i, "person_id"]
    # hours-per-week is present; a claim on a missing value would be false, so take
    # a record whose education is present and claim it: match
    assert bank.verify("adult", {"person_id": pid},
                       col("education") == adult.loc[i, "education"]).match


def test_integer_subject_keys(tmp_path: Path, adult: pd.DataFrame) -> None:
    df = adult.drop(columns="person_id").head(500).copy()
    df.insert(0, "pid", range(1000, 1500))
    pol = verify_policy(subject_keys=["pid"])
    pol["columns"]["pid"] = pol["columns"].pop("person_id")
    h = pets.Holder(tmp_path / "h")
    h.register("adult", df, pol)
    h.grant(BANK, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    s = h.session(BANK, purpose=PURPOSE)
    assert s.verify("adult", {"pid": 1001}, col("age") >= 50).match  # age 50
    with pytest.raises(pets.QueryError, match="numbers"):
        s.verify("adult", {"pid": "1001"}, col("age") >= 50)


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("subject,claim,rule", [
    ({"person_id": "P-00001"}, col("occupation") == "Sales", "verify_claims"),
    ({"person_id": "P-00001"}, col("education") != "Bachelors", "verify_operators"),
    ({"person_id": "P-00001"}, col("age") >= 37, "verify_granularity"),
    ({"person_id": "P-00001"}, col("age") >= 15, "verify_membership"),
    ({"person_id": "P-00001"}, col("education").isin(list(
        pets.Policy.load(pets.example_policy("adult")).columns["education"].keys)), "verify_membership"),
    ({"age": 50}, col("education") == "Bachelors", "verify_subject_keys"),
    ({"person_id": "P-00001"}, col("fnlwgt") == 1, "negative_list"),
])
def test_the_policy_refuses(bank: pets.Session, holder: pets.Holder, subject: Any, claim: Any, rule: str) -> None:
    n = len(holder.audit())
    with pytest.raises(pets.PolicyError) as e:
        bank.verify("adult", subject, claim)
    assert e.value.rule == rule
    assert "P-00001" not in str(e.value)
    recs = holder.audit().records()[n:]
    assert [r["status"] for r in recs] == ["refused"] and recs[0]["rule"] == rule
    assert bank.verify("adult", subject, claim, explain=True).rule == rule


@pytest.mark.parametrize("claim", [
    (col("age") >= 30) | (col("age") < 20),
    ~(col("age") >= 30),
    col("age") + 1 >= 30,
    col("age") >= col("hours-per-week"),
])
def test_only_conjunctions_of_simple_terms_are_claims(bank: pets.Session, claim: Any) -> None:
    with pytest.raises(pets.QueryError, match="not a claim"):
        bank.verify("adult", {"person_id": "P-00001"}, claim)


@pytest.mark.parametrize("kwargs,match", [
    (dict(subject={}), "subject must be"),
    (dict(subject={"person_id": None}), "missing"),
    (dict(subject={"person_id": ["a"]}), "string, number or boolean"),
    (dict(subject="P-00001"), "subject must be"),
])
def test_bad_subjects_are_clear_errors(bank: pets.Session, kwargs: Any, match: str) -> None:
    with pytest.raises(pets.QueryError, match=match):
        bank.verify("adult", claim=col("age") >= 30, **kwargs)


def test_bad_batches_are_clear_errors(bank: pets.Session) -> None:
    with pytest.raises(pets.QueryError, match="missing in row 1"):
        bank.verify_batch("adult", pd.DataFrame({"person_id": ["P-00001", None]}), col("age") >= 30)
    with pytest.raises(pets.QueryError, match="DataFrame"):
        bank.verify_batch("adult", ["P-00001"], col("age") >= 30)  # type: ignore[arg-type]
    with pytest.raises(pets.QueryError, match="no columns or no rows"):
        bank.verify_batch("adult", pd.DataFrame({"person_id": []}), col("age") >= 30)


def test_a_policy_without_a_verify_section_answers_nothing(tmp_path: Path, adult: pd.DataFrame) -> None:
    h = pets.Holder(tmp_path / "h")
    h.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
    h.grant(BANK, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    with pytest.raises(pets.PolicyError) as e:
        h.session(BANK, purpose=PURPOSE).verify("adult", {"age": 50}, col("sex") == "Male")
    assert e.value.rule == "verify"


@pytest.mark.parametrize("section,match", [
    ({"subject_keys": []}, "subject_keys"),
    ({"subject_keys": ["nope"]}, "no \\[columns.nope\\]"),
    ({"subject_keys": ["person_id"], "membership": "maybe"}, "membership"),
    ({"subject_keys": ["person_id"], "period": "fortnight"}, "period"),
    ({"subject_keys": ["person_id"], "max_per_subject": 0}, "max_per_subject"),
    ({"subject_keys": ["person_id"], "claims": {"age": {"operators": ["~"]}}}, "unknown operator"),
    ({"subject_keys": ["person_id"], "claims": {"age": {"granularity": -1}}}, "granularity"),
    ({"subject_keys": ["person_id"], "claims": {"fnlwgt": {}}}, "negative list"),
    ({"subject_keys": ["person_id"], "colour": 1}, "unknown key"),
])
def test_malformed_verify_sections_are_refused(section: Any, match: str) -> None:
    pol = verify_policy()
    pol["verify"] = section
    with pytest.raises(pets.PolicyFormatError, match=match):
        pets.Policy.from_dict(pol)


def test_the_verify_section_round_trips_through_toml_json(tmp_path: Path) -> None:
    p = pets.Policy.from_dict(verify_policy(membership="reveal", period="week"))
    assert pets.Policy.from_json(p.to_json()) == p
    assert p.verify.claims["age"].granularity == 5.0


# ----------------------------------------------------------------------------- quotas
def test_per_subject_quota_counts_every_verifier(holder: pets.Holder) -> None:
    bank = holder.session(BANK, purpose=PURPOSE)
    emp = holder.session("employer", purpose=PURPOSE)
    pid = {"person_id": "P-00001"}
    bank.verify("adult", pid, col("age") >= 30)
    emp.verify("adult", pid, col("education") == "HS-grad")
    bank.verify("adult", {"person_id": "P-77777"}, col("age") >= 30)  # absent: counted too
    bank.verify("adult", pid, col("age") >= 40)
    for s in (bank, emp):
        with pytest.raises(pets.PolicyError) as e:
            s.verify("adult", pid, col("age") >= 50)
        assert e.value.rule == "verify_max_per_subject"
        assert s.verify("adult", pid, col("age") >= 50, explain=True).rule == "verify_max_per_subject"
    # an absent subject is limited the same way (its refusal tells nothing more)
    for _ in range(2):
        bank.verify("adult", {"person_id": "P-77777"}, col("age") >= 30)
    with pytest.raises(pets.PolicyError, match="this subject has reached"):
        bank.verify("adult", {"person_id": "P-77777"}, col("age") >= 30)
    assert holder.audit().verify()


def test_batch_counts_each_row_and_is_refused_whole(holder: pets.Holder) -> None:
    bank = holder.session(BANK, purpose=PURPOSE)
    ids = pd.DataFrame({"person_id": ["P-00001", "P-00002", "P-00001"]})
    b = bank.verify_batch("adult", ids, col("age") >= 30)
    assert list(b.match) == [True, True, True]
    with pytest.raises(pets.PolicyError, match="1 of the subjects") as e:
        bank.verify_batch("adult", ids, col("age") >= 30)  # P-00001 would reach 4
    assert e.value.rule == "verify_max_per_subject"
    # nothing of the refused batch was counted: P-00002 still has 2 claims left
    bank.verify_batch("adult", pd.DataFrame({"person_id": ["P-00002", "P-00002"]}), col("age") >= 30)


def test_per_analyst_quota_and_batch_size(tmp_path: Path, adult: pd.DataFrame) -> None:
    h = make_holder(tmp_path / "h", adult.head(4000), max_per_analyst=5, max_batch=3)
    s = h.session(BANK, purpose=PURPOSE)
    with pytest.raises(pets.PolicyError) as e:
        s.verify_batch("adult", adult[["person_id"]].head(4), col("age") >= 30)
    assert e.value.rule == "verify_max_batch"
    b = s.verify_batch("adult", adult[["person_id"]].head(3), col("age") >= 30)
    assert b.answers_left == 2
    with pytest.raises(pets.PolicyError) as e:
        s.verify_batch("adult", adult[["person_id"]].iloc[3:6], col("age") >= 30)
    assert e.value.rule == "verify_max_per_analyst"
    assert s.verify("adult", {"person_id": "P-00010"}, col("age") >= 30).answers_left == 1
    # another analyst has its own quota
    assert h.session("employer", purpose=PURPOSE).verify(
        "adult", {"person_id": "P-00010"}, col("age") >= 30).answers_left == 4


def test_quotas_are_per_period(holder: pets.Holder, monkeypatch: pytest.MonkeyPatch) -> None:
    s = holder.session(BANK, purpose=PURPOSE)
    pid = {"person_id": "P-00003"}
    monkeypatch.setattr(ledger, "now", lambda: datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc))
    for t in (30, 40, 50):
        s.verify("adult", pid, col("age") >= t)
    with pytest.raises(pets.PolicyError):
        s.verify("adult", pid, col("age") >= 60)
    monkeypatch.setattr(ledger, "now", lambda: datetime(2026, 12, 1, 0, 1, tzinfo=timezone.utc))
    assert s.verify("adult", pid, col("age") >= 60).match is False  # age 53


def test_explain_spends_and_counts_nothing(holder: pets.Holder) -> None:
    s = holder.session(BANK, purpose=PURPOSE)
    n = len(holder.audit())
    for _ in range(5):
        e = s.verify("adult", {"person_id": "P-00001"}, col("age") >= 30, explain=True)
        assert e.allowed and "3 bits per subject" in e.message
    assert len(holder.audit()) == n
    assert list(e.details["column"]) == ["age"]


# ----------------------------------------------------------------------------- audit
def test_every_answer_is_audited_without_the_subject_key(holder: pets.Holder, adult: pd.DataFrame) -> None:
    s = holder.session(BANK, purpose=PURPOSE)
    v = s.verify("adult", {"person_id": "P-00042"}, col("age") >= 30)
    b = s.verify_batch("adult", adult[["person_id"]].head(20), col("age") >= 30)
    recs = {r["id"]: r for r in holder.audit().records()}
    one, many = recs[v.audit_id], recs[b.audit_id]
    assert one["kind"] == many["kind"] == "verify" and one["status"] == "released"
    assert one["subjects"] == 1 and len(one["subject"]) == 32 and many["subjects"] == 20
    assert one["protection"] == {"form": "verify", "keys": ["person_id"], "subjects": 1, "batch": False}
    text = json.dumps(list(recs.values()))
    assert "P-00042" not in text and "P-00001" not in text
    # the ledger rows of the batch are the digests the signed record binds
    con = sqlite3.connect(Path(holder._store.path))
    digests = [d for (d,) in con.execute(
        "SELECT subject FROM verify_claims WHERE audit_id = ? ORDER BY rowid", (b.audit_id,))]
    assert ledger.batch_digest(digests) == many["subjects_digest"]
    assert holder.audit().verify()
    mode = (Path(holder._store.home) / ledger.SECRET_FILE).stat().st_mode & 0o777
    assert mode == 0o600


# ----------------------------------------------------------------------------- attack
def test_binary_search_is_stopped_by_the_per_subject_quota(holder: pets.Holder) -> None:
    """An analyst binary-searching one subject's age gets max_per_subject answers, then
    refusals: 3 bits, as docs/verification.md states."""
    s = holder.session(BANK, purpose=PURPOSE)
    lo, hi, answers = 15, 95, 0  # on the granularity-5 grid
    with pytest.raises(pets.PolicyError) as e:
        while hi - lo > 5:
            mid = (lo + hi) // 2 // 5 * 5
            if s.verify("adult", {"person_id": "P-00000"}, col("age") >= mid).match:
                lo = mid
            else:
                hi = mid
            answers += 1
    assert e.value.rule == "verify_max_per_subject" and answers == 3
    pol = holder._dataset("adult").policy
    assert pol.verify.bits_per_subject(pol)["bound"] == 3.0
    assert hi - lo >= 10  # 80 / 2^3: the age is still one of 10+ values


def test_granularity_bounds_what_any_number_of_claims_reveals(tmp_path: Path, adult: pd.DataFrame) -> None:
    """With an unlimited quota, threshold claims at granularity 10 locate hours-per-week
    only to its decade: the binary search ends on a 10-wide interval, and the finer
    threshold is refused."""
    h = make_holder(tmp_path / "h", adult.head(4000), max_per_subject=1000)
    s = h.session(BANK, purpose=PURPOSE)
    pid = {"person_id": "P-00000"}  # 40 hours
    lo, hi = 0, 100
    while hi - lo > 10:
        mid = (lo + hi) // 2 // 10 * 10
        if mid in (lo, hi):
            break
        if s.verify("adult", pid, col("hours-per-week") >= mid).match:
            lo = mid
        else:
            hi = mid
    assert (lo, hi) == (40, 50)
    with pytest.raises(pets.PolicyError) as e:
        s.verify("adult", pid, col("hours-per-week") >= 45)
    assert e.value.rule == "verify_granularity"
    pol = h._dataset("adult").policy
    bits = pol.verify.bits_per_subject(pol)["columns"]["hours-per-week"]
    assert bits == pytest.approx(math.log2(11))  # bounds [1, 99]: 9 grid points, 10 gaps + missing


# ----------------------------------------------------------------------------- concurrency
LIMIT = 4
WORKERS = 4
EACH = 3


def _verify_in_process(home: str, barrier: Any, results: Any, worker: int) -> None:
    try:
        h = pets.Holder(home)
        s = h.session(BANK if worker % 2 else "employer", purpose=PURPOSE)
        s.verify("adult", {"person_id": "P-01000"}, col("age") >= 30, explain=True)
        barrier.wait(timeout=60)
        ok = refused = 0
        for i in range(EACH):
            try:
                s.verify("adult", {"person_id": "P-00500"}, col("age") >= 20 + 5 * i)
                ok += 1
            except pets.PolicyError as e:
                assert e.rule == "verify_max_per_subject"
                refused += 1
        results.put((worker, ok, refused, None))
    except BaseException as e:  # noqa: BLE001
        results.put((worker, 0, 0, repr(e)))


def test_quotas_hold_under_concurrent_processes(tmp_path: Path, adult: pd.DataFrame) -> None:
    home = tmp_path / "h"
    make_holder(home, adult.head(2000), max_per_subject=LIMIT)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_verify_in_process, args=(str(home), barrier, results, w))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(err is None for *_, err in got), got
    assert sum(ok for _, ok, _, _ in got) == LIMIT
    assert sum(r for _, _, r, _ in got) == WORKERS * EACH - LIMIT
    h = pets.Holder(home)
    recs = [r for r in h.audit().records() if r["kind"] == "verify" and r["status"] == "released"]
    assert len(recs) == LIMIT
    assert h.audit().verify()


def test_composite_subject_keys(tmp_path: Path, adult: pd.DataFrame) -> None:
    """A subject named by two key columns (a household and a member number), alone and
    in a batch large enough for the one-scan path."""
    df = adult.head(1000).drop(columns="person_id").copy()
    df.insert(0, "household", [f"H-{i // 4:04d}" for i in range(len(df))])
    df.insert(1, "member", [i % 4 for i in range(len(df))])
    pol = verify_policy(subject_keys=["household", "member"])
    del pol["columns"]["person_id"]
    pol["columns"]["household"] = {"role": "identifier", "grade": 2}
    pol["columns"]["member"] = {"role": "attribute", "grade": 1}
    h = pets.Holder(tmp_path / "h")
    h.register("adult", df, pol)
    h.grant(BANK, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    s = h.session(BANK, purpose=PURPOSE)
    assert s.verify("adult", {"household": "H-0000", "member": 1}, col("age") >= 45).match  # 50
    assert not s.verify("adult", {"household": "H-0000", "member": 2}, col("age") >= 45).match
    ids = df[["household", "member"]].iloc[::-1].reset_index(drop=True)
    ids.loc[0, "member"] = 9  # nobody
    b = s.verify_batch("adult", ids, col("age") >= 40)
    want = (df["age"].iloc[::-1].reset_index(drop=True) >= 40).to_numpy().copy()  # writable under pandas 3 copy-on-write
    want[0] = False
    assert (b.match.to_numpy() == want).all() and len(b.match) == 1000
