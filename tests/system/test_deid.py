"""pets.deid: masking, keyed pseudonyms, date shifts, top/bottom coding and
generalisation on DataFrames, and `pets deid` on CSV files; pseudonymised keys still
serve as verification subject keys across tables."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets
from pets import col, deid

SECRET = bytes(range(32))


def test_pseudonyms_are_hmac_sha256_and_stable_across_tables() -> None:
    a = deid.pseudonymize(pd.Series(["P-1", "P-2", None, "P-1"]), SECRET)
    want = hmac.new(SECRET, b"P-1", hashlib.sha256).hexdigest()[:16]
    assert a[0] == a[3] == want and a[1] != a[0] and pd.isna(a[2])
    # 42, 42.0 and "42" are one key, so a join over tables typed differently still works
    b = deid.pseudonymize(pd.Series([42, 42.0, "42"]), SECRET)
    assert b.nunique() == 1
    assert deid.pseudonymize(pd.Series(["P-1"]), bytes(32))[0] != want  # another secret
    assert deid.pseudonymize(["P-1"], SECRET, length=64, prefix="x-")[0].startswith("x-")


@pytest.mark.parametrize("call,match", [
    (lambda: deid.pseudonymize(["a"], b"short"), "at least 16"),
    (lambda: deid.pseudonymize(["a"], SECRET, length=4), "length"),
    (lambda: deid.pseudonymize("abc", SECRET), "Series"),
    (lambda: deid.mask(["abc"], keep_last=-1), "keep_last"),
    (lambda: deid.top_code(["a", "1"], 3), "row 0"),
    (lambda: deid.top_code([1], float("inf")), "finite"),
    (lambda: deid.shift_dates(["2024-01-01"]), "days="),
    (lambda: deid.shift_dates(["not a date"], days=1), "dates"),
    (lambda: deid.shift_dates(["2024-01-01"], secret=SECRET, by=["a", "b"]), "by= has 2"),
    (lambda: deid.deidentify(pd.DataFrame({"a": [1]}), {"b": ("mask", {})}), "unknown column 'b'"),
    (lambda: deid.deidentify(pd.DataFrame({"a": [1]}), {"a": ("blur", {})}), "unknown operation"),
    (lambda: deid.deidentify(pd.DataFrame({"a": [1]}), {"a": ("mask", {"keep": 1})}), "mask on column"),
])
def test_bad_input_is_a_clear_error(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pets.QueryError, match=match):
        call()


def test_mask_top_bottom_code() -> None:
    assert deid.mask(["13800138000", "ab", None], keep_first=3, keep_last=2).tolist()[:2] == \
        ["138******00", "**"]
    assert deid.top_code(pd.Series([10, 95, None, 90]), 90).tolist()[:2] == [10, 90]
    assert deid.bottom_code(pd.Series([10, 95, 17]), 17).tolist() == [17, 95, 17]


def test_date_shift_per_subject_keeps_intervals() -> None:
    df = pd.DataFrame({"pid": ["a", "a", "b", "c"] * 50,
                       "day": pd.date_range("2024-01-01", periods=200, freq="D").astype(str)})
    shifted = deid.shift_dates(df["day"], secret=SECRET, by=df["pid"], max_days=30)
    off = (shifted - pd.to_datetime(df["day"])).dt.days
    assert (off.groupby(df["pid"]).nunique() == 1).all()  # one shift per subject
    assert off.abs().between(1, 30).all()
    again = deid.shift_dates(df["day"], secret=SECRET, by=df["pid"], max_days=30)
    assert (again == shifted).all()  # stable under the same secret
    fixed = deid.shift_dates(df["day"], days=-7)
    assert ((fixed - pd.to_datetime(df["day"])).dt.days == -7).all()


def test_date_shift_offsets_are_spread_over_the_window() -> None:
    """20,000 subjects, offsets in ±5 days but never 0: each of the 10 offsets has
    probability 1/10; every count within 2,000 ± 400 fails with probability < 1e-6
    (binomial sd 42.4, 9.4 sd)."""
    ids = pd.Series(np.arange(20_000))
    off = (deid.shift_dates(pd.Series(["2024-06-01"] * 20_000), secret=SECRET, by=ids, max_days=5)
           - pd.Timestamp("2024-06-01")).dt.days
    counts = off.value_counts()
    assert sorted(counts.index) == [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]
    assert counts.between(1600, 2400).all()


def test_generalize_with_the_bundled_hierarchies() -> None:
    h = Path(pets.example_policy("adult")).parent / "hierarchies" / "education.csv"
    out = deid.generalize(pd.Series(["Bachelors", "HS-grad"]), h, 1)
    full = pets.anon.Hierarchy.from_csv(h)
    assert out.tolist() == list(full.generalize(["Bachelors", "HS-grad"], 1))
    with pytest.raises(pets.QueryError):
        deid.generalize(pd.Series(["Hogwarts"]), h, 1)


def test_pseudonymised_keys_serve_verification_across_tables(tmp_path: Path) -> None:
    """A holder pseudonymises its person ids with its secret before registering; a
    verifier that was given the same pseudonyms (e.g. by the holder, for its own
    customers) verifies with them, and a join on the pseudonyms equals the join on the
    original ids."""
    adult = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values=["?"]).head(500)
    adult.insert(0, "person_id", [f"P-{i:05d}" for i in range(len(adult))])
    prepared = deid.deidentify(adult, {"person_id": ("pseudonymize", {}),
                                       "fnlwgt": ("drop", {}),
                                       "capital-gain": ("top_code", {"upper": 50_000})},
                               secret=SECRET)
    assert "fnlwgt" not in prepared and prepared["capital-gain"].max() <= 50_000
    assert (adult["person_id"] == adult["person_id"]).all()  # the input is unchanged
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["columns"]["person_id"] = {"role": "identifier", "grade": 2}
    pol["negative_list"] = []
    pol["verify"] = {"subject_keys": ["person_id"], "claims": {"age": {"operators": [">="]}}}
    h = pets.Holder(tmp_path / "h")
    h.register("adult", prepared, pol)
    h.grant("bank", dataset="adult", purpose="p", epsilon=1.0)
    ids = deid.pseudonymize(adult["person_id"].head(20), SECRET)
    b = h.session("bank", purpose="p").verify_batch("adult", pd.DataFrame({"person_id": ids}),
                                                     col("age") >= 40)
    assert (b.match.to_numpy() == (adult["age"].head(20) >= 40).to_numpy()).all()


def test_pets_deid_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from pets.cli import main

    monkeypatch.chdir(tmp_path)

    def _pets(*args: str, cwd: Path) -> SimpleNamespace:  # the real entry point, in process
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    src = tmp_path / "in.csv"
    pd.DataFrame({"pid": ["a", "b", "a"], "age": [34, 97, 35], "phone": ["5550100", "5550199", "1"],
                  "seen": ["2024-01-01", "2024-02-01", "2024-01-11"], "name": ["x", "y", "x"]}
                 ).to_csv(src, index=False)
    p = _pets("deid", str(src), "-o", "out.csv", "--secret-file", "k", "--new-secret",
              "--pseudonymize", "pid", "--top-code", "age:90", "--mask", "phone:0:2",
              "--shift-dates", "seen:pid:10", "--drop", "name", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    secret = deid.load_secret(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert out["pid"].tolist() == deid.pseudonymize(["a", "b", "a"], secret).tolist()
    assert out["age"].tolist() == [34, 90, 35] and "name" not in out
    assert out["phone"].tolist() == ["*****00", "*****99", "*"]
    d = pd.to_datetime(out["seen"])
    assert (d[2] - d[0]).days == 10  # one subject's interval kept
    # bad input: a clear error in CLI terms, and nothing written
    for args, msg in [(["--top-code", "age:abc"], "--top-code: 'abc' is not a number"),
                      (["--pseudonymize", "pid"], "need --secret-file"),
                      (["--drop", "nope"], "unknown column 'nope'"),
                      ([], "nothing to do")]:
        p = _pets("deid", str(src), "-o", "bad.csv", *args, cwd=tmp_path)
        assert p.returncode in (2, 5) and msg in p.stderr, (args, p.stderr)
        assert not (tmp_path / "bad.csv").exists()


def test_the_docstring_examples_hold() -> None:
    import doctest

    assert doctest.testmod(deid).failed == 0


def test_the_deid_guide_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "deid.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    exec(compile(block, "docs/deid.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    shown = [line.split("# ", 1)[1].strip() for line in block.splitlines()
             if line.startswith("print(")]
    assert printed == shown
