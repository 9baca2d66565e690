"""Population uniqueness: how many people of the *population* are unique on the
quasi-identifiers, estimated from a sample of it (the released table).

A record that is unique in the sample is only dangerous if it is unique in the
population too (then a register lookup finds exactly that person). When the
population is not at hand, its uniques are estimated from the sample's class sizes
and the sampling fraction π = n / N. Four estimators, from their papers' formulas:

- **Zayatz** (Zayatz 1991, equivalence-class model): by Bayes' rule the chance that a
  sample unique is a population unique is p₁·P(f=1|F=1) / Σⱼ pⱼ·P(f=1|F=j), with pⱼ
  the share of classes of size j (estimated from the sample) and P(f=1|F=j) the
  hypergeometric chance that a population class of j people leaves one in a sample of
  n out of N. Population uniques = sample uniques × that chance / π.
- **Pitman** (Hoshino 2001): the class sizes follow Pitman's sampling formula with
  parameters (θ, α), fitted by maximum likelihood on the sample's partition; the
  population's expected number of singletons is
  N·Γ(θ+1)·Γ(θ+α+N−1) / (Γ(θ+α)·Γ(θ+N)) (the chance that a person's class
  stays a singleton as the other N − 1 are seated, times N).
- **SNB** (Chen & Keller-McNulty 1998, slide negative binomial): population class
  sizes are 1 + NegBin(r, p); a Bernoulli(π) sample of a class of F keeps Bin(F, π).
  K, r and p are fitted by matching the sample's number of classes, uniques and
  pairs; population uniques = K·pʳ.
- **Dankar** (Dankar, El Emam, Neisa & Roffey 2012, decision rule): Pitman when
  π ≤ 0.1 (Zayatz when Pitman's fit gives no number or 0); above, the smaller of the
  Zayatz and SNB estimates, Zayatz alone when SNB gives no number or 0. This is the
  choice ARX's ``RiskModelPopulationUniqueness`` makes (its source read and compared
  case by case). One difference, on purpose: where the chosen estimate is not a number,
  ARX reports 0 uniques; pets reports NaN, which a privacy model refuses.

With π = 1 (the sample is the population) every estimator returns the sample's
uniques exactly. All are estimates under a model of how the population's class sizes
are distributed: they are figures to read, not guarantees.

Privacy models built on these figures live in :mod:`pets.anon.models`
(:class:`~pets.anon.models.PopulationUniqueness`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import QueryError

__all__ = [
    "ESTIMATORS",
    "UniquenessEstimate",
    "estimate_population_uniques",
    "population_uniqueness",
    "risk",
]

#: the population-uniqueness estimators (``model=``)
ESTIMATORS = ("dankar", "pitman", "zayatz", "snb")


@dataclass(frozen=True)
class UniquenessEstimate:
    """An estimate of the population's uniques: ``uniques`` (people), ``share``
    (uniques / population size), ``model`` the estimator that produced it (for
    ``"dankar"``, the one its rule chose), ``population`` the population size
    N = n / π used. ``uniques`` is NaN when the estimator did not converge."""

    uniques: float
    share: float
    model: str
    population: float


def _check_fraction(sample_fraction: Any) -> float:
    if (
        isinstance(sample_fraction, bool)
        or not isinstance(sample_fraction, (int, float, np.integer, np.floating))
        or not 0 < float(sample_fraction) <= 1
    ):
        raise QueryError(
            f"sample_fraction must be a number in (0, 1] (the released table's share of the "
            f"population), got {sample_fraction!r}"
        )
    return float(sample_fraction)


def _check_model(model: Any) -> str:
    if model not in ESTIMATORS:
        raise QueryError(f"unknown estimator {model!r}; use one of {', '.join(ESTIMATORS)}")
    return str(model)


def _sizes(class_sizes: Any) -> np.ndarray:
    s = np.asarray(class_sizes, dtype=np.float64).ravel()
    s = s[s > 0]
    if s.size and np.any(s != np.round(s)):
        raise QueryError("class sizes must be whole numbers")
    return s.astype(np.int64)


# ---------------------------------------------------------------------------------------
# the estimators (on class sizes; n = Σ sizes, N = n / π)


def zayatz(sizes: np.ndarray, pi: float) -> float:
    """Zayatz's estimate of the population's uniques."""
    n = int(sizes.sum())
    if n == 0:
        return 0.0
    s1 = int(np.count_nonzero(sizes == 1))
    if s1 == 0:
        return 0.0
    if pi >= 1.0:
        return float(s1)
    N = float(max(round(n / pi), n))  # a whole population for the hypergeometric
    js, counts = np.unique(sizes, return_counts=True)
    js = js.astype(np.float64)
    # log P(f = 1 | F = j), hypergeometric: j·C(N−j, n−1) / C(N, n)
    ok = N - js >= n - 1
    lg = math.lgamma
    log_cnn = lg(N + 1) - lg(n + 1) - lg(N - n + 1)
    logh = np.full(len(js), -np.inf)
    jj = js[ok]
    logh[ok] = (
        np.log(jj)
        + np.array([lg(N - j + 1) - lg(n) - lg(N - j - n + 2) for j in jj])
        - log_cnn
    )
    w = counts * np.exp(logh - logh.max())
    p_unique = float(w[js == 1].sum() / w.sum())
    return s1 * p_unique / pi


def _digamma(x: float) -> float:
    """ψ(x) for x > 0: recurrence up to 6, then the asymptotic series (error < 1e-12)."""
    acc = 0.0
    while x < 6.0:
        acc -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return acc + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f * 5 / 660))))


def _trigamma(x: float) -> float:
    """ψ'(x) for x > 0: recurrence up to 6, then the asymptotic series."""
    acc = 0.0
    while x < 6.0:
        acc += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    return acc + 1.0 / x + f / 2 + (f / x) * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f / 30)))


