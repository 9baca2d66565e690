"""Post-processing of a released table: computed outputs, HAVING, ORDER BY, LIMIT.

A DP release answers aggregates per cell; an analyst often wants more of the *answer*:
``SUM(x) / COUNT(*)``, ``HAVING COUNT(*) > 100``, ``ORDER BY n DESC LIMIT 10``. All of
this is computed here, from the noisy values the mechanism released, after the noise
and after the charge — so it costs nothing and reveals nothing more (post-processing
of a DP result is DP with the same ε, δ). Two consequences analysts must know:

* HAVING and ORDER BY act on **noisy** values: a cell whose exact count is 95 may pass
  ``HAVING COUNT(*) > 100`` and one of 105 may not; the order of close values is noisy.
* A computed output's interval is propagated where that is well defined: by interval
  arithmetic over its inputs' intervals, each taken at level ``1 − (1 − level)/k`` for
  the ``k`` released aggregates it reads (a union bound), so it covers the expression
  of the exact statistics with probability ≥ ``level``. Where it is not (a condition,
  a CASE, a division or logarithm whose input interval reaches zero) the interval is
  *absent*: ``lower`` and ``upper`` are NaN.

The IR is three frozen node types — :class:`Ref` (a released column: a group key or an
aggregate, or a computed output), :class:`Const` and :class:`Call` — and one
:class:`Post` per plan; all have a JSON form (``to_dict`` / ``from_dict``) that
travels with the plan.

>>> p = Post(outputs=(("sex", Ref("sex")), ("avg", Call("/", (Ref("s"), Ref("n"))))),
...          having=Call(">", (Ref("n"), Const(100))), order_by=((Ref("avg"), True, False),),
...          limit=1)
>>> Post.from_dict(p.to_dict()) == p
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np
import pandas as pd

from .errors import QueryError

__all__ = ["Ref", "Const", "Call", "PostExpr", "Post", "FUNCTIONS", "apply", "post_text",
           "MAX_LIMIT"]

#: Largest LIMIT or OFFSET accepted.
MAX_LIMIT = 2**62
_MAX_DEPTH = 64

# function → (fewest, most arguments; None: any number)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "+": (2, 2), "-": (2, 2), "*": (2, 2), "/": (2, 2), "neg": (1, 1),
    "power": (2, 2), "sqrt": (1, 1), "abs": (1, 1), "round": (1, 2), "floor": (1, 1),
    "ceil": (1, 1), "exp": (1, 1), "ln": (1, 1), "log10": (1, 1),
    "least": (1, None), "greatest": (1, None), "coalesce": (1, None), "nullif": (2, 2),
    "=": (2, 2), "!=": (2, 2), "<": (2, 2), "<=": (2, 2), ">": (2, 2), ">=": (2, 2),
    "and": (2, 2), "or": (2, 2), "not": (1, 1), "is_null": (1, 1), "in": (2, None),
    "case": (2, None),  # cond1, value1, cond2, value2, …, default (Const(None): none)
}
_CONDITIONS = {"=", "!=", "<", "<=", ">", ">=", "and", "or", "not", "is_null", "in"}

Scalar = Union[str, int, float, bool, None]


def _depth(e: Any) -> int:
    return getattr(e, "_depth", 1)


@dataclass(frozen=True)
class Ref:
    """A column of the released table: a group key, an aggregate or a computed output."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise QueryError(f"a reference to an output needs its name, got {self.name!r}")


@dataclass(frozen=True)
class Const:
    """A constant written by the analyst."""

    value: Scalar

    def __post_init__(self) -> None:
        from .plan import _check_scalar

        object.__setattr__(self, "value", _check_scalar(self.value, "a constant"))


@dataclass(frozen=True)
class Call:
    """``fn(args...)``: arithmetic, a function, a comparison, a connective or a CASE."""

    fn: str
    args: tuple["PostExpr", ...]

    def __post_init__(self) -> None:
        if self.fn not in FUNCTIONS:
            raise QueryError(
                f"unknown function {self.fn!r} over released values; use one of "
                f"{', '.join(sorted(FUNCTIONS))}"
            )
        if isinstance(self.args, (str, bytes)) or not hasattr(self.args, "__iter__"):
            raise QueryError(f"{self.fn}() takes a list of arguments")
        args = tuple(self.args)
        lo, hi = FUNCTIONS[self.fn]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise QueryError(f"{self.fn}() takes {want} arguments, got {len(args)}")
        for a in args:
            if not isinstance(a, (Ref, Const, Call)):
                raise QueryError(f"an argument of {self.fn}() must be an expression, got {type(a).__name__}")
        if self.fn == "in" and not all(isinstance(a, Const) for a in args[1:]):
            raise QueryError("IN (...) over released values takes a list of constants")
        if self.fn == "round" and len(args) == 2 and not (
                isinstance(args[1], Const) and isinstance(args[1].value, int)
                and not isinstance(args[1].value, bool) and -30 <= args[1].value <= 30):
            raise QueryError("ROUND(x, digits) needs a whole number of digits between -30 and 30")
        object.__setattr__(self, "args", args)
        d = 1 + max((_depth(a) for a in args), default=0)
        if d > _MAX_DEPTH:
            raise QueryError(f"an expression over released values nests more than {_MAX_DEPTH} levels deep")
        object.__setattr__(self, "_depth", d)


