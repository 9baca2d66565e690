"""A k-anonymous extract's rows leave in a random order, never the source's.

In the source's order, two extracts of one table could be paired row by row
(Sweeney's "unsorted matching attack"), re-joining quasi-identifiers that each extract
generalised separately; and a source sorted by a name, an identifier or a date would
say whose row each is. Statistical checks below; each threshold's false-failure rate
is stated (the permutation comes from the CSPRNG and cannot be seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets

COLS = ("age", "sex", "race", "education", "relationship")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> pets.Session:
    home = tmp_path_factory.mktemp("order") / "home"
    df = pd.read_csv(pets.example_data(), skipinitialspace=True)
    df = df.sort_values("age", kind="stable").reset_index(drop=True)  # a source sorted by a QI
    h = pets.Holder(home)
    h.register("adult", df, pets.example_policy())
    h.grant("ana", dataset="adult", purpose="p", epsilon=1.0)
    return h.session("ana", purpose="p")


def _extract(s: pets.Session, cols: tuple[str, ...], suppression: float = 0.02) -> pd.DataFrame:
    x = s.release(s.table("adult").select(*cols),
                  pets.KAnonymity(k=5, l=2, sensitive="relationship", max_suppression=suppression))
    return x.df


def test_rows_leave_in_a_random_order(session: pets.Session) -> None:
    """Released position against generalised age: Spearman's ρ under a uniform
    permutation is ≈ N(0, 1/(n−1)); |ρ| < 0.05 fails with probability < 1e-15 at n ≈
    30,000 (z > 8). In the source's order (sorted by age) ρ would be ≈ 1."""
    df = _extract(session, COLS)
    n = len(df)
    assert n > 25_000
    age_rank = df["age"].astype(str).rank(method="average").to_numpy()
    pos_rank = np.arange(n, dtype=float)
    rho = np.corrcoef(age_rank, pos_rank)[0, 1]
    assert abs(rho) < 0.05, rho


def test_two_extracts_cannot_be_paired_by_position(session: pets.Session) -> None:
    """Two extracts generalising different quasi-identifiers, both with the unchanged
    sensitive column: in the source's order the column would agree at every position.
    Under independent random orders it agrees with probability Σ p_v² ≈ 0.27 per row; a
    share above 0.5 at n ≈ 30,000 has probability < 1e-100 (Hoeffding). No suppression,
    so that both extracts hold every row."""
    a = _extract(session, ("age", "sex", "relationship"), 0.0)
    b = _extract(session, ("race", "education", "relationship"), 0.0)
    assert len(a) == len(b) > 25_000
    same = (a["relationship"].to_numpy() == b["relationship"].to_numpy()).mean()
    p = a["relationship"].value_counts(normalize=True)
    assert same < 0.5, (same, float((p ** 2).sum()))
    # the same multiset of released values: only the order is random
    assert sorted(a["relationship"]) == sorted(b["relationship"])


def test_the_order_is_fresh_per_extract(tmp_path: Path) -> None:
    """The same request twice (a holder with room for it): the same rows, in two
    different orders (identical orders have probability 1/n!)."""
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data(), pets.example_policy(), copy=True)
    h.grant("ana", dataset="adult", purpose="p", epsilon=1.0)
    s = h.session("ana", purpose="p")
    a = _extract_from(s)
    b = _extract_from(s)
    assert not a.equals(b)
    key = list(a.columns)
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                  b.sort_values(key).reset_index(drop=True))


def _extract_from(s: pets.Session) -> pd.DataFrame:
    return s.release(s.table("adult").select(*COLS),
                     pets.KAnonymity(k=5, l=2, sensitive="relationship", max_suppression=0.02)).df
