"""Bad input gets a clear error and changes nothing: the audit log (length and head),
every budget and the registered datasets are compared before and after."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import pets
from pets import col

from ._util import ANALYST, PURPOSE, column, policy, snapshot

# =====================================================================================
# Queries
# =====================================================================================

UNKNOWN = {
    "filter": lambda s: s.table("adult").filter(col("agee") >= 18).agg(n=pets.count()),
    "group_by": lambda s: s.table("adult").group_by("sexx", keys=["Female"]).agg(n=pets.count()),
    "count": lambda s: s.table("adult").agg(n=pets.count("hours")),
    "mean": lambda s: s.table("adult").agg(m=pets.mean("hours_per_week", bounds=(0, 99))),
}


@pytest.mark.parametrize("where", list(UNKNOWN))
def test_an_unknown_column_is_a_query_error_that_changes_nothing(holder, session, where):
    before = snapshot(holder, session)
    q = UNKNOWN[where](session)
    with pytest.raises(pets.QueryError, match=r"unknown column '\w+' in dataset 'adult'"):
        session.release(q, pets.DP(epsilon=0.5))
    with pytest.raises(pets.QueryError, match="unknown column"):
        session.explain(q, pets.DP(epsilon=0.5))
    assert snapshot(holder, session) == before


def test_an_unknown_column_error_suggests_the_closest_column(session):
    q = session.table("adult").agg(m=pets.mean("hours-per-weak", bounds=(0, 99)))
    with pytest.raises(pets.QueryError, match=r"did you mean 'hours-per-week'\?"):
        session.release(q, pets.DP(epsilon=0.5))


def test_an_unknown_dataset_is_a_query_error_naming_only_the_granted_ones(holder, session):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"unknown dataset 'adlut'; datasets granted to \w+: adult$"):
        session.table("adlut")
    stranger = holder.session("nobody", purpose="x")
    with pytest.raises(pets.QueryError, match=r"unknown dataset 'adlut'; datasets granted to nobody: none$"):
        stranger.table("adlut")
    assert snapshot(holder, session) == before


def test_reversed_bounds_are_a_query_error_asking_for_lower_below_upper(holder, session):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"lower < upper.*\(90, 17\)"):
        pets.mean("age", bounds=(90, 17))
    with pytest.raises(pets.QueryError, match=r"lower < upper"):
        pets.sum("age", bounds=(5, 5))
    with pytest.raises(pets.QueryError, match=r"pair \(lower, upper\)"):
        pets.sum("age", bounds=(1, 2, 3))
    with pytest.raises(pets.QueryError, match=r"finite"):
        pets.mean("age", bounds=(0, float("inf")))
    assert snapshot(holder, session) == before


@pytest.mark.parametrize("epsilon", [0, 0.0, -1, float("nan"), float("inf"), "0.5", True, None])
def test_a_non_positive_or_non_finite_epsilon_is_a_query_error(holder, session, epsilon):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"DP\(epsilon=\.\.\.\) must be a finite number > 0"):
        pets.DP(epsilon=epsilon)
    assert snapshot(holder, session) == before


@pytest.mark.parametrize("delta", [-0.1, 1.0, float("nan")])
def test_a_delta_outside_zero_one_is_a_query_error(delta):
    with pytest.raises(pets.QueryError, match=r"DP\(delta=\.\.\.\) must be a number in \[0, 1\)"):
        pets.DP(epsilon=1.0, delta=delta)


def test_the_protection_must_be_a_protection(holder, session):
    before = snapshot(holder, session)
    q = session.table("adult").agg(n=pets.count())
    with pytest.raises(pets.QueryError, match=r"pets\.DP\(epsilon=0\.5\)"):
        session.release(q, 0.5)  # type: ignore[arg-type]
    assert snapshot(holder, session) == before


def test_a_release_without_aggregates_is_a_query_error(holder, session):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"add \.agg\(n=pets\.count\(\)"):
        session.release(session.table("adult").group_by("sex"), pets.DP(epsilon=0.5))
    assert snapshot(holder, session) == before


def test_a_sum_of_a_text_column_is_a_query_error(holder, session):
    before = snapshot(holder, session)
    q = session.table("adult").agg(t=pets.sum("sex", bounds=(0, 1)))
    with pytest.raises(pets.QueryError, match=r"sum\('sex'\) needs a numeric column"):
        session.release(q, pets.DP(epsilon=0.5))
    assert snapshot(holder, session) == before


def test_a_sum_without_bounds_in_query_or_policy_is_a_query_error(tmp_path):
    h = pets.Holder(tmp_path / "home")
    h.register("t", pd.DataFrame({"x": [1, 2, 3]}), policy({"x": column()}))
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=1.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    before = snapshot(h, s)
    with pytest.raises(pets.QueryError, match=r"sum\('x'\) needs bounds"):
        s.release(s.table("t").agg(t=pets.sum("x")), pets.DP(epsilon=0.5))
    assert snapshot(h, s) == before


def test_keys_of_the_wrong_type_for_the_group_column_are_a_query_error(holder, session):
    before = snapshot(holder, session)
    q = session.table("adult").group_by("sex", keys=[0, 1]).agg(n=pets.count())
    with pytest.raises(pets.QueryError, match=r"'sex' holds text but a key is a int"):
        session.release(q, pets.DP(epsilon=0.5))
    assert snapshot(holder, session) == before


def test_python_and_or_not_on_conditions_is_a_query_error():
    with pytest.raises(pets.QueryError, match=r"combine conditions with & \| ~"):
        (col("age") > 18) and (col("age") < 65)  # noqa: B015


def test_a_string_compared_with_a_numeric_column_is_an_error_that_changes_nothing(holder, session):
    before = snapshot(holder, session)
    q = session.table("adult").filter(col("age") >= "forty").agg(n=pets.count())
    with pytest.raises(pets.PetsError, match=r"holds numbers; compare it with a value of that kind, not a str"):
        session.release(q, pets.DP(epsilon=0.5))
    assert snapshot(holder, session) == before


def test_a_string_compared_with_a_numeric_column_is_a_query_error_naming_the_column(session):
    q = session.table("adult").filter(col("age") >= "forty").agg(n=pets.count())
    with pytest.raises(pets.QueryError, match=r"'age'"):
        session.release(q, pets.DP(epsilon=0.5))


def test_a_bad_confidence_level_is_a_query_error(session):
    r = session.release(session.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.1))
    for level in (0, 1, 1.5, -0.2):
        with pytest.raises(pets.QueryError, match="between 0 and 1"):
            r.ci(level)


def test_a_bad_grant_is_a_query_error_and_grants_nothing(holder):
    before = holder.grants()
    for eps in (0, -1.0, float("nan")):
        with pytest.raises((pets.QueryError, ValueError)):
            holder.grant("bob", dataset="adult", purpose=PURPOSE, epsilon=eps)
    with pytest.raises(pets.QueryError, match=r"unknown dataset 'nope'"):
        holder.grant("bob", dataset="nope", purpose=PURPOSE, epsilon=1.0)
    with pytest.raises(pets.QueryError, match="analyst name"):
        holder.grant("bob smith; drop", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    assert holder.grants().equals(before)


# =====================================================================================
# Policies
# =====================================================================================

GOOD_POLICY = """
[columns.age]
role = "quasi_identifier"
grade = 2
bounds = [17, 90]

