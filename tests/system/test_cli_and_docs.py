"""The quick start and the docs work as written: `pets demo`, the CLI, README examples."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import pets

ROOT = Path(__file__).resolve().parents[2]


def _pets(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pets.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )


def test_demo_runs_end_to_end_quickly_and_verifies_the_audit(tmp_path: Path) -> None:
    t = time.perf_counter()
    p = _pets("demo", "--home", str(tmp_path / "home"))
    elapsed = time.perf_counter() - t
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "PolicyError [negative_list]" in out
    assert "BudgetExceeded" in out
    assert "audit log intact: True" in out
    assert re.search(r"Female\s+\d+", out)
    assert elapsed < 30
    # the demo's home holds what it did: a second holder sees it
    h = pets.Holder(tmp_path / "home")
    assert h.datasets() == ["adult"]
    assert h.audit().verify() is True
    assert h.remaining("alice", dataset="adult", purpose="labour-statistics") == pets.Cost(1.2, 0.0)


def test_cli_register_grant_query_and_audit(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    assert _pets("register", "--home", home, "adult", pets.example_data(), "--policy",
                 pets.example_policy()).returncode == 0
    assert _pets("grant", "--home", home, "--analyst", "bob", "--dataset", "adult",
                 "--purpose", "stats", "--epsilon", "1").returncode == 0
    p = _pets("query", "--home", home, "--analyst", "bob", "--purpose", "stats", "--epsilon",
              "0.25", "--format", "csv", "SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "sex,n"
    counts = {l.split(",")[0]: int(l.split(",")[1]) for l in lines[1:]}
    assert set(counts) == {"Female", "Male"}
    # exact: Female 10771, Male 21790; noise scale 4 → far inside ±200
    assert abs(counts["Female"] - 10771) < 200 and abs(counts["Male"] - 21790) < 200
    p = _pets("query", "--home", home, "--analyst", "bob", "--purpose", "stats", "--epsilon",
              "0.9", "SELECT COUNT(*) FROM adult")
    assert p.returncode == 4  # budget exceeded
    assert "BudgetExceeded" in p.stderr and "epsilon=0.75" in p.stderr
    p = _pets("query", "--home", home, "--analyst", "bob", "--purpose", "stats", "--epsilon",
              "0.1", "SELECT sex, MAX(age) FROM adult GROUP BY sex")
    assert p.returncode == 5 and "unsupported SQL: aggregate MAX" in p.stderr  # bad query
    p = _pets("audit", "verify", "--home", home)
    # the registration, the grant, the release and the budget refusal; bad SQL is not recorded
    assert p.returncode == 0 and "4 records" in p.stdout
    kinds = [(r["kind"], r["status"]) for r in pets.Holder(home).audit().records()]
    assert kinds == [("register", "recorded"), ("grant", "recorded"), ("dp", "released"),
                     ("dp", "refused")]
    p = _pets("audit", "list", "--home", home, "--format", "csv")
    assert p.returncode == 0, p.stderr
    rows = p.stdout.strip().splitlines()
    assert rows[0] == "id,ts,analyst,purpose,dataset,kind,status,what"
    assert ",adult,register,recorded,registered (policy " in rows[1]
    assert rows[2].endswith("grant,recorded,\"granted epsilon=1.0, delta=0.0 (basic)\"")
    assert rows[3].endswith("dp,released,\"epsilon=0.25, delta=0\"")
    assert rows[4].endswith("dp,refused,refused by rule budget")
    p = _pets("audit", "list", "--home", home, "--status", "refused", "--format", "json")
    assert [r["id"] for r in json.loads(p.stdout)] == [4]
    assert pets.Holder(home).remaining("bob", dataset="adult", purpose="stats") == pets.Cost(0.75, 0)


def _python_blocks(md: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", md.read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(ROOT / "README.md")
    assert len(blocks) >= 4
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), ns)
    r = ns["r"]
    assert isinstance(r, pets.Release)
    assert list(r.df.columns) == ["sex", "n", "age"]
    assert ns["holder"].audit().verify() is True  # type: ignore[attr-defined]
    d, fake = ns["d"], ns["fake"]
    assert isinstance(d, pets.Release) and d.dummy and d.audit_id == 0
    assert fake.shape == (1000, 14) and "fnlwgt" not in fake.columns  # type: ignore[attr-defined]


def test_dummy_guide_example_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    md = ROOT / "docs" / "dummy.md"
    blocks = _python_blocks(md)
    assert len(blocks) == 1
    ns: dict[str, object] = {}
    exec(compile(blocks[0], "docs/dummy.md", "exec"), ns)
    printed = capsys.readouterr().out.splitlines()
    # each print's expected output is the comment on its line
    shown = [line.split("# ", 1)[1].strip() for line in blocks[0].splitlines()
             if line.startswith("print(")]
    assert printed == shown
    assert ns["d"].dummy and ns["x"].dummy  # type: ignore[attr-defined]
    assert ns["s"].remaining() == pets.Cost(1.0, 0.0)  # type: ignore[attr-defined]


def test_governance_guide_example_runs_and_prints_the_grant_history(
    capsys: pytest.CaptureFixture[str],
) -> None:
    md = ROOT / "docs" / "governance.md"
    blocks = _python_blocks(md)
    assert blocks
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), "docs/governance.md", "exec"), ns)
    printed = capsys.readouterr().out.splitlines()
    shown = [line[2:] for line in md.read_text().splitlines()
             if line.startswith("# ") and line[2:3].isdigit()]
    assert printed == shown == [
        "2 grant alice 1.0 0.0 None",
        "3 grant alice 2.0 1e-06 {'accounting': 'basic', 'delta': 0.0, 'epsilon': 1.0}",
        "4 revoke alice None None {'accounting': 'basic', 'delta': 1e-06, 'epsilon': 2.0}",
    ]


def test_dp_guide_example_runs() -> None:
    blocks = _python_blocks(ROOT / "docs" / "dp.md")
    assert blocks
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), "docs/dp.md", "exec"), ns)
    r = ns["r"]
    assert isinstance(r, pets.Release)
    assert len(r.df) == 5  # the five public race keys
    assert r.spent == pets.Cost(0.3, 0.0)
    u = ns["u"]  # unknown keys: thresholded, costs delta
    assert u.spent == pets.Cost(0.5, 1e-6) and 0 < len(u.df) < 94
    assert u.df["n"].min() > 10
    g = ns["g"]  # Gaussian noise under a zCDP grant
    assert g.spent.rho == pytest.approx(0.0017197, rel=1e-4) and len(g.df) == 16
    left = ns["sz"].remaining()  # type: ignore[attr-defined]
    assert left.epsilon == pytest.approx(0.6348, abs=1e-3) and left.delta == 5e-7
    h = ns["h"]  # a histogram: long form, 2 sexes × 4 bins, one share of ε
    assert list(h.df.columns) == ["sex", "age", "n"] and len(h.df) == 8
    assert h.spent == pets.Cost(0.1, 0.0)
    d = ns["d"]  # distinct persons: sensitivity max_groups, not × rows
    assert d.scale == {"persons": pytest.approx(8.0), "codes": pytest.approx(16.0)}


def _block_with(blocks: list[str], text: str) -> str:
    """The one block of a guide that contains ``text``."""
    found = [b for b in blocks if text in b]
    assert len(found) == 1, f"{len(found)} blocks contain {text!r}"
    return found[0]


def test_anonymisation_guide_example_runs_and_matches_its_text() -> None:
    blocks = _python_blocks(ROOT / "docs" / "anonymisation.md")
    assert len(blocks) == 9  # the worked example (2), models (2), metrics, search, recoding, cells, governed options (the docs runner runs all)
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks[:2]), "docs/anonymisation.md", "exec"), ns)
    r = ns["r"]
    # the figures the guide quotes
    assert r.transformation == {"age": 4, "sex": 0, "race": 0, "education": 1, "marital-status": 1}
    assert (r.suppressed, r.classes, round(r.metrics["loss"], 4)) == (334, 68, 0.2865)
    before, after = ns["before"], ns["after"]
    assert before["classes"] == 6493 and after["min_class_size"] == 5
    x = ns["x"]
    assert isinstance(x, pets.Extract) and x.extracts_left == 2
    # "choosing a model" and "reading the risk figures": the figures in their comments
    import contextlib
    import io

    models: dict[str, object] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(_block_with(blocks, "t_distance=\"hierarchical\""), "docs/anonymisation.md", "exec"), models)
    assert printed.getvalue().splitlines() == [
        "{'age': 2, 'sex': 0, 'race': 0, 'marital-status': 1} 3267 41",
        "{'age': 3, 'sex': 0, 'race': 0, 'marital-status': 0} 47",
        "0.0084",
        "0.15-closeness (hierarchical distance) of education",
    ]
    r = models["r"]
    assert r.models[-1] == "0.15-closeness (hierarchical distance) of education"
    risk: dict[str, object] = {}
    exec(compile(_block_with(blocks, "before = anon.risk(df, qis, sample_fraction"), "docs/anonymisation.md", "exec"), risk)
    b = risk["before"]
    assert (round(b["prosecutor_average"], 4), round(b["sample_uniques"], 4)) == (0.0544, 0.0173)
    assert b["population_uniqueness_model"] == "pitman" and round(b["population_uniqueness"], 5) == 0.00062
    assert {m: round(v, 5) for m, v in b["population_uniqueness_by_model"].items()} == {
        "pitman": 0.00062, "zayatz": 0.00077, "snb": 0.00242}


def test_homomorphic_guide_examples_run() -> None:
    blocks = _python_blocks(ROOT / "docs" / "homomorphic.md")
    assert len(blocks) == 3
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), "docs/homomorphic.md", "exec"), ns)
    exact, noisy = ns["exact"], ns["noisy"]
    assert list(exact.df["region"]) == ["north", "south"]
    assert int(exact.df["n"].sum()) == 1500  # 3 holders × 500 rows, exact without DP
    assert noisy.spent == pets.Cost(1.0, 0.0) and set(noisy.audit_ids) == {"city", "county", "university"}
    assert float(ns["priv"].decrypt_many(ns["w"])[0]) == 177.0


def test_dp_guide_laplace_or_gaussian_table_matches_explain(tmp_path: Path) -> None:
    """The half-widths the guide tabulates are what explain() says."""
    text = (ROOT / "docs" / "dp.md").read_text()
    block = text[text.index("**Laplace or Gaussian?**"):]
    rows = re.findall(r"^\| (\d+) \| ±([\d,]+) \| ±([\d,]+) \| ±([\d,]+) \| ±([\d,]+) \|$", block, re.M)
    assert [int(r[0]) for r in rows] == [1, 4, 9, 16, 50]
    keys = [f"k{i}" for i in range(60)]
    df = pd.DataFrame({"pid": [0, 0], "k": ["k0", "k1"]})
    h = pets.Holder(tmp_path / "home")
    for g, *widths in rows:
        name = f"d{g}"
        h.register(name, df, {
            "dataset": {"privacy_unit": "pid", "max_groups": int(g), "max_rows_per_group": 1},
            "columns": {"pid": {"role": "identifier", "grade": 1},
                        "k": {"role": "attribute", "grade": 1, "keys": keys}},
            "grades": {"1": {"allow": ["dp"]}}})
        h.grant("a", dataset=name, purpose="p", epsilon=10.0, delta=1e-5)
        s = h.session("a", purpose="p")
        q = s.table(name).group_by("k").agg(n=pets.count())
        got = []
        for eps, noise in ((1.0, "laplace"), (1.0, "gaussian"), (0.1, "laplace"), (0.1, "gaussian")):
            prot = pets.DP(epsilon=eps, delta=1e-6 if noise == "gaussian" else 0.0, noise=noise)
            got.append(int(s.explain(q, prot).ci_width["n"] / 2))
        assert got == [int(w.replace(",", "")) for w in widths], (g, got)
