"""Side doors: nothing an analyst observes may depend on the data unless it came out of
a charged mechanism (issue 9).

Every case below runs one request — a release of each form, or a request some rule
refuses — on a dataset D and on neighbours D' (one person added: an ordinary one, one
with extreme values, one with a new category value, one with missing values; one
person removed; with a privacy unit, a person of several rows or of hundreds), each in
fresh holder homes with the same grants, and compares what the analyst observes
(:mod:`side_doors` says exactly what and which invariants).

To add a release form (verification, models, synthetic data, …) add one :class:`Case`
to ``CASES``: the data, how to register it, the request as a function of the
:class:`World`, what ``explain`` says for it, and the expected outcome. Its refusal
paths are more cases of the same shape.

Cases that exercise defects of issue 9 fail on purpose until those are fixed; they are
not marked xfail so that the fix is seen to close them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

import pets
from pets import col

from .side_doors import (
    ANALYST, ANY, PURPOSE, RELEASED, RELEASED_ON_D, REFUSED, STRANGER, Case, Data, Neighbour, World,
    _first_difference, check_case, refused, run_case,
)

# =========================================================================== data
ADULT_ROWS = 300

# neighbours with new categories are registered on purpose: the holder-side warning that
# a hierarchy lacks their values is expected here (and tested in test_kanon_release.py)
pytestmark = pytest.mark.filterwarnings("ignore::pets.holder.HierarchyWarning")


@functools.lru_cache(maxsize=1)
def _adult_text() -> pd.DataFrame:
    """The bundled Adult table as the CSV has it: every cell text, "?" for missing."""
    return pd.read_csv(pets.example_data("adult"), dtype=str, skipinitialspace=True,
                       keep_default_na=False)


def adult(rows: int = ADULT_ROWS) -> Data:
    return {"main": _adult_text().head(rows).copy()}


def adult_halves(rows: int = ADULT_ROWS) -> Data:
    df = _adult_text().head(rows)
    return {"north": df.iloc[: rows // 2].copy(), "south": df.iloc[rows // 2:].copy()}


def _add(df: pd.DataFrame, **changes: Any) -> pd.DataFrame:
    """D plus one person: a copy of row 1 (age 50, so in the filtered cases too) with
    ``changes``."""
    row = df.iloc[[1]].copy()
    for k, v in changes.items():
        row[k] = str(v)
    return pd.concat([df, row], ignore_index=True)


def _drop_top(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """D minus one person: the one with the largest ``column`` (the most exposed)."""
    v = pd.to_numeric(df[column], errors="coerce")
    return df.drop(index=v.idxmax())


ADULT_NEIGHBOURS = (
    Neighbour("+ordinary", lambda d: _add(d)),
    Neighbour("+extreme", lambda d: _add(
        d, age=117, **{"education-num": 16, "hours-per-week": 168, "capital-gain": 99_999_999,
                       "capital-loss": 4356, "fnlwgt": 1_484_705})),
    Neighbour("+new-category", lambda d: _add(
        d, workclass="Space-agency", education="Honoris-causa", occupation="Astronaut",
        race="Martian", **{"native-country": "Atlantis", "marital-status": "Polyamorous"})),
    Neighbour("+missing", lambda d: _add(
        d, age="?", workclass="?", education="?", occupation="?", sex="?", race="?",
        **{"hours-per-week": "?", "native-country": "?", "capital-gain": "?"})),
    Neighbour("-one", lambda d: _drop_top(d, "capital-gain")),
)
#: fewer worlds where each one deals a Paillier key (about a second at 2048 bits): two
#: neighbours for the HE release, one for the requests that must be refused
HE_NEIGHBOURS = (ADULT_NEIGHBOURS[1], ADULT_NEIGHBOURS[4])
HE_REFUSAL_NEIGHBOURS = (ADULT_NEIGHBOURS[4],)

# ---------------------------------------------------------------- several rows per person
UNIT_KEYS = ["north", "south", "east", "west"]
UNIT_POLICY = {
    "dataset": {"privacy_unit": "person_id", "max_groups": 2, "max_rows_per_group": 1},
    "columns": {
        "person_id": {"role": "identifier", "grade": 1},
        "clinic": {"role": "attribute", "grade": 1, "keys": UNIT_KEYS},
        "cost": {"role": "attribute", "grade": 1, "bounds": [0, 100]},
        # "score" is in the data but not in the policy: default deny
    },
    "grades": {"1": {"allow": ["dp", "he"]}},
}


def _person(pid: str, rows: int, cost: float = 50.0, clinic: Any = "north") -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": [pid] * rows,
        "clinic": [clinic if clinic is None else UNIT_KEYS[(i + UNIT_KEYS.index(clinic)) % 4]
                   for i in range(rows)],
        "cost": [cost] * rows,
        "score": [i % 10 for i in range(rows)],
    })


def unit(persons: int = 60, rows_each: int = 3) -> Data:
    parts = [_person(f"P{i:03d}", rows_each, cost=float(10 + i % 80), clinic=UNIT_KEYS[i % 4])
             for i in range(persons)]
    return {"main": pd.concat(parts, ignore_index=True)}


def unit_halves() -> Data:
    df = unit()["main"]
    ids = sorted(df.person_id.unique())
    north = df[df.person_id.isin(ids[: len(ids) // 2])]
    return {"north": north.copy(), "south": df[~df.index.isin(north.index)].copy()}


UNIT_NEIGHBOURS = (
    Neighbour("+person of 3 rows", lambda d: pd.concat([d, _person("Z001", 3)])),
    Neighbour("+person of 500 rows, extreme cost", lambda d: pd.concat(
        [d, _person("Z002", 500, cost=1e9)])),
    Neighbour("+person with missing values", lambda d: pd.concat(
        [d, _person("Z003", 2, cost=float("nan"), clinic=None)])),
    Neighbour("-one person (all rows)", lambda d: d[d.person_id != "P007"]),
)

# =========================================================================== setups
GRANT = dict(epsilon=10.0, delta=1e-5)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def adult_setup(policy: Any = None, *, epsilon: float = GRANT["epsilon"],
                delta: float = GRANT["delta"]):
    """The Adult subset as a CSV registered in place (as the bundled example is),
    under ``policy`` (default: the bundled one; a callable gets the world's directory)."""
    def setup(d: Path, data: Data) -> World:
        holders = {}
        for name, df in data.items():
            h = pets.Holder(d / f"home-{name}")
            pol = policy(d) if callable(policy) else (policy or pets.example_policy("adult"))
            h.register("adult", _write_csv(df, d / f"adult-{name}.csv"), pol)
            h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=epsilon, delta=delta)
            holders[name] = h
        w = World(d, holders, "adult")
        w.session = w.local()
        return w
    return setup


