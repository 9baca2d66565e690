"""Optimal full-domain generalisation: search the lattice of generalisation levels.

A *transformation* gives every quasi-identifier (QI) j one level h_j of its hierarchy;
the lattice holds ∏ (height_j + 1) of them (12,960 for the Adult benchmark). A
transformation *satisfies* the privacy models when the rows of the equivalence classes
failing any model are at most ``floor(max_suppression · n)``; those rows are suppressed.
:func:`optimal_full_domain` returns the satisfying transformation of least metric value
(ties: lower total height, then lexicographically smaller levels) — the true optimum,
not a heuristic.

How it is fast (everything vectorised, nothing loops over rows):

- The table is reduced once to its *distinct QI tuples* with their counts; a node's
  classes are a ``pandas.factorize`` of a mixed-radix int64 key over the tuples (each
  QI's level-h code is a gather through ``gen[:, h]``, pre-multiplied by its radix), and
  class sizes a weighted ``bincount``. Sensitive models see row-level class ids mapped
  back through the tuple index (distinct l-diversity sees one row per distinct
  (tuple, sensitive value) — counts do not matter to it).
- *Refinement (class-size models only: k-anonymity, estimated k-map).* A node's classes
  are also the classes of an evaluated node above it split by the labels of the QIs
  where that node is higher; when the split keys number at most about 2 × the distinct
  tuples, they are counted densely (a ``bincount``, no hashing), and a node whose
  failing rows exceed the limit stops at that count. The evaluated nodes' classes are
  kept for this up to :data:`_BASE_BYTES`; a parent is preferred. Otherwise the key is
  the sum of per-group keys (groups of QIs whose summed keys are kept per level
  combination) and the classes come from pandas' hash table.
- *Feasibility pruning (exact).* For k-anonymity and distinct l-diversity a class
  containing a passing class passes, so the rows they suppress can only shrink when
  generalising: a node whose rows failing them exceed the limit fails with every node
  below it. Without suppression all models are monotone (merging passing classes gives
  a passing class), so any failing node prunes its down-set. Entropy / recursive
  l-diversity and t-closeness with suppression are not monotone in the suppressed
  count; they only prune a node by itself (k-anonymity alongside them still prunes) —
  and by a count: t-closeness and entropy l-diversity give, for each class failing them,
  how many of its rows every refinement must leave in failing classes
  (:meth:`~pets.anon.models.TCloseness.refine_bound`, from convexity of the EMD /
  concavity of entropy); when those rows exceed the limit the down-set is pruned. Both
  are checked on the class × value count matrix of the distinct (tuple, value) pairs.
- *Bound pruning (exact).* Each node has a lower bound of its metric: for Loss and
  Precision the value with no suppression (separable per QI, non-decreasing in every
  level, and suppression only adds to it); for discernibility max(k·n, n²/#classes at
  most); for AECS (n − limit)/(#classes at most · k). An evaluated node M also lifts the
  bound of every node N below it: N suppresses at least M's rows failing the monotone
  models, each costing at least what it costs at M. For the class-count metrics an
  evaluated node bounds the nodes below it by how far its classes can split
  (:meth:`_Search.split_bound`), pushed to its children and on below the ones it rules
  out. Nodes whose bound cannot beat the best transformation found are never evaluated.
- *Order.* Nodes are visited from the top of the lattice down (by total height), so an
  infeasible node prunes a large down-set and feasible nodes give good solutions and
  bounds early; within a height by increasing bound (by decreasing bound when the bound
  is the exact value, i.e. Loss / Precision without suppression).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import QueryError
from . import metrics as _metrics
from .models import (
    DistinctLDiversity,
    EntropyLDiversity,
    KAnonymity,
    KMap,
    PrivacyModel,
    RecursiveCLDiversity,
    TCloseness,
)

__all__ = ["MAX_NODES", "METRICS", "SearchResult", "optimal_full_domain"]

#: metrics the search can minimise
METRICS = _metrics.OBJECTIVES
#: the largest lattice searched (∏ (height_j + 1)); use ``max_levels`` or fewer QIs above
MAX_NODES = 2_000_000

_INT_LIMIT = 1 << 62
#: classes of the evaluated nodes kept for bounds below skipped nodes, at most (memory)
_ORIGIN_CLASSES = 2_000_000
#: … and their labels kept, at most (classes × QIs; int32)
_ORIGIN_LABELS = 4_000_000
#: the largest class × sensitive-value count matrix built per node (else row-level checks)
_DENSE_LIMIT = 20_000_000
#: memory kept for the summed class keys of groups of QIs (classes), at most (bytes)
_GROUP_KEY_BYTES = 16 << 20
#: at most this many level combinations per group of QIs whose keys are summed once
_GROUP_COMBOS = 256
#: memory kept for the classes of evaluated nodes that nodes below refine (bytes)
_BASE_BYTES = 32 << 20

def _private_hash_table() -> Any:
    """pandas' hash table without pd.factorize's checks of the input (int64 keys only), if
    this pandas has it and it agrees with pd.factorize on a probe (a private API: a
    pandas that changed it falls back to pd.factorize instead of failing)."""
    try:
        from pandas._libs.hashtable import Int64HashTable

        probe = np.array([7, -1, 7, 3, 2**40], dtype=np.int64)
        uniq, codes = Int64HashTable(len(probe)).factorize(probe)
        want_codes, want_uniq = pd.factorize(probe)
        if np.array_equal(codes, want_codes) and np.array_equal(uniq, want_uniq):
            return Int64HashTable
    except Exception:  # pragma: no cover - depends on the pandas version
        pass
    return None  # pragma: no cover


_Int64HashTable = _private_hash_table()


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of an int64 array: (codes in order of first appearance, uniques)."""
    if _Int64HashTable is not None:
        uniq, codes = _Int64HashTable(len(key)).factorize(key)
        return codes, uniq
    codes, uniq = pd.factorize(key)
    return np.asarray(codes), np.asarray(uniq)


def _key_groups(sizes: Sequence[int], max_combos: int) -> list[list[int]]:
    """Consecutive QIs grouped so that each group has at most ``max_combos`` level
    combinations (∏ of its QIs' level counts; a QI with more stays alone): the class key
    of a node is the sum of one summed key per group (:meth:`_Search.classes`)."""
    groups: list[list[int]] = []
    cur: list[int] = []
    combos = 1
    for j, m in enumerate(sizes):
        if cur and combos * m > max_combos:
            groups.append(cur)
            cur, combos = [], 1
        cur.append(j)
        combos *= m
    if cur:
        groups.append(cur)
    return groups


