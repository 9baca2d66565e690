"""Re-identification risk and information-loss metrics, usable on their own.

Risk (on any table and set of quasi-identifiers, before or after anonymisation):

- :func:`classes`, :func:`class_sizes` — equivalence classes (rows sharing all
  quasi-identifier values; a missing value is a value of its own).
- :func:`risk` — prosecutor, journalist and marketer re-identification risk, the share
  of records whose risk exceeds a threshold, and the class-size distribution.
- :func:`summary` — the same as one flat dict, for a before / after comparison.

Utility of a full-domain transformation (one generalisation level per quasi-identifier)
over encoded quasi-identifiers (objects with the fields of
:class:`pets.anon.hierarchy.EncodedHierarchy`: ``codes``, ``gen``, ``leaf_share``):

- :func:`loss` — ARX's default "Loss" metric (Iyengar's generalisation loss; suppressed
  cells count as fully generalised), in [0, 1], lower is better.
- :func:`precision` — Sweeney's precision as a loss (ARX's "Precision" metric): the mean
  generalisation height h_j / height_j over cells, suppressed cells counting 1. Sweeney's
  Prec is ``1 - precision(...)``.
- :func:`discernibility` — Σ size² over released classes + n per suppressed row.
- :func:`aecs` — the average equivalence-class size divided by k.
- :func:`entropy` (non-uniform entropy), :func:`monotonic_precision`, :func:`height`,
  :func:`dm_star` (ARX's DM*), :func:`arx_aecs` — ARX's other metrics; :func:`per_qi`
  the value of a per-QI metric for each quasi-identifier, :func:`aggregate` ARX's
  aggregate functions, :func:`gs_weights` its generalisation/suppression factor.
- :func:`metrics_table` — all of them per quasi-identifier and in total, as a DataFrame.

Everything is vectorised (pandas factorize / groupby, numpy bincount); nothing loops
over rows in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import QueryError

__all__ = [
    "AGGREGATIONS",
    "OBJECTIVES",
    "PER_QI_METRICS",
    "SIZE_BUCKETS",
    "aecs",
    "aggregate",
    "arx_aecs",
    "dm_star",
    "entropy",
    "gs_weights",
    "height",
    "metrics_table",
    "monotonic_precision",
    "per_qi",
    "class_sizes",
    "classes",
    "discernibility",
    "loss",
    "loss_per_qi",
    "precision",
    "risk",
    "size_distribution",
    "summary",
]

#: class-size buckets of the distribution: (label, lowest size, highest size)
SIZE_BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-9", 5, 9),
    ("10-19", 10, 19),
    ("20+", 20, np.inf),
)


# ---------------------------------------------------------------------------------------
# equivalence classes


def _qi_list(df: pd.DataFrame, quasi_identifiers: Any) -> list[str]:
    if not isinstance(df, pd.DataFrame):
        raise QueryError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(quasi_identifiers, str):
        quasi_identifiers = [quasi_identifiers]
    qis = list(quasi_identifiers)
    if not qis:
        raise QueryError("give at least one quasi-identifier column")
    missing = [c for c in qis if c not in df.columns]
    if missing:
        raise QueryError(
            f"unknown quasi-identifier column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; the table has {', '.join(map(repr, map(str, df.columns)))}"
        )
    if len(set(qis)) != len(qis):
        raise QueryError("a quasi-identifier is listed twice")
    return qis


def classes(df: pd.DataFrame, quasi_identifiers: Sequence[str]) -> tuple[np.ndarray, int]:
    """Equivalence class of each row: ``(class_ids, n_classes)``.

    ``class_ids`` is int64 (n_rows,), classes numbered 0 … n_classes − 1 in order of
    first appearance. Missing values (NaN/None) are a value of their own.
    """
    qis = _qi_list(df, quasi_identifiers)
    n = len(df)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    if len(qis) == 1:
        codes, uniques = pd.factorize(df[qis[0]], use_na_sentinel=False)
        return np.asarray(codes, dtype=np.int64), len(uniques)
    ids = df.groupby(qis, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    ids = ids.astype(np.int64, copy=False)
    return ids, int(ids.max()) + 1


def class_sizes(df: pd.DataFrame, quasi_identifiers: Sequence[str]) -> np.ndarray:
    """Size of each equivalence class (int64, indexed by the class ids of :func:`classes`)."""
    ids, k = classes(df, quasi_identifiers)
    return np.bincount(ids, minlength=k).astype(np.int64)


def size_distribution(sizes: np.ndarray) -> pd.DataFrame:
    """Class-size distribution: per bucket of :data:`SIZE_BUCKETS` the number of classes,
    of records, and the share of records."""
    sizes = np.asarray(sizes, dtype=np.int64)
    sizes = sizes[sizes > 0]
    n = int(sizes.sum())
    edges = np.array([b[1] for b in SIZE_BUCKETS] + [np.iinfo(np.int64).max], dtype=np.int64)
    which = np.searchsorted(edges, sizes, side="right") - 1
    n_b = len(SIZE_BUCKETS)
    n_cls = np.bincount(which, minlength=n_b)[:n_b]
    n_rec = np.bincount(which, weights=sizes, minlength=n_b)[:n_b].astype(np.int64)
    return pd.DataFrame(
        {
            "size": [b[0] for b in SIZE_BUCKETS],
            "classes": n_cls.astype(np.int64),
            "records": n_rec,
            "share_records": n_rec / n if n else np.zeros(n_b),
        }
    )


def _population_sizes(
    df: pd.DataFrame, qis: list[str], ids: np.ndarray, n_classes: int, population: Any
) -> np.ndarray:
    """Population size F_c of each sample class."""
    if isinstance(population, pd.DataFrame):
        _qi_list(population, qis)
        # the sample's classes, one row each, matched against the population's counts
        first = np.full(n_classes, len(df), dtype=np.int64)
        np.minimum.at(first, ids, np.arange(len(df), dtype=np.int64))
        reps = df.iloc[first][qis].reset_index(drop=True)
        counts = population.groupby(qis, dropna=False, sort=False, observed=True).size()
        counts = counts.rename("_F").reset_index()
        merged = reps.merge(counts, on=qis, how="left", sort=False)
        F = merged["_F"].to_numpy(dtype=np.float64)
    else:
        F = np.asarray(population, dtype=np.float64)
        if F.shape != (n_classes,):
            raise QueryError(
                f"population must be a DataFrame or one population size per class of the sample "
                f"({n_classes} values, in the order of classes()); got shape {F.shape}"
            )
    f = np.bincount(ids, minlength=n_classes)
    if np.isnan(F).any() or (F < f).any():
        bad = int(np.count_nonzero(np.isnan(F) | (F < f)))
        raise QueryError(
            f"the population does not contain the sample: {bad} sample class"
            f"{'es are' if bad != 1 else ' is'} missing from it or smaller there; "
            "the population must include every sample record"
        )
    return F


def risk(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    population: Any = None,
    threshold: float = 0.2,
) -> dict[str, Any]:
    """Re-identification risk of the records of ``df`` through its quasi-identifiers.

    - **prosecutor** (the attacker knows the person is in the table): a record in a class
      of size f is re-identified with probability 1/f. ``prosecutor_highest`` = 1/min f,
      ``prosecutor_average`` = mean over records of 1/f = n_classes / n.
    - ``records_at_risk`` — the share of records whose prosecutor risk 1/f exceeds
      ``threshold`` (so f < 1/threshold); ``highest_risk_records`` the share at the
      highest risk.
    - **journalist** (the attacker does not know whether the person is in the table and
      links from a population register): per record 1/F with F the size of its class in
      the population. ``population`` is the population table (a DataFrame with the same
      quasi-identifier columns, containing the sample) or an array of the population
      size of each sample class (in the order of :func:`classes`). Without it the
      sample is taken as the population and the journalist risk equals the prosecutor
      risk (``journalist_from_population`` is then False).
    - **marketer** (the attacker re-identifies as many records as possible): the expected
      share re-identified, Σ_c f_c / F_c / n; with sample = population this is
      n_classes / n.
    - ``size_distribution`` — classes and records per class-size bucket (1, 2, 3-4, 5-9,
      10-19, 20+), a :class:`pandas.DataFrame`; ``min_class_size``, ``avg_class_size``.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise QueryError(f"threshold must be a number in [0, 1], got {threshold!r}")
    qis = _qi_list(df, quasi_identifiers)
    ids, k = classes(df, qis)
    n = len(df)
    if n == 0:
        raise QueryError("the table is empty: no risk to measure")
    f = np.bincount(ids, minlength=k).astype(np.float64)
    per_record = 1.0 / f[ids]
    if population is None:
        F = f
    else:
        F = _population_sizes(df, qis, ids, k, population)
    journalist = 1.0 / F[ids]
    highest = 1.0 / f.min()
    return {
        "records": n,
        "classes": k,
        "min_class_size": int(f.min()),
        "avg_class_size": n / k,
        "prosecutor_highest": float(highest),
        "prosecutor_average": k / n,
        "records_at_risk": float(np.count_nonzero(per_record > threshold) / n),
        "highest_risk_records": float(np.count_nonzero(f[ids] == f.min()) / n),
        "threshold": float(threshold),
        "journalist_highest": float(1.0 / F.min()),
        "journalist_average": float(journalist.mean()),
        "journalist_from_population": population is not None,
        "marketer": float((f / F).sum() / n),
        "size_distribution": size_distribution(f.astype(np.int64)),
    }