PostExpr = Union[Ref, Const, Call]


def refs(e: PostExpr) -> list[str]:
    """The names an expression reads, in order of first appearance."""
    out: list[str] = []
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, Ref):
            if x.name not in out:
                out.append(x.name)
        elif isinstance(x, Call):
            stack.extend(reversed(x.args))
    return out


def is_condition(e: PostExpr) -> bool:
    return isinstance(e, Call) and e.fn in _CONDITIONS or (
        isinstance(e, Const) and isinstance(e.value, bool))


@dataclass(frozen=True)
class Post:
    """What happens to the released table, in this order: ``having`` keeps the cells
    where it holds; ``order_by`` sorts them (``(expr, descending, nulls_first)``;
    ties keep the cells' key order); ``offset`` and ``limit`` slice them; ``outputs``
    (``(name, expr)`` pairs; None: the released columns as they are) are the columns
    of the result, in order."""

    outputs: tuple[tuple[str, PostExpr], ...] | None = None
    having: PostExpr | None = None
    order_by: tuple[tuple[PostExpr, bool, bool], ...] = ()
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.outputs is not None:
            outs = []
            for pair in self.outputs:
                if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
                    raise QueryError(f"an output is a pair (name, expression), got {pair!r}")
                name, e = pair
                if not isinstance(name, str) or not name:
                    raise QueryError(f"an output name must be a non-empty string, got {name!r}")
                if not isinstance(e, (Ref, Const, Call)):
                    raise QueryError(f"output {name!r} must be an expression, got {type(e).__name__}")
                outs.append((name, e))
            if not outs:
                raise QueryError("a query must output at least one column")
            names = [n for n, _ in outs]
            dup = next((n for n in names if names.count(n) > 1), None)
            if dup is not None:
                raise QueryError(f"output name {dup!r} is used twice; choose another name")
            object.__setattr__(self, "outputs", tuple(outs))
        if self.having is not None and not isinstance(self.having, (Ref, Const, Call)):
            raise QueryError(f"having() takes a condition, got {type(self.having).__name__}")
        if self.having is not None and not is_condition(self.having):
            raise QueryError("HAVING needs a condition (a comparison, AND / OR / NOT, IN, IS NULL)")
        order = []
        for item in self.order_by:
            if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 3:
                raise QueryError(f"an ORDER BY item is (expression, descending, nulls_first), got {item!r}")
            e, desc, nf = item
            if not isinstance(e, (Ref, Const, Call)) or not isinstance(desc, bool) or not isinstance(nf, bool):
                raise QueryError(f"an ORDER BY item is (expression, descending, nulls_first), got {item!r}")
            order.append((e, desc, nf))
        object.__setattr__(self, "order_by", tuple(order))
        for what, v, least in (("limit", self.limit, 0), ("offset", self.offset, 0)):
            if v is None and what == "limit":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not least <= v <= MAX_LIMIT:
                raise QueryError(f"{what} must be a whole number from 0 to {MAX_LIMIT}, got {v!r}")

    def check(self, released: list[str]) -> None:
        """Every reference names a released column (``released``) or, in ORDER BY, an
        output; an output named like a released column is that column."""
        have = set(released)
        outs = dict(self.outputs or ())
        for name, e in (self.outputs or ()):
            if name in have and e != Ref(name):
                raise QueryError(
                    f"output name {name!r} is already the name of an aggregate or group; "
                    "choose another name"
                )
            for r in refs(e):
                if r not in have:
                    raise QueryError(f"output {name!r} refers to {r!r}, which is not a "
                                     f"released column ({', '.join(released)})")
        if self.having is not None:
            for r in refs(self.having):
                if r not in have and r not in outs:
                    raise QueryError(f"HAVING refers to {r!r}, which is not a released column "
                                     f"or output ({', '.join(list(have) + list(outs))})")
        for e, _, _ in self.order_by:
            for r in refs(e):
                if r not in have and r not in outs:
                    raise QueryError(f"ORDER BY refers to {r!r}, which is not a released column "
                                     f"or output")

    # -- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.outputs is not None:
            d["outputs"] = [[n, expr_to_dict(e)] for n, e in self.outputs]
        if self.having is not None:
            d["having"] = expr_to_dict(self.having)
        if self.order_by:
            d["order_by"] = [{"expr": expr_to_dict(e), "desc": desc, "nulls_first": nf}
                             for e, desc, nf in self.order_by]
        if self.limit is not None:
            d["limit"] = self.limit
        if self.offset:
            d["offset"] = self.offset
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "Post":
        if not isinstance(d, dict):
            raise QueryError(f"malformed plan: 'post' must be an object, got {type(d).__name__}")
        unknown = set(d) - {"outputs", "having", "order_by", "limit", "offset"}
        if unknown:
            raise QueryError(f"malformed plan: unknown key {sorted(unknown)[0]!r} in 'post'")
        outs = d.get("outputs")
        if outs is not None and not isinstance(outs, list):
            raise QueryError("malformed plan: 'post.outputs' must be a list")
        order = d.get("order_by", [])
        if not isinstance(order, list) or not all(isinstance(o, dict) for o in order):
            raise QueryError("malformed plan: 'post.order_by' must be a list of objects")
        return cls(
            outputs=tuple((o[0], expr_from_dict(o[1])) if isinstance(o, list) and len(o) == 2
                          else _bad(o) for o in outs) if outs is not None else None,
            having=expr_from_dict(d["having"]) if d.get("having") is not None else None,
            order_by=tuple((expr_from_dict(o.get("expr")), o.get("desc", False),
                            o.get("nulls_first", False)) for o in order),
            limit=d.get("limit"),
            offset=d.get("offset", 0),
        )