[columns.sex]
role = "quasi_identifier"
grade = 1
keys = ["Female", "Male"]

[grades.1]
allow = ["dp"]
[grades.2]
allow = ["dp"]
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_a_policy_with_a_toml_syntax_error_is_refused_at_register_naming_the_line(holder, tmp_path):
    before = snapshot(holder, ("alice", "adult", PURPOSE))
    bad = GOOD_POLICY.replace('grade = 1\n', 'grade = = 1\n')
    path = _write(tmp_path, "bad.toml", bad)
    with pytest.raises(pets.PolicyFormatError, match=r"line 9: invalid TOML") as info:
        holder.register("adult2", pets.example_data(), path)
    assert info.value.line == 9
    assert holder.datasets() == ["adult"]
    assert snapshot(holder, ("alice", "adult", PURPOSE)) == before


def test_a_policy_with_reversed_bounds_is_refused_at_register_naming_the_key(holder, tmp_path):
    before = snapshot(holder, ("alice", "adult", PURPOSE))
    path = _write(tmp_path, "rev.toml", GOOD_POLICY.replace("[17, 90]", "[90, 17]"))
    with pytest.raises(
        pets.PolicyFormatError, match=r"columns\.age\.bounds: lower bound 90 is above upper bound 17"
    ) as info:
        holder.register("adult2", pets.example_data(), path)
    assert info.value.key == "columns.age.bounds"
    assert info.value.line == 5
    assert snapshot(holder, ("alice", "adult", PURPOSE)) == before
    assert holder.datasets() == ["adult"]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda p: p["columns"]["age"].update(bounds=[90, 17]), r"lower bound 90 is above upper bound 17"),
        (lambda p: p["columns"]["age"].update(role="secret"), r"role 'secret' is not one of"),
        (lambda p: p["columns"]["age"].update(grade=7), r"grade must be an integer 1\.\.4"),
        (lambda p: p["grades"]["1"].update(allow=["dpp"]), r"unknown form 'dpp' \(did you mean 'dp'\?\)"),
        (lambda p: p["grades"]["1"].update(max_epsilon=0), r"max_epsilon must be a finite number > 0"),
        (lambda p: p["columns"]["sex"].update(keys=[]), r"keys must not be empty"),
        (lambda p: p.update(colums={}), r"unknown key 'colums'"),
        (lambda p: p["columns"].update(nope=column()), r"columns\.nope: the policy lists column 'nope', which is not in the data"),
        (lambda p: p["columns"]["sex"].update(bounds=[0, 1]), r"columns\.sex\.bounds: column 'sex' is not numeric"),
    ],
    ids=["reversed-bounds", "role", "grade", "form", "max-epsilon", "empty-keys",
         "unknown-key", "column-not-in-data", "bounds-on-text"],
)
def test_a_malformed_dict_policy_is_refused_and_nothing_is_stored(tmp_path, edit, match):
    h = pets.Holder(tmp_path / "home")
    df = pd.DataFrame({"age": [30, 40, 50], "sex": ["Female", "Male", "Male"]})
    pol = policy(
        {"age": column(grade=2, bounds=[17, 90]), "sex": column(keys=["Female", "Male"])},
        grades={"1": {"allow": ["dp"]}, "2": {"allow": ["dp"]}},
    )
    h.register("good", df, pol)
    before = snapshot(h)
    edit(pol)
    with pytest.raises(pets.PolicyFormatError, match=match):
        h.register("bad", df, pol)
    assert h.datasets() == ["good"]
    assert snapshot(h) == before
    # the DataFrame was not left behind in the home
    assert sorted(p.name for p in (h.home / "data").iterdir()) == ["good.parquet"]


