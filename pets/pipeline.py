"""The one release pipeline: every release form goes this way.

::

    request checks        the protection and the plan's shape (no policy, no data)
    grant                 the analyst has a grant for this dataset and purpose — first,
                          so an analyst without one learns nothing about the dataset
    check_plan            negative list, columns, default deny, the grade's forms,
                          identifiers, the per-release ε cap            (pets.governance)
    mechanism.compile     the release's Charge (cost, quota) and what explain says
    budget / quota        BudgetExceeded / PolicyError
    ── explain stops here: it spends nothing and touches no data ──
    recall                a repeated identical request: the recorded answer, no cost
    run + finish          exact work in the engine, then noise / generalisation /
                          encryption; nothing leaves yet
    commit                charge + audit record in one transaction (the quota is
                          counted atomically); only now does anything leave
    result                the Release / Extract / contribution

Refusals (PolicyError, BudgetExceeded) are audited. Everything observable before the
commit depends only on the request, the policy, the schema and the ledger — never on
the rows. Whatever ``run`` or ``finish`` raise depends on the rows: such a release is
charged all the same (a crash after the charge loses budget, never privacy) and the
analyst gets the mechanism's fixed :meth:`~pets.mechanisms.Compiled.failure` message;
the holder's log (logger ``pets.release``) names the exception class only, never a
value. The side-door harness (tests/system/test_side_doors.py) checks all of this on
neighbouring tables for every form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cost import Cost
from .dp.accountant import charged_cost
from .errors import BudgetExceeded, PolicyError, QueryError
from .governance import check_plan
from .mechanisms import Compiled, Context, Mechanism, mechanism_for
from .plan import Plan
from .protections import Protection
from .query import Query
from .release import Explanation

if TYPE_CHECKING:  # pragma: no cover
    from .holder import Dataset
    from .session import Session

__all__ = ["Prepared", "check_grant", "prepare", "execute", "explain", "release", "policy_version", "plan_of"]

log = logging.getLogger("pets.release")

#: the rule a counted release refuses under when its quota is used up
_QUOTA_RULES = {"kanon": "max_extracts", "he_exact": "max_exact_totals"}
#: the largest plan (its canonical JSON, as the audit log keeps it) a request may send
MAX_PLAN_BYTES = 4 << 20
_QUOTA_WHAT = {
    "kanon": ("kanon extracts", "extracts of the same people can be linked"),
    "he_exact": ("exact federated totals (he_exact)",
                 "two exact totals that differ by one person give that person away"),
}


def policy_version(policy: Any) -> str:
    """The digest of a policy that audit records name: SHA-256 of its canonical JSON."""
    from .store.audit import policy_version as digest

    return digest(policy.to_dict())


def plan_of(query: Query | Plan) -> Plan:
    if isinstance(query, Query):
        return query.plan
    if isinstance(query, Plan):
        return query
    raise QueryError(f"expected a query (s.table(...)...), got {type(query).__name__}")


@dataclass
class Prepared:
    """A request that passed every check: ready to run and commit."""

    session: "Session"
    mechanism: Mechanism
    compiled: Compiled
    context: Context
    charged: Cost  # what the ledger would debit, under the grant's accounting
    remaining: Cost

    @property
    def dataset(self) -> "Dataset":
        return self.context.dataset

    def base_record(self) -> dict[str, Any]:
        ctx = self.context
        return {
            "analyst": ctx.analyst, "purpose": ctx.purpose, "dataset": ctx.plan.dataset,
            "kind": ctx.protection.form, "plan": ctx.plan.to_dict(),
            "protection": ctx.protection.to_dict(),
            "policy_version": ctx.dataset.policy_version,
        }


def _check_protection(protection: Any) -> None:
    if not isinstance(protection, Protection):
        raise QueryError(
            "the second argument is the protection, e.g. pets.DP(epsilon=0.5); "
            f"got {type(protection).__name__}"
        )


def _check_size(plan: Plan) -> None:
    """Every request is audited with its plan: bound what one request can write."""
    from .store.audit import canonical_json

    size = len(canonical_json(plan.to_dict()).encode("utf-8"))
    if size > MAX_PLAN_BYTES:
        raise QueryError(
            f"the query is too large: {size:,} bytes as JSON, at most {MAX_PLAN_BYTES:,}; "
            "use fewer or shorter keys, values and expressions"
        )


def _unknown_dataset(s: "Session", dataset: str) -> QueryError:
    granted = sorted({g["dataset"] for g in s._holder._store.list_grants(s.analyst)})
    return QueryError(
        f"unknown dataset {dataset!r}; datasets granted to {s.analyst}: "
        f"{', '.join(granted) or 'none'}"
    )


def check_grant(s: "Session", dataset: str, kind: str, extra: dict[str, Any] | None = None) -> Any:
    """The pipeline's first two checks for a request that is not a release (a dummy
    table): the dataset is registered (QueryError) and the analyst has a grant for it
    and the session's purpose (PolicyError ``no_grant``, audited as a refusal of
    ``kind``) — the same errors, in the same order, as :func:`prepare`. Returns the
    grant's :class:`~pets.dp.accountant.Budget`."""
    store = s._holder._store
    if store.get_dataset(dataset) is None:
        raise _unknown_dataset(s, dataset)
    budget = store.budget_state(s.analyst, dataset, s.purpose)
    if budget is None:
        e = _no_grant(s, dataset)
        store.record({"analyst": s.analyst, "purpose": s.purpose, "dataset": dataset,
                      "kind": kind, "status": "refused", "rule": e.rule, "column": None,
                      **(extra or {})})
        raise e
    return budget


