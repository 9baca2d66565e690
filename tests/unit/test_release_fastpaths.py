"""The per-release fast paths give exactly what the plain code gave.

Each fast path here (the answer key put together part by part, the interval frame from
cached key columns, whole-array JSON of NumPy columns, the bare scan of a source that
needs no cleaning) is checked against the straightforward form it replaced."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

import pets
from pets import wire
from pets.dp import aggregate as agg
from pets.engines.duckdb import _relation_sql
from pets.pipeline import prepare


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> pets.Session:
    h = pets.Holder(tmp_path_factory.mktemp("fast") / "home")
    h.register("adult", pets.example_data(), pets.example_policy())
    h.grant("ana", dataset="adult", purpose="p", epsilon=1e6)
    return h.session("ana", purpose="p")


def _old_answer_key(ctx) -> str:
    plan = dataclasses.replace(ctx.plan, post=None) if ctx.plan.post is not None else ctx.plan
    text = json.dumps(
        {"dataset": ctx.plan.dataset, "version": ctx.dataset.version,
         "policy": ctx.policy.to_dict(), "plan": plan.to_dict(),
         "protection": ctx.protection.to_dict(), "analyst": ctx.analyst,
         "purpose": ctx.purpose},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


QUERIES = [
    lambda: pets.Query("adult").group_by("sex").agg(n=pets.count()),
    lambda: (pets.Query("adult").filter(pets.col("age") >= 30)
             .group_by("sex", "race").agg(n=pets.count(), m=pets.mean("age"), s=pets.sum("hours-per-week"))),
    lambda: pets.Query("adult").agg(n=pets.count(), v=pets.variance("age")),
    lambda: pets.Query("adult").group_by("sex").agg(n=pets.count()).having(pets.col("n") > 10),
]


@pytest.mark.parametrize("make", QUERIES)
def test_answer_key_is_the_canonical_json_digest(session: pets.Session, make) -> None:
    for eps in (0.5, 0.123456789):
        p = prepare(session, make(), pets.DP(epsilon=eps))
        assert p.compiled.key == _old_answer_key(p.context)
    # the policy's text is kept on the policy: a second key reads the same text
    p2 = prepare(session, make(), pets.DP(epsilon=0.5))
    assert p2.compiled.key == _old_answer_key(p2.context)


def test_answer_key_differs_by_analyst_purpose_and_plan(session: pets.Session) -> None:
    p = prepare(session, QUERIES[0](), pets.DP(epsilon=0.5))
    ctx = p.context
    other = dataclasses.replace(ctx, analyst="bob")
    from pets.mechanisms.dp import answer_key

    assert answer_key(other) != p.compiled.key == answer_key(ctx)
    assert answer_key(dataclasses.replace(ctx, purpose="q")) != p.compiled.key
    assert prepare(session, QUERIES[1](), pets.DP(epsilon=0.5)).compiled.key != p.compiled.key


def _old_ci(res: agg.NoisyResult, level: float) -> pd.DataFrame:
    """The interval frame as it was built before the cached columns."""
    c = res.compiled
    base = c.cell_frame()
    n, k = len(base), len(c.outputs)
    cells = base.iloc[np.tile(np.arange(n), k)].reset_index(drop=True)
    names = np.empty(k, dtype=object)
    names[:] = [o.agg.name for o in c.outputs]
    ends = [res._interval(o, level) for o in c.outputs]
    cols = {
        "aggregate": np.repeat(names, n),
        "value": np.concatenate([res._value(o).astype(np.float64) for o in c.outputs]),
        "lower": np.concatenate([np.asarray(lo, dtype=np.float64) for lo, _ in ends]),
        "upper": np.concatenate([np.asarray(hi, dtype=np.float64) for _, hi in ends]),
    }
    if res.suppressed.any():
        gone = np.tile(res.suppressed, k)
        for name in ("value", "lower", "upper"):
            cols[name][gone] = np.nan
    return pd.DataFrame({**{g: cells[g] for g in c.group_columns}, **cols},
                        index=pd.RangeIndex(n * k))


@pytest.mark.parametrize("make", QUERIES[:3])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_interval_frame_matches_the_plain_construction(session: pets.Session, make, level) -> None:
    r = session.release(make(), pets.DP(epsilon=1.0))
    res = r._ci.__self__
    assert isinstance(res, agg.NoisyResult)
    got = r.ci(level)
    pd.testing.assert_frame_equal(got, _old_ci(res, level))
    # twice: the cached key columns are not changed by a caller changing a frame
    got.iloc[0, 0] = "changed"
    pd.testing.assert_frame_equal(r.ci(level), _old_ci(res, level))


def test_interval_frame_with_unknown_keys_and_many_cells(session: pets.Session,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    q = pets.Query("adult").group_by("sex", "race").agg(n=pets.count(), m=pets.mean("age"))
    r = session.release(q, pets.DP(epsilon=1.0))
    res = r._ci.__self__
    monkeypatch.setattr(agg, "_CELL_SERIES_MAX", 1)  # the path of releases with many cells
    pd.testing.assert_frame_equal(r.ci(0.95), _old_ci(res, 0.95))


def test_frame_json_of_numpy_columns_matches_element_by_element() -> None:
    df = pd.DataFrame({
        "f": [1.5, math.nan, math.inf, -math.inf, 0.1],
        "g": [1.0, 2.0, 3.0, 4.0, 5.0],
        "i": np.array([1, -2, 3, 2**62, 0]),
        "u": np.array([1, 2, 3, 2**63 + 5, 0], dtype=np.uint64),
        "b": [True, False, True, True, False],
        "f32": np.array([0.5, 1.0, np.nan, 2.0, 3.0], dtype=np.float32),
    })
    out = wire.frame_to_json(df)
    assert out["data"][0] == [1.5, None, "inf", "-inf", 0.1]
    assert out["data"][1] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert out["data"][2] == [1, -2, 3, 2**62, 0] and all(type(v) is int for v in out["data"][2])
    assert out["data"][3] == [1, 2, 3, 2**63 + 5, 0]
    assert out["data"][4] == [True, False, True, True, False]
    assert all(type(v) is bool for v in out["data"][4])
    assert out["data"][5] == [0.5, 1.0, None, 2.0, 3.0]
    assert [c["dtype"] for c in out["columns"]] == ["float64", "float64", "int64", "uint64", "bool", "float32"]
    json.dumps(out, allow_nan=False)  # nothing a strict JSON encoder refuses
    pd.testing.assert_frame_equal(wire.frame_from_json(json.loads(json.dumps(out))), df)


def test_relation_is_the_bare_scan_only_when_nothing_is_cleaned() -> None:
    raw = [("a", "VARCHAR"), ("b", "BIGINT")]
    assert _relation_sql('"t"', raw, (), False) == '"t"'
    assert _relation_sql('"t"', [("b", "BIGINT")], ("?",), True) == '"t"'  # no text column
    trimmed = _relation_sql('"t"', raw, (), True)
    assert trimmed.startswith("(SELECT trim(") and trimmed.endswith('FROM "t")')
    marked = _relation_sql('"t"', raw, ("?",), False)
    assert "CASE WHEN" in marked and "'?'" in marked


@pytest.mark.parametrize("make", QUERIES + [
    lambda: pets.Query("adult").group_by("race").agg(q=pets.quantile("age", 0.5), n=pets.count()),
    lambda: pets.Query("adult").group_by("education").agg(n=pets.count()),
])
def test_interval_json_is_the_json_of_the_interval_frame(session: pets.Session, make) -> None:
    r = session.release(make(), pets.DP(epsilon=0.3))
    out = wire.release_to_json(r, [0.9, 0.95])
    for level in (0.9, 0.95):
        assert out["ci"][repr(level)] == wire.frame_to_json(r.ci(level))
    json.dumps(out, allow_nan=False)


def test_interval_json_with_withheld_cells(tmp_path) -> None:
    """Cells under the policy's minimum group size come out as null, as the frame's NaN."""
    pol = pets.Policy.load(pets.example_policy()).to_dict()
    for g in pol.get("grades", {}).values():
        g["min_group_size"] = 10_000
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data(), pol)
    h.grant("ana", dataset="adult", purpose="p", epsilon=100)
    s = h.session("ana", purpose="p")
    r = s.release(pets.Query("adult").group_by("race").agg(n=pets.count(), m=pets.mean("age")),
                  pets.DP(epsilon=1.0))
    assert r.suppressed > 0
    got = wire.release_to_json(r, [0.95])["ci"]["0.95"]
    assert got == wire.frame_to_json(r.ci(0.95))
    assert None in got["data"][got["columns"].index({"name": "value", "dtype": "float64"})]


def test_changing_a_release_frame_changes_no_later_release(session: pets.Session) -> None:
    """The key columns are cached between releases: a frame changed in place by its
    caller must leave them as they were."""
    q = lambda: pets.Query("adult").group_by("sex").agg(n=pets.count())  # noqa: E731
    first = session.release(q(), pets.DP(epsilon=0.7))
    keys = first.df["sex"].tolist()
    first.df.loc[0, "sex"] = "changed"
    first.df["sex"] = "all changed"
    ci = first.ci(0.95)
    ci.loc[0, "sex"] = "changed"
    later = session.release(q(), pets.DP(epsilon=0.71))
    assert later.df["sex"].tolist() == keys
    assert later.ci(0.95)["sex"].tolist() == keys
    assert wire.release_to_json(later, [0.95])["ci"]["0.95"]["data"][0] == keys
