"""Group-by on a column without public keys: released only through a DP threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pets

POLICY = {
    "columns": {
        "city": {"role": "attribute", "grade": 1},
        "x": {"role": "attribute", "grade": 1, "bounds": [0, 10]},
    },
    "grades": {"1": {"allow": ["dp"]}},
}


@pytest.fixture
def session(tmp_path):
    rng = np.random.default_rng(5)  # test DATA only
    big = [f"big{i}" for i in range(5)]
    df = pd.DataFrame({
        "city": list(rng.choice(big, 5000)) + ["SECRET-TOWN"],  # one row in a rare group
        "x": rng.uniform(0, 10, 5001),
    })
    h = pets.Holder(tmp_path / "h")
    h.register("d", df, POLICY)
    h.grant("ann", dataset="d", purpose="p", epsilon=10.0, delta=1e-4)
    return h, h.session("ann", purpose="p")


def test_without_delta_unknown_keys_are_refused_with_both_fixes(session):
    h, s = session
    with pytest.raises(pets.PolicyError, match=r"keys=\[\.\.\.\].*delta=1e-6") as e:
        s.release(s.table("d").group_by("city").agg(n=pets.count()), pets.DP(epsilon=1.0))
    assert e.value.rule == "public_keys" and e.value.column == "city"
    assert s.remaining("d") == pets.Cost(10.0, 1e-4)


def test_with_delta_only_groups_passing_the_threshold_are_released(session):
    h, s = session
    r = s.release(s.table("d").group_by("city").agg(n=pets.count(), m=pets.mean("x")),
                  pets.DP(epsilon=1.0, delta=1e-6))
    assert set(r.df["city"]) == {f"big{i}" for i in range(5)}  # ~1,000 rows each pass
    assert "SECRET-TOWN" not in set(r.df["city"])  # 1 row never passes (δ = 1e-6)
    assert r.spent == pets.Cost(1.0, 1e-6)
    left = s.remaining("d")
    assert left.epsilon == 9.0 and left.delta == pytest.approx(9.9e-5, rel=1e-12)
    assert (abs(r.df["n"] - 1000) < 200).all() and r.df["m"].between(0, 10).all()
    ci = r.ci(0.95)
    assert len(ci) == 2 * len(r.df)
    # the audit never carries the data's group names
    assert "SECRET-TOWN" not in str(h.audit().records())
    assert h.audit().verify() is True
