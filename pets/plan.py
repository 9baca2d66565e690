"""The query plan: a small IR of frozen dataclasses, and its JSON form.

Every front end (the Python builder, SQL, the command line, the HTTP client) produces a
:class:`Plan`; governance, mechanisms and engines only ever see plans. A plan turns into
JSON and back without loss (``Plan.from_json(p.to_json()) == p``), which is what the
server will send over the wire.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import QueryError

__all__ = [
    "Col",
    "Lit",
    "Compare",
    "And",
    "Or",
    "Not",
    "IsIn",
    "IsNull",
    "Arith",
    "Neg",
    "Case",
    "Expr",
    "GroupKey",
    "Aggregation",
    "Plan",
    "COMPARE_OPS",
    "AGG_KINDS",
    "MAX_BINS",
    "expr_columns",
    "ARITH_OPS",
    "expr_text",
    "case_keys",
    "MAX_DEPTH",
    "RESERVED_PREFIX",
    "connect",
    "depth",
]

COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
AGG_KINDS = ("count", "sum", "mean", "variance", "stddev", "quantile", "histogram",
             "count_distinct")
#: most bins one histogram may have (each bin is one exact count per cell)
MAX_BINS = 1000
ARITH_OPS = ("+", "-", "*", "/")

Scalar = Union[str, int, float, bool, None]


#: Integers a query may write: what the engine's widest integer (HUGEINT, 128 bits) holds.
MIN_INT, MAX_INT = -(2**127), 2**127 - 1
#: Deepest expression tree a plan may hold (a left-deep chain of n ``&`` / ``+`` terms is
#: n levels deep; long ``&`` / ``|`` chains are balanced by the builder and SQL, see
#: :func:`connect`). Every walker over expressions recurses at most this deep.
MAX_DEPTH = 64
#: Longest string literal or column name a plan may hold.
MAX_TEXT = 10_000
#: Names starting with this (in any case) are reserved for the hidden columns of the
#: engines: no column, group or output of a plan may be named so.
RESERVED_PREFIX = "__pets"
#: Longest plan JSON text accepted.
MAX_PLAN_JSON = 10_000_000


def _check_scalar(value: Any, what: str) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise QueryError(f"{what} is {len(value):,} characters long; at most {MAX_TEXT:,} are supported")
        return value
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            digits = len(str(abs(value)))
            shown = repr(value) if digits <= 30 else f"an integer of {digits} digits"
            raise QueryError(
                f"{what} must be a whole number within the 128-bit range (±1.7e38), got {shown}"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"{what} must be a finite number, got {value!r}")
        return value
    # numpy scalars and the like
    item = getattr(value, "item", None)
    if callable(item):
        return _check_scalar(item(), what)
    raise QueryError(
        f"{what} must be a string, number, boolean or None, got {type(value).__name__}"
    )


def _check_unreserved(name: str, what: str) -> None:
    if name.lower().startswith(RESERVED_PREFIX):
        raise QueryError(
            f"{what} {name!r} starts with {RESERVED_PREFIX!r}, which pets reserves for its "
            "hidden columns; choose another name"
        )


def depth(e: Any) -> int:
    """How many levels an expression nests (a column or literal: 1)."""
    return getattr(e, "_depth", 1)


def _set_depth(node: Any, *children: Any) -> None:
    """Record the node's depth, refusing trees deeper than :data:`MAX_DEPTH` — so that
    no walker over a plan (text, JSON, SQL, bounds) can recurse without limit."""
    d = 1 + max((depth(c) for c in children if c is not None), default=0)
    if d > MAX_DEPTH:
        raise QueryError(
            f"the expression nests more than {MAX_DEPTH} levels deep (each operator applied to "
            "another's result adds a level); write it flatter: e.g. isin([...]) for many "
            "alternatives, a sum over fewer terms, or several filter(...) calls"
        )
    object.__setattr__(node, "_depth", d)


def connect(kind: "type[And] | type[Or]", left: "Expr", right: "Expr") -> "And | Or":
    """``kind(left, right)`` — but a long chain of the same connector (``a & b & c & …``)
    is rebuilt as a balanced tree of the same terms in the same order, so that a chain
    of thousands of conditions stays a few levels deep. Short chains keep their shape."""
    if 1 + max(depth(left), depth(right)) <= MAX_DEPTH - 8:
        return kind(left, right)
    terms: list[Any] = []
    stack: list[Any] = [right, left]
    while stack:
        x = stack.pop()
        if type(x) is kind:
            stack.append(x.right)
            stack.append(x.left)
        else:
            terms.append(x)
    return _balanced(kind, terms)


def _balanced(kind: Any, terms: list[Any]) -> Any:
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    return kind(_balanced(kind, terms[:mid]), _balanced(kind, terms[mid:]))


@dataclass(frozen=True)
class Col:
    """A reference to a column of the dataset."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise QueryError(f"a column name must be a non-empty string, got {self.name!r}")
        if len(self.name) > MAX_TEXT:
            raise QueryError(f"a column name is {len(self.name):,} characters long; at most {MAX_TEXT:,}")
        _check_unreserved(self.name, "column")
        _set_depth(self)


