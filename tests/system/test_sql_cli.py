"""`pets query` with SQL from standard input (`-`) and the SQL of issue #13."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pets


def _pets(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pets.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_sql_from_stdin_with_having_order_and_limit(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    assert _pets("register", "--home", home, "adult", pets.example_data(), "--policy",
                 pets.example_policy()).returncode == 0
    assert _pets("grant", "--home", home, "--analyst", "bob", "--dataset", "adult",
                 "--purpose", "stats", "--epsilon", "1").returncode == 0
    base = ("query", "--home", home, "--analyst", "bob", "--purpose", "stats", "--epsilon",
            "0.2", "--format", "csv", "-")
    sql = ('SELECT education, COUNT(*) AS n\nFROM adult\nGROUP BY education\n'
           'HAVING COUNT(*) > 1000\nORDER BY n DESC\nLIMIT 2\n')
    p = _pets(*base, stdin=sql)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "education,n" and lines[1].startswith("HS-grad,") and len(lines) == 3
    # the traps of hyphenated names and double-quoted strings say what to do
    p = _pets(*base, stdin='SELECT AVG(hours-per-week) FROM adult WHERE sex = "Male"')
    assert p.returncode == 5  # bad input or query (API.md exit codes)
    assert 'double quotes: "hours-per-week"' in p.stderr and "Traceback" not in p.stderr
    p = _pets(*base, stdin='SELECT COUNT(*) FROM adult WHERE sex = "Male"')
    assert p.returncode == 5 and "write text in single quotes: 'Male'" in p.stderr


def test_the_sql_guide_runs_as_written() -> None:
    import re

    md = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
    blocks = re.findall(r"```python\n(.*?)```", md.read_text(), flags=re.S)
    assert len(blocks) >= 3
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), "docs/sql.md", "exec"), ns)
    top = ns["top"]
    assert list(top.df.columns) == ["education", "n", "mean_age"] and len(top.df) == 3
    assert top.spent == pets.Cost(0.5)
    ci = ns["ci"]
    band = ci[ci["aggregate"] == "band"]
    assert band["lower"].isna().all()
    m = ci[ci["aggregate"] == "mean_age"]
    assert ((m["lower"] <= m["value"]) & (m["value"] <= m["upper"])).all()
    b = ns["b"]
    assert list(b.df.columns) == ["education", "n", "total", "sd", "mean_age"]