def frame_setup(policy: Any, name: str = "t", *, epsilon: float = GRANT["epsilon"],
                delta: float = GRANT["delta"]):
    """Each holder's table registered as a DataFrame (a stored copy) under ``policy``."""
    def setup(d: Path, data: Data) -> World:
        holders = {}
        for hname, df in data.items():
            h = pets.Holder(d / f"home-{hname}")
            h.register(name, df, policy(d) if callable(policy) else policy)
            h.grant(ANALYST, dataset=name, purpose=PURPOSE, epsilon=epsilon, delta=delta)
            holders[hname] = h
        w = World(d, holders, name)
        w.session = w.local()
        return w
    return setup


def parquet_in_place_setup(policy: Any, name: str = "t"):
    """Each holder's table written to Parquet and registered in place under ``policy``
    (with a privacy unit: its ordinals in a file beside it, in the home)."""
    def setup(d: Path, data: Data) -> World:
        holders = {}
        for hname, df in data.items():
            path = d / f"{hname}.parquet"
            con = duckdb.connect()
            con.register("df", df)
            con.execute(f"COPY df TO '{path}' (FORMAT parquet)")
            con.close()
            h = pets.Holder(d / f"home-{hname}")
            h.register(name, path, policy)
            h.grant(ANALYST, dataset=name, purpose=PURPOSE, **GRANT)
            holders[hname] = h
        w = World(d, holders, name)
        w.session = w.local()
        return w
    return setup


def adult_policy_with(**edits: Any):
    """The bundled Adult policy as a dict, with ``edits`` applied by ``fn(policy, dir)``."""
    def make(d: Path) -> dict[str, Any]:
        pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
        for fn in edits.values():
            fn(pol, d)
        return pol
    return make


def _workclass_qi(pol: dict[str, Any], d: Path) -> None:
    """workclass as a quasi-identifier with a hierarchy (it has missing values)."""
    groups = {"Private": "Private", "Self-emp-inc": "Self-employed",
              "Self-emp-not-inc": "Self-employed", "Federal-gov": "Government",
              "Local-gov": "Government", "State-gov": "Government",
              "Without-pay": "Not-working", "Never-worked": "Not-working"}
    path = d / "workclass.csv"
    path.write_text("".join(f"{v};{g};*\n" for v, g in groups.items()))
    pol["columns"]["workclass"].update(role="quasi_identifier", hierarchy=str(path))


def _kanon_models(**section: Any):
    """The policy's [kanon] section; "POP" stands for a population file: the first 2,000
    rows of the bundled Adult table (containing D's rows, not every neighbour's)."""
    def edit(pol: dict[str, Any], d: Path) -> None:
        if "POP" in section.values():
            pop = _write_csv(_adult_text().head(2000), d / "population.csv")
        pol["kanon"] = {k: (str(pop) if v == "POP" else v) for k, v in section.items()}
    return edit


def _he_exact_grade1(pol: dict[str, Any], d: Path) -> None:
    """Grade 1 opts into exact HE totals (the distinct release form ``he_exact``)."""
    pol["grades"]["1"]["allow"] = list(pol["grades"]["1"]["allow"]) + ["he_exact"]


