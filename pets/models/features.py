"""Encoding a model's features from the policy: public bounds and keys only.

A numeric feature is clamped to its policy ``bounds`` [lo, hi] and scaled to [0, 1]
(``log``: log1p(x − lo) / log1p(hi − lo), for long-tailed amounts); a categorical
feature is one-hot encoded over its policy ``keys`` (a value outside the keys, or a
missing one, encodes as all zeros). Every encoded row therefore has at most one
non-zero per categorical feature and values in [0, 1]: the bound every mechanism's
sensitivity rests on. Missing numeric values encode as 0 (the lower bound).

Nothing here reads the data to decide anything: the encoding is fixed by the policy,
so it may be released with the model (it is public).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PolicyError, QueryError

__all__ = ["Feature", "feature_of", "encode", "names_out"]

_NUMERIC = ("int", "float")


@dataclass(frozen=True)
class Feature:
    """One input column and how it is encoded (all of it public)."""

    name: str
    kind: str  # "numeric" | "categorical"
    lower: float = 0.0
    upper: float = 1.0
    keys: tuple[Any, ...] = ()
    log: bool = False

    @property
    def width(self) -> int:
        return len(self.keys) if self.kind == "categorical" else 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            d.update(lower=self.lower, upper=self.upper, log=self.log)
        else:
            d["keys"] = list(self.keys)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Feature":
        if d.get("kind") == "numeric":
            return cls(str(d["name"]), "numeric", float(d["lower"]), float(d["upper"]),
                       log=bool(d.get("log", False)))
        if d.get("kind") == "categorical":
            return cls(str(d["name"]), "categorical", keys=tuple(d["keys"]))
        raise QueryError(f"malformed feature in a model's JSON: {str(d)[:80]}")


def feature_of(policy: Any, schema: dict[str, str], column: str, log: bool = False,
               role: str = "feature", numeric: bool = False) -> Feature:
    """The encoding of ``column`` from the policy: keys → categorical, numeric with bounds
    → numeric; PolicyError (rule ``model_encoding``) when the policy gives neither."""
    cp = policy.columns[column]
    if cp.keys is not None and not (log or numeric):
        return Feature(column, "categorical", keys=tuple(cp.keys))
    if cp.bounds is not None and schema.get(column) in _NUMERIC:
        lo, hi = float(cp.bounds[0]), float(cp.bounds[1])
        if not hi > lo:
            raise PolicyError(
                f"column {column!r} has empty bounds [{lo:g}, {hi:g}] in the policy; a model "
                f"{role} needs an interval", rule="model_encoding", column=column)
        return Feature(column, "numeric", lo, hi, log=bool(log))
    what = "bounds (a numeric column)" if (log or numeric) else "keys (categories) or bounds (a numeric column)"
    raise PolicyError(
        f"column {column!r} has no {what} in the policy, which a model {role} is encoded "
        "from; the holder can add them, or leave the column out",
        rule="model_encoding", column=column)


def _numeric(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def scaled(f: Feature, values: pd.Series) -> np.ndarray:
    """A numeric feature clamped and scaled to [0, 1]; NaN where missing."""
    x = np.clip(_numeric(values), f.lower, f.upper)
    if f.log:
        return np.log1p(x - f.lower) / math.log1p(f.upper - f.lower)
    return (x - f.lower) / (f.upper - f.lower)


def category_index(f: Feature, values: pd.Series) -> np.ndarray:
    """The index of each value among the feature's keys; −1 outside them or missing."""
    index = {k: i for i, k in enumerate(f.keys)}
    str_keys = {str(k): i for i, k in enumerate(f.keys)}
    out = np.full(len(values), -1, dtype=np.int64)
    for j, v in enumerate(values.tolist()):
        if v is None or (isinstance(v, float) and v != v):
            continue
        i = index.get(v)
        if i is None:
            i = str_keys.get(str(v).strip())
        if i is not None:
            out[j] = i
    return out


def encode(features: tuple[Feature, ...], df: pd.DataFrame) -> np.ndarray:
    """The design matrix (rows × Σ widths) of ``df``: every value in [0, 1]."""
    missing = [f.name for f in features if f.name not in df.columns]
    if missing:
        raise QueryError(f"the data has no column {missing[0]!r}, which the model uses as a feature")
    n = len(df)
    blocks = []
    for f in features:
        if f.kind == "numeric":
            blocks.append(np.nan_to_num(scaled(f, df[f.name]), nan=0.0)[:, None])
        else:
            idx = category_index(f, df[f.name])
            block = np.zeros((n, f.width))
            ok = idx >= 0
            block[np.nonzero(ok)[0], idx[ok]] = 1.0
            blocks.append(block)
    return np.hstack(blocks) if blocks else np.zeros((n, 0))


def names_out(features: tuple[Feature, ...]) -> list[str]:
    """Names of the encoded columns: ``age``, ``sex=Male``, …"""
    out: list[str] = []
    for f in features:
        if f.kind == "numeric":
            out.append(f"log1p({f.name})" if f.log else f.name)
        else:
            out.extend(f"{f.name}={k}" for k in f.keys)
    return out