def _bad(o: Any) -> Any:
    raise QueryError(f"malformed plan: an output is [name, expression], got {str(o)[:80]}")


def expr_to_dict(e: PostExpr) -> dict[str, Any]:
    if isinstance(e, Ref):
        return {"ref": e.name}
    if isinstance(e, Const):
        return {"const": e.value}
    return {"call": e.fn, "args": [expr_to_dict(a) for a in e.args]}


def expr_from_dict(d: Any, level: int = 1) -> PostExpr:
    if level > _MAX_DEPTH:
        raise QueryError(f"malformed plan: an expression nests more than {_MAX_DEPTH} levels deep")
    if not isinstance(d, dict):
        raise QueryError(f"malformed expression over released values: {str(d)[:80]}")
    if "ref" in d:
        return Ref(d["ref"])
    if "const" in d:
        return Const(d["const"])
    if "call" in d and isinstance(d.get("args"), list):
        return Call(d["call"], tuple(expr_from_dict(a, level + 1) for a in d["args"]))
    raise QueryError(f"malformed expression over released values: {str(d)[:80]}")


_TEXT_OPS = {"=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"}


def post_text(e: PostExpr) -> str:
    """SQL-like text of an expression (for messages and default names)."""
    if isinstance(e, Ref):
        from .plan import _ident_text

        return _ident_text(e.name)
    if isinstance(e, Const):
        from .plan import _lit_text

        return _lit_text(e.value)
    a = [post_text(x) for x in e.args]
    wrap = [f"({t})" if isinstance(x, Call) and x.fn in _TEXT_OPS | {"and", "or"} else t
            for t, x in zip(a, e.args)]
    if e.fn in _TEXT_OPS:
        op = "<>" if e.fn == "!=" else e.fn
        return f"{wrap[0]} {op} {wrap[1]}"
    if e.fn in ("and", "or"):
        return f"{wrap[0]} {e.fn.upper()} {wrap[1]}"
    if e.fn == "neg":
        return f"-{wrap[0]}"
    if e.fn == "not":
        return f"NOT {wrap[0]}"
    if e.fn == "is_null":
        return f"{wrap[0]} IS NULL"
    if e.fn == "in":
        return f"{wrap[0]} IN ({', '.join(a[1:])})"
    if e.fn == "case":
        parts = ["CASE"]
        for i in range(0, len(a) - 1, 2):
            parts += ["WHEN", a[i], "THEN", a[i + 1]]
        if len(a) % 2 == 1 and not (isinstance(e.args[-1], Const) and e.args[-1].value is None):
            parts += ["ELSE", a[-1]]
        return " ".join(parts + ["END"])
    return f"{e.fn.upper()}({', '.join(a)})"


# ------------------------------------------------------------------------ evaluation
def _num(x: Any) -> Any:
    """As nullable floats (NaN → NA), for SQL NULL semantics."""
    if isinstance(x, pd.Series):
        if x.dtype == object or pd.api.types.is_string_dtype(x.dtype):  # pandas 3: str dtype
            try:
                return pd.to_numeric(x).astype("Float64")
            except (ValueError, TypeError):
                raise QueryError("arithmetic on a text column of the released table") from None
        if x.dtype == "boolean" or x.dtype == bool:
            raise QueryError("arithmetic on a condition; use CASE WHEN ... THEN 1 ELSE 0 END")
        return x.astype("Float64")
    if x is None:
        return pd.NA
    if isinstance(x, bool) or isinstance(x, str):
        raise QueryError(f"arithmetic on {'a boolean' if isinstance(x, bool) else 'text'}")
    return float(x)


