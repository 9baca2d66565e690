"""Dummy tables: a fake table with a dataset's schema, built from its policy only.

An analyst develops against ``s.dummy("adult", rows=1000)`` — a table with the columns
the analyst may know exist, their types, values inside the public bounds and drawn from
the public keys — and runs the same request on a dummy copy of the dataset with
``s.release(query, protection, dummy=True)`` without spending budget
(:meth:`pets.Session.release`). Neither ever reads a row of the real data: the frame is
a function of the policy, the stored schema, ``rows`` and ``seed`` alone, so it carries
no information about the data (two holders with different rows under the same policy
and schema give identical dummy frames for the same seed).

What each column holds (see docs/dummy.md):

============================  ==========================================================
column                        dummy values
============================  ==========================================================
privacy unit                  fake person ids (``"person-000001"``, or 1, 2, … for an
                              int column); several rows per person when the policy's
                              ``max_groups × max_rows_per_group`` is above 1 (1 to that
                              product, at most 10)
other identifiers             fake ids, one per row (``"<column>-000001"``, or 1, 2, …)
public keys                   drawn uniformly from the keys
numeric with bounds           uniform within the bounds (whole numbers for int columns)
int without bounds or keys    placeholder: uniform integers 0 … 99
float without bounds or keys  placeholder: uniform in [0, 100)
text without keys             placeholder: ``"<column>-1"`` … ``"<column>-10"``
bool without keys             True / False, uniformly
date                          placeholder: uniform days from 2000-01-01 to 2024-12-31
other types                   placeholder text, as for text
============================  ==========================================================

When the policy declares missing-value markers (``[dataset] missing``), about 2% of the
values of each ``attribute`` and ``sensitive`` column are missing (``NA``: the markers
are what the holder's files write, the table holds missing values); identifiers, the
privacy unit and quasi-identifiers are never missing in the dummy (a k-anonymous
extract refuses missing quasi-identifiers). Columns the policy does not list (default
deny) and columns on the negative list are not in the dummy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import QueryError
from .policy import Policy

__all__ = ["dummy_frame", "dummy_columns", "MAX_DUMMY_ROWS", "MISSING_SHARE"]

#: The most rows a dummy table may have.
MAX_DUMMY_ROWS = 1_000_000
#: Share of missing values in attribute and sensitive columns when the policy declares
#: missing markers.
MISSING_SHARE = 0.02
#: At most this many rows per person in a dummy with a privacy unit.
MAX_ROWS_PER_PERSON = 10
#: Distinct placeholder values of a text column without public keys.
TEXT_PLACEHOLDERS = 10
_DATE_RANGE = (np.datetime64("2000-01-01"), np.datetime64("2024-12-31"))


def check_rows(rows: Any, limit: int = MAX_DUMMY_ROWS) -> int:
    """``rows`` as an int in 1 … ``limit``, or a QueryError saying what to change."""
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)):
        raise QueryError(f"rows must be a whole number of rows, e.g. rows=1000, not {rows!r}")
    rows = int(rows)
    if rows < 1:
        raise QueryError(f"rows={rows} asks for an empty dummy table; ask for rows >= 1")
    if rows > limit:
        why = ("the most a dummy table may have" if limit == MAX_DUMMY_ROWS
               else "the most rows the dataset's policy allows ([dataset] max_rows)")
        raise QueryError(f"rows={rows:,} is too many; ask for rows <= {limit:,} ({why})")
    return rows


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise QueryError(f"seed must be a non-negative whole number or None, not {seed!r}")
    return int(seed)


def dummy_columns(policy: Policy, schema: dict[str, str]) -> list[str]:
    """The columns an analyst may know exist, in the stored schema's order: those the
    policy lists, minus the negative list, plus the privacy unit."""
    known = {c for c in policy.columns if c not in policy.negative_list}
    if policy.privacy_unit is not None and policy.privacy_unit not in policy.negative_list:
        known.add(policy.privacy_unit)
    return [c for c in schema if c in known]


def dummy_frame(policy: Policy, schema: dict[str, str], rows: int = 1000,
                seed: int | None = None) -> pd.DataFrame:
    """A fake table of ``rows`` rows with the dataset's columns and types, generated
    from ``policy`` and ``schema`` only (see the module docstring for what each column
    holds).

    The values come from a seeded :class:`numpy.random.Generator` (``seed=None``: fresh
    entropy). This is not privacy noise and needs none of its care: the frame carries
    no information about the data — it is a function of the policy, the stored schema,
    ``rows`` and ``seed`` alone, and never reads a row.
    """
    pol = Policy.load(policy)
    rows = check_rows(rows)
    seed = check_seed(seed)
    base = seed if seed is not None else int(np.random.default_rng().integers(2**63))
    out: dict[str, Any] = {}
    persons: np.ndarray | None = None
    for name in dummy_columns(pol, schema):
        t = schema[name]
        cp = pol.columns.get(name)
        # each column draws from its own stream: adding a column to the policy does not
        # change the others' values
        crng = np.random.default_rng([base, _name_key(name)])
        if name == pol.privacy_unit:
            if persons is None:
                persons = _persons(pol, rows, crng)
            out[name] = _ids(name, persons, t, person=True)
        elif cp is not None and cp.role == "identifier":
            out[name] = _ids(name, np.arange(1, rows + 1), t, person=False)
        else:
            values = _values(name, t, cp, rows, crng)
            if pol.missing and cp is not None and cp.role in ("attribute", "sensitive"):
                values = _with_missing(values, t, rows, crng)
            out[name] = values
    return pd.DataFrame(out, index=pd.RangeIndex(rows))


def _name_key(name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def _persons(pol: Policy, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Person numbers 1, 2, … with 1 … ``min(max_groups · max_rows_per_group, 10)``
    rows each (in order, the last person cut short to fit ``rows``)."""
    most = min((pol.max_groups or 1) * (pol.max_rows_per_group or 1), MAX_ROWS_PER_PERSON)
    if most <= 1:
        return np.arange(1, rows + 1)
    counts = rng.integers(1, most + 1, size=rows)  # enough persons for any draw
    return np.repeat(np.arange(1, rows + 1), counts)[:rows]