@dataclass(frozen=True)
class Lit:
    """A literal value written by the analyst."""

    value: Scalar

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _check_scalar(self.value, "a literal"))
        _set_depth(self)


@dataclass(frozen=True)
class Compare:
    op: str
    left: "Expr"
    right: "Expr"

    def __post_init__(self) -> None:
        if self.op not in COMPARE_OPS:
            raise QueryError(f"unknown comparison {self.op!r}; use one of {', '.join(COMPARE_OPS)}")
        _set_depth(self, self.left, self.right)


@dataclass(frozen=True)
class And:
    left: "Expr"
    right: "Expr"

    def __post_init__(self) -> None:
        _set_depth(self, self.left, self.right)


@dataclass(frozen=True)
class Or:
    left: "Expr"
    right: "Expr"

    def __post_init__(self) -> None:
        _set_depth(self, self.left, self.right)


@dataclass(frozen=True)
class Not:
    operand: "Expr"

    def __post_init__(self) -> None:
        _set_depth(self, self.operand)


@dataclass(frozen=True)
class IsIn:
    operand: "Expr"
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if isinstance(self.values, (str, bytes, dict)) or not hasattr(self.values, "__iter__"):
            raise QueryError("isin() takes a list of values, e.g. col('sex').isin(['Female'])")
        vals = tuple(_check_scalar(v, "an isin() value") for v in self.values)
        if not vals:
            raise QueryError("isin() needs at least one value")
        object.__setattr__(self, "values", vals)
        _set_depth(self, self.operand)


@dataclass(frozen=True)
class IsNull:
    operand: "Expr"

    def __post_init__(self) -> None:
        _set_depth(self, self.operand)


@dataclass(frozen=True)
class Arith:
    """``left op right`` on numbers, op one of ``+ - * /``. Division only by a nonzero
    number written in the query: a column's value could be zero or near it, and then no
    bound on the quotient would hold."""

    op: str
    left: "Expr"
    right: "Expr"

    def __post_init__(self) -> None:
        if self.op not in ARITH_OPS:
            raise QueryError(
                f"unknown arithmetic {self.op!r}; use one of {', '.join(ARITH_OPS)}"
            )
        if self.op == "/":
            r = self.right
            if not (isinstance(r, Lit) and isinstance(r.value, (int, float))
                    and not isinstance(r.value, bool) and r.value != 0):
                raise QueryError(
                    "division is supported only by a nonzero number written in the query "
                    f"(e.g. col('x') / 12), not by {expr_text(r)}: a divisor that can be "
                    "zero or near it has no bound on the quotient"
                )
        _set_depth(self, self.left, self.right)


@dataclass(frozen=True)
class Neg:
    """Unary minus: ``-operand``."""

    operand: "Expr"

    def __post_init__(self) -> None:
        _set_depth(self, self.operand)


