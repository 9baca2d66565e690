"""zCDP accounting: conversions, Gaussian calibration and accuracy, grant budgets and the
ledger under both composition theorems."""

from __future__ import annotations

import math
import sqlite3
from fractions import Fraction
from pathlib import Path

import numpy as np
import opendp.prelude as dp
import pytest

from pets.cost import Cost
from pets.dp.accountant import Budget, charged_cost, grant_rho
from pets.dp.accuracy import gaussian_half_width, gaussian_tail
from pets.dp.samplers import gaussian_rho, gaussian_scale, zcdp_epsilon, zcdp_rho
from pets.errors import AuditError, BudgetExceeded, QueryError
from pets.store import Store

dp.enable_features("contrib")


@pytest.mark.parametrize("rho", [1e-5, 1e-3, 0.05, 0.5, 2.0])
@pytest.mark.parametrize("delta", [1e-9, 1e-6, 1e-3])
def test_zcdp_conversion_is_tighter_than_the_simple_bound_and_never_below_rho(rho, delta):
    eps = zcdp_epsilon(rho, delta)
    assert rho <= eps <= rho + 2 * math.sqrt(rho * math.log(1 / delta)) + 1e-12


@pytest.mark.parametrize("epsilon,delta", [(0.1, 1e-9), (1.0, 1e-6), (5.0, 1e-5), (0.01, 1e-3)])
def test_zcdp_rho_is_the_largest_rho_within_epsilon(epsilon, delta):
    rho = zcdp_rho(epsilon, delta)
    assert zcdp_epsilon(rho, delta) <= epsilon
    assert zcdp_epsilon(rho * (1 + 1e-6), delta) > epsilon * (1 - 1e-9)


def test_zcdp_rho_refuses_a_zero_delta():
    with pytest.raises(QueryError, match="0 < delta < 1"):
        zcdp_rho(1.0, 0.0)


@pytest.mark.parametrize("l2", [1, 3, 7])
@pytest.mark.parametrize("rho", [1e-4, 0.01, 0.5])
def test_gaussian_scale_agrees_with_opendps_privacy_map(l2, rho):
    sigma = gaussian_scale(l2 * l2, rho)
    assert gaussian_rho(l2 * l2, sigma) <= rho
    m = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), sigma)
    assert m.map(l2) <= rho * (1 + 1e-9)  # OpenDP rounds its map up a little
    assert m.map(l2) >= rho * (1 - 1e-9)


def _exact_tail(sigma: float, t: int) -> float:
    k = np.arange(-int(sigma * 60) - 5, int(sigma * 60) + 6)
    w = np.exp(-(k.astype(float) ** 2) / (2 * sigma * sigma))
    return float(w[np.abs(k) >= t].sum() / w.sum())


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.5, 17.3, 300.0])
@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.999])
def test_gaussian_half_width_is_the_smallest_covering_integer(sigma, level):
    h = gaussian_half_width(sigma, level)
    assert _exact_tail(sigma, h + 1) <= 1 - level + 1e-12
    assert h == 0 or _exact_tail(sigma, h) > 1 - level


@pytest.mark.parametrize("sigma", [1000.5, 4000.0])
def test_gaussian_tail_bound_beyond_1000_is_an_upper_bound_and_tight(sigma):
    for t in (1, int(sigma), int(2 * sigma), int(3.5 * sigma)):
        exact = _exact_tail(sigma, t)
        bound = gaussian_tail(sigma, t)
        assert exact <= bound <= exact * 1.01 + 1e-3 / sigma


def test_charged_cost_follows_the_grants_accounting():
    assert charged_cost("basic", Cost(0.5, 1e-7, 0.01)) == (Cost(0.5, 1e-7), 0.0)
    # a pure (or approximate) DP release under zCDP: rho = eps^2 / 2, delta' = delta
    assert charged_cost("zcdp", Cost(0.5, 1e-7)) == (Cost(0.5, 1e-7, 0.125), 1e-7)
    # a Gaussian release carries its own rho and delta'
    assert charged_cost("zcdp", Cost(0.5, 1e-7, 0.01), 2e-12) == (Cost(0.5, 1e-7, 0.01), 2e-12)


def test_zcdp_budget_fits_on_rho_and_reports_epsilon_delta():
    b = Budget("zcdp", Fraction(1), Fraction(1, 10**6))
    rho_b = grant_rho(1.0, 1e-6)
    assert float(b.rho) == pytest.approx(rho_b, rel=1e-15)
    assert zcdp_epsilon(rho_b, 5e-7) <= 1.0
    assert b.remaining() == Cost(1.0, 1e-6, float(b.rho))
    assert b.fits(Cost(0.1, 0, rho_b), 0.0)
    assert not b.fits(Cost(0.1, 0, rho_b * 1.0001), 0.0)
    assert not b.fits(Cost(0.1, 0, 1e-9), 6e-7)  # delta' beyond half the grant's delta
    half = Budget("zcdp", Fraction(1), Fraction(1, 10**6), spent_rho=Fraction(rho_b) / 4)
    spent = half.spent()
    assert spent.epsilon == pytest.approx(zcdp_epsilon(rho_b / 4, 5e-7))
    assert spent.delta == pytest.approx(5e-7)
    assert half.remaining().epsilon == pytest.approx(1 - spent.epsilon)