def _bool(x: Any) -> Any:
    if isinstance(x, pd.Series):
        if x.dtype == "boolean":
            return x
        if x.dtype == bool:
            return x.astype("boolean")
        raise QueryError("a value used as a condition (compare it, e.g. n > 0)")
    if x is None:
        return pd.NA
    if isinstance(x, bool):
        return x
    raise QueryError("a value used as a condition (compare it, e.g. n > 0)")


def _unary(fn: Callable[[np.ndarray], np.ndarray], x: Any, valid: Callable[[Any], Any] | None = None) -> Any:
    x = _num(x)
    if isinstance(x, pd.Series):
        arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(all="ignore"):
            out = fn(arr)
        if valid is not None:
            out = np.where(valid(arr), out, np.nan)
        return pd.Series(out, index=x.index).astype("Float64")
    if x is pd.NA:
        return pd.NA
    with np.errstate(all="ignore"):
        v = float(fn(np.asarray([x]))[0])
    if valid is not None and not valid(np.asarray([x]))[0]:
        return pd.NA
    return pd.NA if math.isnan(v) else v


def _round_half_away(a: np.ndarray, digits: int = 0) -> np.ndarray:
    f = 10.0 ** digits
    return np.sign(a) * np.floor(np.abs(a) * f + 0.5) / f


def _clean(x: Any) -> Any:
    """NaN and ±inf of float arithmetic → NULL (SQL has no NaN from arithmetic)."""
    if isinstance(x, pd.Series) and x.dtype == "Float64":
        arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
        return x.mask(~np.isfinite(arr))
    if isinstance(x, float) and not math.isfinite(x):
        return pd.NA
    return x


def evaluate(e: PostExpr, frame: pd.DataFrame) -> Any:
    """The value of ``e`` on every row of ``frame`` (a Series, or a scalar for a
    constant expression); NULL as pd.NA, conditions as pandas' nullable booleans
    (SQL's three-valued logic: a NULL condition keeps no row)."""
    if isinstance(e, Ref):
        s = frame[e.name]
        if s.dtype.kind in "iuf":
            return s.astype("Float64")
        return s
    if isinstance(e, Const):
        return pd.NA if e.value is None else e.value
    fn = e.fn
    if fn == "case":
        return _case(e, frame)
    if fn == "coalesce":
        vals = [evaluate(a, frame) for a in e.args]
        out = vals[0]
        for v in vals[1:]:
            if isinstance(out, pd.Series):
                out = out.where(out.notna(), v)
            elif out is pd.NA:
                out = v
        return out
    a = [evaluate(x, frame) for x in e.args]
    if fn in ("+", "-", "*", "/"):
        x, y = _num(a[0]), _num(a[1])
        if x is pd.NA or y is pd.NA:
            return _na_like(a, frame)
        if fn == "/":
            y = y.mask(y == 0) if isinstance(y, pd.Series) else (pd.NA if y == 0 else y)
            if y is pd.NA:
                return _na_like(a, frame)
        with np.errstate(all="ignore"):
            r = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,
                 "/": lambda: x / y}[fn]()
        return _clean(r)
    if fn == "neg":
        x = _num(a[0])
        return x if x is pd.NA else -x
    if fn == "power":
        x, y = _num(a[0]), _num(a[1])
        if x is pd.NA or y is pd.NA:
            return _na_like(a, frame)
        with np.errstate(all="ignore"):
            return _clean(x ** y)
    if fn == "nullif":
        x, y = a
        if isinstance(x, pd.Series):
            return x.mask(x == y)
        return pd.NA if x == y else x
    unary = {
        "sqrt": (np.sqrt, lambda v: v >= 0), "abs": (np.abs, None),
        "floor": (np.floor, None), "ceil": (np.ceil, None), "exp": (np.exp, None),
        "ln": (np.log, lambda v: v > 0), "log10": (np.log10, lambda v: v > 0),
    }
    if fn in unary:
        f, ok = unary[fn]
        return _clean(_unary(f, a[0], ok))
    if fn == "round":
        d = int(e.args[1].value) if len(e.args) == 2 else 0  # type: ignore[union-attr]
        return _unary(lambda v: _round_half_away(v, d), a[0])
    if fn in ("least", "greatest"):
        nums = [_num(x) for x in a]
        df = pd.concat([x if isinstance(x, pd.Series) else pd.Series(x, index=frame.index, dtype="Float64")
                        for x in nums], axis=1)
        # SQL (PostgreSQL, DuckDB): NULLs are ignored
        return df.min(axis=1, skipna=True) if fn == "least" else df.max(axis=1, skipna=True)
    if fn in ("=", "!=", "<", "<=", ">", ">="):
        x, y = a
        if x is pd.NA or y is pd.NA:
            return _na_like(a, frame, boolean=True)
        x, y = _comparable(x, y)
        op = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__",
              ">=": "__ge__"}[fn]
        if not isinstance(x, pd.Series) and isinstance(y, pd.Series):
            flip = {"__lt__": "__gt__", "__gt__": "__lt__", "__le__": "__ge__", "__ge__": "__le__"}
            x, y, op = y, x, flip.get(op, op)
        r = getattr(x, op)(y)
        return r.astype("boolean") if isinstance(r, pd.Series) else bool(r)
    if fn in ("and", "or"):
        x, y = _bool(a[0]), _bool(a[1])
        if not isinstance(x, pd.Series) and isinstance(y, pd.Series):
            x, y = y, x
        if not isinstance(x, pd.Series):
            x = pd.Series([x] * len(frame), index=frame.index, dtype="boolean")
        return (x & y) if fn == "and" else (x | y)
    if fn == "not":
        x = _bool(a[0])
        return ~x if isinstance(x, pd.Series) else (pd.NA if x is pd.NA else not x)
    if fn == "is_null":
        x = a[0]
        return x.isna().astype("boolean") if isinstance(x, pd.Series) else x is pd.NA
    if fn == "in":
        x = a[0]
        vals = [v for v in a[1:] if v is not pd.NA]
        if isinstance(x, pd.Series):
            if x.dtype == "Float64":
                vals = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            r = x.isin(vals).astype("boolean")
            return r.mask(x.isna())
        return pd.NA if x is pd.NA else x in vals
    raise QueryError(f"unknown function {fn!r}")  # pragma: no cover (checked by Call)


