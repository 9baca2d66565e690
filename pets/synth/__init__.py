"""DP synthetic data: ``s.synthesize(query.select(...), pets.DP(...), rows=n)`` releases
rows sampled from a model of noisy marginals selected and fitted by MST
(:mod:`pets.synth.mst`, which states the guarantee). ``pets.synth.Synthetic(dp, rows=n)``
is the same request as a protection, for ``s.explain``."""

from __future__ import annotations

from .mst import MAX_ROWS, Column, MSTPlan

__all__ = ["Column", "MAX_ROWS", "MSTPlan", "Synthetic", "SyntheticData"]


def __getattr__(name: str):  # the protection lives with its mechanism
    if name in ("Synthetic", "SyntheticData"):
        from ..mechanisms import models

        return getattr(models, name)
    raise AttributeError(name)
