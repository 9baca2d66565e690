"""The heuristic search with a *node budget* instead of a time limit.

:func:`pets.anon.heuristic.heuristic_full_domain` stops after ``time_limit`` seconds, so
its result depends on the machine's speed and load: the same request run twice can
return two different transformations of the same rows, and two different k-anonymous
generalisations of the same people can be intersected. Governed extracts therefore use
:func:`budgeted_full_domain`: the same two searches (top-down descent with seeded
restarts, best-first bound search) with every phase bounded by a number of lattice
nodes evaluated, never by the clock. Its result is a deterministic function of the rows,
the request and the seed.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

import numpy as np

from ..errors import QueryError
from .heuristic import _Heuristic, _result
from .lattice import SearchResult, _Search, refuse_if_impossible
from .models import PrivacyModel

__all__ = ["budgeted_full_domain", "DEFAULT_MAX_NODES"]

#: the node budget of a governed heuristic search unless the policy or the analyst says
DEFAULT_MAX_NODES = 5_000


class _Stop(Exception):
    def __init__(self, lv: tuple[int, ...]) -> None:
        self.lv = lv


class _Budgeted(_Heuristic):
    """The heuristic's moves; its clock replaced by a count of evaluated nodes."""

    def __init__(self, s: _Search, max_nodes: int, seed: int) -> None:
        super().__init__(s, float("inf"), seed)
        self.max_nodes = max_nodes
        self.stop_at = max_nodes

    def out_of_time(self) -> bool:
        return len(self.cache) >= self.stop_at

    def look(self, lv: tuple[int, ...]) -> tuple[bool, Any]:
        if lv not in self.cache and len(self.cache) >= self.stop_at:
            raise _Stop(lv)
        return super().look(lv)

    def bound_search(self, heap: list, budget_nodes: float) -> None:  # type: ignore[override]
        self.stop_at = min(self.max_nodes, len(self.cache) + int(budget_nodes))
        try:
            super().bound_search(heap, float("inf"))
        except _Stop as e:  # the node popped but not evaluated goes back (its own bound)
            heapq.heappush(heap, (float(self.s.lower_bounds(np.asarray([e.lv], dtype=np.int64))[0]), e.lv))
        finally:
            self.stop_at = self.max_nodes


def budgeted_full_domain(
    qis: list[Any],
    models: list[PrivacyModel],
    max_suppression: float = 0.0,
    metric: str = "loss",
    max_levels: list[int] | None = None,
    *,
    gs_factor: float = 0.5,
    aggregation: str | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    seed: int = 0,
) -> SearchResult:
    """As :func:`~pets.anon.heuristic.heuristic_full_domain`, evaluating at most
    ``max_nodes`` lattice nodes (a deterministic budget) instead of running for a time."""
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
        raise QueryError(f"max_nodes must be an integer >= 1, got {max_nodes!r}")
    t0 = time.perf_counter()
    s = _Search(qis, models, max_suppression, metric, max_levels, gs_factor, aggregation, max_nodes=None)
    refuse_if_impossible(s, models)
    h = _Budgeted(s, int(max_nodes), int(seed))
    top = tuple(s.caps)
    heap: list = []
    try:
        for j in range(s.d):
            for lev in range(s.caps[j] + 1):
                lv = top[:j] + (lev,) + top[j + 1:]
                h.look(lv)
                if not h.known_infeasible(lv):
                    h.floor[j] = lev
                    break
    except _Stop:
        pass  # the floors found so far are valid; the others stay 0
    bottom = tuple(h.floor)
    heap.append((float(s.lower_bounds(np.asarray([bottom], dtype=np.int64))[0]), bottom))
    try:
        ok, _v = h.look(top)
        if ok:
            h.descend(top)
        else:
            h.bound_search(heap, max_nodes)
        slice_n = max(1, int(max_nodes) // 20)
        restarts = 0
        while not h.out_of_time() and h.best_lv is not None:
            h.bound_search(heap, slice_n)
            if heap and h.s.cmp(heap[0][0], s.first(h.best_v)) >= 0:
                heap.clear()
            if not heap or h.out_of_time():
                break
            restarts += 1
            if restarts % 4 == 0:
                h.descend(top, randomised=True)
            else:
                h.descend(h.perturb(h.best_lv))
    except _Stop:
        pass
    return _result(h, heap, models, t0, f"within {int(max_nodes):,} nodes", "or a larger max_nodes")