# =========================================================================== requests
def release(q: Any, prot: Any, *, analyst: str = ANALYST):
    """A request ``release(query(session), protection)`` and its explain, for a session."""
    def go(w: World) -> Any:
        s = w.local(analyst)
        return s.release(q(s), prot)

    def why(w: World) -> Any:
        s = w.local(analyst)
        return s.explain(q(s), prot)
    return go, why


def dummy_release(q: Any, prot: Any, *, analyst: str = ANALYST):
    """The request on a dummy table (``dummy=True``, seeded) and the real explain."""
    def go(w: World) -> Any:
        s = w.local(analyst)
        r = s.release(q(s), prot, dummy=True, rows=300, seed=1)
        assert r.dummy
        return r

    def why(w: World) -> Any:
        s = w.local(analyst)
        return s.explain(q(s), prot)
    return go, why


def sql(text: str, prot: Any, *, analyst: str = ANALYST):
    def go(w: World) -> Any:
        return w.local(analyst).sql(text, prot)
    return go, None


def federated(q: Any, prot: Any, *, analyst: str = ANALYST, threshold: int | None = None):
    """A federated request over every holder of the world."""
    def fed(w: World) -> Any:
        kw = {} if threshold is None else {"threshold": threshold}
        return pets.Federation(w.holders, **kw).session(analyst, purpose=PURPOSE)

    def go(w: World) -> Any:
        s = fed(w)
        return s.release(q(s), prot)

    def why(w: World) -> Any:
        s = fed(w)
        return s.explain(q(s), prot)
    return go, why


def case(name: str, data: Any, setup: Any, request: tuple[Any, Any], expect: Any,
         neighbours: tuple[Neighbour, ...] = ADULT_NEIGHBOURS, **kw: Any) -> Case:
    go, why = request
    return Case(name=name, data=data, setup=setup, request=go, explain=why, expect=expect,
                neighbours=neighbours, **kw)


def T(name: str = "adult"):
    return lambda s: s.table(name)


DP = pets.DP
HE2048 = functools.partial(pets.HE, key_bits=2048)
dp_half = DP(epsilon=0.5)

#: one bounded numeric column (its type, int or float, is inferred from the data)
# the type is declared: releases must not depend on the type inferred from the rows
# (without `type`, one fractional value makes the inferred type float; see
# docs/threat-model.md, "what registration publishes")
TYPED_POLICY = {"columns": {"x": {"role": "attribute", "grade": 1, "bounds": [0, 100],
                                  "type": "float"}},
                "grades": {"1": {"allow": ["dp"]}}}

# ---------------------------------------------------------------- overflow and cells
OVERFLOW_ROWS = 2**20  # 2^20 · 2^43 = 2^63: the straddle of a BIGINT sum


def overflow_data() -> Data:
    return {"main": pd.DataFrame({"x": np.full(OVERFLOW_ROWS, 2**43, dtype=np.int64)})}


OVERFLOW_NEIGHBOURS = (
    Neighbour("+one row (x = 2^62)", lambda d: pd.concat(
        [d, pd.DataFrame({"x": np.array([2**62], dtype=np.int64)})])),
    Neighbour("-one row", lambda d: d.iloc[1:]),
)
OVERFLOW_POLICY = {"columns": {"x": {"role": "attribute", "grade": 1}},
                   "grades": {"1": {"allow": ["dp"]}}}
#: the holder states the largest table it will hold: overflow is decided from bounds and
#: this, before looking at the data (2^21 · 2^43 = 2^64 cannot be summed in 64 bits)
OVERFLOW_POLICY_MAX_ROWS = {**OVERFLOW_POLICY, "dataset": {"max_rows": 2**21}}
#: ε large enough that the noise of a 2^43-bounded sum fits 64 bits (today: ε >= 8)
OVERFLOW_DP = DP(epsilon=10.0)
overflow_q = lambda s: s.table("t").agg(total=pets.sum("x", bounds=(0, 2**43)))  # noqa: E731

CELL_COLUMNS = ("a", "b", "c", "d")


def cells_data() -> Data:
    rng = np.random.default_rng(9)  # test data only
    return {"main": pd.DataFrame({c: rng.integers(0, 20, 200) for c in CELL_COLUMNS})}


CELL_NEIGHBOURS = (
    Neighbour("+one row", lambda d: pd.concat([d, d.iloc[[0]]])),
    Neighbour("-one row", lambda d: d.iloc[1:]),
)


def cells_policy(max_cells: int | None = None) -> dict[str, Any]:
    pol: dict[str, Any] = {
        "columns": {c: {"role": "attribute", "grade": 1} for c in CELL_COLUMNS},
        "grades": {"1": {"allow": ["dp"]}},
    }
    if max_cells is not None:
        pol["dataset"] = {"max_cells": max_cells}
    return pol


