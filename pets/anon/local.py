"""Local recoding: full-domain generalisation repeated on the records still suppressed.

Full-domain generalisation gives each quasi-identifier one level for the whole table
and suppresses the classes that fail the models. Local recoding (as ARX offers it)
keeps that result for the released records and searches again *on the suppressed
records alone*: they get their own levels (usually higher), and only those that fail
again stay suppressed. This repeats until no record is left, no transformation of the
remainder satisfies the models, or an iteration releases nothing more. Fewer records
are suppressed, at the price of a column mixing levels (``30-39`` next to ``*``).

Guarantee: the released classes are those of the *released labels* (records of two
iterations whose labels coincide form one class). After the iterations every released
class is checked again against every model; a class that fails (possible only when
merging classes of two iterations breaks a model that merging can break) is suppressed.
The total suppressed never exceeds the first iteration's, which is within
``max_suppression``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import QueryError
from . import metrics as _metrics
from .lattice import SearchResult
from .models import KAnonymity, PrivacyModel

__all__ = ["LocalResult", "local_recoding"]


@dataclass
class LocalResult:
    """``row_levels`` (n × d) each row's level per QI (the top level for suppressed
    rows), ``suppressed`` bool per row, ``iterations`` the searches run (the first is the
    global one), ``first`` the global result, ``metrics`` the loss etc. of the local
    recoding (per-row levels, :func:`~pets.anon.metrics.per_qi`)."""

    row_levels: np.ndarray
    suppressed: np.ndarray
    iterations: list[SearchResult]
    first: SearchResult
    metrics: dict[str, float]
    seconds: float

    @property
    def n_suppressed(self) -> int:
        return int(np.count_nonzero(self.suppressed))


def _subset_models(models: Sequence[PrivacyModel], idx: np.ndarray) -> list[PrivacyModel]:
    out = []
    for m in models:
        codes = getattr(m, "codes", None)
        if codes is None or isinstance(m, KAnonymity):
            out.append(m)
            continue
        m2 = copy.copy(m)  # keeps what the model derived from the whole table (t-closeness: its distribution)
        m2.codes = np.asarray(codes)[idx]
        out.append(m2)
    return out


def _subset_qis(qis: Sequence[Any], idx: np.ndarray) -> list[Any]:
    return [replace(e, codes=np.asarray(e.codes)[idx]) for e in qis]


def _released_classes(qis: Sequence[Any], row_levels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Classes of the kept rows by their released labels (label text, so equal labels of
    different levels or iterations are one class)."""
    cols = {}
    for j, e in enumerate(qis):
        gen = np.asarray(e.gen)
        labs = [np.asarray(e.labels[h], dtype=object) for h in range(gen.shape[1])]
        codes = np.asarray(e.codes)[keep]
        lv = row_levels[keep, j]
        text = np.empty(len(codes), dtype=object)
        for h in np.unique(lv):
            sel = lv == h
            text[sel] = labs[h][gen[codes[sel], h]]
        cols[j] = text
    frame = pd.DataFrame(cols)
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64), 0
    ids = frame.groupby(list(cols), sort=False).ngroup().to_numpy().astype(np.int64)
    return ids, int(ids.max()) + 1


def local_recoding(
    qis: list[Any],
    models: list[PrivacyModel],
    search: Callable[..., SearchResult],
    max_suppression: float = 0.0,
    max_iterations: int = 20,
    gs_factor: float = 0.5,
    **search_kw: Any,
) -> LocalResult:
    """Run ``search(qis, models, max_suppression, **search_kw)`` (the optimal or the
    heuristic full-domain search) on the table, then again on the rows it suppressed,
    up to ``max_iterations`` times. See the module's docstring for the guarantee."""
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise QueryError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    t0 = time.perf_counter()
    n = len(qis[0].codes)
    d = len(qis)
    tops = np.array([np.asarray(e.gen).shape[1] - 1 for e in qis], dtype=np.int64)
    row_levels = np.tile(tops, (n, 1))
    first = search(qis, models, max_suppression, **search_kw)
    iterations = [first]
    kept = ~first.suppressed
    row_levels[kept] = np.asarray(first.levels, dtype=np.int64)
    remaining = np.flatnonzero(first.suppressed)
    kmax = max([int(m.k) for m in models if isinstance(m, KAnonymity)], default=1)
    while len(remaining) and len(iterations) < max_iterations and len(remaining) >= kmax:
        try:
            res = search(_subset_qis(qis, remaining), _subset_models(models, remaining),
                         max_suppression, **search_kw)
        except QueryError:
            break  # nothing of the remainder can be released
        if res.n_suppressed >= len(remaining):
            break
        iterations.append(res)
        rel = remaining[~res.suppressed]
        row_levels[rel] = np.asarray(res.levels, dtype=np.int64)
        remaining = remaining[res.suppressed]
    suppressed = np.zeros(n, dtype=bool)
    suppressed[remaining] = True
    # every released class (by label) against every model, once more
    keep = ~suppressed
    ids, nc = _released_classes(qis, row_levels, keep)
    if nc:
        rows = np.flatnonzero(keep)
        ok = np.ones(nc, dtype=bool)
        for m in models:
            sub = _subset_models([m], rows)[0]
            ok &= np.asarray(sub.check(ids, nc), dtype=bool)
        if not ok.all():
            suppressed[rows[~ok[ids]]] = True
    row_levels[suppressed] = tops
    metrics = {m: _metrics.aggregate(_metrics.per_qi(qis, row_levels, suppressed, m, gs_factor), agg)
               for m, agg in _metrics.PER_QI_METRICS.items()}
    s = int(np.count_nonzero(suppressed))
    metrics["suppressed"] = float(s)
    metrics["suppressed_share"] = s / n
    metrics["iterations"] = float(len(iterations))
    return LocalResult(row_levels=row_levels, suppressed=suppressed, iterations=iterations,
                       first=first, metrics=metrics, seconds=time.perf_counter() - t0)