def _ids(name: str, numbers: np.ndarray, t: str, *, person: bool) -> Any:
    if t in ("int", "float"):
        return numbers.astype("int64" if t == "int" else "float64")
    prefix = "person" if person else name
    return pd.Series([f"{prefix}-{n:06d}" for n in numbers.tolist()], dtype=object)


def _values(name: str, t: str, cp: Any, rows: int, rng: np.random.Generator) -> Any:
    keys = cp.keys if cp is not None else None
    bounds = cp.bounds if cp is not None else None
    if keys is not None and _keys_fit(keys, t):
        picks = rng.integers(0, len(keys), size=rows)
        if t == "int":
            return np.asarray([int(keys[i]) for i in picks.tolist()], dtype="int64")
        if t == "float":
            return np.asarray([float(keys[i]) for i in picks.tolist()], dtype="float64")
        if t == "bool":
            return np.asarray([bool(keys[i]) for i in picks.tolist()], dtype=bool)
        return pd.Series([keys[i] for i in picks.tolist()], dtype=object)
    if t == "int":
        lo, hi = (math.ceil(bounds[0]), math.floor(bounds[1])) if bounds else (0, 99)
        if lo > hi:  # bounds with no whole number between them
            lo = hi = math.floor(bounds[1])  # type: ignore[index]
        return rng.integers(lo, hi + 1, size=rows, dtype="int64")
    if t == "float":
        lo, hi = bounds if bounds else (0.0, 100.0)
        return rng.uniform(lo, hi, size=rows)
    if t == "bool":
        return rng.integers(0, 2, size=rows).astype(bool)
    if t == "date":
        start, end = _DATE_RANGE
        days = rng.integers(0, int((end - start).astype(int)) + 1, size=rows)
        return pd.Series(start + days.astype("timedelta64[D]")).astype("datetime64[ns]")
    picks = rng.integers(1, TEXT_PLACEHOLDERS + 1, size=rows)
    return pd.Series([f"{name}-{i}" for i in picks.tolist()], dtype=object)


def _keys_fit(keys: tuple[Any, ...], t: str) -> bool:
    if t == "str":
        return all(isinstance(k, str) for k in keys)
    if t == "int":
        return all(isinstance(k, (int, float)) and not isinstance(k, bool)
                   and float(k).is_integer() for k in keys)
    if t == "float":
        return all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys)
    if t == "bool":
        return all(isinstance(k, bool) for k in keys)
    return False


def _with_missing(values: Any, t: str, rows: int, rng: np.random.Generator) -> Any:
    mask = rng.random(rows) < MISSING_SHARE
    if t in ("int", "bool"):
        arr = pd.array(values, dtype="Int64" if t == "int" else "boolean")
        arr[mask] = pd.NA
        return arr
    s = pd.Series(values).copy()
    if t == "float":
        return s.mask(mask)
    s = s.astype(object)
    s[mask] = None
    return s