@dataclass
class SearchResult:
    """The optimal transformation and what it releases.

    ``levels`` the generalisation level of each QI (in the order given); ``suppressed``
    which rows are removed; ``class_ids`` the class of each row (−1 for suppressed
    rows), classes 0 … ``n_classes`` − 1 among the kept rows; ``metric`` / ``value`` the
    minimised metric (for rank aggregation: its largest per-QI value), ``per_qi`` its
    per-QI values (per-QI metrics), ``gs_factor`` / ``aggregation`` the objective's
    options; ``metrics`` all metrics of the result at gs-factor 0.5 and ARX's default
    aggregations (loss, precision, discernibility, aecs, entropy, monotonic_precision,
    height, dm*, arx_aecs, suppressed rows, min and average class size); ``search``
    "optimal" or "heuristic", ``lower_bound`` a lower bound of the optimum's value
    (heuristic) and ``gap`` the relative distance to it;
    ``nodes_checked`` how many lattice nodes were evaluated of ``nodes_total``.
    """

    levels: tuple[int, ...]
    suppressed: np.ndarray
    class_ids: np.ndarray
    n_classes: int
    metric: str
    value: float
    metrics: dict[str, float] = field(default_factory=dict)
    nodes_checked: int = 0
    nodes_total: int = 0
    seconds: float = 0.0
    gs_factor: float = 0.5
    aggregation: str | None = "geometric"
    per_qi: np.ndarray | None = None
    search: str = "optimal"
    lower_bound: float | None = None

    @property
    def gap(self) -> float:
        """Relative gap between the value found and the lower bound of the optimum
        (0 for the exhaustive search: its result is the optimum)."""
        if self.search == "optimal":
            return 0.0
        lb = self.lower_bound if self.lower_bound is not None else 0.0
        if self.value <= 0:
            return 0.0
        return max(0.0, (self.value - lb) / self.value)

    @property
    def n_suppressed(self) -> int:
        return int(np.count_nonzero(self.suppressed))


# ---------------------------------------------------------------------------------------
# helpers


def _combine(cols: Sequence[np.ndarray], radices: Sequence[int]) -> np.ndarray:
    """One int64 key per position identifying the tuple (cols[0][i], cols[1][i], …);
    re-factorises whenever the mixed radix would overflow int64."""
    key = np.asarray(cols[0], dtype=np.int64)
    r = int(radices[0])
    for c, m in zip(cols[1:], radices[1:]):
        m = int(m)
        if r * m >= _INT_LIMIT:
            codes, uniq = pd.factorize(key)
            key, r = np.asarray(codes, dtype=np.int64), max(len(uniq), 1)
        key = key * m + np.asarray(c, dtype=np.int64)
        r *= m
    return key


def _first_rows(inverse: np.ndarray, n_groups: int) -> np.ndarray:
    """Index of the first row of each group."""
    first = np.empty(n_groups, dtype=np.int64)
    rows = np.arange(len(inverse), dtype=np.int64)
    first[inverse[::-1]] = rows[::-1]
    return first


def _capped_entropy(counts: np.ndarray, remove: int) -> float:
    """The largest entropy of a multiset of the given value counts after removing at
    most ``remove`` items: lower the largest counts to a common cap (water-filling)."""
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    c = c[c > 0]
    if remove > 0 and len(c) > 1:
        # largest cap with Σ max(0, c − cap) ≤ remove
        lo, hi = 0.0, float(c[0])
        for _ in range(100):
            mid = (lo + hi) / 2
            if np.clip(c - mid, 0, None).sum() > remove:
                lo = mid
            else:
                hi = mid
        c = np.minimum(c, hi)
    c = c[c > 0]
    if c.sum() <= 0:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def _describe(models: Sequence[PrivacyModel]) -> str:
    return ", ".join(m.describe() if hasattr(m, "describe") else type(m).__name__ for m in models)


@dataclass
class _Origin:
    """An evaluated node whose classes bound the nodes below it (push_split_bounds)."""

    i: int
    lv: list[int]
    height: int
    sizes: np.ndarray
    keys: np.ndarray | None
    first: np.ndarray | None
    labels: list[np.ndarray | None]
    pre: np.ndarray | None = None  # w² or ⌊w / k⌋ per class (split_bound)
    fans: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (QI, level) → fan per class
    codes: np.ndarray | None = None  # class of each tuple (until first is known or not needed)


@dataclass
class _Eval:
    codes: np.ndarray  # class of each distinct tuple
    n_cls: int
    sizes: np.ndarray  # rows per class (float64)
    fail: np.ndarray  # bool per class: fails some model
    fail_strong: np.ndarray  # bool per class: fails a suppression-monotone model
    s: int  # rows suppressed
    s_strong: int  # rows failing the suppression-monotone models
    s_lb: int = -1  # rows every node below must suppress (≥ s_strong; -1: s_strong)
    keys: np.ndarray | None = None  # each class's mixed-radix key (labels decodable), if any

    def __post_init__(self) -> None:
        if self.s_lb < self.s_strong:
            self.s_lb = self.s_strong


