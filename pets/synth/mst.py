"""DP synthetic data by MST (McKenna, Miklau & Sheldon 2021), with a tree estimation step.

Domain (public, from the policy): a categorical column's values are its ``keys`` plus
one "missing / other" value; a numeric column with ``bounds`` is cut into ``bins`` equal
bins (an integer column with at most ``bins`` values gets one bin per value) plus a
"missing" bin. Nothing about the domain is read from the data.

Measurement and selection (MST's published steps), the budget split in thirds
(ε for Laplace noise; ρ = the zCDP of (ε, δ) for Gaussian noise):

1. every 1-way marginal, as one integer vector (one row touches d cells: L1 = d,
   squared L2 = d), with discrete noise;
2. d − 1 pairs forming a maximum spanning tree, chosen one at a time (Kruskal order)
   by report-noisy-max (OpenDP's exponential mechanism; ε_r = ε/3/(d−1), or
   √(2ρ/3/(d−1)) under zCDP, as pure ε_r-DP is ε_r²/2-zCDP) over the pairs that join two
   components; the score of a pair is the L1 distance between its exact 2-way marginal and
   the independent estimate from step 1 (rounded to integers; sensitivity 1);
3. the chosen pairs' 2-way marginals, as one vector (L1 = d − 1, squared L2 = d − 1).

With a privacy unit, every sensitivity is multiplied by the rows one person may
contribute (m; m² for the squared L2). Sequential composition: ε-DP (Laplace) or
ρ-zCDP ⇒ (ε, δ)-DP (Gaussian) under adding or removing one person.

Estimation (post-processing; *not* Private-PGM, which we do not depend on): on a tree,
the maximum-entropy distribution with given node and edge marginals is the tree
factorisation p(x) = p(root) Π p(child | parent). Each node's marginal is the
inverse-variance weighted mean of its own noisy 1-way marginal and the sums of its
incident noisy pairs; each edge's table is made non-negative and fitted to its two node
marginals by iterative proportional fitting; rows are sampled root to leaves. (Private-PGM
solves the same problem by least squares over the marginal polytope; on a tree both give
consistent marginals, ours in closed form.) Sampling uses numpy's generator seeded from
the OS CSPRNG: it only post-processes released marginals.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..cost import Cost
from ..dp.samplers import noisy_max, zcdp_rho
from ..errors import PolicyError, QueryError
from ..models.features import category_index
from ..models.noise import Calibration, Measurement, calibrate
from ..protections import DP

__all__ = ["Column", "MSTPlan", "column_of", "MAX_ROWS"]

#: the most synthetic rows one release may ask for
MAX_ROWS = 10_000_000
_IPF_ROUNDS = 20


@dataclass(frozen=True)
class Column:
    """A column's public domain: categories (keys, then missing) or numeric bins."""

    name: str
    kind: str  # "categorical" | "numeric"
    keys: tuple[Any, ...] = ()
    edges: tuple[float, ...] = ()  # numeric: bin edges (len = bins + 1)
    integer: bool = False

    @property
    def size(self) -> int:
        return (len(self.keys) if self.kind == "categorical" else len(self.edges) - 1) + 1

    def index(self, values: pd.Series) -> np.ndarray:
        """Domain index per value; the last index is missing / outside the keys."""
        if self.kind == "categorical":
            from ..models.features import Feature

            idx = category_index(Feature(self.name, "categorical", keys=self.keys), values)
            idx[idx < 0] = self.size - 1
            return idx
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        lo, hi = self.edges[0], self.edges[-1]
        nb = len(self.edges) - 1
        b = np.searchsorted(np.asarray(self.edges[1:-1]), np.clip(x, lo, hi), side="right")
        return np.where(np.isnan(x), nb, b).astype(np.int64)

    def values(self, idx: np.ndarray, rng: np.random.Generator) -> pd.Series:
        if self.kind == "categorical":
            labels = np.asarray(list(self.keys) + [None], dtype=object)
            return pd.Series(labels[idx], dtype=object)
        nb = len(self.edges) - 1
        edges = np.asarray(self.edges)
        missing = idx >= nb
        i = np.minimum(idx, nb - 1)
        lo, hi = edges[i], edges[i + 1]
        if self.integer:
            v = np.floor(lo + rng.random(len(idx)) * (hi - lo)).astype(np.float64)
            v = np.clip(v, np.ceil(lo), np.maximum(np.ceil(hi) - 1, np.ceil(lo)))
            s = pd.Series(v).astype("Int64")
        else:
            s = pd.Series(lo + rng.random(len(idx)) * (hi - lo))
        s[missing] = pd.NA if self.integer else np.nan
        return s

    def label(self, i: int) -> str:
        if i == self.size - 1:
            return "missing"
        if self.kind == "categorical":
            return str(self.keys[i])
        return f"[{self.edges[i]:g}, {self.edges[i + 1]:g})"