def _no_grant(s: "Session", dataset: str) -> PolicyError:
    return PolicyError(
        f"analyst {s.analyst!r} has no grant for dataset {dataset!r} and purpose "
        f"{s.purpose!r}; ask the holder for one (holder.grant(...), or "
        "`pets grant` on the command line)",
        rule="no_grant",
    )


def _refuse(s: "Session", plan: Plan, protection: Protection, rule: str, column: str | None,
            version: str | None = None) -> None:
    rec: dict[str, Any] = {
        "analyst": s.analyst, "purpose": s.purpose, "dataset": plan.dataset,
        "kind": protection.form, "status": "refused", "rule": rule, "column": column,
        "plan": plan.to_dict(), "protection": protection.to_dict(),
    }
    if version:
        rec["policy_version"] = version
    s._holder._store.record(rec)


def prepare(s: "Session", query: Query | Plan, protection: Protection, *,
            federated: bool = False, record_refusals: bool = True) -> Prepared:
    """Every check of a release, in order, spending nothing and touching no rows."""
    plan = plan_of(query)
    _check_protection(protection)
    _check_size(plan)
    mech = mechanism_for(protection, federated=federated)
    if plan.post is not None and not getattr(mech, "post_processing", False):
        raise QueryError(
            f"HAVING, ORDER BY, LIMIT and expressions over aggregates apply to DP releases; "
            f"a {type(protection).__name__} release does not support them"
        )
    mech.check_request(plan, protection)
    store = s._holder._store
    record, budget = store.dataset_and_budget(plan.dataset, s.analyst, s.purpose)
    if record is None:
        raise _unknown_dataset(s, plan.dataset)
    version = None
    try:
        if budget is None:
            raise _no_grant(s, plan.dataset)
        ds = s._holder._dataset(plan.dataset, record)
        version = ds.policy_version
        check_plan(ds.policy, plan, ds.schema, mech.form(protection), mech.epsilon(protection))
        ctx = Context(s.analyst, s.purpose, ds, plan, protection, budget)
        compiled = mech.compile(ctx)
        charge = compiled.charge
        charged, zd = charged_cost(budget.accounting, charge.cost, charge.zdelta)
        if charge.spends and not budget.fits(charged, zd):
            asked = (str(charged) if budget.accounting == "basic"
                     else f"rho={charged.rho:.6g} ({charge.cost})")
            raise BudgetExceeded(
                f"this release asks {asked} but only {budget.describe_left()} is left for "
                f"{s.analyst} on {plan.dataset} (purpose {s.purpose})",
                asked=charged, left=budget.remaining(),
            )
        if charge.quota is not None:
            kind, limit = charge.quota
            if limit is not None:
                used = store.count_events(s.analyst, plan.dataset, kind)
                if used >= limit:  # counted again atomically at the commit
                    raise _quota_error(s.analyst, plan.dataset, kind, used, limit)
        compiled.check_ledger(store)
    except PolicyError as e:
        if record_refusals:
            _refuse(s, plan, protection, e.rule, e.column, version)
        raise
    except BudgetExceeded:
        if record_refusals:
            _refuse(s, plan, protection, "budget", None, version)
        raise
    return Prepared(s, mech, compiled, ctx, charged, budget.remaining())


