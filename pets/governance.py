"""Policy checks on a plan: the rules that say whether a release may happen.

Checked in this order, the first failure refuses with a :class:`PolicyError` that names
the rule and the column: the negative list; unknown columns (a :class:`QueryError`);
default deny (columns the policy does not list); the grade's allowed release forms;
identifiers (never grouped by, filtered on or aggregated, whatever the form — only a
verification may name one, as its subject key); the per-release ε cap.

The release pipeline (:mod:`pets.pipeline`) calls this after the grant check, so an
analyst without a grant never reaches the column checks (which name columns).

One exception: the privacy unit named only as the column of ``count_distinct`` (the
number of distinct persons) is not a released column — every DP release uses it to bound
each person's contribution, and this releases only a noisy count of persons, the same as
``count_distinct()`` without a column. The negative list still refuses it when named.
"""

from __future__ import annotations

import difflib

from .errors import PolicyError, QueryError
from . import plan as P
from .expressions import value_kind
from .plan import Plan
from .policy import Policy

__all__ = ["check_plan", "epsilon_cap", "min_k", "persons_column", "released_columns"]


def persons_column(policy: Policy, plan: Plan) -> str | None:
    """The privacy unit when ``plan`` names it only as the column of ``count_distinct``
    (a count of distinct persons); ``None`` otherwise."""
    unit = policy.privacy_unit
    if unit is None:
        return None
    uses = [a for a in plan.aggs if a.column == unit]
    if not uses or any(a.kind != "count_distinct" for a in uses):
        return None
    other: list[str] = [c for f in plan.filters for c in P.expr_columns(f)]
    other += list(plan.select or ()) + [g.column for g in plan.group_by]
    return None if unit in other else unit


def released_columns(policy: Policy, plan: Plan) -> list[str]:
    """The plan's columns whose grade rules apply: all of them but a privacy unit that
    is only counted (:func:`persons_column`)."""
    persons = persons_column(policy, plan)
    return [c for c in plan.columns() if c != persons]