@dataclass(frozen=True)
class Case:
    """``CASE WHEN cond THEN value ... ELSE default END``: the value of the first branch
    whose condition holds; ``default`` (``None``: no ELSE, the result is NULL) when
    none does."""

    whens: tuple[tuple["Expr", "Expr"], ...]
    default: "Expr | None" = None

    def __post_init__(self) -> None:
        w = self.whens
        if isinstance(w, (str, bytes, dict)) or not hasattr(w, "__iter__"):
            raise QueryError("a CASE takes a list of (condition, value) pairs")
        pairs = []
        for pair in w:
            if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
                raise QueryError(
                    f"a CASE branch is a pair (condition, value), got {pair!r}"
                )
            cond, value = pair
            if not is_expr(cond) or not is_expr(value):
                raise QueryError("a CASE branch's condition and value must be expressions")
            pairs.append((cond, value))
        if not pairs:
            raise QueryError("a CASE needs at least one WHEN … THEN … branch")
        object.__setattr__(self, "whens", tuple(pairs))
        if isinstance(self.default, Lit) and self.default.value is None:
            object.__setattr__(self, "default", None)  # ELSE NULL is no ELSE
        if self.default is not None and not is_expr(self.default):
            raise QueryError("a CASE's default must be an expression")
        _set_depth(self, *(x for pair in self.whens for x in pair), self.default)

    def results(self) -> list["Expr"]:
        """The branch values, then the default if there is one."""
        return [v for _, v in self.whens] + ([self.default] if self.default is not None else [])


Expr = Union[Col, Lit, Compare, And, Or, Not, IsIn, IsNull, Arith, Neg, Case]
_EXPR_TYPES = (Col, Lit, Compare, And, Or, Not, IsIn, IsNull, Arith, Neg, Case)
_CONDITIONS = (Compare, And, Or, Not, IsIn, IsNull)


def expr_columns(e: Expr) -> list[str]:
    """The column names an expression refers to, in order of first appearance."""
    out: list[str] = []

    def walk(x: Expr) -> None:
        if isinstance(x, Col):
            if x.name not in out:
                out.append(x.name)
        elif isinstance(x, (Compare, And, Or, Arith)):
            walk(x.left)
            walk(x.right)
        elif isinstance(x, (Not, IsIn, IsNull, Neg)):
            walk(x.operand)
        elif isinstance(x, Case):
            for cond, value in x.whens:
                walk(cond)
                walk(value)
            if x.default is not None:
                walk(x.default)

    walk(e)
    return out


def _ident_text(name: str) -> str:
    if name.replace("_", "a").isalnum() and not name[0].isdigit():
        return name
    return '"' + name.replace('"', '""') + '"'


def _lit_text(v: Scalar) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def expr_text(e: Expr) -> str:
    """An expression as SQL-like text, for messages and ``explain`` (no data values:
    only what the query itself wrote)."""
    if isinstance(e, Col):
        return _ident_text(e.name)
    if isinstance(e, Lit):
        return _lit_text(e.value)
    if isinstance(e, Compare):
        op = {"==": "=", "!=": "<>"}.get(e.op, e.op)
        return f"{_sub_text(e.left)} {op} {_sub_text(e.right)}"
    if isinstance(e, Arith):
        return f"{_sub_text(e.left)} {e.op} {_sub_text(e.right)}"
    if isinstance(e, Neg):
        return f"-{_sub_text(e.operand)}"
    if isinstance(e, And):
        return f"{_sub_text(e.left)} AND {_sub_text(e.right)}"
    if isinstance(e, Or):
        return f"{_sub_text(e.left)} OR {_sub_text(e.right)}"
    if isinstance(e, Not):
        return f"NOT {_sub_text(e.operand)}"
    if isinstance(e, IsIn):
        return f"{_sub_text(e.operand)} IN ({', '.join(_lit_text(v) for v in e.values)})"
    if isinstance(e, IsNull):
        return f"{_sub_text(e.operand)} IS NULL"
    if isinstance(e, Case):
        parts = ["CASE"]
        for cond, value in e.whens:
            parts += ["WHEN", expr_text(cond), "THEN", expr_text(value)]
        if e.default is not None:
            parts += ["ELSE", expr_text(e.default)]
        return " ".join(parts + ["END"])
    return type(e).__name__


def _sub_text(e: Expr) -> str:
    t = expr_text(e)
    return f"({t})" if isinstance(e, (Compare, Arith, And, Or, Not, IsIn, IsNull)) else t