def _quota_error(analyst: str, dataset: str, kind: str, used: int, limit: int) -> PolicyError:
    what, why = _QUOTA_WHAT.get(kind, (f"{kind} releases", "releases can be combined"))
    return PolicyError(
        f"analyst {analyst!r} has had {used} of the {limit} {what} the policy allows from "
        f"dataset {dataset!r}; {why}, so their number is limited",
        rule=_QUOTA_RULES.get(kind, f"max_{kind}"), allowed=limit,
    )


def execute(p: Prepared) -> Any:
    """Run, finish, commit (charge + audit), and give the result."""
    s, c, ctx = p.session, p.compiled, p.context
    store = s._holder._store
    charge = c.charge
    record = {**p.base_record(), **c.record(), "status": "released"}
    key = getattr(c, "key", None) if charge.recall else None
    if key is not None:
        hit = store.recall_answer(key, record)
        if hit is not None:
            audit_id, answer, first = hit
            return c.result(c.decode(answer), audit_id, Cost(), first)
    failed: BaseException | None = None
    payload: Any = None
    try:
        exact = c.run(s._holder._engine_for(ctx.dataset), ctx.dataset.source)
        payload = c.finish(exact)
        del exact
    except Exception as e:  # data-dependent: charged below, reported without detail
        failed = e
        payload = None
    if failed is None:
        record.update(c.record_result(payload))
    else:
        record["failed"] = True
    try:
        own = c.commit(store, record)
        if own is not None:
            audit_id, spent = own, Cost()
        elif charge.quota is not None:
            kind, limit = charge.quota
            record["kind"] = kind
            audit_id = store.record_counted(record, limit)
            spent = Cost()
            if limit is not None:
                c.quota_left = max(0, limit - store.count_events(ctx.analyst, ctx.plan.dataset, kind))
        elif key is not None and failed is None:
            audit_id, answer, first, spent = store.charge_answer(
                ctx.analyst, ctx.plan.dataset, ctx.purpose, charge.cost, record, key,
                c.encode(payload), zdelta=charge.zdelta,
            )
            if first is not None:  # an identical request was answered meanwhile: free
                return c.result(c.decode(answer), audit_id, Cost(), first)
        else:
            audit_id = store.charge(ctx.analyst, ctx.plan.dataset, ctx.purpose, charge.cost,
                                    record, zdelta=charge.zdelta)
            spent = p.charged
    except PolicyError as e:
        # a policy replaced while this release ran: the refusal names no version
        stale = e.rule == "policy_changed"
        _refuse(s, ctx.plan, ctx.protection, e.rule, e.column,
                None if stale else ctx.dataset.policy_version)
        raise
    except BudgetExceeded:
        _refuse(s, ctx.plan, ctx.protection, "budget", None, ctx.dataset.policy_version)
        raise
    if failed is not None:
        log.warning("release %s on dataset %r failed after its charge: %s (values withheld)",
                    audit_id, ctx.plan.dataset, type(failed).__name__)
        raise c.failure(audit_id) from None
    return c.result(payload, audit_id, spent, None)


def release(s: "Session", query: Query | Plan, protection: Protection) -> Any:
    """Check, charge, compute and release (see the module docstring)."""
    return execute(prepare(s, query, protection))


def explain(s: "Session", query: Query | Plan, protection: Protection, *,
            federated: bool = False) -> Explanation:
    """What :func:`release` would do, spending nothing and touching no rows."""
    plan = plan_of(query)
    _check_protection(protection)
    mech = mechanism_for(protection, federated=federated)
    store = s._holder._store
    try:
        p = prepare(s, plan, protection, federated=federated, record_refusals=False)
    except (PolicyError, BudgetExceeded) as e:
        eps = mech.epsilon(protection)
        return Explanation(
            allowed=False, cost=Cost(eps, 0.0) if eps is not None else Cost(),
            rule=getattr(e, "rule", "budget"), message=str(e),
            column=getattr(e, "column", None),
            remaining=store.remaining(s.analyst, plan.dataset, s.purpose),
        )
    return p.compiled.explanation(p.charged, p.remaining)
