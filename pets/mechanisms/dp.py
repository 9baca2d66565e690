"""Differentially private aggregates (``pets.DP``): the central DP release form.

Guarantee: see :mod:`pets.dp.aggregate` — (ε, δ)-DP under adding or removing one person
(the policy's privacy unit), each person's contribution bounded as the policy says.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..cost import Cost
from ..dp.aggregate import NoisyResult, compile_dp
from ..protections import DP
from ..release import Explanation, Release
from .base import Charge, Compiled, Context, Mechanism

__all__ = ["DPMechanism", "answer_key"]

_SELECTED = "__selected__"


def answer_key(ctx: Context) -> str:
    """Per analyst and purpose: a shared answer would tell one analyst what another asked.

    The plan's post-processing (HAVING, ORDER BY, LIMIT, expressions) is left out: it
    is applied to the recorded noisy measurements, so the same aggregates sorted or
    filtered another way are the same answer, at no cost.

    The key is the SHA-256 of the canonical JSON (sorted keys, no spaces) of
    ``{"analyst", "dataset", "plan", "policy", "protection", "purpose", "version"}``;
    the policy's part is encoded once per policy object (it is the largest and never
    changes), the object's text put together part by part exactly as ``json.dumps``
    would write it."""
    import dataclasses

    plan = dataclasses.replace(ctx.plan, post=None) if ctx.plan.post is not None else ctx.plan
    parts = {
        "analyst": _canonical(ctx.analyst), "dataset": _canonical(ctx.plan.dataset),
        "plan": _canonical(plan.to_dict()), "policy": _policy_json(ctx.policy),
        "protection": _canonical(ctx.protection.to_dict()), "purpose": _canonical(ctx.purpose),
        "version": _canonical(ctx.dataset.version),
    }
    text = "{" + ",".join(f"{_canonical(k)}:{parts[k]}" for k in sorted(parts)) + "}"
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"), default=str)


def _policy_json(policy: Any) -> str:
    """The policy's canonical JSON, kept on the (frozen) policy object after the first use."""
    text = policy.__dict__.get("_pets_answer_json")
    if text is None:
        text = _canonical(policy.to_dict())
        object.__setattr__(policy, "_pets_answer_json", text)
    return text


class CompiledDPRelease(Compiled):
    def __init__(self, ctx: Context, compiled: Any) -> None:
        self.ctx = ctx
        self.compiled = compiled
        self.charge = Charge(cost=compiled.cost, zdelta=compiled.zdelta, recall=True)
        self.key = answer_key(ctx)

    def explanation(self, charged: Cost, remaining: Cost) -> Explanation:
        c = self.compiled
        return Explanation(
            allowed=True,
            cost=charged,
            scale=c.output_scales(),
            ci_width={k: (2 * v if v is not None else None) for k, v in c.ci_half_widths().items()},
            remaining=remaining,
            details=c.details(),
        )

    def record(self) -> dict[str, Any]:
        c = self.compiled
        return {"kind": "dp", "cells": c.cells, "sampler": c.sampler,
                "noise_scale": c.output_scales()}

    def run(self, engine: Any, source: Any) -> Any:
        return engine.aggregate_columns(source, self.compiled.request())

    def finish(self, exact: Any) -> Any:
        return self.compiled.noise(exact).noisy

    def encode(self, payload: dict[str, np.ndarray]) -> str:
        """The noisy measurements and, with unknown keys, the groups that passed the
        threshold (both already released)."""
        out: dict[str, Any] = {k: np.asarray(v, dtype=np.int64).tolist() for k, v in payload.items()}
        if self.compiled.selected is not None:
            out[_SELECTED] = [list(g) for g in self.compiled.selected]
        return json.dumps(out, sort_keys=True)

    def decode(self, text: str) -> dict[str, np.ndarray]:
        d = json.loads(text)
        selected = d.pop(_SELECTED, None)
        if selected is not None:
            self.compiled.selected = [tuple(g) for g in selected]
        return {k: np.asarray(v, dtype=np.int64) for k, v in d.items()}

    def result(self, payload: Any, audit_id: int, spent: Cost, repeat_of: int | None) -> Release:
        c = self.compiled
        res = NoisyResult(c, payload)
        df, ci = res.values(), res.ci
        plan = self.ctx.plan
        if plan.post is not None:  # HAVING, ORDER BY, LIMIT, expressions: on the noisy values
            from ..post import apply

            df, ci = apply(plan.post, df, ci, tuple(g.column for g in plan.group_by),
                           tuple(a.name for a in plan.aggs))
        return Release(
            df=df, spent=spent, audit_id=audit_id, plan=plan,
            protection=self.ctx.protection, scale=c.output_scales(),
            suppressed=int(res.suppressed.sum()), _ci=ci, repeat_of=repeat_of,
        )


class DPMechanism(Mechanism):
    """Central DP: exact aggregates in the engine, discrete Laplace / Gaussian noise."""

    protection_type = DP
    #: the plan's post-processing (pets.post) is applied to the released table
    post_processing = True

    def form(self, protection: DP) -> str:
        return "dp"

    def epsilon(self, protection: DP) -> float | None:
        return protection.epsilon

    def compile(self, ctx: Context) -> CompiledDPRelease:
        compiled = compile_dp(ctx.plan, ctx.policy, ctx.schema, ctx.protection,
                              grant_epsilon=float(ctx.grant.epsilon))
        if ctx.plan.post is not None:  # its type errors now, before the charge
            from ..post import dry_run

            _TYPED = {"int": 1, "float": 1.0, "bool": True, "str": "a"}
            groups = {c: (k[0] if k else _TYPED.get(ctx.schema.get(c, "str"), "a"))
                      for c, k in zip(compiled.group_columns, compiled.keys)}
            dry_run(ctx.plan.post, groups, tuple(a.name for a in ctx.plan.aggs))
        return CompiledDPRelease(ctx, compiled)
