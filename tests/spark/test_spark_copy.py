"""``register(..., engine="spark", copy=True)``: Spark writes a copy into the home with
the per-person ordinals and their precomputed choices, and a bounded release keeps rows
by a bit test instead of a window per release (issue 16).

Where the bound binds only on rows per (person, group) and every group is kept, the
kept rows are determined — Σ over persons and groups of min(rows, bound) — so the
copy's answers are compared exactly with pandas and with the window-function path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pets
from pets import plan as P
from pets.engines.base import AggregateRequest, Bounding, Measure

from .conftest import write_parquet

pytestmark = [pytest.mark.spark,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]
pytest.importorskip("pyspark")

KEYS = ["north", "south", "east", "west"]
R = 2  # rows per person and group


def _data(n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(5)  # test DATA only
    return pd.DataFrame({
        "pid": [f"P{i:04d}" for i in rng.integers(0, 900, n)],
        "region": rng.choice(KEYS + ["elsewhere"], n),
        "income": rng.integers(0, 100_000, n),
    })


DATA = _data()


def _policy() -> dict[str, Any]:
    return {
        "dataset": {"privacy_unit": "pid", "max_groups": 4, "max_rows_per_group": R},
        "columns": {
            "pid": {"role": "identifier", "grade": 1},
            "region": {"role": "attribute", "grade": 1, "keys": KEYS},
            "income": {"role": "attribute", "grade": 1, "bounds": [0, 100_000]},
        },
        "grades": {"1": {"allow": ["dp"]}},
    }


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory, spark_engine: Any) -> pets.Holder:
    tmp = tmp_path_factory.mktemp("spark-copy")
    path = write_parquet(DATA, tmp / "people.parquet")
    h = pets.Holder(tmp / "home", spark=spark_engine)
    h.register("copy", path, _policy(), engine="spark", copy=True)
    h.register("inplace", path, _policy(), engine="spark")
    return h


def _expected_by_region() -> pd.Series:
    inkey = DATA[DATA["region"].isin(KEYS)]
    return inkey.groupby(["pid", "region"]).size().clip(upper=R).groupby("region").sum()


def test_the_copy_stores_ordinals_and_bounds_by_a_bit_test(holder: pets.Holder, spark_engine: Any) -> None:
    ds = holder._dataset("copy")
    src = ds.source
    assert Path(src.path).is_dir() and Path(src.path).parent == holder.home / "data"
    assert {o.column for o in src.ordinals} == {None, "region"} and all(o.mask for o in src.ordinals)
    assert not any(c.startswith("__pets_") for c in spark_engine.schema(src))
    want = _expected_by_region()
    for seed in (1, 2, 3):
        req = AggregateRequest((), ("region",), (tuple(KEYS),), (Measure("n", "rows"),),
                               Bounding("pid", 4, R, seed=seed))
        got = spark_engine.aggregate(src, req).set_index("region")["n"]
        assert got.sort_index().to_dict() == want.sort_index().to_dict()
        # the plan Spark runs has no window: the stored mask did the bounding
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        plan = spark_engine._plan(F, Window, spark_engine._frame(src), spark_engine.schema(src), src, req)
        text = plan._jdf.queryExecution().optimizedPlan().toString()
        assert "Window " not in text and "windowspec" not in text.lower(), text
        assert f"__pets_bd__1_keep{seed % 16}" in text and "__pets_bd__1_mask" not in text
    # without ordinals (use_ordinals=False) the windows give the same determined totals
    req = AggregateRequest((), ("region",), (tuple(KEYS),), (Measure("n", "rows"),),
                           Bounding("pid", 4, R, seed=7, use_ordinals=False))
    assert spark_engine.aggregate(src, req).set_index("region")["n"].sort_index().to_dict() == \
        want.sort_index().to_dict()


def test_ungrouped_bound_keeps_min_rows_per_person(holder: pets.Holder, spark_engine: Any) -> None:
    src = holder._dataset("copy").source
    per_person = DATA.groupby("pid").size()
    for r in (1, R, 3):  # R: the stored mask; 1 and 3: the per-release offsets
        req = AggregateRequest((), (), (), (Measure("n", "rows"),), Bounding("pid", 1, r, seed=11))
        got = int(spark_engine.aggregate(src, req)["n"].iloc[0])
        assert got == int(per_person.clip(upper=r).sum())


def test_a_release_on_the_copy_equals_the_in_place_one(holder: pets.Holder) -> None:
    """Through the pipeline: the same exact (huge-ε) counts from the copy (bit test) and
    from the file read in place (windows), both the determined totals."""
    out = {}
    for name in ("copy", "inplace"):
        holder.grant("ana", dataset=name, purpose="p", epsilon=1e7)
        s = holder.session("ana", purpose="p")
        r = s.release(s.table(name).group_by("region", keys=KEYS).agg(n=pets.count()), pets.DP(epsilon=1e6))
        out[name] = r.df.set_index("region")["n"].round().astype(int)
    want = _expected_by_region().reindex(out["copy"].index)
    assert (out["copy"] == want).all() and (out["inplace"] == want).all()


def test_replacing_the_registration_removes_the_old_copy(holder: pets.Holder, tmp_path: Path) -> None:
    path = write_parquet(DATA.head(500), tmp_path / "small.parquet")
    holder.register("again", path, _policy(), engine="spark", copy=True)
    first = Path(holder._dataset("again").source.path)
    holder.register("again", path, _policy(), engine="spark", copy=True, replace=True)
    second = Path(holder._dataset("again").source.path)
    assert first != second and not first.exists() and second.is_dir()
    s = holder.session("ana", purpose="p")
    holder.grant("ana", dataset="again", purpose="p", epsilon=1.0)
    assert s.release(s.table("again").agg(n=pets.count()), pets.DP(epsilon=0.5)).df["n"].notna().all()


def test_the_stored_ordinals_number_each_persons_groups_and_rows(holder: pets.Holder) -> None:
    """The hidden columns as written (one shuffle by person, one sort per ordering):
    per person, the in-key groups are ranked exactly 0 … ng − 1 (one rank per group), the
    rows of each (person, group) exactly 0 … nr − 1, all the person's rows exactly
    0 … n − 1; rows outside the keys carry no group ordinals; each mask keeps at most
    max_groups × max_rows_per_group rows per person."""
    src = holder._dataset("copy").source
    df = pd.read_parquet(src.path)
    assert len(df) == len(DATA)
    (o0,) = [o for o in src.ordinals if o.column is None]
    (o1,) = [o for o in src.ordinals if o.column == "region"]
    _, _, ri0, nr0, pr = o0.columns
    gi, ng, ri, nr, pr1 = o1.columns
    assert pr1 == pr
    per = df.groupby("pid")
    assert (per[ri0].transform(lambda s: sorted(s) == list(range(len(s))))).all()
    assert (df[nr0] == per["pid"].transform("size")).all()
    assert (per[pr].nunique() == 1).all() and df[pr].between(0, 2**15 - 1).all()
    inkey = df[df["region"].isin(KEYS)]
    assert df.loc[~df["region"].isin(KEYS), [gi, ng, ri, nr]].isna().all().all()
    ranks = inkey.groupby(["pid", "region"])[gi].agg(["nunique", "first"])
    assert (ranks["nunique"] == 1).all()
    by_person = ranks.groupby("pid")["first"].agg(lambda s: sorted(s) == list(range(len(s))))
    assert by_person.all()
    assert (inkey[ng] == inkey.groupby("pid")["region"].transform("nunique")).all()
    cells = inkey.groupby(["pid", "region"])
    assert cells[ri].transform(lambda s: sorted(s) == list(range(len(s)))).all()
    assert (inkey[nr] == cells["pid"].transform("size")).all()
    for o, cap in ((o0, R), (o1, 4 * R)):
        assert o.mask.endswith("_keep")
        for k in range(16):
            kept = df[df[f"{o.mask}{k}"]]
            assert kept.groupby("pid").size().max() <= cap
            if o is o1:
                assert kept.groupby(["pid", "region"]).size().max() <= R


def test_a_copy_with_the_choices_in_one_integer_still_bounds_by_a_bit_test(
        holder: pets.Holder, spark_engine: Any, tmp_path: Path) -> None:
    """A copy written before the choices became boolean columns stores them as the bits
    of one integer ``<…>_mask``: the same choice keeps the same rows either way."""
    import dataclasses

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    src = holder._dataset("copy").source
    frame = spark_engine.session.read.parquet(src.path)
    ords = []
    for o in src.ordinals:
        old = o.mask[: -len("_keep")] + "_mask"
        total = sum((F.col(f"{o.mask}{k}").cast("int") * (1 << k) for k in range(16)), F.lit(0))
        frame = frame.withColumn(old, total).drop(*[f"{o.mask}{k}" for k in range(16)])
        ords.append(dataclasses.replace(o, mask=old))
    frame.write.parquet(str(tmp_path / "old.spark"))
    old_src = dataclasses.replace(src, path=str(tmp_path / "old.spark"), ordinals=tuple(ords))
    for seed in (5, 6):
        # the sums depend on which of a person's rows the choice keeps
        req = AggregateRequest((), ("region",), (tuple(KEYS),),
                               (Measure("n", "rows"), Measure("s", "sum", "income", 0, 100_000)),
                               Bounding("pid", 4, R, seed=seed))
        new = spark_engine.aggregate(src, req).set_index("region").sort_index()
        got = spark_engine.aggregate(old_src, req).set_index("region").sort_index()
        assert got.to_dict() == new.to_dict()
        plan = spark_engine._plan(F, Window, spark_engine._frame(old_src), spark_engine.schema(old_src),
                                  old_src, req)
        assert "__pets_bd__1_mask" in plan._jdf.queryExecution().optimizedPlan().toString()
    req = AggregateRequest((), (), (), (Measure("n", "rows"),), Bounding("pid", 4, R, seed=9))
    assert spark_engine.aggregate(old_src, req).to_dict() == spark_engine.aggregate(src, req).to_dict()