def _comparable(x: Any, y: Any) -> tuple[Any, Any]:
    """Refuse comparing numbers with text (the error PostgreSQL gives)."""
    def kind(v: Any) -> str:
        return {"number": "num", "boolean": "bool", "text": "str"}.get(_kind(v) or "", "other")
    kx, ky = kind(x), kind(y)
    if {kx, ky} == {"num", "str"} or {kx, ky} == {"num", "bool"}:
        raise QueryError("a comparison of a number with text or a boolean over released values")
    return x, y


def _na_like(a: list[Any], frame: pd.DataFrame, boolean: bool = False) -> Any:
    if any(isinstance(x, pd.Series) for x in a):
        return pd.Series([pd.NA] * len(frame), index=frame.index,
                         dtype="boolean" if boolean else "Float64")
    return pd.NA


def _kind(v: Any) -> str | None:
    """'number', 'text' or 'boolean' of a value or Series; None for NULL / unknown."""
    if isinstance(v, pd.Series):
        if v.dtype == "Float64" or v.dtype.kind in "iuf":
            return "number"
        if v.dtype == "boolean" or v.dtype == bool:
            return "boolean"
        kinds = {_kind(x) for x in v.tolist()} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    if v is None or v is pd.NA:
        return None
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return "text"


def _case(e: Call, frame: pd.DataFrame) -> Any:
    args = list(e.args)
    default = args.pop() if len(args) % 2 == 1 else Const(None)
    results = [evaluate(args[i + 1], frame) for i in range(0, len(args) - 1, 2)]
    kinds = {_kind(v) for v in results + [evaluate(default, frame)]} - {None}
    if len(kinds) > 1:  # as PostgreSQL: the branches of a CASE have one type
        raise QueryError(f"the results of a CASE mix {' and '.join(sorted(kinds))} values; "
                         "use one kind")
    out: Any = evaluate(default, frame)
    out = out if isinstance(out, pd.Series) else pd.Series([out] * len(frame), index=frame.index,
                                                            dtype=_dtype_of(out))
    # last branch first, so the first branch whose condition holds wins
    for i in range(len(args) - 2, -1, -2):
        cond = _bool(evaluate(args[i], frame))
        val = evaluate(args[i + 1], frame)
        if not isinstance(cond, pd.Series):
            cond = pd.Series([cond] * len(frame), index=frame.index, dtype="boolean")
        hit = cond.fillna(False).astype(bool)
        if not isinstance(val, pd.Series):
            val = pd.Series([val] * len(frame), index=frame.index, dtype=_dtype_of(val))
        if out.dtype != val.dtype:
            out, val = out.astype(object), val.astype(object)
        out = val.where(hit, out)
    return out


def _dtype_of(v: Any) -> Any:
    if v is pd.NA or v is None:
        return "Float64"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "Float64"
    return object


# ------------------------------------------------------------------------ intervals
_MONOTONE_UP = {"sqrt": np.sqrt, "floor": np.floor, "ceil": np.ceil, "exp": np.exp,
                "ln": np.log, "log10": np.log10}


