"""DP models, released through the one release pipeline.

``s.fit(query, model, pets.DP(epsilon=...))`` trains ``model`` on the rows ``query``
selects, inside the holder's domain, and releases only the fitted model: its noisy
statistics or noisy parameters, the encoding (public: from the policy's bounds and
keys) and the cost. Each model's docstring states its guarantee:

* :class:`LinearRegression` — sufficient-statistics perturbation (ε-DP or ρ-zCDP);
* :class:`LogisticRegression` — objective perturbation (pure ε-DP);
* :class:`NaiveBayes` — one noisy histogram of class statistics (ε-DP or ρ-zCDP).

``pets.models.Fit(model, pets.DP(...))`` is the same request as a protection, for
``s.explain(query, pets.models.Fit(...))``. Fitted models save with ``to_json`` and load
with :func:`load` (JSON, never pickles).
"""

from __future__ import annotations

from .base import Model, load
from .glm import LinearRegression, LogisticRegression
from .naive_bayes import NaiveBayes

__all__ = ["Fit", "LinearRegression", "LogisticRegression", "Model", "NaiveBayes", "load"]


def __getattr__(name: str):  # Fit lives with its mechanism (pets.mechanisms.models)
    if name == "Fit":
        from ..mechanisms.models import Fit

        return Fit
    raise AttributeError(name)
