"""DP linear and logistic regression.

:class:`LinearRegression` — sufficient-statistics perturbation (Vu & Slavkovic 2009;
Wang 2018, AdaSSP-style ridge). Each row is encoded as z = (x, 1, y′): the features in
[0, 1] (one-hot blocks with at most one 1), the intercept, and the target scaled from its
policy bounds to [−1, 1]; z is written in fixed point q = round(z·F). The upper triangle of
QᵀQ (which holds XᵀX, Xᵀy, the count n and Σy′²) is released once with discrete noise.
With K = (features) + 2 blocks, one row changes it by at most L1 = F²·K(K+1)/2 and
L2 = F²·√(K(K+1)/2), times the rows one person may contribute. Guarantee: ε-DP with Laplace noise
(default), or ρ-zCDP ⇒ (ε, δ)-DP with ``noise="gaussian"``, under adding or removing one
person. The coefficients are post-processing: the noisy XᵀX is projected onto the
positive semi-definite cone and a ridge λ = (noise std)·√(d+1) is added (data-independent,
so the system is never indefinite, even at ε = 0.1).

:class:`LogisticRegression` — objective perturbation (Chaudhuri, Monteleoni & Sarwate 2011;
Kifer, Smith & Thakurta 2012) in its add/remove form: minimise
Σᵢ ℓ(w; xᵢ, yᵢ) + (Λ/2)‖w‖² + bᵀw over rows scaled to ‖x‖ ≤ 1 (the encoded row, with the
intercept, divided by √(features + 1)), with b of density ∝ exp(−β‖b‖). Adding a row moves
the b that yields a given w by its gradient (norm ≤ 1) and the Jacobian by a factor
≤ 1 + c/Λ (c = ¼ bounds the logistic curvature), so the released w is ε-DP with
ε = β + ln(1 + c/Λ). ``regularization_share`` (default ¼) of ε goes to the ln term
(Λ = c / (e^{ε/4} − 1)), the rest to β. Pure ε-DP whatever ``noise`` says (δ = 0); the
minimiser is found by damped Newton steps to a gradient norm below 1e-9·(1 + n), the
exactness the theorem assumes up to floating point. With a privacy unit of m rows a
person, ε is divided by m (group privacy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..cost import Cost
from ..dp.samplers import gamma_norm_vector
from ..errors import DataError, PolicyError, QueryError
from ..protections import DP
from .base import Model, Trainer, register
from .features import Feature, category_index, encode, feature_of, scaled
from .noise import Measurement, calibrate

__all__ = ["LinearRegression", "LogisticRegression", "Classifier"]

#: fixed-point factor of the encoded rows (2^10: the rounding error is far below the noise)
FIXED = 2**10


def _fixed_point(row_limit: int) -> int:
    """The largest power-of-two factor ≤ FIXED with row_limit·F² < 2^61 (exact int64 sums)."""
    f = FIXED
    while f > 1 and row_limit * f * f >= 2**61:
        f //= 2
    return f


def _features(model: Model, policy: Any, schema: dict[str, str]) -> tuple[Feature, ...]:
    return tuple(feature_of(policy, schema, c, log=c in model.log) for c in model.features)


# =========================================================================== linear
class _LinearTrainer(Trainer):
    def __init__(self, model: "LinearRegression", features: tuple[Feature, ...], target: Feature,
                 protection: DP, rows_per_person: int, row_limit: int) -> None:
        self.model, self.feats, self.target_f = model, features, target
        self.rows_per_person = m = rows_per_person
        self.d = sum(f.width for f in features)
        k = len(features) + 2
        self.factor = f = _fixed_point(row_limit * m)
        # Σ_{i≤j} |q_i q_j| = ½((Σ|q_i|)² + Σq_i²) and Σ_{i≤j} q_i² q_j² = ½((Σq_i²)² + Σq_i⁴),
        # with one non-zero of magnitude ≤ F per block: both ≤ ½K(K+1) (·F², ·F⁴)
        self.l1 = f * f * k * (k + 1) // 2 * m
        self.l2sq = f**4 * k * (k + 1) // 2 * m * m
        self.l2 = math.sqrt(self.l2sq)
        self.cal = calibrate(protection, [Measurement("ZtZ", self.l1, self.l2sq)])
        self.cost, self.zdelta = self.cal.cost, self.cal.zdelta
        self.size = (self.d + 2) * (self.d + 3) // 2

    def scales(self) -> dict[str, float]:
        return {"ZtZ": self.cal.scales["ZtZ"] / self.factor**2}

    def details(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "statistic": "ZtZ", "values": self.size, "noise": self.cal.kind,
            "sensitivity_l1": self.l1 / self.factor**2, "sensitivity_l2": self.l2 / self.factor**2,
            "scale": self.scales()["ZtZ"], "std": self.cal.std("ZtZ") / self.factor**2,
        }])

    def exact(self, rows: pd.DataFrame) -> np.ndarray:
        """The exact upper triangle of QᵀQ (int64), rows with a missing target left out."""
        y = scaled(self.target_f, rows[self.target_f.name])
        keep = ~np.isnan(y)
        x = encode(self.feats, rows.loc[keep])
        z = np.hstack([x, np.ones((x.shape[0], 1)), (2.0 * y[keep] - 1.0)[:, None]])
        q = np.rint(z * self.factor).astype(np.int64)
        qtq = q.T @ q
        return qtq[np.triu_indices(self.d + 2)]

    def train(self, rows: pd.DataFrame) -> Model:
        noisy = self.cal.noisy("ZtZ", self.exact(rows)).astype(np.float64) / self.factor**2
        p = self.d + 2
        mat = np.zeros((p, p))
        mat[np.triu_indices(p)] = noisy
        mat = mat + np.triu(mat, 1).T
        a, b = mat[:-1, :-1], mat[:-1, -1]
        vals, vecs = np.linalg.eigh(a)
        std = self.cal.std("ZtZ") / self.factor**2
        ridge = std * math.sqrt(p - 1)
        a_psd = (vecs * np.clip(vals, 0.0, None)) @ vecs.T + ridge * np.eye(p - 1)
        w = np.linalg.solve(a_psd, b)
        lo, hi = self.target_f.lower, self.target_f.upper
        half = (hi - lo) / 2.0
        state = {"coef": (w[:-1] * half).tolist(), "intercept": float(lo + half * (1.0 + w[-1])),
                 "n": float(mat[-2, -2]), "ridge": ridge, "noise_std": std}
        return self.model._fitted_copy(self.feats, state, self.cost)


@register
class LinearRegression(Model):
    """DP linear regression by sufficient-statistics perturbation (see the module doc).

    ``LinearRegression("hours-per-week", ["age", "education-num", "sex"])``: the target and
    numeric features need ``bounds`` in the policy, categorical features ``keys``.
    Fitted: ``coef_`` (one per encoded feature, ``feature_names_out_``), ``intercept_``,
    ``n_`` (the noisy row count), ``predict``, ``score`` (R²), ``cost``, ``to_json``.
    """

    name = "LinearRegression"
    task = "regression"

    def compile(self, policy: Any, schema: dict[str, str], protection: DP,
                rows_per_person: int) -> Trainer:
        target = feature_of(policy, schema, self.target, role="target", numeric=True)
        return _LinearTrainer(self, _features(self, policy, schema), target, protection,
                              rows_per_person, policy.row_limit)

    def _state(self) -> dict[str, Any]:
        return {"coef": self.coef_.tolist(), "intercept": self.intercept_, "n": self.n_}

    def _load_state(self, s: dict[str, Any]) -> None:
        self.coef_ = np.asarray(s["coef"], dtype=np.float64)
        self.intercept_ = float(s["intercept"])
        self.n_ = float(s.get("n", 0.0))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.transform(df) @ self.coef_ + self.intercept_

    def score(self, df: pd.DataFrame) -> float:
        """R² on ``df`` (rows with a missing target left out)."""
        y = pd.to_numeric(df[self.target], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        ok = ~np.isnan(y)
        pred = self.predict(df.loc[ok])
        y = y[ok]
        ss = float(((y - y.mean()) ** 2).sum())
        return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")


# =========================================================================== classifiers
class Classifier(Model):
    """Shared by the classifiers: ``classes_`` are the target's public keys."""

    task = "classification"

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """Index of each row's target among ``classes_`` (−1 outside them)."""
        target = Feature(self.target, "categorical", keys=tuple(self.classes_))
        return category_index(target, df[self.target])

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        proba = self.predict_proba(df)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(axis=1)]

    def score(self, df: pd.DataFrame) -> float:
        """Accuracy on ``df`` (rows whose target is missing or outside the classes left out)."""
        idx = self.labels(df)
        ok = idx >= 0
        if not ok.any():
            return float("nan")
        proba = self.predict_proba(df.loc[ok])
        return float((proba.argmax(axis=1) == idx[ok]).mean())

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