# -- the store ---------------------------------------------------------------------------

A, D, P = "alice", "adult", "p"


def _rec() -> dict:
    return {"kind": "dp", "plan": {}, "protection": {}}


def test_a_zcdp_grant_charges_rho_and_many_small_releases_fit(tmp_path: Path) -> None:
    st = Store(tmp_path)
    st.set_grant(A, D, P, epsilon=1.0, delta=1e-6, accounting="zcdp")
    st.set_grant("bob", D, P, epsilon=1.0, delta=1e-6)  # basic
    rho = zcdp_rho(0.1, 1e-8)  # one Gaussian release of (0.1, 1e-8)
    n_zcdp = 0
    while True:
        try:
            st.charge(A, D, P, Cost(0.1, 1e-8, rho), _rec(), zdelta=0.0)
        except BudgetExceeded as e:
            assert "rho=" in str(e) and "zCDP" in str(e)
            break
        n_zcdp += 1
    n_basic = 0
    while True:
        try:
            st.charge("bob", D, P, Cost(0.1, 1e-8, rho), _rec())
        except BudgetExceeded:
            break
        n_basic += 1
    assert n_basic == 10
    assert n_zcdp == math.floor(grant_rho(1.0, 1e-6) / rho + 1e-9) and n_zcdp > 5 * n_basic
    assert st.spent(A, D, P).rho == pytest.approx(n_zcdp * rho)
    assert st.spent(A, D, P).epsilon <= 1.0
    assert st.ledger(A)[0]["rho"] == rho
    assert st.ledger("bob")[0]["rho"] == 0.0
    assert st.audit().verify() is True
    g = {row["analyst"]: row for row in st.list_grants()}
    assert g[A]["accounting"] == "zcdp" and g[A]["spent_rho"] == pytest.approx(n_zcdp * rho)
    assert g["bob"]["accounting"] == "basic" and "rho" not in g["bob"]


def test_a_grants_accounting_cannot_change_once_spent(tmp_path: Path) -> None:
    st = Store(tmp_path)
    st.set_grant(A, D, P, epsilon=1.0, delta=1e-6)
    st.set_grant(A, D, P, epsilon=1.0, delta=1e-6, accounting="zcdp")  # nothing spent: fine
    st.charge(A, D, P, Cost(0.1), _rec())
    with pytest.raises(QueryError, match="cannot switch to 'basic'"):
        st.set_grant(A, D, P, epsilon=2.0, delta=1e-6, accounting="basic")
    st.set_grant(A, D, P, epsilon=2.0, delta=1e-6, accounting="zcdp")  # raising is fine
    assert st.list_grants()[0]["epsilon"] == 2.0
    with pytest.raises(QueryError, match="needs a grant with delta > 0"):
        st.set_grant("bob", D, P, epsilon=1.0, accounting="zcdp")
    with pytest.raises(QueryError, match="accounting must be one of"):
        st.set_grant("bob", D, P, epsilon=1.0, accounting="renyi")


def test_tampering_with_a_charges_rho_is_detected(tmp_path: Path) -> None:
    st = Store(tmp_path)
    st.set_grant(A, D, P, epsilon=1.0, delta=1e-6, accounting="zcdp")
    st.charge(A, D, P, Cost(0.1, 0, 0.001), _rec(), zdelta=0.0)
    con = sqlite3.connect(st.path)
    con.execute("UPDATE ledger SET rho_text = '0.0001'")
    con.commit()
    with pytest.raises(AuditError, match="rho"):
        st.audit().verify()


def test_a_schema_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    st = Store(tmp_path)
    st.set_grant(A, D, P, epsilon=1.0)
    st.charge(A, D, P, Cost(0.25), _rec())
    con = sqlite3.connect(st.path)
    for table, column in (("grants", "accounting"), ("ledger", "rho_text"),
                          ("ledger", "zdelta_text"), ("spent", "rho_text"), ("spent", "zdelta_text")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    # and what schema 4 added: audit signatures (the key and head file live outside)
    con.execute("ALTER TABLE datasets DROP COLUMN policy_version")
    con.execute("DROP TABLE audit_sig")
    con.execute("DROP TABLE audit_meta")
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (1)")
    con.commit()
    con.close()
    for f in tmp_path.glob("audit-key*"):
        f.unlink()
    again = Store(tmp_path)
    assert again.remaining(A, D, P) == Cost(0.75)
    again.charge(A, D, P, Cost(0.25), _rec())
    assert again.remaining(A, D, P) == Cost(0.5)
    assert again.audit().verify() is True
