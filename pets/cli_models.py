"""``pets fit`` and ``pets synthesize``: DP models and synthetic data on the command line.

    pets fit --home DIR --analyst A --purpose P --dataset D --model logistic \\
        --target salary-class --features age,education-num,sex --epsilon 1 [-o model.json]
    pets synthesize --home DIR --analyst A --purpose P --dataset D \\
        --columns age,sex,race --rows 1000 --epsilon 1 [-o synthetic.csv]

Both go through the same release pipeline as every other release (policy, charge, audit);
``--explain`` shows the cost and the noise without spending anything. The command logic
is in plain functions (``fit``, ``synthesize``) taking plain arguments and returning the
exit code: 0 success, 2 usage error, 3 refused by the policy, 4 budget exceeded, 5 bad
input or query.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence, TextIO

from .errors import PetsError

__all__ = ["fit", "synthesize", "MODEL_NAMES"]

#: --model values → pets.models class names
MODEL_NAMES = {"linear": "LinearRegression", "logistic": "LogisticRegression",
               "naive-bayes": "NaiveBayes"}


def _code(e: PetsError) -> int:
    from .cli._app import exit_code_of  # the one mapping of errors to exit codes (API.md)

    return exit_code_of(e)


def _fail(e: PetsError, err: TextIO) -> int:
    print(f"pets: error: {type(e).__name__}: {e}", file=err)
    return _code(e)


def _usage(message: str, err: TextIO) -> int:
    print(f"pets: error: {message}", file=err)
    return 2


def _split(text: str | Sequence[str] | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, str):
        return [c.strip() for c in text.split(",") if c.strip()]
    return [str(c) for c in text]


def _dp(epsilon: float, delta: float, noise: str) -> Any:
    import pets

    return pets.DP(epsilon=epsilon, delta=delta, noise=noise)


def fit(home: str, analyst: str, purpose: str, dataset: str, model: str, target: str,
        features: str | Sequence[str], epsilon: float, *, delta: float = 0.0,
        noise: str = "laplace", log: str | Sequence[str] | None = None,
        positive: str | None = None, output: str | None = None, explain: bool = False,
        out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Fit a DP model and write it as JSON (to ``output``, or stdout); exit code."""
    import pets

    out, err = out or sys.stdout, err or sys.stderr
    if model not in MODEL_NAMES:
        return _usage(f"--model must be one of {', '.join(MODEL_NAMES)}, not {model!r}", err)
    feats = _split(features)
    if not feats:
        return _usage("--features needs at least one column, e.g. --features age,sex", err)
    try:
        cls = getattr(pets.models, MODEL_NAMES[model])
        kw: dict[str, Any] = {"log": _split(log)}
        if positive is not None:
            if model != "logistic":
                return _usage("--positive is for --model logistic", err)
            kw["positive"] = positive
        m = cls(target, feats, **kw)
        dp = _dp(epsilon, delta, noise)
        s = pets.Holder(home).session(analyst, purpose=purpose)
        q = s.table(dataset)
        if explain:
            print(s.explain(q, pets.models.Fit(m, dp)), file=out)
            return 0
        fitted = s.fit(q, m, dp)
    except PetsError as e:
        return _fail(e, err)
    text = fitted.to_json()
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text, file=out)
    print(f"fitted {fitted.name} on {dataset!r}: spent {fitted.cost}; audit record "
          f"#{fitted.audit_id}" + (f"; written to {output}" if output else ""), file=err)
    return 0


def synthesize(home: str, analyst: str, purpose: str, dataset: str,
               columns: str | Sequence[str], epsilon: float, *, rows: int | None = None,
               delta: float = 0.0, noise: str = "laplace", bins: int = 16,
               output: str | None = None, explain: bool = False,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Release DP synthetic rows as CSV (to ``output``, or stdout); exit code."""
    import pets

    out, err = out or sys.stdout, err or sys.stderr
    cols = _split(columns)
    if not cols:
        return _usage("--columns needs at least one column, e.g. --columns age,sex", err)
    try:
        dp = _dp(epsilon, delta, noise)
        s = pets.Holder(home).session(analyst, purpose=purpose)
        q = s.table(dataset).select(*cols)
        if explain:
            print(s.explain(q, pets.synth.Synthetic(dp, rows=rows, bins=bins)), file=out)
            return 0
        y = s.synthesize(q, dp, rows=rows, bins=bins)
    except PetsError as e:
        return _fail(e, err)
    if output:
        y.df.to_csv(output, index=False)
    else:
        y.df.to_csv(out, index=False)
    worst = float(y.error["expected_tv"].max()) if len(y.error) else 0.0
    print(f"synthesized {len(y.df)} rows of {', '.join(cols)}: spent {y.spent}; audit record "
          f"#{y.audit_id}; measured marginals {', '.join('×'.join(p) for p in y.marginals) or 'none'}; "
          f"largest expected marginal TV error {worst:.4f}"
          + (f"; written to {output}" if output else ""), file=err)
    return 0