def case_keys(e: "Case") -> tuple[Scalar, ...]:
    """The group keys of a CASE group-by: its distinct THEN / ELSE literals, in the order
    written — public by construction, since the query wrote them."""
    out: list[Scalar] = []
    for v in e.results():
        assert isinstance(v, Lit)
        if v.value is not None and v.value not in out:
            out.append(v.value)
    return tuple(out)


@dataclass(frozen=True)
class GroupKey:
    """A group-by column and its public keys (``None``: take them from the policy).

    With ``expr`` (a :class:`Case` whose results are all literals), the group is the
    value of that CASE, named ``column`` in the output; its keys are the CASE's
    THEN / ELSE literals (:func:`case_keys`), public because the query wrote them. Rows
    where no branch holds and there is no ELSE fall in no group."""

    column: str
    keys: tuple[Scalar, ...] | None = None
    expr: "Expr | None" = None

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise QueryError(f"a group-by column must be a non-empty string, got {self.column!r}")
        _check_unreserved(self.column, "group")
        if self.expr is not None:
            _check_case_key(self.column, self.expr)
            if self.keys is not None:
                raise QueryError(
                    f"group {self.column!r} is a CASE: its keys are its THEN / ELSE values; "
                    "give no keys for it"
                )
        if self.keys is not None:
            if isinstance(self.keys, (str, bytes)) or not hasattr(self.keys, "__iter__"):
                raise QueryError(
                    f"keys for group-by column {self.column!r} must be a list of values"
                )
            keys = tuple(_check_scalar(k, f"a key of {self.column!r}") for k in self.keys)
            if not keys:
                raise QueryError(f"keys for group-by column {self.column!r} must not be empty")
            if len(set(keys)) != len(keys):
                raise QueryError(f"keys for group-by column {self.column!r} contain duplicates")
            object.__setattr__(self, "keys", keys)