def cells_q(per_column: int):
    keys = list(range(per_column))
    return lambda s: s.table("t").group_by(*CELL_COLUMNS, keys={c: keys for c in CELL_COLUMNS}).agg(
        n=pets.count())


# ---------------------------------------------------------------- reserved column names
def reserved_data() -> Data:
    df = unit()["main"].drop(columns=["score"])
    df["__pets_rn"] = 1  # the name of the engine's hidden row-number column
    return {"main": df}


def register_in_place(fmt: str):
    """The request is the holder's: register a CSV/Parquet file in place."""
    def setup(d: Path, data: Data) -> World:
        df = data["main"]
        path = d / f"data.{fmt}"
        if fmt == "csv":
            _write_csv(df, path)
        else:
            con = duckdb.connect()
            con.register("df", df)
            con.execute(f"COPY df TO '{path}' (FORMAT parquet)")
            con.close()
        w = World(d, {"h": pets.Holder(d / "home")}, "t")
        w.extra["path"] = path
        return w

    def go(w: World) -> Any:
        return w.holder.register("t", w.extra["path"], UNIT_POLICY)
    return setup, go


# =========================================================================== the table
CASES: list[Case] = [
    # ---------------------------------------------------------------- DP releases
    case("dp_count_public_keys", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()), dp_half),
         RELEASED, public_shape=True, why="DP count over public keys"),
    case("dp_sum_public_keys", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("race").agg(
             g=pets.sum("capital-gain", bounds=(0, 100_000))), dp_half),
         RELEASED, public_shape=True, why="DP sum of a grade-3 column"),
    case("dp_mean_public_keys", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("education").agg(
             h=pets.mean("hours-per-week")), dp_half),
         RELEASED, public_shape=True, why="DP mean, bounds from the policy"),
    case("dp_variance_filtered", adult, adult_setup(),
         release(lambda s: s.table("adult").filter(col("age") >= 50).group_by("sex").agg(
             n=pets.count(), v=pets.variance("age")), DP(epsilon=0.9)),
         RELEASED, public_shape=True, why="DP variance on a filtered table"),
    case("dp_quantile", adult, adult_setup(),
         release(lambda s: s.table("adult").agg(m=pets.quantile("age", 0.5, bounds=(17, 90))),
                 dp_half),
         RELEASED, why="DP median"),
    case("dp_histogram", adult, adult_setup(),
         release(lambda s: s.table("adult").agg(
             h=pets.histogram("hours-per-week", bins=[1, 20, 40, 60, 99])), dp_half),
         RELEASED, public_shape=True, why="DP histogram"),
    case("dp_gaussian", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()),
                 DP(epsilon=0.5, delta=1e-6, noise="gaussian")),
         RELEASED, public_shape=True, why="DP count with Gaussian noise"),
    case("dp_unknown_keys", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("hours-per-week").agg(n=pets.count()),
                 DP(epsilon=0.5, delta=1e-6)),
         RELEASED, why="DP with keys that are not public (thresholded, delta > 0)"),
    case("dp_unit_bounded", unit, frame_setup(UNIT_POLICY),
         release(lambda s: s.table("t").group_by("clinic").agg(
             n=pets.count(), c=pets.sum("cost")), dp_half),
         RELEASED, neighbours=UNIT_NEIGHBOURS, public_shape=True,
         why="DP with a privacy unit of several rows (contribution bounding)"),
    case("dp_unit_bounded_parquet_in_place", unit, parquet_in_place_setup(UNIT_POLICY),
         release(lambda s: s.table("t").group_by("clinic").agg(
             n=pets.count(), c=pets.sum("cost")), dp_half),
         RELEASED, neighbours=UNIT_NEIGHBOURS, public_shape=True,
         why="DP with a privacy unit, a Parquet file read in place (bounded from its ordinals file)"),
    case("dp_count_distinct_persons", unit, frame_setup(UNIT_POLICY),
         release(lambda s: s.table("t").agg(p=pets.count_distinct()), dp_half),
         RELEASED, neighbours=UNIT_NEIGHBOURS, why="DP count of distinct persons"),
    case("dp_sum_inferred_type", lambda: {"main": pd.DataFrame({"x": np.arange(200) % 90})},
         frame_setup(TYPED_POLICY),
         release(lambda s: s.table("t").agg(total=pets.sum("x"), n=pets.count()), dp_half),
         RELEASED, public_shape=True, neighbours=(
             Neighbour("+person with a fractional value", lambda d: pd.concat(
                 [d, pd.DataFrame({"x": [42.5]})])),
             Neighbour("-one", lambda d: d.iloc[1:])),
         why="a declared numeric type: explain must not depend on the type the rows suggest"),
    case("sql_text", adult, adult_setup(),
         sql("SELECT sex, COUNT(*) AS n, AVG(age) AS a FROM adult WHERE age >= 25 GROUP BY sex",
             dp_half),
         RELEASED, public_shape=True, why="SQL text"),
    # post-processing (pets.post): HAVING / ORDER BY / LIMIT act on the noisy values only,
    # so the rows kept may differ between D and D' (no public_shape) but explain, cost,
    # scales and columns may not
    case("sql_having_order_limit_expr", adult, adult_setup(),
         sql("SELECT education, COUNT(*) AS n, SUM(age) / COUNT(*) AS m, STDDEV(age) AS sd "
             "FROM adult GROUP BY education HAVING COUNT(*) > 400 ORDER BY n DESC, m LIMIT 5",
             dp_half),
         RELEASED, why="SQL HAVING, ORDER BY, LIMIT and an expression over aggregates"),
    case("sql_list_of_groups", adult, adult_setup(),
         sql("SELECT race AS r FROM adult WHERE age > 80 GROUP BY race", dp_half),
         RELEASED, why="SELECT col GROUP BY col: the groups whose noisy count is positive"),
    case("builder_having_compute", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("race").agg(n=pets.count(), t=pets.sum("age"))
                 .compute(avg=pets.out("t") / pets.out("n")).having(pets.out("n") > 50)
                 .order_by("avg", descending=True).limit(2), dp_half),
         RELEASED, why="builder having / order_by / limit / compute"),
    case("refuse_post_on_kanon", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex").limit(3),
                 pets.KAnonymity(k=5)),
         refused(pets.QueryError), why="post-processing is for DP releases"),

    # ---------------------------------------------------------------- DP refusals
    case("refuse_negative_list", adult, adult_setup(),
         release(lambda s: s.table("adult").agg(w=pets.sum("fnlwgt", bounds=(0, 1e6))), dp_half),
         refused(pets.PolicyError, "negative_list"), why="negative-listed column"),
    case("refuse_negative_list_sql", adult, adult_setup(),
         sql("SELECT sex, COUNT(*) AS n FROM adult WHERE fnlwgt > 100000 GROUP BY sex", dp_half),
         refused(pets.PolicyError, "negative_list"), why="negative-listed column in SQL"),
    case("refuse_unknown_column", adult, adult_setup(),
         release(lambda s: s.table("adult").agg(w=pets.sum("salary", bounds=(0, 1))), dp_half),
         refused(pets.QueryError), why="unknown column, granted analyst"),
    case("refuse_default_deny", unit, frame_setup(UNIT_POLICY),
         release(lambda s: s.table("t").agg(x=pets.sum("score", bounds=(0, 10))), dp_half),
         refused(pets.PolicyError, "default_deny"), neighbours=UNIT_NEIGHBOURS,
         why="a column the policy does not list"),
    case("refuse_grade_kanon", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex", "occupation"),
                 pets.KAnonymity(k=5)),
         refused(pets.PolicyError, "grade"), why="grade 3 does not allow extracts"),
    case("refuse_max_epsilon", adult, adult_setup(),
         release(lambda s: s.table("adult").agg(g=pets.sum("capital-gain", bounds=(0, 100_000))),
                 DP(epsilon=2.0)),
         refused(pets.PolicyError, "max_epsilon"), why="per-release epsilon cap"),
    case("refuse_budget", adult, adult_setup(epsilon=1.0),
         release(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()),
                 DP(epsilon=1.5)),
         refused(pets.BudgetExceeded), why="budget exceeded"),
    case("refuse_public_keys", adult, adult_setup(),
         release(lambda s: s.table("adult").group_by("hours-per-week").agg(n=pets.count()),
                 dp_half),
         refused(pets.PolicyError, "public_keys"), why="keys not public, delta = 0"),
    case("refuse_identifier_group_by", unit, frame_setup(UNIT_POLICY),
         release(lambda s: s.table("t").group_by("person_id", keys=["P000", "P001", "Z002"]).agg(
             n=pets.count()), dp_half),
         refused(pets.PolicyError, "identifier_group_by"), neighbours=UNIT_NEIGHBOURS,
         why="group by an identifier under DP"),

    # ---------------------------------------------------------------- overflow, cells
    case("overflow_sum_default", overflow_data, frame_setup(OVERFLOW_POLICY, epsilon=20.0),
         release(overflow_q, OVERFLOW_DP), ANY, neighbours=OVERFLOW_NEIGHBOURS,
         why="sum(bounds=(0, 2^43)) on 2^20 ± 1 rows: the outcome must not depend on the "
             "row count"),
    case("overflow_sum_max_rows", overflow_data,
         frame_setup(OVERFLOW_POLICY_MAX_ROWS, epsilon=20.0), release(overflow_q, OVERFLOW_DP), REFUSED, neighbours=OVERFLOW_NEIGHBOURS,
         why="with [dataset] max_rows = 2^21 the sum can overflow: refused from bounds alone"),
    case("cells_policy_max_cells", cells_data, frame_setup(cells_policy(max_cells=10_000)),
         release(cells_q(20), dp_half), REFUSED, neighbours=CELL_NEIGHBOURS,
         why="20^4 = 160,000 cells against [dataset] max_cells = 10,000"),
    case("cells_default_limit", cells_data, frame_setup(cells_policy()),
         release(cells_q(2**16), dp_half), REFUSED, neighbours=CELL_NEIGHBOURS, isolate=True,
         why="(2^16)^4 = 2^64 cells against the default cell limit (today: the int64 "
             "product wraps to 0); run in a child process"),

    # ---------------------------------------------------------------- k-anonymous extracts
    case("kanon_extract", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, max_suppression=0.2)),
         RELEASED_ON_D, why="a k-anonymous extract (counted against max_extracts)"),
    case("kanon_extract_entropy", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, max_suppression=0.2, metric="entropy")),
         RELEASED_ON_D, why="a k-anonymous extract minimising non-uniform entropy (its "
                            "objective's tables are built from the data)"),
    case("kanon_huge_k_filtered", adult, adult_setup(),
         release(lambda s: s.table("adult").filter(col("age") >= 50).select("age", "sex",
                                                                             "education"),
                 pets.KAnonymity(k=100_000)),
         REFUSED, why="k larger than the filtered table (today: an exact row count)"),
    case("kanon_missing_qi", adult, adult_setup(adult_policy_with(wc=_workclass_qi)),
         release(lambda s: s.table("adult").select("sex", "workclass"),
                 pets.KAnonymity(k=5, max_suppression=0.2)),
         ANY, why="missing values in a quasi-identifier (today: an exact count of them)"),
    case("kanon_holder_risk_models", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(max_risk=0.1, sample_fraction=0.2,
                                                            max_uniqueness=0.05, k_map=5))),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, max_suppression=0.2)),
         RELEASED_ON_D, why="the policy's [kanon] average risk, population uniqueness and "
                            "estimated k-map on every extract"),
    case("kanon_holder_population_models", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(k_map=10, delta_presence=[0.0, 0.5],
                                                            population="POP"))),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, max_suppression=0.2)),
         RELEASED_ON_D, why="the policy's [kanon] k-map and δ-presence against a population file "
                  "(a neighbour outside the population fails after its charge)"),
    case("kanon_holder_models_impossible", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(max_risk=0.0001))),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, max_suppression=0.2)),
         REFUSED, why="a [kanon] average risk no extract meets: the fixed failure message, "
                      "charged"),
    case("refuse_kanon_holder_models_mondrian", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(max_risk=0.1))),
         release(lambda s: s.table("adult").select("age", "sex"),
                 pets.KAnonymity(k=5, algorithm="mondrian")),
         refused(pets.PolicyError, "kanon"), why="[kanon] models need the optimal search"),
    case("refuse_kanon_min_k", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex"), pets.KAnonymity(k=2)),
         refused(pets.PolicyError, "min_k"), why="k below the grade's min_k"),
    case("refuse_kanon_unknown_column", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "salary"), pets.KAnonymity(k=5)),
         refused(pets.QueryError), why="unknown column in an extract"),
    # the search options of an extract within the policy's [kanon] choices (issue 17)
    case("kanon_extract_cells", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, recoding="cells")),
         RELEASED_ON_D, why="cell suppression: the fewest QI cells replaced by '*'"),
    case("kanon_extract_heuristic_budget", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(search="heuristic", max_nodes=50))),
         release(lambda s: s.table("adult").select("age", "sex", "race", "education"),
                 pets.KAnonymity(k=5, max_suppression=0.2)),
         RELEASED_ON_D, why="the heuristic search bounded by the policy's node budget (no clock)"),
    case("refuse_kanon_option_search", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(search=["optimal"]))),
         release(lambda s: s.table("adult").select("age", "sex", "race"),
                 pets.KAnonymity(k=5, search="heuristic", max_nodes=100)),
         refused(pets.PolicyError, "kanon.search"), why="a search the policy does not allow"),
    case("refuse_kanon_option_gs_factor", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(gs_factor=[0.4, 0.6]))),
         release(lambda s: s.table("adult").select("age", "sex", "race"),
                 pets.KAnonymity(k=5, gs_factor=0.9)),
         refused(pets.PolicyError, "kanon.gs_factor"), why="a gs-factor outside the policy's range"),
    case("refuse_kanon_cells_population", adult,
         adult_setup(adult_policy_with(kanon=_kanon_models(k_map=10, delta_presence=[0.0, 0.5],
                                                            population="POP"))),
         release(lambda s: s.table("adult").select("age", "sex", "race"),
                 pets.KAnonymity(k=5, recoding="cells")),
         refused(pets.PolicyError, "kanon.recoding"),
         why="cell suppression cannot guarantee the policy's population models"),
    case("refuse_kanon_t_distance_no_hierarchy", adult, adult_setup(),
         release(lambda s: s.table("adult").select("age", "sex", "relationship"),
                 pets.KAnonymity(k=5, t=0.3, sensitive="relationship", t_distance="hierarchical")),
         refused(pets.PolicyError, "hierarchy"),
         why="the hierarchical distance without the policy's hierarchy of the sensitive column"),

    # ---------------------------------------------------------------- HE across holders
    case("he_dp_release", adult_halves, adult_setup(),
         federated(lambda s: s.table("adult").group_by("sex").agg(
             n=pets.count(), h=pets.sum("hours-per-week")), HE2048(dp=DP(epsilon=0.5))),
         RELEASED, neighbours=HE_NEIGHBOURS, public_shape=True,
         why="HE totals with DP across two holders"),
    case("he_without_dp", adult_halves, adult_setup(),
         federated(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()), HE2048()),
         REFUSED, neighbours=HE_REFUSAL_NEIGHBOURS,
         why="HE() without dp, on a policy with no he_exact opt-in"),
    case("he_exact_opt_in", adult_halves, adult_setup(adult_policy_with(x=_he_exact_grade1)),
         federated(lambda s: s.table("adult").group_by("sex").agg(
             n=pets.count(), e=pets.sum("education-num")), HE2048()),
         RELEASED, neighbours=HE_NEIGHBOURS,
         why="exact HE totals where the policy opts grade 1 into he_exact (counted)"),
    case("he_identifier_group_by", unit_halves, frame_setup(UNIT_POLICY),
         federated(lambda s: s.table("t").group_by("person_id", keys=["P000", "P001"]).agg(
             c=pets.sum("cost")), HE2048(dp=DP(epsilon=0.5))),
         refused(pets.PolicyError, "identifier_group_by"),
         neighbours=(UNIT_NEIGHBOURS[1],),
         why="HE with group_by(identifier, keys=...)"),
    case("he_one_holder", adult, adult_setup(),
         federated(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()),
                   HE2048(dp=DP(epsilon=0.5))),
         REFUSED, neighbours=HE_REFUSAL_NEIGHBOURS, why="a Federation of one holder"),
    case("he_threshold_one", adult_halves, adult_setup(),
         federated(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()),
                   HE2048(dp=DP(epsilon=0.5)), threshold=1),
         REFUSED, neighbours=HE_REFUSAL_NEIGHBOURS, why="two holders, threshold 1"),
    case("he_max_epsilon", adult_halves, adult_setup(),
         federated(lambda s: s.table("adult").agg(g=pets.sum("capital-gain", bounds=(0, 100_000))),
                   HE2048(dp=DP(epsilon=2.0))),
         refused(pets.PolicyError, "max_epsilon"), neighbours=HE_REFUSAL_NEIGHBOURS,
         why="HE with dp above the grade's max_epsilon"),
    case("he_budget", adult_halves, adult_setup(epsilon=1.0),
         federated(lambda s: s.table("adult").group_by("sex").agg(n=pets.count()),
                   HE2048(dp=DP(epsilon=1.5))),
         refused(pets.BudgetExceeded), neighbours=HE_REFUSAL_NEIGHBOURS, why="HE over budget"),
    case("he_negative_list", adult_halves, adult_setup(),
         federated(lambda s: s.table("adult").agg(w=pets.sum("fnlwgt", bounds=(0, 1e6))),
                   HE2048(dp=DP(epsilon=0.5))),
         refused(pets.PolicyError, "negative_list"), neighbours=HE_REFUSAL_NEIGHBOURS,
         why="HE on a negative-listed column"),

    # ---------------------------------------------------------------- registration
    case("register_reserved_name_csv", reserved_data, register_in_place("csv")[0],
         (register_in_place("csv")[1], None), REFUSED, neighbours=UNIT_NEIGHBOURS[1:2],
         release_form=False, why="a CSV column named __pets_… registered in place"),
    case("register_reserved_name_parquet", reserved_data, register_in_place("parquet")[0],
         (register_in_place("parquet")[1], None), REFUSED, neighbours=UNIT_NEIGHBOURS[1:2],
         release_form=False, why="a Parquet column named __pets_… registered in place"),

    # ---------------------------------------------------------------- dummy tables
    # not releases (nothing is charged): the whole dummy frame, and a dummy release's
    # shape, must be the same on every neighbour
    case("dummy_frame", adult, adult_setup(),
         (lambda w: w.local().dummy("adult", rows=200, seed=1), None), RELEASED,
         release_form=False, why="s.dummy on Adult: the frame itself"),
    case("dummy_frame_privacy_unit", unit, frame_setup(UNIT_POLICY),
         (lambda w: w.local().dummy("t", rows=200, seed=1), None), RELEASED,
         neighbours=UNIT_NEIGHBOURS, release_form=False,
         why="s.dummy with a privacy unit: fake persons of several rows"),
    case("dummy_dp_release", adult, adult_setup(),
         dummy_release(lambda s: s.table("adult").group_by("sex", "race").agg(
             n=pets.count(), m=pets.mean("hours-per-week")), dp_half),
         RELEASED, release_form=False, public_shape=True,
         why="a DP release on the dummy (dummy=True)"),
    case("dummy_kanon_extract", adult, adult_setup(),
         dummy_release(lambda s: s.table("adult").select("age", "sex", "education"),
                       pets.KAnonymity(k=5)),
         RELEASED, release_form=False, why="a k-anonymous extract on the dummy (dummy=True)"),
    case("dummy_refused_by_policy", adult, adult_setup(),
         dummy_release(lambda s: s.table("adult").select("age", "occupation"),
                       pets.KAnonymity(k=5)),
         refused(pets.PolicyError, "grade"), release_form=False,
         why="a dummy release the grade refuses"),
    case("no_grant_dummy", adult, adult_setup(),
         (lambda w: w.local(STRANGER).dummy("adult", rows=10, seed=1), None),
         refused(pets.PolicyError, "no_grant"), release_form=False,
         why="an analyst without a grant asks for a dummy table"),
]