def _target_classes(policy: Any, column: str) -> tuple[Any, ...]:
    keys = policy.columns[column].keys
    if keys is None:
        raise PolicyError(
            f"target {column!r} has no keys (classes) in the policy, which a classifier "
            "needs; the holder can add them", rule="model_encoding", column=column)
    return tuple(keys)


#: the smallest Λ of the logistic objective (on the sum of the losses: negligible at any n)
MIN_REGULARIZATION = 0.01


class _LogisticTrainer(Trainer):
    CURVATURE = 0.25  # the logistic loss's second derivative is at most 1/4

    def __init__(self, model: "LogisticRegression", features: tuple[Feature, ...],
                 classes: tuple[Any, ...], protection: DP, rows_per_person: int) -> None:
        self.model, self.feats, self.classes = model, features, classes
        self.rows_per_person = rows_per_person
        self.d = sum(f.width for f in features)
        self.norm = math.sqrt(len(features) + 1)  # ‖(x, 1)‖ ≤ √(blocks)
        eps = protection.epsilon / rows_per_person
        reg = model.regularization_share
        self.eps_reg = eps * reg
        # at large ε the bound would vanish; a floor keeps the problem well conditioned
        # (a larger Λ spends less than eps_reg: the rest goes to the noise term)
        self.lam = max(self.CURVATURE / math.expm1(min(self.eps_reg, 700.0)), MIN_REGULARIZATION)
        self.beta = eps - math.log1p(self.CURVATURE / self.lam)
        if not self.beta > 0:  # float rounding at tiny ε
            raise QueryError(f"epsilon={protection.epsilon:g} is too small for this model")
        self.cost, self.zdelta = Cost(protection.epsilon, 0.0), None

    def scales(self) -> dict[str, float]:
        return {"objective": 1.0 / self.beta}

    def details(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "statistic": "objective", "values": self.d + 1, "noise": "objective perturbation",
            "regularization": self.lam, "epsilon_regularization": self.eps_reg,
            "epsilon_noise": self.beta, "scale": 1.0 / self.beta,
            "expected_noise_norm": (self.d + 1) / self.beta,
        }])

    def train(self, rows: pd.DataFrame) -> Model:
        target = Feature(self.model.target, "categorical", keys=self.classes)
        idx = category_index(target, rows[self.model.target])
        keep = idx >= 0
        pos = self.classes.index(self.model.positive_class(self.classes))
        y = (idx[keep] == pos).astype(np.float64)
        x = encode(self.feats, rows.loc[keep])
        x = np.hstack([x, np.ones((x.shape[0], 1))]) / self.norm
        b = gamma_norm_vector(self.beta, self.d + 1)
        w = newton_logistic(x, y, self.lam, b)
        state = {"coef": (w[:-1] / self.norm).tolist(), "intercept": float(w[-1] / self.norm),
                 "classes": list(self.classes), "positive": self.classes[pos]}
        return self.model._fitted_copy(self.feats, state, self.cost)


