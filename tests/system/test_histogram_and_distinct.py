"""DP histograms and distinct counts on a real holder (DuckDB, SQLite, OpenDP's noise).

Exact checks run at ε = 10^4, where the noise scale is at most 10/10^4 and a discrete
Laplace draw is non-zero with probability 2q/(1 + q), q = e^(−1000): below 1e-400, so
these assertions are exact. Statistical checks state their false-failure rate (each
interval at LEVEL = 1 − 1e-6 misses with probability ≤ 1e-6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pets
from pets import col

from ._util import LEVEL, dlap_half_width

KEYS = ["a", "b", "c"]  # 'c' is absent from the data
EDGES = [10, 20, 50, 99]
HUGE = 1e4


def _data() -> pd.DataFrame:
    """600 persons, each in one or two of the groups 'a', 'b' with 1–5 rows in each:
    within max_groups = 2 and max_rows_per_group = 5, so bounding keeps every row."""
    rng = np.random.default_rng(7)  # test DATA only, never noise
    rows = []
    for pid in range(600):
        groups = ["a", "b"] if pid % 3 == 0 else [("a", "b")[pid % 2]]
        for g in groups:
            for _ in range(int(rng.integers(1, 6))):
                rows.append((pid, g))
    df = pd.DataFrame(rows, columns=["pid", "g"])
    n = len(df)
    x = rng.integers(-5, 106, n).astype(float)  # integers: many rows sit exactly on edges
    x[::17] = np.nan  # missing values are counted in no bin
    df["x"] = x
    df["s"] = rng.choice([f"v{i}" for i in range(12)], n)
    df.loc[::13, "s"] = None
    df["z"] = rng.choice([1.0, 2.0, 3.0], n, p=[0.005, 0.495, 0.5])  # bin [1, 2) is small
    return df


POLICY = {
    "columns": {
        "pid": {"role": "identifier", "grade": 1},
        "g": {"role": "attribute", "grade": 1, "keys": KEYS},
        "k": {"role": "attribute", "grade": 1},  # no public keys
        "x": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
        "s": {"role": "attribute", "grade": 1},
        "z": {"role": "attribute", "grade": 2, "bounds": [1, 3]},
    },
    "grades": {"1": {"allow": ["dp"]}, "2": {"allow": ["dp"], "min_group_size": 10}},
    "dataset": {"privacy_unit": "pid", "max_groups": 2, "max_rows_per_group": 5},
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df = _data()
    df["k"] = df["g"]  # the same groups, but their keys are not public
    return df


@pytest.fixture(scope="module")
def s(tmp_path_factory, data):  # type: ignore[no-untyped-def]
    h = pets.Holder(tmp_path_factory.mktemp("hist"))
    h.register("d", data, POLICY)
    h.grant("ann", dataset="d", purpose="p", epsilon=1e9, delta=1e-2)
    return h.session("ann", purpose="p")


def exact_histogram(df: pd.DataFrame, column: str, edges: list[float], groups: list[str]) -> list[int]:
    out = []
    for g in groups:
        x = df.loc[df["g"] == g, column]
        for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
            last = i == len(edges) - 2
            out.append(int(((x >= lo) & ((x <= hi) if last else (x < hi))).sum()))
    return out


def hist_query(s: pets.Session, bins=EDGES, **kw):  # type: ignore[no-untyped-def]
    return s.table("d").group_by("g").agg(h=pets.histogram("x", bins=bins, **kw))


# ------------------------------------------------------------------------- histograms


def test_histogram_is_released_in_long_form_one_row_per_cell_and_bin(s):
    r = s.release(hist_query(s), pets.DP(epsilon=1.0))
    assert list(r.df.columns) == ["g", "x", "h"]
    labels = ["[10, 20)", "[20, 50)", "[50, 99]"]
    assert list(r.df["g"]) == [g for g in KEYS for _ in labels]
    assert list(r.df["x"]) == labels * 3
    assert r.spent == pets.Cost(1.0)


def test_histogram_counts_are_exact_at_a_huge_epsilon_edges_half_open_last_closed(s, data):
    """Values on an inner edge go to the upper bin; 99 (the last edge) is counted;
    values below 10, above 99 and missing values are in no bin."""
    r = s.release(hist_query(s), pets.DP(epsilon=HUGE))
    assert r.df["h"].tolist() == exact_histogram(data, "x", EDGES, KEYS)
    # the data has rows on the edges and outside, so the rule is really exercised
    assert (data["x"] == 20).sum() > 0 and (data["x"] == 99).sum() > 0
    assert ((data["x"] < 10) | (data["x"] > 99)).sum() > 0 and data["x"].isna().sum() > 0
    total = int(((data["x"] >= 10) & (data["x"] <= 99)).sum())
    assert r.df["h"].sum() == total


def test_histogram_intervals_cover_the_exact_bin_counts(s, data):
    """12 intervals (3 cells × 4 bins) at LEVEL: false-failure rate ≤ 12e-6."""
    edges = [-10, 10, 20, 50, 99]
    r = s.release(hist_query(s, edges), pets.DP(epsilon=1.0))
    ci = r.ci(LEVEL)
    assert list(ci.columns) == ["g", "x", "aggregate", "value", "lower", "upper"]
    exact = exact_histogram(data, "x", edges, KEYS)
    assert ((ci["lower"] <= exact) & (exact <= ci["upper"])).all(), (ci, exact)
    assert ci["value"].tolist() == r.df["h"].astype(float).tolist()
    h = dlap_half_width(r.scale["h"], LEVEL)
    np.testing.assert_array_equal(ci["upper"] - ci["value"], h)


def test_histogram_scale_is_one_counts_whatever_the_number_of_bins(s):
    """Sensitivity min(max_groups, cells) · max_rows_per_group = 2 · 5 = 10, all of ε."""
    for edges in ([0, 100], EDGES, list(range(0, 101, 5))):
        e = s.explain(hist_query(s, edges), pets.DP(epsilon=0.5))
        assert e.allowed and e.cost == pets.Cost(0.5)
        assert e.scale == {"h": pytest.approx(10 / 0.5)}
        d = e.details.iloc[0]
        assert (d["kind"], d["column"], d["epsilon"]) == ("histogram", "x", 0.5)
        assert d["bounds"] == (float(edges[0]), float(edges[-1]))
        assert e.ci_width["h"] == 2 * dlap_half_width(e.scale["h"], 0.95)


def test_explained_ci_width_is_the_released_per_bin_width(s):
    q = hist_query(s)
    e = s.explain(q, pets.DP(epsilon=0.7))
    r = s.release(q, pets.DP(epsilon=0.7))
    ci = r.ci(0.95)
    np.testing.assert_array_equal(ci["upper"] - ci["lower"], e.ci_width["h"])


def test_equal_width_bins_over_the_policys_bounds_or_the_querys(s, data):
    r = s.release(s.table("d").group_by("g").agg(h=pets.histogram("x", bins=4)),
                  pets.DP(epsilon=HUGE))
    assert list(r.df["x"][:4]) == ["[0, 25)", "[25, 50)", "[50, 75)", "[75, 100]"]
    assert r.df["h"].tolist() == exact_histogram(data, "x", [0, 25, 50, 75, 100], KEYS)
    r = s.release(s.table("d").group_by("g").agg(h=pets.histogram("x", bins=2, bounds=(-5, 0))),
                  pets.DP(epsilon=HUGE))
    assert list(r.df["x"][:2]) == ["[-5, -2.5)", "[-2.5, 0]"]
    assert r.df["h"].tolist() == exact_histogram(data, "x", [-5, -2.5, 0], KEYS)


def test_bins_outside_the_values_count_nothing_but_noise(s):
    r = s.release(hist_query(s, [1000, 2000, 3000]), pets.DP(epsilon=HUGE))
    assert r.df["h"].tolist() == [0] * 6
    r = s.release(hist_query(s, [1000, 2000, 3000]), pets.DP(epsilon=1.0))
    assert (r.df["h"].abs() <= dlap_half_width(r.scale["h"], LEVEL)).all()  # ≤ 6e-6


def test_a_repeated_histogram_returns_the_recorded_answer_at_no_cost(s):
    q = hist_query(s, [0, 30, 60, 100])
    r1 = s.release(q, pets.DP(epsilon=0.25))
    r2 = s.release(q, pets.DP(epsilon=0.25))
    assert r2.spent == pets.Cost() and r2.repeat_of == r1.audit_id
    pd.testing.assert_frame_equal(r1.df, r2.df)


def test_histogram_without_group_by_has_one_row_per_bin(s, data):
    r = s.release(s.table("d").filter(col("g") == "a").agg(h=pets.histogram("x", bins=EDGES)),
                  pets.DP(epsilon=HUGE))
    assert list(r.df.columns) == ["x", "h"]
    assert r.df["h"].tolist() == exact_histogram(data, "x", EDGES, ["a"])


def test_a_bin_below_the_minimum_group_size_is_withheld_bin_by_bin(s, data):
    """z's grade has min_group_size = 10: the bins [1, 2) (≈ 0.5% of rows, under 10 in
    each group) and every bin of the absent key 'c' are withheld; no row count is
    measured for it (the histogram keeps all of ε)."""
    q = s.table("d").group_by("g").agg(h=pets.histogram("z", bins=[1, 2, 3]))
    exact = exact_histogram(data, "z", [1, 2, 3], KEYS)
    assert exact[0] < 10 and exact[2] < 10 and exact[1] >= 10 and exact[3] >= 10
    r = s.release(q, pets.DP(epsilon=HUGE))
    want = [v if v >= 10 else np.nan for v in exact]
    np.testing.assert_array_equal(r.df["h"].to_numpy(), np.asarray(want, dtype=float))
    assert r.suppressed == sum(v < 10 for v in exact) == 4
    ci = r.ci(0.95)
    assert ci["lower"].isna().tolist() == [v < 10 for v in exact]
    assert s.explain(q, pets.DP(epsilon=1.0)).details.iloc[0]["epsilon"] == 1.0


def test_a_histogram_over_keys_that_are_not_public_needs_delta_and_spends_it(s, data):
    q = s.table("d").group_by("k").agg(h=pets.histogram("x", bins=EDGES))
    with pytest.raises(pets.PolicyError) as info:
        s.release(q, pets.DP(epsilon=1.0))
    assert info.value.rule == "public_keys"
    r = s.release(q, pets.DP(epsilon=50.0, delta=1e-6))
    assert r.spent == pets.Cost(50.0, 1e-6)
    assert list(r.df.columns) == ["k", "x", "h"]
    assert sorted(set(r.df["k"])) == ["a", "b"]  # hundreds of rows each: released
    exact = exact_histogram(data, "x", EDGES, ["a", "b"])
    ci = r.ci(LEVEL).sort_values(["k", "x"], kind="stable")
    assert ((ci["lower"] <= exact) & (exact <= ci["upper"])).all()  # ≤ 6e-6


# -------------------------------------------------------------------- count distinct


def test_distinct_persons_and_values_are_exact_at_a_huge_epsilon(s, data):
    q = s.table("d").group_by("g").agg(p=pets.count_distinct(), v=pets.count_distinct("s"),
                                       p2=pets.count_distinct("pid"))
    r = s.release(q, pets.DP(epsilon=HUGE))
    persons = data.groupby("g")["pid"].nunique().reindex(KEYS, fill_value=0)
    values = data.groupby("g")["s"].nunique().reindex(KEYS, fill_value=0)  # None not counted
    assert r.df["p"].tolist() == persons.tolist()
    assert r.df["p2"].tolist() == persons.tolist()
    assert r.df["v"].tolist() == values.tolist()


def test_distinct_persons_scale_is_max_groups_over_epsilon_not_times_rows(s):
    """max_groups = 2, max_rows_per_group = 5, 3 public keys: a person is in at most 2
    groups and adds at most 1 to each → sensitivity 2; distinct values of a column
    change by up to 5 per group → 10, like count()."""
    e = s.explain(s.table("d").group_by("g").agg(p=pets.count_distinct()), pets.DP(epsilon=0.5))
    assert e.scale == {"p": pytest.approx(2 / 0.5)}
    assert e.ci_width["p"] == 2 * dlap_half_width(2 / 0.5, 0.95)
    e = s.explain(s.table("d").agg(p=pets.count_distinct()), pets.DP(epsilon=0.5))
    assert e.scale == {"p": pytest.approx(1 / 0.5)}  # one cell: one group per person
    e = s.explain(s.table("d").group_by("g").agg(v=pets.count_distinct("s")),
                  pets.DP(epsilon=0.5))
    assert e.scale == {"v": pytest.approx(10 / 0.5)}
    e = s.explain(s.table("d").group_by("g").agg(p=pets.count_distinct(), n=pets.count()),
                  pets.DP(epsilon=0.5))
    assert e.scale == {"p": pytest.approx(2 / 0.25), "n": pytest.approx(10 / 0.25)}
    assert e.details["epsilon"].tolist() == [0.25, 0.25]


def test_distinct_persons_intervals_cover_the_exact_counts(s, data):
    r = s.release(s.table("d").group_by("g").agg(p=pets.count_distinct()), pets.DP(epsilon=0.3))
    persons = data.groupby("g")["pid"].nunique().reindex(KEYS, fill_value=0)
    ci = r.ci(LEVEL)
    assert ((ci["lower"] <= persons.to_numpy()) & (persons.to_numpy() <= ci["upper"])).all()
    assert r.scale == {"p": pytest.approx(2 / 0.3)}


def test_a_person_in_more_groups_than_max_groups_is_counted_in_max_groups(tmp_path):
    """Every person has rows in all three groups; with max_groups = 2 the engine keeps
    two of them per person, so the distinct persons add up to exactly 2 per person."""
    df = pd.DataFrame([(p, g) for p in range(200) for g in "abc" for _ in range(3)],
                      columns=["pid", "g"])
    pol = {"columns": {"pid": {"role": "identifier", "grade": 1},
                       "g": {"role": "attribute", "grade": 1, "keys": ["a", "b", "c"]}},
           "grades": {"1": {"allow": ["dp"]}},
           "dataset": {"privacy_unit": "pid", "max_groups": 2, "max_rows_per_group": 1}}
    h = pets.Holder(tmp_path / "h")
    h.register("d", df, pol)
    h.grant("ann", dataset="d", purpose="p", epsilon=1e9)
    s2 = h.session("ann", purpose="p")
    r = s2.release(s2.table("d").group_by("g").agg(p=pets.count_distinct()), pets.DP(epsilon=HUGE))
    assert r.df["p"].sum() == 400
    assert (r.df["p"] <= 200).all()


def test_without_a_privacy_unit_distinct_persons_are_the_row_count(tmp_path, data):
    pol = {**POLICY, "dataset": {}, "columns": {k: v for k, v in POLICY["columns"].items()
                                                if k != "pid"}}
    h = pets.Holder(tmp_path / "h")
    h.register("d", data.drop(columns=["pid"]), pol)
    h.grant("ann", dataset="d", purpose="p", epsilon=10.0)
    s2 = h.session("ann", purpose="p")
    q = s2.table("d").group_by("g").agg(p=pets.count_distinct(), n=pets.count())
    e = s2.explain(q, pets.DP(epsilon=1.0))
    assert e.details["epsilon"].tolist() == [1.0, 1.0]  # one shared measurement
    r = s2.release(q, pets.DP(epsilon=1.0))
    assert r.df["p"].tolist() == r.df["n"].tolist()  # the same noisy numbers


def test_sql_count_distinct_of_the_privacy_unit_counts_persons(s, data):
    r = s.sql("SELECT g, COUNT(DISTINCT pid) AS persons, COUNT(DISTINCT s) FROM d GROUP BY g",
              pets.DP(epsilon=HUGE))
    assert list(r.df.columns) == ["g", "persons", "count_distinct_s"]
    assert r.df["persons"].tolist() == data.groupby("g")["pid"].nunique().reindex(
        KEYS, fill_value=0).tolist()
    assert r.df["count_distinct_s"].tolist() == data.groupby("g")["s"].nunique().reindex(
        KEYS, fill_value=0).tolist()
    e = s.explain(pets.sql.parse_sql("SELECT g, COUNT(DISTINCT pid) FROM d GROUP BY g"),
                  pets.DP(epsilon=1.0))
    assert e.scale == {"count_distinct_pid": pytest.approx(2.0)}


def test_the_privacy_unit_stays_refused_as_a_group_or_filter_column(s):
    for q, rule in [
        (s.table("d").group_by("pid", keys=[1, 2]).agg(p=pets.count_distinct("pid")),
         "identifier_group_by"),
        (s.table("d").filter(col("pid") < 5).agg(p=pets.count_distinct()), "identifier"),
        (s.table("d").agg(h=pets.histogram("pid", bins=[0, 300, 600])), "identifier"),
    ]:
        e = s.explain(q, pets.DP(epsilon=1.0))
        assert (e.allowed, e.rule, e.column) == (False, rule, "pid")
        with pytest.raises(pets.PolicyError):
            s.release(q, pets.DP(epsilon=1.0))


def test_a_histogram_of_a_text_column_is_refused(s):
    with pytest.raises(pets.QueryError, match=r"histogram\('s'\) needs a numeric column"):
        s.release(s.table("d").agg(h=pets.histogram("s", bins=[0, 1])), pets.DP(epsilon=1.0))
