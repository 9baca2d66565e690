"""DP naive Bayes for mixed features (Vaidya, Shafiq, Basu & Hong 2013, in the form of a
single noisy histogram).

Per class c the model needs the count n_c, and per feature: Σx and Σx² of a numeric
feature (scaled to [0, 1] from its policy bounds: a Gaussian likelihood), or the counts
of each public key of a categorical one (a categorical likelihood). All of them, for
all classes, form one integer vector in fixed point (×F); one row adds at most F to
1 + 2·(numeric) + (categorical) of its entries, all in its own class's block, so the
vector has L1 sensitivity F·(1 + 2p + q) and squared L2 sensitivity F²·(1 + 2p + q)
(times the rows one person may contribute, m, and m² for L2). It is released once with
discrete Laplace (ε-DP) or discrete Gaussian (ρ-zCDP ⇒ (ε, δ)-DP) noise; priors, means,
variances (floored at 0.001 of the scaled range², capped at ¼) and smoothed category
frequencies are post-processing. The class list is the target's public keys, never read
from the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..protections import DP
from .base import Model, Trainer, register
from .features import Feature, category_index, feature_of, scaled
from .glm import Classifier, _features, _fixed_point, _target_classes
from .noise import Measurement, calibrate

__all__ = ["NaiveBayes"]

_VAR_FLOOR = 1e-3


class _NBTrainer(Trainer):
    def __init__(self, model: "NaiveBayes", features: tuple[Feature, ...], classes: tuple[Any, ...],
                 protection: DP, rows_per_person: int, row_limit: int) -> None:
        self.model, self.feats, self.classes = model, features, classes
        self.rows_per_person = m = rows_per_person
        self.factor = f = _fixed_point(row_limit * m)
        # block layout per class: count, then per numeric (sum, sumsq), per categorical keys
        self.width = 1 + sum(2 if ft.kind == "numeric" else ft.width for ft in features)
        touched = 1 + sum(2 if ft.kind == "numeric" else 1 for ft in features)
        self.l1 = f * touched * m
        self.l2sq = f * f * touched * m * m
        self.cal = calibrate(protection, [Measurement("class_stats", self.l1, self.l2sq)])
        self.cost, self.zdelta = self.cal.cost, self.cal.zdelta

    def scales(self) -> dict[str, float]:
        return {"class_stats": self.cal.scales["class_stats"] / self.factor}

    def details(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "statistic": "class_stats", "values": self.width * len(self.classes),
            "noise": self.cal.kind, "sensitivity_l1": self.l1 / self.factor,
            "sensitivity_l2": (self.l2sq ** 0.5) / self.factor, "scale": self.scales()["class_stats"],
            "std": self.cal.std("class_stats") / self.factor,
        }])

    def exact(self, rows: pd.DataFrame) -> np.ndarray:
        target = Feature(self.model.target, "categorical", keys=self.classes)
        idx = category_index(target, rows[self.model.target])
        keep = idx >= 0
        rows, idx = rows.loc[keep], idx[keep]
        f = self.factor
        cols = [np.full(len(rows), f, dtype=np.int64)]
        for ft in self.feats:
            if ft.kind == "numeric":
                x = np.nan_to_num(scaled(ft, rows[ft.name]), nan=0.0)
                cols.append(np.rint(x * f).astype(np.int64))
                cols.append(np.rint(x * x * f).astype(np.int64))
            else:
                ci = category_index(ft, rows[ft.name])
                block = np.zeros((len(rows), ft.width), dtype=np.int64)
                ok = ci >= 0
                block[np.nonzero(ok)[0], ci[ok]] = f
                cols.extend(block.T)
        per_row = np.column_stack(cols) if len(rows) else np.zeros((0, self.width), dtype=np.int64)
        out = np.zeros((len(self.classes), self.width), dtype=np.int64)
        for c in range(len(self.classes)):
            out[c] = per_row[idx == c].sum(axis=0)
        return out.ravel()

    def train(self, rows: pd.DataFrame) -> Model:
        noisy = self.cal.noisy("class_stats", self.exact(rows)).astype(np.float64) / self.factor
        stats = noisy.reshape(len(self.classes), self.width)
        n = np.maximum(stats[:, 0], 1.0)
        state: dict[str, Any] = {"classes": list(self.classes), "prior": (n / n.sum()).tolist(),
                                 "features": []}
        j = 1
        for ft in self.feats:
            if ft.kind == "numeric":
                mean = np.clip(stats[:, j] / n, 0.0, 1.0)
                var = np.clip(stats[:, j + 1] / n - mean**2, _VAR_FLOOR, 0.25)
                state["features"].append({"mean": mean.tolist(), "var": var.tolist()})
                j += 2
            else:
                counts = np.clip(stats[:, j:j + ft.width], 0.0, None) + 1.0
                state["features"].append(
                    {"prob": (counts / counts.sum(axis=1, keepdims=True)).tolist()})
                j += ft.width
        return self.model._fitted_copy(self.feats, state, self.cost)


@register
class NaiveBayes(Classifier):
    """DP naive Bayes: Gaussian likelihoods for numeric features, categorical ones for
    categorical features, any number of classes (the target's public keys).

    ``NaiveBayes("salary-class", ["age", "education-num", "sex", "occupation"])``.
    Fitted: ``classes_``, ``class_prior_``, ``theta_`` / ``var_`` (numeric features, scaled
    to [0, 1]), ``feature_log_prob_`` (categorical), ``predict_proba``, ``predict``,
    ``score``, ``cost``, ``to_json``.
    """

    name = "NaiveBayes"

    def compile(self, policy: Any, schema: dict[str, str], protection: DP,
                rows_per_person: int) -> Trainer:
        classes = _target_classes(policy, self.target)
        return _NBTrainer(self, _features(self, policy, schema), classes, protection,
                          rows_per_person, policy.row_limit)

    def _state(self) -> dict[str, Any]:
        return self._raw_state

    def _load_state(self, s: dict[str, Any]) -> None:
        self._raw_state = s
        self.classes_ = np.asarray(s["classes"], dtype=object)
        self.class_prior_ = np.asarray(s["prior"], dtype=np.float64)
        self.theta_: dict[str, np.ndarray] = {}
        self.var_: dict[str, np.ndarray] = {}
        self.feature_log_prob_: dict[str, np.ndarray] = {}
        for ft, fs in zip(self._check_fitted(), s["features"]):
            if ft.kind == "numeric":
                self.theta_[ft.name] = np.asarray(fs["mean"], dtype=np.float64)
                self.var_[ft.name] = np.asarray(fs["var"], dtype=np.float64)
            else:
                self.feature_log_prob_[ft.name] = np.log(np.asarray(fs["prob"], dtype=np.float64))

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        feats = self._check_fitted()
        n = len(df)
        logp = np.tile(np.log(self.class_prior_), (n, 1))
        for ft in feats:
            if ft.name not in df.columns:
                continue  # a feature the caller does not have: marginalised out
            if ft.kind == "numeric":
                x = scaled(ft, df[ft.name])
                ok = ~np.isnan(x)
                mu, var = self.theta_[ft.name], self.var_[ft.name]
                ll = -0.5 * (np.log(2 * np.pi * var)[None, :] + (x[:, None] - mu[None, :]) ** 2 / var[None, :])
                logp[ok] += ll[ok]
            else:
                ci = category_index(ft, df[ft.name])
                ok = ci >= 0
                logp[ok] += self.feature_log_prob_[ft.name].T[ci[ok]]
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return p / p.sum(axis=1, keepdims=True)