def column_of(policy: Any, schema: dict[str, str], name: str, bins: int) -> Column:
    cp = policy.columns[name]
    if cp.keys is not None:
        return Column(name, "categorical", keys=tuple(cp.keys))
    if cp.bounds is not None and schema.get(name) in ("int", "float"):
        lo, hi = float(cp.bounds[0]), float(cp.bounds[1])
        integer = schema.get(name) == "int"
        if integer and hi - lo + 1 <= bins:
            edges = tuple(float(v) for v in np.arange(math.ceil(lo), math.floor(hi) + 2))
        else:
            edges = tuple(float(v) for v in np.linspace(lo, hi, bins + 1))
            if integer:  # the last bin holds hi itself
                edges = edges[:-1] + (hi + 1.0,)
        return Column(name, "numeric", edges=edges, integer=integer)
    raise PolicyError(
        f"column {name!r} has no keys (categories) or bounds (a numeric column) in the "
        "policy, which synthetic data takes its domain from; the holder can add them, or "
        "leave the column out", rule="synthetic_domain", column=name)


class MSTPlan:
    """MST compiled against the policy: the domain, the budget split and the scales."""

    def __init__(self, columns: tuple[Column, ...], protection: DP, rows: int | None,
                 rows_per_person: int) -> None:
        self.columns = columns
        self.protection = protection
        self.rows = rows
        self.m = m = rows_per_person
        d = len(columns)
        self.d = d
        self.select_rounds = d - 1 if d > 2 else 0
        meas = [Measurement("one_way", d * m, d * m * m)]
        if d >= 2:
            meas.append(Measurement("pairs", (d - 1) * m, (d - 1) * m * m))
        parts = len(meas) + (1 if self.select_rounds else 0)
        self.cal: Calibration = calibrate(protection, meas, total_share=len(meas) / parts)
        self.cost: Cost = self.cal.cost
        self.zdelta = self.cal.zdelta
        self.select_epsilon = 0.0
        if self.select_rounds:
            if self.cal.gaussian:
                rho = zcdp_rho(protection.epsilon, protection.delta)
                self.select_epsilon = math.sqrt(2.0 * rho / parts / self.select_rounds)
            else:
                self.select_epsilon = protection.epsilon / parts / self.select_rounds
            self.selector, self.select_scale = noisy_max(m, self.select_epsilon)

    # -- what explain says -----------------------------------------------------------
    def scales(self) -> dict[str, float]:
        out = dict(self.cal.scales)
        if self.select_rounds:
            out["select"] = self.select_scale
        return out

    def details(self) -> pd.DataFrame:
        rows = [{"step": "one_way", "marginals": self.d,
                 "cells": sum(c.size for c in self.columns), "noise": self.cal.kind,
                 "scale": self.cal.scales["one_way"], "std": self.cal.std("one_way")}]
        if self.select_rounds:
            rows.append({"step": "select", "marginals": self.select_rounds, "cells": None,
                         "noise": "report noisy max", "scale": self.select_scale,
                         "std": None})
        if self.d >= 2:
            rows.append({"step": "pairs", "marginals": self.d - 1, "cells": None,
                         "noise": self.cal.kind, "scale": self.cal.scales["pairs"],
                         "std": self.cal.std("pairs")})
        return pd.DataFrame(rows)

    # -- inside the holder's domain ----------------------------------------------------
    def run(self, frame: pd.DataFrame) -> "Synthesis":
        cols = self.columns
        idx = np.column_stack([c.index(frame[c.name]) for c in cols]) if len(frame) else \
            np.zeros((0, len(cols)), dtype=np.int64)
        del frame
        one_exact = np.concatenate([np.bincount(idx[:, i], minlength=c.size) for i, c in enumerate(cols)])
        one = self.cal.noisy("one_way", one_exact).astype(np.float64)
        del one_exact
        one_way, at = [], 0
        for c in cols:
            one_way.append(one[at:at + c.size])
            at += c.size
        n_hat = max(float(np.mean([v.sum() for v in one_way])), 1.0)
        edges = self._select(idx, one_way, n_hat)
        pairs: list[np.ndarray] = []
        if edges:
            exact = np.concatenate([self._pair(idx, i, j).ravel() for i, j in edges])
            noisy = self.cal.noisy("pairs", exact).astype(np.float64)
            del exact
            at = 0
            for i, j in edges:
                size = cols[i].size * cols[j].size
                pairs.append(noisy[at:at + size].reshape(cols[i].size, cols[j].size))
                at += size
        del idx
        return Synthesis(self, one_way, edges, pairs, n_hat)

    def _pair(self, idx: np.ndarray, i: int, j: int) -> np.ndarray:
        a, b = self.columns[i].size, self.columns[j].size
        return np.bincount(idx[:, i] * b + idx[:, j], minlength=a * b).reshape(a, b)

    def _select(self, idx: np.ndarray, one_way: list[np.ndarray], n_hat: float) -> list[tuple[int, int]]:
        d = self.d
        if d < 2:
            return []
        if d == 2:
            return [(0, 1)]
        probs = [np.clip(v, 0, None) / max(np.clip(v, 0, None).sum(), 1.0) for v in one_way]
        scores = {}
        for i in range(d):
            for j in range(i + 1, d):
                est = np.rint(np.outer(probs[i], probs[j]) * n_hat).astype(np.int64)
                scores[(i, j)] = int(np.abs(self._pair(idx, i, j) - est).sum())
        comp = list(range(d))

        def find(a: int) -> int:
            while comp[a] != a:
                comp[a] = comp[comp[a]]
                a = comp[a]
            return a

        chosen: list[tuple[int, int]] = []
        for _ in range(d - 1):
            cands = [e for e in scores if find(e[0]) != find(e[1])]
            k = int(self.selector([scores[e] for e in cands]))
            e = cands[k]
            chosen.append(e)
            comp[find(e[0])] = find(e[1])
        return chosen


