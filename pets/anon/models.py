"""Privacy models for record-level releases, checked per equivalence class.

Every model answers one question, vectorised: given the class of each row, which
classes satisfy the model? Rows in failing classes are suppressed (up to the allowed
share), so a transformation satisfies the models when the rows of failing classes are
few enough.

Guarantees (the usual syntactic ones, stated on the released table):

- :class:`KAnonymity` — every released row shares its quasi-identifier values with at
  least k − 1 other released rows: a prosecutor who knows someone is in the table and
  knows their quasi-identifiers links them to no fewer than k rows.
- :class:`DistinctLDiversity` — every class holds at least l distinct sensitive values.
- :class:`EntropyLDiversity` — the entropy of the sensitive values in every class is at
  least log(l).
- :class:`RecursiveCLDiversity` — in every class the most frequent sensitive value
  occurs fewer than c times the sum of the counts of all values but the l − 1 most
  frequent (r₁ < c·(r_l + … + r_m)).
- :class:`TCloseness` — the distribution of the sensitive value in every class is within
  Earth Mover's Distance t of its distribution in the whole table; equal ground distance
  for categories, ordered distance (|i − j| / (m − 1)) for ordered / numeric values,
  hierarchical distance (Li et al.: the height of the two values' lowest common ancestor
  in the sensitive column's hierarchy over its height) with ``distance="hierarchical"``.

Models against a population (the released table is a sample of it; see
docs/anonymisation.md "choosing a model"):

- :class:`DeltaPresence` (Nergiz et al.) — for every released class, the share of its
  population that is in the released table, δ = |table ∩ class| / |population ∩ class|,
  lies in [δ_min, δ_max]: an attacker holding the population learns that a person is in
  the table with probability at most δ_max (and at least δ_min).
- :class:`KMap` — every released class matches at least k people of the population
  (journalist risk ≤ 1/k); with a sampling fraction instead of a population table, the
  population class sizes are estimated (Poisson or zero-truncated Poisson, El Emam &
  Dankar 2008) and a class passes when, under that model, its population size is below
  k with probability at most ``significance``.

Models on the whole released table (not per class; a transformation fails them as a
whole — they do not suppress rows themselves):

- :class:`AverageReidentificationRisk` — the average prosecutor risk (classes / released
  rows) is at most ``max_risk``.
- :class:`SampleUniques` — at most ``max_share`` of the released rows are unique.
- :class:`PopulationUniqueness` — the estimated share of the population that is unique
  (:mod:`pets.anon.risk`: Pitman, Zayatz, SNB or Dankar's rule) is at most ``max_risk``.

Merging two classes that satisfy a model never breaks it (sizes add, distinct values
unite, entropy and EMD are concave / convex in the mixture). With suppression, only
k-anonymity, distinct l-diversity and k-map are monotone in the rows a transformation
must suppress — a passing class merged with a failing one can fail the others — so the
lattice search prunes with those only. δ-presence is monotone without suppression (a
merged class's δ lies between its parts'); so are the average risk and the sample
uniques (merging classes lowers both). The population-uniqueness estimates are not
guaranteed monotone (they are model fits): with them the search prunes no down-sets by
them. None protects against linking several releases of
the same people; pets counts extracts for that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import QueryError

__all__ = [
    "PrivacyModel",
    "KAnonymity",
    "DistinctLDiversity",
    "EntropyLDiversity",
    "RecursiveCLDiversity",
    "TCloseness",
    "DeltaPresence",
    "KMap",
    "AverageReidentificationRisk",
    "SampleUniques",
    "PopulationUniqueness",
    "T_DISTANCES",
    "KMAP_ESTIMATORS",
]

#: ground distances of t-closeness
T_DISTANCES = ("equal", "ordered", "hierarchical")
#: population models of k-map without a population table
KMAP_ESTIMATORS = ("poisson", "zero-truncated-poisson")


class PrivacyModel:
    """Base class. ``check(class_ids, n_classes, rows=None)`` → bool per class.

    ``class_ids[i]`` is the class (0 … n_classes − 1) of row ``rows[i]`` (of row ``i``
    when ``rows`` is None).
    """

    name: str = ""
    monotone: bool = True
    #: needs the population's classes: :meth:`check_population` instead of :meth:`check`
    uses_population: bool = False
    #: judged on the whole released table: :meth:`check_table` instead of :meth:`check`
    table_level: bool = False

    def check(
        self, class_ids: np.ndarray, n_classes: int, rows: np.ndarray | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass
class KAnonymity(PrivacyModel):
    k: int
    name: str = field(default="k-anonymity", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 2:
            raise QueryError(f"k must be an integer >= 2, got {self.k!r}")
        self.k = int(self.k)

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        return np.bincount(class_ids, minlength=n_classes) >= self.k

    def describe(self) -> str:
        return f"{self.k}-anonymity"


@dataclass
class _Sensitive(PrivacyModel):
    """A model on one sensitive column, given as integer codes 0 … n_values − 1 per row
    (for ordered t-closeness, codes must follow the value order)."""

    codes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    n_values: int = 0
    column: str | None = None

    def _check_codes(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 1 or (codes.size and not np.issubdtype(codes.dtype, np.integer)):
            raise QueryError("sensitive codes must be a 1-D integer array, one code per row")
        self.codes = codes.astype(np.int64, copy=False)
        top = int(codes.max()) + 1 if codes.size else 0
        if codes.size and int(codes.min()) < 0:
            raise QueryError("sensitive codes must be >= 0")
        if self.n_values == 0:
            self.n_values = top
        if top > self.n_values:
            raise QueryError(
                f"sensitive codes go up to {top - 1} but n_values is {self.n_values}; "
                "codes must be 0 … n_values − 1"
            )

    def _pairs(self, class_ids: np.ndarray, n_classes: int, rows: np.ndarray | None):
        """Distinct (class, value) pairs with their counts."""
        vals = self.codes if rows is None else self.codes[rows]
        m = max(int(self.n_values), 1)
        key = class_ids.astype(np.int64) * m + vals
        if n_classes * m <= max(4 * len(key), 1 << 20):
            # a counting pass instead of a sort (same pairs, in the same order)
            dense = np.bincount(key, minlength=n_classes * m)
            nz = np.flatnonzero(dense)
            return nz // m, nz % m, dense[nz]
        uniq, counts = np.unique(key, return_counts=True)
        return uniq // m, uniq % m, counts


def _entropies(counts: np.ndarray) -> np.ndarray:
    """Entropy (natural log) of each row of a class × value count matrix."""
    w = counts.sum(axis=1, keepdims=True)
    p = counts / np.maximum(w, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return t.sum(axis=1)


def _check_l(l: object, what: str) -> float:
    if isinstance(l, bool) or not isinstance(l, (int, float, np.integer, np.floating)) or not l >= 1:
        raise QueryError(f"{what} must be a number >= 1, got {l!r}")
    return float(l)


@dataclass
class DistinctLDiversity(_Sensitive):
    l: int = 2
    name: str = field(default="distinct l-diversity", init=False)

    def __post_init__(self) -> None:
        self._check_codes()
        self.l = int(_check_l(self.l, "l"))

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        cls, _, _ = self._pairs(class_ids, n_classes, rows)
        return np.bincount(cls, minlength=n_classes) >= self.l

    def describe(self) -> str:
        return f"distinct {self.l}-diversity of {self.column}"


@dataclass
class EntropyLDiversity(_Sensitive):
    l: float = 2.0
    name: str = field(default="entropy l-diversity", init=False)

    def __post_init__(self) -> None:
        self._check_codes()
        self.l = _check_l(self.l, "l")

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        cls, _, counts = self._pairs(class_ids, n_classes, rows)
        sizes = np.bincount(cls, weights=counts, minlength=n_classes)
        p = counts / sizes[cls]
        entropy = np.bincount(cls, weights=-p * np.log(p), minlength=n_classes)
        # a tiny tolerance: a class with exactly l equally frequent values passes
        return (entropy >= math.log(self.l) - 1e-12) & (sizes > 0)

    def check_counts(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`check` from the class × value count matrix (one row per class)."""
        return _entropies(counts) >= math.log(self.l) - 1e-12

    def refine_bound(self, counts: np.ndarray) -> np.ndarray:
        """Rows of each class (rows of ``counts``) that every refinement must suppress.

        Proof: split a class C (w rows, entropy H_C) into the rows of its passing
        subclasses (w_p) and of its failing ones (w_f = w − w_p). Each passing subclass
        has entropy ≥ log l − ε (ε the check's tolerance), so their mixture does too
        (entropy is concave), and by concavity again H_C ≥ (w_p / w)(log l − ε) + (w_f / w)·0.
        Hence w_f ≥ w · (1 − H_C / (log l − ε)); 0 for a passing class."""
        return self.check_and_bound(counts)[1]

    def check_and_bound(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`check_counts` and :meth:`refine_bound` from one entropy computation."""
        thr = math.log(self.l) - 1e-12
        w = counts.sum(axis=1)
        H = _entropies(counts)
        ok = H >= thr
        if thr <= 0:
            return ok, np.zeros(len(w))
        return ok, np.where(ok, 0.0, np.clip(w * (1.0 - H / thr), 0.0, None))

    def describe(self) -> str:
        return f"entropy {self.l:g}-diversity of {self.column}"


@dataclass
class RecursiveCLDiversity(_Sensitive):
    c: float = 3.0
    l: int = 2
    name: str = field(default="recursive (c,l)-diversity", init=False)

    def __post_init__(self) -> None:
        self._check_codes()
        self.l = int(_check_l(self.l, "l"))
        if isinstance(self.c, bool) or not isinstance(self.c, (int, float)) or self.c <= 0:
            raise QueryError(f"c must be a number > 0, got {self.c!r}")

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        cls, _, counts = self._pairs(class_ids, n_classes, rows)
        order = np.lexsort((-counts, cls))  # by class, then count descending
        cls, counts = cls[order], counts[order]
        starts = np.searchsorted(cls, np.arange(n_classes))
        rank = np.arange(len(cls)) - starts[cls]
        r1 = np.zeros(n_classes)
        r1[cls[rank == 0]] = counts[rank == 0]
        tail = np.bincount(cls[rank >= self.l - 1], weights=counts[rank >= self.l - 1],
                           minlength=n_classes)
        distinct = np.bincount(cls, minlength=n_classes)
        return (distinct >= self.l) & (r1 < self.c * tail)

    def describe(self) -> str:
        return f"recursive ({self.c:g},{self.l})-diversity of {self.column}"


@dataclass
class TCloseness(_Sensitive):
    """t-closeness. ``distance`` is ``"equal"``, ``"ordered"`` (codes in value order) or
    ``"hierarchical"`` (``hierarchy``: the sensitive column's
    :class:`~pets.anon.hierarchy.Hierarchy` or an encoded one; codes are its leaf codes,
    as ``hierarchy.encode(column).codes`` gives). ``ordered=True`` is the older spelling
    of ``distance="ordered"``."""

    t: float = 0.2
    ordered: bool = False
    distance: str | None = None
    hierarchy: object = field(default=None, repr=False)
    name: str = field(default="t-closeness", init=False)
    _global: np.ndarray = field(init=False, repr=False, default_factory=lambda: np.zeros(0))
    _gen: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._check_codes()
        if isinstance(self.t, bool) or not isinstance(self.t, (int, float)) or not 0 <= self.t <= 1:
            raise QueryError(f"t must be a number in [0, 1], got {self.t!r}")
        if self.distance is None:
            self.distance = "ordered" if self.ordered else "equal"
        if self.distance not in T_DISTANCES:
            raise QueryError(f"distance must be one of {', '.join(T_DISTANCES)}, got {self.distance!r}")
        self.ordered = self.distance == "ordered"
        if self.distance == "hierarchical":
            h = self.hierarchy
            gen = getattr(h, "gen", None)
            if gen is None:
                gen = getattr(h, "_gen", None)
            if gen is None:
                raise QueryError(
                    "distance='hierarchical' needs hierarchy=<the sensitive column's Hierarchy>"
                )
            gen = np.asarray(gen, dtype=np.int64)
            if self.n_values > gen.shape[0]:
                raise QueryError(
                    f"the sensitive codes go up to {self.n_values - 1} but the hierarchy has "
                    f"{gen.shape[0]} leaves; use its leaf codes (hierarchy.encode(column).codes)"
                )
            self.n_values = gen.shape[0]
            if len(np.unique(gen[:, -1])) > 1:  # no single root: add one above the top
                gen = np.hstack([gen, np.zeros((gen.shape[0], 1), dtype=np.int64)])
            self._gen = gen
        m = max(int(self.n_values), 1)
        counts = np.bincount(self.codes, minlength=m).astype(np.float64)
        self._global = counts / max(counts.sum(), 1.0)

    def distances(self, class_ids: np.ndarray, n_classes: int, rows: np.ndarray | None = None) -> np.ndarray:
        """EMD of each class's sensitive distribution to the whole table's."""
        cls, val, counts = self._pairs(class_ids, n_classes, rows)
        sizes = np.bincount(cls, weights=counts, minlength=n_classes)
        p = counts / np.maximum(sizes[cls], 1)
        q = self._global
        if self.distance == "equal":
            # 0.5 · Σ|p − q| = 0.5 · (Σ_present (|p − q| − q) + Σ q), with Σ q = 1
            part = np.bincount(cls, weights=np.abs(p - q[val]) - q[val], minlength=n_classes)
            return 0.5 * (part + 1.0)
        m = len(q)
        if m <= 1:
            return np.zeros(n_classes)
        out = np.empty(n_classes)
        step = max(1, int(2e7 // m))  # dense blocks of classes × values
        for lo in range(0, n_classes, step):
            hi = min(n_classes, lo + step)
            sel = (cls >= lo) & (cls < hi)
            dense = np.zeros((hi - lo, m))
            dense[cls[sel] - lo, val[sel]] = p[sel]
            if self.distance == "ordered":
                out[lo:hi] = np.abs(np.cumsum(dense - q, axis=1)[:, :-1]).sum(axis=1) / (m - 1)
            else:
                out[lo:hi] = self._hierarchical(dense - q)
        return out

    def _onehots(self) -> list[np.ndarray]:
        """Per level h ≥ 1 of the hierarchy: the (level h−1 nodes × level h nodes) 0/1
        matrix of each node's parent (built once)."""
        cached = getattr(self, "_onehot_cache", None)
        if cached is not None:
            return cached
        gen = self._gen
        assert gen is not None
        out = []
        below = np.arange(gen.shape[0])  # the level-below node of each leaf
        for h in range(1, gen.shape[1]):
            n_below = int(below.max()) + 1
            parent = np.zeros(n_below, dtype=np.int64)
            parent[below] = gen[:, h]
            n_up = int(gen[:, h].max()) + 1
            onehot = np.zeros((n_below, n_up))
            onehot[np.arange(n_below), parent] = 1.0
            out.append(onehot)
            below = gen[:, h]
        self._onehot_cache = out
        return out

    def _hierarchical(self, diff: np.ndarray) -> np.ndarray:
        """Li et al.'s hierarchical EMD, one row of ``p − q`` (over the leaves) per class:
        at every inner node N of height h, min(mass to move in, mass to move out) among its
        children is moved at cost h / H (the children's surplus beyond it moves up)."""
        onehots = self._onehots()
        H = len(onehots)
        total = np.zeros(diff.shape[0])
        extra = diff  # surplus of each node of the level below (leaves first)
        for h, onehot in enumerate(onehots, start=1):
            pos = np.clip(extra, 0, None) @ onehot
            neg = np.clip(-extra, 0, None) @ onehot
            total += (h / H) * np.minimum(pos, neg).sum(axis=1)
            extra = pos - neg
        return total

    def distances_from_counts(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`distances` from the class × value count matrix (one row per class,
        ``n_values`` columns): the same EMD, computed on the dense rows."""
        q = self._global
        m = len(q)
        w = counts.sum(axis=1, keepdims=True)
        diff = counts / np.maximum(w, 1.0) - q
        if self.distance == "equal":
            return 0.5 * np.abs(diff).sum(axis=1)
        if m <= 1:
            return np.zeros(counts.shape[0])
        if self.distance == "ordered":
            return np.abs(np.cumsum(diff, axis=1)[:, :-1]).sum(axis=1) / (m - 1)
        return self._hierarchical(diff)

    def check_counts(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`check` from the class × value count matrix."""
        return self.distances_from_counts(counts) <= self.t + 1e-12

    def vertex_distances(self) -> np.ndarray:
        """EMD to the table's distribution of the distribution concentrated on each value
        (the largest distance of any distribution on a set of values is that of one of
        them: the EMD to a fixed distribution is convex)."""
        cached = getattr(self, "_vertex_cache", None)
        if cached is None:
            m = len(self._global)
            cached = np.concatenate([self.distances_from_counts(np.eye(m)[lo:lo + 512])
                                     for lo in range(0, m, 512)]) if m else np.zeros(0)
            self._vertex_cache = cached
        return cached

    def refine_bound(self, counts: np.ndarray) -> np.ndarray:
        """Rows of each class (rows of ``counts``) that every refinement must suppress.

        Proof: split a class C (w rows, distance D_C) into the rows of its passing
        subclasses (w_p) and of its failing ones (w_f = w − w_p). Each passing subclass is
        within t' = t + ε (ε the check's tolerance) of the table, so is their mixture (the
        EMD to a fixed distribution is convex). The failing rows' distribution lies on
        C's values, so its distance is at most V_C, the largest distance of a single
        value of C (convexity again). C is their mixture: D_C ≤ (w_p·t' + w_f·V_C) / w,
        so w_f ≥ w · (D_C − t') / (V_C − t') when D_C > t' (then V_C ≥ D_C > t')."""
        return self.check_and_bound(counts)[1]

    def check_and_bound(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`check_counts` and :meth:`refine_bound` from one distance computation."""
        tp = self.t + 1e-12
        w = counts.sum(axis=1)
        D = self.distances_from_counts(counts)
        ok = D <= tp
        if ok.all():
            return ok, np.zeros(len(w))
        V = np.where(counts > 0, self.vertex_distances()[None, :], -np.inf).max(axis=1)
        out = np.zeros(len(w))
        bad = D > tp
        out[bad] = w[bad] * (D[bad] - tp) / np.maximum(V[bad] - tp, 1e-300)
        return ok, np.minimum(out, w)

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        return self.distances(class_ids, n_classes, rows) <= self.t + 1e-12

    def describe(self) -> str:
        return f"{self.t:g}-closeness ({self.distance} distance) of {self.column}"


def _share(x: object, what: str, closed_zero: bool = True) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not (
        (0 <= float(x) <= 1) if closed_zero else (0 < float(x) <= 1)
    ):
        rng = "[0, 1]" if closed_zero else "(0, 1]"
        raise QueryError(f"{what} must be a number in {rng}, got {x!r}")
    return float(x)


def _check_population(population: object, what: str) -> None:
    import pandas as pd

    if population is None:
        return
    if isinstance(population, pd.DataFrame):
        return
    arr = np.asarray(population)
    if arr.ndim != 1 or arr.dtype != bool:
        raise QueryError(
            f"{what}: population must be a DataFrame (the population table) or a boolean mask "
            f"over the table's rows (True: in the released research subset), got {type(population).__name__}"
        )


class _PopulationModel(PrivacyModel):
    """A model that compares each released class with its population class.

    ``population`` is the population table (a DataFrame with the quasi-identifier
    columns, containing the released rows), or a boolean mask over the table given to
    :func:`~pets.anon.anonymize` (the table is then the population and the mask marks
    the research subset to release). :func:`~pets.anon.anonymize` encodes it with the
    quasi-identifiers' hierarchies into ``population_codes`` (one leaf-code array per
    quasi-identifier, in the search's order) — give those directly to
    :func:`~pets.anon.lattice.optimal_full_domain`.
    """

    uses_population = True
    population: object = None
    population_codes: list[np.ndarray] | None = None

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        raise QueryError(f"{self.describe()} is checked against the population's classes (check_population)")

    def check_population(self, sizes: np.ndarray, population_sizes: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass
class DeltaPresence(_PopulationModel):
    dmin: float = 0.0
    dmax: float = 1.0
    population: object = field(default=None, repr=False)
    population_codes: list[np.ndarray] | None = field(default=None, repr=False)
    name: str = field(default="δ-presence", init=False)

    def __post_init__(self) -> None:
        self.dmin = _share(self.dmin, "dmin")
        self.dmax = _share(self.dmax, "dmax")
        if self.dmin > self.dmax:
            raise QueryError(f"dmin ({self.dmin:g}) must be at most dmax ({self.dmax:g})")
        if self.population is None and self.population_codes is None:
            raise QueryError("δ-presence needs population= (the population table, or a mask of the research subset)")
        _check_population(self.population, "DeltaPresence")

    def check_population(self, sizes, population_sizes):  # type: ignore[no-untyped-def]
        delta = sizes / np.maximum(population_sizes, 1.0)
        return (delta >= self.dmin - 1e-12) & (delta <= self.dmax + 1e-12)

    def describe(self) -> str:
        return f"({self.dmin:g}, {self.dmax:g})-presence"


def _poisson_cdf(x: int, lam: float) -> float:
    """P(Poisson(lam) <= x)."""
    if x < 0:
        return 0.0
    if lam == 0:
        return 1.0
    i = np.arange(0, x + 1, dtype=np.float64)
    logs = i * math.log(lam) - lam - np.array([math.lgamma(v + 1) for v in i])
    return float(min(1.0, np.exp(logs).sum()))


@dataclass
class KMap(_PopulationModel):
    k: int = 2
    population: object = field(default=None, repr=False)
    sample_fraction: float | None = None
    estimator: str = "zero-truncated-poisson"
    significance: float = 0.01
    population_codes: list[np.ndarray] | None = field(default=None, repr=False)
    name: str = field(default="k-map", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise QueryError(f"k must be an integer >= 1, got {self.k!r}")
        self.k = int(self.k)
        has_pop = self.population is not None or self.population_codes is not None
        if has_pop == (self.sample_fraction is not None):
            raise QueryError("k-map takes either population= (a population table) or sample_fraction= (an estimate), not both")
        _check_population(self.population, "KMap")
        if isinstance(self.population, np.ndarray) or (
            self.population is not None and not hasattr(self.population, "columns")
        ):
            raise QueryError("KMap: population must be the population table (a DataFrame)")
        if self.sample_fraction is not None:
            self.sample_fraction = _share(self.sample_fraction, "sample_fraction", closed_zero=False)
            if self.estimator not in KMAP_ESTIMATORS:
                raise QueryError(f"estimator must be one of {', '.join(KMAP_ESTIMATORS)}, got {self.estimator!r}")
            self.significance = _share(self.significance, "significance")
            self.uses_population = False

    def derived_k(self) -> int:
        """With an estimate: the smallest sample class size f such that, with the
        population class size F ~ Poisson(f / π) (zero-truncated: given F ≥ 1),
        P(F < k) ≤ significance. Classes of at least that size pass."""
        if self.sample_fraction is None:
            raise QueryError("derived_k() needs sample_fraction")
        if self.k <= 1:
            return 1
        pi = float(self.sample_fraction)
        for f in range(1, 100 * self.k + 1000):
            lam = f / pi
            p = _poisson_cdf(self.k - 1, lam)
            if self.estimator == "zero-truncated-poisson":
                e0 = math.exp(-lam)
                p = (p - e0) / (1.0 - e0) if e0 < 1 else 1.0
            if p <= self.significance:
                return f
        return 100 * self.k + 1000

    def check_population(self, sizes, population_sizes):  # type: ignore[no-untyped-def]
        return population_sizes >= self.k

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        if self.sample_fraction is None:
            return super().check(class_ids, n_classes, rows)
        return np.bincount(class_ids, minlength=n_classes) >= self.derived_k()

    def describe(self) -> str:
        if self.sample_fraction is None:
            return f"{self.k}-map"
        return (f"{self.k}-map (estimated: {self.estimator}, sample fraction {self.sample_fraction:g}, "
                f"significance {self.significance:g})")


class _TableModel(PrivacyModel):
    table_level = True

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        ok = self.check_table(np.bincount(class_ids, minlength=n_classes))
        return np.full(n_classes, bool(ok))

    def check_table(self, sizes: np.ndarray) -> bool:
        raise NotImplementedError


@dataclass
class AverageReidentificationRisk(_TableModel):
    max_risk: float = 0.2
    name: str = field(default="average re-identification risk", init=False)

    def __post_init__(self) -> None:
        self.max_risk = _share(self.max_risk, "max_risk", closed_zero=False)

    def value(self, sizes: np.ndarray) -> float:
        sizes = np.asarray(sizes)
        sizes = sizes[sizes > 0]
        return float(len(sizes) / sizes.sum()) if sizes.size else 0.0

    def check_table(self, sizes):  # type: ignore[no-untyped-def]
        return self.value(sizes) <= self.max_risk + 1e-12

    def describe(self) -> str:
        return f"average re-identification risk <= {self.max_risk:g}"


@dataclass
class SampleUniques(_TableModel):
    max_share: float = 0.0
    name: str = field(default="sample uniques", init=False)

    def __post_init__(self) -> None:
        self.max_share = _share(self.max_share, "max_share")

    def value(self, sizes: np.ndarray) -> float:
        sizes = np.asarray(sizes)
        total = float(sizes.sum())
        return float(np.count_nonzero(sizes == 1) / total) if total else 0.0

    def check_table(self, sizes):  # type: ignore[no-untyped-def]
        return self.value(sizes) <= self.max_share + 1e-12

    def describe(self) -> str:
        return f"sample uniques <= {self.max_share:g}"


@dataclass
class PopulationUniqueness(_TableModel):
    max_risk: float = 0.01
    model: str = "dankar"
    sample_fraction: float = 0.1
    name: str = field(default="population uniqueness", init=False)
    monotone = False

    def __post_init__(self) -> None:
        from .risk import _check_model

        self.max_risk = _share(self.max_risk, "max_risk")
        self.sample_fraction = _share(self.sample_fraction, "sample_fraction", closed_zero=False)
        self.model = _check_model(self.model)

    def value(self, sizes: np.ndarray) -> float:
        """The estimated share of the population that is unique (NaN: no estimate)."""
        from .risk import estimate_population_uniques

        return estimate_population_uniques(sizes, self.sample_fraction, self.model).share

    def check_table(self, sizes):  # type: ignore[no-untyped-def]
        v = self.value(sizes)
        return bool(v == v and v <= self.max_risk + 1e-12)  # no estimate: fails

    def describe(self) -> str:
        return (f"population uniqueness <= {self.max_risk:g} ({self.model}, sample fraction "
                f"{self.sample_fraction:g})")