def summary(
    df: pd.DataFrame, quasi_identifiers: Sequence[str], threshold: float = 0.2, population: Any = None
) -> dict[str, float]:
    """A flat dict of :func:`risk` (numbers only; the size distribution as
    ``classes_of_size_<bucket>`` and ``records_in_size_<bucket>``), e.g. to put the
    table before and after anonymisation side by side in a DataFrame::

        pd.DataFrame({"before": summary(raw, qis), "after": summary(released, qis)})
    """
    r = risk(df, quasi_identifiers, population=population, threshold=threshold)
    dist = r.pop("size_distribution")
    out: dict[str, float] = {k: float(v) for k, v in r.items()}
    for row in dist.itertuples(index=False):
        out[f"classes_of_size_{row.size}"] = float(row.classes)
        out[f"records_in_size_{row.size}"] = float(row.records)
    return out


# ---------------------------------------------------------------------------------------
# utility of a full-domain transformation


def _check_transformation(
    encoded_qis: Sequence[Any], levels: Sequence[int], suppressed_mask: Any
) -> tuple[int, np.ndarray]:
    if len(encoded_qis) == 0:
        raise QueryError("give at least one encoded quasi-identifier")
    if len(levels) != len(encoded_qis):
        raise QueryError(f"{len(levels)} levels for {len(encoded_qis)} quasi-identifiers")
    n = len(encoded_qis[0].codes)
    for e, h in zip(encoded_qis, levels):
        if len(e.codes) != n:
            raise QueryError("the encoded quasi-identifiers have different numbers of rows")
        if not 0 <= int(h) < e.gen.shape[1]:
            raise QueryError(
                f"level {h} of {getattr(e, 'name', None)!r} is outside 0 … {e.gen.shape[1] - 1}"
            )
    if suppressed_mask is None:
        sup = np.zeros(n, dtype=bool)
    else:
        sup = np.asarray(suppressed_mask, dtype=bool)
        if sup.shape != (n,):
            raise QueryError(f"suppressed_mask must be a bool array of {n} rows, got shape {sup.shape}")
    return n, sup


