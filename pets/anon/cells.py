"""Cell suppression: replace the fewest quasi-identifier cells by ``*`` (μ-Argus / ARX style
local suppression) instead of generalising whole columns or removing whole rows.

The values are released as they are (level 0 of a hierarchy, when one is given) or as
``*``. The greedy, in rounds: take every released class that fails a model (fewer than k
rows, or an l / t / k-map check); for each, choose the quasi-identifier whose suppression
moves the class into the *largest* existing class (ties: the column with more distinct
values, then the first), and suppress that cell in all its rows. A class whose cells are
all ``*`` cannot merge further. With k-anonymity alone, a second pass then *restores*
cells where it can: a row moves back to the class with one more of its values when that
class already holds at least k − 1 rows and the class it leaves keeps k rows or none.

Guarantee: classes are those of the released *labels* (a ``*`` is one value, shared by
every row that has it; a raw value ``*`` in the data is the same label). After the greedy
every released class is checked again against every model; the rows of any class that
still fails (only the all-``*`` class can) are removed as whole rows, within
``max_suppression``; models on the whole table (average risk, sample uniques) are then
checked on the result and the call fails if they do not hold. Models against a
population table (δ-presence, k-map with a population) are refused: their population
classes are not defined for a ``*`` in one row and a value in another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import QueryError
from .models import KAnonymity, PrivacyModel

__all__ = ["CellResult", "suppress_cells", "STAR"]

#: the code (and, released, the label "*") of a suppressed cell
STAR = -1


@dataclass
class CellResult:
    """``codes`` (n × d) the released code of each cell (:data:`STAR` where suppressed),
    ``starred`` the bool mask of suppressed cells, ``suppressed`` the bool mask of rows
    removed whole, ``class_ids`` / ``n_classes`` the released classes of the kept rows,
    ``rounds`` the greedy's rounds, ``restored`` the cells given back by the second pass."""

    codes: np.ndarray
    starred: np.ndarray
    suppressed: np.ndarray
    class_ids: np.ndarray
    n_classes: int
    rounds: int
    restored: int
    seconds: float
    given: np.ndarray | None = None

    @property
    def cells_suppressed(self) -> int:
        """Cells this suppression turned into ``*`` in the released rows (rows removed
        whole are not counted, nor cells that were ``*`` in the data)."""
        new = self.starred if self.given is None else self.starred & ~self.given
        return int(np.count_nonzero(new[~self.suppressed]))


def refuse_models(models: Sequence[PrivacyModel]) -> None:
    """Cell suppression supports the per-class models and the whole-table ones; not the
    models against a population table."""
    for m in models:
        if getattr(m, "uses_population", False):
            raise QueryError(
                f"recoding='cells' cannot guarantee {m.describe()} (its population classes are not "
                "defined for suppressed cells); use recoding='global' or 'local'"
            )


