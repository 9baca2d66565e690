"""The JSON wire form of tables: every dtype pets results use comes back as it went."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pets import wire


def _roundtrip(df: pd.DataFrame) -> pd.DataFrame:
    return wire.frame_from_json(json.loads(json.dumps(wire.frame_to_json(df))))


def test_every_dtype_round_trips() -> None:
    df = pd.DataFrame({
        "i64": np.array([1, 2, 3]),
        "i32": np.array([1, 2, 3], dtype="int32"),
        "Int64": pd.array([1, None, 3], dtype="Int64"),
        "obj": pd.Series(["x", "y", None], dtype=object),
        "f64": [1.5, math.nan, math.inf],
        "f32": np.array([1.0, -math.inf, 3.0], dtype="float32"),
        "Float64": pd.array([1.0, None, 2.0], dtype="Float64"),
        "bool": [True, False, True],
        "cat": pd.Categorical(["u", "v", "u"], categories=["v", "u"], ordered=True),
        "tuple": pd.Series([(1, 2), (3, 4), (5, 6)], dtype=object),
        "string": pd.array(["p", None, "q"], dtype="string"),
    })
    back = _roundtrip(df)
    pd.testing.assert_frame_equal(back, df)
    assert back["tuple"][1] == (3, 4)


def test_empty_frame() -> None:
    pd.testing.assert_frame_equal(_roundtrip(pd.DataFrame({"n": np.array([], dtype="int64")})),
                                  pd.DataFrame({"n": np.array([], dtype="int64")}))


@pytest.mark.parametrize("values", [[1, None], ["a", 1]])
def test_integer_column_with_holes_keeps_its_values(values: list) -> None:
    d = {"columns": [{"name": "n", "dtype": "int64"}], "data": [values]}
    assert list(wire.frame_from_json(d)["n"].astype(object).where(lambda s: s.notna(), None)) == values


@pytest.mark.parametrize("where", ["plan", "group_by entry", "aggs entry"])
def test_a_plan_with_a_key_this_version_does_not_know_is_refused(where: str) -> None:
    """A newer client's clause must never be silently dropped by an older server."""
    import pets
    from pets.plan import Plan

    d = pets.Query("adult").group_by("sex").agg(n=pets.count()).plan.to_dict()
    target = {"plan": d, "group_by entry": d["group_by"][0], "aggs entry": d["aggs"][0]}[where]
    target["qualify"] = "n > 3"
    with pytest.raises(pets.QueryError, match=f"unknown key 'qualify' in the {where}"):
        Plan.from_dict(d)