def loss_per_qi(
    encoded_qis: Sequence[Any], levels: Sequence[int], suppressed_mask: Any = None
) -> np.ndarray:
    """ARX's Loss of each quasi-identifier, in [0, 1].

    For QI j at level h: tot = Σ over kept rows of leaf_share[h][label of the row] + 1
    per suppressed row; normalised as (tot − n/D) / (n − n/D) with D the number of
    leaves of the hierarchy (0 for a hierarchy of one leaf).
    """
    n, sup = _check_transformation(encoded_qis, levels, suppressed_mask)
    keep = ~sup
    n_sup = int(np.count_nonzero(sup))
    out = np.zeros(len(encoded_qis))
    if n == 0:
        return out
    for j, (e, h) in enumerate(zip(encoded_qis, levels)):
        h = int(h)
        D = e.gen.shape[0]
        share = np.asarray(e.leaf_share[h], dtype=np.float64)
        # per leaf, then summed by the number of kept rows on each leaf
        per_leaf = share[e.gen[:, h]]
        counts = np.bincount(e.codes[keep], minlength=D)
        tot = float((counts * per_leaf).sum()) + n_sup
        lo = n / D
        out[j] = 0.0 if D <= 1 else (tot - lo) / (n - lo)
    return out


def loss(encoded_qis: Sequence[Any], levels: Sequence[int], suppressed_mask: Any = None) -> float:
    """ARX's default Loss metric of a full-domain transformation: the per-QI losses v_j of
    :func:`loss_per_qi` aggregated as (∏ (v_j + 1))^(1/d) − 1. 0 = the data untouched,
    1 = everything generalised to the top or suppressed."""
    v = loss_per_qi(encoded_qis, levels, suppressed_mask)
    return float(np.prod(v + 1.0) ** (1.0 / len(v)) - 1.0)


