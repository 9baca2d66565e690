"""``pets anonymize`` with the population and risk models (``--delta-presence``,
``--k-map``, ``--max-risk``, ``--max-uniqueness``, ``--t-distance``), run as a real
subprocess on a 20% sample of the Adult benchmark file; each output is checked with
pandas against the population file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets.anon as anon

ROOT = Path(__file__).resolve().parents[2]
ADULT = ROOT / "tests/data/adult-arx/adult.csv"
HIER = ROOT / "tests/data/adult-arx"
QIS = ["sex", "age", "race", "marital-status", "education"]
WROTE = re.compile(r"transformation (\{.+\})")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pets.cli", "anonymize", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    df = pd.read_csv(ADULT, sep=";", dtype=str)
    path = tmp_path_factory.mktemp("cli") / "sample.csv"
    df[np.random.default_rng(0).random(len(df)) < 0.2].to_csv(path, sep=";", index=False)
    return path


def test_delta_presence_and_k_map_against_the_population(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    p = run(str(sample), "--qi", ",".join(QIS), "--hierarchies", str(HIER), "--k", "2",
            "--population", str(ADULT), "--delta-presence", "0,0.3", "--k-map", "5",
            "--max-suppression", "0.02", "-o", str(out))
    assert p.returncode == 0, p.stderr
    levels = eval(WROTE.search(p.stderr).group(1))  # noqa: S307 - a dict literal we printed
    pop = pd.read_csv(ADULT, sep=";", dtype=str)
    H = anon.load_hierarchies(HIER, QIS)
    gp = pd.DataFrame({c: H[c].generalize(pop[c], levels[c]) for c in QIS})
    F = gp.groupby(QIS).size()
    f = pd.read_csv(out, sep=";", dtype=str, keep_default_na=False).groupby(QIS).size()
    F = F.reindex(f.index)
    assert (F >= 5).all() and ((f / F) <= 0.3 + 1e-12).all()


def test_hierarchical_t_average_risk_and_uniqueness(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    qis = QIS[:4]
    p = run(str(sample), "--qi", ",".join(qis), "--hierarchies", str(HIER), "--k", "2",
            "--t", "0.2", "--sensitive", "occupation", "--t-distance", "hierarchical",
            "--max-risk", "0.01", "--max-uniqueness", "0.001", "--sample-fraction", "0.2",
            "--max-suppression", "0.02", "-o", str(out))
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out, sep=";", dtype=str, keep_default_na=False)
    sizes = df.groupby(qis).size().to_numpy()
    assert len(sizes) / sizes.sum() <= 0.01
    assert anon.estimate_population_uniques(sizes, 0.2).share <= 0.001


@pytest.mark.parametrize("args,flag,message", [
    (["--delta-presence", "0,0.3"], "--delta-presence", "--delta-presence needs --population"),
    (["--delta-presence", "0.5,0.3", "--population", str(ADULT)], "--delta-presence", "need 0 <= DMIN <= DMAX <= 1"),
    (["--delta-presence", "half", "--population", str(ADULT)], "--delta-presence", "give DMIN,DMAX"),
    (["--k-map", "3"], "--k-map", "--k-map needs --population or --sample-fraction"),
    (["--max-uniqueness", "0.01"], "--max-uniqueness", "--max-uniqueness needs --sample-fraction"),
    (["--population", str(ADULT)], "--population", "--population is used by --delta-presence or --k-map"),
    (["--t-distance", "hierarchical"], "--t-distance", "--t-distance needs --t"),
])
def test_flags_checked_in_the_flags_terms(sample: Path, tmp_path: Path, args, flag, message) -> None:
    out = tmp_path / "o.csv"
    p = run(str(sample), "--qi", "sex,age", "--hierarchies", str(HIER), "--k", "2", *args, "-o", str(out))
    assert p.returncode == 2, p.stderr
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", p.stderr).split())
    assert f"Invalid value for {flag}" in text and message in text, text
    assert not out.exists()
