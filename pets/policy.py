"""The dataset policy: column roles and grades, release rules, the negative list.

A data holder describes each table it registers with a policy, usually a TOML file::

    negative_list = ["name"]            # columns that may never appear in any query

    [dataset]
    missing = ["?"]                     # markers that mean "missing value" in the data

    [columns.age]
    role = "quasi_identifier"           # identifier | quasi_identifier | sensitive | attribute
    grade = 2                           # 1 public … 4 core
    bounds = [17, 90]                   # clamping bounds for DP

    [grades.2]
    allow = ["dp", "kanon", "he", "verify"]
    min_k = 5

The policy decides what may be released: a column it does not list is never released
(default deny), a column on the negative list may not appear in any query, and each
grade allows some release forms (``dp``, ``kanon``, ``he``, ``verify``) with limits.

A loaded :class:`Policy` is immutable. A malformed policy raises
:class:`~pets.errors.PolicyFormatError` naming the dotted key at fault and, for TOML,
its line::

    >>> Policy.from_toml_text('''
    ... [columns.age]
    ... role = "attribute"
    ... grade = 1
    ... bounds = [90, 17]
    ... [grades.1]
    ... allow = ["dp"]
    ... ''')
    Traceback (most recent call last):
    ...
    pets.errors.PolicyFormatError: line 5: columns.age.bounds: lower bound 90 is above upper bound 17; write bounds = [lower, upper]

See ``docs/policy.md`` for the full reference.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pets.errors import PolicyError, PolicyFormatError

__all__ = [
    "COLUMN_TYPES",
    "DEFAULT_GRADES",
    "DEFAULT_MAX_CELLS",
    "DEFAULT_MAX_ROWS",
    "FORMS",
    "GRADES",
    "ROLES",
    "ColumnPolicy",
    "GradeRule",
    "Policy",
]

#: Column roles, from most to least identifying.
ROLES: tuple[str, ...] = ("identifier", "quasi_identifier", "sensitive", "attribute")
#: Release forms a grade may allow: differential privacy, k-anonymous extracts,
#: homomorphically encrypted aggregation (with DP noise), match/no-match verification,
#: and ``he_exact`` — exact (noise-free) totals across holders, a distinct form a
#: policy must name explicitly: never implied by ``he``, never in the default grades.
FORMS: tuple[str, ...] = ("dp", "kanon", "he", "verify", "he_exact", "model", "synthetic")
# models and synthetic data are opt-in: a holder names them in a grade's allow list
_DEFAULT_FORMS: frozenset[str] = frozenset(f for f in FORMS if f not in ("he_exact", "model", "synthetic"))
#: Exact federated totals (form ``he_exact``) one analyst may take from a dataset when
#: the policy does not say ``max_exact_totals``: exact totals allow differencing, so few.
DEFAULT_MAX_EXACT_TOTALS = 10
#: Column grades: 1 public, 2 internal, 3 sensitive, 4 core.
GRADES: tuple[int, ...] = (1, 2, 3, 4)

_NONE_FORM = "none"  # in an allow list: nothing is allowed (same as [])

#: Rows a registered table may have when ``[dataset] max_rows`` is absent. pets decides
#: from it and the bounds, before looking at the data, whether every exact aggregate
#: fits in 64 bits (see ``docs/policy.md``).
DEFAULT_MAX_ROWS: int = 2**26
#: Largest ``max_rows`` a policy may set (every count, and a quantile's scores of up to
#: 1000 × a count, then fit in 64 bits with room for the noise).
MAX_ROWS_LIMIT: int = 2**52
#: Cells (group-key combinations × histogram bins) one DP release may ask for when
#: ``[dataset] max_cells`` is absent.
DEFAULT_MAX_CELLS: int = 1_000_000
#: Largest ``max_cells`` a policy may set.
MAX_CELLS_LIMIT: int = 2**40

_TOP_KEYS = ("negative_list", "dataset", "columns", "grades", "verify", "kanon")
_DATASET_KEYS = (
    "privacy_unit",
    "max_groups",
    "max_rows_per_group",
    "missing",
    "max_extracts",
    "max_exact_totals",
    "max_rows",
    "max_cells",
)
_COLUMN_KEYS = ("role", "grade", "bounds", "keys", "hierarchy", "type")
#: numeric types a policy may declare for a column (``type = "float"``)
COLUMN_TYPES: tuple[str, ...] = ("int", "float")
_GRADE_KEYS = ("allow", "max_epsilon", "min_k", "min_group_size")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

K = TypeVar("K")
V = TypeVar("V")


# --------------------------------------------------------------------------- helpers


class _FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping that keeps insertion order."""

    __slots__ = ("_d",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._d: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._d[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._d == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __repr__(self) -> str:
        return repr(self._d)


def _dotted(parts: Sequence[object]) -> str:
    """``("columns", "age", "bounds")`` → ``columns.age.bounds``; odd names are quoted."""
    out = []
    for p in parts:
        s = str(p)
        out.append(s if _BARE_KEY.fullmatch(s) else json.dumps(s, ensure_ascii=False))
    return ".".join(out)


def _fail(parts: Sequence[object], message: str) -> NoReturn:
    key = _dotted(parts)
    raise PolicyFormatError(f"{key}: {message}", key=key)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: object) -> str:
    """A number as a holder would write it: ``90`` not ``90.0``."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_list(v: object) -> bool:
    return isinstance(v, (list, tuple))


def _reject_unknown(parts: tuple[str, ...], table: Mapping[Any, Any], accepted: Sequence[str]) -> None:
    for k in table:
        if k not in accepted:
            where = "top-level keys" if not parts else f"keys in [{_dotted(parts)}]"
            _fail(
                parts + (str(k),),
                f"unknown key {str(k)!r}{_suggest(str(k), accepted)}; "
                f"accepted {where}: {', '.join(accepted)}",
            )


def _positive_int(parts: tuple[str, ...], v: Any, minimum: int, meaning: str) -> int:
    if not _is_int(v) or v < minimum:
        _fail(parts, f"must be an integer >= {minimum} ({meaning}), not {v!r}")
    return int(v)


def _str_list(parts: tuple[str, ...], v: Any, example: str) -> list[str]:
    if not _is_list(v):
        _fail(parts, f"must be a list of strings, e.g. {example}, not {v!r}")
    for i, item in enumerate(v):
        if not isinstance(item, str):
            _fail(parts, f"item {i + 1} must be a string, not {item!r}")
    return [str(item) for item in v]


# --------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class ColumnPolicy:
    """How one column is classified and what is public about it.

    ``role`` is one of :data:`ROLES`; ``grade`` is 1 (public) … 4 (core) and selects the
    :class:`GradeRule` that applies. ``bounds`` are the numeric clamping bounds DP uses
    (``lower < upper``); ``keys`` the public group-by keys (known without looking at the
    data, so releasing them reveals nothing); ``hierarchy`` the path of a
    generalisation hierarchy for k-anonymity (absolute once loaded from a file; its
    existence is checked when it is used, not here). ``type`` (``"int"`` or ``"float"``)
    declares a numeric column's type, so that releases do not depend on the type
    inferred from the rows: one fractional value turns an inferred ``int`` column into
    ``float``, which changes how its sums are encoded. Registration refuses data that
    does not fit the declared type.

    >>> ColumnPolicy("age", "quasi_identifier", 2, bounds=(17, 90)).bounds
    (17.0, 90.0)
    """

    name: str
    role: str
    grade: int
    bounds: tuple[float, float] | None = None
    keys: tuple[Any, ...] | None = None
    hierarchy: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail(("columns",), f"column names must be non-empty strings, not {self.name!r}")
        p = ("columns", self.name)
        if not isinstance(self.role, str) or self.role not in ROLES:
            hint = _suggest(self.role, ROLES) if isinstance(self.role, str) else ""
            _fail(p + ("role",), f"role {self.role!r}{hint} is not one of {', '.join(ROLES)}")
        if not _is_int(self.grade) or self.grade not in GRADES:
            _fail(p + ("grade",), f"grade must be an integer 1..4 (1 public … 4 core), not {self.grade!r}")
        if self.bounds is not None:
            object.__setattr__(self, "bounds", self._validate_bounds(p + ("bounds",), self.bounds))
        if self.keys is not None:
            object.__setattr__(self, "keys", self._validate_keys(p + ("keys",), self.keys))
        if self.hierarchy is not None:
            h = self.hierarchy
            if isinstance(h, os.PathLike):
                h = os.fspath(h)
            if not isinstance(h, str) or not h:
                _fail(p + ("hierarchy",), f"hierarchy must be a file path (a string), not {self.hierarchy!r}")
            object.__setattr__(self, "hierarchy", h)
        if self.type is not None and self.type not in COLUMN_TYPES:
            hint = _suggest(self.type, COLUMN_TYPES) if isinstance(self.type, str) else ""
            _fail(p + ("type",), f"type {self.type!r}{hint} is not one of {', '.join(COLUMN_TYPES)} "
                  "(declare the type of numeric columns; leave it out for others)")

    @staticmethod
    def _validate_bounds(parts: tuple[str, ...], b: Any) -> tuple[float, float]:
        if not _is_list(b) or len(b) != 2 or not all(_is_number(x) for x in b):
            _fail(parts, f"bounds must be a list of two numbers, write bounds = [lower, upper], not {b!r}")
        lo, hi = b
        if not (math.isfinite(lo) and math.isfinite(hi)):
            _fail(parts, f"bounds must be finite numbers, not [{_fmt(lo)}, {_fmt(hi)}]")
        if lo > hi:
            _fail(parts, f"lower bound {_fmt(lo)} is above upper bound {_fmt(hi)}; write bounds = [lower, upper]")
        if lo == hi:
            _fail(parts, f"lower bound {_fmt(lo)} equals upper bound {_fmt(hi)}; bounds need lower < upper")
        return (float(lo), float(hi))

    @staticmethod
    def _validate_keys(parts: tuple[str, ...], keys: Any) -> tuple[Any, ...]:
        if not _is_list(keys):
            _fail(parts, f"keys must be a list of public group-by keys, e.g. [\"Female\", \"Male\"], not {keys!r}")
        if len(keys) == 0:
            _fail(parts, "keys must not be empty; leave keys out if the column has no public keys")
        seen: set[tuple[bool, Any]] = set()
        for i, k in enumerate(keys):
            if not isinstance(k, (str, int, float, bool)):
                _fail(parts, f"key {i + 1} must be a string, number or boolean, not {type(k).__name__}")
            if isinstance(k, float) and not math.isfinite(k):
                _fail(parts, f"key {i + 1} must be a finite number, not {k!r}")
            ident = (isinstance(k, bool), k)
            if ident in seen:
                _fail(parts, f"keys lists {k!r} twice; each public key must appear once")
            seen.add(ident)
        return tuple(keys)

    def to_dict(self) -> dict[str, Any]:
        """The ``[columns.<name>]`` table as a plain dict (unset keys left out)."""
        d: dict[str, Any] = {"role": self.role, "grade": self.grade}
        if self.bounds is not None:
            d["bounds"] = list(self.bounds)
        if self.keys is not None:
            d["keys"] = list(self.keys)
        if self.type is not None:
            d["type"] = self.type
        if self.hierarchy is not None:
            d["hierarchy"] = self.hierarchy
        return d


# --------------------------------------------------------------------------- grades


@dataclass(frozen=True)
class GradeRule:
    """What may be released from the columns of one grade.

    ``allow`` is a subset of :data:`FORMS` (``["none"]`` or ``[]`` allows nothing);
    ``max_epsilon`` the largest ε one DP release may spend; ``min_k`` the smallest k a
    k-anonymous extract may use; ``min_group_size`` the smallest noisy count a DP cell
    may have before it is suppressed.

    >>> sorted(GradeRule(3, ["dp", "he"], max_epsilon=1.0).allow)
    ['dp', 'he']
    """

    grade: int
    allow: frozenset[str]
    max_epsilon: float | None = None
    min_k: int | None = None
    min_group_size: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.grade) or self.grade not in GRADES:
            _fail(("grades", str(self.grade)), "grade tables are [grades.1] … [grades.4]")
        p = ("grades", str(self.grade))
        allow: Any = self.allow
        if isinstance(allow, str) or not isinstance(allow, (list, tuple, set, frozenset)):
            _fail(
                p + ("allow",),
                f"allow must be a list of forms, e.g. [\"dp\", \"verify\"] (allow = [] denies everything), "
                f"not {allow!r}",
            )
        forms = set()
        for f in allow:
            if not isinstance(f, str) or (f not in FORMS and f != _NONE_FORM):
                hint = _suggest(f, FORMS) if isinstance(f, str) else ""
                _fail(
                    p + ("allow",),
                    f"unknown form {f!r}{hint}; accepted: {', '.join(FORMS)} (or \"none\")",
                )
            forms.add(f)
        if _NONE_FORM in forms:
            if len(forms) > 1:
                _fail(p + ("allow",), "\"none\" allows nothing and cannot be combined with other forms")
            forms.clear()
        object.__setattr__(self, "allow", frozenset(forms))
        if self.max_epsilon is not None:
            e = self.max_epsilon
            if not _is_number(e) or not math.isfinite(e) or e <= 0:
                _fail(
                    p + ("max_epsilon",),
                    f"max_epsilon must be a finite number > 0 (the largest ε one release may spend), not {e!r}",
                )
            object.__setattr__(self, "max_epsilon", float(e))
        if self.min_k is not None:
            _positive_int(p + ("min_k",), self.min_k, 2, "k = 1 protects nobody")
        if self.min_group_size is not None:
            _positive_int(p + ("min_group_size",), self.min_group_size, 1, "smallest noisy count released")

    def allows(self, form: str) -> bool:
        """Whether this grade allows the release form ``form`` (one of :data:`FORMS`)."""
        return form in self.allow

    def to_dict(self) -> dict[str, Any]:
        """The ``[grades.<n>]`` table as a plain dict (unset keys left out)."""
        d: dict[str, Any] = {"allow": [f for f in FORMS if f in self.allow]}
        if self.max_epsilon is not None:
            d["max_epsilon"] = self.max_epsilon
        if self.min_k is not None:
            d["min_k"] = self.min_k
        if self.min_group_size is not None:
            d["min_group_size"] = self.min_group_size
        return d


#: The grade rules of the API's example policy. Not applied automatically: a policy
#: must write its own ``[grades.N]`` tables; this is a starting point for code that
#: builds policies, e.g. ``Policy(columns=..., grades=DEFAULT_GRADES)``.
DEFAULT_GRADES: Mapping[int, GradeRule] = _FrozenMap(
    {
        1: GradeRule(1, _DEFAULT_FORMS),
        2: GradeRule(2, _DEFAULT_FORMS, min_k=5),
        3: GradeRule(3, frozenset({"dp", "he", "verify"}), max_epsilon=1.0, min_group_size=10),
        4: GradeRule(4, frozenset()),
    }
)


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """A dataset policy: column roles and grades, grade rules, the negative list.

    Build one with :meth:`load` (a TOML path, a dict or a Policy),
    :meth:`from_toml_text`, :meth:`from_dict` or :meth:`from_json`. Constructing it
    directly validates it too; ``columns`` and ``grades`` may then be dicts (or
    sequences of :class:`ColumnPolicy` / :class:`GradeRule`) and are stored read-only.

    ``privacy_unit`` names the column whose values are persons (``None``: one row per
    person); it need not be listed under ``columns`` (it is only used to bound each
    person's contribution, never released), but if listed its role must be
    ``"identifier"``. ``max_groups`` and ``max_rows_per_group`` bound how many
    groups and rows per group one person may contribute; ``missing`` lists the markers
    that mean "missing value" in the data; ``max_extracts`` caps the k-anonymous
    extracts one analyst may take; ``max_exact_totals`` caps the exact federated totals
    (form ``he_exact``) one analyst may take (default :data:`DEFAULT_MAX_EXACT_TOTALS`).
    ``max_rows`` is the most rows the table may have
    (registration refuses a larger table; DP releases decide from it and the bounds,
    before looking at the data, that no aggregate overflows; default
    :data:`DEFAULT_MAX_ROWS`), ``max_cells`` the most cells one DP release may ask for
    (default :data:`DEFAULT_MAX_CELLS`); read them through :attr:`row_limit` and
    :attr:`cell_limit`.
    """

    columns: Mapping[str, ColumnPolicy]
    grades: Mapping[int, GradeRule]
    negative_list: frozenset[str] = field(default_factory=frozenset)
    privacy_unit: str | None = None
    max_groups: int | None = None
    max_rows_per_group: int | None = None
    missing: tuple[str, ...] = ()
    max_extracts: int | None = None
    max_exact_totals: int | None = None
    max_rows: int | None = None
    max_cells: int | None = None
    #: the ``[verify]`` section (:class:`pets.verify.policy.VerifyPolicy`), or None
    verify: Any = None
    #: the ``[kanon]`` section (:class:`pets.anon.policy.KanonPolicy`), or None
    kanon: Any = None

    @property
    def row_limit(self) -> int:
        """The most rows the table may have: ``max_rows``, or :data:`DEFAULT_MAX_ROWS`."""
        return self.max_rows if self.max_rows is not None else DEFAULT_MAX_ROWS

    @property
    def cell_limit(self) -> int:
        """The most cells one DP release may ask for: ``max_cells``, or
        :data:`DEFAULT_MAX_CELLS`."""
        return self.max_cells if self.max_cells is not None else DEFAULT_MAX_CELLS

    def __post_init__(self) -> None:
        columns = self._freeze_columns(self.columns)
        grades = self._freeze_grades(self.grades)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "grades", grades)
        if not columns:
            _fail(
                ("columns",),
                "the policy lists no columns; add a [columns.<name>] table for each column that may be released",
            )
        for name, c in columns.items():
            if c.grade not in grades:
                _fail(
                    ("columns", name, "grade"),
                    f"grade {c.grade} has no [grades.{c.grade}] table; add one (allow = [] denies everything)",
                )
        neg = self.negative_list
        if isinstance(neg, str) or not isinstance(neg, (list, tuple, set, frozenset)):
            _fail(("negative_list",), f"must be a list of column names, e.g. [\"name\"], not {neg!r}")
        for item in neg:
            if not isinstance(item, str) or not item:
                _fail(("negative_list",), f"column names must be non-empty strings, not {item!r}")
        object.__setattr__(self, "negative_list", frozenset(neg))

        pu = self.privacy_unit
        if pu is not None:
            key = ("dataset", "privacy_unit")
            if not isinstance(pu, str) or not pu:
                _fail(key, f"must be the name of an identifier column, not {pu!r}")
            # An unlisted privacy unit is fine: it is never released, only used to bound
            # each person's contribution. A listed one must be an identifier.
            if pu in columns and columns[pu].role != "identifier":
                _fail(key, f"column {pu!r} has role {columns[pu].role!r}; the privacy unit must have role = \"identifier\"")
        if self.max_groups is not None:
            _positive_int(("dataset", "max_groups"), self.max_groups, 1, "groups one person may contribute to")
        if self.max_rows_per_group is not None:
            _positive_int(
                ("dataset", "max_rows_per_group"), self.max_rows_per_group, 1, "rows one person may contribute per group"
            )
        if self.max_extracts is not None:
            _positive_int(("dataset", "max_extracts"), self.max_extracts, 1, "k-anonymous extracts per analyst")
        if self.max_exact_totals is not None:
            _positive_int(("dataset", "max_exact_totals"), self.max_exact_totals, 1,
                          "exact federated totals (he_exact) per analyst")
        if self.max_rows is not None:
            _positive_int(("dataset", "max_rows"), self.max_rows, 1, "rows the table may have")
            if self.max_rows > MAX_ROWS_LIMIT:
                _fail(("dataset", "max_rows"), f"must be at most 2**52 = {MAX_ROWS_LIMIT}, not {self.max_rows!r}")
        if self.max_cells is not None:
            _positive_int(("dataset", "max_cells"), self.max_cells, 1, "cells one DP release may ask for")
            if self.max_cells > MAX_CELLS_LIMIT:
                _fail(("dataset", "max_cells"), f"must be at most 2**40 = {MAX_CELLS_LIMIT}, not {self.max_cells!r}")
        if self.verify is not None:
            from .verify.policy import VerifyPolicy

            v = self.verify if isinstance(self.verify, VerifyPolicy) else VerifyPolicy.from_dict(self.verify)
            v.check_columns(columns, self.negative_list)
            object.__setattr__(self, "verify", v)
        if self.kanon is not None:
            from .anon.policy import KanonPolicy

            object.__setattr__(self, "kanon", KanonPolicy.from_dict(self.kanon))
        missing = _str_list(("dataset", "missing"), self.missing, '["?"]')
        object.__setattr__(self, "missing", tuple(dict.fromkeys(missing)))
        for name, c in columns.items():
            for k in c.keys or ():
                if isinstance(k, str) and k in self.missing:
                    _fail(
                        ("columns", name, "keys"),
                        f"key {k!r} is a missing-value marker (dataset.missing); rows with a missing key "
                        "fall in no public key, so leave it out of keys",
                    )

    @staticmethod
    def _freeze_columns(columns: object) -> _FrozenMap[str, ColumnPolicy]:
        if isinstance(columns, Mapping):
            items = list(columns.items())
        elif isinstance(columns, Iterable) and not isinstance(columns, (str, bytes)):
            items = [(getattr(c, "name", None), c) for c in columns]
        else:
            _fail(("columns",), f"must be a mapping of column name to ColumnPolicy, not {columns!r}")
        for name, c in items:
            if not isinstance(c, ColumnPolicy):
                _fail(("columns", str(name)), f"must be a ColumnPolicy, not {type(c).__name__}")
            if name != c.name:
                _fail(("columns", str(name)), f"is keyed {name!r} but its ColumnPolicy is named {c.name!r}")
        return _FrozenMap(items)

    @staticmethod
    def _freeze_grades(grades: object) -> _FrozenMap[int, GradeRule]:
        if isinstance(grades, Mapping):
            items = list(grades.items())
        elif isinstance(grades, Iterable) and not isinstance(grades, (str, bytes)):
            items = [(getattr(r, "grade", None), r) for r in grades]
        else:
            _fail(("grades",), f"must be a mapping of grade to GradeRule, not {grades!r}")
        out: dict[int, GradeRule] = {}
        for g, r in items:
            if not isinstance(r, GradeRule):
                _fail(("grades", str(g)), f"must be a GradeRule, not {type(r).__name__}")
            if g != r.grade or not _is_int(g):
                _fail(("grades", str(g)), f"is keyed {g!r} but its GradeRule is for grade {r.grade}")
            out[g] = r
        return _FrozenMap(sorted(out.items()))

    # ----------------------------------------------------------------- lookups

    def column(self, name: str) -> ColumnPolicy:
        """The policy of column ``name``.

        Raises :class:`~pets.errors.PolicyError` with ``rule="negative_list"`` if the
        column is on the negative list (even if it is also listed), and with
        ``rule="default_deny"`` if the policy does not list it.
        """
        if name in self.negative_list:
            raise PolicyError(
                f"column {name!r} is on the negative list: it may never appear in any query "
                "(filter, group-by, aggregation or select)",
                rule="negative_list",
                column=name,
            )
        c = self.columns.get(name)
        if c is None:
            raise PolicyError(
                f"column {name!r} is not listed in the policy, and a column the policy does not "
                f"list is never released; to release it, add [columns.{_dotted([name])}] to the policy",
                rule="default_deny",
                column=name,
            )
        return c

    def grade_rule(self, grade: int) -> GradeRule:
        """The rule of ``grade``; :class:`~pets.errors.PolicyError` (``rule="default_deny"``)
        if the policy has no ``[grades.<grade>]`` table."""
        rule = self.grades.get(grade)
        if rule is None:
            raise PolicyError(
                f"the policy has no [grades.{grade}] table, so nothing of grade {grade} is released",
                rule="default_deny",
                allowed=frozenset(),
            )
        return rule

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, obj: str | os.PathLike[str] | Mapping[str, Any] | Policy, base_dir: str | os.PathLike[str] | None = None) -> Policy:
        """A policy from a TOML file path (``str`` or ``Path``), a dict, or a Policy.

        A ``str`` is always a path; use :meth:`from_toml_text` for TOML text. Relative
        hierarchy paths resolve against ``base_dir``, by default the policy file's
        folder (for a dict: the current directory).
        """
        if isinstance(obj, Policy):
            return obj
        if isinstance(obj, Mapping):
            return cls.from_dict(obj, base_dir=base_dir)
        if isinstance(obj, (str, os.PathLike)):
            return cls.from_toml(obj, base_dir=base_dir)
        raise PolicyFormatError(
            f"a policy must be a TOML file path, a dict or a pets.Policy, not {type(obj).__name__}"
        )

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> Policy:
        """A policy from the TOML file at ``path``; errors name the file's line."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            if isinstance(path, str) and ("\n" in path or "=" in path):
                raise PolicyFormatError(
                    "a str is a policy file path, and this one looks like TOML text; "
                    "use Policy.from_toml_text(text) for text"
                ) from None
            if isinstance(e, FileNotFoundError):
                raise PolicyFormatError(f"policy file {str(path)!r} not found") from None
            raise PolicyFormatError(f"cannot read policy file {str(path)!r}: {e}") from None
        return cls.from_toml_text(text, base_dir=p.absolute().parent if base_dir is None else base_dir)

    @classmethod
    def from_toml_text(cls, text: str, base_dir: str | os.PathLike[str] | None = None) -> Policy:
        """A policy from TOML text. Errors carry the line of the key at fault."""
        if not isinstance(text, str):
            raise PolicyFormatError(f"policy TOML must be text, not {type(text).__name__}")
        _check_toml_size(text)
        try:
            data = tomllib.loads(text)
        except RecursionError:  # deeper than _check_toml_size foresaw
            raise PolicyFormatError(
                f"invalid TOML: arrays and inline tables nest more than {MAX_TOML_NESTING} levels deep"
            ) from None
        except tomllib.TOMLDecodeError as e:
            msg = str(e)
            m = re.search(r"at line (\d+)", msg)
            line = int(m.group(1)) if m else (text.count("\n") + 1 if "end of document" in msg else None)
            msg = re.sub(r"\s*\((at line \d+, column \d+|at end of document)\)\s*$", "", msg)
            prefix = f"line {line}: " if line is not None else ""
            raise PolicyFormatError(f"{prefix}invalid TOML: {msg}", line=line) from None
        try:
            return cls.from_dict(data, base_dir=base_dir)
        except PolicyFormatError as e:
            if e.key is None or e.line is not None:
                raise
            parts = _parse_dotted(e.key)
            line = _TomlIndex(text).line_of(parts) if parts else None
            if line is None:
                raise
            raise PolicyFormatError(f"line {line}: {e}", key=e.key, line=line) from None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base_dir: str | os.PathLike[str] | None = None) -> Policy:
        """A policy from a dict shaped like the TOML file (what :meth:`to_dict` returns).

        Grade tables may be keyed ``"1"`` or ``1``. Relative hierarchy paths resolve
        against ``base_dir`` (default: the current directory) to absolute paths.
        """
        if not isinstance(d, Mapping):
            raise PolicyFormatError(f"a policy must be a table (dict), not {type(d).__name__}")
        _reject_unknown((), d, _TOP_KEYS)
        base = Path(base_dir) if base_dir is not None else Path.cwd()

        dataset = d.get("dataset", {})
        if not isinstance(dataset, Mapping):
            _fail(("dataset",), "must be a table: write [dataset]")
        _reject_unknown(("dataset",), dataset, _DATASET_KEYS)

        raw_columns = d.get("columns")
        if raw_columns is None:
            _fail(
                ("columns",),
                "the policy lists no columns; add a [columns.<name>] table for each column that may be released",
            )
        if not isinstance(raw_columns, Mapping):
            _fail(("columns",), "must be a table of [columns.<name>] tables")
        columns: dict[str, ColumnPolicy] = {}
        for name, raw in raw_columns.items():
            p = ("columns", str(name))
            if not isinstance(raw, Mapping):
                _fail(p, f"must be a table: write [columns.{_dotted([str(name)])}] with role and grade")
            _reject_unknown(p, raw, _COLUMN_KEYS)
            if "role" not in raw:
                _fail(p + ("role",), f"missing; every column needs a role ({', '.join(ROLES)})")
            if "grade" not in raw:
                _fail(p + ("grade",), "missing; every column needs a grade (1 public … 4 core)")
            hierarchy = raw.get("hierarchy")
            if isinstance(hierarchy, str) and hierarchy:
                hierarchy = os.path.normpath(os.path.join(base.absolute(), os.path.expanduser(hierarchy)))
            columns[name] = ColumnPolicy(
                name=name,
                role=raw["role"],
                grade=raw["grade"],
                bounds=raw.get("bounds"),
                keys=raw.get("keys"),
                hierarchy=hierarchy,
                type=raw.get("type"),
            )

        raw_grades = d.get("grades", {})
        if not isinstance(raw_grades, Mapping):
            _fail(("grades",), "must be a table of [grades.1] … [grades.4] tables")
        grades: dict[int, GradeRule] = {}
        for gkey, raw in raw_grades.items():
            p = ("grades", str(gkey))
            g: int | None = None
            if _is_int(gkey):
                g = gkey
            elif isinstance(gkey, str) and gkey in ("1", "2", "3", "4"):
                g = int(gkey)
            if g not in GRADES:
                _fail(p, f"there is no grade {str(gkey)!r}; grade tables are [grades.1] … [grades.4]")
            if g in grades:
                _fail(p, f"grade {g} is given twice")
            if not isinstance(raw, Mapping):
                _fail(p, f"must be a table: write [grades.{g}] with allow = [...]")
            _reject_unknown(p, raw, _GRADE_KEYS)
            if "allow" not in raw:
                _fail(p + ("allow",), "missing; write allow = [\"dp\", ...] (allow = [] denies everything)")
            grades[g] = GradeRule(
                grade=g,
                allow=raw["allow"],
                max_epsilon=raw.get("max_epsilon"),
                min_k=raw.get("min_k"),
                min_group_size=raw.get("min_group_size"),
            )

        return cls(
            columns=columns,
            grades=grades,
            negative_list=d.get("negative_list", frozenset()),
            privacy_unit=dataset.get("privacy_unit"),
            max_groups=dataset.get("max_groups"),
            max_rows_per_group=dataset.get("max_rows_per_group"),
            missing=dataset.get("missing", ()),
            max_extracts=dataset.get("max_extracts"),
            max_exact_totals=dataset.get("max_exact_totals"),
            max_rows=dataset.get("max_rows"),
            max_cells=dataset.get("max_cells"),
            verify=d.get("verify"),
            kanon=_kanon_section(d.get("kanon"), base),
        )

    @classmethod
    def from_json(cls, s: str, base_dir: str | os.PathLike[str] | None = None) -> Policy:
        """A policy from the JSON text :meth:`to_json` writes."""
        try:
            data = json.loads(s)
        except json.JSONDecodeError as e:
            raise PolicyFormatError(f"line {e.lineno}: invalid JSON: {e.msg}", line=e.lineno) from None
        return cls.from_dict(data, base_dir=base_dir)

    # ----------------------------------------------------------------- export

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able dict shaped like the TOML file.

        ``Policy.from_dict(p.to_dict()) == p`` (hierarchy paths are already absolute
        after loading; a relative one set by hand would be resolved again).
        """
        out: dict[str, Any] = {}
        if self.negative_list:
            out["negative_list"] = sorted(self.negative_list)
        dataset: dict[str, Any] = {}
        if self.privacy_unit is not None:
            dataset["privacy_unit"] = self.privacy_unit
        if self.max_groups is not None:
            dataset["max_groups"] = self.max_groups
        if self.max_rows_per_group is not None:
            dataset["max_rows_per_group"] = self.max_rows_per_group
        if self.missing:
            dataset["missing"] = list(self.missing)
        if self.max_extracts is not None:
            dataset["max_extracts"] = self.max_extracts
        if self.max_exact_totals is not None:
            dataset["max_exact_totals"] = self.max_exact_totals
        if self.max_rows is not None:
            dataset["max_rows"] = self.max_rows
        if self.max_cells is not None:
            dataset["max_cells"] = self.max_cells
        if dataset:
            out["dataset"] = dataset
        out["columns"] = {name: c.to_dict() for name, c in self.columns.items()}
        out["grades"] = {str(g): r.to_dict() for g, r in self.grades.items()}
        if self.verify is not None:
            out["verify"] = self.verify.to_dict()
        if self.kanon is not None:
            out["kanon"] = self.kanon.to_dict()
        return out

    def to_json(self) -> str:
        """The policy as JSON text (:meth:`to_dict`); :meth:`from_json` reads it back."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


# --------------------------------------------------------------------------- TOML lines


#: Longest policy TOML text accepted.
MAX_TOML_LENGTH = 1_000_000
#: Deepest nesting of arrays and inline tables in a policy (a policy needs two or three).
MAX_TOML_NESTING = 32


def _check_toml_size(text: str) -> None:
    """Refuse TOML longer than :data:`MAX_TOML_LENGTH` or with arrays / inline tables
    nested deeper than :data:`MAX_TOML_NESTING`, before tomllib (which recurses per
    level) sees it. Strings and comments are skipped; table headers count as one level."""
    if len(text) > MAX_TOML_LENGTH:
        raise PolicyFormatError(
            f"the policy is {len(text):,} characters long; at most {MAX_TOML_LENGTH:,} are supported"
        )
    i, n, level, line = 0, len(text), 0, 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "\"'":
            q = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(q)
            while j < n and not text.startswith(q, j):
                if c == '"' and text[j] == "\\":
                    j += 1
                elif text[j] == "\n":
                    if len(q) == 1:
                        break  # an unterminated one-line string: tomllib will say so
                    line += 1
                j += 1
            i = j + len(q)
            continue
        elif c in "[{":
            level += 1
            if level > MAX_TOML_NESTING:
                raise PolicyFormatError(
                    f"line {line}: arrays and inline tables nest more than {MAX_TOML_NESTING} "
                    "levels deep", line=line,
                )
        elif c in "]}":
            level = max(0, level - 1)
        i += 1


def _parse_key(s: str, pos: int = 0) -> tuple[tuple[str, ...], int] | None:
    """Parse a (dotted) TOML key at ``s[pos:]``; return its parts and the end index."""
    parts: list[str] = []
    n = len(s)
    while True:
        while pos < n and s[pos] in " \t":
            pos += 1
        if pos >= n:
            return None
        c = s[pos]
        if c == '"':
            m = re.compile(r'"(?:[^"\\]|\\.)*"').match(s, pos)
            if not m:
                return None
            try:
                parts.append(tomllib.loads(f"k = {m.group(0)}")["k"])
            except tomllib.TOMLDecodeError:
                return None
            pos = m.end()
        elif c == "'":
            end = s.find("'", pos + 1)
            if end < 0:
                return None
            parts.append(s[pos + 1 : end])
            pos = end + 1
        else:
            m = _BARE_KEY.match(s, pos)
            if not m:
                return None
            parts.append(m.group(0))
            pos = m.end()
        while pos < n and s[pos] in " \t":
            pos += 1
        if pos < n and s[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


def _parse_dotted(key: str) -> tuple[str, ...] | None:
    parsed = _parse_key(key)
    if parsed is None or parsed[1] != len(key):
        return None
    return parsed[0]


def _advance(line: str, in_ml: str | None, depth: int) -> tuple[str | None, int]:
    """Carry the multi-line-string and bracket state of a TOML scan over one line."""
    i, n = 0, len(line)
    while i < n:
        if in_ml is not None:
            if in_ml == '"""' and line[i] == "\\":
                i += 2
                continue
            if line.startswith(in_ml, i):
                i += 3
                while i < n and line[i] == in_ml[0]:  # up to two quotes may close with it
                    i += 1
                in_ml = None
                continue
            i += 1
            continue
        c = line[i]
        if c == "#":
            break
        if c in "\"'":
            if line.startswith(c * 3, i):
                in_ml = c * 3
                i += 3
                continue
            i += 1
            while i < n and line[i] != c:
                i += 2 if (c == '"' and line[i] == "\\") else 1
            i += 1
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return in_ml, depth


class _TomlIndex:
    """The line of each table header and key/value pair of a (valid) TOML text,
    by full dotted key path."""

    def __init__(self, text: str) -> None:
        self.entries: list[tuple[tuple[str, ...], int]] = []
        table: tuple[str, ...] = ()
        in_ml: str | None = None
        depth = 0
        for lineno, line in enumerate(text.split("\n"), start=1):
            if in_ml is None and depth == 0:
                s = line.strip()
                if s.startswith("["):
                    inner = 2 if s.startswith("[[") else 1
                    parsed = _parse_key(s, inner)
                    if parsed is not None:
                        table = parsed[0]
                        self.entries.append((table, lineno))
                elif s and not s.startswith("#"):
                    parsed = _parse_key(s)
                    if parsed is not None:
                        self.entries.append((table + parsed[0], lineno))
            in_ml, depth = _advance(line, in_ml, depth)

    def line_of(self, parts: tuple[str, ...]) -> int | None:
        """The line of ``parts``; else of its nearest enclosing table (header or first
        key inside it); ``None`` if nothing matches."""
        for size in range(len(parts), 0, -1):
            prefix = parts[:size]
            for path, line in self.entries:
                if path == prefix:
                    return line
            for path, line in self.entries:
                if path[:size] == prefix:
                    return line
        return None


def _kanon_section(raw: Any, base: Path) -> Any:
    """The ``[kanon]`` section with its population path resolved against ``base``."""
    if raw is None:
        return None
    from .anon.policy import KanonPolicy

    return KanonPolicy.from_dict(raw, base)
