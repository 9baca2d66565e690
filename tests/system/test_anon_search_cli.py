"""``pets anonymize`` with the metric, search and recoding options, as a real subprocess
on the Adult benchmark file; every output is checked for k on the written table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
ADULT = "tests/data/adult-arx/adult.csv"
HIER = "tests/data/adult-arx"
QIS = "sex,age,race,marital-status,education,native-country,workclass,occupation"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pets.cli", "anonymize", ADULT, "--sep", ";",
                           "--qi", QIS, "--hierarchies", HIER, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def flat(text: str) -> str:
    """The error box's text on one line (rich wraps it in a box)."""
    return re.sub(r"[\s│╭╰─╮╯]+", " ", text)


def min_class(path: Path) -> int:
    df = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    return int(df.groupby(QIS.split(",")).size().min())


def test_metric_gs_factor_and_aggregation(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    p = run("--k", "5", "--max-suppression", "0.05", "--metric", "entropy", "--gs-factor", "0.3",
            "--aggregation", "arithmetic", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert min_class(out) >= 5
    assert re.search(r"metrics: .*entropy=", p.stderr)


def test_heuristic_search_reports_its_bound(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    p = run("--k", "5", "--max-suppression", "0.05", "--search", "heuristic", "--time-limit", "1",
            "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert min_class(out) >= 5
    m = re.search(r"search: heuristic.*the optimum's loss is at least ([0-9.e-]+) \(gap ([0-9.]+)%\)", p.stderr)
    assert m, p.stderr


def test_local_recoding(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    p = run("--k", "10", "--max-suppression", "0.1", "--recoding", "local", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert min_class(out) >= 10
    assert "transformation local" in p.stderr


def test_bad_combinations_name_the_flag(tmp_path: Path) -> None:
    p = run("--k", "5", "--metric", "dm*", "--aggregation", "sum", "-o", str(tmp_path / "o.csv"))
    assert p.returncode == 2 and "--aggregation" in p.stderr and "Traceback" not in p.stderr
    p = run("--k", "5", "--algorithm", "mondrian", "--search", "heuristic", "-o", str(tmp_path / "o.csv"))
    assert p.returncode == 2 and "--search and --recoding apply to --algorithm optimal" in flat(p.stderr)
    p = run("--k", "5", "--gs-factor", "2", "-o", str(tmp_path / "o.csv"))
    assert p.returncode == 2 and "--gs-factor" in p.stderr
    assert not (tmp_path / "o.csv").exists()
