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
  for categories, ordered distance (|i − j| / (m − 1)) for ordered / numeric values.

Merging two classes that satisfy a model never breaks it (sizes add, distinct values
unite, entropy and EMD are concave / convex in the mixture). With suppression, only
k-anonymity and distinct l-diversity are monotone in the rows a transformation must
suppress — a passing class merged with a failing one can fail the others — so the
lattice search prunes with those two only. None protects against linking several releases of
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
]


class PrivacyModel:
    """Base class. ``check(class_ids, n_classes, rows=None)`` → bool per class.

    ``class_ids[i]`` is the class (0 … n_classes − 1) of row ``rows[i]`` (of row ``i``
    when ``rows`` is None).
    """

    name: str = ""
    monotone: bool = True

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
        uniq, counts = np.unique(key, return_counts=True)
        return uniq // m, uniq % m, counts


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
    t: float = 0.2
    ordered: bool = False
    name: str = field(default="t-closeness", init=False)
    _global: np.ndarray = field(init=False, repr=False, default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self._check_codes()
        if isinstance(self.t, bool) or not isinstance(self.t, (int, float)) or not 0 <= self.t <= 1:
            raise QueryError(f"t must be a number in [0, 1], got {self.t!r}")
        m = max(int(self.n_values), 1)
        counts = np.bincount(self.codes, minlength=m).astype(np.float64)
        self._global = counts / max(counts.sum(), 1.0)

    def distances(self, class_ids: np.ndarray, n_classes: int, rows: np.ndarray | None = None) -> np.ndarray:
        """EMD of each class's sensitive distribution to the whole table's."""
        cls, val, counts = self._pairs(class_ids, n_classes, rows)
        sizes = np.bincount(cls, weights=counts, minlength=n_classes)
        p = counts / np.maximum(sizes[cls], 1)
        q = self._global
        if not self.ordered:
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
            out[lo:hi] = np.abs(np.cumsum(dense - q, axis=1)[:, :-1]).sum(axis=1) / (m - 1)
        return out

    def check(self, class_ids, n_classes, rows=None):  # type: ignore[no-untyped-def]
        return self.distances(class_ids, n_classes, rows) <= self.t + 1e-12

    def describe(self) -> str:
        kind = "ordered" if self.ordered else "equal"
        return f"{self.t:g}-closeness ({kind} distance) of {self.column}"
