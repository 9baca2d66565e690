"""Registration holds the policy against the data and tells the holder (issue #14, 1):
declared keys that never occur, rows outside the keys, bounds that clip many rows,
undeclared missing markers — exact counts from the real engine on real files."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

import pets
from pets.registration import CLIP_WARN_FRACTION


def _policy(**columns: dict) -> dict:
    return {
        "dataset": {"missing": ["?"]},
        "columns": columns,
        "grades": {"1": {"allow": ["dp"]}},
    }


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "sex": ["Female"] * 4 + ["Male"] * 5 + ["?"],
        "age": [10, 20, 30, 40, 50, 60, 70, 80, 90, 95],
        "note": ["a", "N/A", "N/A", "b", "c", "unknown", "d", "e", "f", "g"],
    })


def test_a_policy_that_agrees_with_the_data_reports_ok(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "h")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pets.RegistrationWarning)
        r = h.register("adult", pets.example_data(), pets.example_policy())
    assert isinstance(r, pets.RegistrationReport)
    assert r.ok and r.problems() == [] and r.rows == 32_561
    sex = next(f for f in r.keys if f.column == "sex")
    assert (sex.declared, sex.unused, sex.rows_outside) == (2, (), 0)
    wc = next(f for f in r.keys if f.column == "workclass")
    assert wc.missing == 1_836 and wc.rows_outside == 0  # "?" is declared missing
    age = next(b for b in r.bounds if b.column == "age")
    assert (age.present, age.clipped) == (32_561, 0)
    assert str(r) == "registered 'adult': 32,561 rows; keys, bounds and markers agree with the data"
    df = r.to_frame()
    assert list(df.columns) == ["column", "check", "ok", "detail"] and df["ok"].all()


def test_a_key_typo_is_reported_with_the_rows_it_leaves_out(tmp_path: Path, frame: pd.DataFrame) -> None:
    h = pets.Holder(tmp_path / "h")
    pol = _policy(sex={"role": "attribute", "grade": 1, "keys": ["female", "male", "Male"]},
                  age={"role": "attribute", "grade": 1, "bounds": [0, 100]},
                  note={"role": "attribute", "grade": 1})
    with pytest.warns(pets.RegistrationWarning) as caught:
        r = h.register("t", frame, pol)
    assert caught[0].message.report is r
    assert not r.ok
    (sex,) = r.keys
    assert sex.unused == ("female", "male")
    assert (sex.rows_outside, sex.values_outside, sex.examples, sex.missing) == (4, 1, (("Female", 4),), 1)
    text = "\n".join(r.problems())
    assert "column 'sex': 2 of 3 declared keys never occur: 'female', 'male'" in text
    assert "column 'sex': 4 rows hold a value that is not a key" in text and "'Female' (4 rows)" in text
    # the dataset is registered all the same: the holder decides
    assert h.datasets() == ["t"]


def test_bounds_that_clip_many_values_are_reported(tmp_path: Path, frame: pd.DataFrame) -> None:
    h = pets.Holder(tmp_path / "h")
    pol = _policy(age={"role": "attribute", "grade": 1, "bounds": [15, 75]})
    with pytest.warns(pets.RegistrationWarning, match=r"the bounds \[15, 75\] clip 4 of 10 values \(40.0%: 1 below, 3 above\)"):
        r = h.register("t", frame, pol)
    (age,) = r.bounds
    assert (age.below, age.above, age.present, age.missing) == (1, 3, 10, 0)
    # at most CLIP_WARN_FRACTION clipped: fine
    big = pd.DataFrame({"age": list(range(1000))})
    with warnings.catch_warnings():
        warnings.simplefilter("error", pets.RegistrationWarning)
        r2 = h.register("big", big, _policy(age={"role": "attribute", "grade": 1,
                                                   "bounds": [0, 999 - int(1000 * CLIP_WARN_FRACTION)]}))
    assert r2.bounds[0].clipped == 10 and r2.ok


def test_undeclared_missing_markers_are_reported(tmp_path: Path, frame: pd.DataFrame) -> None:
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False)
    h = pets.Holder(tmp_path / "h")
    pol = _policy(note={"role": "attribute", "grade": 1})
    with pytest.warns(pets.RegistrationWarning, match="not in \\[dataset\\] missing: 'N/A' \\(2 rows\\), 'unknown' \\(1 row\\)"):
        r = h.register("t", csv, pol)  # a CSV read in place, through the engine
    (m,) = r.markers
    assert m.column == "note" and m.undeclared == (("N/A", 2), ("unknown", 1))
    assert r.missing["note"] == 0
    pol["dataset"]["missing"] = ["?", "N/A", "unknown"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", pets.RegistrationWarning)
        r = h.register("t", csv, pol, replace=True)
    assert r.ok and r.missing["note"] == 3


def test_an_integer_column_with_keys(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "h")
    df = pd.DataFrame({"year": [2020, 2021, 2021, 2030]})
    pol = _policy(year={"role": "attribute", "grade": 1, "keys": [2020, 2021, 2022]})
    with pytest.warns(pets.RegistrationWarning):
        r = h.register("t", df, pol)
    (y,) = r.keys
    assert y.unused == (2022,) and y.examples == ((2030, 1),)


def test_registering_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "h")
    with pytest.raises(pets.DataError, match=r"source '\.' is a folder .*give the path of a CSV or Parquet file"):
        h.register("t", ".", pets.example_policy())
    assert h.datasets() == []
