"""Strict multidimensional Mondrian (LeFevre, DeWitt & Ramakrishnan, ICDE 2006), local
recoding.

The table is cut recursively: a partition is split on one quasi-identifier at the
median of its values (values ≤ median to the left, > median to the right); the split
is allowed only when both halves satisfy every privacy model. The dimension tried first
is the one with the widest normalised range in the partition, then the next widest, and
so on; a partition with no allowed split becomes an equivalence class, released as the
[lo, hi] range of each quasi-identifier over its rows.

Speed. Every quasi-identifier is an integer ordinal code, so the median of a partition
is found by counting (bincount over the partition's range of codes) rather than sorting,
and all the partitions of one depth of the cut tree are processed together in a few
vectorised numpy passes over their rows: the number of Python-level steps grows with the
depth of the tree (~log₂(n / k)), not with the number of partitions. The rows of each
partition stay contiguous in an index array; a split is a stable, counting-based
partition of that array. Privacy models are checked for all candidate splits of a depth
in one call (class ids 2·p and 2·p + 1 for the two halves of partition p); k-anonymity
alone is checked from the half sizes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from ..errors import QueryError
from .models import KAnonymity, PrivacyModel

__all__ = ["MondrianResult", "mondrian"]


@dataclass
class MondrianResult:
    """The partition found by :func:`mondrian`.

    ``class_ids[i]`` is the equivalence class of row ``i`` (0 … n_classes − 1, classes
    numbered in the left-to-right order of the cut tree's leaves); ``ranges[j][c]`` is
    the inclusive ``[lo, hi]`` of the ordinal codes of quasi-identifier ``j`` over the
    rows of class ``c``; ``seconds`` the wall time of the search.
    """

    class_ids: np.ndarray
    n_classes: int
    ranges: list[np.ndarray]
    seconds: float


def _is_plain_k(model: PrivacyModel) -> bool:
    return isinstance(model, KAnonymity) and type(model).check is KAnonymity.check


def _excl_cumsum(a: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), dtype=np.int64)
    if len(a):
        out[0] = 0
        np.cumsum(a[:-1], out=out[1:])
    return out


def _validate(columns, spans):  # type: ignore[no-untyped-def]
    if not isinstance(columns, (list, tuple)) or len(columns) == 0:
        raise QueryError("mondrian needs at least one quasi-identifier column")
    cols = []
    n = None
    for j, c in enumerate(columns):
        a = np.asarray(c)
        if a.ndim != 1:
            raise QueryError(f"quasi-identifier column {j} must be one-dimensional")
        if a.dtype.kind not in "iub":
            raise QueryError(f"quasi-identifier column {j} must hold integer ordinal codes")
        if n is None:
            n = len(a)
        elif len(a) != n:
            raise QueryError(
                f"quasi-identifier columns have unequal lengths ({n} and {len(a)} rows)"
            )
        if len(a) and a.min() < 0:
            raise QueryError(f"quasi-identifier column {j} has negative codes")
        cols.append(a.astype(np.int64, copy=False))
    assert n is not None
    if n == 0:
        raise QueryError("the table is empty: nothing to anonymise")
    maxes = np.array([int(c.max()) for c in cols], dtype=np.int64)
    if spans is None:
        sp = np.maximum(maxes, 1).astype(np.float64)
    else:
        if len(spans) != len(cols):
            raise QueryError(
                f"spans has {len(spans)} entries for {len(cols)} quasi-identifiers"
            )
        sp = np.asarray(spans, dtype=np.float64)
        if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
            raise QueryError("spans must be positive finite numbers")
    top = int(maxes.max())
    dtype = np.int16 if top < 2**15 - 1 else np.int32 if top < 2**31 - 1 else np.int64
    X = np.empty((len(cols), n), dtype=dtype)
    for j, c in enumerate(cols):
        X[j] = c
    return X, sp, n


def mondrian(
    columns: list[np.ndarray],
    models: list[PrivacyModel],
    *,
    spans: list[float] | None = None,
    progress: bool = False,
) -> MondrianResult:
    """Strict multidimensional Mondrian partition of the rows.

    ``columns[j]``: int array (n_rows,) of ordinal codes (0 … m_j − 1) of
    quasi-identifier j. ``models``: the privacy models every class must satisfy.
    ``spans[j]``: the width that normalises a partition's range in dimension j when
    choosing the dimension to cut (default m_j − 1, the column's largest code).

    Raises :class:`~pets.errors.QueryError` when the whole table does not satisfy the
    models (no release is possible) or the input is malformed.
    """
    t0 = time.perf_counter()
    X, spans_arr, n = _validate(columns, spans)
    d = X.shape[0]
    models = list(models)
    for m in models:
        if not isinstance(m, PrivacyModel):
            raise QueryError(f"not a privacy model: {m!r}")
    k_min = max([m.k for m in models if isinstance(m, KAnonymity) and _is_plain_k(m)], default=1)
    others = [m for m in models if not _is_plain_k(m)]

    # the whole table must satisfy the models, or nothing can be released
    whole_ok = n >= k_min and all(
        bool(np.all(m.check(np.zeros(n, dtype=np.int64), 1, np.arange(n)))) for m in others
    )
    if not whole_ok:
        names = ", ".join(m.describe() for m in models) or "the models"
        raise QueryError(
            f"the whole table does not satisfy {names}; lower k / l / t"
        )

    def allowed(rows: np.ndarray, lseg: np.ndarray, side: np.ndarray, nseg: int,
                left: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Which of ``nseg`` candidate splits are allowed: both halves non-empty, of at
        least k rows, and satisfying every other model."""
        ok = (left >= max(k_min, 1)) & (size - left >= max(k_min, 1))
        if not others or not ok.any():
            return ok
        sel = ok[lseg]
        if not sel.all():
            # compact to the candidates that passed the size test
            remap = np.cumsum(ok) - 1
            rows, lseg, side = rows[sel], remap[lseg[sel]], side[sel]
            nc = int(ok.sum())
        else:
            remap = None
            nc = nseg
        cls = 2 * lseg.astype(np.int64) + side
        good = np.ones(2 * nc, dtype=bool)
        for m in others:
            good &= np.asarray(m.check(cls, 2 * nc, rows), dtype=bool)
        both = good[0::2] & good[1::2]
        if remap is None:
            return both
        out = np.zeros(nseg, dtype=bool)
        out[np.flatnonzero(ok)] = both
        return out

    # active partitions: rows grouped by partition, contiguous
    rows = np.arange(n, dtype=np.int64)
    sizes = np.array([n], dtype=np.int64)
    gstart = np.array([0], dtype=np.int64)  # position in the final leaf order

    class_ids = np.empty(n, dtype=np.int64)
    fin_gstart: list[np.ndarray] = []
    fin_lo: list[np.ndarray] = []
    fin_hi: list[np.ndarray] = []
    n_final = 0
    depth = 0

    while len(sizes):
        nseg = len(sizes)
        na = len(rows)
        starts = _excl_cumsum(sizes)
        seg = np.repeat(np.arange(nseg, dtype=np.int64), sizes)
        V = X[:, rows]  # (d, na)
        lo = np.minimum.reduceat(V, starts, axis=1)  # (d, nseg)
        hi = np.maximum.reduceat(V, starts, axis=1)
        width = (hi - lo) / spans_arr[:, None]
        pref = np.argsort(-width, axis=0, kind="stable")  # dims, widest first
        n_splittable = (hi > lo).sum(axis=0)

        undecided = (n_splittable > 0) & (sizes >= 2 * max(k_min, 1))
        split_dim = np.full(nseg, -1, dtype=np.int64)
        split_cut = np.zeros(nseg, dtype=np.int64)
        split_left = np.zeros(nseg, dtype=np.int64)

        for a in range(d):
            cand_mask = undecided & (n_splittable > a)
            if not cand_mask.any():
                break
            cand = np.flatnonzero(cand_mask)
            if len(cand) == nseg:
                rsel = None
                c_rows_pos = np.arange(na)
                lseg = seg
            else:
                rsel = cand_mask[seg]
                c_rows_pos = np.flatnonzero(rsel)
                remap = np.cumsum(cand_mask) - 1
                lseg = remap[seg[c_rows_pos]]
            nc = len(cand)
            csz = sizes[cand]
            cst = _excl_cumsum(csz)
            dim = pref[a, cand]
            clo = lo[dim, cand].astype(np.int64)
            chi = hi[dim, cand].astype(np.int64)
            vals = V[dim[lseg], c_rows_pos].astype(np.int64)
            rel = vals - clo[lseg]
            rng = chi - clo + 1
            total_bins = int(rng.sum())
            mid = cst + (csz - 1) // 2  # rank of the lower median within the subset
            if total_bins <= 4 * len(vals) + 65536:
                off = _excl_cumsum(rng)
                cnt = np.bincount(off[lseg] + rel, minlength=total_bins)
                C = np.cumsum(cnt)
                b = np.searchsorted(C, mid, side="right")
                med = clo + (b - off)
                le = C[b] - cst
                lt = le - cnt[b]
            else:
                R = int(rng.max())
                key = lseg * R + rel
                S = np.sort(key)
                mk = S[mid]
                med = clo + (mk - np.arange(nc, dtype=np.int64) * R)
                le = np.searchsorted(S, mk, side="right") - cst
                lt = np.searchsorted(S, mk, side="left") - cst
            # two candidate cuts: ≤ median (cut = med) and < median (cut = med − 1);
            # the more balanced one first
            prefer_lt = np.abs(2 * lt - csz) < np.abs(2 * le - csz)
            first_left = np.where(prefer_lt, lt, le)
            first_cut = np.where(prefer_lt, med - 1, med)
            second_left = np.where(prefer_lt, le, lt)
            second_cut = np.where(prefer_lt, med, med - 1)

            cut_row = first_cut[lseg]
            side = (vals > cut_row).astype(np.int64)
            ok1 = allowed(rows[c_rows_pos], lseg, side, nc, first_left, csz)
            ok = ok1.copy()
            left = np.where(ok1, first_left, 0)
            cut = np.where(ok1, first_cut, 0)
            retry = ~ok1 & (second_left > 0) & (second_left < csz)
            if retry.any():
                rs = retry[lseg]
                sub_pos = np.flatnonzero(rs)
                remap2 = np.cumsum(retry) - 1
                lseg2 = remap2[lseg[sub_pos]]
                ridx = np.flatnonzero(retry)
                side2 = (vals[sub_pos] > second_cut[ridx][lseg2]).astype(np.int64)
                ok2 = allowed(rows[c_rows_pos[sub_pos]], lseg2, side2, len(ridx),
                              second_left[ridx], csz[ridx])
                good2 = ridx[ok2]
                ok[good2] = True
                left[good2] = second_left[good2]
                cut[good2] = second_cut[good2]
            done = cand[ok]
            split_dim[done] = dim[ok]
            split_cut[done] = cut[ok]
            split_left[done] = left[ok]
            undecided[done] = False

        is_split = split_dim >= 0
        is_final = ~is_split
        # record the final classes
        nf = int(is_final.sum())
        if nf:
            fidx = np.flatnonzero(is_final)
            frow = is_final[seg]
            class_ids[rows[frow]] = n_final + (np.cumsum(is_final) - 1)[seg[frow]]
            fin_gstart.append(gstart[fidx])
            fin_lo.append(lo[:, fidx])
            fin_hi.append(hi[:, fidx])
            n_final += nf
        if progress:
            print(
                f"mondrian depth {depth}: {nseg} partitions over {na} rows, "
                f"{int(is_split.sum())} split, {n_final} classes so far",
                file=sys.stderr,
            )
        depth += 1
        if not is_split.any():
            break

        # split: stable partition of each split segment's rows into left | right
        sidx = np.flatnonzero(is_split)
        if nf:
            rsel = is_split[seg]
            pos = np.flatnonzero(rsel)
            srows = rows[pos]
            remap = np.cumsum(is_split) - 1
            sseg = remap[seg[pos]]
        else:
            pos = None
            srows = rows
            sseg = seg
        ssz = sizes[sidx]
        sleft = split_left[sidx]
        sdim = split_dim[sidx]
        scut = split_cut[sidx]
        svals = V[sdim[sseg], pos] if pos is not None else V[sdim[sseg], np.arange(na)]
        right = svals > scut[sseg]
        sst = _excl_cumsum(ssz)
        isleft = (~right).astype(np.int64)
        excl = np.cumsum(isleft) - isleft  # left rows before each row (global)
        left_rank = excl - excl[sst][sseg]
        in_seg = np.arange(len(srows), dtype=np.int64) - sst[sseg]
        dest = sst[sseg] + np.where(right, sleft[sseg] + (in_seg - left_rank), left_rank)
        new_rows = np.empty_like(srows)
        new_rows[dest] = srows
        rows = new_rows
        sizes = np.empty(2 * len(sidx), dtype=np.int64)
        sizes[0::2] = sleft
        sizes[1::2] = ssz - sleft
        g = gstart[sidx]
        gstart = np.empty(2 * len(sidx), dtype=np.int64)
        gstart[0::2] = g
        gstart[1::2] = g + sleft

    # number classes in leaf order
    all_g = np.concatenate(fin_gstart)
    order = np.argsort(all_g, kind="stable")
    rank = np.empty(n_final, dtype=np.int64)
    rank[order] = np.arange(n_final, dtype=np.int64)
    class_ids = rank[class_ids]
    lo_all = np.concatenate(fin_lo, axis=1)[:, order].astype(np.int64)
    hi_all = np.concatenate(fin_hi, axis=1)[:, order].astype(np.int64)
    ranges = [np.stack([lo_all[j], hi_all[j]], axis=1) for j in range(d)]
    return MondrianResult(
        class_ids=class_ids,
        n_classes=n_final,
        ranges=ranges,
        seconds=time.perf_counter() - t0,
    )