def precision(encoded_qis: Sequence[Any], levels: Sequence[int], suppressed_mask: Any = None) -> float:
    """Sweeney's precision as a loss (ARX's "Precision" metric): the mean over cells of
    h_j / height_j, suppressed cells counting 1 (a QI whose hierarchy has height 0
    counts 0 unless suppressed). 0 = untouched; Sweeney's Prec is 1 minus this."""
    n, sup = _check_transformation(encoded_qis, levels, suppressed_mask)
    if n == 0:
        return 0.0
    s = int(np.count_nonzero(sup))
    parts = []
    for e, h in zip(encoded_qis, levels):
        H = e.gen.shape[1] - 1
        r = int(h) / H if H > 0 else 0.0
        parts.append(((n - s) * r + s) / n)
    return float(np.mean(parts))


def discernibility(class_sizes: Any, n_suppressed: int, n: int) -> float:
    """Discernibility metric: Σ size² over the released classes + n · n_suppressed
    (each suppressed row is indistinguishable from all n rows)."""
    sizes = np.asarray(class_sizes, dtype=np.float64)
    return float((sizes * sizes).sum() + float(n) * float(n_suppressed))


def aecs(n_kept: int, n_classes: int, k: float = 1) -> float:
    """Normalised average equivalence-class size: (n_kept / n_classes) / k. 1 is the best
    possible for k-anonymity; inf when no class is released."""
    if n_classes <= 0:
        return float("inf")
    return float(n_kept) / float(n_classes) / float(k)


# ---------------------------------------------------------------------------------------
# ARX's metrics as search objectives: per-QI costs, the gs-factor, aggregation
#
# A *per-QI* metric gives every cell a cost: c_j(h, leaf) when the row is kept with QI j
# at level h, s_j(leaf) when the row is suppressed; the QI's value is
#     v_j = (g · Σ_kept c_j + s · Σ_suppressed s_j) / Z_j
# with (g, s) the weights of ARX's gs-factor (:func:`gs_weights`), and the values are
# aggregated over the QIs (:func:`aggregate`). Metrics that ignore suppression
# ("monotonic" in ARX's terms) cost every row at its level, kept or not.

#: every metric the search can minimise
OBJECTIVES = (
    "loss",
    "entropy",
    "precision",
    "monotonic_precision",
    "height",
    "discernibility",
    "dm*",
    "aecs",
    "arx_aecs",
)
#: how per-QI values are combined (ARX's aggregate functions)
AGGREGATIONS = ("geometric", "arithmetic", "sum", "max", "rank")
#: the per-QI metrics and their default aggregation (ARX's defaults)
PER_QI_METRICS: dict[str, str] = {
    "loss": "geometric",
    "entropy": "sum",
    "precision": "arithmetic",
    "monotonic_precision": "arithmetic",
    "height": "sum",
}
#: metrics whose value does not depend on suppression (monotonic in ARX's terms)
IGNORE_SUPPRESSION = frozenset({"monotonic_precision", "height", "dm*"})


