"""Policy checks on a plan: the rules that say whether a release may happen.

Checked in this order, the first failure refuses with a :class:`PolicyError` that names
the rule and the column: the negative list; unknown columns (a :class:`QueryError`);
default deny (columns the policy does not list); the grade's allowed release forms;
identifiers (never grouped by or aggregated); the per-release ε cap.
"""

from __future__ import annotations

import difflib

from .errors import PolicyError, QueryError
from .plan import Plan
from .policy import Policy

__all__ = ["check_plan", "epsilon_cap"]


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
    for c in cols:
        policy.column(c)  # default deny
    group_cols = {g.column for g in plan.group_by}
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
        if cp.role == "identifier" and form == "dp":
            if c in group_cols:
                raise PolicyError(
                    f"column {c!r} is an identifier: grouping by it would release one cell "
                    "per person; group by a public attribute instead",
                    rule="identifier_group_by",
                    column=c,
                )
            raise PolicyError(
                f"column {c!r} is an identifier and cannot be filtered on or aggregated in a "
                "DP release",
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


def epsilon_cap(policy: Policy, plan: Plan) -> tuple[float | None, str | None]:
    """The smallest per-release ε cap over the plan's columns, and the column it comes from."""
    cap: float | None = None
    at: str | None = None
    for c in plan.columns():
        cp = policy.columns.get(c)
        if cp is None:
            continue
        m = policy.grade_rule(cp.grade).max_epsilon
        if m is not None and (cap is None or m < cap):
            cap, at = m, c
    return cap, at