def interval(e: PostExpr, values: pd.DataFrame, bounds: dict[str, tuple[np.ndarray, np.ndarray]],
             n: int) -> tuple[np.ndarray, np.ndarray]:
    """Interval arithmetic: an interval for ``e`` from an interval per referenced column
    (``bounds``; a column without one — a group key — is exact). NaN where none is
    defined."""
    nan = np.full(n, np.nan)
    if isinstance(e, Const):
        v = e.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return nan, nan
        return np.full(n, float(v)), np.full(n, float(v))
    if isinstance(e, Ref):
        if e.name in bounds:
            return bounds[e.name]
        s = values[e.name]
        if s.dtype.kind in "iuf":
            v = s.to_numpy(dtype=np.float64)
            return v, v
        return nan, nan
    fn = e.fn
    if fn in _CONDITIONS or fn in ("case", "coalesce", "nullif"):
        return nan, nan
    iv = [interval(a, values, bounds, n) for a in e.args]
    with np.errstate(all="ignore"):
        if fn in ("+", "-"):
            (a, b), (c, d) = iv
            return (a + c, b + d) if fn == "+" else (a - d, b - c)
        if fn == "*":
            (a, b), (c, d) = iv
            p = np.stack([a * c, a * d, b * c, b * d])
            return p.min(axis=0), p.max(axis=0)
        if fn == "/":
            (a, b), (c, d) = iv
            ok = (c > 0) | (d < 0)  # the divisor's interval excludes zero
            p = np.stack([a / c, a / d, b / c, b / d])
            return np.where(ok, p.min(axis=0), np.nan), np.where(ok, p.max(axis=0), np.nan)
        if fn == "neg":
            a, b = iv[0]
            return -b, -a
        if fn == "abs":
            a, b = iv[0]
            lo = np.where((a <= 0) & (b >= 0), 0.0, np.minimum(np.abs(a), np.abs(b)))
            return lo, np.maximum(np.abs(a), np.abs(b))
        if fn in _MONOTONE_UP:
            a, b = iv[0]
            f = _MONOTONE_UP[fn]
            if fn == "sqrt":
                a = np.where(b >= 0, np.maximum(a, 0.0), np.nan)
            if fn in ("ln", "log10"):
                a = np.where(a > 0, a, np.nan)
            return f(a), f(b)
        if fn == "round":
            d = int(e.args[1].value) if len(e.args) == 2 else 0  # type: ignore[union-attr]
            a, b = iv[0]
            return _round_half_away(a, d), _round_half_away(b, d)
        if fn == "power":
            (a, b), (c, d) = iv
            y = e.args[1]
            if isinstance(y, Const) and isinstance(y.value, int) and not isinstance(y.value, bool) \
                    and y.value >= 0:
                k = y.value
                if k % 2 == 1:
                    return a ** k, b ** k
                lo = np.where((a <= 0) & (b >= 0), 0.0, np.minimum(np.abs(a), np.abs(b)) ** k)
                return lo, np.maximum(np.abs(a), np.abs(b)) ** k
            return nan, nan
        if fn in ("least", "greatest"):
            los = np.stack([x[0] for x in iv])
            his = np.stack([x[1] for x in iv])
            if fn == "least":
                return los.min(axis=0), his.min(axis=0)
            return los.max(axis=0), his.max(axis=0)
    return nan, nan


# ------------------------------------------------------------------------ applying
def apply(post: Post, values: pd.DataFrame, ci: Callable[[float], pd.DataFrame],
          group_columns: tuple[str, ...], aggregates: tuple[str, ...]
          ) -> tuple[pd.DataFrame, Callable[[float], pd.DataFrame]]:
    """The released table and its intervals after ``post``: from the noisy ``values``
    (one row per released cell) and the release's ``ci``; nothing else is read."""
    values = values.reset_index(drop=True)
    n = len(values)
    wide = values.copy()
    outputs = post.outputs
    computed = [(name, e) for name, e in (outputs or ()) if name not in values.columns]
    for name, e in computed:
        wide[name] = _series(evaluate(e, values), n)
    keep = np.arange(n)
    if post.having is not None:
        cond = _series(evaluate(post.having, wide), n, boolean=True)
        keep = keep[cond.fillna(False).to_numpy(dtype=bool)]
    if post.order_by:
        sub = wide.iloc[keep].reset_index(drop=True)
        order = np.arange(len(sub))
        for e, desc, nulls_first in reversed(post.order_by):
            key = _series(evaluate(e, sub), len(sub)).iloc[order]
            tmp = pd.DataFrame({"k": key.to_numpy(), "i": order})
            tmp = tmp.sort_values("k", ascending=not desc, kind="stable",
                                  na_position="first" if nulls_first else "last")
            order = tmp["i"].to_numpy()
        keep = keep[order]
    stop = None if post.limit is None else post.offset + post.limit
    keep = keep[post.offset:stop]
    rows = wide.iloc[keep].reset_index(drop=True)
    if outputs is None:
        df = rows
    else:
        df = pd.DataFrame({name: _plain(rows[name]) for name, _ in outputs})

    def post_ci(level: float) -> pd.DataFrame:
        return _post_ci(post, values, ci, level, keep, group_columns, aggregates)

    return df, post_ci