class Synthesis:
    """The released noisy marginals and the tree fitted to them (all post-processing)."""

    def __init__(self, plan: MSTPlan, one_way: list[np.ndarray], edges: list[tuple[int, int]],
                 pairs: list[np.ndarray], n_hat: float) -> None:
        self.plan, self.one_way, self.edges, self.pairs, self.n_hat = plan, one_way, edges, pairs, n_hat
        self._fit()

    def _fit(self) -> None:
        cal, cols = self.plan.cal, self.plan.columns
        v1 = cal.std("one_way") ** 2
        v2 = cal.std("pairs") ** 2 if self.edges else 1.0
        node = []
        for i, c in enumerate(cols):
            num = self.one_way[i] / v1
            den = np.full(c.size, 1.0 / v1)
            for (a, b), t in zip(self.edges, self.pairs):
                if i == a:
                    num += t.sum(axis=1) / (v2 * cols[b].size)
                    den += 1.0 / (v2 * cols[b].size)
                elif i == b:
                    num += t.sum(axis=0) / (v2 * cols[a].size)
                    den += 1.0 / (v2 * cols[a].size)
            p = np.clip(num / den, 0.0, None)
            node.append(p / p.sum() if p.sum() > 0 else np.full(c.size, 1.0 / c.size))
        self.node = node
        self.tables = []
        for (a, b), t in zip(self.edges, self.pairs):
            p = np.clip(t, 0.0, None) + 1e-12
            p = p / p.sum()
            for _ in range(_IPF_ROUNDS):
                p *= (node[a] / np.maximum(p.sum(axis=1), 1e-300))[:, None]
                p *= (node[b] / np.maximum(p.sum(axis=0), 1e-300))[None, :]
            self.tables.append(p)

    def sample(self, rows: int) -> pd.DataFrame:
        cols = self.plan.columns
        rng = np.random.default_rng(secrets.randbits(128))  # post-processing, not privacy noise
        out = np.zeros((rows, len(cols)), dtype=np.int64)
        adj: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(len(cols))}
        for (a, b), t in zip(self.edges, self.tables):
            adj[a].append((b, t))
            adj[b].append((a, t.T))
        done = [False] * len(cols)
        for root in range(len(cols)):
            if done[root]:
                continue
            out[:, root] = _draw(rng, np.tile(self.node[root], (1, 1)), np.zeros(rows, dtype=np.int64))
            done[root] = True
            stack = [root]
            while stack:
                u = stack.pop()
                for v, t in adj[u]:
                    if not done[v]:
                        cond = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-300)
                        out[:, v] = _draw(rng, cond, out[:, u])
                        done[v] = True
                        stack.append(v)
        return pd.DataFrame({c.name: c.values(out[:, i], rng) for i, c in enumerate(cols)})

    def error(self) -> pd.DataFrame:
        """Per measured marginal: its cells, the noise's standard deviation per cell and
        the expected total-variation error of the noisy marginal before post-processing,
        E Σ|noise| / (2 n̂), n̂ the noisy row count (all computed from released values)."""
        cal, cols = self.plan.cal, self.plan.columns
        mean_abs = {k: (cal.std(k) * math.sqrt(2 / math.pi) if cal.gaussian else cal.scales[k])
                    for k in cal.scales}
        rows = [{"marginal": c.name, "cells": c.size, "noise_std": cal.std("one_way"),
                 "expected_tv": min(1.0, c.size * mean_abs["one_way"] / (2 * self.n_hat))}
                for c in cols]
        for a, b in self.edges:
            cells = cols[a].size * cols[b].size
            rows.append({"marginal": f"{cols[a].name} × {cols[b].name}", "cells": cells,
                         "noise_std": cal.std("pairs"),
                         "expected_tv": min(1.0, cells * mean_abs["pairs"] / (2 * self.n_hat))})
        return pd.DataFrame(rows)


def _draw(rng: np.random.Generator, cond: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """One value per row from the row ``parent[r]`` of the conditional table ``cond``."""
    cdf = np.cumsum(cond, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(len(parent))
    return np.minimum((cdf[parent] < u[:, None]).sum(axis=1), cond.shape[1] - 1)


def check_rows(rows: Any) -> int | None:
    if rows is None:
        return None
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_ROWS:
        raise QueryError(f"rows must be an integer from 1 to {MAX_ROWS:,}, got {rows!r:.40}")
    return rows


def check_bins(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 1000:
        raise QueryError(f"bins must be an integer from 2 to 1000, got {bins!r:.40}")
    return bins
