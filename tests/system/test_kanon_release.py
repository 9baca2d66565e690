"""k-anonymous extracts through the session: ``s.release(q.select(...), pets.KAnonymity(...))``.

Real parts only: DuckDB reads the rows, SQLite keeps the audit log and the extract
count, pyCANON (written by others) checks every released extract for k and l (and t).
On the bundled Adult data with its example policy, and on a DataFrame registered with a
dict policy whose hierarchies are built with ``pets.anon.Hierarchy`` builders and
written to CSV files.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _crosscheck import anonymity

import pets
from pets import col
from pets.anon import Hierarchy, anonymize, load_hierarchies

from ._util import ANALYST, PURPOSE, audit_text

ADULT_ROWS = 32_561
ADULT_QIS = ["age", "sex", "race", "education", "marital-status"]
EXAMPLE_HIERARCHIES = Path(pets.example_policy()).parent / "hierarchies"
EXAMPLE = pets.KAnonymity(k=5, l=2, sensitive="relationship", max_suppression=0.02)


def example_query(s: pets.Session):
    return s.table("adult").select(*ADULT_QIS, "relationship")


def reset(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)


def refusal(h: pets.Holder) -> dict[str, Any]:
    """The newest audit record, which must be a refusal."""
    rec = h.audit().records()[-1]
    assert rec["status"] == "refused"
    return rec


# --------------------------------------------------------------- a dict policy


EDU = ["none", "primary", "secondary", "bachelor", "master", "phd"]


def med_frame(n: int = 2000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    return pd.DataFrame({
        "pid": [f"PID-{i:06d}" for i in range(n)],
        "age": age,
        "zip": [f"{z:05d}" for z in rng.integers(10000, 10400, n)],
        "edu": rng.choice(EDU, n),
        "born": (pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 40, n), unit="D")),
        "diagnosis": rng.choice(["dx-flu", "dx-cold", "dx-asthma", "dx-diabetes", "dx-ulcer"], n),
        "income": (age * 50 + rng.integers(0, 4000, n)) // 250 * 250,
        "secret": [f"SECRET{i:06d}Z" for i in range(n)],
        "notes": [f"NOTE{i:06d}Q" for i in range(n)],
    })


def med_policy(folder: Path, df: pd.DataFrame, **dataset: Any) -> dict[str, Any]:
    """Hierarchies built by the builders, written as CSV files and named by path."""
    folder.mkdir(parents=True, exist_ok=True)
    Hierarchy.intervals(df["age"].unique(), [5, 10, 20]).to_csv(folder / "age.csv")
    Hierarchy.masking(df["zip"].unique()).to_csv(folder / "zip.csv")
    Hierarchy.ordered(EDU, [2, 6]).to_csv(folder / "edu.csv")
    Hierarchy.dates(df["born"].unique(), levels=("month", "year", "decade")).to_csv(folder / "born.csv")
    return {
        "negative_list": ["notes"],
        "dataset": dataset,
        "columns": {
            "pid": {"role": "identifier", "grade": 1},
            "age": {"role": "quasi_identifier", "grade": 2, "hierarchy": str(folder / "age.csv")},
            "zip": {"role": "quasi_identifier", "grade": 2, "hierarchy": str(folder / "zip.csv")},
            "edu": {"role": "quasi_identifier", "grade": 1, "hierarchy": str(folder / "edu.csv")},
            "born": {"role": "quasi_identifier", "grade": 2, "hierarchy": str(folder / "born.csv")},
            "diagnosis": {"role": "sensitive", "grade": 2},
            "income": {"role": "sensitive", "grade": 2},
            "secret": {"role": "attribute", "grade": 3},
            "notes": {"role": "attribute", "grade": 1},
        },
        "grades": {
            "1": {"allow": ["dp", "kanon"]},
            "2": {"allow": ["dp", "kanon"], "min_k": 4},
            "3": {"allow": ["dp"]},
        },
    }


@pytest.fixture
def med(tmp_path: Path) -> tuple[pets.Holder, pd.DataFrame]:
    df = med_frame()
    h = pets.Holder(tmp_path / "home")
    h.register("med", df, med_policy(tmp_path / "hier", df, max_extracts=2))
    h.grant(ANALYST, dataset="med", purpose=PURPOSE, epsilon=1.0)
    return h, df


# ------------------------------------------------------ released extracts, pyCANON


def test_adult_extract_passes_pycanon_and_is_recorded(holder: pets.Holder, session: pets.Session,
                                                        adult_df: pd.DataFrame) -> None:
    x = session.release(example_query(session), EXAMPLE)
    out = reset(x.df)
    assert list(out.columns) == ADULT_QIS + ["relationship"]
    assert anonymity.k_anonymity(out, ADULT_QIS) >= 5
    assert anonymity.l_diversity(out, ADULT_QIS, ["relationship"]) >= 2
    assert len(out) + x.suppressed == ADULT_ROWS
    assert 0 < x.suppressed <= int(0.02 * ADULT_ROWS)
    assert x.classes == out.groupby(ADULT_QIS).ngroups
    assert x.metrics["min_class_size"] >= 5 and x.metrics["prosecutor_risk_max"] <= 0.2
    assert x.models == ["5-anonymity", "distinct 2-diversity of relationship"]
    assert x.extracts_left == 2
    assert x.spent == pets.Cost()
    # the released labels are the policy's hierarchies at the reported levels
    H = load_hierarchies(EXAMPLE_HIERARCHIES, ADULT_QIS)
    assert set(x.transformation) == set(ADULT_QIS)
    for c in ADULT_QIS:
        assert set(out[c]) <= set(H[c].labels(x.transformation[c])), c
    # the same answer as anonymize() on an independent pandas reading of the data
    ref = anonymize(adult_df[ADULT_QIS + ["relationship"]], ADULT_QIS, H, k=5, l=2,
                    sensitive="relationship", max_suppression=0.02)
    assert ref.transformation == x.transformation
    assert ref.suppressed == x.suppressed and ref.classes == x.classes
    # recorded: an audit record of kind 'kanon', status 'released', no budget spent
    rec = holder.audit().records()[-1]
    assert rec["id"] == x.audit_id
    assert (rec["kind"], rec["status"], rec["analyst"], rec["dataset"], rec["purpose"]) == \
        ("kanon", "released", ANALYST, "adult", PURPOSE)
    assert rec["transformation"] == x.transformation
    assert (rec["rows"], rec["suppressed"], rec["classes"]) == (len(out), x.suppressed, x.classes)
    assert rec["protection"]["k"] == 5 and rec["protection"]["sensitive"] == "relationship"
    assert session.remaining("adult") == pets.Cost(2.0)
    assert holder.audit().verify()


def test_filters_restrict_the_rows_before_anonymising(session: pets.Session, adult_df: pd.DataFrame) -> None:
    q = (session.table("adult").filter((col("age") >= 40) & (col("sex") == "Female"))
         .select("age", "race", "education", "marital-status"))
    x = session.release(q, pets.KAnonymity(k=5, max_suppression=0.05))
    passing = int(((adult_df["age"] >= 40) & (adult_df["sex"] == "Female")).sum())
    assert passing == 4_209  # the filter keeps a small part of the 32,561 rows
    assert len(x.df) + x.suppressed == passing
    assert x.suppressed <= int(0.05 * passing)
    out = reset(x.df)
    assert anonymity.k_anonymity(out, ["age", "race", "education", "marital-status"]) >= 5
    # the ages left are all generalisations of ages >= 40
    H = load_hierarchies(EXAMPLE_HIERARCHIES, ["age"])["age"]
    allowed = set(H.generalize(pd.Series(range(40, 91)), x.transformation["age"]))
    assert set(out["age"]) <= allowed


def test_suppressed_rows_are_left_out_of_df(session: pets.Session, adult_df: pd.DataFrame) -> None:
    q = session.table("adult").filter(col("education") == "Bachelors").select(*ADULT_QIS)
    x = session.release(q, pets.KAnonymity(k=10, max_suppression=0.05))
    passing = int((adult_df["education"] == "Bachelors").sum())
    assert x.suppressed > 0
    assert len(x.df) + x.suppressed == passing
    sizes = x.df.groupby(ADULT_QIS).size()
    assert sizes.min() >= 10 and int(sizes.sum()) == len(x.df)
    assert set(x.df["education"]) == {"Bachelors"} or x.transformation["education"] > 0
    assert x.df.notna().all().all()


def test_dict_policy_with_built_hierarchies_passes_pycanon(med) -> None:
    h, df = med
    s = h.session(ANALYST, purpose=PURPOSE)
    qis = ["age", "zip", "edu", "born"]
    x = s.release(s.table("med").select(*qis, "diagnosis"), pets.KAnonymity(k=5, l=3, max_suppression=0.05))
    out = reset(x.df)
    # the policy's sensitive column is found without naming it
    assert x.models == ["5-anonymity", "distinct 3-diversity of diagnosis"]
    assert anonymity.k_anonymity(out, qis) >= 5
    assert anonymity.l_diversity(out, qis, ["diagnosis"]) >= 3
    assert len(out) + x.suppressed == len(df)
    assert set(x.transformation) == set(qis)
    born = Hierarchy.from_csv(Path(h.policy("med").columns["born"].hierarchy))
    assert set(out["born"]) <= set(born.labels(x.transformation["born"]))
    assert x.extracts_left == 1

    # ordered t-closeness of a numeric sensitive column, on the rows a filter keeps
    y = s.release(s.table("med").filter(col("age") < 60).select("age", "zip", "income"),
                  pets.KAnonymity(k=4, t=0.25))
    out = reset(y.df)
    assert y.models == ["4-anonymity", "0.25-closeness (ordered distance) of income"]
    assert len(out) + y.suppressed == int((df["age"] < 60).sum())
    assert anonymity.k_anonymity(out, ["age", "zip"]) >= 4
    assert anonymity.t_closeness(out, ["age", "zip"], ["income"]) <= 0.25 + 1e-12
    assert y.extracts_left == 0


def test_mondrian_extract_passes_pycanon(med) -> None:
    h, df = med
    s = h.session(ANALYST, purpose=PURPOSE)
    x = s.release(s.table("med").select("age", "zip", "edu", "diagnosis"),
                  pets.KAnonymity(k=6, l=2, algorithm="mondrian"))
    out = reset(x.df)
    assert x.transformation == "mondrian"
    assert len(out) == len(df) and x.suppressed == 0
    assert anonymity.k_anonymity(out, ["age", "zip", "edu"]) >= 6
    assert anonymity.l_diversity(out, ["age", "zip", "edu"], ["diagnosis"]) >= 2


# ------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "columns,k,rule,column,message",
    [
        (("age", "sex", "occupation"), 5, "grade", "occupation",
         "column 'occupation' is grade 3, which does not allow 'kanon' releases (grade 3 allows: dp, he, model, synthetic, verify)"),
        (("age", "sex"), 3, "min_k", "age",
         "k=3 is below the policy's minimum k of 5 for column 'age' (grade 2); ask for k >= 5"),
        (("age", "fnlwgt"), 5, "negative_list", "fnlwgt",
         "column 'fnlwgt' is on the dataset's negative list and may never appear in a query"),
    ],
    ids=["grade", "min_k", "negative_list"],
)
def test_policy_refusals_on_adult(holder: pets.Holder, session: pets.Session, columns, k, rule, column,
                                  message) -> None:
    q = session.table("adult").select(*columns)
    before = len(holder.audit())
    e = session.explain(q, pets.KAnonymity(k=k))
    assert (e.allowed, e.rule, e.column) == (False, rule, column)
    assert message in e.message
    assert len(holder.audit()) == before  # explain records nothing
    with pytest.raises(pets.PolicyError) as ei:
        session.release(q, pets.KAnonymity(k=k))
    assert (ei.value.rule, ei.value.column) == (rule, column)
    assert message in str(ei.value)
    rec = refusal(holder)
    assert (rec["kind"], rec["rule"], rec["column"], rec["analyst"]) == ("kanon", rule, column, ANALYST)
    assert len(holder.audit()) == before + 1
    # a refusal is not an extract: all three are still there
    x = session.release(example_query(session), EXAMPLE)
    assert x.extracts_left == 2
    assert holder.audit().verify()


def test_min_k_refusal_names_what_is_allowed(session: pets.Session) -> None:
    with pytest.raises(pets.PolicyError) as ei:
        session.release(session.table("adult").select("age", "sex"), pets.KAnonymity(k=4))
    assert ei.value.allowed == 5
    # grade-1 columns alone have no minimum: k=2 is fine
    x = session.release(session.table("adult").select("sex", "education"), pets.KAnonymity(k=2))
    assert x.transformation == {"sex": 0, "education": 0} and x.suppressed == 0


def test_identifier_is_never_released(med) -> None:
    h, _ = med
    s = h.session(ANALYST, purpose=PURPOSE)
    q = s.table("med").select("pid", "age", "zip")
    e = s.explain(q, pets.KAnonymity(k=5))
    assert (e.allowed, e.rule, e.column) == (False, "identifier", "pid")
    with pytest.raises(pets.PolicyError, match="column 'pid' is an identifier and is never released") as ei:
        s.release(q, pets.KAnonymity(k=5))
    assert (ei.value.rule, ei.value.column) == ("identifier", "pid")
    rec = refusal(h)
    assert (rec["rule"], rec["column"]) == ("identifier", "pid")
    # the grade, the negative list and min_k apply to a dict policy just the same
    for cols, k, rule, column in [(("age", "secret"), 5, "grade", "secret"),
                                  (("age", "notes"), 5, "negative_list", "notes"),
                                  (("edu", "born"), 3, "min_k", "born")]:
        with pytest.raises(pets.PolicyError) as ei:
            s.release(s.table("med").select(*cols), pets.KAnonymity(k=k))
        assert (ei.value.rule, ei.value.column) == (rule, column)
    assert "PID-" not in audit_text(h)


def test_no_grant_is_refused_and_recorded(holder: pets.Holder) -> None:
    s = holder.session("mallory", purpose=PURPOSE)
    q = example_query(s)
    e = s.explain(q, EXAMPLE)
    assert (e.allowed, e.rule) == (False, "no_grant")
    with pytest.raises(pets.PolicyError, match="analyst 'mallory' has no grant for dataset 'adult'") as ei:
        s.release(q, EXAMPLE)
    assert ei.value.rule == "no_grant"
    rec = refusal(holder)
    assert (rec["analyst"], rec["kind"], rec["rule"]) == ("mallory", "kanon", "no_grant")
    assert holder.audit().records(analyst="mallory", status="released") == []


def test_a_quasi_identifier_cannot_be_released_raw_by_calling_it_sensitive(med) -> None:
    h, _ = med
    s = h.session(ANALYST, purpose=PURPOSE)
    q = s.table("med").select("age", "zip", "edu")
    try:
        x = s.release(q, pets.KAnonymity(k=5, sensitive="zip"))
    except (pets.PolicyError, pets.QueryError) as e:
        assert "zip" in str(e)
        return
    assert anonymity.k_anonymity(reset(x.df), ["age", "zip", "edu"]) >= 5


# -------------------------------------------------------------- explain records nothing


def test_explain_an_allowed_extract_records_nothing(holder: pets.Holder, session: pets.Session) -> None:
    before = (len(holder.audit()), holder.audit().head())
    e = session.explain(example_query(session), EXAMPLE)
    assert e.allowed is True and e.rule is None and e.message is None
    assert e.cost == pets.Cost()
    treat = dict(zip(e.details["column"], e.details["treatment"]))
    assert treat == {**{c: "generalised" for c in ADULT_QIS}, "relationship": "sensitive"}
    assert (len(holder.audit()), holder.audit().head()) == before
    x = session.release(example_query(session), EXAMPLE)
    assert x.extracts_left == 2  # explain did not count as an extract


# ----------------------------------------------------------------- extracts are counted


def test_max_extracts_per_analyst_and_dataset(holder: pets.Holder, session: pets.Session, tmp_path: Path) -> None:
    holder.grant("bob", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    holder.grant(ANALYST, dataset="adult", purpose="other-purpose", epsilon=1.0)
    holder.register("adult2", pets.example_data(), pets.example_policy())
    holder.grant(ANALYST, dataset="adult2", purpose=PURPOSE, epsilon=1.0)
    q = example_query(session)
    lefts = [session.release(q, EXAMPLE).extracts_left for _ in range(3)]
    assert lefts == [2, 1, 0]
    with pytest.raises(pets.PolicyError) as ei:
        session.release(q, EXAMPLE)
    assert ei.value.rule == "max_extracts" and ei.value.allowed == 3
    assert "has had 3 of the 3 kanon extracts the policy allows from dataset 'adult'" in str(ei.value)
    # counted per analyst and dataset: not reset by another purpose ...
    other = holder.session(ANALYST, purpose="other-purpose")
    with pytest.raises(pets.PolicyError) as ei:
        other.release(example_query(other), EXAMPLE)
    assert ei.value.rule == "max_extracts"
    # ... but another analyst, and another dataset, still can
    bob = holder.session("bob", purpose=PURPOSE)
    assert bob.release(example_query(bob), EXAMPLE).extracts_left == 2
    assert session.release(session.table("adult2").select(*ADULT_QIS), pets.KAnonymity(k=5)).extracts_left == 2

    log = holder.audit()
    released = log.records(analyst=ANALYST, dataset="adult", kind="kanon", status="released")
    refused = log.records(analyst=ANALYST, dataset="adult", kind="kanon", status="refused")
    assert len(released) == 3
    assert [r["rule"] for r in refused] == ["max_extracts", "max_extracts"]
    assert [r["purpose"] for r in refused] == [PURPOSE, "other-purpose"]
    assert len(log.records(analyst="bob", kind="kanon", status="released")) == 1
    assert len(log.records(dataset="adult2", kind="kanon", status="released")) == 1
    assert log.verify()
    # a second Holder on the same home (a restart) keeps the count
    again = pets.Holder(holder.home).session(ANALYST, purpose=PURPOSE)
    with pytest.raises(pets.PolicyError) as ei:
        again.release(example_query(again), EXAMPLE)
    assert ei.value.rule == "max_extracts"


def test_explain_predicts_the_max_extracts_refusal(holder: pets.Holder, session: pets.Session) -> None:
    q = example_query(session)
    for _ in range(3):
        session.release(q, EXAMPLE)
    before = len(holder.audit())
    e = session.explain(q, EXAMPLE)
    assert len(holder.audit()) == before
    assert (e.allowed, e.rule) == (False, "max_extracts")


# --------------------------------------------------------------- concurrency


PROCESSES = 3
THREADS = 2


def _extracts_in_process(home: str, barrier: Any, results: Any) -> None:
    """Spawned worker: its own Holder; THREADS threads each ask one extract once every
    worker is ready."""
    try:
        h = pets.Holder(home)
        s = h.session(ANALYST, purpose=PURPOSE)
        q = s.table("med").select("age", "zip", "edu")
        prot = pets.KAnonymity(k=5, max_suppression=0.05)
        assert s.explain(q, prot).allowed  # warm up before the race
        barrier.wait(timeout=120)
        out: list[Any] = []
        lock = threading.Lock()

        def one() -> None:
            try:
                x = s.release(q, prot)
                r: tuple[Any, ...] = ("ok", x.audit_id, len(x.df) + x.suppressed)
            except pets.PolicyError as e:
                r = ("refused", e.rule, 0)
            except BaseException:  # noqa: BLE001 - reported to the parent
                r = ("error", traceback.format_exc(), 0)
            with lock:
                out.append(r)

        threads = [threading.Thread(target=one) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        results.put(out)
    except BaseException:  # noqa: BLE001 - report, do not hang the parent
        results.put([("error", traceback.format_exc(), 0)])


def test_concurrent_extracts_from_three_processes_respect_max_extracts(med) -> None:
    h, df = med
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_extracts_in_process, args=(str(h.home), barrier, results))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        out = [r for _ in procs for r in results.get(timeout=180)]
    finally:
        for p in procs:
            p.join(timeout=60)
    errors = [r[1] for r in out if r[0] == "error"]
    assert not errors, errors[0]
    assert all(p.exitcode == 0 for p in procs)
    assert len(out) == PROCESSES * THREADS == 6
    ok = [r for r in out if r[0] == "ok"]
    assert len(ok) == 2
    assert all(r[2] == len(df) for r in ok)
    assert sorted(r[1] for r in out if r[0] == "refused") == ["max_extracts"] * 4
    log = h.audit()
    released = log.records(kind="kanon", status="released")
    refused = log.records(kind="kanon", status="refused")
    assert sorted(r["id"] for r in released) == sorted(r[1] for r in ok)
    assert [r["rule"] for r in refused] == ["max_extracts"] * 4
    assert log.verify()


# -------------------------------------------------------------- nothing raw in the log


def test_raw_values_of_unselected_columns_never_reach_the_audit_log(med) -> None:
    h, _ = med
    s = h.session(ANALYST, purpose=PURPOSE)
    # a filter on an unselected column, a release, and refusals
    s.release(s.table("med").filter(col("income") >= 2001).select("age", "zip", "edu"),
              pets.KAnonymity(k=5, max_suppression=0.05))
    for cols in (("age", "secret"), ("age", "notes"), ("pid", "age")):
        with pytest.raises(pets.PolicyError):
            s.release(s.table("med").select(*cols), pets.KAnonymity(k=5))
    text = audit_text(h)
    assert len(h.audit().records(kind="kanon")) == 4
    for token in ("SECRET", "NOTE0", "PID-", "dx-"):
        assert token not in text, token
    # the plan names the columns and the analyst's own literal, nothing else
    rec = h.audit().records(status="released")[0]
    assert rec["plan"]["select"] == ["age", "zip", "edu"]
    assert json.dumps(rec["plan"]["filters"]) == '[{"left": {"col": "income"}, "op": ">=", "right": {"lit": 2001}}]'


def test_a_value_missing_from_the_policy_hierarchy_is_not_shown_to_the_analyst(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"zip": ["10001", "10002", "SECRET9"] * 4, "sex": ["F", "M", "F"] * 4})
    hz = pets.anon.Hierarchy.from_dict({"10001": ["1000*", "*"], "10002": ["1000*", "*"]}, name="zip")
    hs = pets.anon.Hierarchy.from_dict({"F": ["*"], "M": ["*"]}, name="sex")
    hz.to_csv(tmp_path / "zip.csv")
    hs.to_csv(tmp_path / "sex.csv")
    policy = {
        "columns": {
            "zip": {"role": "quasi_identifier", "grade": 1, "hierarchy": str(tmp_path / "zip.csv")},
            "sex": {"role": "quasi_identifier", "grade": 1, "hierarchy": str(tmp_path / "sex.csv")},
        },
        "grades": {"1": {"allow": ["kanon"]}},
    }
    h = pets.Holder(tmp_path / "home")
    # the holder is warned at registration (without the value); the analyst never sees it
    with pytest.warns(UserWarning, match=r"columns\.zip\.hierarchy: some values of "
                      r"column 'zip' in the data have no leaf in .*zip\.csv") as w:
        h.register("d", df, policy)
    assert all("SECRET9" not in str(x.message) for x in w)
    # every extract with the column then fails after its count, with a message fixed by
    # the request (never the value, nor the cause)
    h.grant("ann", dataset="d", purpose="p", epsilon=1.0)
    s = h.session("ann", purpose="p")
    with pytest.raises(pets.QueryError, match=r"no k=2 extract of these columns exists") as e2:
        s.release(s.table("d").select("zip", "sex"), pets.KAnonymity(k=2))
    assert "SECRET9" not in str(e2.value) and "zip" not in str(e2.value)
    assert "SECRET9" not in str(h.audit().records())
    rec = h.audit().records()[-1]
    assert rec["kind"] == "kanon" and rec["status"] == "released" and rec["failed"] is True