def test_a_missing_policy_file_is_a_policy_format_error(holder, tmp_path):
    with pytest.raises(pets.PolicyFormatError, match="not found"):
        holder.register("adult2", pets.example_data(), tmp_path / "nope.toml")
    assert holder.datasets() == ["adult"]


def test_registering_an_existing_name_again_is_refused_without_replace(holder):
    with pytest.raises(pets.QueryError, match="already registered; pass replace=True"):
        holder.register("adult", pets.example_data(), pets.example_policy())
    assert holder.datasets() == ["adult"]


# =====================================================================================
# Sources
# =====================================================================================


@pytest.fixture
def csv_holder(tmp_path: Path):
    csv = tmp_path / "adult-copy.csv"
    shutil.copy(pets.example_data(), csv)
    h = pets.Holder(tmp_path / "home")
    h.register("adult", csv, pets.example_policy())
    h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=2.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    s.release(s.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.1))  # works before
    return h, s, csv


def _assert_changed_source_refused(h, s, q):
    before = snapshot(h, s)
    with pytest.raises(pets.DataError, match=r"source of dataset 'adult' has changed since it was registered"):
        s.release(q, pets.DP(epsilon=0.1))
    with pytest.raises(pets.DataError, match=r"replace=True"):
        s.table("adult")
    with pytest.raises(pets.DataError, match="has changed"):
        s.explain(q, pets.DP(epsilon=0.1))
    assert snapshot(h, s) == before


