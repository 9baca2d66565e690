"""``pets fit`` and ``pets synthesize`` (pets.cli_models, on the pets command: pets.cli.models_cmds)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import pets
from pets.cli import main
from pets.cli_models import fit, synthesize

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """alice spends nothing in these tests (explain and errors); fitter and synth spend."""
    h = pets.Holder(tmp_path_factory.mktemp("cli") / "home")
    h.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
    for a in ("alice", "fitter", "synth"):
        h.grant(a, dataset="adult", purpose="p", epsilon=2.0)
    return str(h.home)


def _base(home: str, analyst: str = "alice") -> list[str]:
    return ["--home", home, "--analyst", analyst, "--purpose", "p", "--dataset", "adult"]


def test_pets_fit_writes_a_model_that_loads(home, tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main(["fit", *_base(home, "fitter"), "--model", "logistic", "--target", "salary-class",
                 "--features", "age,education-num,sex,capital-gain", "--log", "capital-gain",
                 "--epsilon", "1", "-o", str(out)])
    assert code == 0
    m = pets.models.load(out)
    assert m.name == "LogisticRegression" and m.cost == pets.Cost(1.0, 0.0)
    assert "spent epsilon=1" in capsys.readouterr().err
    assert pets.Holder(home).remaining("fitter", dataset="adult", purpose="p").epsilon == 1.0


def test_pets_fit_explain_spends_nothing(home):
    o = io.StringIO()
    assert fit(home, "alice", "p", "adult", "linear", "hours-per-week", "age,sex", 0.5,
               explain=True, out=o) == 0
    assert "allowed; cost epsilon=0.5" in o.getvalue()
    assert pets.Holder(home).remaining("alice", dataset="adult", purpose="p").epsilon == 2.0


@pytest.mark.parametrize("args, code, message", [
    (dict(model="forest"), 2, "--model must be one of"),
    (dict(features=""), 2, "--features needs"),
    (dict(features="fnlwgt"), 3, "negative list"),
    (dict(epsilon=5.0), 4, "only epsilon=2, delta=0 is left"),
    (dict(epsilon=-1.0), 5, "DP(epsilon=...) must be"),
    (dict(target="sex"), 3, "no bounds (a numeric column)"),
    (dict(model="linear", positive="x"), 2, "--positive is for --model logistic"),
])
def test_pets_fit_errors_have_exit_codes_and_change_nothing(home, args, code, message):
    kw = dict(model="linear", target="hours-per-week", features="age", epsilon=1.0)
    kw.update(args)
    e = io.StringIO()
    got = fit(home, "alice", "p", "adult", kw.pop("model"), kw.pop("target"), kw.pop("features"),
              kw.pop("epsilon"), err=e, **kw)
    assert got == code and message in e.getvalue()
    assert pets.Holder(home).remaining("alice", dataset="adult", purpose="p").epsilon == 2.0


def test_pets_synthesize_writes_csv(home, tmp_path):
    out = tmp_path / "s.csv"
    e = io.StringIO()
    assert synthesize(home, "synth", "p", "adult", "age,sex,race", 1.0, rows=50,
                      output=str(out), err=e) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["age", "sex", "race"] and len(df) == 50
    assert "measured marginals" in e.getvalue()
    assert synthesize(home, "alice", "p", "adult", "age,fnlwgt", 0.5, rows=5, err=io.StringIO()) == 3
    assert synthesize(home, "alice", "p", "adult", "", 0.5, err=io.StringIO()) == 2


def test_the_commands_are_on_the_pets_command_line(home):
    p = subprocess.run([sys.executable, "-m", "pets.cli", "synthesize", *_base(home, "synth"), "--columns",
                        "sex,salary-class", "--rows", "4", "--epsilon", "0.5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "sex,salary-class" and len(p.stdout.splitlines()) == 5
