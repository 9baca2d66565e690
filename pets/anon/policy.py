"""The ``[kanon]`` section of a dataset policy: privacy models the holder requires of
every k-anonymous extract of the table, beyond the analyst's k, l and t.

::

    [kanon]
    max_risk = 0.05              # average re-identification risk (classes / released rows)
    sample_fraction = 0.01       # the table's share of the population it was drawn from
    max_uniqueness = 0.001       # estimated share of the population unique (needs sample_fraction)
    uniqueness_model = "dankar"  # or "pitman", "zayatz", "snb"
    k_map = 10                   # every class matches >= 10 people of the population
                                 # (of population, or estimated from sample_fraction)
    delta_presence = [0.0, 0.5]  # the share of each class's population released (needs population)
    population = "register.csv"  # the population table: a file of the holder's, relative
                                 # to the policy file (never rows an analyst supplies)

The models are those of :mod:`pets.anon.models`. The population file is read when an
extract runs (after it is counted), with its quasi-identifier columns encoded by the
policy's hierarchies. They need ``algorithm="optimal"``.

The section also says which search options an analyst may choose
(``pets.KAnonymity(search=..., ...)``)::

    search = ["optimal", "heuristic"]   # the values allowed, the first the default
    recoding = "global"                 # one value: fixed (any other is refused)
    max_nodes = 20000                   # the heuristic's node budget: the largest and the default
    gs_factor = [0.3, 0.7]              # a range (default 0.5, or the nearest end); a number fixes it
    aggregation = ["geometric", "arithmetic"]
    t_distance = ["ordered", "hierarchical"]

A choice outside them is refused with ``PolicyError(rule="kanon.<key>")`` before any
data is read (:meth:`KanonPolicy.options`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import PolicyFormatError

__all__ = ["KanonPolicy"]

_MODEL_KEYS = ("max_risk", "sample_fraction", "max_uniqueness", "uniqueness_model", "k_map",
               "delta_presence", "population")
#: the search options a holder may fix or restrict, and their values
_CHOICE_KEYS = ("search", "recoding", "aggregation", "t_distance")
_KEYS = _MODEL_KEYS + _CHOICE_KEYS + ("gs_factor", "max_nodes")


def _choices(key: str) -> tuple[str, ...]:
    from .anonymize import RECODINGS, SEARCHES
    from .metrics import AGGREGATIONS
    from .models import T_DISTANCES

    return {"search": SEARCHES, "recoding": RECODINGS, "aggregation": AGGREGATIONS,
            "t_distance": T_DISTANCES}[key]


def _fail(where: str, message: str) -> None:
    key = "kanon" + (f".{where}" if where else "")
    raise PolicyFormatError(f"{key}: {message}", key=key)


def _share(where: str, v: Any, *, open_zero: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and (0 < v <= 1 if open_zero else 0 <= v <= 1)
    if not ok:
        _fail(where, f"must be a number in {'(0, 1]' if open_zero else '[0, 1]'}, not {v!r}")
    return float(v)


@dataclass(frozen=True)
class KanonPolicy:
    max_risk: float | None = None
    sample_fraction: float | None = None
    max_uniqueness: float | None = None
    uniqueness_model: str = "dankar"
    k_map: int | None = None
    delta_presence: tuple[float, float] | None = None
    population: str | None = None
    #: allowed values per option (the first is the default), None: any
    search: tuple[str, ...] | None = None
    recoding: tuple[str, ...] | None = None
    aggregation: tuple[str, ...] | None = None
    t_distance: tuple[str, ...] | None = None
    #: [lo, hi] (equal ends: fixed), None: any
    gs_factor: tuple[float, float] | None = None
    max_nodes: int | None = None

    @classmethod
    def from_dict(cls, d: Any, base_dir: str | os.PathLike[str] | None = None) -> KanonPolicy:
        if isinstance(d, KanonPolicy):
            return d
        if not isinstance(d, Mapping):
            _fail("", "must be a table: write [kanon]")
        unknown = [k for k in d if k not in _KEYS]
        if unknown:
            _fail(str(unknown[0]), f"unknown key; accepted keys in [kanon]: {', '.join(_KEYS)}")
        from .risk import ESTIMATORS

        mr = d.get("max_risk")
        sf = d.get("sample_fraction")
        mu = d.get("max_uniqueness")
        um = d.get("uniqueness_model", "dankar")
        km = d.get("k_map")
        dp = d.get("delta_presence")
        pop = d.get("population")
        if mr is not None:
            mr = _share("max_risk", mr, open_zero=True)
        if sf is not None:
            sf = _share("sample_fraction", sf, open_zero=True)
        if mu is not None:
            mu = _share("max_uniqueness", mu)
            if sf is None:
                _fail("max_uniqueness", "needs sample_fraction (the table's share of the population)")
        if um not in ESTIMATORS:
            _fail("uniqueness_model", f"must be one of {', '.join(ESTIMATORS)}, not {um!r}")
        if km is not None:
            if isinstance(km, bool) or not isinstance(km, int) or km < 2:
                _fail("k_map", f"must be an integer >= 2, not {km!r}")
            if pop is None and sf is None:
                _fail("k_map", "needs population (a file) or sample_fraction (an estimate)")
        if dp is not None:
            if (not isinstance(dp, Sequence) or isinstance(dp, str) or len(dp) != 2
                    or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in dp)
                    or not 0 <= dp[0] <= dp[1] <= 1):
                _fail("delta_presence", f"must be [dmin, dmax] with 0 <= dmin <= dmax <= 1, not {dp!r}")
            if pop is None:
                _fail("delta_presence", "needs population (the population table the data is a subset of)")
            dp = (float(dp[0]), float(dp[1]))
        if pop is not None:
            if not isinstance(pop, str) or not pop:
                _fail("population", f"must be a file path (a string), not {pop!r}")
            if km is None and dp is None:
                _fail("population", "is used by k_map or delta_presence; set one")
            base = Path(base_dir) if base_dir is not None else Path.cwd()
            pop = os.path.normpath(os.path.join(base.absolute(), os.path.expanduser(pop)))
        opts: dict[str, Any] = {}
        for key in _CHOICE_KEYS:
            v = d.get(key)
            if v is None:
                continue
            allowed = _choices(key)
            vals = [v] if isinstance(v, str) else v
            if (not isinstance(vals, Sequence) or not vals
                    or any(not isinstance(x, str) or x not in allowed for x in vals)):
                _fail(key, f"must be one of {', '.join(map(repr, allowed))} or a non-empty list of them, "
                           f"not {v!r}")
            opts[key] = tuple(dict.fromkeys(vals))
        gs = d.get("gs_factor")
        if gs is not None:
            if not isinstance(gs, (list, tuple)):
                gs = [gs, gs]
            if (len(gs) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in gs)
                    or not 0 <= gs[0] <= gs[1] <= 1):
                _fail("gs_factor", f"must be a number in [0, 1] or [lo, hi] with 0 <= lo <= hi <= 1, "
                                   f"not {d.get('gs_factor')!r}")
            opts["gs_factor"] = (float(gs[0]), float(gs[1]))
        mn = d.get("max_nodes")
        if mn is not None:
            from ..protections import MAX_NODES

            if isinstance(mn, bool) or not isinstance(mn, int) or not 1 <= mn <= MAX_NODES:
                _fail("max_nodes", f"must be an integer from 1 to {MAX_NODES:,}, not {mn!r}")
            opts["max_nodes"] = int(mn)
        return cls(max_risk=mr, sample_fraction=sf, max_uniqueness=mu, uniqueness_model=str(um),
                   k_map=km, delta_presence=dp, population=pop, **opts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in _KEYS:
            v = getattr(self, k)
            if k == "uniqueness_model" and v == "dankar":
                continue
            if v is None:
                continue
            if k in _CHOICE_KEYS:
                out[k] = v[0] if len(v) == 1 else list(v)
            elif k == "gs_factor":
                out[k] = v[0] if v[0] == v[1] else list(v)
            else:
                out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def options(self, protection: Any) -> dict[str, Any]:
        """The search options of an extract: the analyst's choices (``pets.KAnonymity``'s
        ``gs_factor``, ``aggregation``, ``search``, ``max_nodes``, ``recoding``,
        ``t_distance``) within what this section allows, the section's defaults for the
        rest. A choice outside raises :class:`~pets.errors.PolicyError` with
        ``rule="kanon.<key>"`` (decided on the request and the policy alone)."""
        return resolve_options(self, protection)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_risk, self.max_uniqueness, self.k_map, self.delta_presence))

    def describe(self) -> str:
        parts = []
        if self.max_risk is not None:
            parts.append(f"average risk <= {self.max_risk:g}")
        if self.max_uniqueness is not None:
            parts.append(f"population uniqueness <= {self.max_uniqueness:g}")
        if self.k_map is not None:
            parts.append(f"{self.k_map}-map")
        if self.delta_presence is not None:
            parts.append(f"({self.delta_presence[0]:g}, {self.delta_presence[1]:g})-presence")
        return ", ".join(parts)

    def models(self, quasi_identifiers: Sequence[str]) -> list[Any]:
        """The privacy models, the population read from the holder's file (its
        quasi-identifier columns only)."""
        from . import models as m

        pop = None
        if self.population is not None:
            import duckdb

            cols = ", ".join('"' + c.replace('"', '""') + '"' for c in quasi_identifiers)
            con = duckdb.connect()
            try:
                pop = con.execute(f"SELECT {cols} FROM read_csv_auto(?)", [self.population]).df()
            finally:
                con.close()
        out: list[Any] = []
        if self.max_risk is not None:
            out.append(m.AverageReidentificationRisk(self.max_risk))
        if self.max_uniqueness is not None:
            out.append(m.PopulationUniqueness(self.max_uniqueness, model=self.uniqueness_model,
                                              sample_fraction=float(self.sample_fraction or 1.0)))
        if self.k_map is not None:
            if pop is not None:
                out.append(m.KMap(self.k_map, population=pop))
            else:
                out.append(m.KMap(self.k_map, sample_fraction=self.sample_fraction))
        if self.delta_presence is not None:
            out.append(m.DeltaPresence(self.delta_presence[0], self.delta_presence[1], population=pop))
        return out


def resolve_options(section: KanonPolicy | None, p: Any) -> dict[str, Any]:
    """:meth:`KanonPolicy.options` (``section`` None: no restriction): keyword arguments
    of :func:`pets.anon.anonymize` (``max_nodes`` for the heuristic; ``search`` is left
    out for cell suppression, which searches no lattice)."""
    from ..errors import PolicyError
    from .heuristic import DEFAULT_MAX_NODES

    out: dict[str, Any] = {}
    for key in _CHOICE_KEYS:
        allowed = getattr(section, key, None) if section is not None else None
        asked = getattr(p, key)
        if allowed is not None and asked is not None and asked not in allowed:
            raise PolicyError(
                f"{key}={asked!r} is not allowed by the policy's [kanon] {key} "
                f"(allowed: {', '.join(map(repr, allowed))})",
                rule=f"kanon.{key}", allowed=list(allowed),
            )
        val = asked if asked is not None else (allowed[0] if allowed else None)
        if val is not None:
            out[key] = val
    rng = section.gs_factor if section is not None else None
    gs = p.gs_factor
    if rng is not None and gs is not None and not rng[0] <= gs <= rng[1]:
        fixed = f"{rng[0]:g}" if rng[0] == rng[1] else f"[{rng[0]:g}, {rng[1]:g}]"
        raise PolicyError(f"gs_factor={gs:g} is outside the policy's [kanon] gs_factor {fixed}",
                          rule="kanon.gs_factor", allowed=list(rng))
    if gs is None and rng is not None:
        gs = min(max(0.5, rng[0]), rng[1])
    if gs is not None:
        out["gs_factor"] = float(gs)
    cap = section.max_nodes if section is not None else None
    mn = p.max_nodes
    if cap is not None and mn is not None and mn > cap:
        raise PolicyError(f"max_nodes={mn:,} is above the policy's [kanon] max_nodes of {cap:,}",
                          rule="kanon.max_nodes", allowed=cap)
    if mn is not None and out.get("search", "optimal") == "optimal":
        raise PolicyError("max_nodes bounds the heuristic search: ask for search='heuristic' or "
                          "'auto' (the policy's [kanon] search allows "
                          f"{', '.join(map(repr, getattr(section, 'search', None) or _choices('search')))})",
                          rule="kanon.max_nodes")
    if out.get("recoding") == "cells":
        if p.search not in (None, "optimal") or p.max_nodes is not None:
            raise PolicyError(
                "search and max_nodes choose a lattice search; the recoding of this extract is the "
                "policy's [kanon] recoding default 'cells', which searches none: ask for "
                "recoding='global' or 'local' too",
                rule="kanon.recoding", allowed=list(getattr(section, "recoding", None) or ()),
            )
        out.pop("search", None)
    elif out.get("search", "optimal") != "optimal":
        out["max_nodes"] = int(mn if mn is not None else (cap if cap is not None else DEFAULT_MAX_NODES))
    if out.get("t_distance") is not None and p.t is None:
        if p.t_distance is None:
            out.pop("t_distance")  # the policy's default applies to t-closeness only
    return out