def _series(x: Any, n: int, boolean: bool = False) -> pd.Series:
    if isinstance(x, pd.Series):
        return x.reset_index(drop=True)
    dt = "boolean" if boolean or isinstance(x, bool) else _dtype_of(x)
    return pd.Series([x] * n, dtype=dt)


def _plain(s: pd.Series) -> pd.Series:
    """Nullable floats back to numpy float64 (NaN for NULL), as the other outputs."""
    if s.dtype == "Float64":
        return s.astype("float64")
    if s.dtype == "boolean" or s.dtype == object:  # NULL as None (travels as JSON null)
        return s.astype(object).where(s.notna(), None)
    return s


def _post_ci(post: Post, values: pd.DataFrame, ci: Callable[[float], pd.DataFrame],
             level: float, keep: np.ndarray, group_columns: tuple[str, ...],
             aggregates: tuple[str, ...]) -> pd.DataFrame:
    from .dp.accuracy import check_level

    level = check_level(level)
    cache: dict[float, pd.DataFrame] = {}

    def at(lvl: float) -> pd.DataFrame:
        if lvl not in cache:
            cache[lvl] = ci(lvl)
        return cache[lvl]

    n = len(values)

    def agg_interval(name: str, lvl: float) -> tuple[np.ndarray, np.ndarray]:
        f = at(lvl)
        f = f[f["aggregate"] == name]
        return f["lower"].to_numpy(dtype=np.float64), f["upper"].to_numpy(dtype=np.float64)

    if post.outputs is None:
        frames = []
        for name in aggregates:
            f = at(level)
            f = f[f["aggregate"] == name].reset_index(drop=True)
            frames.append(f.iloc[keep])
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    keys = [(name, e.name) for name, e in post.outputs
            if isinstance(e, Ref) and e.name in group_columns]
    base = pd.DataFrame({name: values[col].iloc[keep].to_numpy() for name, col in keys},
                        index=pd.RangeIndex(len(keep)))
    frames = []
    for name, e in post.outputs:
        if isinstance(e, Ref) and e.name in group_columns:
            continue
        used = [r for r in refs(e) if r in aggregates]
        k = max(len(used), 1)
        lvl = 1.0 - (1.0 - level) / k  # union bound over the aggregates read
        bounds = {r: agg_interval(r, lvl) for r in used}
        lo, hi = interval(e, values, bounds, n)
        v = _series(evaluate(e, values), n)
        f = base.copy()
        f["aggregate"] = name
        if v.dtype == "Float64" or v.dtype.kind in "iuf":
            f["value"] = v.astype("float64").to_numpy()[keep]
        else:
            f["value"] = v.to_numpy()[keep]
        f["lower"] = lo[keep]
        f["upper"] = hi[keep]
        frames.append(f)
    if not frames:
        return base.assign(aggregate=pd.Series(dtype=object), value=np.nan, lower=np.nan,
                           upper=np.nan).iloc[:0]
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------ the builder
class Output:
    """A column of the released table, for the Python builder's ``having``,
    ``order_by`` and ``compute``: build with :func:`out` and combine with ``+ - * /``,
    ``**``, unary ``-``, comparisons, ``&``, ``|``, ``~``, :meth:`isin`,
    :meth:`is_null`, :meth:`sqrt`, :meth:`abs`, :meth:`round`, :meth:`ln`,
    :meth:`exp`. Computed from the noisy values after the release, at no cost.

    >>> e = (out("total") / out("n")).round(1)
    >>> post_text(e.node)
    'ROUND(total / n, 1)'
    """

    __slots__ = ("node",)

    def __init__(self, node: PostExpr) -> None:
        self.node = node

    def _call(self, fn: str, *args: Any) -> "Output":
        return Output(Call(fn, tuple(to_post(a) for a in args)))

    def __add__(self, o: Any) -> "Output": return self._call("+", self, o)  # noqa: E704
    def __radd__(self, o: Any) -> "Output": return self._call("+", o, self)  # noqa: E704
    def __sub__(self, o: Any) -> "Output": return self._call("-", self, o)  # noqa: E704
    def __rsub__(self, o: Any) -> "Output": return self._call("-", o, self)  # noqa: E704
    def __mul__(self, o: Any) -> "Output": return self._call("*", self, o)  # noqa: E704
    def __rmul__(self, o: Any) -> "Output": return self._call("*", o, self)  # noqa: E704
    def __truediv__(self, o: Any) -> "Output": return self._call("/", self, o)  # noqa: E704
    def __rtruediv__(self, o: Any) -> "Output": return self._call("/", o, self)  # noqa: E704
    def __pow__(self, o: Any) -> "Output": return self._call("power", self, o)  # noqa: E704
    def __neg__(self) -> "Output": return self._call("neg", self)  # noqa: E704
    def __eq__(self, o: Any) -> "Output": return self._call("=", self, o)  # type: ignore[override]  # noqa: E704
    def __ne__(self, o: Any) -> "Output": return self._call("!=", self, o)  # type: ignore[override]  # noqa: E704
    def __lt__(self, o: Any) -> "Output": return self._call("<", self, o)  # noqa: E704
    def __le__(self, o: Any) -> "Output": return self._call("<=", self, o)  # noqa: E704
    def __gt__(self, o: Any) -> "Output": return self._call(">", self, o)  # noqa: E704
    def __ge__(self, o: Any) -> "Output": return self._call(">=", self, o)  # noqa: E704
    def __and__(self, o: Any) -> "Output": return self._call("and", self, o)  # noqa: E704
    def __or__(self, o: Any) -> "Output": return self._call("or", self, o)  # noqa: E704
    def __invert__(self) -> "Output": return self._call("not", self)  # noqa: E704

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        raise QueryError("an output expression has no truth value; combine conditions with "
                         "& | ~ and put each comparison in parentheses")

    def sqrt(self) -> "Output":
        return self._call("sqrt", self)

    def abs(self) -> "Output":
        return self._call("abs", self)

    def ln(self) -> "Output":
        return self._call("ln", self)

    def exp(self) -> "Output":
        return self._call("exp", self)

    def round(self, digits: int = 0) -> "Output":
        return self._call("round", self, digits) if digits else self._call("round", self)

    def isin(self, values: Any) -> "Output":
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
            raise QueryError("isin() takes a list of values")
        return Output(Call("in", (self.node,) + tuple(Const(v) for v in values)))

    def is_null(self) -> "Output":
        return self._call("is_null", self)

    def __repr__(self) -> str:
        return f"out({post_text(self.node)})"


