"""The accountant: how a grant composes the releases charged to it.

A grant gives an analyst a budget (ε_B, δ_B) on a dataset for a purpose. Every release
charges the ledger; the grant's ``accounting`` says which composition theorem turns the
charges into one guarantee for everything released under the grant:

``"basic"`` (the default)
    Each release is (ε_i, δ_i)-DP; the ledger sums them. Basic sequential composition
    (Dwork & Roth 2014, Thm 3.16), valid for adaptively chosen releases with a budget
    fixed in advance (a privacy filter, Rogers et al. 2016): everything released is
    (Σ ε_i, Σ δ_i)-DP with Σ ε_i ≤ ε_B and Σ δ_i ≤ δ_B. Pure DP when δ_B = 0.

``"zcdp"`` (needs δ_B > 0)
    Each release is δ'_i-approximately ρ_i-zCDP (Bun & Steinke 2016, §8): a Gaussian
    release has its exact ρ (Δ₂²/2σ² summed over its measurements); a pure ε-DP release
    has ρ = ε²/2 (Bun & Steinke 2016, Prop. 1.4); an (ε, δ)-DP release (Laplace with a
    threshold on unknown keys) has ρ = ε²/2 with δ' = δ. The ledger sums ρ and δ'.
    Half of δ_B is set aside for converting ρ into (ε, δ): the grant allows
    Σ ρ_i ≤ ρ_B, the largest ρ whose zCDP implies (ε_B, δ_B/2)-DP (Canonne, Kamath &
    Steinke 2020, Prop. 12, by OpenDP's conversion), and Σ δ'_i ≤ δ_B/2. zCDP composes
    additively and adaptively with a budget fixed in advance (a Rényi filter, Feldman &
    Zrnic 2021), so everything released is (ε_B, δ_B)-DP. Many Gaussian releases cost
    far less this way: k releases of ρ each cost ε ≈ sqrt(k) times one, not k times.

The accounting of a grant is fixed once budget is spent on it: switching theorems in
the middle of a stream of releases is not covered by either filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..cost import Cost, exact
from ..errors import QueryError
from .samplers import zcdp_epsilon, zcdp_rho

__all__ = ["ACCOUNTINGS", "Budget", "check_accounting", "grant_rho", "charged_cost"]

ACCOUNTINGS = ("basic", "zcdp")


def check_accounting(accounting: object, delta: float) -> str:
    """The accounting name, checked against the grant's delta."""
    if accounting not in ACCOUNTINGS:
        raise QueryError(
            f"accounting must be one of {', '.join(map(repr, ACCOUNTINGS))}, got {accounting!r}"
        )
    if accounting == "zcdp" and not delta > 0:
        raise QueryError(
            "accounting='zcdp' needs a grant with delta > 0 (half of it converts the "
            "composed rho into (epsilon, delta)); e.g. delta=1e-6"
        )
    return str(accounting)


def grant_rho(epsilon: float, delta: float) -> float:
    """ρ_B of a zCDP grant (ε_B, δ_B): the largest ρ implying (ε_B, δ_B/2)-DP."""
    return zcdp_rho(float(epsilon), float(delta) / 2.0)


def charged_cost(accounting: str, cost: Cost, zdelta: float | None = None) -> tuple[Cost, float]:
    """What a release of ``cost`` charges to a grant of ``accounting``: the Cost written
    to the ledger and the approximate-zCDP δ' (0 for basic accounting).

    ``cost.rho`` is the release's ρ when it has one (Gaussian); 0 means "derive it":
    ε²/2 of its (ε, δ)-DP guarantee, with δ' = δ."""
    if accounting == "basic":
        return Cost(cost.epsilon, cost.delta), 0.0
    rho = cost.rho if cost.rho > 0 else float(exact(cost.epsilon) ** 2 / 2)
    return Cost(cost.epsilon, cost.delta, rho), float(cost.delta if zdelta is None else zdelta)


@dataclass(frozen=True)
class Budget:
    """A grant and what was spent on it, in exact arithmetic."""

    accounting: str
    epsilon: Fraction
    delta: Fraction
    spent_epsilon: Fraction = Fraction(0)
    spent_delta: Fraction = Fraction(0)
    spent_rho: Fraction = Fraction(0)
    spent_zdelta: Fraction = Fraction(0)

    @property
    def rho(self) -> Fraction:
        """ρ_B (zCDP grants), 0 otherwise."""
        if self.accounting != "zcdp":
            return Fraction(0)
        return exact(grant_rho(float(self.epsilon), float(self.delta)))

    def fits(self, cost: Cost, zdelta: float) -> bool:
        if self.accounting == "basic":
            return (self.spent_epsilon + exact(cost.epsilon) <= self.epsilon
                    and self.spent_delta + exact(cost.delta) <= self.delta)
        return (self.spent_rho + exact(cost.rho) <= self.rho
                and self.spent_zdelta + exact(zdelta) <= self.delta / 2)

    def granted(self) -> Cost:
        return Cost(float(self.epsilon), float(self.delta), float(self.rho))

    def spent(self) -> Cost:
        """The guarantee of everything released so far, as (ε, δ) (and ρ for zCDP)."""
        if self.accounting == "basic":
            return Cost(float(self.spent_epsilon), float(self.spent_delta))
        rho = float(self.spent_rho)
        if rho == 0:
            return Cost(0.0, float(self.spent_zdelta), 0.0)
        half = float(self.delta) / 2.0
        eps = min(zcdp_epsilon(rho, half), float(self.epsilon))
        return Cost(eps, min(half + float(self.spent_zdelta), float(self.delta)), rho)

    def remaining(self) -> Cost:
        """Grant minus spent, never below zero: (ε, δ) left (and ρ left for zCDP)."""
        if self.accounting == "basic":
            return Cost(float(max(self.epsilon - self.spent_epsilon, Fraction(0))),
                        float(max(self.delta - self.spent_delta, Fraction(0))))
        s = self.spent()
        return Cost(max(float(self.epsilon) - s.epsilon, 0.0),
                    max(float(self.delta) - s.delta, 0.0),
                    float(max(self.rho - self.spent_rho, Fraction(0))))

    def describe_left(self) -> str:
        left = self.remaining()
        if self.accounting == "basic":
            return f"epsilon={_num(left.epsilon)}, delta={_num(left.delta)}"
        return (f"rho={_num(left.rho)} (epsilon={_num(left.epsilon)}, delta={_num(left.delta)} "
                f"under zCDP accounting)")


def _num(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"