def test_a_source_csv_appended_to_after_registration_is_a_data_error(csv_holder):
    h, s, csv = csv_holder
    q = s.table("adult").group_by("sex").agg(n=pets.count())
    with open(csv, "a", encoding="utf-8") as f:
        f.write("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, "
                "Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n")
    _assert_changed_source_refused(h, s, q)


def test_a_source_csv_edited_in_place_with_the_same_size_is_a_data_error(csv_holder):
    h, s, csv = csv_holder
    q = s.table("adult").group_by("sex").agg(n=pets.count())
    text = csv.read_text(encoding="utf-8")
    edited = text.replace("\n39, State-gov", "\n38, State-gov", 1)
    assert edited != text and len(edited) == len(text)
    st = csv.stat()
    csv.write_text(edited, encoding="utf-8")
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    _assert_changed_source_refused(h, s, q)


def test_a_source_csv_removed_after_registration_is_a_data_error(csv_holder):
    h, s, csv = csv_holder
    before = snapshot(h, s)
    q = s.table("adult").agg(n=pets.count())
    csv.unlink()
    with pytest.raises(pets.DataError, match=r"source of dataset 'adult' is gone"):
        s.release(q, pets.DP(epsilon=0.1))
    assert snapshot(h, s) == before


def test_a_changed_source_can_be_registered_again_with_replace(csv_holder):
    h, s, csv = csv_holder
    with open(csv, "a", encoding="utf-8") as f:
        f.write("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, "
                "Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n")
    h.register("adult", csv, pets.example_policy(), replace=True)
    r = s.release(s.table("adult").agg(n=pets.count()), pets.DP(epsilon=0.1))
    assert len(r.df) == 1


def test_a_missing_source_file_or_unknown_format_is_refused_at_register(tmp_path):
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match="does not exist"):
        h.register("x", tmp_path / "nope.csv", pets.example_policy())
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"not a table")
    with pytest.raises(pets.DataError, match=r"cannot tell the format of 'data\.xlsx'"):
        h.register("x", odd, pets.example_policy())
    assert h.datasets() == []


# =====================================================================================
# Errors stay inside the pets hierarchy
# =====================================================================================


@pytest.mark.parametrize("kw", [{"epsilon": -1.0}, {"epsilon": float("nan")},
                                {"epsilon": 1.0, "delta": -0.1}])
def test_a_negative_or_nan_grant_is_a_query_error(holder, kw):
    before = holder.grants()
    with pytest.raises(pets.QueryError, match=r"grant's (epsilon|delta)"):
        holder.grant("bob", dataset="adult", purpose=PURPOSE, **kw)
    assert holder.grants().equals(before)


@pytest.mark.parametrize("method", ["release", "explain"])
def test_an_epsilon_too_small_for_a_finite_noise_scale_is_a_query_error(holder, session, method):
    before = snapshot(holder, session)
    q = session.table("adult").agg(n=pets.count())
    with pytest.raises(pets.QueryError, match="epsilon"):
        getattr(session, method)(q, pets.DP(epsilon=1e-320))
    assert snapshot(holder, session) == before