@dataclass(frozen=True)
class Aggregation:
    """One named output: ``count`` (rows, or present values of ``column``), ``sum``,
    ``mean`` or ``variance`` of a numeric column clamped to ``bounds``, ``quantile``
    (``q``), ``histogram`` of a numeric column over ``bins`` (strictly increasing edges,
    or a number of equal-width bins over ``bounds``), ``count_distinct`` (distinct
    persons without a column, distinct present values with one)."""

    name: str
    kind: str
    column: str | None = None
    bounds: tuple[float, float] | None = None
    q: float | None = None  # quantile: which one (0.5 = median)
    bins: tuple[float, ...] | int | None = None  # histogram: edges, or a number of bins
    # instead of a column: a value expression (arithmetic, CASE) computed per row
    expr: "Expr | None" = None

    def __post_init__(self) -> None:
        if self.expr is not None:
            if isinstance(self.expr, Col):  # a plain column is a column
                if self.column is not None:
                    raise QueryError(f"{self.kind}() takes a column or an expression, not both")
                object.__setattr__(self, "column", self.expr.name)
                object.__setattr__(self, "expr", None)
            elif not is_expr(self.expr):
                raise QueryError(
                    f"{self.kind}() takes a column name or an expression, "
                    f"got {type(self.expr).__name__}"
                )
            elif self.column is not None:
                raise QueryError(f"{self.kind}() takes a column or an expression, not both")
            elif isinstance(self.expr, _CONDITIONS):
                raise QueryError(
                    f"{self.kind}() of a condition ({expr_text(self.expr)}): aggregate a "
                    "value, e.g. pets.case((condition, 1), default=0)"
                )
        if self.column is not None:
            if not isinstance(self.column, str) or not self.column:
                raise QueryError(f"a column name must be a non-empty string, got {self.column!r}")
            _check_unreserved(self.column, "column")
        if self.kind not in AGG_KINDS:
            raise QueryError(f"unknown aggregation {self.kind!r}; use one of {', '.join(AGG_KINDS)}")
        if self.kind == "quantile":
            q = self.q
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
                raise QueryError(f"quantile({self.label}, q) needs q strictly between 0 and 1, got {q!r}")
        elif self.q is not None:
            raise QueryError(f"only quantile() takes q, not {self.kind}()")
        if self.kind == "count_distinct" and self.bounds is not None:
            raise QueryError("count_distinct() takes no bounds: it counts, it does not add values")
        if self.kind in ("histogram", "count_distinct") and self.expr is not None:
            raise QueryError(
                f"{self.kind}() takes a column name, not an expression ({expr_text(self.expr)}); "
                "for a histogram of an expression, group by a pets.case(...) of it instead"
            )
        if self.kind not in ("count", "count_distinct") and self.column is None and self.expr is None:
            if self.kind == "histogram":
                raise QueryError("histogram() needs a column, e.g. pets.histogram('age', bins=[17, 30, 50, 90])")
            raise QueryError(f"{self.kind}() needs a column, e.g. pets.{self.kind}('age', bounds=(0, 100))")
        if self.kind == "histogram":
            self._check_bins()
        elif self.bins is not None:
            raise QueryError(f"only histogram() takes bins, not {self.kind}()")
        if self.bounds is not None:
            b = self.bounds
            label = f"{self.kind}({self.label})"
            if isinstance(b, (str, bytes)) or not hasattr(b, "__len__") or len(b) != 2:
                raise QueryError(f"bounds for {label} must be a pair (lower, upper), got {b!r}")
            lo, hi = (_check_scalar(v, f"a bound of {label}") for v in b)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
                raise QueryError(f"bounds for {label} must be numbers, got {b!r}")
            if not lo < hi:  # type: ignore[operator]
                raise QueryError(
                    f"bounds for {label} must be (lower, upper) with lower < upper; "
                    f"got ({lo}, {hi}) — swap them or widen the range"
                )
            object.__setattr__(self, "bounds", (lo, hi))

    def _check_bins(self) -> None:
        label = f"histogram({self.column!r})"
        b = self.bins
        if b is None:
            raise QueryError(
                f"{label} needs bins: edges, e.g. bins=[17, 30, 50, 90], or a number of "
                "equal-width bins, e.g. bins=8 (over bounds=(lower, upper) or the policy's bounds)"
            )
        if isinstance(b, (str, bytes, dict)):
            raise QueryError(f"bins for {label} must be a list of edges or a number of bins, got {b!r}")
        if not hasattr(b, "__iter__"):
            n = _check_scalar(b, f"the number of bins of {label}")
            if isinstance(n, bool) or not isinstance(n, int):
                raise QueryError(
                    f"a number of bins for {label} must be a whole number, got {b!r}; "
                    "or give the edges as a list"
                )
            if not 1 <= n <= MAX_BINS:
                raise QueryError(f"a histogram has 1 to {MAX_BINS} bins; {label} asks for {n}")
            object.__setattr__(self, "bins", n)
            return
        edges = tuple(_check_scalar(v, f"a bin edge of {label}") for v in b)  # type: ignore[union-attr]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in edges):
            raise QueryError(f"bin edges of {label} must be numbers, got {list(edges)!r}")
        if len(edges) < 2:
            raise QueryError(
                f"{label} needs at least two bin edges (one bin: [lower, upper]), got {list(edges)!r}"
            )
        if len(edges) - 1 > MAX_BINS:
            raise QueryError(f"a histogram has 1 to {MAX_BINS} bins; {label} asks for {len(edges) - 1}")
        for a, c in itertools.pairwise(edges):
            if not a < c:  # type: ignore[operator]
                raise QueryError(
                    f"bin edges of {label} must be strictly increasing; {a!r} is followed by {c!r}"
                )
        if self.bounds is not None:
            raise QueryError(
                f"{label} takes either bin edges or a number of bins with bounds, not edges "
                "and bounds: the edges already say where the bins lie"
            )
        object.__setattr__(self, "bins", edges)

    @property
    def label(self) -> str:
        """What is aggregated, for messages: ``'age'`` or the expression's text."""
        return expr_text(self.expr) if self.expr is not None else repr(self.column)


