"""Value expressions — arithmetic and CASE — : their kind, and sound bounds by interval
arithmetic.

A DP sum, mean, variance or quantile of an expression needs an interval that holds
every value of it. pets derives one from the policy bounds of the columns the value
depends on: the engine first clamps each such column to its bounds, then computes the
expression, then clamps the result to the derived interval (a no-op but for float
rounding), so the interval holds by construction. Columns that only appear in a CASE
condition are compared as they are (they decide a branch, they are not a value).

>>> from pets.plan import Arith, Col, Lit
>>> e = Arith("-", Col("gain"), Col("loss"))
>>> b = value_bounds(e, {"gain": "int", "loss": "int"},
...                  {"gain": (0, 100000), "loss": (0, 5000)}.get)
>>> (b.lower, b.upper, b.integral, b.clamps)
(-5000.0, 100000.0, True, (('gain', 0.0, 100000.0), ('loss', 0.0, 5000.0)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import plan as P
from .errors import QueryError

__all__ = ["value_kind", "value_bounds", "ValueBounds", "LIMIT", "check_value"]

#: Largest magnitude a derived bound (of the whole expression or any part) may have:
#: up to 2^53, doubles hold every integer exactly and no 64-bit product overflows.
LIMIT = float(2**53)

_KIND_WORD = {"int": "numbers", "float": "numbers", "str": "text", "bool": "booleans",
              "date": "dates", "other": "values of another type"}


def value_kind(e: P.Expr, schema: Mapping[str, str],
               check_condition: Callable[[P.Expr, Any], None] | None = None) -> str:
    """The kind of value ``e`` yields: ``int``, ``float``, ``str``, ``bool``, ``date``,
    ``other`` or ``null`` (always missing). Raises :class:`QueryError` for arithmetic on
    anything but numbers and for CASE results of different kinds. ``check_condition``,
    when given, checks each CASE condition (governance passes its literal-type check).
    """
    if isinstance(e, P.Col):
        return schema.get(e.name, "other")
    if isinstance(e, P.Lit):
        v = e.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        if isinstance(v, float):
            return "float"
        return "str"
    if isinstance(e, (P.Arith, P.Neg)):
        parts = [e.left, e.right] if isinstance(e, P.Arith) else [e.operand]
        kinds = []
        for x in parts:
            k = value_kind(x, schema, check_condition)
            if k not in ("int", "float", "null"):
                what = (f"column {x.name!r} holds {_KIND_WORD.get(k, k)}" if isinstance(x, P.Col)
                        else f"{P.expr_text(x)} is {_KIND_WORD.get(k, k)}")
                op = "unary minus" if isinstance(e, P.Neg) else f"arithmetic ({e.op})"
                raise QueryError(f"{op} needs numbers, but {what}: {P.expr_text(e)}")
            kinds.append(k)
        if "null" in kinds:
            return "null"
        if isinstance(e, P.Arith) and e.op == "/":
            return "float"
        return "int" if all(k == "int" for k in kinds) else "float"
    if isinstance(e, P.Case):
        found: set[str] = set()
        for cond, _ in e.whens:
            if check_condition is not None:
                check_condition(cond, schema)
        for res in e.results():
            k = value_kind(res, schema, check_condition)
            if k != "null":
                found.add(k)
        if not found:
            return "null"
        if found <= {"int", "float"}:
            return "int" if found == {"int"} else "float"
        if len(found) > 1:
            words = sorted({_KIND_WORD.get(k, k) for k in found})
            raise QueryError(
                f"the results of {P.expr_text(e)} mix {' and '.join(words)}; "
                "give every THEN and ELSE the same kind of value"
            )
        return found.pop()
    return "bool"  # a condition


@dataclass(frozen=True)
class ValueBounds:
    """An interval holding every value of an expression, given ``clamps``: the columns
    to clamp (to these bounds) before it is computed. ``integral``: every value is an
    integer (the engine's fixed-point encoding can then be exact with factor 1)."""

    lower: float
    upper: float
    integral: bool
    clamps: tuple[tuple[str, float, float], ...]


def value_bounds(e: P.Expr, schema: Mapping[str, str],
                 column_bounds: Callable[[str], "tuple[float, float] | None"],
                 label: str = "") -> ValueBounds:
    """Bounds of ``e`` by interval arithmetic over the bounds of the columns it takes its
    value from (``column_bounds(name)``, e.g. the policy's). Raises QueryError when a
    column has no bounds, the value is never present, or a bound grows beyond 2^53."""
    clamps: dict[str, tuple[float, float]] = {}
    what = label or P.expr_text(e)

    def check(lo: float, hi: float, x: P.Expr) -> None:
        if not (math.isfinite(lo) and math.isfinite(hi)) or max(abs(lo), abs(hi)) > LIMIT:
            raise QueryError(
                f"{what}: the values of {P.expr_text(x)} can reach beyond ±2^53 under the "
                "columns' bounds; pass narrower bounds=(lower, upper) for the expression"
            )

    def walk(x: P.Expr) -> tuple[float, float, bool] | None:
        """(lower, upper, integral), or None when the value is always missing."""
        if isinstance(x, P.Lit):
            v = x.value
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise QueryError(f"{what} needs numbers, but {P.expr_text(x)} is not a number")
            check(float(v), float(v), x)
            return float(v), float(v), isinstance(v, int)
        if isinstance(x, P.Col):
            t = schema.get(x.name)
            if t not in ("int", "float"):
                raise QueryError(
                    f"{what} needs numbers, but column {x.name!r} holds "
                    f"{_KIND_WORD.get(t or 'other', t)}"
                )
            cb = column_bounds(x.name)
            if cb is None:
                raise QueryError(
                    f"{what} needs bounds, and column {x.name!r} has none: pass "
                    "bounds=(lower, upper) for the expression, or have the holder declare "
                    f"the column's ([columns.{x.name}] bounds = [lower, upper])"
                )
            c_lo, c_hi = float(cb[0]), float(cb[1])
            clamps[x.name] = (c_lo, c_hi)
            return c_lo, c_hi, t == "int" and c_lo.is_integer() and c_hi.is_integer()
        if isinstance(x, P.Neg):
            o = walk(x.operand)
            return None if o is None else (-o[1], -o[0], o[2])
        if isinstance(x, P.Arith):
            a, b2 = walk(x.left), walk(x.right)
            if a is None or b2 is None:
                return None
            b = b2
            if x.op == "+":
                lo, hi = a[0] + b[0], a[1] + b[1]
            elif x.op == "-":
                lo, hi = a[0] - b[1], a[1] - b[0]
            elif x.op == "*":
                ps = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
                lo, hi = min(ps), max(ps)
            else:  # "/" by a nonzero literal (the plan allows nothing else)
                ps = [a[0] / b[0], a[1] / b[0]]
                lo, hi = min(ps), max(ps)
            check(lo, hi, x)
            return lo, hi, a[2] and b[2] and x.op != "/"
        if isinstance(x, P.Case):
            parts = [walk(v) for v in x.results()]
            present = [p for p in parts if p is not None]
            if not present:
                return None
            return (min(p[0] for p in present), max(p[1] for p in present),
                    all(p[2] for p in present))
        raise QueryError(
            f"{what}: {P.expr_text(x)} is a condition, not a number; "
            "use pets.case((condition, 1), default=0)"
        )

    r = walk(e)
    if r is None:
        raise QueryError(f"{what}: the expression is always NULL, so there is nothing to aggregate")
    lo, hi, integral = r
    return ValueBounds(lo, hi, integral,
                       tuple((c, lo_, hi_) for c, (lo_, hi_) in sorted(clamps.items())))


def check_value(e: P.Expr, schema: Mapping[str, str], label: str) -> str:
    """The kind of an aggregated expression; QueryError if it is not a number."""
    k = value_kind(e, schema)
    if k not in ("int", "float"):
        raise QueryError(
            f"{label} needs numbers, but {P.expr_text(e)} yields "
            f"{'nothing (always NULL)' if k == 'null' else _KIND_WORD.get(k, k)}"
        )
    return k
