"""Noise for the statistics a model or a synthesizer releases: one place that turns a
``pets.DP`` request and the sensitivities of integer measurements into scales, a cost,
and noisy values — always from the vetted samplers of :mod:`pets.dp.samplers`.

``noise="laplace"`` (default): measurement i gets the share w_i of ε and discrete Laplace
noise with scale = Δ₁,i / (w_i·ε) (checked against OpenDP's privacy map); basic
composition gives ε-DP (δ = 0).

``noise="gaussian"`` (δ > 0): ρ is the largest value whose zCDP implies (ε, δ)-DP
(Canonne, Kamath & Steinke 2020, Prop. 12); measurement i gets the share w_i of ρ and
discrete Gaussian noise with σ = sqrt(Δ₂,i² / 2w_iρ) (CKS 2020, Thm 15); zCDP composes
additively, so the release is ρ-zCDP, hence (ε, δ)-DP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cost import Cost
from ..dp.samplers import (add_discrete_gaussian, add_discrete_laplace, gaussian_scale,
                           laplace_scale, zcdp_rho)
from ..errors import InternalError
from ..protections import DP

__all__ = ["Measurement", "Calibration", "calibrate"]


@dataclass(frozen=True)
class Measurement:
    """An integer vector to be released: its L1 and squared-L2 sensitivity (one person
    added or removed) and its share of the budget."""

    name: str
    l1: int
    l2sq: int
    share: float = 1.0


@dataclass
class Calibration:
    protection: DP
    gaussian: bool
    cost: Cost
    zdelta: float | None
    scales: dict[str, float] = field(default_factory=dict)
    epsilons: dict[str, float] = field(default_factory=dict)  # Laplace: ε of each
    rhos: dict[str, float] = field(default_factory=dict)  # Gaussian: ρ of each

    def std(self, name: str) -> float:
        """The standard deviation of one noise draw of measurement ``name`` (integer units)."""
        s = self.scales[name]
        return s if self.gaussian else math.sqrt(2.0) * s

    def noisy(self, name: str, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.int64)
        if self.gaussian:
            return add_discrete_gaussian(v, self.scales[name])
        return add_discrete_laplace(v, self.scales[name])

    @property
    def kind(self) -> str:
        return "discrete gaussian" if self.gaussian else "discrete laplace"


def calibrate(protection: DP, measurements: list[Measurement],
              total_share: float = 1.0) -> Calibration:
    """Scales for ``measurements`` sharing ``total_share`` of the request's budget (the
    rest is spent elsewhere by the caller, who then reports the whole cost)."""
    total = sum(m.share for m in measurements)
    if total <= 0:
        raise InternalError("measurements need positive shares; this is a bug")
    gaussian = protection.noise == "gaussian"
    cal = Calibration(protection, gaussian, Cost(), None)
    if gaussian:
        rho = zcdp_rho(protection.epsilon, protection.delta)
        cal.cost = Cost(protection.epsilon, protection.delta, rho)
        cal.zdelta = 0.0
        for m in measurements:
            r = rho * total_share * m.share / total
            cal.rhos[m.name] = r
            cal.scales[m.name] = gaussian_scale(int(m.l2sq), r)
    else:
        cal.cost = Cost(protection.epsilon, 0.0)
        for m in measurements:
            e = protection.epsilon * total_share * m.share / total
            cal.epsilons[m.name] = e
            cal.scales[m.name] = laplace_scale(int(m.l1), e)
    return cal
