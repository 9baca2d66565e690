"""The ``[verify]`` section of a dataset policy: who may be a subject, what may be
claimed about them, how often, and at which granularity.

::

    [verify]
    subject_keys = ["person_id"]   # columns a verifier may name a subject by
    membership = "hide"            # "hide": an absent subject answers "no match";
                                   # "reveal": it answers "no such subject"
    period = "month"               # quotas count per calendar day | week | month | year (UTC)
    max_per_analyst = 10000        # answers one analyst may get per period (all subjects)
    max_per_subject = 3            # claims about one subject per period, all analysts together
    max_batch = 100000             # subjects in one batch

    [verify.claims.age]            # a column that may be claimed about
    operators = [">=", "<"]        # of ==, !=, <, <=, >, >=, isin (default ["==", "isin"])
    granularity = 10               # every number in a claim is a multiple of 10

A column not listed under ``[verify.claims]`` can never be claimed about; the grade
rules (``allow`` must name ``verify``) and the negative list apply as to every release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import PolicyFormatError

__all__ = ["ClaimRule", "VerifyPolicy", "OPERATORS", "PERIODS", "MEMBERSHIP"]

#: the claim operators a policy may allow (``isin``: ``col(c).isin([...])``)
OPERATORS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "isin")
#: quota periods (calendar periods in UTC)
PERIODS: tuple[str, ...] = ("day", "week", "month", "year")
#: what an absent subject answers
MEMBERSHIP: tuple[str, ...] = ("hide", "reveal")
_DEFAULT_OPERATORS = ("==", "isin")
_KEYS = ("subject_keys", "membership", "period", "max_per_analyst", "max_per_subject",
         "max_batch", "claims")
_CLAIM_KEYS = ("operators", "granularity")

DEFAULT_MAX_PER_ANALYST = 10_000
DEFAULT_MAX_PER_SUBJECT = 3
DEFAULT_MAX_BATCH = 100_000
#: the largest batch a policy may allow
MAX_BATCH_LIMIT = 10_000_000


def _fail(where: str, message: str) -> None:
    key = "verify" + (f".{where}" if where else "")
    raise PolicyFormatError(f"{key}: {message}", key=key)


def _int(where: str, v: Any, minimum: int, meaning: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        _fail(where, f"must be an integer >= {minimum} ({meaning}), not {v!r}")
    return int(v)


@dataclass(frozen=True)
class ClaimRule:
    """What may be claimed about one column: ``operators`` and, for numbers,
    ``granularity`` (every number in a claim must be a multiple of it)."""

    column: str
    operators: tuple[str, ...] = _DEFAULT_OPERATORS
    granularity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"operators": list(self.operators)}
        if self.granularity is not None:
            g = self.granularity
            d["granularity"] = int(g) if float(g).is_integer() else g
        return d


@dataclass(frozen=True)
class VerifyPolicy:
    """The parsed ``[verify]`` section (see the module docstring)."""

    subject_keys: tuple[str, ...]
    claims: Mapping[str, ClaimRule] = field(default_factory=dict)
    membership: str = "hide"
    period: str = "month"
    max_per_analyst: int = DEFAULT_MAX_PER_ANALYST
    max_per_subject: int = DEFAULT_MAX_PER_SUBJECT
    max_batch: int = DEFAULT_MAX_BATCH

    @classmethod
    def from_dict(cls, d: Any) -> "VerifyPolicy":
        if not isinstance(d, Mapping):
            _fail("", "must be a table: write [verify] with subject_keys = [...]")
        unknown = sorted(set(map(str, d)) - set(_KEYS))
        if unknown:
            _fail(unknown[0], f"unknown key; accepted: {', '.join(_KEYS)}")
        keys = d.get("subject_keys")
        if (not isinstance(keys, (list, tuple)) or not keys
                or not all(isinstance(k, str) and k for k in keys)):
            _fail("subject_keys", "must be a non-empty list of column names, e.g. "
                  f"[\"person_id\"], not {keys!r}")
        if len(set(keys)) != len(keys):  # type: ignore[arg-type]
            _fail("subject_keys", "lists a column twice")
        membership = d.get("membership", "hide")
        if membership not in MEMBERSHIP:
            _fail("membership", f"must be \"hide\" or \"reveal\", not {membership!r}")
        period = d.get("period", "month")
        if period not in PERIODS:
            _fail("period", f"must be one of {', '.join(PERIODS)}, not {period!r}")
        per_analyst = _int("max_per_analyst", d.get("max_per_analyst", DEFAULT_MAX_PER_ANALYST),
                           1, "answers per analyst per period")
        per_subject = _int("max_per_subject", d.get("max_per_subject", DEFAULT_MAX_PER_SUBJECT),
                           1, "claims about one subject per period")
        batch = _int("max_batch", d.get("max_batch", DEFAULT_MAX_BATCH), 1, "subjects per batch")
        if batch > MAX_BATCH_LIMIT:
            _fail("max_batch", f"must be at most {MAX_BATCH_LIMIT:,}, not {batch!r}")
        raw = d.get("claims", {})
        if not isinstance(raw, Mapping):
            _fail("claims", "must be a table of [verify.claims.<column>] tables")
        claims: dict[str, ClaimRule] = {}
        for name, r in raw.items():
            where = f"claims.{name}"
            if not isinstance(r, Mapping):
                _fail(where, "must be a table with operators = [...] (and granularity = ...)")
            bad = sorted(set(map(str, r)) - set(_CLAIM_KEYS))
            if bad:
                _fail(f"{where}.{bad[0]}", f"unknown key; accepted: {', '.join(_CLAIM_KEYS)}")
            ops = r.get("operators", list(_DEFAULT_OPERATORS))
            if not isinstance(ops, (list, tuple)) or not ops:
                _fail(f"{where}.operators", f"must be a non-empty list of {', '.join(OPERATORS)}")
            for op in ops:
                if op not in OPERATORS:
                    _fail(f"{where}.operators", f"unknown operator {op!r}; accepted: "
                          f"{', '.join(OPERATORS)}")
            g = r.get("granularity")
            if g is not None:
                if (isinstance(g, bool) or not isinstance(g, (int, float))
                        or not math.isfinite(g) or g <= 0):
                    _fail(f"{where}.granularity", f"must be a number > 0, not {g!r}")
                g = float(g)
            claims[str(name)] = ClaimRule(str(name), tuple(dict.fromkeys(ops)), g)
        for k in keys:  # type: ignore[union-attr]
            if k in claims:
                _fail(f"claims.{k}", f"{k!r} is a subject key; a key is named, not claimed")
        from ..policy import _FrozenMap

        return cls(tuple(keys), _FrozenMap(claims), membership, period, per_analyst,  # type: ignore[arg-type]
                   per_subject, batch)

    def check_columns(self, columns: Mapping[str, Any], negative: Any) -> None:
        """Every column named here is listed in the policy and not negative-listed."""
        for c in list(self.subject_keys) + list(self.claims):
            where = "subject_keys" if c in self.subject_keys else f"claims.{c}"
            if c in negative:
                _fail(where, f"column {c!r} is on the negative list")
            if c not in columns:
                _fail(where, f"column {c!r} has no [columns.{c}] table; list it with its "
                      "role and grade (its grade must allow \"verify\")")
        for c, rule in self.claims.items():
            if rule.granularity is not None and columns[c].keys is not None:
                _fail(f"claims.{c}.granularity", "applies to numbers; this column has public "
                      "keys (categories)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_keys": list(self.subject_keys), "membership": self.membership,
            "period": self.period, "max_per_analyst": self.max_per_analyst,
            "max_per_subject": self.max_per_subject, "max_batch": self.max_batch,
            "claims": {c: r.to_dict() for c, r in self.claims.items()},
        }

    # ------------------------------------------------------------------ the bound
    def column_cells(self, column: str, bounds: tuple[float, float] | None,
                     keys: tuple[Any, ...] | None) -> int | None:
        """How many classes of values the allowed claims about ``column`` can tell apart
        (None: no bound from granularity or keys — only the quota bounds it)."""
        rule = self.claims[column]
        if keys is not None:
            return len(keys) + 1  # each key, or anything else / missing
        if rule.granularity is None or bounds is None:
            return None
        g = rule.granularity
        lo, hi = bounds
        n = math.floor(hi / g + 1e-9) - math.ceil(lo / g - 1e-9) + 1  # grid points in bounds
        n = max(n, 0)
        thresholds_only = set(rule.operators) <= {"<", ">="}
        # below/above the bounds, between grid points, and (unless only < and >= are
        # allowed) each grid point itself; plus "missing"
        return (n + 1 if thresholds_only else 2 * n + 1) + 1

    def bits_per_subject(self, policy: Any) -> dict[str, Any]:
        """The most a set of answers can reveal about one subject in one period, in bits:
        ``quota`` (the per-subject quota, +1 for membership when it is revealed),
        ``columns`` (per claimable column, log2 of the classes its claims tell apart),
        and ``bound`` = min(quota, sum of columns)."""
        quota = self.max_per_subject + (1 if self.membership == "reveal" else 0)
        cols: dict[str, float | None] = {}
        for c in self.claims:
            cp = policy.columns.get(c)
            cells = self.column_cells(c, getattr(cp, "bounds", None), getattr(cp, "keys", None))
            cols[c] = None if cells is None else math.log2(cells)
        known = [v for v in cols.values() if v is not None]
        total = sum(known) if len(known) == len(cols) else math.inf
        if self.membership == "reveal":
            total += 1
        return {"quota": float(quota), "columns": cols, "bound": min(float(quota), total)}