def _pitman_fit(sizes: np.ndarray) -> tuple[float, float] | None:
    """Maximum-likelihood (θ, α) of Pitman's sampling formula; None if no convergence."""
    n = int(sizes.sum())
    u = len(sizes)
    if u < 2 or u == n:  # all in one class, or all unique: no interior maximum
        return None
    iu = np.arange(1, u, dtype=np.float64)  # 1 … u−1
    # Σ_{i=1}^{n−1} over θ + i in closed form: log Γ, ψ and ψ' differences
    top = int(sizes.max())
    ii = np.arange(1, top, dtype=np.float64)  # 1 … max−1
    # G_i = number of classes of size > i: Σ_j s_j Σ_{i<j} g(i) = Σ_i G_i g(i)
    cnt = np.bincount(sizes, minlength=top + 1)
    G = (len(sizes) - np.cumsum(cnt))[1:top].astype(np.float64)

    def loglik(th: float, a: float) -> float:
        return float(
            np.log(th + iu * a).sum() - (math.lgamma(th + n) - math.lgamma(th + 1))
            + (G * np.log(ii - a)).sum()
        )

    def grad_hess(th: float, a: float) -> tuple[np.ndarray, np.ndarray]:
        d = 1.0 / (th + iu * a)
        g = 1.0 / (ii - a)
        gt = d.sum() - (_digamma(th + n) - _digamma(th + 1))
        ga = (iu * d).sum() - (G * g).sum()
        htt = -(d * d).sum() + (_trigamma(th + 1) - _trigamma(th + n))
        hta = -(iu * d * d).sum()
        haa = -(iu * iu * d * d).sum() - (G * g * g).sum()
        return np.array([gt, ga]), np.array([[htt, hta], [hta, haa]])

    th, a = 1.0, 0.5
    ll = loglik(th, a)
    for _ in range(200):
        g, H = grad_hess(th, a)
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)) or g @ step <= 0:  # not an ascent direction
            step = g / max(1.0, float(np.abs(np.diag(H)).max()))
        t = 1.0
        while t > 1e-12:
            nth, na = th + t * step[0], a + t * step[1]
            if 0.0 <= na < 1.0 and nth > -na and nth > 0.0:
                nll = loglik(nth, na)
                if nll >= ll - 1e-12 * abs(ll):
                    break
            t *= 0.5
        else:
            return None
        done = abs(nth - th) <= 1e-9 * max(1.0, abs(th)) and abs(na - a) <= 1e-10
        th, a, ll = nth, na, nll
        if done:
            return th, a
    return None


