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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import PolicyFormatError

__all__ = ["KanonPolicy"]

_KEYS = ("max_risk", "sample_fraction", "max_uniqueness", "uniqueness_model", "k_map",
         "delta_presence", "population")


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
        return cls(max_risk=mr, sample_fraction=sf, max_uniqueness=mu, uniqueness_model=str(um),
                   k_map=km, delta_presence=dp, population=pop)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in _KEYS:
            v = getattr(self, k)
            if k == "uniqueness_model" and v == "dankar":
                continue
            if v is not None:
                out[k] = list(v) if isinstance(v, tuple) else v
        return out

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
