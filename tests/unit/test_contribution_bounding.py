"""Contribution bounding per person when the policy names a privacy unit.

300 persons with 1–20 rows each over 3 public regions. The policy lets one person
contribute to at most ``max_groups = 2`` regions and ``max_rows_per_group = 3`` rows per
region. With ε = 10^6 the noise is negligible (counts: exactly zero almost surely), so
the released values show what the bounding kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pets
from pets import PolicyError, col

N_PERSONS = 300
REGIONS = ["north", "south", "west"]
MAX_GROUPS = 2
MAX_ROWS = 3
EPS = 1e6
HUGE = pets.DP(epsilon=EPS)
PURPOSE = "bounding-tests"


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(20240611)
    rows = []
    for p in range(N_PERSONS):
        n = int(rng.integers(1, 21))
        k = int(rng.integers(1, 4))  # regions this person has rows in
        regions = list(rng.choice(REGIONS, size=k, replace=False))
        amounts = rng.choice(10_000, size=n, replace=False) / 100.0  # distinct, in [0, 100)
        for i in range(n):
            region = regions[i] if i < k else regions[int(rng.integers(0, k))]
            rows.append((f"P-{p:04d}", str(region), float(amounts[i])))
    df = pd.DataFrame(rows, columns=["person_id", "region", "amount"])
    # every row of a person has its own amount, so which rows are kept shows in sums
    assert df.groupby("person_id")["amount"].nunique().eq(df.groupby("person_id").size()).all()
    return df


DATA = _data()


def _policy(dataset: dict, listed: bool) -> dict:
    columns: dict = {
        "region": {"role": "attribute", "grade": 1, "keys": REGIONS},
        "amount": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
    }
    if listed:
        columns["person_id"] = {"role": "identifier", "grade": 1}
    out: dict = {"columns": columns, "grades": {"1": {"allow": ["dp"]}}}
    if dataset:
        out["dataset"] = dataset
    return out


BOUNDED = {"privacy_unit": "person_id", "max_groups": MAX_GROUPS, "max_rows_per_group": MAX_ROWS}

# Every person in every region, one row each: for the choice of regions a person keeps.
EVERYWHERE = pd.DataFrame(
    [(f"Q-{p:04d}", r, 1.0) for p in range(N_PERSONS) for r in REGIONS],
    columns=["person_id", "region", "amount"],
)



@pytest.fixture(scope="module")
def session(tmp_path_factory):
    holder = pets.Holder(tmp_path_factory.mktemp("pets-home"))
    one_row_two_groups = {"privacy_unit": "person_id", "max_groups": 2, "max_rows_per_group": 1}
    datasets = {
        "listed": (DATA, _policy(BOUNDED, listed=True)),
        "unlisted": (DATA, _policy(BOUNDED, listed=False)),
        "defaults": (DATA, _policy({"privacy_unit": "person_id"}, listed=True)),
        "rows": (DATA, _policy({}, listed=False)),  # no privacy unit: one row per person
        "everywhere": (EVERYWHERE, _policy(one_row_two_groups, listed=True)),
    }
    for name, (data, policy) in datasets.items():
        holder.register(name, data, policy)
        holder.grant("alice", dataset=name, purpose=PURPOSE, epsilon=1e9)  # 1000 releases
    return holder.session("alice", purpose=PURPOSE)


# ------------------------------------------------------------- facts about the data

CAPPED = DATA.groupby(["person_id", "region"]).size().clip(upper=MAX_ROWS)  # rows kept if region kept
N_REGIONS = DATA.groupby("person_id")["region"].nunique()
FEW = N_REGIONS[N_REGIONS <= MAX_GROUPS].index  # persons who keep all their regions
MANY = N_REGIONS[N_REGIONS > MAX_GROUPS].index  # persons who must drop a region


def _persons_in(region: str) -> set[str]:
    return set(DATA.loc[DATA["region"] == region, "person_id"])


def test_the_data_exercises_the_bounds():
    per_person = DATA.groupby("person_id").size()
    assert DATA["person_id"].nunique() == N_PERSONS
    assert per_person.min() >= 1 and per_person.max() <= 20 and per_person.max() > MAX_ROWS
    assert sorted(DATA["region"].unique()) == sorted(REGIONS)
    assert len(MANY) > 20 and len(FEW) > 20
    assert (CAPPED < DATA.groupby(["person_id", "region"]).size()).sum() > 50


# ------------------------------------------------------------------ grouped counts


def _release_counts(session, dataset: str) -> pd.Series:
    q = session.table(dataset).group_by("region").agg(n=pets.count())
    r = session.release(q, HUGE)
    return r.df.set_index("region")["n"]


@pytest.mark.parametrize("dataset", ["listed", "unlisted"])
def test_grouped_counts_respect_the_per_person_bounds(session, dataset):
    n = _release_counts(session, dataset)
    assert sorted(n.index) == sorted(REGIONS)
    # the coarse bounds
    assert n.sum() <= N_PERSONS * MAX_GROUPS * MAX_ROWS
    assert (n <= N_PERSONS * MAX_ROWS).all()
    # the fine bounds: persons in at most 2 regions keep all of them (≤ 3 rows each);
    # persons in 3 regions keep exactly 2 of them
    few = CAPPED[CAPPED.index.get_level_values("person_id").isin(FEW)]
    many = CAPPED[CAPPED.index.get_level_values("person_id").isin(MANY)]
    many_sorted = many.groupby("person_id").apply(lambda s: sorted(s.tolist()))
    lowest = few.sum() + sum(v[0] + v[1] for v in many_sorted)
    highest = few.sum() + sum(v[-1] + v[-2] for v in many_sorted)
    assert lowest <= n.sum() <= highest
    for region in REGIONS:
        in_region = CAPPED.xs(region, level="region")
        assert in_region[in_region.index.isin(FEW)].sum() <= n[region] <= in_region.sum()
    # and the bounding did something: the raw counts are far above
    assert n.sum() < len(DATA)


def test_ungrouped_count_keeps_at_most_max_rows_per_person(session):
    r = session.release(session.table("listed").agg(n=pets.count()), HUGE)
    expected = int(DATA.groupby("person_id").size().clip(upper=MAX_ROWS).sum())
    assert int(r.df["n"].iloc[0]) == expected


def test_without_a_privacy_unit_every_row_counts(session):
    n = _release_counts(session, "rows")
    assert n.to_dict() == DATA.groupby("region").size().to_dict()


def test_filters_apply_before_the_bounding(session):
    # only rows with amount >= 50 compete for a person's 3 rows
    q = session.table("listed").filter(col("amount") >= 50).agg(n=pets.count())
    r = session.release(q, HUGE)
    kept = DATA[DATA["amount"] >= 50].groupby("person_id").size().clip(upper=MAX_ROWS).sum()
    assert int(r.df["n"].iloc[0]) == int(kept)


# -------------------------------------------------------------------- noise scale


SCALE_CASES = pytest.mark.parametrize(
    "build, name, expected",
    [
        # contribution = min(max_groups, cells) * max_rows_per_group; ε split over measures
        (lambda q: q.group_by("region").agg(n=pets.count()), "n", 2 * 3 * 1 / EPS),
        (lambda q: q.group_by("region").agg(n=pets.count(), m=pets.count("amount")), "n", 2 * 3 * 2 / EPS),
        (lambda q: q.group_by("region", keys=["north"]).agg(n=pets.count()), "n", 1 * 3 * 1 / EPS),
        (lambda q: q.group_by("region", keys=["north", "west"]).agg(n=pets.count()), "n", 2 * 3 * 1 / EPS),
        (lambda q: q.agg(n=pets.count()), "n", 1 * 3 * 1 / EPS),
        # a sum of values in [0, 100]: per-row sensitivity 100 (in the sum's own units)
        (lambda q: q.agg(total=pets.sum("amount")), "total", 100 * 1 * 3 / EPS),
        (lambda q: q.group_by("region").agg(total=pets.sum("amount")), "total", 100 * 2 * 3 / EPS),
        # a mean: centred values, per-row sensitivity 50, two measurements (count, sum)
        (lambda q: q.group_by("region").agg(avg=pets.mean("amount")), "avg", 50 * 2 * 3 * 2 / EPS),
    ],
    ids=["count", "two-counts", "one-key", "two-keys", "ungrouped", "sum", "grouped-sum", "mean"],
)


@SCALE_CASES
def test_explained_noise_scale_is_the_bounded_sensitivity_over_epsilon(session, build, name, expected):
    explained = session.explain(build(session.table("listed")), HUGE)
    assert explained.allowed
    assert explained.scale[name] == pytest.approx(expected, rel=1e-9)


@SCALE_CASES
def test_released_noise_scale_is_the_explained_one(session, build, name, expected):
    q = build(session.table("listed"))
    r = session.release(q, HUGE)
    assert r.scale[name] == pytest.approx(expected, rel=1e-9)
    assert r.scale == session.explain(q, HUGE).scale


def test_noise_scale_without_privacy_unit_is_per_row(session):
    r = session.release(session.table("rows").group_by("region").agg(n=pets.count()), HUGE)
    assert r.scale["n"] == pytest.approx(1 / EPS, rel=1e-9)


# ------------------------------------------------------------- identifier refused


def test_group_by_the_privacy_unit_is_refused_as_identifier_group_by(session):
    q = session.table("listed").group_by("person_id", keys=["P-0000", "P-0001"]).agg(n=pets.count())
    with pytest.raises(PolicyError, match="identifier") as info:
        session.release(q, HUGE)
    assert info.value.rule == "identifier_group_by"
    assert info.value.column == "person_id"
    e = session.explain(q, HUGE)
    assert not e.allowed and e.rule == "identifier_group_by"


def test_filter_on_the_privacy_unit_is_refused(session):
    q = session.table("listed").filter(col("person_id") == "P-0000").agg(n=pets.count())
    with pytest.raises(PolicyError) as info:
        session.release(q, HUGE)
    assert info.value.rule == "identifier" and info.value.column == "person_id"


def test_unlisted_privacy_unit_is_denied_by_default(session):
    q = session.table("unlisted").group_by("person_id", keys=["P-0000"]).agg(n=pets.count())
    with pytest.raises(PolicyError) as info:
        session.release(q, HUGE)
    assert info.value.rule == "default_deny" and info.value.column == "person_id"


# ----------------------------------------------------------------------- defaults


def test_privacy_unit_without_bounds_defaults_to_one_group_and_one_row(session):
    n = _release_counts(session, "defaults")
    # every person keeps exactly one row, in one region
    assert int(n.sum()) == N_PERSONS
    only = DATA.groupby("person_id")["region"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else None)
    for region in REGIONS:
        sole = int((only == region).sum())
        assert sole <= n[region] <= len(_persons_in(region))
    r = session.release(session.table("defaults").group_by("region").agg(n=pets.count()), HUGE)
    assert r.scale["n"] == pytest.approx(1 * 1 / EPS, rel=1e-9)
    total = session.release(session.table("defaults").agg(n=pets.count()), HUGE)
    assert int(total.df["n"].iloc[0]) == N_PERSONS


# ------------------------------------------------------------------ re-randomised


def test_rows_kept_are_chosen_afresh_for_each_release(session):
    """Each person has up to 20 rows with distinct amounts and keeps 3: the kept sum
    lies between the sums of each person's 3 smallest and 3 largest amounts, and
    varies from release to release (noise here is ~3e-4, far below the differences)."""
    q = session.table("listed").agg(total=pets.sum("amount"))
    per_person = DATA.groupby("person_id")["amount"].apply(lambda s: sorted(s.tolist()))
    low = sum(sum(v[:MAX_ROWS]) for v in per_person)
    high = sum(sum(v[-MAX_ROWS:]) for v in per_person)
    # three different ε: an identical release would return its recorded answer
    totals = [float(session.release(q, pets.DP(epsilon=HUGE.epsilon + i)).df["total"].iloc[0])
              for i in range(3)]
    for t in totals:
        assert low - 0.05 <= t <= high + 0.05
    # three equal (to 0.05) draws would take a probability of about 1e-8
    assert max(totals) - min(totals) > 0.05, totals


def test_each_person_keeps_a_region_chosen_for_that_person(session):
    """All 300 persons have one row in each of the 3 regions and may keep 2. A choice made
    per person leaves each region about 200 rows (binomial, sd ~8); one ranking of the
    regions shared by every person (which the engine's ``dense_rank() OVER (PARTITION BY
    unit ORDER BY hash(region, seed))`` would) empties one region entirely in every release."""
    n = _release_counts(session, "everywhere")
    assert int(n.sum()) == N_PERSONS * 2
    assert (n >= 150).all(), n.to_dict()