class _Radix:
    """Rows of codes (>= STAR) as one int64 each (mixed radix), or None when the product
    of the columns' ranges does not fit: then rows are compared whole (slower)."""

    def __init__(self, C: np.ndarray) -> None:
        top = (C.max(axis=0) + 2).astype(object) if len(C) else np.ones(C.shape[1], dtype=object)
        prod = 1
        for t in top:
            prod *= int(t)
        self.mult: np.ndarray | None = None
        if prod < 2**62:
            m = np.ones(C.shape[1], dtype=np.int64)
            for j in range(C.shape[1] - 2, -1, -1):
                m[j] = m[j + 1] * int(top[j + 1])
            self.mult = m

    def unique(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first row of each distinct row, inverse, counts)."""
        if self.mult is None:
            keys, inv, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
            return keys, np.asarray(inv).reshape(-1).astype(np.int64), counts.astype(np.int64)
        h = (X + 1) @ self.mult
        u, first, inv, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
        return X[first], np.asarray(inv).reshape(-1).astype(np.int64), counts.astype(np.int64)


def _classes(C: np.ndarray, radix: _Radix | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (radix or _Radix(C)).unique(C)


def _failing(models: Sequence[PrivacyModel], ids: np.ndarray, nc: int,
             rows: np.ndarray | None = None) -> np.ndarray:
    """Per class: fails a per-class model (whole-table models are checked at the end)."""
    from .local import _subset_models

    ok = np.ones(nc, dtype=bool)
    use = [m for m in models if not getattr(m, "table_level", False)]
    if rows is not None:
        use = _subset_models(use, rows)
    for m in use:
        ok &= np.asarray(m.check(ids, nc), dtype=bool)
    return ~ok


def suppress_cells(codes: Sequence[np.ndarray], models: Sequence[PrivacyModel],
                   max_suppression: float = 0.0) -> CellResult:
    """Suppress cells of the (n × d) integer ``codes`` (one array per quasi-identifier,
    codes >= 0; :data:`STAR` for a cell already ``*``) until every class of the released
    codes satisfies ``models``. See the module's docstring for the greedy and the
    guarantee. Raises :class:`~pets.errors.QueryError` when the rows left failing exceed
    ``max_suppression`` or a whole-table model fails."""
    t0 = time.perf_counter()
    refuse_models(models)
    C = np.column_stack([np.asarray(c, dtype=np.int64) for c in codes])
    orig = C.copy()
    n, d = C.shape
    # preference among equally good columns: more distinct values first, then the first column
    card = np.array([len(np.unique(C[:, j])) for j in range(d)], dtype=np.int64)
    pref = np.empty(d, dtype=np.int64)
    pref[np.lexsort((-np.arange(d), card))] = np.arange(d)  # higher is preferred
    radix = _Radix(C)
    rounds = 0
    while True:
        keys, inv, counts = _classes(C, radix)
        bad = np.flatnonzero(_failing(models, inv, len(keys)))
        if not len(bad):
            break
        bk = keys[bad]
        movable = bk != STAR  # (B × d)
        if not movable.any():
            break
        rounds += 1
        T = np.repeat(bk[None, :, :], d, axis=0)  # (d × B × d): class b with column j starred
        for j in range(d):
            T[j, :, j] = STAR
        both = np.vstack([keys, T.reshape(-1, d)])
        _, inv2, _ = radix.unique(both)
        size = np.zeros(int(inv2.max()) + 1, dtype=np.int64)
        size[inv2[: len(keys)]] = counts
        target = size[inv2[len(keys):]].reshape(d, len(bad))  # size of the class it would join
        score = target * (d + 1) + pref[:, None]
        score[~movable.T] = -1
        choice = score.argmax(axis=0)
        has = score.max(axis=0) >= 0
        col_of_class = np.full(len(keys), -1, dtype=np.int64)
        col_of_class[bad[has]] = choice[has]
        rows = np.flatnonzero(col_of_class[inv] >= 0)
        C[rows, col_of_class[inv[rows]]] = STAR
    restored = 0
    only_k = all(isinstance(m, KAnonymity) for m in models)
    kmax = max([m.k for m in models if isinstance(m, KAnonymity)], default=1)
    if only_k:
        _fill_all_star(C, kmax, radix)
    if only_k and rounds:
        restored = _restore(C, orig, kmax)
    # the released table, checked again: classes still failing are removed as rows
    keys, inv, counts = _classes(C, radix)
    fail = _failing(models, inv, len(keys))
    suppressed = fail[inv]
    limit = int(np.floor(max_suppression * n + 1e-9))
    if int(suppressed.sum()) > limit:
        from .lattice import _describe

        raise QueryError(
            f"no cell suppression found that satisfies {_describe(list(models))} with at most "
            f"{limit:,} of {n:,} rows suppressed (max_suppression={max_suppression:g}); allow (more) "
            "suppression, or lower k (or l, or raise t)"
        )
    keep = np.flatnonzero(~suppressed)
    kept_keys, ids, _ = _classes(C[keep]) if len(keep) else (np.zeros((0, d)), np.zeros(0, np.int64), None)
    nc = len(kept_keys)
    if len(keep):  # once more on the kept rows alone, every model (whole-table ones too)
        from .local import _subset_models

        for m in _subset_models(list(models), keep):
            if not np.asarray(m.check(ids, nc), dtype=bool).all():
                raise QueryError(
                    f"no cell suppression found that satisfies {m.describe()} within "
                    f"max_suppression={max_suppression:g}; use recoding='global' or 'local'"
                )
    return CellResult(codes=C, starred=(C == STAR), suppressed=suppressed, class_ids=ids,
                      n_classes=int(nc), rounds=rounds, restored=restored,
                      seconds=time.perf_counter() - t0, given=(orig == STAR))


def _fill_all_star(C: np.ndarray, k: int, radix: _Radix) -> None:
    """An all-``*`` class of fewer than k rows (it cannot merge further) takes whole rows
    from the classes that can spare them (largest spare first; their last rows), all
    their cells starred, rather than leaving its rows to be removed; when they cannot
    spare enough, the smallest classes join it whole."""
    stars = (C == STAR).all(axis=1)
    s = int(stars.sum())
    if s == 0 or s >= k:
        return
    keys, inv, counts = _classes(C, radix)
    need = k - s
    other = ~(keys == STAR).all(axis=1)
    spare = np.where(other, counts - k, 0)
    if spare[spare > 0].sum() >= need:
        for c in np.argsort(-spare, kind="stable").tolist():
            if need <= 0 or spare[c] <= 0:
                break
            take = min(need, int(spare[c]))
            C[np.flatnonzero(inv == c)[-take:]] = STAR
            need -= take
        return
    for c in np.argsort(np.where(other, counts, np.iinfo(np.int64).max), kind="stable").tolist():
        if need <= 0 or not other[c]:
            break
        C[inv == c] = STAR
        need -= int(counts[c])


def _restore(C: np.ndarray, orig: np.ndarray, k: int) -> int:
    """Give back suppressed cells where k-anonymity still holds (rows in input order, columns
    in order). Returns the number of cells restored."""
    keys, inv, counts = _classes(C)
    size: dict[tuple[int, ...], int] = {tuple(kk): int(c) for kk, c in zip(keys.tolist(), counts.tolist())}
    restored = 0
    for r in np.flatnonzero((C == STAR).any(axis=1)).tolist():
        row = C[r].tolist()
        for j in range(len(row)):
            if row[j] != STAR or orig[r, j] == STAR:
                continue
            cur = tuple(row)
            cand = list(row)
            cand[j] = int(orig[r, j])
            ct = tuple(cand)
            left = size[cur] - 1
            if size.get(ct, 0) + 1 >= k and (left == 0 or left >= k):
                size[cur] = left
                size[ct] = size.get(ct, 0) + 1
                row = cand
                restored += 1
        C[r] = row
    return restored
