"""DP models and synthetic data on Adult: pets vs the non-private model, IBM diffprivlib,
and SmartNoise Synth (MST, AIM), in one run (issue 12).

Run from the repository root (the peers run in their own venv, called from here)::

    python benchmarks/compare_models.py --peer-python /tmp/venv-models-peers/bin/python
    python benchmarks/compare_models.py --peer-python ... --runs 3 --synth-runs 1   # quicker

Peers' venv: ``python3 -m venv /tmp/venv-models-peers && /tmp/venv-models-peers/bin/pip
install "diffprivlib==0.6.6" "scikit-learn<1.8" smartnoise-synth`` (diffprivlib fails to
import with scikit-learn ≥ 1.8; smartnoise-synth pins opendp 0.14 and mbi < 2).

Data: train = the bundled adult.csv (pets.example_data("adult"), identical to the UCI
train file, 32,561 rows), test = benchmarks/data/adult.test.csv (16,281 rows; its label is
lower-cased and loses a trailing '.'). Label: salary-class is >50K.

Models (``--runs`` fits per ε; median, min–max):
* classification, 11 features: age, education-num, hours-per-week (min-max by the
  policy's bounds), capital-gain, capital-loss (log1p scaled by the bounds), one-hot sex,
  race, workclass, marital-status, occupation, relationship (policy keys). pets encodes
  them; the same matrix goes to scikit-learn and diffprivlib (``data_norm = √11``: every
  encoded row has norm ≤ √11 by construction). pets: LogisticRegression (objective
  perturbation, ε-DP) and NaiveBayes; diffprivlib: LogisticRegression.
* regression: hours-per-week from age, education-num, capital-gain, capital-loss, sex;
  diffprivlib: ``bounds_X = [0, 1]^d``, ``bounds_y = (1, 99)``, sex as one male indicator
  (with both one-hot columns, which sum to the intercept, its solve diverges). R² on test.

pets runs first, then the peers (never at the same time, so the times compare).

Synthetic data (ε ∈ {1, 5}, ``--synth-runs`` each): 8 categorical columns — age in
10-year bins, workclass, education, marital-status, occupation, race, sex, salary-class
('?' is a category) — the categories are public keys for pets; SmartNoise reads them
from the data (``preprocessor_eps=0``). As many rows as the train table. TVD: total
variation distance to train, averaged over all 28 pairs and all 56 triples. Accuracy: a
non-private logistic regression on one-hot of the 7 other columns, trained on the
synthetic rows, scored on test. SmartNoise: MST, and AIM with ``rounds=16`` (its default
runs > 10 min here); its rows as ``sample()`` gives them. δ: pets' synthesizer uses
Laplace noise (pure ε-DP, δ = 0); SmartNoise uses δ = 1e-9.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import pets  # noqa: E402
from pets.models import LinearRegression, LogisticRegression, NaiveBayes  # noqa: E402
from pets.models.features import encode, feature_of  # noqa: E402
from pets.models.glm import newton_logistic  # noqa: E402

EPS = [0.1, 0.5, 1.0, 5.0]
SYNTH_EPS = [1.0, 5.0]
NUMERIC = ["age", "education-num", "hours-per-week", "capital-gain", "capital-loss"]
CATEG = ["sex", "race", "workclass", "marital-status", "occupation", "relationship"]
LOG = ["capital-gain", "capital-loss"]
LIN_FEATURES = ["age", "education-num", "capital-gain", "capital-loss", "sex"]
SYNTH_COLS = ["age10", "workclass", "education", "marital-status", "occupation", "race", "sex",
              "salary-class"]


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    tr = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, dtype=str, keep_default_na=False)
    te = pd.read_csv(HERE / "data" / "adult.test.csv", skipinitialspace=True, dtype=str,
                     keep_default_na=False)
    te["salary-class"] = te["salary-class"].str.strip().str.rstrip(".").str.upper()
    return tr, te


def numeric(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in NUMERIC:
        out[c] = pd.to_numeric(out[c].replace("?", None), errors="coerce")
    return out


def policy() -> dict:  # type: ignore[type-arg]
    """The bundled policy without the grade-3 cap of ε = 1 per release (ε = 5 is measured)."""
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    del pol["grades"]["3"]["max_epsilon"]
    return pol


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})"


def medv(xs: list[float], nd: int = 3) -> float:
    return round(statistics.median(xs), nd)


# ------------------------------------------------------------------ synthetic evaluation
def synth_table(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"age10": (pd.to_numeric(df["age"]) // 10 * 10).clip(10, 90).astype(int).astype(str)})
    for c in SYNTH_COLS[1:]:
        out[c] = df[c].astype(str).str.strip()
    return out


def tvd(real: pd.DataFrame, syn: pd.DataFrame, k: int) -> float:
    vals = []
    for cols in itertools.combinations(SYNTH_COLS, k):
        cols = list(cols)
        p = real.groupby(cols).size() / len(real)
        q = syn.groupby(cols).size() / len(syn)
        vals.append(0.5 * p.sub(q, fill_value=0).abs().sum())
    return float(np.mean(vals))


def synth_accuracy(syn: pd.DataFrame, test: pd.DataFrame, keys: dict) -> float:  # type: ignore[type-arg]
    from pets.models.features import Feature

    feats = tuple(Feature(c, "categorical", keys=tuple(keys[c])) for c in SYNTH_COLS[:-1])
    x = np.hstack([encode(feats, syn), np.ones((len(syn), 1))])
    y = (syn["salary-class"] == ">50K").to_numpy(dtype=float)
    w = newton_logistic(x, y, 1.0, np.zeros(x.shape[1]))
    xt = np.hstack([encode(feats, test), np.ones((len(test), 1))])
    yt = (test["salary-class"] == ">50K").to_numpy()
    return float(((xt @ w > 0) == yt).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", help="python of the peers' venv (diffprivlib, smartnoise-synth)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--synth-runs", type=int, default=2)
    ap.add_argument("--peer-synth-runs", type=int, default=1)
    a = ap.parse_args()
    tr_text, te_text = load()
    tr, te = numeric(tr_text), numeric(te_text)
    tmp = Path(tempfile.mkdtemp(prefix="pets-models-bench-"))
    h = pets.Holder(tmp / "home")
    pol = policy()
    h.register("adult", pets.example_data("adult"), pol)
    h.grant("bench", dataset="adult", purpose="bench", epsilon=1e6)
    s = h.session("bench", purpose="bench")
    q = s.table("adult")
    logit = LogisticRegression("salary-class", NUMERIC + CATEG, log=LOG)
    nb = NaiveBayes("salary-class", NUMERIC + CATEG, log=LOG)
    lin = LinearRegression("hours-per-week", LIN_FEATURES, log=LOG)

    # the same encoded matrices for the peers
    P = pets.Policy.from_dict(pol)
    schema = h._dataset("adult").schema
    feats = tuple(feature_of(P, schema, c, log=c in LOG) for c in NUMERIC + CATEG)
    lfeats = tuple(feature_of(P, schema, c, log=c in LOG) for c in LIN_FEATURES)
    xtr, xte = encode(feats, tr), encode(feats, te)
    ytr = (tr["salary-class"] == ">50K").to_numpy(int)
    yte = (te["salary-class"] == ">50K").to_numpy(int)
    ltr_ok, lte_ok = tr["hours-per-week"].notna(), te["hours-per-week"].notna()
    npz = tmp / "enc.npz"
    # the regression's peers get sex as one male indicator (pets' two one-hot columns sum
    # to the intercept, which diffprivlib's unregularised solve cannot take: it diverges)
    from pets.models.features import names_out

    keep = [i for i, n in enumerate(names_out(lfeats)) if n != "sex=Female"]
    np.savez(npz, xtr=xtr, ytr=ytr, xte=xte, yte=yte,
             ltr=encode(lfeats, tr[ltr_ok])[:, keep],
             lytr=tr.loc[ltr_ok, "hours-per-week"].clip(1, 99).to_numpy(float),
             lte=encode(lfeats, te[lte_ok])[:, keep],
             lyte=te.loc[lte_ok, "hours-per-week"].clip(1, 99).to_numpy(float),
             data_norm=np.sqrt(len(feats)))

    # synthetic: the 8-column table registered with public keys
    syn_train = synth_table(tr_text)
    syn_test = synth_table(te_text)
    keys = {c: sorted(set(syn_train[c]) | set(syn_test[c])) if c != "age10" else
            [str(v) for v in range(10, 100, 10)] for c in SYNTH_COLS}
    for c in SYNTH_COLS:  # public lists (the data dictionary's categories)
        if c in pol["columns"] and pol["columns"][c].get("keys"):
            keys[c] = list(pol["columns"][c]["keys"]) + (["?"] if "?" in keys[c] else [])
    spol = {"columns": {c: {"role": "attribute", "grade": 1, "keys": keys[c]} for c in SYNTH_COLS},
            "grades": {"1": {"allow": ["synthetic"]}}}
    h.register("adult8", syn_train, spol)
    h.grant("bench", dataset="adult8", purpose="bench", epsilon=1e6)
    syn_csv = tmp / "adult8.csv"
    syn_train.to_csv(syn_csv, index=False)


    # ---- pets models
    res: dict = {"pets": {}}  # type: ignore[type-arg]
    for eps in EPS:
        r: dict = {"acc": [], "nb": [], "r2": [], "t_logit": [], "t_nb": [], "t_lin": []}  # type: ignore[type-arg]
        for _ in range(a.runs):
            t = time.perf_counter(); m = s.fit(q, logit, pets.DP(epsilon=eps)); r["t_logit"].append(time.perf_counter() - t)
            r["acc"].append(m.score(te))
            t = time.perf_counter(); m = s.fit(q, nb, pets.DP(epsilon=eps)); r["t_nb"].append(time.perf_counter() - t)
            r["nb"].append(m.score(te))
            t = time.perf_counter(); m = s.fit(q, lin, pets.DP(epsilon=eps)); r["t_lin"].append(time.perf_counter() - t)
            r["r2"].append(m.score(te))
        res["pets"][str(eps)] = r
        print(f"pets eps={eps}: logistic {med(r['acc'])}, NB {med(r['nb'])}, linear R2 {med(r['r2'])}", flush=True)

    # ---- pets synthetic
    res["synth"] = {}
    for eps in SYNTH_EPS:
        for _ in range(a.synth_runs):
            t = time.perf_counter()
            y = s.synthesize(s.table("adult8").select(*SYNTH_COLS), pets.DP(epsilon=eps), rows=len(syn_train))
            el = time.perf_counter() - t
            df = y.df.fillna("?")
            res["synth"].setdefault(f"pets-{eps}", []).append(
                {"fit": el, "tv2": tvd(syn_train, df, 2), "tv3": tvd(syn_train, df, 3),
                 "acc": synth_accuracy(df, syn_test, keys)})
        print(f"pets synth eps={eps}: {res['synth'][f'pets-{eps}']}", flush=True)
    res["synth"]["real"] = [{"fit": 0.0, "tv2": 0.0, "tv3": 0.0, "acc": synth_accuracy(syn_train, syn_test, keys)}]
    res["synth"]["test"] = [{"fit": 0.0, "tv2": tvd(syn_train, syn_test, 2), "tv3": tvd(syn_train, syn_test, 3),
                             "acc": float("nan")}]
    # non-private references in numpy (the peers' run adds scikit-learn's)
    x1 = np.hstack([xtr, np.ones((len(xtr), 1))])
    t = time.perf_counter(); w = newton_logistic(x1, ytr.astype(float), 1.0, np.zeros(x1.shape[1])); tn = time.perf_counter() - t
    res["numpy_logistic"] = {"acc": float(((np.hstack([xte, np.ones((len(xte), 1))]) @ w > 0) == yte).mean()), "time": tn}

    # ---- the peers, in their venv, after pets (never at the same time: the times compare)
    if a.peer_python:
        peers_out = tmp / "peers.json"
        (tmp / "synth").mkdir()
        cmd = [a.peer_python, str(HERE / "peer_models.py"), "--npz", str(npz), "--out", str(peers_out),
               "--runs", str(a.runs), "--synth-train", str(syn_csv), "--synth-dir", str(tmp / "synth"),
               "--synth-runs", str(a.peer_synth_runs)]
        subprocess.run(cmd, check=True)
        peers = json.loads(peers_out.read_text())
        res["peers"] = peers
        for key, runs in peers.get("synth", {}).items():
            for run in runs:
                df = pd.read_csv(run["file"], dtype=str, keep_default_na=False)
                res["synth"].setdefault(key, []).append(
                    {"fit": run["fit"] + run["sample"], "tv2": tvd(syn_train, df, 2),
                     "tv3": tvd(syn_train, df, 3), "acc": synth_accuracy(df, syn_test, keys)})
    report(res)
    (tmp / "results.json").write_text(json.dumps(res, default=float))
    print(f"\n(raw results: {tmp / 'results.json'})")


def report(res: dict) -> None:  # type: ignore[type-arg]
    peers = res.get("peers", {}).get("models", {})
    print("\n### Classification (accuracy on adult.test.csv)\n")
    print("| ε | pets LogisticRegression | fit s | diffprivlib LogisticRegression | fit s | pets NaiveBayes |")
    print("|---|---|---|---|---|---|")
    for eps in EPS:
        r = res["pets"][str(eps)]
        d = peers.get("dpl", {}).get(str(eps))
        dl = f"{med(d['acc'])} | {medv(d['time_logistic'], 2)}" if d else "— | —"
        print(f"| {eps:g} | {med(r['acc'])} | {medv(r['t_logit'], 2)} | {dl} | {med(r['nb'])} |")
    sk = peers.get("sk_logistic")
    print(f"| non-private | numpy (Newton, λ=1): {res['numpy_logistic']['acc']:.3f} | "
          f"{res['numpy_logistic']['time']:.2f} | scikit-learn: {sk['acc']:.3f} | {sk['time']:.2f} | — |"
          if sk else f"| non-private | {res['numpy_logistic']['acc']:.3f} | | | | |")
    print("\n### Regression (R² on adult.test.csv, hours-per-week)\n")
    print("| ε | pets LinearRegression | fit s | diffprivlib LinearRegression | fit s |")
    print("|---|---|---|---|---|")
    for eps in EPS:
        r = res["pets"][str(eps)]
        d = peers.get("dpl", {}).get(str(eps))
        dl = f"{med(d['r2'])} | {medv(d['time_linear'], 3)}" if d else "— | —"
        print(f"| {eps:g} | {med(r['r2'])} | {medv(r['t_lin'], 3)} | {dl} |")
    sl = peers.get("sk_linear")
    if sl:
        print(f"| non-private (scikit-learn) | {sl['r2']:.4f} | {sl['time']:.3f} | | |")
    print("\n### Synthetic data (8 categorical columns; TVD to train; accuracy on test)\n")
    print("| method, ε | runs | time s (fit + sample) | 2-way TVD | 3-way TVD | accuracy |")
    print("|---|---|---|---|---|---|")
    for key, runs in res["synth"].items():
        f = lambda k: medv([r[k] for r in runs], 3)  # noqa: E731
        print(f"| {key} | {len(runs)} | {medv([r['fit'] for r in runs], 1)} | {f('tv2')} | {f('tv3')} | {f('acc')} |")


if __name__ == "__main__":
    main()
