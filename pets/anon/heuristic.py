"""Heuristic full-domain search for lattices too large to enumerate (15+ quasi-identifiers).

:func:`heuristic_full_domain` returns the best transformation it finds within a time
limit and a *lower bound* of the optimum's value, so the distance to the optimum is
known (``result.gap``). Two searches share the time and the evaluations:

- **Top-down descent with restarts** (in the spirit of ARX's top-down heuristic): start
  at the top of the lattice (every QI fully generalised, the transformation most likely
  to satisfy the models), repeatedly move to the best satisfying child (one QI one level
  lower) while it improves the objective; when none does, try moves that lower one QI
  and raise another. Then restart from a perturbation of the best node (a few QIs raised
  at random) until the time is up.
- **Best-first bound search** from the bottom of the lattice, in increasing order of the
  separable lower bound the exhaustive search uses (:meth:`_Search.lower_bounds`). The
  lattice is walked as a tree (a node's parent lowers its last raised QI) from the
  lowest node not known to fail (each QI at the lowest level at which it passes with
  every other QI fully generalised), so every node
  not yet examined lies above a node in the queue, whose bound is no larger. Hence
  ``min(best value found, smallest bound in the queue)`` is a lower bound of the
  optimum; nodes below a node known to fail a suppression-monotone model fail too and
  are not evaluated. When the queue's smallest bound reaches the best value, the best
  node is proven optimal (``gap`` 0).

The result depends on the time limit (and, through the restarts, on ``seed``): the same
call may return a better node on a faster machine. The privacy guarantee does not
depend on it — every returned node satisfies the models like the exhaustive search's.

**A node budget instead of a time limit** (``max_nodes``): the same request run twice
must not return two different transformations of the same rows (two different
k-anonymous generalisations of the same people can be intersected), so governed
extracts bound every phase by a number of lattice nodes evaluated, never by the clock:
the result is then a deterministic function of the rows, the request and the seed.
"""

from __future__ import annotations

import heapq
import math
import time
from typing import Any, Sequence

import numpy as np

from ..errors import QueryError
from .lattice import SearchResult, _describe, _Search, refuse_if_impossible
from .models import PrivacyModel

__all__ = ["AUTO_THRESHOLD", "DEFAULT_MAX_NODES", "heuristic_full_domain"]

#: ``search="auto"`` searches heuristically above this many lattice nodes
AUTO_THRESHOLD = 500_000
#: the node budget of a governed heuristic search unless the policy or the analyst says
DEFAULT_MAX_NODES = 5_000


class _Stop(Exception):
    """The node budget is spent (raised by :meth:`_Heuristic.look` for node ``lv``)."""

    def __init__(self, lv: tuple[int, ...]) -> None:
        self.lv = lv