def check_plan(policy: Policy, plan: Plan, schema: dict[str, str], form: str,
               epsilon: float | None = None) -> None:
    cols = plan.columns()
    for c in cols:
        if c in policy.negative_list:
            raise PolicyError(
                f"column {c!r} is on the dataset's negative list and may never appear in a "
                "query; remove it from the query",
                rule="negative_list",
                column=c,
            )
    for c in cols:
        if c not in schema:
            allowed = [k for k in policy.columns if k not in policy.negative_list]
            near = difflib.get_close_matches(c, allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise QueryError(f"unknown column {c!r} in dataset {plan.dataset!r}{hint}")
    cols = released_columns(policy, plan)  # distinct persons: not a released column
    for c in cols:
        policy.column(c)  # default deny
    for f in plan.filters:
        _check_types(f, schema)
    for a in plan.aggs:  # arithmetic on numbers only; CASE conditions like filters
        if a.expr is not None:
            value_kind(a.expr, schema, _check_types)
    group_cols = set()
    for g in plan.group_by:
        if g.expr is not None:  # a CASE key groups by every column it reads
            value_kind(g.expr, schema, _check_types)
            group_cols.update(P.expr_columns(g.expr))
        else:
            group_cols.add(g.column)
    for c in cols:
        cp = policy.columns[c]
        rule = policy.grade_rule(cp.grade)
        if form not in rule.allow:
            allowed = sorted(rule.allow)
            raise PolicyError(
                f"column {c!r} is grade {cp.grade}, which does not allow {form!r} releases "
                f"(grade {cp.grade} allows: {', '.join(allowed) if allowed else 'nothing'})",
                rule="grade",
                column=c,
                allowed=allowed,
            )
        if cp.role == "identifier" and form == "kanon":
            raise PolicyError(
                f"column {c!r} is an identifier and is never released, not even in a "
                "k-anonymous extract; leave it out",
                rule="identifier",
                column=c,
            )
        if cp.role == "identifier" and form != "verify":  # dp, he, he_exact, and any new form
            if c in group_cols:
                raise PolicyError(
                    f"column {c!r} is an identifier: grouping by it would release one cell "
                    "per person; group by a public attribute instead",
                    rule="identifier_group_by",
                    column=c,
                )
            raise PolicyError(
                f"column {c!r} is an identifier and cannot be filtered on or aggregated in a "
                f"{_FORM_NAMES.get(form, form)} release",
                rule="identifier",
                column=c,
            )
    if epsilon is not None:
        cap, at = epsilon_cap(policy, plan)
        if cap is not None and epsilon > cap:
            raise PolicyError(
                f"epsilon={epsilon:g} is above the cap of {cap:g} per release for column "
                f"{at!r} (grade {policy.columns[at].grade}); ask for epsilon <= {cap:g}",  # type: ignore[index]
                rule="max_epsilon",
                column=at,
                allowed=cap,
            )


_FORM_NAMES = {"dp": "DP", "he": "federated (HE)", "he_exact": "federated (HE)"}
_NUMERIC = ("int", "float")
_GROUP = {"int": "numbers", "float": "numbers", "str": "text", "bool": "booleans"}


def _check_types(e: P.Expr, schema: dict[str, str]) -> None:
    """Literals compared with a column must be of the column's kind."""
    if isinstance(e, (P.And, P.Or)):
        _check_types(e.left, schema)
        _check_types(e.right, schema)
    elif isinstance(e, P.Not):
        _check_types(e.operand, schema)
    elif isinstance(e, (P.Arith, P.Neg, P.Case)):
        value_kind(e, schema, _check_types)
    elif isinstance(e, P.IsNull):
        _check_types(e.operand, schema)
    elif isinstance(e, (P.Compare, P.IsIn)):
        if isinstance(e, P.Compare):
            pairs = [(e.left, e.right), (e.right, e.left)]
        else:
            pairs = [(e.operand, P.Lit(v)) for v in e.values]
        for a, b in pairs:
            if isinstance(a, P.Col) and isinstance(b, P.Lit) and b.value is not None:
                t, v = schema.get(a.name), b.value
                ok = (
                    (t in _NUMERIC and isinstance(v, (int, float)) and not isinstance(v, bool))
                    or (t == "str" and isinstance(v, str))
                    or (t == "bool" and isinstance(v, bool))
                    or t in ("date", "other")
                )
                if not ok:
                    kind = {"int": "numbers", "float": "numbers", "str": "text",
                            "bool": "booleans"}.get(t or "", t)
                    raise QueryError(
                        f"column {a.name!r} holds {kind}; compare it with a value of that kind, "
                        f"not a {type(v).__name__}"
                    )
        if isinstance(e, P.Compare):
            for side in (e.left, e.right):
                if not isinstance(side, (P.Col, P.Lit)):
                    _check_types(side, schema)
        sides = [e.left, e.right] if isinstance(e, P.Compare) else [e.operand]
        if any(isinstance(x, (P.Arith, P.Neg, P.Case)) for x in sides):
            kinds = [value_kind(x, schema) for x in sides]
            if isinstance(e, P.IsIn):
                kinds += [value_kind(P.Lit(v), schema) for v in e.values]
            groups = {_GROUP[k] for k in kinds if k in _GROUP}
            if len(groups) > 1:
                raise QueryError(
                    f"{P.expr_text(e)} compares {' with '.join(sorted(groups))}; "
                    "compare values of one kind"
                )


def min_k(policy: Policy, columns: list[str]) -> tuple[int | None, str | None]:
    """The largest ``min_k`` over the grades of ``columns``, and the column it comes from."""
    best: int | None = None
    at: str | None = None
    for c in columns:
        cp = policy.columns.get(c)
        if cp is None:
            continue
        m = policy.grade_rule(cp.grade).min_k
        if m is not None and (best is None or m > best):
            best, at = m, c
    return best, at


def epsilon_cap(policy: Policy, plan: Plan) -> tuple[float | None, str | None]:
    """The smallest per-release ε cap over the plan's columns, and the column it comes from."""
    cap: float | None = None
    at: str | None = None
    for c in released_columns(policy, plan):
        cp = policy.columns.get(c)
        if cp is None:
            continue
        m = policy.grade_rule(cp.grade).max_epsilon
        if m is not None and (cap is None or m < cap):
            cap, at = m, c
    return cap, at
