"""The dataset policy: loading, validation with dotted keys and line numbers, default
deny, the negative list, round trips and immutability."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from pets.errors import PolicyError, PolicyFormatError
from pets.policy import (
    DEFAULT_GRADES,
    FORMS,
    ROLES,
    ColumnPolicy,
    GradeRule,
    Policy,
)

REPO = Path(__file__).resolve().parents[2]
ADULT_POLICY = REPO / "pets" / "examples" / "adult.policy.toml"
ADULT_CSV = Path("/work/shared/data/adult/adult.csv")

# The "Policy file — the minimum schema" of API.md, verbatim. Its hierarchy path is
# relative: it resolves against the policy file's folder (base_dir).
API_SCHEMA = """\
negative_list = ["name"]            # columns that may never appear in any query

[dataset]
privacy_unit = "person_id"          # optional; absent means one row per person
max_groups = 3                      # optional bounds per person (DP contribution bounding)
max_rows_per_group = 1

[columns.age]
role = "quasi_identifier"           # identifier | quasi_identifier | sensitive | attribute
grade = 2                           # 1 public … 4 core
bounds = [17, 90]                   # numeric columns: clamping bounds for DP
hierarchy = "hierarchies/age.csv"   # k-anonymity; relative to the policy file

[columns.sex]
role = "quasi_identifier"
grade = 1
keys = ["Female", "Male"]           # public group-by keys

