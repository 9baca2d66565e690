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

Everything is vectorised (pandas factorize / groupby, numpy bincount); nothing loops
over rows in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import QueryError

__all__ = [
    "SIZE_BUCKETS",
    "aecs",
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