def check_objective(metric: Any, gs_factor: Any = 0.5, aggregation: Any = None) -> tuple[str, float, str | None]:
    """Validate an objective: ``(metric, gs_factor, aggregation)`` with the metric's
    default aggregation filled in (None for the single-dimensional metrics)."""
    if metric not in OBJECTIVES:
        raise QueryError(f"unknown metric {metric!r}; use one of {', '.join(OBJECTIVES)}")
    if (
        isinstance(gs_factor, bool)
        or not isinstance(gs_factor, (int, float, np.integer, np.floating))
        or not 0 <= float(gs_factor) <= 1
    ):
        raise QueryError(f"gs_factor must be a number in [0, 1], got {gs_factor!r}")
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise QueryError(f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATIONS)}")
    if metric in PER_QI_METRICS:
        return metric, float(gs_factor), aggregation or PER_QI_METRICS[metric]
    if aggregation is not None:
        raise QueryError(
            f"metric {metric!r} is one number for the whole table; aggregation applies only to "
            f"the per-quasi-identifier metrics ({', '.join(PER_QI_METRICS)})"
        )
    return metric, float(gs_factor), None


def gs_weights(gs_factor: float = 0.5) -> tuple[float, float]:
    """ARX's generalisation/suppression factor as the weights ``(g, s)`` of generalised
    and suppressed cells: ``g = min(1, 2·gs)``, ``s = min(1, 2·(1 − gs))``. 0.5 weighs
    both alike (1, 1); 0 makes generalisation free (favours generalising), 1 makes
    suppression free (favours suppressing)."""
    gs = float(gs_factor)
    return min(1.0, 2.0 * gs), min(1.0, 2.0 * (1.0 - gs))


def aggregate(values: Any, aggregation: str = "geometric") -> float:
    """Combine per-QI values: ``geometric`` (∏(v_j + 1))^(1/d) − 1 (ARX's default for
    Loss), ``arithmetic`` mean, ``sum``, ``max``; ``rank`` compares the values sorted in
    decreasing order lexicographically (:func:`rank_key`) and reports the largest."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0
    if aggregation == "geometric":
        return float(np.prod(v + 1.0) ** (1.0 / v.size) - 1.0)
    if aggregation == "arithmetic":
        return float(v.mean())
    if aggregation == "sum":
        return float(v.sum())
    if aggregation in ("max", "rank"):
        return float(v.max())
    raise QueryError(f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATIONS)}")


def aggregate_rows(X: np.ndarray, aggregation: str) -> np.ndarray:
    """:func:`aggregate` of every row of a (nodes × QIs) matrix (for rank: the largest)."""
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    if aggregation == "geometric":
        return np.prod(X + 1.0, axis=1) ** (1.0 / d) - 1.0
    if aggregation == "arithmetic":
        return X.mean(axis=1)
    if aggregation == "sum":
        return X.sum(axis=1)
    return X.max(axis=1)


def rank_key(values: Any, digits: int = 12) -> tuple[float, ...]:
    """ARX's rank aggregation: the per-QI values sorted in decreasing order (rounded to
    ``digits`` significant digits so that equal values compare equal); tuples compare
    lexicographically — a transformation is better when its worst QI is better, then its
    second worst, …"""
    v = -np.sort(-np.asarray(values, dtype=np.float64))
    return tuple(float(f"{x:.{digits}g}") for x in v)


def qi_costs(e: Any, metric: str) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The cell costs of a per-QI metric for one encoded quasi-identifier:
    ``(G, S, Z)`` — ``G[h, leaf]`` a kept cell at level h, ``S[leaf]`` a suppressed cell
    (None when the metric ignores suppression), ``Z`` the normaliser.

    - ``loss`` (ARX's Loss): G = share of the hierarchy's D leaves under the cell's label
      − 1/D, S = 1 − 1/D, Z = n − n/D (so the QI's value is in [0, 1]).
    - ``entropy`` (non-uniform entropy, Gionis & Tassa; ARX's "Non-uniform entropy"):
      G = log2(F_h(label) / F_0(leaf)) with F_h the number of input rows whose level-h
      label is the cell's, S = log2(n / F_0(leaf)) (as generalised to one value), Z = 1:
      bits of information lost.
    - ``precision`` (Sweeney; ARX's non-monotonic Precision): G = h / height, S = 1, Z = n.
    - ``monotonic_precision`` (ARX's monotonic Precision): G = h / height whether kept
      or suppressed, Z = n.
    - ``height``: G = h (the QI's level), Z = n, so the value is the level itself.
    """
    gen = np.asarray(e.gen)
    D, levels = gen.shape
    H = levels - 1
    codes = np.asarray(e.codes)
    n = len(codes)
    if metric == "loss":
        if D <= 1:
            return np.zeros((levels, D)), np.zeros(D), 1.0
        G = np.stack([np.asarray(e.leaf_share[h], dtype=np.float64)[gen[:, h]] for h in range(levels)])
        return G - 1.0 / D, np.full(D, 1.0 - 1.0 / D), float(n - n / D)
    if metric == "entropy":
        F0 = np.bincount(codes, minlength=D).astype(np.float64)
        safe = np.maximum(F0, 1.0)
        G = np.empty((levels, D))
        for h in range(levels):
            Fh = np.bincount(gen[codes, h], minlength=int(gen[:, h].max()) + 1).astype(np.float64)
            G[h] = np.where(F0 > 0, np.log2(np.maximum(Fh[gen[:, h]], 1.0) / safe), 0.0)
        S = np.where(F0 > 0, np.log2(max(n, 1) / safe), 0.0)
        return G, S, 1.0
    if metric in ("precision", "monotonic_precision"):
        G = np.repeat((np.arange(levels) / H if H else np.zeros(levels))[:, None], D, axis=1)
        return G, (np.ones(D) if metric == "precision" else None), float(max(n, 1))
    if metric == "height":
        return np.repeat(np.arange(levels, dtype=np.float64)[:, None], D, axis=1), None, float(max(n, 1))
    raise QueryError(f"{metric!r} is not a per-quasi-identifier metric")