class _Search:
    def __init__(
        self,
        qis: Sequence[Any],
        models: Sequence[PrivacyModel],
        max_suppression: float,
        metric: str,
        max_levels: Sequence[int] | None,
        gs_factor: float = 0.5,
        aggregation: str | None = None,
        max_nodes: int | None = MAX_NODES,
    ) -> None:
        qis = list(qis)
        models = list(models)
        if not qis:
            raise QueryError("give at least one quasi-identifier (an encoded hierarchy)")
        if not models:
            raise QueryError("give at least one privacy model (e.g. KAnonymity(k=5))")
        for m in models:
            if not isinstance(m, PrivacyModel):
                raise QueryError(f"not a privacy model: {type(m).__name__}")
        metric, gs_factor, aggregation = _metrics.check_objective(metric, gs_factor, aggregation)
        if (
            isinstance(max_suppression, bool)
            or not isinstance(max_suppression, (int, float, np.integer, np.floating))
            or not 0 <= float(max_suppression) <= 1
        ):
            raise QueryError(f"max_suppression must be a share in [0, 1], got {max_suppression!r}")
        self.qis, self.models, self.metric = qis, models, metric
        self.max_suppression = float(max_suppression)
        d = self.d = len(qis)
        n = self.n = len(qis[0].codes)
        if n == 0:
            raise QueryError("the table is empty: nothing to anonymise")
        names = [getattr(e, "name", None) or f"QI {j}" for j, e in enumerate(qis)]
        self.names = names
        heights = []
        leaf_codes = []
        for e, name in zip(qis, names):
            gen = np.asarray(e.gen)
            if gen.ndim != 2 or gen.shape[0] == 0:
                raise QueryError(f"the hierarchy of {name!r} is empty")
            codes = np.asarray(e.codes)
            if len(codes) != n:
                raise QueryError(
                    f"the quasi-identifiers have different numbers of rows ({name!r}: {len(codes)}, expected {n})"
                )
            if codes.min() < 0 or codes.max() >= gen.shape[0]:
                raise QueryError(f"{name!r} has codes outside its hierarchy's {gen.shape[0]} leaves")
            heights.append(gen.shape[1] - 1)
            leaf_codes.append(codes.astype(np.int64, copy=False))
        if max_levels is None:
            caps = list(heights)
        else:
            caps = [int(c) for c in max_levels]
            if len(caps) != d:
                raise QueryError(f"max_levels has {len(caps)} entries for {d} quasi-identifiers")
            for c, h, name in zip(caps, heights, names):
                if not 0 <= c <= h:
                    raise QueryError(f"max level {c} of {name!r} is outside 0 … {h}")
        self.heights, self.caps = heights, caps
        self.nodes_total = math.prod(c + 1 for c in caps)
        if max_nodes is not None and self.nodes_total > max_nodes:
            raise QueryError(
                f"the lattice has {self.nodes_total:,} transformations (more than {max_nodes:,}) "
                "to search exhaustively; use search='heuristic' (or 'auto'), fewer "
                "quasi-identifiers, or cap their levels with max_levels"
            )
        self.limit = math.floor(self.max_suppression * n + 1e-9)

        # -- distinct QI tuples with their counts
        key = _combine(leaf_codes, [np.asarray(e.gen).shape[0] for e in qis])
        inverse, uniq = pd.factorize(key)
        self.inverse = np.asarray(inverse, dtype=np.int64)
        nt = self.nt = len(uniq)
        self.cnt = np.bincount(self.inverse, minlength=nt).astype(np.float64)
        first = _first_rows(self.inverse, nt)
        # per QI and level: the level code of each tuple
        self.C: list[list[np.ndarray]] = []
        self.nlab: list[list[int]] = []
        for e, lc, cap in zip(qis, leaf_codes, caps):
            gen = np.asarray(e.gen)
            tl = lc[first]
            self.C.append([gen[tl, h].astype(np.int64) for h in range(cap + 1)])
            self.nlab.append([int(gen[:, h].max()) + 1 for h in range(cap + 1)])
        radix = [max(r) for r in self.nlab]
        self._radix = radix
        self.K: list[list[np.ndarray]] | None = None
        self._mult: list[int] = []
        if math.prod(radix) < _INT_LIMIT:
            mult = 1
            self.K = []
            for j in range(d):
                self.K.append([c * mult for c in self.C[j]] if mult != 1 else self.C[j])
                self._mult.append(mult)
                mult *= radix[j]
        # summed keys per group of QIs and their levels, kept up to _GROUP_KEY_BYTES
        self._groups = _key_groups([c + 1 for c in caps], _GROUP_COMBOS)
        self._gkeys: dict[tuple[int, ...], np.ndarray] = {}
        self._gkey_room = _GROUP_KEY_BYTES // max(8 * nt, 1)

        # -- models
        self.kmax = 0
        self.kstrong = 0  # k-anonymity and estimated k-map: classes smaller fail
        self.dl: list[tuple[PrivacyModel, np.ndarray, np.ndarray]] = []
        self.weighted: list[PrivacyModel] = []
        # t-closeness / entropy l-diversity, checked on the class × value count matrix
        # built from the distinct (tuple, sensitive value) pairs: (model, tuple of each
        # pair, value of each pair, rows of each pair, n_values)
        self.dense: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray, int]] = []
        self.pop_strong: list[PrivacyModel] = []  # population models monotone under suppression
        self.pop_weak: list[PrivacyModel] = []
        self.table: list[PrivacyModel] = []
        for m in models:
            if isinstance(m, KMap) and m.sample_fraction is not None:
                self.kstrong = max(self.kstrong, m.derived_k())
                continue
            if getattr(m, "uses_population", False):
                (self.pop_strong if isinstance(m, KMap) else self.pop_weak).append(m)
                continue
            if getattr(m, "table_level", False):
                self.table.append(m)
                continue
            sc = getattr(m, "codes", None)
            if sc is not None and not isinstance(m, KAnonymity):
                sc = np.asarray(sc)
                if len(sc) != n:
                    raise QueryError(
                        f"{_describe([m])}: its sensitive codes have {len(sc)} rows, the table {n}"
                    )
                nv = int(getattr(m, "n_values", 0))
                if len(sc) and sc.min() < 0:
                    raise QueryError(
                        f"{_describe([m])}: the sensitive column has missing values (negative codes); "
                        "replace them with a marker value or drop those rows"
                    )
                if len(sc) and sc.max() >= nv:
                    raise QueryError(
                        f"{_describe([m])}: its sensitive codes must be 0 … n_values − 1 "
                        f"(n_values={nv}, codes up to {int(sc.max())}); give n_values"
                    )
            if isinstance(m, KAnonymity):
                self.kmax = max(self.kmax, int(m.k))
            elif isinstance(m, DistinctLDiversity):
                nv = max(int(m.n_values), 1)
                pk = self.inverse * nv + np.asarray(m.codes, dtype=np.int64)
                pinv, puniq = pd.factorize(pk)
                prow = _first_rows(np.asarray(pinv, dtype=np.int64), len(puniq))
                self.dl.append((m, self.inverse[prow], prow))
            elif isinstance(m, (TCloseness, EntropyLDiversity)) and hasattr(m, "check_and_bound"):
                nv = max(int(m.n_values), 1)
                pk = self.inverse * nv + np.asarray(m.codes, dtype=np.int64)
                pinv, puniq = pd.factorize(pk)
                puniq = np.asarray(puniq, dtype=np.int64)
                pc = np.bincount(np.asarray(pinv, dtype=np.int64), minlength=len(puniq)).astype(np.float64)
                self.dense.append((m, puniq // nv, puniq % nv, pc, nv))
            else:
                self.weighted.append(m)
        self.kstrong = max(self.kstrong, self.kmax)
        self.all_monotone = all(bool(getattr(m, "monotone", True)) for m in models)
        self.npop = 0
        if self.pop_strong or self.pop_weak:
            self._setup_population(leaf_codes)
        self.k_norm = self.kmax if self.kmax else 1
        self.checked = 0
        self.push_budget = 16  # nodes whose bound one evaluation may lift (push_split_bounds)
        self.pull_budget = 4  # … and one skipped node, from its origin
        self._last_keys: np.ndarray | None = None
        self.setup_objective(gs_factor, aggregation)
        # evaluated nodes whose classes the nodes below refine (exhaustive search; only
        # when every model is a class-size threshold: k-anonymity, estimated k-map)
        self._simple = not (self.dl or self.dense or self.weighted or self.pop_strong or self.pop_weak
                            or self.table or self.npop)
        room = min(_BASE_BYTES // max(8 * nt, 1), self.nodes_total, 4096) if self._simple else 0
        self._b_lv = np.zeros((room, d), dtype=np.int64)
        self._b_logn = np.zeros(room)  # log #classes
        self._b_n: list[int] = []  # #classes
        self._b_codes: list[np.ndarray] = []  # class of each tuple
        self._b_node: list[int] = []  # node index
        self._b_slot: dict[int, int] = {}  # node index → its place in the lists
        self._lognlab = np.zeros((d, max(caps) + 1))
        for j in range(d):
            self._lognlab[j, : caps[j] + 1] = np.log(np.asarray(self.nlab[j], dtype=np.float64))
        self._qi_index = np.arange(d)
        self._tuple_index = np.arange(nt, dtype=np.int64)
        self._dense_max = 2 * nt + 4096  # the most keys refined classes are counted over

    # -- one node ------------------------------------------------------------------------

    def _group_key(self, gi: int, lv: Sequence[int]) -> np.ndarray:
        """The summed pre-multiplied keys of group ``gi``'s QIs at their levels in ``lv``
        (computed once per level combination while memory allows; not to be modified)."""
        g = self._groups[gi]
        ck = (gi, *(lv[j] for j in g))
        key = self._gkeys.get(ck)
        if key is None:
            K = self.K
            assert K is not None
            key = K[g[0]][lv[g[0]]]
            if len(g) > 1:
                key = key + K[g[1]][lv[g[1]]]
                for j in g[2:]:
                    key += K[j][lv[j]]
            if len(g) > 1 and len(self._gkeys) < self._gkey_room:
                self._gkeys[ck] = key
        return key

    def classes(self, lv: Sequence[int]) -> tuple[np.ndarray, int]:
        if self.K is not None:
            ng = len(self._groups)
            key = self._group_key(0, lv)
            if ng > 1:
                key = key + self._group_key(1, lv)
                for gi in range(2, ng):
                    key += self._group_key(gi, lv)
        else:
            key = _combine([self.C[j][lv[j]] for j in range(self.d)], [self.nlab[j][lv[j]] for j in range(self.d)])
        codes, uniq = _factorize(key)
        self._last_keys = uniq if self.K is not None else None
        return codes, len(uniq)

    def keep_base(self, i: int, lv: Sequence[int], ev: _Eval) -> None:
        """Keep evaluated node ``i``'s classes for :meth:`base_of` (while memory allows;
        when full, in place of the kept node of most classes if it has fewer)."""
        room = len(self._b_lv)
        if not room or ev.n_cls <= 0:
            return
        m = len(self._b_codes)
        codes = ev.codes  # int64, as the refined keys
        if m < room:
            self._b_codes.append(codes)
            self._b_n.append(ev.n_cls)
            self._b_node.append(i)
        else:
            m = int(np.argmax(self._b_logn))
            if self._b_n[m] <= ev.n_cls:
                return
            del self._b_slot[self._b_node[m]]
            self._b_codes[m] = codes
            self._b_n[m] = ev.n_cls
            self._b_node[m] = i
        self._b_slot[i] = m
        self._b_lv[m] = lv
        self._b_logn[m] = math.log(ev.n_cls)

    def base_of(self, i: int, lv: Sequence[int], strides: Sequence[int], hint: int = -1) -> int | None:
        """A kept node above node ``i`` (levels ``lv``) whose classes, split by the QIs
        where it is higher, number ``lv``'s classes by at most :attr:`_dense_max` keys: a
        kept parent with the fewest keys, else node ``hint`` (an evaluated node above,
        e.g. the one whose classes bound ``i``'s value) if kept and few enough, else the
        kept node with the fewest (None: no kept node gives few enough)."""
        best, fewest = None, self._dense_max
        for j in range(self.d):
            if lv[j] < self.caps[j]:
                slot = self._b_slot.get(i + strides[j])
                if slot is not None:
                    r = self._b_n[slot] * self.nlab[j][lv[j]]
                    if r <= fewest:
                        best, fewest = slot, r
        if best is not None or not self._b_codes:
            return best
        slot = self._b_slot.get(hint)
        if slot is not None:
            blv = self._b_lv[slot]
            r = self._b_n[slot]
            for q in range(self.d):
                if blv[q] > lv[q]:
                    r *= self.nlab[q][lv[q]]
            if r <= fewest:
                return slot
        m = len(self._b_codes)
        B = self._b_lv[:m]
        x = np.asarray(lv, dtype=np.int64)
        w = self._lognlab[self._qi_index, x]
        score = self._b_logn[:m] + (B > x) @ w
        score[(B < x).any(axis=1)] = math.inf
        bi = int(np.argmin(score))
        return bi if score[bi] <= math.log(self._dense_max) else None

    def _refined(self, bi: int, lv: Sequence[int]) -> tuple[np.ndarray, int]:
        """A key per distinct tuple numbering ``lv``'s classes below ``R`` (not densely):
        kept node ``bi``'s class, then the level labels of the QIs where it is higher."""
        blv = self._b_lv[bi]
        key = None
        R = self._b_n[bi]
        for q in range(self.d):
            if blv[q] > lv[q]:
                m = self.nlab[q][lv[q]]
                key = self._b_codes[bi] * m if key is None else key * m
                key += self.C[q][lv[q]]
                R *= m
        assert key is not None  # a kept node is never lv itself
        return key, R

    def evaluate(self, lv: Sequence[int], base: int | None = None, quick: bool = False) -> _Eval:
        """The classes of node ``lv`` and what fails; ``base`` a kept node above it whose
        classes to refine (:meth:`base_of`), ``quick`` stop as soon as the rows failing
        the models exceed the limit (the result then only tells that)."""
        self.checked += 1
        self._last_keys = None
        sizes = None
        if base is not None:  # only with class-size models (_simple): counted densely
            key, R = self._refined(base, lv)
            full = np.bincount(key, weights=self.cnt, minlength=R)
            if quick and self.kstrong:
                s_q = round(float(np.add.reduce(full, where=full < self.kstrong)))  # empty keys add 0
                if s_q > self.limit:
                    none = np.zeros(0, dtype=bool)
                    return _Eval(none.astype(np.int64), 0, none.astype(np.float64), none, none, s_q, s_q)
            nz = np.flatnonzero(full)
            n_cls = len(nz)
            sizes = full[nz]
            remap = np.empty(R, dtype=np.int64)
            remap[nz] = np.arange(n_cls)
            codes = remap[key]
        elif self.npop:
            codes, n_cls, psizes = self._classes_pop(lv)
        else:
            codes, n_cls = self.classes(lv)
        if sizes is None:
            sizes = np.bincount(codes, weights=self.cnt, minlength=n_cls)
        if self.kstrong:
            fail_strong = sizes < self.kstrong
        else:
            fail_strong = np.zeros(n_cls, dtype=bool)
        for m in self.pop_strong:
            fail_strong |= ~np.asarray(m.check_population(sizes, psizes), dtype=bool)
        for m, pt, prow in self.dl:
            fail_strong |= ~np.asarray(m.check(codes[pt], n_cls, prow), dtype=bool)
        need = None  # rows of each class that every node below must suppress
        if self.dense:
            fail = fail_strong.copy()
            for m, pt, pv, pc, nv in self.dense:
                if n_cls * nv > _DENSE_LIMIT:  # too large a matrix: the row-level check
                    fail |= ~np.asarray(m.check(codes[self.inverse], n_cls), dtype=bool)
                    continue
                counts = np.bincount(codes[pt] * nv + pv, weights=pc, minlength=n_cls * nv)
                ok, nb = m.check_and_bound(counts.reshape(n_cls, nv))
                fail |= ~ok
                need = nb if need is None else np.maximum(need, nb)
        if self.weighted or self.pop_weak:
            if not self.dense:
                fail = fail_strong.copy()
            if self.weighted:
                rows_cls = codes[self.inverse]
            for m in self.weighted:
                fail |= ~np.asarray(m.check(rows_cls, n_cls), dtype=bool)
            for m in self.pop_weak:
                fail |= ~np.asarray(m.check_population(sizes, psizes), dtype=bool)
        elif not self.dense:
            fail = fail_strong
        s_strong = round(float(sizes[fail_strong].sum()))
        s = s_strong if fail is fail_strong else round(float(sizes[fail].sum()))
        s_lb = s_strong
        if need is not None:
            # a class failing k-anonymity (or another suppression-monotone model) is
            # suppressed whole below; otherwise at least its rows found by refine_bound
            need = np.where(fail_strong, sizes, need)
            s_lb = max(s_strong, int(np.ceil(np.maximum(need - 1e-6, 0.0)).sum()))
        if self.table and s <= self.limit:
            kept = sizes[~fail]
            if not all(bool(m.check_table(kept)) for m in self.table):
                s = self.n + 1  # the released table as a whole fails: infeasible
        return _Eval(codes, n_cls, sizes, fail, fail_strong, s, s_strong, s_lb, self._last_keys)

    # -- refusing fast when no transformation can pass ----------------------------------

    def impossible(self) -> str | None:
        """Why no transformation can satisfy the models, found without searching (None
        when these checks cannot tell). Exact arguments only:

        - l-diversity needs l distinct sensitive values in every kept class, so at least
          l in the table (unless every row may be suppressed);
        - the sensitive distribution of the kept rows is a mixture of the kept classes',
          and entropy is concave: if every kept class has entropy ≥ log l, so do the
          kept rows. The most even multiset reachable by suppressing at most the allowed
          rows caps the largest counts (water-filling); if its entropy is below log l,
          nothing passes;
        - the most general transformation (every QI at its top level): the rows it must
          suppress for k-anonymity, distinct l-diversity and k-map only grow below it, so
          if they exceed the limit nothing passes; without suppression every model but
          the population-uniqueness estimate is monotone, so the top node failing any
          of them ends the search too.
        """
        n, limit = self.n, self.limit
        if limit >= n:
            return None  # suppressing every row is allowed: something always passes
        for m in self.models:
            if not isinstance(m, (DistinctLDiversity, EntropyLDiversity, RecursiveCLDiversity)):
                continue
            counts = np.bincount(np.asarray(m.codes, dtype=np.int64))
            counts = np.sort(counts[counts > 0])[::-1].astype(np.float64)
            distinct = len(counts)
            need = math.ceil(float(m.l) - 1e-12)
            if distinct < need:
                return (f"{_describe([m])}: the sensitive column has {distinct} distinct value"
                        f"{'s' if distinct != 1 else ''}, fewer than l = {m.l:g}; lower l to at most {distinct}")
            if isinstance(m, EntropyLDiversity):
                h = _capped_entropy(counts, limit)
                if h < math.log(m.l) - 1e-12:
                    return (
                        f"{_describe([m])}: even after suppressing the {limit:,} rows allowed, the "
                        f"sensitive values of the kept rows have entropy at most {h:.4f} "
                        f"= log({math.exp(h):.3f}) < log({m.l:g}), and every class would need at "
                        f"least log(l); lower l to at most {math.floor(math.exp(h) * 1000) / 1000:g} "
                        "or allow more suppression"
                    )
        top = [int(c) for c in self.caps]
        ev = self.evaluate(top)
        self.checked -= 1  # not a search step (the search evaluates the top node again)
        if ev.s_lb > limit or (ev.s > limit and limit == 0 and self.all_monotone):
            return (
                f"even the most general transformation ({', '.join(f'{a}={b}' for a, b in zip(self.names, top))}) "
                f"fails {_describe(self.models)}"
                + (f": {min(ev.s, n):,} rows would have to be suppressed, {limit:,} allowed" if ev.s <= n else "")
                + "; every other transformation fails too: lower k (or l, or raise t), "
                "allow (more) suppression, or use coarser hierarchies"
            )
        return None

    # -- models against a population -----------------------------------------------------

    def _setup_population(self, leaf_codes: list[np.ndarray]) -> None:
        """Join the population's distinct QI tuples to the table's: tuples 0 … nt − 1 are
        the table's, the rest occur only in the population; ``pcnt`` counts population
        rows per tuple."""
        pops = [m.population_codes for m in self.pop_strong + self.pop_weak]  # type: ignore[attr-defined]
        pc = pops[0]
        if pc is None:
            raise QueryError(
                f"{_describe(self.pop_strong + self.pop_weak)}: the population is not encoded; "
                "use anonymize(), or give population_codes (leaf codes per quasi-identifier)"
            )
        for other in pops[1:]:
            if other is not pc and (other is None or len(other) != len(pc)
                                    or not all(np.array_equal(a, b) for a, b in zip(other, pc))):
                raise QueryError("the population models must share one population")
        if len(pc) != self.d:
            raise QueryError(f"population_codes has {len(pc)} columns for {self.d} quasi-identifiers")
        pcodes = [np.asarray(c, dtype=np.int64) for c in pc]
        for c, e, name in zip(pcodes, self.qis, self.names):
            if len(c) != len(pcodes[0]):
                raise QueryError("the population's columns have different numbers of rows")
            if len(c) and (c.min() < 0 or c.max() >= np.asarray(e.gen).shape[0]):
                raise QueryError(f"the population's {name!r} has codes outside its hierarchy")
        radices = [np.asarray(e.gen).shape[0] for e in self.qis]
        first_s = _first_rows(self.inverse, self.nt)
        # one key over both (a re-factorising _combine numbers each call's tuples apart)
        key = _combine([np.concatenate([lc[first_s], pcj]) for lc, pcj in zip(leaf_codes, pcodes)], radices)
        inv, uniq = pd.factorize(key)
        inv = np.asarray(inv, dtype=np.int64)
        ntot = len(uniq)
        pinv = inv[self.nt:]
        self.pcnt = np.bincount(pinv, minlength=ntot).astype(np.float64)
        short = self.cnt > self.pcnt[: self.nt]
        if np.any(short):
            raise QueryError(
                f"the population must contain the released table: {int(np.count_nonzero(short)):,} "
                "quasi-identifier combinations occur more often in the table than in the population"
            )
        self.npop = len(pcodes[0]) or 1
        extra = np.arange(self.nt, ntot)
        first = _first_rows(pinv, ntot)[extra] if len(extra) else np.zeros(0, dtype=np.int64)
        self.CP: list[list[np.ndarray]] = []
        for e, pcj, cap in zip(self.qis, pcodes, self.caps):
            gen = np.asarray(e.gen)
            tl = pcj[first]
            self.CP.append([gen[tl, h].astype(np.int64) for h in range(cap + 1)])
        # pre-multiplied keys of all tuples (the table's, then the population's), as K
        self.KX: list[list[np.ndarray]] | None = None
        if self.K is not None:
            self.KX = []
            for j in range(self.d):
                self.KX.append([np.concatenate([self.K[j][h], self.CP[j][h] * self._mult[j]])
                                for h in range(self.caps[j] + 1)])

    def _classes_pop(self, lv: Sequence[int]) -> tuple[np.ndarray, int, np.ndarray]:
        """Classes of the table's tuples (numbered first) and population rows per class."""
        if self.KX is not None:
            key = self.KX[0][lv[0]].copy()
            for j in range(1, self.d):
                key += self.KX[j][lv[j]]
        else:
            cols = [np.concatenate([self.C[j][lv[j]], self.CP[j][lv[j]]]) for j in range(self.d)]
            key = _combine(cols, [self.nlab[j][lv[j]] for j in range(self.d)])
        codes_all, uniq = pd.factorize(key)
        codes_all = np.asarray(codes_all)
        codes = codes_all[: self.nt]
        n_cls = int(codes.max()) + 1
        # the table's tuples come first, so its classes are the first n_cls keys
        self._last_keys = np.asarray(uniq)[:n_cls] if self.KX is not None else None
        psizes = np.bincount(codes_all, weights=self.pcnt, minlength=n_cls)[:n_cls]
        return codes, n_cls, psizes

    # -- the objective ---------------------------------------------------------------------

    def setup_objective(self, gs_factor: float, aggregation: str | None) -> None:
        """Per-level tables of the objective: for a per-QI metric, each tuple's cell cost
        per level (``Gt``), its suppression cost (``St``), the exact value of each level
        with nothing suppressed (``ex``) and a lower bound with any suppression (``lo``)."""
        metric = self.metric
        self.gs_factor = float(gs_factor)
        self.aggregation = aggregation
        self.rank = aggregation == "rank"
        self.g, self.s = _metrics.gs_weights(gs_factor)
        self.per_qi = metric in _metrics.PER_QI_METRICS
        self.ignores_supp = metric in _metrics.IGNORE_SUPPRESSION
        self.tol_rel = 1e-9
        if not self.per_qi:
            self.npres = [np.array([len(np.unique(c)) for c in self.C[j]], dtype=np.float64) for j in range(self.d)]
            return
        g, s = self.g, self.s
        self.Gt: list[list[np.ndarray]] = []
        self.St: list[np.ndarray | None] = []
        self.Z = np.ones(self.d)
        self.ex: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.tot: list[np.ndarray] = []  # Σ over all tuples of count · cell cost, per level
        for j, e in enumerate(self.qis):
            G, S, Z = _metrics.qi_costs(e, metric)
            tl = self.C[j][0]  # the leaf of each tuple (gen[:, 0] is the identity)
            gt = [G[h][tl] for h in range(self.caps[j] + 1)]
            st = None if S is None else S[tl]
            self.Gt.append(gt)
            self.St.append(st)
            self.Z[j] = Z
            cnt = self.cnt
            self.tot.append(np.array([float((cnt * c).sum()) for c in gt]))
            if st is None:
                ex = np.array([float((cnt * c).sum()) / Z for c in gt])
                lo = ex
            else:
                ex = np.array([g * float((cnt * c).sum()) / Z for c in gt])
                lo = np.array([float((cnt * np.minimum(g * c, s * st)).sum()) / Z for c in gt])
            self.ex.append(ex)
            self.lo.append(lo)

    def agg(self, X: np.ndarray) -> np.ndarray:
        """Scalar aggregate of each row (for rank: the largest value, a lower bound of the
        first component of the rank key)."""
        return _metrics.aggregate_rows(X, self.aggregation or "sum")

    def key_of(self, vec: np.ndarray) -> Any:
        if self.rank:
            return _metrics.rank_key(vec)
        return _metrics.aggregate(vec, self.aggregation or "sum")

    def first(self, v: Any) -> float:
        return float(v[0]) if isinstance(v, tuple) else float(v)

    def cmp(self, v: Any, w: Any) -> int:
        """−1, 0, 1 as v is below, level with (relative tolerance), above w."""
        if isinstance(v, tuple):
            for a, b in zip(v, w):
                t = self.tol_rel * max(1.0, abs(b))
                if a < b - t:
                    return -1
                if a > b + t:
                    return 1
            return 0
        t = self.tol_rel * max(1.0, abs(w))
        return -1 if v < w - t else (1 if v > w + t else 0)

    def per_qi_vector(self, lv: Sequence[int], ev: _Eval | None) -> np.ndarray:
        """The per-QI values of a node (``ev`` None: nothing suppressed). Sums run over
        the suppressed tuples only: kept = all − suppressed."""
        if self.ignores_supp or ev is None or ev.s == 0:
            return np.array([self.ex[j][lv[j]] for j in range(self.d)])
        idx = np.flatnonzero(ev.fail[ev.codes])
        ws = self.cnt[idx]
        out = np.empty(self.d)
        for j in range(self.d):
            st = self.St[j]
            assert st is not None
            kept = self.tot[j][lv[j]] - float((ws * self.Gt[j][lv[j]][idx]).sum())
            out[j] = (self.g * kept + self.s * float((ws * st[idx]).sum())) / self.Z[j]
        return out

    def value(self, lv: Sequence[int], ev: _Eval) -> Any:
        """The objective of an evaluated node: a float, or a tuple for rank aggregation."""
        n = self.n
        if self.per_qi:
            return self.key_of(self.per_qi_vector(lv, ev))
        kept = ~ev.fail
        if self.metric == "discernibility":
            sz = ev.sizes[kept]
            return float((sz * sz).sum() + float(n) * ev.s)
        if self.metric == "dm*":
            return _metrics.dm_star(ev.sizes)
        if self.metric == "arx_aecs":
            return _metrics.arx_aecs(n, int(np.count_nonzero(kept)), ev.s > 0, self.gs_factor)
        return _metrics.aecs(n - ev.s, int(np.count_nonzero(kept)), self.k_norm)

    def lower_bounds(self, L: np.ndarray) -> np.ndarray:
        """A lower bound of the objective (its first component, for rank) of each node
        (rows of ``L``) that is valid whatever the node suppresses."""
        n, d = self.n, self.d
        if self.per_qi:
            tab = self.ex if self.limit == 0 else self.lo
            A = np.empty((len(L), d))
            for j in range(d):
                A[:, j] = tab[j][L[:, j]]
            return self.agg(A)
        maxcls = np.ones(len(L))
        for j in range(d):
            maxcls = np.minimum(maxcls * self.npres[j][L[:, j]], float(self.nt))
        if self.metric == "discernibility":
            return np.maximum(float(self.k_norm) * n, float(n) * n / maxcls)
        if self.metric == "dm*":
            return float(n) * n / maxcls
        if self.metric == "arx_aecs":
            denom = self.s * maxcls + self.g
            return np.where(denom > 0, float(n) / np.maximum(denom, 1e-300), 0.0)
        return np.full(len(L), float(max(n - self.limit, 0))) / (maxcls * self.k_norm)

    def _setup_fans(self) -> None:
        """``fan[j][h][h2][label]`` (h2 < h): how many distinct level-h2 labels of QI j
        the table's tuples have under each level-h label."""
        if getattr(self, "fan", None) is not None:
            return
        self.fan: list[list[list[np.ndarray]]] = []
        for j in range(self.d):
            fj: list[list[np.ndarray]] = []
            for h in range(self.caps[j] + 1):
                fh = []
                for h2 in range(h):
                    lo_n = self.nlab[j][h2]
                    pairs = np.asarray(pd.unique(self.C[j][h] * lo_n + self.C[j][h2]))
                    fh.append(np.bincount(pairs // lo_n, minlength=self.nlab[j][h]).astype(np.float64))
                fj.append(fh)
            self.fan.append(fj)

    def split_bound(self, w: np.ndarray, f: np.ndarray) -> float:
        """A lower bound of the objective of a node N below an evaluated node P, from P's
        class sizes ``w`` and, per class of P, ``f``: at most how many classes of N it
        splits into.

        Proof. N's classes refine P's. The rows of a class c of P share, for every QI j,
        their level-h_j label (h_j P's level); in N their level-h'_j labels (h'_j ≤ h_j)
        are among the F_j(c) present under it in the table, so c splits into at most
        m_c = min(w_c, ∏_j F_j(c)) classes of N (``f`` = that product).
        - Σ of squares of at most m parts of w is at least w² / m (Cauchy–Schwarz), so
          DM*(N) ≥ Σ_c w_c² / m_c; DM(N) ≥ DM*(N) (a suppressed class of x rows costs
          x·n ≥ x²).
        - A kept class has at least kk rows (kk the k of k-anonymity / estimated k-map,
          else 1), so c holds at most min(f_c, ⌊w_c / kk⌋) kept classes of N: N keeps at
          most K = Σ_c of those. A feasible N keeps at least n − limit rows, so
          AECS(N) = kept rows / (kept classes · k) ≥ (n − limit) / (K · k), and ARX's
          AECS n / (s·kept classes + g·[any suppressed]) ≥ n / (s·K + g).
        """
        return self._split_bound(w, f, None)

    def _split_bound(self, w: np.ndarray, f: np.ndarray, pre: np.ndarray | None) -> float:
        """:meth:`split_bound`; ``pre`` (if given) is w² for DM / DM*, ⌊w / kk⌋ else."""
        m = self.metric
        if m in ("dm*", "discernibility"):
            w2 = w * w if pre is None else pre
            return float((w2 / np.maximum(np.minimum(w, f), 1.0)).sum())
        wk = np.floor(w / float(max(self.kstrong, 1)) + 1e-9) if pre is None else pre
        K = float(np.minimum(f, wk).sum())
        n = float(self.n)
        if m == "arx_aecs":
            denom = self.s * K + self.g
            return n / denom if denom > 0 else 0.0
        if K <= 0:
            return math.inf if self.limit < self.n else 0.0
        return float(max(self.n - self.limit, 0)) / (K * self.k_norm)

    def split_origin(self, i: int, lv: Sequence[int], ev: _Eval) -> _Origin:
        """What :meth:`push_split_bounds` needs of an evaluated node (kept while the
        search works a few levels below it)."""
        o = _Origin(i, list(lv), int(sum(lv)), ev.sizes, ev.keys, None, [None] * self.d)
        o.codes = ev.codes if ev.keys is None else None  # for o.first, when a label is needed
        return o

    def keep_origin(self, o: _Origin, labels: bool) -> None:
        """Shrink an origin kept for later skips: its labels as int32 (``labels``) or none,
        a row per class instead of the class of every tuple (when labels may be needed)."""
        o.labels = [None if x is None or not labels else x.astype(np.int32) for x in o.labels]
        if o.codes is not None and any(o.labels[q] is None for q in range(self.d) if o.lv[q] > 0):
            self._first_of(o)
        o.codes = None
        o.pre = None
        o.fans = {}

    def _first_of(self, o: _Origin) -> np.ndarray:
        if o.first is None:  # a row of each class (any: they share the labels)
            first = np.empty(len(o.sizes), dtype=np.int64)
            first[o.codes] = self._tuple_index
            o.first = first
        return o.first

    def _labels(self, o: _Origin, q: int) -> np.ndarray:
        """The level label of QI q of each class of the origin node."""
        lab = o.labels[q]
        if lab is None:
            if o.keys is not None:  # decoded from the class keys
                lab = (o.keys // self._mult[q]) % self._radix[q]
            else:
                lab = self.C[q][o.lv[q]][self._first_of(o)]
            o.labels[q] = lab
        return lab

    def push_split_bounds(self, o: _Origin, i: int, lv: Sequence[int], lb: np.ndarray, dead: np.ndarray,
                          thr: float, strides: Sequence[int], src: np.ndarray,
                          budget: int | None = None) -> None:
        """Lift the bounds of nodes below node ``lv`` (index ``i``: the evaluated node
        ``o`` itself, or a node below it that the search skips) by :meth:`split_bound`
        from ``o``'s classes: its children, and, below a child whose bound now exceeds
        ``thr`` (it will be skipped and push nothing itself), that child's children, and
        so on (at most ``budget`` nodes). ``src`` records the origin of each lift."""
        if budget is None:
            budget = self.push_budget
        seen = {i}
        queue = [(i, list(lv))]
        olv = o.lv
        while queue and budget > 0:
            ni, nlv = queue.pop(0)  # breadth first: the children, then below the skipped ones
            for j in range(self.d):
                if nlv[j] == 0:
                    continue
                ci = ni - strides[j]
                if ci in seen or dead[ci]:
                    continue
                seen.add(ci)
                budget -= 1
                clv = nlv.copy()
                clv[j] -= 1
                if lb[ci] <= thr:
                    f = None
                    for q in range(self.d):
                        if clv[q] < olv[q]:
                            fq = o.fans.get((q, clv[q]))
                            if fq is None:
                                fq = o.fans[(q, clv[q])] = self.fan[q][olv[q]][clv[q]][self._labels(o, q)]
                            f = fq if f is None else f * fq
                    if o.pre is None:
                        o.pre = (o.sizes * o.sizes if self.metric in ("dm*", "discernibility")
                                 else np.floor(o.sizes / float(max(self.kstrong, 1)) + 1e-9))
                    b = self._split_bound(o.sizes, f, o.pre)  # type: ignore[arg-type]
                    if b > lb[ci]:
                        lb[ci] = b
                        src[ci] = o.i
                if lb[ci] > thr and budget > 0:
                    queue.append((ci, clv))

    @property
    def propagates(self) -> bool:
        """Whether an evaluated node lifts the bound of the nodes below it (through the
        rows they must suppress too)."""
        return self.metric == "discernibility" or (self.per_qi and not self.ignores_supp)

    def propagated(self, L_idx: np.ndarray, lv: Sequence[int], ev: _Eval) -> np.ndarray:
        """Lower bound of nodes below ``lv`` (rows ``L_idx``): they suppress at least the
        rows failing the suppression-monotone models at ``lv``, each costing at least
        its extra cost there."""
        if self.metric == "discernibility":
            kk = float(self.k_norm)
            return np.full(len(L_idx), kk * self.n + (self.n - kk) * ev.s_lb)
        supt = np.flatnonzero(ev.fail_strong[ev.codes])
        w = self.cnt[supt]
        u = np.empty(self.d)
        for j in range(self.d):
            st = self.St[j][supt]  # type: ignore[index]
            gt = self.Gt[j][lv[j]][supt]
            u[j] = float((w * (self.s * st - np.minimum(self.g * gt, self.s * st))).sum()) / self.Z[j]
        A = np.empty((len(L_idx), self.d))
        for j in range(self.d):
            A[:, j] = self.lo[j][L_idx[:, j]] + u[j]
        return self.agg(A)

    # -- the search ----------------------------------------------------------------------

    def run(self) -> tuple[tuple[int, ...], Any] | None:
        d, caps = self.d, self.caps
        shape = tuple(c + 1 for c in caps)
        L = np.indices(shape).reshape(d, -1).T.astype(np.int64)  # lexicographic order
        N = len(L)
        height = L.sum(axis=1)
        le = [[L[:, j] <= h for h in range(caps[j] + 1)] for j in range(d)]
        lb = np.asarray(self.lower_bounds(L), dtype=np.float64)

        exact = self.per_qi and (self.limit == 0 or self.ignores_supp) and not self.rank
        order = np.lexsort((-lb if exact else lb, -height))
        dead = np.zeros(N, dtype=bool)
        best_v: Any = math.inf
        best_key: tuple[int, tuple[int, ...]] | None = None
        best_i = -1
        limit = self.limit
        if self.kstrong > self.n and limit < self.n:
            return None  # no class can reach k: only suppressing everything would do
        lb_list = lb  # updated in place by propagation
        bf, tol = math.inf, 0.0  # the best value's first component and its tolerance
        rank = self.rank
        splits = not self.per_qi  # class-count objectives: bounds pushed to the nodes below
        if splits:
            self._setup_fans()
        strides = [math.prod(shape[j + 1:]) for j in range(d)]
        origins: dict[int, _Origin] = {}  # evaluated nodes a few levels up, by index
        src = np.full(N, -1, dtype=np.int64)  # the origin of each node's lifted bound
        pulled = np.zeros(N, dtype=bool)
        cur_h, held = -1, 0
        for i in self._visit(order, height, lb_list, dead, splits):
            if dead[i]:
                continue
            b = lb_list[i]
            if b > bf + tol:
                if splits and src[i] >= 0 and not pulled[i] and int(src[i]) in origins:
                    # skipped: carry its origin's bound on to the nodes below it
                    pulled[i] = True
                    self.push_split_bounds(origins[int(src[i])], i, L[i].tolist(), lb_list, dead, bf + tol,
                                           strides, src, budget=self.pull_budget)
                continue
            lv = L[i].tolist()
            if best_key is not None and not rank and b >= bf - tol and (int(height[i]), tuple(lv)) >= best_key:
                continue
            ev = self.evaluate(lv, self.base_of(i, lv, strides, int(src[i])) if self._simple else None, quick=True)
            down = None
            if ev.s_lb > limit or (ev.s > limit and limit == 0 and self.all_monotone):
                down = le[0][lv[0]].copy()
                for j in range(1, d):
                    down &= le[j][lv[j]]
                dead |= down
                continue
            self.keep_base(i, lv, ev)
            if ev.s <= limit:
                v = self.value(lv, ev)
                key = (int(height[i]), tuple(lv))
                c = -1 if best_key is None else self.cmp(v, best_v)
                if c < 0 or (c == 0 and key < best_key):  # type: ignore[operator]
                    best_v, best_key, best_i = v, key, i
                    bf = self.first(best_v)
                    tol = self.tol_rel * max(1.0, abs(bf))
            if splits:
                if int(height[i]) != cur_h:
                    cur_h = int(height[i])
                    origins = {k: o for k, o in origins.items() if o.height <= cur_h + 3}
                    held = sum(len(o.sizes) for o in origins.values())
                o = self.split_origin(i, lv, ev)
                self.push_split_bounds(o, i, lv, lb_list, dead, bf + tol, strides, src)
                if held + ev.n_cls <= _ORIGIN_CLASSES:  # kept (shrunk) for later skips
                    self.keep_origin(o, (held + ev.n_cls) * d <= _ORIGIN_LABELS)
                    origins[i] = o
                    held += ev.n_cls
            if ev.s_lb > 0 and self.propagates:
                # every node below suppresses at least these rows, each costing at least as much
                down = le[0][lv[0]].copy()
                for j in range(1, d):
                    down &= le[j][lv[j]]
                down &= ~dead
                if best_key is not None:
                    down &= lb_list <= bf + tol
                idx = np.flatnonzero(down)
                if len(idx):
                    nb = self.propagated(L[idx], lv, ev)
                    lb_list[idx] = np.maximum(lb_list[idx], nb)
        if best_key is None:
            return None
        return tuple(int(x) for x in L[best_i]), best_v

    @staticmethod
    def _visit(order: np.ndarray, height: np.ndarray, lb: np.ndarray, dead: np.ndarray, dynamic: bool):  # type: ignore[no-untyped-def]
        """The nodes in ``order`` (by decreasing height); with ``dynamic``, each height's
        nodes re-sorted by their bound as it stands when the search reaches that height
        (the nodes above have pushed theirs by then): the most promising first."""
        if not dynamic:
            yield from order.tolist()
            return
        hs = height[order]
        cuts = np.flatnonzero(np.diff(hs)) + 1
        for part in np.split(order, cuts):
            part = part[~dead[part]]
            yield from part[np.argsort(lb[part], kind="stable")].tolist()

    def result(self, levels: tuple[int, ...], t0: float, lower_bound: float | None = None,
               search: str = "optimal") -> SearchResult:
        ev = self.evaluate(levels)
        self.checked -= 1  # the final re-evaluation is not a search step
        fail_rows = ev.fail[ev.codes][self.inverse]
        kept_cls = ~ev.fail
        newid = np.cumsum(kept_cls, dtype=np.int64) - 1
        cls_rows = newid[ev.codes][self.inverse]
        cls_rows[fail_rows] = -1
        n_classes = int(np.count_nonzero(kept_cls))
        sizes = ev.sizes[kept_cls]
        n, s = self.n, ev.s
        m = {
            "loss": _metrics.loss(self.qis, levels, fail_rows),
            "precision": _metrics.precision(self.qis, levels, fail_rows),
            "discernibility": _metrics.discernibility(sizes, s, n),
            "aecs": _metrics.aecs(n - s, n_classes, self.k_norm),
            "entropy": _metrics.entropy(self.qis, levels, fail_rows),
            "monotonic_precision": _metrics.monotonic_precision(self.qis, levels),
            "height": float(sum(levels)),
            "dm*": _metrics.dm_star(ev.sizes),
            "arx_aecs": _metrics.arx_aecs(n, n_classes, s > 0),
            "suppressed": float(s),
            "suppressed_share": s / n,
            "classes": float(n_classes),
            "min_class_size": float(sizes.min()) if n_classes else 0.0,
            "avg_class_size": (n - s) / n_classes if n_classes else 0.0,
        }
        return SearchResult(
            levels=levels,
            suppressed=fail_rows,
            class_ids=cls_rows,
            n_classes=n_classes,
            metric=self.metric,
            value=self.first(self.value(levels, ev)),
            metrics=m,
            gs_factor=self.gs_factor,
            aggregation=self.aggregation,
            per_qi=self.per_qi_vector(levels, ev) if self.per_qi else None,
            nodes_checked=self.checked,
            nodes_total=self.nodes_total,
            seconds=time.perf_counter() - t0,
            search=search,
            lower_bound=lower_bound,
        )


def refuse_if_impossible(s: _Search, models: Sequence[PrivacyModel]) -> None:
    """:class:`QueryError` before any search when :meth:`_Search.impossible` shows that
    no transformation can satisfy ``models`` (shared by the exhaustive and heuristic
    searches)."""
    why = s.impossible()
    if why is not None:
        raise QueryError(
            f"no transformation satisfies {_describe(models)} with at most {s.limit:,} of "
            f"{s.n:,} rows suppressed (max_suppression={s.max_suppression:g}); found before "
            f"searching: {why}"
        )


def optimal_full_domain(
    qis: list[Any],
    models: list[PrivacyModel],
    max_suppression: float = 0.0,
    metric: str = "loss",
    max_levels: list[int] | None = None,
    *,
    gs_factor: float = 0.5,
    aggregation: str | None = None,
) -> SearchResult:
    """The optimal full-domain generalisation of the encoded quasi-identifiers ``qis``
    (objects with ``codes``, ``gen``, ``leaf_share`` like
    :class:`~pets.anon.hierarchy.EncodedHierarchy`) under ``models``, suppressing at
    most ``floor(max_suppression · n)`` rows (those of the classes failing a model), and
    minimising ``metric`` (one of :data:`METRICS`: "loss" — ARX's default, "entropy",
    "precision", "monotonic_precision", "height", "discernibility", "dm*", "aecs",
    "arx_aecs"; see :mod:`pets.anon.metrics`) with ARX's ``gs_factor`` and, for the
    per-QI metrics, ``aggregation`` ("geometric", "arithmetic", "sum", "max", "rank";
    default: the metric's ARX default). ``max_levels`` caps the level searched per QI.

    Raises :class:`~pets.errors.QueryError` when no transformation satisfies the models.
    """
    t0 = time.perf_counter()
    s = _Search(qis, models, max_suppression, metric, max_levels, gs_factor, aggregation)
    refuse_if_impossible(s, models)
    found = s.run()
    if found is None:
        raise QueryError(
            f"no transformation satisfies {_describe(models)} with at most {s.limit:,} of "
            f"{s.n:,} rows suppressed (max_suppression={s.max_suppression:g}); allow "
            "(more) suppression with max_suppression, or lower k (or l, or raise t)"
        )
    return s.result(found[0], t0)