def _check_case_key(name: str, e: Any) -> None:
    if not isinstance(e, Case):
        raise QueryError(
            f"group {name!r} must be a CASE with literal results (pets.case(...)); "
            "other expressions have no public keys"
        )
    kinds = set()
    for v in e.results():
        if not isinstance(v, Lit):
            raise QueryError(
                f"group {name!r}: every THEN / ELSE of a CASE group must be a literal value "
                f"(the group keys), not {expr_text(v)}"
            )
        if v.value is None:  # rows there fall in no group
            continue
        kinds.add("text" if isinstance(v.value, str) else
                  "boolean" if isinstance(v.value, bool) else "number")
    if not kinds:
        raise QueryError(f"group {name!r}: the CASE has no non-NULL result, so no group")
    if len(kinds) > 1:
        raise QueryError(
            f"group {name!r}: the CASE results mix {' and '.join(sorted(kinds))} values; "
            "use one kind"
        )



_PLAN_KEYS = frozenset({"dataset", "filters", "select", "group_by", "aggs", "post"})
_GROUP_KEYS = frozenset({"column", "keys", "expr"})
_AGG_KEYS = frozenset({"name", "kind", "column", "bounds", "q", "bins", "expr"})


def _known_keys(d: Any, known: frozenset[str], what: str) -> None:
    if not isinstance(d, dict):
        raise QueryError(f"malformed plan: a {what} must be a JSON object, "
                         f"got {type(d).__name__}")
    unknown = sorted(str(k) for k in d if k not in known)
    if unknown:
        raise QueryError(
            f"malformed plan: unknown key {unknown[0]!r} in the {what} (this pets knows "
            f"{', '.join(sorted(known))}); the client may be newer than the server: "
            "upgrade the server, or leave that part out")


