"""`pets verify` on the command line: one subject, a batch from a CSV file, explain;
refusals and bad input exit with the documented codes and change nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pets

pytestmark = pytest.mark.usefixtures("_capsys")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    adult = pd.read_csv(pets.example_data("adult"), skipinitialspace=True, na_values=["?"]).head(1000)
    adult.insert(0, "person_id", [f"P-{i:05d}" for i in range(len(adult))])
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["columns"]["person_id"] = {"role": "identifier", "grade": 2}
    pol["verify"] = {"subject_keys": ["person_id"], "max_per_subject": 3,
                     "claims": {"age": {"operators": [">=", "<"], "granularity": 5},
                                "education": {"operators": ["==", "isin"]}}}
    h = pets.Holder(d / "home")
    h.register("adult", adult, pol)
    h.grant("bank", dataset="adult", purpose="loans", epsilon=1.0)
    return d / "home"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def _capsys(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureFixture[str]:
    global CAP
    CAP = capsys
    return capsys


CAP: Any = None


def _pets(home: Path, *args: str) -> Run:
    """The real `pets` entry point (argparse and all), in this process."""
    from pets.cli import main

    CAP.readouterr()
    code = main(["verify", "--home", str(home), "--analyst", "bank", "--purpose", "loans",
                 "--dataset", "adult", *args])
    out = CAP.readouterr()
    return Run(code, out.out, out.err)


def test_one_subject(home: Path) -> None:
    p = _pets(home, "--subject", "person_id=P-00001", "--claim",
              "age >= 45 AND education IN ('Bachelors', 'HS-grad')", "--format", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["match"] is True and out["answer"] == "match"
    p = _pets(home, "--subject", "person_id=P-00004", "--claim", "age >= 45")  # 28
    assert p.returncode == 0 and p.stdout.startswith("no_match")


def test_batch_from_a_csv_file(home: Path) -> None:
    ids = home.parent / "ids.csv"
    ids.write_text("person_id\nP-00010\nP-00011\nnobody\n")
    out = home.parent / "answers.csv"
    p = _pets(home, "--subjects", str(ids), "--claim", "age >= 30", "-o", str(out))
    assert p.returncode == 0, p.stderr
    got = pd.read_csv(out)
    assert list(got.columns) == ["person_id", "match", "answer"]
    assert got["answer"].tolist() == ["match", "match", "no_match"]  # ages 38, 30; absent


def test_explain_refusals_and_bad_input(home: Path) -> None:
    n = len(pets.Holder(home).audit())
    p = _pets(home, "--subject", "person_id=P-00002", "--claim", "age >= 45", "--explain")
    assert p.returncode == 0 and p.stdout.startswith("allowed:") and "3 bits" in p.stdout
    assert len(pets.Holder(home).audit()) == n  # explain records nothing
    p = _pets(home, "--subject", "person_id=P-00002", "--claim", "age >= 47")
    assert p.returncode == 3 and "rule verify_granularity" in p.stderr
    p = _pets(home, "--subject", "person_id=P-00002", "--claim", "age >= 47", "--explain")
    assert p.returncode == 3 and "refused by rule verify_granularity" in p.stdout
    p = _pets(home, "--subject", "person_id=P-00002", "--claim", "age >>= 45")
    assert p.returncode == 5 and "QueryError" in p.stderr
    p = _pets(home, "--claim", "age >= 45")
    assert p.returncode == 2 and "--subject COLUMN=VALUE" in p.stderr
    p = _pets(home, "--subject", "P-00002", "--claim", "age >= 45")
    assert p.returncode == 2 and "--subject COLUMN=VALUE" in p.stderr
    recs = pets.Holder(home).audit().records()[n:]
    assert [(r["status"], r.get("rule")) for r in recs] == [("refused", "verify_granularity")]