def newton_logistic(x: np.ndarray, y: np.ndarray, lam: float, b: np.ndarray,
                    max_iter: int = 200) -> np.ndarray:
    """argmin Σ log(1+e^{xw}) − y·xw + (lam/2)‖w‖² + bᵀw: damped Newton (strictly convex)."""
    w = np.zeros(x.shape[1])

    def objective(w: np.ndarray) -> float:
        s = x @ w
        return float(np.logaddexp(0.0, s).sum() - y @ s + 0.5 * lam * w @ w + b @ w)

    tol = 1e-9 * (1.0 + len(y))
    f = objective(w)
    for _ in range(max_iter):
        s = x @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * s))  # sigmoid, stable
        g = x.T @ (p - y) + lam * w + b
        if float(np.linalg.norm(g)) <= tol:
            return w
        h = (x * (p * (1.0 - p))[:, None]).T @ x + lam * np.eye(x.shape[1])
        step = np.linalg.solve(h, g)
        # Newton decrement (Boyd & Vandenberghe 9.5.1): half of g·H⁻¹g bounds f(w) − f* for
        # this strictly convex objective; once it is at the level of rounding, w is the
        # minimiser to machine precision even where the gradient's norm cannot fall below
        # the absolute tolerance (large noise vectors b make large w and large terms)
        if 0.5 * float(g @ step) <= 1e-15 * (1.0 + abs(f)):
            return w
        t = 1.0
        while True:
            nw = w - t * step
            nf = objective(nw)
            if nf <= f - 1e-4 * t * float(g @ step) or t < 1e-10:
                break
            t /= 2.0
        w, f = nw, nf
    raise DataError("the logistic objective did not converge")


