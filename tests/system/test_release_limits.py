"""Limits decided before looking at the data (issue 9, items 5 and 6).

A refusal an analyst can observe must not depend on the data, and must come before any
charge or engine work: a cap on the cells of one DP release (``[dataset] max_cells``),
and 64-bit overflow of the exact aggregates decided from the bounds and the rows the
holder says the table may have (``[dataset] max_rows``), never from the rows it has.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets
from pets.dp.aggregate import EXACT_LIMIT, compile_dp
from pets.errors import DataError, PolicyError
from pets.policy import DEFAULT_MAX_CELLS, DEFAULT_MAX_ROWS, Policy

from ._util import ANALYST, PURPOSE, column, policy, snapshot


def _holder(tmp_path: Path, df: pd.DataFrame, pol: dict, epsilon: float = 10.0) -> pets.Holder:
    h = pets.Holder(tmp_path / "home")
    h.register("t", df, pol)
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=epsilon)
    return h


# =====================================================================================
# max_cells
# =====================================================================================


@pytest.fixture
def four_columns(tmp_path: Path) -> pets.Holder:
    df = pd.DataFrame({c: np.arange(8) for c in "abcd"})
    return _holder(tmp_path, df, policy({c: column() for c in "abcd"}))


def test_the_cell_product_is_computed_in_python_integers_and_refused_before_any_charge(four_columns):
    """Four columns of 2^16 public keys: 2^64 cells, which wrapped to 0 in int64 (the
    process then died with SIGSEGV). Refused by the cell limit, charging nothing."""
    h = four_columns
    s = h.session(ANALYST, purpose=PURPOSE)
    keys = list(range(2**16))
    q = s.table("t")
    for c in "abcd":
        q = q.group_by(c, keys=keys)
    q = q.agg(n=pets.count())
    e = s.explain(q, pets.DP(epsilon=1.0))
    assert (e.allowed, e.rule) == (False, "max_cells")
    assert f"{2**64:,} cells (65536 × 65536 × 65536 × 65536 keys)" in e.message
    assert f"limit of {DEFAULT_MAX_CELLS:,} cells ([dataset] max_cells)" in e.message
    before = snapshot(h, s)
    with pytest.raises(PolicyError, match="max_cells") as err:
        s.release(q, pets.DP(epsilon=1.0))
    assert (err.value.rule, err.value.allowed) == ("max_cells", DEFAULT_MAX_CELLS)
    assert s.remaining() == before.remaining[0]


def test_ten_thousand_by_ten_thousand_keys_are_refused_before_the_engine_runs(four_columns, monkeypatch):
    h = four_columns
    s = h.session(ANALYST, purpose=PURPOSE)
    ran = []
    monkeypatch.setattr(h._engine, "aggregate", lambda *a, **k: ran.append(1))
    q = (s.table("t").group_by("a", keys=list(range(10_000))).group_by("b", keys=list(range(10_000)))
         .agg(n=pets.count()))
    left = s.remaining()
    with pytest.raises(PolicyError) as err:
        s.release(q, pets.DP(epsilon=1.0))
    assert err.value.rule == "max_cells" and "100,000,000 cells" in str(err.value)
    assert ran == [] and s.remaining() == left


def test_histogram_bins_count_as_cells_and_the_holder_sets_the_limit(tmp_path: Path):
    df = pd.DataFrame({"a": np.arange(20) % 4, "x": np.arange(20)})
    pol = policy({"a": column(keys=[0, 1, 2, 3]), "x": column(bounds=[0, 20])},
                 dataset={"max_cells": 40})
    h = _holder(tmp_path, df, pol)
    s = h.session(ANALYST, purpose=PURPOSE)
    ok = s.table("t").group_by("a").agg(h=pets.histogram("x", bins=10))  # 4 × 10 = 40
    assert s.explain(ok, pets.DP(epsilon=1.0)).allowed
    s.release(ok, pets.DP(epsilon=1.0))
    big = s.table("t").group_by("a").agg(h=pets.histogram("x", bins=11))  # 44 > 40
    e = s.explain(big, pets.DP(epsilon=1.0))
    assert (e.allowed, e.rule) == (False, "max_cells")
    assert "44 cells (4 keys × 11 bins)" in e.message and "limit of 40 cells" in e.message


# =====================================================================================
# max_rows: overflow decided before looking at the data
# =====================================================================================


def _big_sum(s: pets.Session, upper: int) -> pets.Query:
    return s.table("t").agg(total=pets.sum("x", bounds=(0, upper)))


@pytest.mark.parametrize("rows", [2**4 - 1, 2**4])
def test_an_overflowing_sum_is_refused_the_same_way_whatever_the_rows(tmp_path: Path, rows: int):
    """sum(x, bounds=(0, 2**43)) used to be released on 2^20 − 1 rows and fail with an
    uncharged DataError on 2^20 rows. Now it is refused for any table under the same
    policy, from the bounds and max_rows alone (scaled down: max_rows = 2^20, and the
    table's rows do not matter)."""
    df = pd.DataFrame({"x": np.full(rows, 2**43, dtype=np.int64)})
    pol = policy({"x": column()}, dataset={"max_rows": 2**20})
    h = _holder(tmp_path, df, pol)
    s = h.session(ANALYST, purpose=PURPOSE)
    q = s.table("t").agg(total=pets.sum("x", bounds=(0, 2**43)))
    e = s.explain(q, pets.DP(epsilon=1.0))
    assert (e.allowed, e.rule) == (False, "max_rows")
    left = s.remaining()
    with pytest.raises(PolicyError) as err:
        s.release(q, pets.DP(epsilon=1.0))
    allowed = EXACT_LIMIT // 2**20
    assert (err.value.rule, err.value.column, err.value.allowed) == ("max_rows", "x", allowed)
    assert str(err.value) == e.message
    assert "narrow the bounds" in str(err.value) and "max_rows" in str(err.value)
    assert s.remaining() == left
    # narrower bounds are answered (the values are clamped to them)
    r = s.release(s.table("t").agg(total=pets.sum("x", bounds=(0, 2**30))), pets.DP(epsilon=5.0))
    assert r.df["total"].iloc[0] == pytest.approx(rows * 2**30, abs=2**30 * 25)


def test_the_old_data_dependent_overflow_is_gone(tmp_path: Path):
    """The exact case of the issue under a holder who allows 2^21 rows: 2^20 rows of
    2^43 overflowed BIGINT in the engine (a DataError, nothing charged). Now refused
    at compile time, before the engine."""
    n = 2**20
    df = pd.DataFrame({"x": np.full(n, 2**43, dtype=np.int64)})
    h = _holder(tmp_path, df, policy({"x": column()}, dataset={"max_rows": 2**21}))
    s = h.session(ANALYST, purpose=PURPOSE)
    with pytest.raises(PolicyError) as err:
        s.release(_big_sum(s, 2**43), pets.DP(epsilon=1.0))
    assert err.value.rule == "max_rows"


@pytest.mark.parametrize("agg", [
    pets.sum("x", bounds=(-2**36, 2**36)),
    pets.mean("x", bounds=(0, 2**36)),
    pets.variance("x", bounds=(0, 2**18)),
    pets.sum("x", bounds=(0.5, 2.0**36)),
    pets.sum(pets.col("x") * 2, bounds=(0, 2**36)),
])
def test_every_aggregation_is_checked_against_max_rows(agg):
    pol = Policy.from_dict(policy({"x": column()}, dataset={"max_rows": 2**30}))
    plan = pets.Query("t").agg(v=agg).plan
    with pytest.raises(PolicyError) as err:
        compile_dp(plan, pol, {"x": "int"}, pets.DP(epsilon=10.0))
    assert err.value.rule == "max_rows"
    # the same aggregation is answered on a table that may have fewer rows
    small = Policy.from_dict(policy({"x": column()}, dataset={"max_rows": 2**10}))
    compile_dp(plan, small, {"x": "int"}, pets.DP(epsilon=10.0))


def test_every_exact_value_and_its_noise_fit_in_64_bits():
    """The bound the compiler proves: rows × the largest per-row value, for every engine
    aggregate and every measurement, stays within EXACT_LIMIT, which leaves room for any
    noise the samplers return (|noise| < 2^62 + 2^41, or the draw is refused)."""
    assert EXACT_LIMIT + 2**62 + 2**41 < 2**63
    pol = Policy.from_dict(policy({"x": column(bounds=[-1000, 1000])}))
    plan = pets.Query("t").agg(s=pets.sum("x"), m=pets.mean("x"), v=pets.variance("x"),
                               n=pets.count(), q=pets.quantile("x", 0.5)).plan
    c = compile_dp(plan, pol, {"x": "float"}, pets.DP(epsilon=1.0))
    assert c.value_bounds and max(c.value_bounds.values()) <= EXACT_LIMIT
    assert set(c.value_bounds) >= set(c.derived) | {m.key for m in c.measures}


def test_registration_refuses_a_table_with_more_rows_than_max_rows(tmp_path: Path):
    h = pets.Holder(tmp_path / "home")
    df = pd.DataFrame({"x": np.arange(11)})
    pol = policy({"x": column()}, dataset={"max_rows": 10})
    with pytest.raises(DataError, match=r"11 rows.*max_rows sets 10"):
        h.register("t", df, pol)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"max_rows"):
        h.register("t", csv, pol)
    assert h.datasets() == []
    h.register("t", csv, policy({"x": column()}, dataset={"max_rows": 11}))
    assert h.datasets() == ["t"]


def test_the_default_row_limit_is_documented():
    text = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text()
    assert f"{DEFAULT_MAX_ROWS:,}" in text and f"{DEFAULT_MAX_CELLS:,}" in text


def test_the_policy_guide_examples_run():
    md = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
    blocks = re.findall(r"```python\n(.*?)```", md.read_text(), flags=re.S)
    runnable = [b for b in blocks if "max_rows" in b]  # the API sketch at the top is not
    assert runnable
    for block in runnable:
        exec(compile(block, str(md), "exec"), {})
