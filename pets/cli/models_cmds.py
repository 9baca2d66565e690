"""``pets fit`` and ``pets synthesize`` on the typer app: the logic is in
:mod:`pets.cli_models` (plain functions returning the exit code)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._app import Home, command, open_home
from .analyst_cmds import Analyst, Explain, Noise, Purpose

Dataset = Annotated[str, typer.Option("--dataset", help="The registered dataset to read.")]
Epsilon = Annotated[float, typer.Option("--epsilon", help="The ε this release spends.")]
Delta = Annotated[float, typer.Option("--delta", help="The δ it spends (Gaussian noise needs δ > 0).")]
Output = Annotated[Optional[str], typer.Option("-o", "--output",
                                                help="Write here instead of standard output.")]


class Model(str, __import__("enum").Enum):
    linear = "linear"
    logistic = "logistic"
    naive_bayes = "naive-bayes"


@command()
def fit(
    analyst: Analyst,
    purpose: Purpose,
    dataset: Dataset,
    model: Annotated[Model, typer.Option("--model", help="The model to fit.")],
    target: Annotated[str, typer.Option("--target", help="The column to predict.")],
    features: Annotated[str, typer.Option("--features", help="Feature columns, comma-separated.")],
    epsilon: Epsilon,
    home: Home = None,
    delta: Delta = 0.0,
    noise: Annotated[Noise, typer.Option("--noise", help="The noise distribution.")] = Noise.laplace,
    log: Annotated[Optional[str], typer.Option(
        "--log", help="Numeric features to encode as log1p, comma-separated.")] = None,
    positive: Annotated[Optional[str], typer.Option(
        "--positive", help="Logistic: the positive class (default: the last key).")] = None,
    output: Output = None,
    explain: Explain = False,
) -> int:
    """Fit a DP model (linear, logistic, naive Bayes) and write it as JSON (charged, audited)."""
    from ..cli_models import fit as run

    h = open_home(home)
    code = run(str(h.home), analyst, purpose, dataset, model.value, target, features, epsilon,
               delta=delta, noise=noise.value, log=log, positive=positive, output=output,
               explain=explain)
    return code  # the exit code (0, or what pets.cli_* chose)


@command()
def synthesize(
    analyst: Analyst,
    purpose: Purpose,
    dataset: Dataset,
    columns: Annotated[str, typer.Option("--columns", help="The columns to synthesize, comma-separated.")],
    epsilon: Epsilon,
    home: Home = None,
    rows: Annotated[Optional[int], typer.Option(
        "--rows", min=1, help="How many rows (default: the noisy row count).")] = None,
    delta: Delta = 0.0,
    noise: Annotated[Noise, typer.Option("--noise", help="The noise distribution.")] = Noise.laplace,
    bins: Annotated[int, typer.Option("--bins", min=2, help="Bins of a numeric column.")] = 16,
    output: Output = None,
    explain: Explain = False,
) -> int:
    """DP synthetic rows by MST, as CSV (charged, audited)."""
    from ..cli_models import synthesize as run

    h = open_home(home)
    code = run(str(h.home), analyst, purpose, dataset, columns, epsilon, rows=rows, delta=delta,
               noise=noise.value, bins=bins, output=output, explain=explain)
    return code  # the exit code (0, or what pets.cli_* chose)