def _row_levels(encoded_qis: Sequence[Any], levels: Any, n: int) -> np.ndarray:
    """Levels as an (n_rows × d) int array: one level per QI (full-domain) broadcast, or
    one per row and QI (local recoding)."""
    d = len(encoded_qis)
    lv = np.asarray(levels, dtype=np.int64)
    if lv.ndim == 1:
        if len(lv) != d:
            raise QueryError(f"{len(lv)} levels for {d} quasi-identifiers")
        lv = np.broadcast_to(lv, (n, d))
    elif lv.shape != (n, d):
        raise QueryError(f"row levels must have shape ({n}, {d}), got {lv.shape}")
    for j, e in enumerate(encoded_qis):
        if n and (lv[:, j].min() < 0 or lv[:, j].max() >= e.gen.shape[1]):
            raise QueryError(
                f"a level of {getattr(e, 'name', None)!r} is outside 0 … {e.gen.shape[1] - 1}"
            )
    return lv


def per_qi(
    encoded_qis: Sequence[Any],
    levels: Any,
    suppressed_mask: Any = None,
    metric: str = "loss",
    gs_factor: float = 0.5,
) -> np.ndarray:
    """The value of a per-QI metric (``loss``, ``entropy``, ``precision``,
    ``monotonic_precision``, ``height``; see :func:`qi_costs`) for each quasi-identifier.
    ``levels`` is one level per QI (full-domain) or an (n_rows × d) array of each row's
    levels (local recoding)."""
    if metric not in PER_QI_METRICS:
        raise QueryError(f"{metric!r} is not a per-quasi-identifier metric; use one of {', '.join(PER_QI_METRICS)}")
    if len(encoded_qis) == 0:
        raise QueryError("give at least one encoded quasi-identifier")
    n = len(encoded_qis[0].codes)
    lv = _row_levels(encoded_qis, levels, n)
    if suppressed_mask is None:
        sup = np.zeros(n, dtype=bool)
    else:
        sup = np.asarray(suppressed_mask, dtype=bool)
        if sup.shape != (n,):
            raise QueryError(f"suppressed_mask must be a bool array of {n} rows, got shape {sup.shape}")
    g, s = gs_weights(gs_factor)
    out = np.zeros(len(encoded_qis))
    for j, e in enumerate(encoded_qis):
        codes = np.asarray(e.codes)
        if len(codes) != n:
            raise QueryError("the encoded quasi-identifiers have different numbers of rows")
        G, S, Z = qi_costs(e, metric)
        cell = G[lv[:, j], codes]
        if S is None:
            out[j] = float(cell.sum()) / Z
        else:
            out[j] = (g * float(cell[~sup].sum()) + s * float(S[codes[sup]].sum())) / Z
    return out