def pitman(sizes: np.ndarray, pi: float) -> float:
    """Pitman's (Hoshino's) estimate of the population's uniques; NaN without a fit."""
    n = int(sizes.sum())
    if n == 0:
        return 0.0
    if pi >= 1.0:
        return float(np.count_nonzero(sizes == 1))
    fit = _pitman_fit(sizes)
    if fit is None:
        return math.nan
    th, a = fit
    N = n / pi
    lg = math.lgamma
    return float(N * math.exp(lg(th + a + N - 1) + lg(th + 1) - lg(th + a) - lg(th + N)))


def _snb_ratios(r: float, p: float, w: float) -> tuple[float, float, float]:
    """(1 − φ(w), φ'(w), φ''(w)) of the SNB class-size generating function φ."""
    b = 1.0 - p
    q = 1.0 - b * w
    base = math.exp(r * (math.log(p) - math.log(q)))  # (p / (1 − b w))^r
    phi = w * base
    d1 = base * (1.0 + r * b * w / q)
    d2 = base * (2.0 * r * b / q + r * (r + 1.0) * b * b * w / (q * q))
    return 1.0 - phi, d1, d2


def snb(sizes: np.ndarray, pi: float) -> float:
    """The slide-negative-binomial estimate of the population's uniques; NaN without a fit."""
    n = int(sizes.sum())
    if n == 0:
        return 0.0
    u = len(sizes)
    s1 = int(np.count_nonzero(sizes == 1))
    s2 = int(np.count_nonzero(sizes == 2))
    if pi >= 1.0:
        return float(s1)
    if s1 == 0:
        return 0.0
    if s2 == 0:
        return math.nan
    w = 1.0 - pi
    y1, y2 = s1 / u, s2 / u

    def resid(x: np.ndarray) -> np.ndarray:
        r, p = math.exp(x[0]), 1.0 / (1.0 + math.exp(-x[1]))
        one_minus_phi, d1, d2 = _snb_ratios(r, p, w)
        return np.array([
            math.log(pi * d1 / one_minus_phi) - math.log(y1),
            math.log(pi * pi / 2.0 * d2 / one_minus_phi) - math.log(y2),
        ])

    x = np.array([0.0, 0.0])
    try:
        f = resid(x)
        for _ in range(200):
            J = np.empty((2, 2))
            for k in range(2):
                h = 1e-6 * max(1.0, abs(x[k]))
                xk = x.copy()
                xk[k] += h
                J[:, k] = (resid(xk) - f) / h
            step = -np.linalg.solve(J, f)
            t = 1.0
            while t > 1e-8:
                nx = x + t * step
                if np.all(np.abs(nx) < 50):
                    nf = resid(nx)
                    if np.all(np.isfinite(nf)) and np.abs(nf).max() < np.abs(f).max() * (1 - 1e-4 * t) + 1e-15:
                        break
                t *= 0.5
            else:
                return math.nan
            x, f = nx, nf
            if np.abs(f).max() < 1e-10:
                break
        else:
            return math.nan
    except (np.linalg.LinAlgError, OverflowError, ValueError, ZeroDivisionError):
        return math.nan
    r, p = math.exp(x[0]), 1.0 / (1.0 + math.exp(-x[1]))
    one_minus_phi, _, _ = _snb_ratios(r, p, w)
    K = u / one_minus_phi
    return float(K * p**r)


def _finite(x: float) -> bool:
    return x == x and math.isfinite(x)


