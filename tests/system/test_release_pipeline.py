"""The one release pipeline (issue 9): what an analyst can observe before a charge
depends only on the request, and every form goes the same way.

Real parts: the bundled Adult data in DuckDB, the SQLite ledger and audit log.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import pets
from pets import col
from pets.cost import Cost
from pets.mechanisms import Charge, Compiled, Context, Mechanism, register_mechanism
from pets.protections import Protection
from pets.release import Explanation

from ._util import ANALYST, PURPOSE


# -- an analyst without a grant learns nothing about the dataset ----------------------

@pytest.mark.parametrize("column", ["age", "agee", "fnlwgt", "no_such_column", "workclass"])
def test_without_a_grant_every_request_gets_the_same_refusal(holder, column):
    s = holder.session("mallory", purpose=PURPOSE)
    q = s.table("adult").agg(x=pets.sum(column, bounds=(0, 10)))
    with pytest.raises(pets.PolicyError) as e:
        s.release(q, pets.DP(epsilon=0.1))
    assert e.value.rule == "no_grant" and e.value.column is None
    assert str(e.value) == (
        "analyst 'mallory' has no grant for dataset 'adult' and purpose 'labour-stats'; ask "
        "the holder for one (holder.grant(...), or `pets grant` on the command line)")
    ex = s.explain(q, pets.DP(epsilon=0.1))
    assert (ex.allowed, ex.rule, ex.message, ex.column) == (False, "no_grant", str(e.value), None)
    with pytest.raises(pets.PolicyError) as e2:
        s.release(s.table("adult").select(column), pets.KAnonymity(k=5))
    assert str(e2.value) == str(e.value)
    with pytest.raises(pets.PolicyError) as e3:
        s.sql(f'SELECT SUM("{column}") FROM adult', pets.DP(epsilon=0.1))
    assert str(e3.value) == str(e.value)


# -- k-anonymity: data-dependent failures are counted and say nothing of the rows ------

def _kanon_policy(max_extracts: int | None = None) -> dict[str, Any]:
    cols = {"age": {"role": "quasi_identifier", "grade": 1},
            "wc": {"role": "quasi_identifier", "grade": 1},
            "job": {"role": "sensitive", "grade": 1},
            "sector": {"role": "quasi_identifier", "grade": 1}}
    pol: dict[str, Any] = {"columns": cols, "grades": {"1": {"allow": ["kanon", "dp"]}}}
    if max_extracts is not None:
        pol["dataset"] = {"max_extracts": max_extracts}
    return pol


def _kanon_holder(tmp_path, df: pd.DataFrame, name: str, max_extracts: int | None = None):
    h = pets.Holder(tmp_path / name)
    h.register("d", df, _kanon_policy(max_extracts))
    h.grant(ANALYST, dataset="d", purpose=PURPOSE, epsilon=1.0)
    return h


def _frame(n: int, missing: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "age": [20 + i % 50 for i in range(n)],
        "wc": [None if i < missing else [1.0, 2.0, 3.0][i % 3] for i in range(n)],
        "sector": [["a", "b", "c"][i % 3] for i in range(n)],
        "job": [["x", "y", "z"][i % 3] for i in range(n)],
    })


def _failure(h: pets.Holder, q_of, prot) -> tuple[str, str]:
    s = h.session(ANALYST, purpose=PURPOSE)
    with pytest.raises(pets.PetsError) as e:
        s.release(q_of(s), prot)
    return type(e.value).__name__, str(e.value)


@pytest.mark.parametrize("case", ["k_larger_than_the_rows", "missing_values"])
def test_kanon_failures_on_neighbouring_tables_say_the_same_and_are_counted(tmp_path, case):
    if case == "k_larger_than_the_rows":
        d, d1 = _frame(50), _frame(51)
        q_of = lambda s: s.table("d").filter(col("age") >= 20).select("age", "wc", "job")  # noqa: E731
        prot = pets.KAnonymity(k=10_000, algorithm="mondrian")
    else:
        d, d1 = _frame(200, missing=25), _frame(200, missing=26)
        q_of = lambda s: s.table("d").select("age", "wc", "job")  # noqa: E731
        prot = pets.KAnonymity(k=2, algorithm="mondrian")
    h0, h1 = _kanon_holder(tmp_path, d, "d0", 2), _kanon_holder(tmp_path, d1, "d1", 2)
    f0, f1 = _failure(h0, q_of, prot), _failure(h1, q_of, prot)
    # the audit id differs only if the logs differ; both are the third record here
    assert f0 == f1
    assert f0[0] == "QueryError" and "50" not in f0[1] and "25" not in f0[1]
    assert f0[1].startswith(f"no k={prot.k} extract of these columns exists")
    for h in (h0, h1):
        rec = h.audit().records()[-1]
        assert (rec["kind"], rec["status"], rec["failed"]) == ("kanon", "released", True)
    # failures count against max_extracts like extracts
    _failure(h0, q_of, prot)
    s = h0.session(ANALYST, purpose=PURPOSE)
    with pytest.raises(pets.PolicyError) as e:
        s.release(q_of(s), prot)
    assert e.value.rule == "max_extracts"


def test_kanon_explain_spends_nothing_and_names_the_treatments(tmp_path):
    h = _kanon_holder(tmp_path, _frame(100), "h", 1)
    s = h.session(ANALYST, purpose=PURPOSE)
    n_records = len(h.audit())
    ex = s.explain(s.table("d").select("age", "wc", "job"), pets.KAnonymity(k=2, algorithm="mondrian"))
    assert ex.allowed and ex.cost == Cost()
    assert dict(zip(ex.details["column"], ex.details["treatment"])) == {
        "age": "generalised", "wc": "generalised", "job": "sensitive"}
    assert len(h.audit()) == n_records


def test_an_optimal_extract_of_a_column_without_hierarchy_is_refused_before_the_data(tmp_path):
    h = _kanon_holder(tmp_path, _frame(100), "h")
    s = h.session(ANALYST, purpose=PURPOSE)
    with pytest.raises(pets.PolicyError, match="'age' has no hierarchy in the policy") as e:
        s.release(s.table("d").select("age", "job"), pets.KAnonymity(k=2))
    assert e.value.rule == "hierarchy"
    with pytest.raises(pets.PolicyError, match="'sector' is not numeric and has no hierarchy"):
        s.release(s.table("d").select("sector", "job"), pets.KAnonymity(k=2, algorithm="mondrian"))


# -- release records name the policy they were released under -------------------------

def test_release_and_refusal_records_name_the_policy_version(holder, session):
    from pets.pipeline import policy_version

    r = session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.1))
    with pytest.raises(pets.PolicyError):
        session.release(session.table("adult").agg(w=pets.sum("fnlwgt", bounds=(0, 1))),
                        pets.DP(epsilon=0.1))
    want = policy_version(holder.policy("adult"))
    recs = {x["id"]: x for x in holder.audit().records()}
    assert recs[r.audit_id]["policy_version"] == want
    assert recs[max(recs)]["status"] == "refused" and recs[max(recs)]["policy_version"] == want
    assert len(want) == 64


# -- a new release form is one mechanism, not a branch in the session -----------------

class _Rows(Protection):
    """A toy protection for the test: a noise-free row count charged at a fixed ε."""

    form = "dp"

    def to_dict(self) -> dict[str, Any]:
        return {"form": "dp", "toy": "rows"}


class _CompiledRows(Compiled):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.charge = Charge(cost=Cost(0.25))

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        return Explanation(allowed=True, cost=charged, remaining=remaining)

    def record(self) -> dict[str, Any]:
        return {"kind": "dp"}

    def run(self, engine: Any, source: Any) -> Any:
        return len(engine.fetch(source, ("age",), self.ctx.plan.filters))

    def finish(self, exact: Any) -> Any:
        if exact > 30_000:
            raise ValueError(f"{exact} rows")  # a data-dependent failure
        return exact

    def result(self, payload: Any, audit_id: int, spent: Cost, repeat_of: int | None) -> Any:
        return (payload, audit_id, spent)


class _RowsMechanism(Mechanism):
    protection_type = _Rows

    def form(self, protection: Any) -> str:
        return "dp"

    def compile(self, ctx: Context) -> Compiled:
        return _CompiledRows(ctx)


def test_a_new_mechanism_goes_through_the_same_checks_charge_and_audit(holder, session):
    register_mechanism(_RowsMechanism())
    q = session.table("adult").filter(col("age") >= 60)
    before = session.remaining("adult").epsilon
    ex = session.explain(q, _Rows())
    assert ex.allowed and ex.cost == Cost(0.25)
    n, audit_id, spent = session.release(q, _Rows())
    assert n > 0 and spent == Cost(0.25)
    assert session.remaining("adult").epsilon == pytest.approx(before - 0.25)
    # the same policy rules apply to it: the negative list, before any charge
    with pytest.raises(pets.PolicyError) as e:
        session.release(session.table("adult").filter(col("fnlwgt") > 0), _Rows())
    assert e.value.rule == "negative_list"
    # a failure in the mechanism is charged, audited, and its message is fixed
    with pytest.raises(pets.DataError) as e2:
        session.release(session.table("adult"), _Rows())
    assert "rows" not in str(e2.value) and "charged and nothing was released" in str(e2.value)
    assert session.remaining("adult").epsilon == pytest.approx(before - 0.5)
    rec = holder.audit().records()[-1]
    assert rec["status"] == "released" and rec["failed"] is True
    assert holder.audit().verify()


# -- declared column types: releases do not follow the type the rows suggest ----------

def _typed(t: str | None) -> dict[str, Any]:
    x: dict[str, Any] = {"role": "attribute", "grade": 1, "bounds": [0, 100]}
    if t is not None:
        x["type"] = t
    return {"columns": {"x": x}, "grades": {"1": {"allow": ["dp"]}}}


def test_a_declared_type_makes_explain_independent_of_one_fractional_value(tmp_path):
    ints = pd.DataFrame({"x": list(range(100))})
    one_frac = pd.concat([ints, pd.DataFrame({"x": [42.5]})], ignore_index=True)
    seen = {}
    for t in (None, "float"):
        for name, df in (("ints", ints), ("frac", one_frac)):
            h = pets.Holder(tmp_path / f"{t}-{name}")
            h.register("t", df, _typed(t))
            h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=1.0)
            s = h.session(ANALYST, purpose=PURPOSE)
            e = s.explain(s.table("t").agg(total=pets.sum("x")), pets.DP(epsilon=0.5))
            seen[t, name] = e.details.to_json()  # every number explain states, unrounded
    assert seen[None, "ints"] != seen[None, "frac"]  # inferred: the residual the docs name
    assert seen["float", "ints"] == seen["float", "frac"]


def test_registration_refuses_data_that_does_not_fit_the_declared_type(tmp_path):
    h = pets.Holder(tmp_path / "h")
    df = pd.DataFrame({"x": [1.0, 2.5]})
    with pytest.raises(pets.PolicyFormatError, match=r'columns\.x\.type: .*holds fractional values; declare type = "float"'):
        h.register("t", df, _typed("int"))
    with pytest.raises(pets.PolicyFormatError, match=r"columns\.x\.type: type 'integer' .*is not one of int, float"):
        h.register("t", df, _typed("integer"))
    assert h.datasets() == []
    h.register("t", pd.DataFrame({"x": ["a", "b"]}),
               {"columns": {"x": {"role": "attribute", "grade": 1}}, "grades": {"1": {"allow": ["dp"]}}})
    with pytest.raises(pets.PolicyFormatError, match=r"columns\.x\.type: column 'x' is not numeric"):
        h.register("t", pd.DataFrame({"x": ["a", "b"]}),
                   {"columns": {"x": {"role": "attribute", "grade": 1, "type": "int"}},
                    "grades": {"1": {"allow": ["dp"]}}}, replace=True)


def test_a_request_too_large_to_audit_is_refused_before_anything_is_written(holder, session):
    n = len(holder.audit())
    huge = session.table("adult").filter(col("occupation").isin([f"x{i:07d}" for i in range(400_000)]))
    with pytest.raises(pets.QueryError, match=r"the query is too large: [\d,]+ bytes as JSON, at most 4,194,304"):
        session.release(huge.agg(n=pets.count()), pets.DP(epsilon=0.1))
    stranger = holder.session("mallory", purpose=PURPOSE)
    with pytest.raises(pets.QueryError, match="the query is too large"):
        stranger.release(huge.agg(n=pets.count()), pets.DP(epsilon=0.1))
    assert len(holder.audit()) == n
