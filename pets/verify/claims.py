"""Claims a verifier may make about a subject, checked against the policy's ``[verify]``
section before anything touches the data.

A claim is a comparison of one claimable column with a literal (``col("age") >= 30``),
an ``isin`` (``col("education").isin(["Bachelors", "Masters"])``), or a conjunction of
those (``(col("age") >= 30) & (col("age") < 40)``). Disjunctions and negations are not
claims: a verifier asks one fact at a time.
"""

from __future__ import annotations

import math
from typing import Any

from .. import plan as P
from ..errors import PolicyError, QueryError
from .policy import VerifyPolicy

__all__ = ["atoms", "check_claim"]

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def atoms(claim: P.Expr) -> list[tuple[str, str, tuple[Any, ...]]]:
    """The claim as ``(column, operator, values)`` terms, AND-ed; QueryError when it is
    not a claim (an ``|``, a ``~``, arithmetic, two columns compared, a NULL)."""
    out: list[tuple[str, str, tuple[Any, ...]]] = []

    def walk(e: P.Expr) -> None:
        if isinstance(e, P.And):
            walk(e.left)
            walk(e.right)
            return
        if isinstance(e, P.Compare):
            left, right, op = e.left, e.right, e.op
            if isinstance(left, P.Lit) and isinstance(right, P.Col):
                left, right, op = right, left, _FLIP[op]
            if isinstance(left, P.Col) and isinstance(right, P.Lit) and right.value is not None:
                out.append((left.name, op, (right.value,)))
                return
        if isinstance(e, P.IsIn) and isinstance(e.operand, P.Col):
            if any(v is None for v in e.values):
                raise QueryError("a claim's isin() values must not be None")
            out.append((e.operand.name, "isin", tuple(e.values)))
            return
        raise QueryError(
            f"{P.expr_text(e)} is not a claim: a claim compares one column with a value "
            "(==, !=, <, <=, >, >=), or uses .isin([...]), and joins such terms with &"
        )

    walk(claim)
    return out


def _on_grid(v: Any, g: float) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    q = v / g
    return math.isfinite(q) and abs(q - round(q)) <= 1e-9 * max(1.0, abs(q))


def check_claim(vp: VerifyPolicy, policy: Any, schema: dict[str, str], claim: P.Expr) -> list[
        tuple[str, str, tuple[Any, ...]]]:
    """Every term of ``claim`` is on a claimable column, with an allowed operator, at the
    policy's granularity; under ``membership = "hide"`` the claim must not hold for
    every value the policy declares public (bounds, keys) — such a claim would tell a
    present subject from an absent one. Raises PolicyError naming the rule."""
    terms = atoms(claim)
    for col, op, values in terms:
        rule = vp.claims.get(col)
        if rule is None:
            allowed = sorted(vp.claims)
            raise PolicyError(
                f"column {col!r} may not be claimed about in a verification (the policy's "
                f"[verify.claims] allow: {', '.join(allowed) or 'none'})",
                rule="verify_claims", column=col, allowed=allowed,
            )
        if op not in rule.operators:
            raise PolicyError(
                f"operator {op!r} may not be used in claims about column {col!r} "
                f"(allowed: {', '.join(rule.operators)})",
                rule="verify_operators", column=col, allowed=list(rule.operators),
            )
        if rule.granularity is not None:
            g = rule.granularity
            for v in values:
                if not _on_grid(v, g):
                    gs = f"{g:g}"
                    raise PolicyError(
                        f"claims about column {col!r} must use multiples of {gs} (the policy's "
                        f"granularity), not {v!r}; a finer claim could narrow the value more "
                        "than the policy allows",
                        rule="verify_granularity", column=col, allowed=g,
                    )
    if vp.membership == "hide" and _always_true(terms, policy):
        raise PolicyError(
            "this claim holds for every value the policy declares for its columns, so its "
            "answer would only say whether the subject is in the dataset, which the policy "
            "hides; claim something that can be false",
            rule="verify_membership",
        )
    return terms


def _always_true(terms: list[tuple[str, str, tuple[Any, ...]]], policy: Any) -> bool:
    """The conjunction holds for every declared value (within bounds / keys) of every
    column it names. Missing values fail every claim, so this is about present values."""
    by_col: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for c, op, vals in terms:
        by_col.setdefault(c, []).append((op, vals))
    for c, parts in by_col.items():
        cp = policy.columns.get(c)
        if cp is None:
            return False
        if cp.keys is not None:
            domain = set(cp.keys)
            ok = set(domain)
            for op, vals in parts:
                if op == "isin":
                    ok &= set(vals)
                elif op == "==":
                    ok &= {vals[0]}
                elif op == "!=":
                    ok -= {vals[0]}
                else:
                    return False
            if ok != domain:
                return False
        elif cp.bounds is not None:
            lo, hi = cp.bounds
            for op, vals in parts:
                v = vals[0]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return False
                holds = {">=": lo >= v, ">": lo > v, "<=": hi <= v, "<": hi < v}.get(op)
                if op == "!=":
                    holds = v < lo or v > hi
                if op in ("==", "isin"):
                    holds = False  # a bounded range holds more than one value
                if not holds:
                    return False
        else:
            # no declared domain: only != can hold for (nearly) everyone
            if not all(op == "!=" for op, _ in parts):
                return False
    return True