def entropy(
    encoded_qis: Sequence[Any], levels: Any, suppressed_mask: Any = None,
    gs_factor: float = 0.5, aggregation: str = "sum",
) -> float:
    """Non-uniform entropy (ARX's "Non-uniform entropy"): the bits lost per cell,
    log2(F(generalised value) / F(original value)) over the input's frequencies,
    a suppressed cell costing log2(n / F(original value)); summed over QIs by default."""
    return aggregate(per_qi(encoded_qis, levels, suppressed_mask, "entropy", gs_factor), aggregation)


def monotonic_precision(encoded_qis: Sequence[Any], levels: Any, aggregation: str = "arithmetic") -> float:
    """ARX's monotonic Precision: the mean over cells of h_j / height_j, suppressed cells
    counted at their level like the others (so it never rewards suppression)."""
    return aggregate(per_qi(encoded_qis, levels, None, "monotonic_precision"), aggregation)


def height(encoded_qis: Sequence[Any], levels: Any, aggregation: str = "sum") -> float:
    """ARX's Height metric: the sum of the generalisation levels (for per-row levels, the
    mean level of each QI over the rows)."""
    return aggregate(per_qi(encoded_qis, levels, None, "height"), aggregation)


def dm_star(class_sizes: Any) -> float:
    """ARX's monotonic discernibility DM*: Σ size² over *all* classes of the
    transformation, the suppressed ones included at their size (suppression neither
    rewarded nor penalised). Compare :func:`discernibility` (ARX's non-monotonic DM):
    n per suppressed row."""
    sizes = np.asarray(class_sizes, dtype=np.float64)
    return float((sizes * sizes).sum())


def arx_aecs(n: int, n_kept_classes: int, any_suppressed: bool, gs_factor: float = 0.5) -> float:
    """AECS as ARX defines it: n over the number of classes, the suppressed rows counting
    as one class — n / (g' · released classes + s' · [rows suppressed]) with ARX's gs-factor
    weights swapped (g' = s, s' = g of :func:`gs_weights`); not divided by k (compare
    :func:`aecs`, LeFevre's normalised form). 1 is the least, n the most loss."""
    g, s = gs_weights(gs_factor)
    denom = s * n_kept_classes + (g if any_suppressed else 0.0)
    return float(n) / denom if denom > 0 else float("inf")


