"""Bundled example data: the UCI Adult table (CC BY 4.0) and its example policy."""

from __future__ import annotations

from pathlib import Path

__all__ = ["example_data", "example_policy", "example_hierarchies"]

_HERE = Path(__file__).resolve().parent
_DATA = {"adult": "adult.csv"}
_POLICY = {"adult": "adult.policy.toml"}


def _pick(table: dict[str, str], name: str, what: str) -> str:
    if name not in table:
        raise ValueError(f"no example {what} named {name!r}; available: {', '.join(table)}")
    return str(_HERE / table[name])


def example_data(name: str = "adult") -> str:
    """Path of a bundled example CSV (``"adult"``: UCI Adult, 32,561 rows, ``?`` = missing)."""
    return _pick(_DATA, name, "data")


def example_policy(name: str = "adult") -> str:
    """Path of the example policy (TOML) for a bundled dataset."""
    return _pick(_POLICY, name, "policy")


def example_hierarchies(name: str = "adult") -> str:
    """Folder of the generalisation hierarchies for a bundled dataset (``<column>.csv``)."""
    if name != "adult":
        raise ValueError(f"no example hierarchies named {name!r}; available: adult")
    return str(_HERE / "hierarchies")