@register
class LogisticRegression(Classifier):
    """DP logistic regression by objective perturbation (pure ε-DP; see the module doc).

    ``LogisticRegression("salary-class", ["age", "education-num", "sex"], positive=">50K")``:
    the target needs two ``keys`` in the policy (``positive`` defaults to the last key).
    Fitted: ``coef_``, ``intercept_``, ``classes_``, ``predict_proba``, ``predict``,
    ``score`` (accuracy), ``cost``, ``to_json``.
    """

    name = "LogisticRegression"

    def __init__(self, target: str, features: Any, *, log: Any = (), positive: Any = None,
                 regularization_share: float = 0.25) -> None:
        super().__init__(target, features, log=log)
        r = regularization_share
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
            raise QueryError(f"regularization_share must be a number in (0, 1), got {r!r:.40}")
        self.positive = positive
        self.regularization_share = float(r)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"regularization_share": self.regularization_share}
        if self.positive is not None:
            out["positive"] = self.positive
        return out

    def positive_class(self, classes: tuple[Any, ...]) -> Any:
        if self.positive is None:
            return classes[-1]
        if self.positive not in classes:
            raise QueryError(
                f"positive={self.positive!r:.40} is not one of the target's classes "
                f"({', '.join(map(str, classes))})")
        return self.positive

    def compile(self, policy: Any, schema: dict[str, str], protection: DP,
                rows_per_person: int) -> Trainer:
        classes = _target_classes(policy, self.target)
        if len(classes) != 2:
            raise QueryError(
                f"LogisticRegression needs a target with two classes; {self.target!r} has "
                f"{len(classes)} in the policy (use pets.models.NaiveBayes for more)")
        self.positive_class(classes)
        return _LogisticTrainer(self, _features(self, policy, schema), classes, protection,
                                rows_per_person)

    def _state(self) -> dict[str, Any]:
        return {"coef": self.coef_[0].tolist(), "intercept": float(self.intercept_[0]),
                "classes": list(self.classes_), "positive": self.classes_[1]}

    def _load_state(self, s: dict[str, Any]) -> None:
        classes = list(s["classes"])
        pos = s["positive"]
        neg = [c for c in classes if c != pos][0]
        self.classes_ = np.asarray([neg, pos], dtype=object)  # column 1 of predict_proba: positive
        self.coef_ = np.asarray([s["coef"]], dtype=np.float64)
        self.intercept_ = np.asarray([float(s["intercept"])])

    def decision_function(self, df: pd.DataFrame) -> np.ndarray:
        return self.transform(df) @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        p = 0.5 * (1.0 + np.tanh(0.5 * self.decision_function(df)))
        return np.column_stack([1.0 - p, p])