def _encoded_table(
    encoded_qis: Sequence[Any],
    levels: Any,
    suppressed_mask: Any = None,
    gs_factor: float = 0.5,
    k: float = 1,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:func:`metrics_table` over encoded quasi-identifiers."""
    n = len(encoded_qis[0].codes)
    d = len(encoded_qis)
    lv = _row_levels(encoded_qis, levels, n)
    sup = np.zeros(n, dtype=bool) if suppressed_mask is None else np.asarray(suppressed_mask, dtype=bool)
    names = list(names) if names is not None else [getattr(e, "name", None) or f"QI {j}" for j, e in enumerate(encoded_qis)]
    cols: dict[str, Any] = {}
    uniform = bool(np.all(lv == lv[:1])) if n else True
    cols["level"] = [float(lv[0, j]) if uniform and n else float(lv[:, j].mean()) for j in range(d)]
    totals: dict[str, float] = {"level": float(np.sum(cols["level"]))}
    for m, agg in PER_QI_METRICS.items():
        v = per_qi(encoded_qis, lv, sup, m, gs_factor)
        cols[m] = v
        totals[m] = aggregate(v, agg)
    # classes: rows sharing every (level, label) pair
    key = np.zeros(n, dtype=np.int64)
    for j, e in enumerate(encoded_qis):
        gen = np.asarray(e.gen)
        lab = gen[np.asarray(e.codes), lv[:, j]].astype(np.int64) * gen.shape[1] + lv[:, j]
        codes, uniq = pd.factorize(lab)
        if j == 0:
            key = np.asarray(codes, dtype=np.int64)
        else:
            key, _ = pd.factorize(key * len(uniq) + codes)
            key = np.asarray(key, dtype=np.int64)
    ids, _u = pd.factorize(key)
    sizes_all = np.bincount(ids).astype(np.float64) if n else np.zeros(0)
    kept_ids = ids[~sup]
    kept_sizes = np.bincount(kept_ids, minlength=len(sizes_all))
    kept_sizes = kept_sizes[kept_sizes > 0]
    s = int(np.count_nonzero(sup))
    totals["discernibility"] = discernibility(kept_sizes, s, n)
    totals["dm*"] = dm_star(sizes_all)
    totals["aecs"] = aecs(n - s, len(kept_sizes), k)
    totals["arx_aecs"] = arx_aecs(n, len(kept_sizes), s > 0, gs_factor)
    totals["suppressed"] = float(s)
    out = pd.DataFrame(cols, index=pd.Index(names, name="quasi_identifier"))
    for c in ("discernibility", "dm*", "aecs", "arx_aecs", "suppressed"):
        out[c] = np.nan
    out.loc["total"] = pd.Series(totals)
    return out


def metrics_table(
    df: pd.DataFrame,
    hierarchies: Any,
    transformation: Any,
    suppressed: Any = None,
    *,
    gs_factor: float = 0.5,
    k: float = 1,
) -> pd.DataFrame:
    """Every utility metric of a transformation of ``df``, per quasi-identifier and in total.

    ``hierarchies`` maps each quasi-identifier to its :class:`~pets.anon.Hierarchy`;
    ``transformation`` maps each quasi-identifier to its level (``r.transformation``
    of :func:`~pets.anon.anonymize`), or is a DataFrame of each row's levels (one column
    per quasi-identifier; local recoding's ``r.row_levels``); ``suppressed`` marks the
    suppressed rows of ``df`` (a bool mask or row positions, e.g. ``r.suppressed_rows``).

    One row per quasi-identifier and a ``total`` row; columns ``level`` (the mean level
    for per-row levels; total: their sum), the per-QI metrics ``loss``, ``entropy``,
    ``precision``, ``monotonic_precision``, ``height`` (total: aggregated as ARX does by
    default — geometric mean for loss, sum for entropy and height, mean for precision),
    and, in the total row only, ``discernibility`` (DM), ``dm*``, ``aecs`` (divided by
    ``k``), ``arx_aecs`` and ``suppressed``. ``gs_factor`` weighs generalised against
    suppressed cells (:func:`gs_weights`).
    """
    if not isinstance(df, pd.DataFrame):
        raise QueryError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(transformation, pd.DataFrame):
        qis = list(transformation.columns)
        if len(transformation) != len(df):
            raise QueryError(f"transformation has {len(transformation)} rows of levels, the table {len(df)}")
        levels: Any = transformation.to_numpy(dtype=np.int64)
    elif isinstance(transformation, Mapping):
        qis = list(transformation)
        levels = [int(transformation[c]) for c in qis]
    else:
        raise QueryError("transformation must map each quasi-identifier to its level (r.transformation)")
    _qi_list(df, qis)
    hs = dict(hierarchies or {})
    missing = [c for c in qis if c not in hs]
    if missing:
        raise QueryError(f"no hierarchy for {', '.join(map(repr, missing))}")
    n = len(df)
    if suppressed is None:
        sup = np.zeros(n, dtype=bool)
    else:
        arr = np.asarray(suppressed)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise QueryError(f"suppressed must be a bool mask of {n} rows or row positions")
            sup = arr
        else:
            sup = np.zeros(n, dtype=bool)
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise QueryError(f"suppressed row positions must be in 0 … {n - 1}")
            sup[arr.astype(np.int64)] = True
    check_objective("loss", gs_factor)
    encoded = [hs[c].encode(df[c]) for c in qis]
    return _encoded_table(encoded, levels, sup, gs_factor, k, qis)