@dataclass(frozen=True)
class Plan:
    """What a query asks: a dataset, filters (AND-ed), an optional column selection
    (for record-level releases), group-by keys and named aggregations."""

    dataset: str
    filters: tuple[Expr, ...] = ()
    select: tuple[str, ...] | None = None
    group_by: tuple[GroupKey, ...] = ()
    aggs: tuple[Aggregation, ...] = field(default_factory=tuple)
    # post-processing of the released table (pets.post): computed outputs, HAVING,
    # ORDER BY, LIMIT — run on the noisy values after the release, at no cost
    post: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise QueryError("a plan's dataset must be a non-empty string")
        for f in self.filters:
            if not is_expr(f):
                raise QueryError(f"a filter must be an expression, got {type(f).__name__}")
        if self.select is not None:
            if isinstance(self.select, (str, bytes)) or not all(
                isinstance(c, str) and c for c in self.select
            ):
                raise QueryError("select must be a list of column names")
            object.__setattr__(self, "select", tuple(self.select))
            for c in self.select:
                _check_unreserved(c, "column")
        for g in self.group_by:
            if not isinstance(g, GroupKey):
                raise QueryError("group_by must hold GroupKey entries")
        names = [g.column for g in self.group_by]
        if len(set(names)) != len(names):
            raise QueryError("a column appears twice in group_by()")
        for a in self.aggs:
            if not isinstance(a, Aggregation):
                raise QueryError("aggs must hold Aggregation entries")
            if not isinstance(a.name, str) or not a.name:
                raise QueryError("an aggregation's output name must be a non-empty string")
            _check_unreserved(a.name, "output name")
            if a.name in names:
                what = "a group-by column" if a.name in {g.column for g in self.group_by} else "another output"
                raise QueryError(
                    f"output name {a.name!r} is already used by {what}; choose another name"
                )
            names.append(a.name)
        hist = [a for a in self.aggs if a.kind == "histogram"]
        if hist:
            h = hist[0]
            if len(self.aggs) > 1:
                raise QueryError(
                    f"histogram {h.name!r} must be the only aggregation of its query (its result "
                    "has one row per cell and bin); ask for the other aggregations in a separate query"
                )
            if h.column in {g.column for g in self.group_by}:
                raise QueryError(
                    f"histogram({h.column!r}) labels its bins in a column named {h.column!r}, "
                    "which is also a group-by column; group by another column"
                )
            if h.name == h.column:
                raise QueryError(
                    f"output name {h.name!r} is the histogram's column, which labels its bins; "
                    "choose another name"
                )
        if self.post is not None:
            from .post import Post

            if not isinstance(self.post, Post):
                raise QueryError(f"a plan's post-processing must be a pets.post.Post, got "
                                 f"{type(self.post).__name__}")
            if hist:
                raise QueryError(
                    "a histogram's result has one row per cell and bin: HAVING, ORDER BY, "
                    "LIMIT and expressions over it are not supported; ask for counts per "
                    "CASE group instead"
                )
            if not self.aggs:
                raise QueryError("HAVING, ORDER BY, LIMIT and expressions apply to aggregates; "
                                 "this query has none")
            self.post.check([g.column for g in self.group_by] + [a.name for a in self.aggs])

    def columns(self) -> list[str]:
        """Every column the plan refers to, in order of first appearance."""
        out: list[str] = []

        def add(name: str | None) -> None:
            if name is not None and name not in out:
                out.append(name)

        for f in self.filters:
            for c in expr_columns(f):
                add(c)
        for c in self.select or ():
            add(c)
        for g in self.group_by:
            if g.expr is not None:
                for c in expr_columns(g.expr):
                    add(c)
            else:
                add(g.column)
        for a in self.aggs:
            add(a.column)
            if a.expr is not None:
                for c in expr_columns(a.expr):
                    add(c)
        return out

    # -- JSON form -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "filters": [_expr_to_dict(f) for f in self.filters],
            "select": list(self.select) if self.select is not None else None,
            "group_by": [
                {"column": g.column, "keys": list(g.keys) if g.keys is not None else None,
                 **({"expr": _expr_to_dict(g.expr)} if g.expr is not None else {})}
                for g in self.group_by
            ],
            "aggs": [
                {
                    "name": a.name,
                    "kind": a.kind,
                    "column": a.column,
                    "bounds": list(a.bounds) if a.bounds is not None else None,
                    **({"q": a.q} if a.q is not None else {}),
                    **({"bins": list(a.bins) if isinstance(a.bins, tuple) else a.bins}
                       if a.bins is not None else {}),
                    **({"expr": _expr_to_dict(a.expr)} if a.expr is not None else {}),
                }
                for a in self.aggs
            ],
            **({"post": self.post.to_dict()} if self.post is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        # strict: a key this version does not know (a newer client's clause) must be
        # refused, never dropped — dropping e.g. a HAVING would answer another question
        _known_keys(d, _PLAN_KEYS, "plan")
        for g in d.get("group_by") or ():
            _known_keys(g, _GROUP_KEYS, "group_by entry")
        for a in d.get("aggs") or ():
            _known_keys(a, _AGG_KEYS, "aggs entry")
        try:
            return cls(
                dataset=d["dataset"],
                filters=tuple(_expr_from_dict(f) for f in d.get("filters", [])),
                select=tuple(d["select"]) if d.get("select") is not None else None,
                group_by=tuple(
                    GroupKey(g["column"], tuple(g["keys"]) if g.get("keys") is not None else None,
                             _expr_from_dict(g["expr"]) if g.get("expr") is not None else None)
                    for g in d.get("group_by", [])
                ),
                aggs=tuple(
                    Aggregation(
                        a["name"],
                        a["kind"],
                        a.get("column"),
                        tuple(a["bounds"]) if a.get("bounds") is not None else None,  # type: ignore[arg-type]
                        a.get("q"),
                        bins=tuple(a["bins"]) if isinstance(a.get("bins"), list) else a.get("bins"),
                        expr=_expr_from_dict(a["expr"]) if a.get("expr") is not None else None,
                    )
                    for a in d.get("aggs", [])
                ),
                post=_post_from_dict(d["post"]) if d.get("post") is not None else None,
            )
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
            if isinstance(e, QueryError):
                raise
            raise QueryError(f"malformed plan: {type(e).__name__}: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        if not isinstance(text, (str, bytes)):
            raise QueryError(f"plan JSON must be text, got {type(text).__name__}")
        if len(text) > MAX_PLAN_JSON:
            raise QueryError(f"plan JSON is {len(text):,} characters long; at most {MAX_PLAN_JSON:,}")
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise QueryError(f"malformed plan JSON: {e}") from None
        except RecursionError:
            raise QueryError(
                f"malformed plan JSON: nested too deeply (an expression nests at most {MAX_DEPTH} levels)"
            ) from None
        if not isinstance(d, dict):
            raise QueryError(f"malformed plan JSON: expected an object, got {type(d).__name__}")
        return cls.from_dict(d)


def _post_from_dict(d: Any) -> Any:
    from .post import Post

    return Post.from_dict(d)


def _expr_to_dict(e: Expr) -> dict[str, Any]:
    if isinstance(e, Col):
        return {"col": e.name}
    if isinstance(e, Lit):
        return {"lit": e.value}
    if isinstance(e, Compare):
        return {"op": e.op, "left": _expr_to_dict(e.left), "right": _expr_to_dict(e.right)}
    if isinstance(e, And):
        return {"and": [_expr_to_dict(e.left), _expr_to_dict(e.right)]}
    if isinstance(e, Or):
        return {"or": [_expr_to_dict(e.left), _expr_to_dict(e.right)]}
    if isinstance(e, Not):
        return {"not": _expr_to_dict(e.operand)}
    if isinstance(e, IsIn):
        return {"isin": _expr_to_dict(e.operand), "values": list(e.values)}
    if isinstance(e, IsNull):
        return {"isnull": _expr_to_dict(e.operand)}
    if isinstance(e, Arith):
        return {"arith": e.op, "left": _expr_to_dict(e.left), "right": _expr_to_dict(e.right)}
    if isinstance(e, Neg):
        return {"neg": _expr_to_dict(e.operand)}
    if isinstance(e, Case):
        return {
            "case": [[_expr_to_dict(c), _expr_to_dict(v)] for c, v in e.whens],
            "else": _expr_to_dict(e.default) if e.default is not None else None,
        }
    raise QueryError(f"not an expression: {type(e).__name__}")


def _pair(v: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(v, list) or len(v) != 2:
        raise QueryError(f"malformed plan: {what!r} takes exactly two operands")
    return v[0], v[1]


def _expr_from_dict(d: dict[str, Any], level: int = 1) -> Expr:
    if level > MAX_DEPTH:
        raise QueryError(f"malformed plan: an expression nests more than {MAX_DEPTH} levels deep")
    if not isinstance(d, dict):
        raise QueryError(f"malformed expression: {_short(d)}")
    sub = level + 1
    if "col" in d:
        return Col(d["col"])
    if "lit" in d:
        return Lit(d["lit"])
    if "op" in d:
        return Compare(d["op"], _expr_from_dict(d["left"], sub), _expr_from_dict(d["right"], sub))
    if "and" in d:
        a, b = _pair(d["and"], "and")
        return And(_expr_from_dict(a, sub), _expr_from_dict(b, sub))
    if "or" in d:
        a, b = _pair(d["or"], "or")
        return Or(_expr_from_dict(a, sub), _expr_from_dict(b, sub))
    if "not" in d:
        return Not(_expr_from_dict(d["not"], sub))
    if "isin" in d:
        return IsIn(_expr_from_dict(d["isin"], sub), tuple(d["values"]))
    if "isnull" in d:
        return IsNull(_expr_from_dict(d["isnull"], sub))
    if "arith" in d:
        return Arith(d["arith"], _expr_from_dict(d["left"], sub), _expr_from_dict(d["right"], sub))
    if "neg" in d:
        return Neg(_expr_from_dict(d["neg"], sub))
    if "case" in d:
        if not isinstance(d["case"], list):
            raise QueryError(f"malformed expression: {_short(d)}")
        whens = tuple(
            tuple(_expr_from_dict(x, sub) for x in _pair(w, "case")) for w in d["case"]
        )
        default = d.get("else")
        return Case(whens, _expr_from_dict(default, sub) if default is not None else None)  # type: ignore[arg-type]
    raise QueryError(f"malformed expression: {_short(d)}")


def _short(x: Any) -> str:
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def is_expr(x: Any) -> bool:
    return isinstance(x, _EXPR_TYPES)