class _Heuristic:
    """The searches' moves, stopped by a clock, or (``max_nodes``) by the number of
    nodes evaluated."""

    def __init__(self, s: _Search, time_limit: float, seed: int, max_nodes: int | None = None) -> None:
        self.s = s
        self.deadline = time.perf_counter() + time_limit
        self.max_nodes = max_nodes
        self.stop_at = max_nodes  # the node count at which the current phase stops
        self.rng = np.random.default_rng(seed)  # restarts only: no privacy role
        self.cache: dict[tuple[int, ...], tuple[bool, Any]] = {}
        self.failed: list[tuple[int, ...]] = []  # nodes failing a suppression-monotone model
        self._failed_arr: np.ndarray | None = None
        self.best_v: Any = None
        self.best_lv: tuple[int, ...] | None = None
        self.caps = s.caps
        self.floor = [0] * s.d  # every satisfying node has lv[j] >= floor[j]

    def out_of_time(self) -> bool:
        if self.stop_at is not None:
            return len(self.cache) >= self.stop_at
        return time.perf_counter() >= self.deadline

    # -- one node ----------------------------------------------------------------------

    def known_infeasible(self, lv: tuple[int, ...]) -> bool:
        if not self.failed:
            return False
        if self._failed_arr is None or len(self._failed_arr) != len(self.failed):
            self._failed_arr = np.asarray(self.failed, dtype=np.int64)
        return bool((self._failed_arr >= np.asarray(lv)).all(axis=1).any())

    def look(self, lv: tuple[int, ...]) -> tuple[bool, Any]:
        """(satisfies the models, objective value) of a node, evaluated once."""
        hit = self.cache.get(lv)
        if hit is not None:
            return hit
        if self.stop_at is not None and len(self.cache) >= self.stop_at:
            raise _Stop(lv)
        s = self.s
        if self.known_infeasible(lv):
            out: tuple[bool, Any] = (False, None)
        else:
            ev = s.evaluate(lv)
            if ev.s_lb > s.limit or (ev.s > s.limit and s.limit == 0 and s.all_monotone):
                self.failed.append(lv)
                out = (False, None)
            elif ev.s > s.limit:
                out = (False, None)
            else:
                out = (True, s.value(lv, ev))
                self.offer(lv, out[1])
        self.cache[lv] = out
        return out

    def better(self, v: Any, lv: tuple[int, ...], w: Any, lw: tuple[int, ...] | None) -> bool:
        if lw is None:
            return True
        c = self.s.cmp(v, w)
        return c < 0 or (c == 0 and (sum(lv), lv) < (sum(lw), lw))

    def offer(self, lv: tuple[int, ...], v: Any) -> None:
        if self.better(v, lv, self.best_v, self.best_lv):
            self.best_v, self.best_lv = v, lv

    # -- top-down descent ----------------------------------------------------------------

    def descend(self, start: tuple[int, ...], randomised: bool = False) -> None:
        """Greedy descent; ``randomised`` moves to a random one of the improving children
        (weighted towards the best) instead of the best."""
        ok, cur_v = self.look(start)
        if not ok:
            return
        cur = start
        d = len(cur)
        while not self.out_of_time():
            best_move: tuple[tuple[int, ...], Any] | None = None
            improving: list[tuple[tuple[int, ...], Any]] = []
            for j in range(d):
                if cur[j] == 0:
                    continue
                nb = cur[:j] + (cur[j] - 1,) + cur[j + 1:]
                ok, v = self.look(nb)
                if ok and self.better(v, nb, cur_v, cur):
                    improving.append((nb, v))
                if ok and self.better(v, nb, cur_v if best_move is None else best_move[1],
                                      cur if best_move is None else best_move[0]):
                    best_move = (nb, v)
                if self.out_of_time():
                    break
            if randomised and len(improving) > 1:
                improving.sort(key=lambda m: self.s.first(m[1]))
                pick = min(int(self.rng.geometric(0.5)) - 1, len(improving) - 1)
                best_move = improving[pick]
            if best_move is None:  # lower one QI, raise another: the first that improves
                pairs = [(j, i) for j in range(d) if cur[j] > 0 for i in range(d)
                         if i != j and cur[i] < self.caps[i]]
                for p in self.rng.permutation(len(pairs)).tolist():
                    j, i = pairs[p]
                    nb = list(cur)
                    nb[j] -= 1
                    nb[i] += 1
                    t = tuple(nb)
                    ok, v = self.look(t)
                    if ok and self.better(v, t, cur_v, cur):
                        best_move = (t, v)
                        break
                    if self.out_of_time():
                        break
            if best_move is None:
                return
            cur, cur_v = best_move

    def perturb(self, lv: tuple[int, ...]) -> tuple[int, ...]:
        d = len(lv)
        out = list(lv)
        for j in self.rng.choice(d, size=min(d, int(self.rng.integers(1, max(3, d // 3) + 1))), replace=False):
            out[j] = min(self.caps[j], out[j] + int(self.rng.integers(1, 3)))
        return tuple(out)

    # -- best-first bound ------------------------------------------------------------------

    def bound_search(self, heap: list, budget: float) -> None:
        """Pop nodes in increasing bound order for ``budget`` seconds (with ``max_nodes``:
        for ``budget`` more nodes evaluated; the node popped but not evaluated when they
        are spent goes back with its own bound)."""
        if self.max_nodes is None:
            self._bound_search(heap, budget)
            return
        self.stop_at = min(self.max_nodes, len(self.cache) + int(budget))
        try:
            self._bound_search(heap, float("inf"))
        except _Stop as e:
            heapq.heappush(heap, (float(self.s.lower_bounds(np.asarray([e.lv], dtype=np.int64))[0]), e.lv))
        finally:
            self.stop_at = self.max_nodes

    def _bound_search(self, heap: list, budget_s: float) -> None:
        s = self.s
        stop = min(self.deadline, time.perf_counter() + budget_s)
        d = s.d
        while heap and time.perf_counter() < stop:
            b, lv = heap[0]
            if self.best_lv is not None:
                bf = s.first(self.best_v)
                if b > bf + s.tol_rel * max(1.0, abs(bf)) or (not s.rank and s.cmp(b, bf) == 0):
                    return  # every node left is no better than the best: optimal
            heapq.heappop(heap)
            ok, v = self.look(lv)
            if ok and not s.rank and s.cmp(v, b) <= 0:
                continue  # its value is its bound: nothing above it does better
            last = max((j for j in range(d) if lv[j] > self.floor[j]), default=0)
            children = [lv[:j] + (lv[j] + 1,) + lv[j + 1:] for j in range(last, d) if lv[j] < self.caps[j]]
            if children:
                bs = s.lower_bounds(np.asarray(children, dtype=np.int64))
                for cb, c in zip(bs.tolist(), children):
                    heapq.heappush(heap, (max(cb, b), c))

    def lower_bound(self, heap: list) -> float:
        s = self.s
        bf = s.first(self.best_v)
        if not heap:
            return bf
        return min(bf, float(heap[0][0]))


def heuristic_full_domain(
    qis: list[Any],
    models: list[PrivacyModel],
    max_suppression: float = 0.0,
    metric: str = "loss",
    max_levels: list[int] | None = None,
    *,
    gs_factor: float = 0.5,
    aggregation: str | None = None,
    time_limit: float = 10.0,
    seed: int = 0,
    max_nodes: int | None = None,
) -> SearchResult:
    """A good full-domain generalisation found within ``time_limit`` seconds (or, with
    ``max_nodes``, within that many lattice nodes evaluated: a result that does not depend
    on the machine's speed; ``time_limit`` is then not used), and a lower bound of the
    optimum (``result.lower_bound``, ``result.gap``). Arguments as
    :func:`~pets.anon.lattice.optimal_full_domain`; no limit on the lattice's size.
    ``search`` of the result is "heuristic" (``gap`` 0 when the bound search proved the
    node optimal). Raises :class:`~pets.errors.QueryError` when no transformation was
    found that satisfies the models.
    """
    if max_nodes is not None:
        if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
            raise QueryError(f"max_nodes must be an integer >= 1, got {max_nodes!r}")
        max_nodes = int(max_nodes)
    elif isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise QueryError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    t0 = time.perf_counter()
    s = _Search(qis, models, max_suppression, metric, max_levels, gs_factor, aggregation, max_nodes=None)
    refuse_if_impossible(s, models)  # as the exhaustive search: no time spent on it
    if max_nodes is None:
        # 5% of the time is kept for the result's metrics, so the call returns within it
        h = _Heuristic(s, max(0.0, 0.95 * float(time_limit) - (time.perf_counter() - t0)), int(seed))
    else:
        h = _Heuristic(s, math.inf, int(seed), max_nodes)
    top = tuple(s.caps)
    # per QI, the lowest level at which it can be with every other QI at the top: below
    # it the node is under a node failing a suppression-monotone model, hence fails
    try:
        for j in range(s.d):
            for lev in range(s.caps[j] + 1):
                lv = top[:j] + (lev,) + top[j + 1:]
                h.look(lv)
                if not h.known_infeasible(lv) or (max_nodes is None and h.out_of_time()):
                    h.floor[j] = lev
                    break
    except _Stop:
        pass  # the floors found so far are valid; the others stay 0
    bottom = tuple(h.floor)
    heap: list = [(float(s.lower_bounds(np.asarray([bottom], dtype=np.int64))[0]), bottom)]
    try:
        ok, _v = h.look(top)
        if ok:
            h.descend(top)
        else:
            # the top fails: with suppression-monotone models nothing satisfies them
            h.bound_search(heap, float(time_limit) / 2 if max_nodes is None else max_nodes)
        step = max(0.05, float(time_limit) / 20) if max_nodes is None else max(1, max_nodes // 20)
        restarts = 0
        while not h.out_of_time() and h.best_lv is not None:
            h.bound_search(heap, step)
            if heap and h.s.cmp(heap[0][0], s.first(h.best_v)) >= 0:
                heap.clear()
            if not heap or h.out_of_time():
                break  # proven optimal, or out of time / nodes
            restarts += 1
            if restarts % 4 == 0:
                h.descend(top, randomised=True)
            else:
                h.descend(h.perturb(h.best_lv))
    except _Stop:
        pass
    if max_nodes is None:
        return _result(h, heap, models, t0, f"in {time_limit:g} s", "or give more time")
    return _result(h, heap, models, t0, f"within {max_nodes:,} nodes", "or a larger max_nodes")


def _result(h: "_Heuristic", heap: list, models: list[PrivacyModel], t0: float, within: str,
            more: str) -> SearchResult:
    """The best node found with the lower bound left in ``heap`` (proven optimal when the
    heap is empty), or the refusal saying what limited the search (``within``) and what
    to give it (``more``)."""
    s = h.s
    if h.best_lv is None:
        raise QueryError(
            f"no transformation found that satisfies {_describe(models)} with at most {s.limit:,} of "
            f"{s.n:,} rows suppressed (max_suppression={s.max_suppression:g}) {within}; "
            f"allow (more) suppression, lower k (or l, or raise t), {more}"
        )
    lb = h.lower_bound(heap)
    res = s.result(h.best_lv, t0, lower_bound=lb, search="heuristic")
    if not heap:
        res.search = "heuristic (proven optimal)"
        res.lower_bound = res.value
    return res