# ---------------------------------------------------------------- an analyst with no grant
#: what a stranger (no grant on the dataset) may ask: whatever columns it names —
#: existing, unknown, negative-listed, capped — it must learn the same thing: no grant
NO_GRANT_REQUESTS = {
    "existing_column": release(lambda s: s.table("adult").agg(
        m=pets.mean("age")), dp_half, analyst=STRANGER),
    "unknown_column": release(lambda s: s.table("adult").agg(
        m=pets.mean("salary", bounds=(0, 1))), dp_half, analyst=STRANGER),
    "near_miss_column": release(lambda s: s.table("adult").agg(
        m=pets.mean("agee", bounds=(0, 1))), dp_half, analyst=STRANGER),
    "negative_listed_column": release(lambda s: s.table("adult").agg(
        m=pets.sum("fnlwgt", bounds=(0, 1e6))), dp_half, analyst=STRANGER),
    "capped_column": release(lambda s: s.table("adult").agg(
        m=pets.sum("capital-gain", bounds=(0, 1))), DP(epsilon=2.0), analyst=STRANGER),
    "no_public_keys": release(lambda s: s.table("adult").group_by("hours-per-week").agg(
        n=pets.count()), dp_half, analyst=STRANGER),
    "kanon_extract": release(lambda s: s.table("adult").select("age", "sex", "occupation"),
                             pets.KAnonymity(k=2), analyst=STRANGER),
}
NO_GRANT_CASES = [
    case(f"no_grant_{name}", adult, adult_setup(), req, refused(pets.PolicyError, "no_grant"),
         why=f"an analyst without a grant, {name.replace('_', ' ')}")
    for name, req in NO_GRANT_REQUESTS.items()
] + [
    case("no_grant_sql_unknown_column", adult, adult_setup(),
         sql("SELECT AVG(salary) AS m FROM adult", dp_half, analyst=STRANGER),
         refused(pets.PolicyError, "no_grant"), why="an analyst without a grant, SQL"),
    case("no_grant_he", adult_halves, adult_setup(),
         federated(lambda s: s.table("adult").agg(w=pets.sum("fnlwgt", bounds=(0, 1e6))),
                   HE2048(dp=DP(epsilon=0.5)), analyst=STRANGER),
         refused(pets.PolicyError, "no_grant"), neighbours=HE_REFUSAL_NEIGHBOURS,
         why="an analyst without a grant, HE on a negative-listed column"),
]
CASES += NO_GRANT_CASES