[grades.1]
allow = ["dp", "kanon", "he", "verify"]
[grades.2]
allow = ["dp", "kanon", "he", "verify"]
min_k = 5
[grades.3]
allow = ["dp", "he", "verify"]
max_epsilon = 1.0                   # largest ε a single release may spend
min_group_size = 10
[grades.4]
allow = []
"""


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of ``text`` that contains ``needle``."""
    for i, line in enumerate(text.split("\n"), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in text")


def mutate(old: str, new: str, text: str = API_SCHEMA) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.fixture
def api_policy(tmp_path: Path) -> Policy:
    return Policy.from_toml_text(API_SCHEMA, base_dir=tmp_path)


# --------------------------------------------------------------------------- loading


def test_api_minimum_schema_loads_with_its_values(tmp_path: Path) -> None:
    p = Policy.from_toml_text(API_SCHEMA, base_dir=tmp_path)
    assert p.negative_list == frozenset({"name"})
    assert p.privacy_unit == "person_id"
    assert p.max_groups == 3
    assert p.max_rows_per_group == 1
    assert p.missing == ()
    assert p.max_extracts is None
    assert list(p.columns) == ["age", "sex"]
    age = p.columns["age"]
    assert age == ColumnPolicy(
        "age", "quasi_identifier", 2, bounds=(17.0, 90.0),
        hierarchy=str(tmp_path / "hierarchies" / "age.csv"),
    )
    assert Path(age.hierarchy).is_absolute()  # type: ignore[arg-type]
    sex = p.columns["sex"]
    assert (sex.role, sex.grade, sex.keys, sex.bounds) == ("quasi_identifier", 1, ("Female", "Male"), None)
    assert p.grades[1].allow == frozenset(FORMS) - {"he_exact", "model", "synthetic"}
    assert p.grades[2].allow == frozenset(FORMS) - {"he_exact", "model", "synthetic"} and p.grades[2].min_k == 5
    assert p.grades[3] == GradeRule(3, frozenset({"dp", "he", "verify"}), max_epsilon=1.0, min_group_size=10)
    assert p.grades[4].allow == frozenset()
    assert p.grade_rule(3).max_epsilon == 1.0


def test_api_grades_equal_default_grades(api_policy: Policy) -> None:
    assert dict(api_policy.grades) == dict(DEFAULT_GRADES)


def test_policy_file_resolves_hierarchy_next_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "people.policy.toml"
    path.write_text(API_SCHEMA, encoding="utf-8")
    expected = str(folder / "hierarchies" / "age.csv")
    assert Policy.load(path).columns["age"].hierarchy == expected
    assert Policy.load(str(path)).columns["age"].hierarchy == expected
    assert Policy.from_toml(path) == Policy.load(path)


def test_hierarchy_without_base_dir_resolves_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = Policy.from_toml_text(API_SCHEMA)
    assert p.columns["age"].hierarchy == str(tmp_path / "hierarchies" / "age.csv")


def test_load_accepts_dict_and_policy(api_policy: Policy) -> None:
    assert Policy.load(api_policy) is api_policy
    assert Policy.load(api_policy.to_dict()) == api_policy


def test_a_str_is_a_path_never_toml_text() -> None:
    with pytest.raises(PolicyFormatError, match="looks like TOML text; use Policy.from_toml_text"):
        Policy.load(API_SCHEMA)
    with pytest.raises(PolicyFormatError, match="not found"):
        Policy.load("/nonexistent/policy.toml")


def test_load_rejects_other_types() -> None:
    with pytest.raises(PolicyFormatError, match="TOML file path, a dict or a pets.Policy"):
        Policy.load(42)  # type: ignore[arg-type]


def test_adult_example_policy_loads() -> None:
    p = Policy.load(ADULT_POLICY)
    assert p.negative_list == frozenset({"fnlwgt"})
    assert p.missing == ("?",)
    assert p.privacy_unit is None
    assert len(p.columns) == 14 and "fnlwgt" not in p.columns
    assert p.columns["age"].bounds == (17, 90)
    assert p.columns["hours-per-week"].bounds == (1, 99)
    assert p.columns["education-num"].bounds == (1, 16)
    assert p.columns["salary-class"].keys == ("<=50K", ">50K")
    assert p.columns["occupation"].role == "sensitive" and p.columns["occupation"].grade == 3
    assert p.grades[2].min_k == 5
    assert p.grades[3].max_epsilon == 1.0 and p.grades[3].min_group_size == 10
    assert p.grades[4].allow == frozenset()
    with pytest.raises(PolicyError) as e:
        p.column("fnlwgt")
    assert e.value.rule == "negative_list"


@pytest.mark.skipif(not ADULT_CSV.exists(), reason="Adult data not available")
def test_adult_example_keys_are_exactly_the_data_values() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(ADULT_CSV, skipinitialspace=True)
    p = Policy.load(ADULT_POLICY)
    assert set(df.columns) == set(p.columns) | p.negative_list
    for name, c in p.columns.items():
        if c.keys is not None:
            assert set(c.keys) == set(df[name].unique()) - {"?"}, name
        if c.bounds is not None:
            lo, hi = c.bounds
            assert lo <= df[name].min() and df[name].max() <= hi, name


# --------------------------------------------------------------------------- validation

# (old text, new text, dotted key, needle on the expected line, message regex)
CASES = [
    # unknown keys (typo protection)
    ('negative_list = ["name"]', 'negative_lists = ["name"]', "negative_lists", "negative_lists =",
     (r"unknown key 'negative_lists' \(did you mean 'negative_list'\?\); "
     r"accepted top-level keys: negative_list, dataset, columns, grades")),
    ("max_groups = 3", "max_group = 3", "dataset.max_group", "max_group =",
     r"dataset\.max_group: unknown key 'max_group'.*accepted keys in \[dataset\]: privacy_unit, max_groups"),
    ("bounds = [17, 90]", "bonds = [17, 90]", "columns.age.bonds", "bonds =",
     r"columns\.age\.bonds: unknown key 'bonds' \(did you mean 'bounds'\?\).*role, grade, bounds, keys, hierarchy"),
    ("min_k = 5", "mink = 5", "grades.2.mink", "mink =",
     r"grades\.2\.mink: unknown key 'mink'.*allow, max_epsilon, min_k, min_group_size"),
    # columns
    ('role = "quasi_identifier"           #', 'role = "quasi-identifier"  #', "columns.age.role", "quasi-identifier",
     (r"columns\.age\.role: role 'quasi-identifier' \(did you mean 'quasi_identifier'\?\) is not one of "
     r"identifier, quasi_identifier, sensitive, attribute")),
    ("grade = 1", "grade = 5", "columns.sex.grade", "grade = 5",
     r"columns\.sex\.grade: grade must be an integer 1\.\.4 .*not 5"),
    ("grade = 1", 'grade = "1"', "columns.sex.grade", 'grade = "1"', r"columns\.sex\.grade: .*not '1'"),
    ("grade = 1", "grade = true", "columns.sex.grade", "grade = true", r"columns\.sex\.grade: .*not True"),
    ("grade = 1", "grade = 1.0", "columns.sex.grade", "grade = 1.0", r"columns\.sex\.grade: .*not 1\.0"),
    ("bounds = [17, 90]", "bounds = [90, 17]", "columns.age.bounds", "bounds =",
     r"columns\.age\.bounds: lower bound 90 is above upper bound 17; write bounds = \[lower, upper\]"),
    ("bounds = [17, 90]", "bounds = [17, 17]", "columns.age.bounds", "bounds =",
     r"columns\.age\.bounds: lower bound 17 equals upper bound 17; bounds need lower < upper"),
    ("bounds = [17, 90]", "bounds = [17, 60, 90]", "columns.age.bounds", "bounds =",
     r"columns\.age\.bounds: bounds must be a list of two numbers"),
    ("bounds = [17, 90]", 'bounds = ["17", 90]', "columns.age.bounds", "bounds =",
     r"columns\.age\.bounds: bounds must be a list of two numbers"),
    ("bounds = [17, 90]", "bounds = [17, inf]", "columns.age.bounds", "bounds =",
     r"columns\.age\.bounds: bounds must be finite numbers"),
    ("bounds = [17, 90]", "bounds = 90", "columns.age.bounds", "bounds =",
     r"columns\.age\.bounds: bounds must be a list of two numbers"),
    ('keys = ["Female", "Male"]', "keys = []", "columns.sex.keys", "keys = []",
     r"columns\.sex\.keys: keys must not be empty"),
    ('keys = ["Female", "Male"]', 'keys = ["Female", "Male", "Female"]', "columns.sex.keys", "keys =",
     r"columns\.sex\.keys: keys lists 'Female' twice"),
    ('keys = ["Female", "Male"]', 'keys = "Female"', "columns.sex.keys", "keys =",
     r"columns\.sex\.keys: keys must be a list"),
    ('keys = ["Female", "Male"]', 'keys = [{a = 1}]', "columns.sex.keys", "keys =",
     r"columns\.sex\.keys: key 1 must be a string, number or boolean"),
    ('hierarchy = "hierarchies/age.csv"', "hierarchy = 3", "columns.age.hierarchy", "hierarchy = 3",
     r"columns\.age\.hierarchy: hierarchy must be a file path"),
    ('role = "quasi_identifier"\ngrade = 1', "grade = 1", "columns.sex.role", "[columns.sex]",
     r"columns\.sex\.role: missing; every column needs a role"),
    ("grade = 1\n", "", "columns.sex.grade", "[columns.sex]",
     r"columns\.sex\.grade: missing; every column needs a grade"),
    # grades
    ("[grades.4]", "[grades.5]", "grades.5", "[grades.5]",
     r"grades\.5: there is no grade '5'; grade tables are \[grades\.1\] … \[grades\.4\]"),
    ("[grades.4]", "[grades.x]", "grades.x", "[grades.x]", r"grades\.x: there is no grade 'x'"),
    ('allow = ["dp", "he", "verify"]', 'allow = ["dp", "kanonymity"]', "grades.3.allow", '"kanonymity"',
     r"grades\.3\.allow: unknown form 'kanonymity'.*accepted: dp, kanon, he, verify, he_exact, model, synthetic \(or \"none\"\)"),
    ('allow = ["dp", "he", "verify"]', 'allow = ["none", "dp"]', "grades.3.allow", '"none"',
     r"grades\.3\.allow: \"none\" allows nothing and cannot be combined"),
    ('allow = ["dp", "he", "verify"]', 'allow = "dp"', "grades.3.allow", 'allow = "dp"',
     r"grades\.3\.allow: allow must be a list of forms"),
    ("[grades.4]\nallow = []", "[grades.4]", "grades.4.allow", "[grades.4]",
     r"grades\.4\.allow: missing; write allow = "),
    ("max_epsilon = 1.0", "max_epsilon = 0", "grades.3.max_epsilon", "max_epsilon",
     r"grades\.3\.max_epsilon: max_epsilon must be a finite number > 0 .*not 0"),
    ("max_epsilon = 1.0", "max_epsilon = -1.5", "grades.3.max_epsilon", "max_epsilon", r"not -1\.5"),
    ("max_epsilon = 1.0", 'max_epsilon = "1"', "grades.3.max_epsilon", "max_epsilon", r"not '1'"),
    ("max_epsilon = 1.0", "max_epsilon = nan", "grades.3.max_epsilon", "max_epsilon", r"not nan"),
    ("min_k = 5", "min_k = 1", "grades.2.min_k", "min_k",
     r"grades\.2\.min_k: must be an integer >= 2 \(k = 1 protects nobody\), not 1"),
    ("min_k = 5", "min_k = 2.5", "grades.2.min_k", "min_k", r"grades\.2\.min_k: must be an integer >= 2"),
    ("min_group_size = 10", "min_group_size = 0", "grades.3.min_group_size", "min_group_size",
     r"grades\.3\.min_group_size: must be an integer >= 1.*not 0"),
    # every column's grade needs a [grades.N] table
    ('[grades.1]\nallow = ["dp", "kanon", "he", "verify"]\n', "", "columns.sex.grade", "grade = 1",
     r"columns\.sex\.grade: grade 1 has no \[grades\.1\] table; add one \(allow = \[\] denies everything\)"),
    # negative list
    ('negative_list = ["name"]', 'negative_list = "name"', "negative_list", "negative_list",
     r"negative_list: must be a list of column names"),
    ('negative_list = ["name"]', "negative_list = [1]", "negative_list", "negative_list",
     r"negative_list: column names must be non-empty strings, not 1"),
    # [dataset]
    ('privacy_unit = "person_id"', 'privacy_unit = "age"', "dataset.privacy_unit", "privacy_unit",
     (r"dataset\.privacy_unit: column 'age' has role 'quasi_identifier'; the privacy unit must have "
     r"role = \"identifier\"")),
    ('privacy_unit = "person_id"', "privacy_unit = 7", "dataset.privacy_unit", "privacy_unit",
     r"dataset\.privacy_unit: must be the name of an identifier column"),
    ("max_groups = 3", "max_groups = 0", "dataset.max_groups", "max_groups",
     r"dataset\.max_groups: must be an integer >= 1 .*not 0"),
    ("max_groups = 3", "max_groups = true", "dataset.max_groups", "max_groups", r"not True"),
    ("max_rows_per_group = 1", "max_rows_per_group = -1", "dataset.max_rows_per_group", "max_rows_per_group",
     r"dataset\.max_rows_per_group: must be an integer >= 1"),
    ("max_rows_per_group = 1", "max_rows_per_group = 1\nmax_extracts = 0", "dataset.max_extracts",
     "max_extracts", r"dataset\.max_extracts: must be an integer >= 1"),
    ("max_rows_per_group = 1", 'max_rows_per_group = 1\nmissing = "?"', "dataset.missing", "missing =",
     r"dataset\.missing: must be a list of strings"),
    ("max_rows_per_group = 1", "max_rows_per_group = 1\nmissing = [1]", "dataset.missing", "missing =",
     r"dataset\.missing: item 1 must be a string"),
    ("max_rows_per_group = 1", 'max_rows_per_group = 1\nmissing = ["Male"]', "columns.sex.keys", "keys =",
     r"columns\.sex\.keys: key 'Male' is a missing-value marker"),
]


@pytest.mark.parametrize(
    "old,new,key,needle,match", CASES, ids=[f"{c[2]}:{c[1][:24]}" for c in CASES]
)
def test_malformed_toml_names_the_key_and_its_line(old: str, new: str, key: str, needle: str, match: str) -> None:
    text = mutate(old, new)
    line = line_of(text, needle)
    with pytest.raises(PolicyFormatError, match=match) as e:
        Policy.from_toml_text(text)
    assert e.value.key == key
    assert e.value.line == line
    assert str(e.value).startswith(f"line {line}: {key}: ")


@pytest.mark.parametrize("old,new,key,needle,match", CASES[:12], ids=[c[2] for c in CASES[:12]])
def test_malformed_dict_names_the_key_without_a_line(old: str, new: str, key: str, needle: str, match: str) -> None:
    import tomllib

    data = tomllib.loads(mutate(old, new))
    with pytest.raises(PolicyFormatError, match=match) as e:
        Policy.from_dict(data)
    assert e.value.key == key and e.value.line is None
    assert str(e.value).startswith(f"{key}: ")


def test_bounds_error_reads_as_documented() -> None:
    text = "\n" + mutate("bounds = [17, 90]", "bounds = [90, 17]")
    with pytest.raises(PolicyFormatError) as e:
        Policy.from_toml_text(text)
    assert str(e.value) == (
        "line 12: columns.age.bounds: lower bound 90 is above upper bound 17; write bounds = [lower, upper]"
    )


def test_toml_syntax_error_gives_the_decoder_line() -> None:
    text = mutate("min_k = 5", "min_k = = 5")
    with pytest.raises(PolicyFormatError, match=r"^line 23: invalid TOML") as e:
        Policy.from_toml_text(text)
    assert e.value.line == line_of(text, "min_k = = 5") == 23
    assert e.value.key is None


def test_duplicate_toml_key_is_a_syntax_error() -> None:
    text = mutate("grade = 1", "grade = 1\ngrade = 2")
    with pytest.raises(PolicyFormatError, match=r"^line \d+: invalid TOML") as e:
        Policy.from_toml_text(text)
    assert e.value.line == line_of(text, "grade = 1") + 1


def test_a_policy_without_columns_is_rejected() -> None:
    with pytest.raises(PolicyFormatError, match=r"^columns: the policy lists no columns") as e:
        Policy.from_toml_text('[grades.1]\nallow = ["dp"]\n')
    assert e.value.key == "columns" and e.value.line is None
    with pytest.raises(PolicyFormatError, match=r"^line 1: columns: the policy lists no columns"):
        Policy.from_toml_text('[columns]\n[grades.1]\nallow = ["dp"]\n')


def test_a_column_that_is_not_a_table_is_rejected() -> None:
    with pytest.raises(PolicyFormatError, match=r"^line 2: columns\.age: must be a table"):
        Policy.from_toml_text('[columns]\nage = 3\n[grades.1]\nallow = ["dp"]\n')
    with pytest.raises(PolicyFormatError, match=r"^dataset: must be a table"):
        Policy.from_dict({"dataset": 1, "columns": {}})


def test_line_found_for_dotted_and_inline_keys() -> None:
    dotted = 'columns.age.role = "attribute"\ncolumns.age.grade = 1\ncolumns.age.bounds = [9, 1]\n[grades.1]\nallow = []\n'
    with pytest.raises(PolicyFormatError, match=r"^line 3: columns\.age\.bounds: lower bound 9"):
        Policy.from_toml_text(dotted)
    inline = '[columns]\nsex = { role = "attribute", grade = 1 }\nage = { role = "attribute", grade = 1, bounds = [9, 1] }\n[grades.1]\nallow = []\n'
    with pytest.raises(PolicyFormatError, match=r"^line 3: columns\.age\.bounds: lower bound 9"):
        Policy.from_toml_text(inline)


def test_line_scan_ignores_brackets_inside_strings_and_multiline_arrays() -> None:
    text = (
        '[columns.sex]\nrole = "attribute"\ngrade = 1\nkeys = [\n  "[grades.2]",\n  """\nmin_k = 0\n""",\n]\n'
        '[grades.1]\nallow = ["dp"]\n[grades.2]\nallow = ["kanon"]\nmin_k = 1\n'
    )
    with pytest.raises(PolicyFormatError, match=r"^line 14: grades\.2\.min_k"):
        Policy.from_toml_text(text)


def test_quoted_column_names_are_quoted_in_the_key() -> None:
    text = '[columns."monthly income"]\nrole = "sensitive"\ngrade = 3\nbounds = [5, 1]\n[grades.3]\nallow = ["dp"]\n'
    with pytest.raises(PolicyFormatError, match=r'^line 4: columns\."monthly income"\.bounds: lower bound 5') as e:
        Policy.from_toml_text(text)
    assert e.value.key == 'columns."monthly income".bounds'


def test_none_in_allow_means_nothing(api_policy: Policy) -> None:
    p = Policy.from_toml_text(mutate('allow = ["dp", "he", "verify"]', 'allow = ["none"]'))
    assert p.grades[3].allow == frozenset()
    assert GradeRule(4, ["none"]) == GradeRule(4, frozenset())


def test_privacy_unit_need_not_be_listed_but_if_listed_is_an_identifier() -> None:
    # API.md's schema names person_id without listing it: it is never released.
    assert Policy.from_toml_text(API_SCHEMA).privacy_unit == "person_id"
    text = mutate("[columns.sex]", '[columns.person_id]\nrole = "identifier"\ngrade = 4\n\n[columns.sex]')
    p = Policy.from_toml_text(text)
    assert p.columns["person_id"].role == "identifier"


def test_negative_listed_column_may_also_be_listed() -> None:
    p = Policy.from_toml_text(mutate('negative_list = ["name"]', 'negative_list = ["name", "sex"]'))
    assert "sex" in p.columns
    with pytest.raises(PolicyError) as e:
        p.column("sex")
    assert e.value.rule == "negative_list" and e.value.column == "sex"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(PolicyFormatError, match=r"^columns\.age\.bounds: lower bound 5 is above upper bound 1"):
        ColumnPolicy("age", "attribute", 1, bounds=(5, 1))
    with pytest.raises(PolicyFormatError, match=r"^columns: the policy lists no columns"):
        Policy(columns={}, grades=DEFAULT_GRADES)
    with pytest.raises(PolicyFormatError, match=r"^columns\.x: is keyed 'x' but its ColumnPolicy is named 'y'"):
        Policy(columns={"x": ColumnPolicy("y", "attribute", 1)}, grades=DEFAULT_GRADES)
    p = Policy(columns=[ColumnPolicy("x", "attribute", 1)], grades=list(DEFAULT_GRADES.values()))
    assert p.column("x").grade == 1 and set(p.grades) == {1, 2, 3, 4}
    assert set(ROLES) == {"identifier", "quasi_identifier", "sensitive", "attribute"}


# --------------------------------------------------------------------------- refusals


def test_negative_listed_column_is_refused(api_policy: Policy) -> None:
    with pytest.raises(PolicyError, match="'name' is on the negative list: it may never appear in any query") as e:
        api_policy.column("name")
    assert e.value.rule == "negative_list"
    assert e.value.column == "name"


def test_unlisted_column_is_denied_by_default(api_policy: Policy) -> None:
    with pytest.raises(PolicyError, match=r"'income' is not listed in the policy.*never released") as e:
        api_policy.column("income")
    assert e.value.rule == "default_deny"
    assert e.value.column == "income"
    msg = str(e.value)
    assert "[columns.income]" in msg
    for other in ("age", "sex", "name", "person_id"):  # never lists the other columns
        assert other not in msg


def test_listed_column_is_returned(api_policy: Policy) -> None:
    assert api_policy.column("sex").keys == ("Female", "Male")


def test_grade_without_a_table_is_denied() -> None:
    text = mutate("[grades.4]\nallow = []\n", "")
    p = Policy.from_toml_text(text)
    with pytest.raises(PolicyError, match=r"no \[grades\.4\] table") as e:
        p.grade_rule(4)
    assert e.value.rule == "default_deny"
    assert p.grade_rule(2).allows("kanon") and not p.grade_rule(3).allows("kanon")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("source", ["api", "adult"])
def test_to_dict_from_dict_round_trip(source: str, tmp_path: Path) -> None:
    p = Policy.from_toml_text(API_SCHEMA, base_dir=tmp_path) if source == "api" else Policy.load(ADULT_POLICY)
    d = p.to_dict()
    assert Policy.from_dict(d) == p
    assert json.loads(json.dumps(d)) == d  # plain JSON-able
    allow = ["dp", "he", "verify"] + (["model", "synthetic"] if source == "adult" else [])
    assert d["grades"]["3"] == {"allow": allow, "max_epsilon": 1.0, "min_group_size": 10}


@pytest.mark.parametrize("source", ["api", "adult"])
def test_to_json_from_json_round_trip(source: str, tmp_path: Path) -> None:
    p = Policy.from_toml_text(API_SCHEMA, base_dir=tmp_path) if source == "api" else Policy.load(ADULT_POLICY)
    s = p.to_json()
    assert Policy.from_json(s) == p
    assert hash(Policy.from_json(s)) == hash(p)
    assert json.loads(s) == p.to_dict()


def test_from_json_rejects_invalid_json() -> None:
    with pytest.raises(PolicyFormatError, match=r"^line 2: invalid JSON"):
        Policy.from_json('{\n"columns": }')


def test_to_dict_has_the_toml_shape(api_policy: Policy, tmp_path: Path) -> None:
    d = api_policy.to_dict()
    assert d["negative_list"] == ["name"]
    assert d["dataset"] == {"privacy_unit": "person_id", "max_groups": 3, "max_rows_per_group": 1}
    assert d["columns"]["age"] == {
        "role": "quasi_identifier", "grade": 2, "bounds": [17.0, 90.0],
        "hierarchy": str(tmp_path / "hierarchies" / "age.csv"),
    }
    assert d["grades"]["4"] == {"allow": []}


# --------------------------------------------------------------------------- immutability


def test_policy_is_immutable(api_policy: Policy) -> None:
    p = api_policy
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.privacy_unit = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.columns["age"].bounds = (0, 200)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.grades[3].max_epsilon = math.inf  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.columns["income"] = ColumnPolicy("income", "sensitive", 3)  # type: ignore[index]
    with pytest.raises(TypeError):
        del p.grades[4]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        p.negative_list.add("age")  # type: ignore[attr-defined]
    assert isinstance(p.columns["sex"].keys, tuple)
    assert isinstance(p.missing, tuple)
    hash(p)


def test_changing_the_source_dict_after_load_changes_nothing(api_policy: Policy) -> None:
    d = api_policy.to_dict()
    p = Policy.from_dict(d)
    d["columns"]["sex"]["keys"].append("Other")
    d["columns"]["extra"] = {"role": "attribute", "grade": 1}
    d["negative_list"].append("age")
    d["grades"]["4"]["allow"].append("dp")
    assert p == api_policy
    assert p.columns["sex"].keys == ("Female", "Male")
    assert "extra" not in p.columns and "age" not in p.negative_list
    assert p.grades[4].allow == frozenset()


# --------------------------------------------------------------------------- docs


def test_policy_reference_shows_the_adult_example_verbatim() -> None:
    doc = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    assert "```toml\n" + ADULT_POLICY.read_text(encoding="utf-8") + "```" in doc
