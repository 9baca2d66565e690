"""The model protocol: a model is configured (constructor stores its arguments), compiled
against the policy into a :class:`Trainer` (cost, explain, nothing read), trained on the
rows inside the holder's domain (noise added there), and released as a fitted model that
holds only noisy statistics or noisy parameters, the public encoding and its cost.

Fitted models save and load as JSON (:meth:`Model.to_json`, :func:`pets.models.load`),
never as pickles.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..cost import Cost
from ..errors import QueryError
from ..protections import DP
from .features import Feature, encode, names_out

__all__ = ["Model", "Trainer", "load", "MODEL_TYPES"]

#: model name → class, for loading JSON
MODEL_TYPES: dict[str, type["Model"]] = {}
JSON_VERSION = 1


def _names(features: Any, what: str) -> tuple[str, ...]:
    if isinstance(features, str):
        features = [features]
    try:
        out = tuple(features)
    except TypeError:
        raise QueryError(f"{what} must be a list of column names, got {type(features).__name__}") from None
    if not out or not all(isinstance(c, str) and c for c in out):
        raise QueryError(f"{what} must be a non-empty list of column names, got {out!r:.80}")
    if len(set(out)) != len(out):
        raise QueryError(f"{what} names a column twice")
    return out


class Trainer(ABC):
    """A compiled fit: what it costs and says, decided from the policy alone."""

    cost: Cost
    zdelta: float | None = None
    rows_per_person: int = 1

    @abstractmethod
    def details(self) -> pd.DataFrame:
        """One row per released statistic: name, size, sensitivity, noise, scale."""

    @abstractmethod
    def scales(self) -> dict[str, float]:
        """Noise scale per released statistic."""

    @abstractmethod
    def train(self, rows: pd.DataFrame) -> "Model":
        """Inside the holder's domain: the noisy statistics and the fitted model."""


class Model(ABC):
    """Base class of the DP models of :mod:`pets.models`.

    ``target`` is the column to predict, ``features`` the input columns; ``log`` names
    numeric features encoded as log1p (long-tailed amounts). Bounds and categories come
    from the holder's policy at fit time.
    """

    name: ClassVar[str]
    task: ClassVar[str]  # "regression" | "classification"

    def __init__(self, target: str, features: Any, *, log: Any = ()) -> None:
        if not isinstance(target, str) or not target:
            raise QueryError(f"target must be a column name, got {target!r:.80}")
        self.target = target
        self.features = _names(features, "features")
        self.log = _names(log, "log") if log else ()
        if target in self.features:
            raise QueryError(f"the target {target!r} is also a feature; leave it out of features")
        for c in self.log:
            if c not in self.features:
                raise QueryError(f"log names {c!r}, which is not a feature")
        # fitted state
        self.features_: tuple[Feature, ...] | None = None
        self.cost: Cost | None = None
        self.audit_id: int | None = None
        self.dummy = False  # fitted on a dummy table (s.fit(..., dummy=True)): no data

    # -- configuration -------------------------------------------------------------
    def columns(self) -> tuple[str, ...]:
        return (self.target, *self.features)

    def params(self) -> dict[str, Any]:
        """The constructor's keyword arguments beyond target, features and log."""
        return {}

    def spec(self) -> dict[str, Any]:
        """The model as requested (audited with the release)."""
        return {"model": self.name, "target": self.target, "features": list(self.features),
                "log": list(self.log), **self.params()}

    @classmethod
    def from_spec(cls, d: dict[str, Any]) -> "Model":
        if not isinstance(d, dict):
            raise QueryError("a model spec must be a JSON object")
        kind = MODEL_TYPES.get(str(d.get("model")))
        if kind is None:
            raise QueryError(f"unknown model {d.get('model')!r:.60}; use one of {', '.join(MODEL_TYPES)}")
        extra = {k: v for k, v in d.items() if k not in ("model", "target", "features", "log")}
        try:
            return kind(d.get("target"), d.get("features"), log=d.get("log") or (), **extra)  # type: ignore[arg-type]
        except TypeError as e:
            raise QueryError(f"malformed {kind.name} spec: {str(e)[:120]}") from None

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "not fitted"
        return f"{self.name}(target={self.target!r}, features={list(self.features)!r}; {state})"

    @abstractmethod
    def compile(self, policy: Any, schema: dict[str, str], protection: DP,
                rows_per_person: int) -> Trainer:
        """Check the request against the policy (PolicyError/QueryError) and calibrate."""

    # -- fitted --------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.features_ is not None

    def _check_fitted(self) -> tuple[Feature, ...]:
        if self.features_ is None:
            raise QueryError(f"this {self.name} is not fitted: fit it with s.fit(query, model, pets.DP(...))")
        return self.features_

    @property
    def feature_names_out_(self) -> list[str]:
        return names_out(self._check_fitted())

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """The encoded design matrix of ``df`` (what ``coef_`` multiplies)."""
        if not isinstance(df, pd.DataFrame):
            raise QueryError(f"expected a pandas DataFrame, got {type(df).__name__}")
        return encode(self._check_fitted(), df)

    @abstractmethod
    def predict(self, df: pd.DataFrame) -> np.ndarray: ...

    @abstractmethod
    def score(self, df: pd.DataFrame) -> float: ...

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Fitted parameters as JSON values."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None: ...

    def to_dict(self) -> dict[str, Any]:
        feats = self._check_fitted()
        cost = self.cost or Cost()
        return {"pets_model": JSON_VERSION, **self.spec(),
                "encoding": [f.to_dict() for f in feats], "state": self._state(),
                "cost": {"epsilon": cost.epsilon, "delta": cost.delta, "rho": cost.rho},
                "audit_id": self.audit_id}

    def to_json(self, path: Any = None) -> str:
        """The fitted model as JSON (written to ``path`` too when given)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def _fitted_copy(self, features: tuple[Feature, ...], state: dict[str, Any], cost: Cost) -> "Model":
        m = type(self).from_spec(self.spec())
        m.features_ = features
        m.cost = cost
        m._load_state(state)
        return m


def load(source: Any) -> Model:
    """A fitted model from its JSON (text, a dict, or a path to a ``.json`` file)."""
    if isinstance(source, dict):
        d = source
    else:
        text = str(source)
        if not text.lstrip().startswith("{"):
            try:
                with open(text, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise QueryError(f"cannot read model file {str(source)[:100]!r}: {e.strerror}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise QueryError(f"a model's JSON is malformed: {e.msg} at line {e.lineno}") from None
    if not isinstance(d, dict) or d.get("pets_model") != JSON_VERSION:
        raise QueryError("not a pets model (the JSON lacks \"pets_model\": 1)")
    try:
        m = Model.from_spec({k: d[k] for k in d if k not in
                             ("pets_model", "encoding", "state", "cost", "audit_id")})
        m.features_ = tuple(Feature.from_dict(f) for f in d["encoding"])
        c = d.get("cost") or {}
        m.cost = Cost(float(c.get("epsilon", 0)), float(c.get("delta", 0)), float(c.get("rho", 0)))
        m.audit_id = d.get("audit_id")
        m._load_state(d["state"])
    except (KeyError, TypeError, ValueError) as e:
        raise QueryError(f"a model's JSON is malformed: {type(e).__name__} {str(e)[:80]}") from None
    return m


def register(cls: type[Model]) -> type[Model]:
    MODEL_TYPES[cls.name] = cls
    return cls