# =========================================================================== the tests
def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_nothing_observable_depends_on_the_data_unless_charged(c: Case, tmp_path: Path) -> None:
    check_case(c, tmp_path)


def test_an_analyst_without_a_grant_learns_nothing_about_the_columns(tmp_path: Path) -> None:
    """Whatever columns a stranger names — existing, unknown, near an existing name,
    negative-listed, capped, without public keys, in an extract — the refusal and
    explain are the same (explain's ``cost`` aside: it echoes the ε the request asked)."""
    seen = {}
    for c in NO_GRANT_CASES:
        if c.name.startswith("no_grant_he") or c.name.startswith("no_grant_sql"):
            continue
        (_, obs), = run_case(Case(**{**c.__dict__, "neighbours": ()}), tmp_path)
        seen[c.name] = obs

    def view(o: Any) -> Any:
        expl = o.explain
        if isinstance(expl, tuple) and expl and isinstance(expl[0], tuple):
            expl = tuple(x for x in expl if x[0] != "cost")
        return (o.error_view(), expl)

    first_name, first = next(iter(seen.items()))
    differ = []
    for name, o in seen.items():
        if view(o) != view(first):
            a, b = _first_difference(view(first), view(o))
            differ.append(f"  {name}: {o.brief()}\n    differs from {first_name}: {a!r} vs {b!r}")
    assert not differ, "a stranger learns about the columns:\n" + "\n".join(differ)
