"""k-anonymous extracts of a table: one call over the search, Mondrian, models and metrics.

>>> import pets.anon as anon                                   # doctest: +SKIP
>>> r = anon.anonymize(df, ["age", "sex", "zip"], hierarchies, k=5,
...                    max_suppression=0.05)                     # doctest: +SKIP
>>> r.df, r.transformation, r.suppressed, r.metrics              # doctest: +SKIP

Guarantee: every row of ``r.df`` shares its quasi-identifier values with at least k − 1
other rows of ``r.df`` (and each class meets the l-diversity / t-closeness asked for).
Suppressed rows are left out. The guarantee is about this one extract: extracts of the
same people released separately can be linked (see docs/anonymisation.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import QueryError
from .hierarchy import Hierarchy
from .models import (
    DistinctLDiversity,
    EntropyLDiversity,
    KAnonymity,
    PrivacyModel,
    T_DISTANCES,
    RecursiveCLDiversity,
    TCloseness,
)

__all__ = ["AnonymizationResult", "anonymize", "load_hierarchies"]

ALGORITHMS = ("optimal", "mondrian")
SEARCHES = ("optimal", "heuristic", "auto")
RECODINGS = ("global", "local", "cells")
L_KINDS = ("distinct", "entropy", "recursive")


@dataclass
class AnonymizationResult:
    """An extract and what was done to make it.

    ``df`` the released rows (suppressed rows left out); ``transformation`` the
    generalisation level per quasi-identifier (full-domain) or ``"mondrian"``;
    ``suppressed`` how many rows were removed; ``metrics`` information loss and
    re-identification risk of the extract; ``classes`` the number of equivalence
    classes; ``nodes_checked`` / ``nodes_total`` how much of the lattice was evaluated.

    ``metrics_table`` every utility metric per quasi-identifier and in total
    (:func:`pets.anon.metrics_table`); ``suppressed_rows`` the positions in the input
    of the suppressed rows; ``objective`` the metric minimised with its gs-factor and
    aggregation and its value; ``search`` "optimal" or "heuristic", ``lower_bound`` a
    lower bound of the optimum's value and ``gap`` the relative distance of the value
    found to it (0 for the optimal search); ``recoding`` "global" or "local", and for
    local recoding ``row_levels`` the levels of each input row (a DataFrame, one column
    per quasi-identifier; suppressed rows at the top).
    """

    df: pd.DataFrame
    transformation: dict[str, int] | str
    suppressed: int
    metrics: dict[str, float]
    classes: int
    models: list[str]
    algorithm: str
    nodes_checked: int = 0
    nodes_total: int = 0
    seconds: float = 0.0
    quasi_identifiers: list[str] = field(default_factory=list)
    _table: Any = field(default=None, repr=False, compare=False)
    suppressed_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    objective: dict[str, Any] = field(default_factory=dict)
    search: str = "optimal"
    lower_bound: float | None = None
    gap: float = 0.0
    recoding: str = "global"
    row_levels: pd.DataFrame | None = None

    @property
    def metrics_table(self) -> pd.DataFrame | None:
        """Every utility metric per quasi-identifier and in total (computed on first use)."""
        if callable(self._table):
            self._table = self._table()
        return self._table

    def __repr__(self) -> str:
        return (
            f"AnonymizationResult(algorithm={self.algorithm!r}, transformation={self.transformation}, "
            f"rows={len(self.df)}, suppressed={self.suppressed}, classes={self.classes}, "
            f"models={self.models})"
        )


def load_hierarchies(folder: str | os.PathLike[str], columns: Sequence[str], sep: str = ";") -> dict[str, Hierarchy]:
    """Hierarchies for ``columns`` from a folder: ``<column>.csv`` or ``*_hierarchy_<column>.csv``
    (the naming of the standard benchmark files). Missing files are simply not returned."""
    out: dict[str, Hierarchy] = {}
    names = os.listdir(folder)
    for c in columns:
        for cand in (f"{c}.csv",) + tuple(n for n in names if n.endswith(f"_hierarchy_{c}.csv")):
            path = os.path.join(folder, cand)
            if os.path.isfile(path):
                out[c] = Hierarchy.from_csv(path, sep=sep, name=c)
                break
    return out


def _as_list(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def anonymize(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    hierarchies: Mapping[str, Hierarchy] | None = None,
    *,
    k: int,
    l: float | None = None,
    t: float | None = None,
    sensitive: str | Sequence[str] | None = None,
    max_suppression: float = 0.0,
    algorithm: str = "optimal",
    metric: str = "loss",
    l_kind: str = "distinct",
    c: float = 3.0,
    ordered: Mapping[str, bool] | None = None,
    keep: Sequence[str] | None = None,
    gs_factor: float = 0.5,
    aggregation: str | None = None,
    search: str = "optimal",
    time_limit: float = 10.0,
    recoding: str = "global",
    models: Sequence[PrivacyModel] = (),
    t_distance: str | None = None,
    max_nodes: int | None = None,
) -> AnonymizationResult:
    """Release ``df`` k-anonymous (and l-diverse / t-close) on ``quasi_identifiers``.

    ``hierarchies`` maps each quasi-identifier to its :class:`Hierarchy` (required for
    ``algorithm="optimal"``; for ``"mondrian"`` numeric columns need none). ``sensitive``
    names the column(s) l and t apply to; ``l_kind`` is ``"distinct"``, ``"entropy"`` or
    ``"recursive"`` (with ``c``); t-closeness uses the ordered distance for numeric
    sensitive columns (override per column with ``ordered``). ``max_suppression`` is the
    largest share of rows that may be removed. ``keep`` lists further columns released
    unchanged (default: none besides the sensitive ones). ``metric`` is what the optimal
    search minimises (one of :data:`pets.anon.metrics.OBJECTIVES`): ``"loss"`` (ARX's
    default), ``"entropy"`` (non-uniform entropy), ``"precision"``,
    ``"monotonic_precision"``, ``"height"``, ``"discernibility"`` (DM), ``"dm*"``,
    ``"aecs"`` or ``"arx_aecs"``; ``gs_factor`` weighs generalisation against suppression
    (0.5 alike; 0 favours generalising, 1 suppressing) and ``aggregation`` combines the
    per-QI values (``"geometric"``, ``"arithmetic"``, ``"sum"``, ``"max"``, ``"rank"``;
    default: the metric's ARX default). ``search`` is ``"optimal"`` (exhaustive, the
    true optimum), ``"heuristic"`` (the best found in ``time_limit`` seconds, with a
    lower bound of the optimum: ``r.lower_bound``, ``r.gap``) or ``"auto"`` (heuristic
    above :data:`pets.anon.heuristic.AUTO_THRESHOLD` lattice nodes). ``recoding`` is
    ``"global"`` (full-domain: one level per quasi-identifier) or ``"local"`` (the
    search repeated on the rows still suppressed, which get their own levels:
    ``r.row_levels``) or ``"cells"`` (cell suppression: values released as they are or
    as ``*``, the fewest cells suppressed by a greedy so that every class of the released
    labels meets the models, :mod:`pets.anon.cells`; no hierarchy needed;
    ``r.metrics["cells_suppressed"]``). ``max_nodes`` bounds the heuristic search by a
    number of lattice nodes instead of ``time_limit`` (a result that does not depend on
    the machine's speed: :func:`~pets.anon.heuristic.heuristic_full_domain`).

    ``models`` adds privacy models beyond k, l and t (:class:`~pets.anon.models.DeltaPresence`,
    :class:`~pets.anon.models.KMap`, :class:`~pets.anon.models.AverageReidentificationRisk`,
    :class:`~pets.anon.models.SampleUniques`, :class:`~pets.anon.models.PopulationUniqueness`);
    a model's ``population`` table is encoded with the quasi-identifiers' hierarchies. A
    boolean ``population`` mask instead makes ``df`` the population: only the rows it marks
    (the research subset) are released. ``t_distance`` is the ground distance of
    t-closeness: ``"equal"``, ``"ordered"`` or ``"hierarchical"`` (EMD over the sensitive
    column's hierarchy, given in ``hierarchies`` under its name); by default ordered for
    numeric sensitive columns (``ordered``), equal otherwise.
    """
    t0 = time.perf_counter()
    if not isinstance(df, pd.DataFrame):
        raise QueryError(f"anonymize() takes a pandas DataFrame, got {type(df).__name__}")
    qis = _as_list(quasi_identifiers)
    sens = _as_list(sensitive)
    extra = _as_list(keep)
    hierarchies = dict(hierarchies or {})
    if not qis:
        raise QueryError("give at least one quasi-identifier")
    if len(set(qis)) != len(qis):
        raise QueryError("a quasi-identifier is listed twice")
    for col in qis + sens + extra:
        if col not in df.columns:
            raise QueryError(f"unknown column {col!r}; the table has: {', '.join(map(str, df.columns))}")
    both = [s for s in sens if s in qis]
    if both:
        raise QueryError(
            f"column {both[0]!r} is both a quasi-identifier and sensitive; a column is one or "
            "the other (generalising a sensitive value defeats l-diversity and t-closeness)"
        )
    if algorithm not in ALGORITHMS:
        raise QueryError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise QueryError(f"k must be an integer >= 2, got {k!r}")
    n = len(df)
    if k > n:
        raise QueryError(f"k={k} is larger than the table ({n} rows); no extract can be {k}-anonymous")
    if isinstance(max_suppression, bool) or not isinstance(max_suppression, (int, float)) \
            or not 0 <= max_suppression <= 1:
        raise QueryError(f"max_suppression must be a share in [0, 1], got {max_suppression!r}")
    if (l is not None or t is not None) and not sens:
        raise QueryError("l-diversity and t-closeness need sensitive=<column>")
    from .metrics import check_objective

    check_objective(metric, gs_factor, aggregation)
    if search not in SEARCHES:
        raise QueryError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if recoding not in RECODINGS:
        raise QueryError(f"recoding must be one of {', '.join(RECODINGS)}, got {recoding!r}")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise QueryError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer))
                                  or max_nodes < 1):
        raise QueryError(f"max_nodes must be an integer >= 1, got {max_nodes!r}")
    if recoding == "cells" and search != "optimal":
        raise QueryError("search applies to recoding='global' or 'local'; recoding='cells' searches no lattice")
    if algorithm == "mondrian" and (search != "optimal" or recoding != "global"):
        raise QueryError("search and recoding apply to algorithm='optimal' (Mondrian recodes locally by itself)")
    if l_kind not in L_KINDS:
        raise QueryError(f"l_kind must be one of {', '.join(L_KINDS)}, got {l_kind!r}")
    for col in sens:
        if df[col].isna().any():
            raise QueryError(
                f"sensitive column {col!r} has missing values; drop those rows or give "
                "missing values a value of their own"
            )

    extra_models = _extra_models(models, algorithm)
    if recoding == "cells":
        from .cells import refuse_models

        refuse_models(extra_models)
    if t_distance is not None and t_distance not in T_DISTANCES:
        raise QueryError(f"t_distance must be one of {', '.join(T_DISTANCES)}, got {t_distance!r}")
    if t_distance is not None and t is None:
        raise QueryError("t_distance needs t=<threshold>")
    df = _bind_population(df, qis, hierarchies, extra_models)
    n = len(df)

    models: list[PrivacyModel] = [KAnonymity(int(k))]
    for col in sens:
        codes, m, is_num = _sensitive_codes(df[col])
        if l is not None:
            if l_kind == "distinct":
                models.append(DistinctLDiversity(codes=codes, n_values=m, column=col, l=int(l)))
            elif l_kind == "entropy":
                models.append(EntropyLDiversity(codes=codes, n_values=m, column=col, l=float(l)))
            else:
                models.append(RecursiveCLDiversity(codes=codes, n_values=m, column=col, c=c, l=int(l)))
        if t is not None:
            if t_distance == "hierarchical":
                h = hierarchies.get(col)
                if h is None:
                    raise QueryError(
                        f"t_distance='hierarchical' needs a hierarchy of the sensitive column {col!r} "
                        "in hierarchies"
                    )
                enc = h.encode(df[col])
                models.append(TCloseness(codes=enc.codes.astype(np.int64), n_values=enc.n_leaves,
                                         column=col, t=float(t), distance="hierarchical", hierarchy=enc))
                continue
            use_order = (ordered or {}).get(col, is_num) if t_distance is None else t_distance == "ordered"
            models.append(TCloseness(codes=codes, n_values=m, column=col, t=float(t), ordered=bool(use_order)))
    models.extend(extra_models)

    if algorithm == "optimal" and recoding == "cells":
        result = _cells(df, qis, hierarchies, models, max_suppression, gs_factor, k)
    elif algorithm == "optimal":
        result = _optimal(df, qis, hierarchies, models, max_suppression, metric,
                          gs_factor, aggregation, search, float(time_limit), recoding, k, max_nodes)
    else:
        result = _mondrian(df, qis, hierarchies, models, max_suppression) + ({},)
    out, transformation, suppressed, classes, metrics, checked, total, more = result
    released = out[qis + sens + [c_ for c_ in extra if c_ not in qis + sens]].reset_index(drop=True)
    return AnonymizationResult(
        df=released,
        transformation=transformation,
        suppressed=suppressed,
        metrics=metrics,
        classes=classes,
        models=[m.describe() for m in models],
        algorithm=algorithm,
        nodes_checked=checked,
        nodes_total=total,
        seconds=time.perf_counter() - t0,
        quasi_identifiers=qis,
        **more,
    )


def _extra_models(models: Sequence[PrivacyModel], algorithm: str) -> list[PrivacyModel]:
    if isinstance(models, PrivacyModel):
        models = [models]
    out = list(models or ())
    for m in out:
        if not isinstance(m, PrivacyModel):
            raise QueryError(f"models= takes privacy models (pets.anon.DeltaPresence, KMap, ...), got {type(m).__name__}")
        if algorithm != "optimal" and (getattr(m, "uses_population", False) or getattr(m, "table_level", False)):
            raise QueryError(f"{m.describe()} needs algorithm='optimal'")
    return out


def _bind_population(df: pd.DataFrame, qis: list[str], hierarchies: Mapping[str, Hierarchy],
                     models: list[PrivacyModel]) -> pd.DataFrame:
    """Encode the population of the population models; with a mask, return the research
    subset of ``df`` (the rows to release)."""
    pop_models = [m for m in models if getattr(m, "uses_population", False)]
    pops = [getattr(m, "population", None) for m in pop_models]
    pops = [p for p in pops if p is not None]
    if not pops:
        return df
    first = pops[0]
    for other in pops[1:]:
        if other is not first:
            raise QueryError("the population models must share one population (give the same table or mask)")
    if isinstance(first, pd.DataFrame):
        missing = [c for c in qis if c not in first.columns]
        if missing:
            raise QueryError(f"the population table lacks the quasi-identifier column(s) {', '.join(map(repr, missing))}")
        codes = [_need_hierarchy(c, hierarchies).encode(first[c]).codes.astype(np.int64) for c in qis]
        subset = df
    else:
        mask = np.asarray(first)
        if mask.dtype != bool or mask.ndim != 1 or len(mask) != len(df):
            raise QueryError(
                f"a population mask must be booleans, one per row of the table ({len(df)}), marking the "
                "research subset to release"
            )
        if not mask.any():
            raise QueryError("the population mask marks no row: the research subset is empty")
        codes = [_need_hierarchy(c, hierarchies).encode(df[c]).codes.astype(np.int64) for c in qis]
        subset = df.loc[mask]
    for m in pop_models:
        m.population_codes = codes  # type: ignore[attr-defined]
    return subset


def _sensitive_codes(s: pd.Series) -> tuple[np.ndarray, int, bool]:
    """Integer codes of a sensitive column, in value order for numbers."""
    is_num = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype(np.int64), max(len(uniques), 1), bool(is_num)


def _need_hierarchy(col: str, hierarchies: Mapping[str, Hierarchy]) -> Hierarchy:
    h = hierarchies.get(col)
    if h is None:
        raise QueryError(
            f"quasi-identifier {col!r} has no hierarchy; give one (pets.anon.Hierarchy."
            "from_csv / intervals / masking / dates / ordered) or use algorithm='mondrian'"
        )
    return h


def _optimal(df, qis, hierarchies, models, max_suppression, metric, gs_factor, aggregation,  # type: ignore[no-untyped-def]
             search, time_limit, recoding, k, max_nodes=None):
    from functools import partial

    from .heuristic import AUTO_THRESHOLD, heuristic_full_domain
    from .lattice import MAX_NODES, optimal_full_domain
    from .local import local_recoding
    from .metrics import _encoded_table

    encoded = [_need_hierarchy(c, hierarchies).encode(df[c]) for c in qis]
    n_nodes = 1
    for e in encoded:
        n_nodes *= int(e.gen.shape[1])
    use = search
    if search == "auto":
        use = "heuristic" if n_nodes > AUTO_THRESHOLD else "optimal"
    elif search == "optimal" and n_nodes > MAX_NODES:
        raise QueryError(
            f"the lattice has {n_nodes:,} transformations (more than {MAX_NODES:,}) to search "
            "exhaustively; use search='heuristic' (or 'auto') or fewer quasi-identifiers"
        )
    kw = {"metric": metric, "gs_factor": gs_factor, "aggregation": aggregation}
    if use == "heuristic" and max_nodes is not None:
        run = partial(heuristic_full_domain, max_nodes=int(max_nodes), **kw)
    elif use == "heuristic":
        run = partial(heuristic_full_domain, time_limit=time_limit, **kw)
    else:
        run = partial(optimal_full_domain, **kw)
    row_levels = None
    if recoding == "local":
        loc = local_recoding(encoded, models, run, max_suppression, gs_factor=gs_factor)
        res = loc.first
        sup = loc.suppressed
        keep = ~sup
        levels_rows = loc.row_levels
        out = df.loc[keep].copy()
        for j, (c, enc) in enumerate(zip(qis, encoded)):
            lv = levels_rows[keep, j]
            codes = enc.codes[keep]
            text = np.empty(len(codes), dtype=object)
            for h in np.unique(lv):
                sel = lv == h
                text[sel] = np.asarray(enc.labels[h], dtype=object)[enc.gen[codes[sel], h]]
            out[c] = text
        from .local import _released_classes

        class_ids, n_classes = _released_classes(encoded, levels_rows, keep)
        row_levels = pd.DataFrame(levels_rows, columns=qis)
        table: Any = _encoded_table(encoded, levels_rows, sup, gs_factor, k, qis)
        transformation: dict[str, int] | str = "local"
        checked = sum(r.nodes_checked for r in loc.iterations)
        metrics = {m: float(table.loc["total", m]) for m in
                   ("loss", "entropy", "precision", "monotonic_precision", "height",
                    "discernibility", "dm*", "aecs", "arx_aecs")}
        metrics.update({"suppressed": float(sup.sum()), "suppressed_share": float(sup.mean()),
                        "classes": float(n_classes), "iterations": float(len(loc.iterations))})
        metrics.update(_risk(class_ids, n_classes))
        value = None
    else:
        res = run(encoded, models, max_suppression)
        sup = res.suppressed
        keep = ~sup
        out = df.loc[keep].copy()
        for c, enc, level in zip(qis, encoded, res.levels):
            labels = np.asarray(enc.labels[level], dtype=object)
            out[c] = labels[enc.gen[enc.codes[keep], level]]
        metrics = dict(res.metrics)
        metrics.update(_risk(res.class_ids[keep], res.n_classes))
        transformation = {c: int(lv) for c, lv in zip(qis, res.levels)}
        n_classes = int(res.n_classes)
        checked = int(res.nodes_checked)
        table = partial(_encoded_table, encoded, list(res.levels), sup, gs_factor, k, qis)
        value = res.value
    more = {
        "_table": table,
        "suppressed_rows": np.flatnonzero(sup).astype(np.int64),
        "objective": {"metric": metric, "gs_factor": float(gs_factor),
                      "aggregation": res.aggregation, "value": value},
        "search": res.search,
        "lower_bound": res.lower_bound if use == "heuristic" else value,
        "gap": res.gap if recoding == "global" else 0.0,
        "recoding": recoding,
        "row_levels": row_levels,
    }
    return out, transformation, int(sup.sum()), n_classes, metrics, checked, int(res.nodes_total), more


def _cells(df, qis, hierarchies, models, max_suppression, gs_factor, k):  # type: ignore[no-untyped-def]
    """Cell suppression (:mod:`pets.anon.cells`) on the values as they are (a hierarchy's
    level 0 where one is given)."""
    from .cells import STAR, refuse_models, suppress_cells
    from .metrics import _encoded_table

    refuse_models(models)
    codes, labels, encoded = [], [], []
    for c in qis:
        h = hierarchies.get(c)
        if h is not None:
            enc = h.encode(df[c])
            encoded.append(enc)
            lab = np.asarray(enc.labels[0], dtype=object)
            cc = enc.codes.astype(np.int64)
        else:
            cc, uniq = pd.factorize(df[c], sort=True, use_na_sentinel=False)
            lab = np.asarray(uniq, dtype=object)
            cc = cc.astype(np.int64)
        # a value "*" in the data is the suppressed cell's label: one class with them
        star = np.array([isinstance(v, str) and v == "*" for v in lab], dtype=bool)
        if star.any():
            cc = np.where(star[cc], STAR, cc)
        codes.append(cc)
        labels.append(lab)
    res = suppress_cells(codes, models, max_suppression)
    keep = ~res.suppressed
    out = df.loc[keep].copy()
    for j, c in enumerate(qis):
        col = res.codes[keep, j]
        text = np.full(len(col), "*", dtype=object)
        has = col != STAR
        text[has] = labels[j][col[has]]
        out[c] = text
    n, d = len(df), len(qis)
    cells = res.cells_suppressed
    metrics: dict[str, float] = {
        "cells_suppressed": float(cells),
        "cells_share": float(cells / max(1, int(keep.sum()) * d)),
        "suppressed": float(res.suppressed.sum()), "suppressed_share": float(res.suppressed.mean()) if n else 0.0,
        "classes": float(res.n_classes), "rounds": float(res.rounds), "restored": float(res.restored),
    }
    row_levels = None
    table: Any = None
    if len(encoded) == d:  # every QI has a hierarchy: ARX's metrics, a * at the top level
        tops = np.array([e.gen.shape[1] - 1 for e in encoded], dtype=np.int64)
        lv = np.where(res.starred, tops[None, :], 0)
        lv[res.suppressed] = tops
        row_levels = pd.DataFrame(lv, columns=qis)
        table = _encoded_table(encoded, lv, res.suppressed, gs_factor, k, qis)
        for m in ("loss", "entropy", "precision", "monotonic_precision", "height",
                  "discernibility", "dm*", "aecs", "arx_aecs"):
            metrics[m] = float(table.loc["total", m])
    metrics.update(_risk(res.class_ids, res.n_classes))
    more = {
        "_table": table,
        "suppressed_rows": np.flatnonzero(res.suppressed).astype(np.int64),
        "objective": {},
        "search": "cells",
        "lower_bound": None,
        "gap": 0.0,
        "recoding": "cells",
        "row_levels": row_levels,
    }
    return out, "cells", int(res.suppressed.sum()), int(res.n_classes), metrics, 0, 0, more


def _ordinal(s: pd.Series, h: Hierarchy | None) -> tuple[np.ndarray, list[Any], Any]:
    """Ordinal codes of a QI column for Mondrian, the value of each code, and the
    encoded hierarchy (if any)."""
    if h is not None:
        enc = h.encode(s)
        leaves = list(h.values)
        if enc.order is not None:
            rank = np.argsort(np.argsort(enc.order, kind="stable"), kind="stable")
            values = [leaves[i] for i in np.argsort(enc.order, kind="stable")]
            return rank[enc.codes].astype(np.int64), values, None
        return enc.codes.astype(np.int64), leaves, enc
    if s.isna().any():
        raise QueryError(f"quasi-identifier {s.name!r} has missing values; drop them or give a hierarchy with a leaf for them")
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)):
        raise QueryError(
            f"quasi-identifier {s.name!r} is not numeric: give it a hierarchy (its leaf order "
            "orders the categories) for algorithm='mondrian'"
        )
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype(np.int64), list(uniques), None


def _mondrian(df, qis, hierarchies, models, max_suppression):  # type: ignore[no-untyped-def]
    from .mondrian import mondrian

    cols, values, encs = [], [], []
    for c in qis:
        codes, vals, enc = _ordinal(df[c], hierarchies.get(c))
        cols.append(codes)
        values.append(vals)
        encs.append(enc)
    res = mondrian(cols, models)
    out = df.copy()
    ncp_terms = []
    for j, c in enumerate(qis):
        lo, hi = res.ranges[j][:, 0], res.ranges[j][:, 1]
        labels = np.asarray(
            [_range_label(values[j], encs[j], int(a), int(b)) for a, b in zip(lo, hi)], dtype=object
        )
        out[c] = labels[res.class_ids]
        m = len(values[j])
        width = (hi - lo) / (m - 1) if m > 1 else np.zeros(len(lo))
        ncp_terms.append(width[res.class_ids].mean())
    # partitions whose ranges get the same labels are one class in the released table
    from .metrics import classes as _classes

    class_ids, n_classes = _classes(out, qis)
    sizes = np.bincount(class_ids, minlength=n_classes)
    metrics = {
        "ncp": float(np.mean(ncp_terms)),
        "discernibility": float((sizes.astype(np.float64) ** 2).sum()),
        "aecs": float(len(df) / n_classes / models[0].k),  # type: ignore[attr-defined]
        "partitions": float(res.n_classes),
    }
    metrics.update(_risk(class_ids, n_classes))
    return out, "mondrian", 0, int(n_classes), metrics, 0, 0


def _range_label(values: list[Any], enc: Any, lo: int, hi: int) -> str:
    if lo == hi:
        return str(values[lo])
    if enc is not None:  # categories: the lowest hierarchy label covering the whole range
        leaves = np.arange(lo, hi + 1)
        for level in range(1, enc.gen.shape[1]):
            codes = np.unique(enc.gen[leaves, level])
            if len(codes) == 1:
                return str(enc.labels[level][codes[0]])
        return "{" + ",".join(str(values[i]) for i in range(lo, hi + 1)) + "}"
    return f"{values[lo]}-{values[hi]}"


def _risk(class_ids: np.ndarray, n_classes: int) -> dict[str, float]:
    sizes = np.bincount(class_ids, minlength=n_classes)
    sizes = sizes[sizes > 0]
    n = int(sizes.sum())
    if n == 0:
        return {"prosecutor_risk_max": 0.0, "prosecutor_risk_avg": 0.0}
    return {
        "prosecutor_risk_max": float(1.0 / sizes.min()),
        "prosecutor_risk_avg": float(len(sizes) / n),
        "min_class_size": float(sizes.min()),
        "avg_class_size": float(n / len(sizes)),
    }