def out(name: str) -> Output:
    """A column of the released table — a group key or an aggregate's output name — for
    ``Query.having``, ``Query.order_by`` and ``Query.compute``: ``out("n") > 100``."""
    return Output(Ref(name))


def to_post(x: Any) -> PostExpr:
    """An :class:`Output`, a builder expression over output names (``col("n") > 100``:
    ``col`` names an output here) or a plain value, as a post-processing expression."""
    from .query import Expression

    if isinstance(x, Output):
        return x.node
    if isinstance(x, Expression):
        return _from_plan_expr(x.node)
    if isinstance(x, (Ref, Const, Call)):
        return x
    if x is None or isinstance(x, (bool, int, float, str)) or callable(getattr(x, "item", None)):
        return Const(x)
    raise QueryError(f"expected an output expression (pets.out('n') > 100) or a value, got "
                     f"{type(x).__name__}")


def _from_plan_expr(e: Any) -> PostExpr:
    from . import plan as P

    if isinstance(e, P.Col):
        return Ref(e.name)
    if isinstance(e, P.Lit):
        return Const(e.value)
    if isinstance(e, P.Compare):
        return Call({"==": "="}.get(e.op, e.op), (_from_plan_expr(e.left), _from_plan_expr(e.right)))
    if isinstance(e, P.Arith):
        return Call(e.op, (_from_plan_expr(e.left), _from_plan_expr(e.right)))
    if isinstance(e, (P.And, P.Or)):
        return Call("and" if isinstance(e, P.And) else "or",
                    (_from_plan_expr(e.left), _from_plan_expr(e.right)))
    if isinstance(e, P.Not):
        return Call("not", (_from_plan_expr(e.operand),))
    if isinstance(e, P.Neg):
        return Call("neg", (_from_plan_expr(e.operand),))
    if isinstance(e, P.IsNull):
        return Call("is_null", (_from_plan_expr(e.operand),))
    if isinstance(e, P.IsIn):
        return Call("in", (_from_plan_expr(e.operand),) + tuple(Const(v) for v in e.values))
    if isinstance(e, P.Case):
        args: list[PostExpr] = []
        for c, v in e.whens:
            args += [_from_plan_expr(c), _from_plan_expr(v)]
        args.append(_from_plan_expr(e.default) if e.default is not None else Const(None))
        return Call("case", tuple(args))
    raise QueryError(f"not an expression: {type(e).__name__}")  # pragma: no cover


def dry_run(post: Post, groups: dict[str, Any], aggregates: tuple[str, ...]) -> None:
    """Apply ``post`` to a made-up released table of one row — each group column holding
    ``groups[name]`` (a public key, or a value of the column's type), each aggregate 1.0
    — and to its intervals: the type errors post-processing can raise depend on the
    plan and the schema only, so they come out here, before any charge, never after."""
    row = {name: [v] for name, v in groups.items()}
    row.update({a: [1.0] for a in aggregates})
    values = pd.DataFrame(row)

    def ci(level: float) -> pd.DataFrame:
        return pd.DataFrame([{**{g: v for g, v in groups.items()}, "aggregate": a, "value": 1.0,
                              "lower": 0.5, "upper": 1.5} for a in aggregates])

    _, post_ci = apply(post, values, ci, tuple(groups), aggregates)
    post_ci(0.95)
