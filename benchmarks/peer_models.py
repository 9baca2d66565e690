"""The peers' side of compare_models.py: run in the peers' own venv (scikit-learn 1.7,
diffprivlib 0.6.6, smartnoise-synth 1.0.8), never in the project's. Reads the encoded
features compare_models.py wrote (so every library sees the same numbers), writes one JSON
of figures and the peers' synthetic tables as CSV.

    /tmp/venv-models-peers/bin/python benchmarks/peer_models.py --npz X.npz --synth-train t.csv \
        --out peers.json --synth-dir DIR --runs 5 --synth-runs 1
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def models(npz: Path, eps_list: list[float], runs: int) -> dict:  # type: ignore[type-arg]
    import diffprivlib
    import sklearn
    from diffprivlib import models as dpm
    from sklearn.linear_model import LinearRegression, LogisticRegression

    d = np.load(npz)
    xtr, ytr, xte, yte = d["xtr"], d["ytr"], d["xte"], d["yte"]
    ltr, lytr, lte, lyte = d["ltr"], d["lytr"], d["lte"], d["lyte"]
    norm = float(d["data_norm"])
    out: dict = {"versions": {"scikit-learn": sklearn.__version__, "diffprivlib": diffprivlib.__version__}}
    m, t = _timed(lambda: LogisticRegression(max_iter=2000).fit(xtr, ytr))
    out["sk_logistic"] = {"acc": float(m.score(xte, yte)), "time": t}
    m, t = _timed(lambda: LinearRegression().fit(ltr, lytr))
    out["sk_linear"] = {"r2": float(m.score(lte, lyte)), "time": t}
    out["dpl"] = {}
    for eps in eps_list:
        acc, r2, ta, tl = [], [], [], []
        for _ in range(runs):
            m, t = _timed(lambda: dpm.LogisticRegression(epsilon=eps, data_norm=norm, max_iter=2000).fit(xtr, ytr))
            acc.append(float(m.score(xte, yte)))
            ta.append(t)
            m, t = _timed(lambda: dpm.LinearRegression(
                epsilon=eps, bounds_X=(np.zeros(ltr.shape[1]), np.ones(ltr.shape[1])),
                bounds_y=(1.0, 99.0)).fit(ltr, lytr))
            r2.append(float(m.score(lte, lyte)))
            tl.append(t)
        out["dpl"][str(eps)] = {"acc": acc, "r2": r2, "time_logistic": ta, "time_linear": tl}
    return out


def synth(train_csv: Path, eps_list: list[float], runs: int, rows: int, out_dir: Path) -> dict:  # type: ignore[type-arg]
    from snsynth import Synthesizer

    df = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    cols = list(df.columns)
    res: dict = {}
    for method, kw in (("mst", {}), ("aim", {"rounds": 16})):
        for eps in eps_list:
            for r in range(runs):
                def go():  # type: ignore[no-untyped-def]
                    s = Synthesizer.create(method, epsilon=float(eps), **kw)
                    s.fit(df, preprocessor_eps=0.0, categorical_columns=cols)
                    return s
                s, t_fit = _timed(go)
                sample, t_sample = _timed(lambda: s.sample(rows))
                path = out_dir / f"{method}-{eps}-{r}.csv"
                sample.to_csv(path, index=False)
                res.setdefault(f"{method}-{eps}", []).append(
                    {"file": str(path), "fit": t_fit, "sample": t_sample})
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--npz", type=Path, required=True)
    ap.add_argument("--synth-train", type=Path)
    ap.add_argument("--synth-dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--eps", default="0.1,0.5,1,5")
    ap.add_argument("--synth-eps", default="1,5")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--synth-runs", type=int, default=1)
    a = ap.parse_args()
    out = {"models": models(a.npz, [float(e) for e in a.eps.split(",")], a.runs)}
    if a.synth_train is not None and a.synth_runs > 0:
        n = sum(1 for _ in open(a.synth_train)) - 1
        out["synth"] = synth(a.synth_train, [float(e) for e in a.synth_eps.split(",")],
                             a.synth_runs, n, a.synth_dir)
    a.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