def estimate_population_uniques(class_sizes: Any, sample_fraction: float, model: str = "dankar") -> UniquenessEstimate:
    """Estimate the population's uniques from the sample's class sizes (one number per
    equivalence class) and the sampling fraction π = n / N (see the module docstring)."""
    pi = _check_fraction(sample_fraction)
    model = _check_model(model)
    sizes = _sizes(class_sizes)
    n = int(sizes.sum())
    N = n / pi
    if model == "dankar":
        # an estimate counts when it is a number other than 0 (a fit that failed or
        # collapsed gives NaN or 0), as in ARX's RiskModelPopulationUniqueness
        if pi <= 0.1:
            v, used = pitman(sizes, pi), "pitman"
            if not _usable(v):
                v, used = zayatz(sizes, pi), "zayatz"
        else:
            z, s = zayatz(sizes, pi), snb(sizes, pi)
            if _usable(s) and not (_finite(z) and z < s):
                v, used = s, "snb"
            else:
                v, used = z, "zayatz"
    else:
        v = {"pitman": pitman, "zayatz": zayatz, "snb": snb}[model](sizes, pi)
        used = model
    if _finite(v):
        v = float(min(max(v, 0.0), N))
    share = v / N if N > 0 and _finite(v) else (0.0 if N == 0 else math.nan)
    return UniquenessEstimate(uniques=float(v), share=float(share), model=used, population=float(N))


def _usable(v: float) -> bool:
    """An estimate the decision rule takes: a finite number other than 0."""
    return _finite(v) and v != 0.0


def _class_sizes(df: pd.DataFrame, quasi_identifiers: Sequence[str]) -> np.ndarray:
    from .metrics import classes

    ids, k = classes(df, list(quasi_identifiers) if not isinstance(quasi_identifiers, str) else [quasi_identifiers])
    return np.bincount(ids, minlength=k)


def population_uniqueness(
    df: pd.DataFrame, quasi_identifiers: Sequence[str], sample_fraction: float, model: str = "dankar"
) -> float:
    """Estimated share of the population that is unique on ``quasi_identifiers``, from
    the sample ``df`` drawn with fraction ``sample_fraction`` (π = rows / population).
    ``model`` is ``"dankar"`` (the decision rule), ``"pitman"``, ``"zayatz"`` or
    ``"snb"``. NaN when the chosen estimator does not converge.
    """
    pi = _check_fraction(sample_fraction)
    model = _check_model(model)
    return estimate_population_uniques(_class_sizes(df, quasi_identifiers), pi, model).share


def risk(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    population: Any = None,
    threshold: float = 0.2,
    sample_fraction: float | None = None,
) -> dict[str, Any]:
    """:func:`pets.anon.metrics.risk` (prosecutor, journalist, marketer risk) and, with
    ``sample_fraction`` (π = rows / population size), the estimated population
    uniqueness: ``population_uniqueness`` (the Dankar rule's share of the population that
    is unique), ``population_uniqueness_model`` (the estimator it chose),
    ``population_uniques`` (people), and ``population_uniqueness_by_model`` (each
    estimator's share; NaN where it did not converge). ``sample_uniques`` is the share
    of the table's records that are unique in it.
    """
    from .metrics import risk as _base_risk

    out = _base_risk(df, quasi_identifiers, population=population, threshold=threshold)
    sizes = _class_sizes(df, quasi_identifiers)
    out["sample_uniques"] = float(np.count_nonzero(sizes == 1) / max(len(df), 1))
    if sample_fraction is not None:
        pi = _check_fraction(sample_fraction)
        best = estimate_population_uniques(sizes, pi, "dankar")
        out["population_uniqueness"] = best.share
        out["population_uniqueness_model"] = best.model
        out["population_uniques"] = best.uniques
        out["population_uniqueness_by_model"] = {
            m: estimate_population_uniques(sizes, pi, m).share for m in ESTIMATORS if m != "dankar"
        }
    return out
