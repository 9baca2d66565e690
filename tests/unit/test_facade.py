"""The public face of ``pets``: the exported names, the names API.md promises, the
exception hierarchy and the typing marker.

``PUBLIC_NAMES`` is the contract: adding or removing a name from ``pets.__all__`` must
be a deliberate change that updates this list too.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

import pets

REPO = Path(__file__).resolve().parents[2]

# Copied from pets/__init__.py: the pinned, sorted public surface.
PUBLIC_NAMES = [
    "AuditError",
    "AuthError",
    "BudgetExceeded",
    "Cost",
    "DP",
    "DataError",
    "Explanation",
    "Expression",
    "Extract",
    "FederatedSession",
    "Federation",
    "HE",
    "Holder",
    "InternalError",
    "KAnonymity",
    "PetsError",
    "Policy",
    "PolicyError",
    "PolicyFormatError",
    "Query",
    "QueryError",
    "RegistrationReport",
    "RegistrationWarning",
    "Release",
    "RemoteFederatedSession",
    "RemoteFederation",
    "RemoteSession",
    "ServerError",
    "Session",
    "__version__",
    "anon",
    "case",
    "col",
    "connect",
    "count",
    "count_distinct",
    "example_data",
    "example_policy",
    "histogram",
    "mean",
    "models",
    "out",
    "quantile",
    "stddev",
    "sum",
    "synth",
    "variance",
]

# Names API.md promises from `pets` that exist so far.
API_MD_NAMES = [
    "Holder",
    "Session",
    "Query",
    "col",
    "count",
    "sum",
    "mean",
    "variance",
    "histogram",
    "DP",
    "Cost",
    "Release",
    "Explanation",
    "Policy",
    "PetsError",
    "PolicyError",
    "BudgetExceeded",
    "QueryError",
    "AuditError",
    "AuthError",
    "KAnonymity",
    "anon",
    "HE",
    "Federation",
]

ERRORS = [
    "PetsError",
    "PolicyError",
    "PolicyFormatError",
    "BudgetExceeded",
    "QueryError",
    "DataError",
    "AuditError",
    "AuthError",
    "InternalError",
]


def test_all_is_exactly_the_pinned_public_names():
    assert list(pets.__all__) == PUBLIC_NAMES


def test_all_is_sorted_and_without_duplicates():
    assert list(pets.__all__) == sorted(set(pets.__all__))


def test_every_name_in_all_is_an_attribute_of_pets():
    missing = [n for n in pets.__all__ if not hasattr(pets, n)]
    assert missing == []


def test_star_import_binds_every_name_in_all():
    ns: dict[str, object] = {}
    exec("from pets import *", ns)
    assert set(PUBLIC_NAMES) <= set(ns)
    for name in PUBLIC_NAMES:
        assert ns[name] is getattr(pets, name)


@pytest.mark.parametrize("name", API_MD_NAMES)
def test_api_md_name_is_exported(name):
    assert name in pets.__all__
    assert getattr(pets, name) is not None


def test_version_is_a_version_string():
    parts = pets.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_subclasses_pets_error(name):
    cls = getattr(pets, name)
    assert issubclass(cls, pets.PetsError)
    assert issubclass(cls, Exception)


def test_query_error_is_a_value_error():
    assert issubclass(pets.QueryError, ValueError)
    with pytest.raises(ValueError, match="bad"):
        raise pets.QueryError("bad")


def test_policy_format_error_is_a_value_error():
    assert issubclass(pets.PolicyFormatError, ValueError)


def test_refusal_errors_are_not_value_errors():
    # a refusal is not a malformed argument: catching ValueError must not swallow it
    for cls in (pets.PolicyError, pets.BudgetExceeded, pets.AuditError, pets.AuthError):
        assert not issubclass(cls, ValueError)


def test_policy_error_carries_rule_column_and_allowed():
    e = pets.PolicyError("no", rule="grade", column="age", allowed=["dp"])
    assert (e.rule, e.column, e.allowed, str(e)) == ("grade", "age", ["dp"], "no")
    with pytest.raises(TypeError):
        pets.PolicyError("no rule given")  # type: ignore[call-arg]


def test_budget_exceeded_carries_asked_and_left():
    e = pets.BudgetExceeded("over", asked=pets.Cost(1.0), left=pets.Cost(0.5))
    assert e.asked == pets.Cost(1.0) and e.left == pets.Cost(0.5)


def test_audit_error_carries_the_record():
    assert pets.AuditError("broken", record=7).record == 7


def test_dp_submodule_exposes_discrete_laplace():
    import pets.dp

    assert callable(pets.dp.discrete_laplace)
    assert "discrete_laplace" in pets.dp.__all__
    draws = pets.dp.discrete_laplace(1.0, 4)
    assert draws.shape == (4,) and draws.dtype.name == "int64"


@pytest.mark.parametrize("module", ["pets.plan", "pets.query", "pets.sql", "pets.dp.samplers",
                                    "pets.dp.accuracy", "pets.dp.aggregate"])
def test_submodule_all_names_exist(module):
    mod = importlib.import_module(module)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert missing == []


def test_py_typed_marker_is_in_the_package():
    marker = Path(pets.__file__).resolve().parent / "py.typed"
    assert marker.is_file()


def test_py_typed_marker_is_listed_as_package_data():
    pyproject = REPO / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["pets"]
