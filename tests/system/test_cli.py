"""The `pets` command: one exit code per kind of outcome (API.md), messages in the CLI's
own terms, the holder's and analyst's commands, and a fast `--help`.

Most tests drive the typer app in-process with typer's CliRunner (real homes, real
DuckDB, real SQLite); a few run the real entry point in a subprocess (`python -m
pets.cli`), where the process boundary matters: pipes, stdin, imports, exit statuses.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from typing import Any
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner  # click comes with uvicorn (test extra); it only calls .main()

import pets
from pets.cli import command
from pets.cli._app import cli_message

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

POLICY = """
negative_list = ["secret"]
[columns.region]
role = "quasi_identifier"
grade = 1
keys = ["north", "south"]
hierarchy = "region.csv"
[columns.age]
role = "quasi_identifier"
grade = 1
bounds = [0, 100]
[columns.cost]
role = "attribute"
grade = 1
bounds = [0, 1000]
[grades.1]
allow = ["dp", "kanon", "he", "he_exact"]
"""


def _source(folder: Path, rows: int = 400, seed: int = 0, sep: str = ",") -> tuple[Path, Path]:
    """A small CSV and its policy (region hierarchy included) in ``folder``."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)  # example data only
    df = pd.DataFrame({"region": rng.choice(["north", "south"], rows),
                       "age": rng.integers(20, 70, rows),
                       "cost": rng.integers(0, 1000, rows),
                       "secret": rng.integers(0, 10, rows)})
    csv = folder / "visits.csv"
    df.to_csv(csv, index=False, sep=sep)
    (folder / "region.csv").write_text("north;*\nsouth;*\n")
    pol = folder / "policy.toml"
    pol.write_text(POLICY)
    return csv, pol


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    full = {"PETS_HOME": "", "PETS_AUDIT_KEY": "", **(env or {})}
    return runner.invoke(command(), list(args), env=full, input=input, prog_name="pets")


def pets_proc(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    base = {k: v for k, v in os.environ.items() if k not in ("PETS_HOME", "PETS_AUDIT_KEY")}
    return subprocess.run([sys.executable, "-m", "pets.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**base, **(env or {})}, **kw)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with 'visits' registered and alice granted epsilon 1 for purpose 'p'."""
    base = tmp_path_factory.mktemp("cli")
    csv, pol = _source(base / "src")
    h = base / "home"
    r = cli("register", "visits", str(csv), "--policy", str(pol), "--home", str(h))
    assert r.exit_code == 0, r.output
    r = cli("grant", "--home", str(h), "--analyst", "alice", "--dataset", "visits",
            "--purpose", "p", "--epsilon", "1")
    assert r.exit_code == 0, r.output
    return h


def _records(h: Path) -> list[tuple[str, str]]:
    return [(r["kind"], r["status"]) for r in pets.Holder(h).audit().records()]


# ------------------------------------------------------------------ exit codes (API.md)

def test_exit_0_success_and_pets_home_stands_in_for_home(home: Path) -> None:
    r = cli("datasets", "--format", "json", env={"PETS_HOME": str(home)})
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert row["dataset"] == "visits" and row["columns"] == 4 and row["stored"] == "in place"


def test_exit_1_unexpected_error_says_it_is_a_bug(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: pets.Holder) -> list[str]:
        raise RuntimeError("an assumption failed")

    monkeypatch.setattr(pets.Holder, "datasets", broken)
    r = cli("datasets", "--home", str(home))
    assert r.exit_code == 1
    assert "pets: unexpected error (a bug: please report it" in r.stderr
    assert "RuntimeError: an assumption failed" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["grants"], "--home is required (or set PETS_HOME)"),
    (["grants", "--home", "x", "--nope"], "No such option"),
    (["query", "--home", "x", "--analyst", "a", "--purpose", "p", "SELECT 1"],
     "Missing option '--epsilon'"),
    (["keys", "revoke", "--home", "x"], "give exactly one of --key, --key-id, --analyst"),
    (["extract", "d", "--home", "x", "--analyst", "a", "--purpose", "p", "--columns", "a",
      "--k", "5"], "give -o FILE (or '-' for stdout), or --explain"),
])
def test_exit_2_usage_errors(args: list[str], message: str) -> None:
    r = cli(*args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.stderr.replace("│", " ").split()), r.stderr


def test_exit_3_refused_by_the_policy_and_by_a_missing_grant(home: Path) -> None:
    r = cli("query", "--home", str(home), "--analyst", "alice", "--purpose", "p",
            "--epsilon", "0.1", "SELECT SUM(secret) FROM visits")
    assert r.exit_code == 3
    assert "PolicyError [negative_list]: column 'secret' is on the dataset's negative list" in r.stderr
    r = cli("query", "--home", str(home), "--analyst", "bob", "--purpose", "p",
            "--epsilon", "0.1", "SELECT COUNT(*) FROM visits")
    assert r.exit_code == 3
    # the CLI's terms, not holder.grant(...)
    assert "PolicyError [no_grant]" in r.stderr and "holder.grant" not in r.stderr
    assert "ask the holder for one (`pets grant --analyst A --dataset D --purpose P " \
           "--epsilon E`)" in r.stderr


def test_exit_4_budget_exceeded_spends_nothing(home: Path) -> None:
    before = pets.Holder(home).remaining("alice", dataset="visits", purpose="p")
    r = cli("query", "--home", str(home), "--analyst", "alice", "--purpose", "p",
            "--epsilon", "5", "SELECT COUNT(*) FROM visits")
    assert r.exit_code == 4
    assert "BudgetExceeded: this release asks epsilon=5" in r.stderr
    assert pets.Holder(home).remaining("alice", dataset="visits", purpose="p") == before


def test_exit_5_bad_query_and_a_typod_home_which_is_not_created(home: Path, tmp_path: Path) -> None:
    r = cli("query", "--home", str(home), "--analyst", "alice", "--purpose", "p",
            "--epsilon", "0.1", "SELECT nope, COUNT(*) FROM visits GROUP BY nope")
    assert r.exit_code == 5 and "QueryError" in r.stderr and "nope" in r.stderr
    typo = tmp_path / "hoem"
    for args in (["grants"], ["audit", "verify"], ["keys", "list"], ["serve"],
                 ["grant", "--analyst", "a", "--dataset", "visits", "--purpose", "p",
                  "--epsilon", "1"]):
        r = cli(*args, "--home", str(typo))
        assert r.exit_code == 5, (args, r.output)
        assert f"--home '{typo}' does not exist; check the path (or PETS_HOME)" in r.stderr
    assert not typo.exists()


def test_exit_6_audit_verification_failed(tmp_path: Path) -> None:
    csv, pol = _source(tmp_path / "src")
    h = tmp_path / "h"
    assert cli("register", "visits", str(csv), "--policy", str(pol), "--home", str(h)).exit_code == 0
    assert cli("audit", "verify", "--home", str(h)).exit_code == 0
    con = sqlite3.connect(h / "pets.db", isolation_level=None)
    con.execute("UPDATE audit SET analyst = 'mallory' WHERE id = 1")
    con.close()
    r = cli("audit", "verify", "--home", str(h))
    assert r.exit_code == 6
    assert "pets: audit verification failed: audit record 1" in r.stderr


def test_a_closed_stdout_exits_quietly_with_141() -> None:
    """`pets demo | head`: no 'Broken pipe', no traceback (the real process and pipe)."""
    p = subprocess.Popen([sys.executable, "-m", "pets.cli", "demo"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    p.stdout.close()
    rc = p.wait(timeout=120)
    stderr = p.stderr.read()
    assert first.startswith("pets ") and "demo" in first
    assert rc == 141, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr and stderr == ""


# ------------------------------------------------------------- the CLI's own terms

def test_re_registering_says_replace_flag_and_changes_nothing(home: Path) -> None:
    csv = home.parent / "src" / "visits.csv"
    pol = home.parent / "src" / "policy.toml"
    before = _records(home)
    r = cli("register", "visits", str(csv), "--policy", str(pol), "--home", str(home))
    assert r.exit_code == 5
    assert "dataset 'visits' is already registered; add --replace to replace it" in r.stderr
    assert "replace=True" not in r.stderr
    assert _records(home) == before


@pytest.mark.parametrize("library,cli_text", [
    ("dataset 'a' is already registered; pass replace=True to replace it",
     "dataset 'a' is already registered; add --replace to replace it"),
    ("the source of dataset 'a' is gone; re-register it with holder.register(..., replace=True)",
     "the source of dataset 'a' is gone; re-register it with "
     "`pets register --replace NAME SOURCE --policy POLICY`"),
    ("analyst 'b' has no grant for dataset 'a' and purpose 'p'; the holder can grant one "
     "with holder.grant(...)",
     "analyst 'b' has no grant for dataset 'a' and purpose 'p'; the holder can grant one "
     "with `pets grant --analyst A --dataset D --purpose P --epsilon E`"),
    ("name the dataset: s.remaining('adult') (grants for this purpose: a, b)",
     "name the dataset with --dataset (grants for this purpose: a, b)"),
    ("a \x1b[31mred\x1b[0m name", "a \\x1b[31mred\\x1b[0m name"),
])
def test_library_hints_become_flags(library: str, cli_text: str) -> None:
    assert cli_message(library) == cli_text


def test_every_option_and_argument_has_help() -> None:
    missing = []

    def walk(cmd: Any, path: str) -> None:  # click's classes, or a newer typer's own copy
        if isinstance(getattr(cmd, "commands", None), dict):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")
            return
        assert cmd.help, path
        for p in cmd.params:
            if not getattr(p, "help", None):
                missing.append(f"{path} {p.name}")

    walk(command(), "pets")
    assert not missing, missing


def test_explain_with_format_json_prints_json_and_spends_nothing(home: Path) -> None:
    before = _records(home)
    r = cli("query", "--home", str(home), "--analyst", "alice", "--purpose", "p", "--epsilon",
            "0.2", "--explain", "--format", "json",
            'SELECT region, COUNT(*) AS n, AVG(cost) AS c FROM visits GROUP BY region')
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["allowed"] is True and d["cost"] == {"epsilon": 0.2, "delta": 0.0, "rho": 0.0}
    assert set(d["scale"]) == {"n", "c"} and d["remaining"]["epsilon"] == pytest.approx(1.0, abs=0.5)
    r = cli("query", "--home", str(home), "--analyst", "alice", "--purpose", "p", "--epsilon",
            "0.2", "--explain", "--format", "json", "SELECT SUM(secret) AS s FROM visits")
    assert r.exit_code == 3
    d = json.loads(r.stdout)
    assert d["allowed"] is False and d["rule"] == "negative_list" and d["column"] == "secret"
    assert [k for k in _records(home) if k[0] == "dp" and k[1] == "released"] == \
        [k for k in before if k[0] == "dp" and k[1] == "released"]


def test_sql_from_stdin_in_a_real_process(home: Path) -> None:
    p = pets_proc("query", "--analyst", "alice", "--purpose", "p", "--epsilon", "0.1",
                  "--format", "json", "-", env={"PETS_HOME": str(home)},
                  input="SELECT region, COUNT(*) AS n FROM visits GROUP BY region")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    # exact counts are about 200 each; the noise scale is 10: ±200 fails with p < 1e-8
    assert [r["region"] for r in rows] == ["north", "south"]
    assert all(0 < r["n"] < 400 for r in rows) and isinstance(rows[0]["n"], int)


# ------------------------------------------------------------------- demo

def test_demo_refuses_an_existing_home_and_leaves_it_untouched(home: Path) -> None:
    before = _records(home)
    r = cli("demo", "--home", str(home))
    assert r.exit_code == 5
    assert "is not an empty folder: the demo registers 'adult'" in r.stderr
    assert _records(home) == before and pets.Holder(home).datasets() == ["visits"]


def test_demo_ignores_pets_home(home: Path, tmp_path: Path) -> None:
    """PETS_HOME names a real home; the demo must not write into it."""
    before = _records(home)
    r = cli("demo", "--home", str(tmp_path / "fresh"), env={"PETS_HOME": str(home)})
    assert r.exit_code == 0, r.output
    assert "audit log intact: True" in r.stdout
    assert _records(home) == before


# ---------------------------------------------------------- the holder's new commands

def test_grants_budget_and_revoke(tmp_path: Path) -> None:
    csv, pol = _source(tmp_path / "src")
    h = str(tmp_path / "h")
    assert cli("register", "visits", str(csv), "--policy", str(pol), "--home", h).exit_code == 0
    assert cli("grant", "--home", h, "--analyst", "bob", "--dataset", "visits", "--purpose",
               "q", "--epsilon", "2", "--delta", "1e-6").exit_code == 0
    assert cli("query", "--home", h, "--analyst", "bob", "--purpose", "q", "--epsilon", "0.5",
               "--format", "csv", "SELECT COUNT(*) AS n FROM visits").exit_code == 0
    r = cli("grants", "--home", h, "--format", "json")
    [g] = json.loads(r.stdout)
    assert (g["analyst"], g["dataset"], g["purpose"], g["epsilon"], g["spent_epsilon"],
            g["remaining_epsilon"], g["remaining_delta"]) == ("bob", "visits", "q", 2.0, 0.5, 1.5, 1e-6)
    r = cli("grants", "--home", h)
    assert r.exit_code == 0 and "bob" in r.stdout and "1.50" in r.stdout
    r = cli("budget", "--home", h, "--analyst", "bob", "--purpose", "q", "--json")
    assert json.loads(r.stdout) == {"epsilon": 1.5, "delta": 1e-6, "rho": 0.0}
    r = cli("budget", "--home", h, "--analyst", "bob", "--purpose", "q", "--dataset", "visits")
    assert r.stdout.strip() == "bob has epsilon=1.5, delta=1e-06 left for 'q'"
    r = cli("revoke", "--home", h, "--analyst", "bob", "--dataset", "visits", "--purpose", "q")
    assert r.exit_code == 0 and "revoked the grant of 'bob'" in r.stdout
    assert _records(Path(h))[-1] == ("revoke", "recorded")
    assert json.loads(cli("grants", "--home", h, "--format", "json").stdout) == []
    r = cli("revoke", "--home", h, "--analyst", "bob", "--dataset", "visits", "--purpose", "q")
    assert r.exit_code == 5 and "'bob' has no grant on 'visits' for 'q'" in r.stderr
    r = cli("query", "--home", h, "--analyst", "bob", "--purpose", "q", "--epsilon", "0.1",
            "SELECT COUNT(*) FROM visits")
    assert r.exit_code == 3


def test_register_copy_stores_a_snapshot_in_the_home(tmp_path: Path) -> None:
    csv, pol = _source(tmp_path / "src", sep=";")  # the separator is detected
    h = tmp_path / "h"
    r = cli("register", "visits", str(csv), "--policy", str(pol), "--home", str(h), "--copy")
    assert r.exit_code == 0, r.output
    assert (h / "data" / "visits.parquet").is_file()
    csv.write_text("changed\n")  # a snapshot: the original no longer matters
    [row] = json.loads(cli("datasets", "--home", str(h), "--format", "json").stdout)
    assert row["stored"] == "copy" and row["columns"] == 4
    assert cli("grant", "--home", str(h), "--analyst", "a", "--dataset", "visits", "--purpose",
               "p", "--epsilon", "1").exit_code == 0
    r = cli("query", "--home", str(h), "--analyst", "a", "--purpose", "p", "--epsilon", "0.5",
            "--format", "json", "SELECT COUNT(*) AS n FROM visits")
    assert r.exit_code == 0, r.output
    # 400 rows, noise scale 2: |error| >= 40 has probability e^-20 < 1e-8
    assert abs(json.loads(r.stdout)[0]["n"] - 400) < 40


# ---------------------------------------------------------- the analyst's new commands

def test_extract_is_k_anonymous_governed_and_audited(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    r = cli("extract", "visits", "--home", str(home), "--analyst", "alice", "--purpose", "p",
            "--columns", "region,age", "--k", "5", "--algorithm", "mondrian", "-o", str(out))
    assert r.exit_code == 0, r.output
    x = pd.read_csv(out, dtype=str)
    assert list(x.columns) == ["region", "age"] and len(x) > 0
    assert x.groupby(["region", "age"]).size().min() >= 5
    assert _records(home)[-1] == ("kanon", "released")
    assert "audit record #" in r.stderr and "extracts left:" in r.stderr
    # the policy applies: a column on the negative list is refused and audited
    r = cli("extract", "visits", "--home", str(home), "--analyst", "alice", "--purpose", "p",
            "--columns", "region,secret", "--k", "5", "-o", str(tmp_path / "y.csv"))
    assert r.exit_code == 3 and "negative_list" in r.stderr
    assert not (tmp_path / "y.csv").exists()
    assert _records(home)[-1] == ("kanon", "refused")


def test_he_query_totals_across_two_homes(tmp_path: Path) -> None:
    homes = []
    for i, name in enumerate(["north", "south"]):
        csv, pol = _source(tmp_path / f"src{i}", rows=300, seed=i)
        h = tmp_path / name
        assert cli("register", "visits", str(csv), "--policy", str(pol), "--home", str(h)).exit_code == 0
        assert cli("grant", "--home", str(h), "--analyst", "a", "--dataset", "visits",
                   "--purpose", "p", "--epsilon", "1").exit_code == 0
        homes.append(h)
    args = ["he", "query", "--member", f"n={homes[0]}", "--member", f"s={homes[1]}",
            "--analyst", "a", "--purpose", "p", "--key-bits", "2048", "--format", "json",
            "SELECT region, COUNT(*) AS n FROM visits GROUP BY region"]
    r = cli(*args[:-1], "--explain", args[-1])
    assert r.exit_code == 0 and set(json.loads(r.stdout)) == {"n", "s"}
    r = cli(*args)  # exact totals (he_exact)
    assert r.exit_code == 0, r.output
    got = {row["region"]: row["n"] for row in json.loads(r.stdout)}
    want = pd.concat([pd.read_csv(tmp_path / f"src{i}" / "visits.csv") for i in (0, 1)])
    assert got == want["region"].value_counts().to_dict()
    assert all(_records(h)[-1] == ("he_exact", "released") for h in homes)
    r = cli("he", "query", "--member", f"n={homes[0]}", "--analyst", "a", "--purpose", "p",
            "SELECT COUNT(*) FROM visits")
    assert r.exit_code == 2 and "at least two --member" in r.stderr
    r = cli(*[a for a in args if a not in ("--analyst", "a")])  # who asks, with homes
    assert r.exit_code == 2 and "home-folder members need --analyst" in r.stderr
    assert all(_records(h)[-1] == ("he_exact", "released") for h in homes)  # nothing ran


# ------------------------------------------------------------------------- anonymize

def test_anonymize_detects_the_separator_as_register_does(tmp_path: Path) -> None:
    csv, _ = _source(tmp_path, sep=",")
    out = tmp_path / "o.csv"
    r = cli("anonymize", str(csv), "--qi", "region,age", "--k", "5", "--algorithm", "mondrian",
            "--hierarchies", str(tmp_path), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert pd.read_csv(out).groupby(["region", "age"]).size().min() >= 5
    r = cli("anonymize", str(csv), "--sep", ";", "--qi", "region", "--k", "5", "-o", str(out))
    assert r.exit_code == 5
    assert "unknown column 'region'" in r.stderr and "leave it out to detect it" in r.stderr
    assert "ungoverned" in cli("anonymize", "--help").stdout


# ---------------------------------------------------------------- startup and imports

def test_help_imports_neither_pandas_nor_the_engines() -> None:
    code = ("import sys\nfrom pets.cli import main\nrc = main(['--help'])\n"
            "heavy = sorted(m for m in ('pandas', 'numpy', 'duckdb', 'opendp', 'pets.holder') "
            "if m in sys.modules)\nprint('HEAVY', heavy, rc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert "HEAVY [] 0" in p.stdout, p.stdout + p.stderr
    assert "query" in p.stdout and "Exit codes: 0 success" in p.stdout


def test_import_pets_is_lazy_but_complete() -> None:
    code = ("import sys, pets\nassert 'pandas' not in sys.modules\n"
            "names = [getattr(pets, n) for n in pets.__all__]\n"
            "assert pets.Holder.__module__ == 'pets.holder' and pets.he.generate_keypair\n"
            "from pets import DP, col\nassert set(pets.__all__) <= set(dir(pets))\n"
            "try:\n    pets.no_such_name\nexcept AttributeError as e:\n    print('OK', e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "OK module 'pets' has no attribute 'no_such_name'" in p.stdout


# ------------------------------------------------------------------------ docs/cli.md

@pytest.mark.slow  # about 40 s on an idle machine: twenty processes, an HE key, the demo
def test_docs_cli_examples_run_as_pasted(tmp_path: Path) -> None:
    """Every ```sh block of docs/cli.md, in order, in one bash, with `pets` on PATH and
    `python` the interpreter that runs the tests, from a folder outside the repository."""
    import re
    import stat

    text = (ROOT / "docs" / "cli.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in (("pets", f'"{sys.executable}" -m pets.cli'), ("python", f'"{sys.executable}"')):
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\nexec {target} \"$@\"\n")
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PETS_HOME", "PETS_AUDIT_KEY")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    script = "set -eu\n" + "\n".join(blocks)
    p = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out, err_ = p.stdout, p.stderr
    assert "pets 0.1.0 demo" in out
    assert [int(c) for c in re.findall(r"^exit code (\d+)$", out, re.M)] == [5, 3, 4, 3]
    assert "add --replace to replace it" in err_ and "`pets grant --analyst A" in err_
    assert "intact; head" in out and "Traceback" not in err_
    assert (work / "adult-k5-governed.csv").is_file() and (work / "adult-k5.csv").is_file()


def test_anonymize_writes_rows_in_a_random_order_unless_kept(tmp_path: Path) -> None:
    """Two files of one table in the input's order could be paired row by row; by
    default the rows are shuffled (CSPRNG), --keep-order writes them as read. Two
    shuffles of n ≥ 100 rows agreeing has probability 1/n!."""
    csv, _ = _source(tmp_path, sep=",")
    outs = []
    for i, extra in enumerate(([], [], ["--keep-order"], ["--keep-order"])):
        out = tmp_path / f"o{i}.csv"
        r = cli("anonymize", str(csv), "--qi", "region,age", "--k", "5", "--algorithm", "mondrian",
                "--hierarchies", str(tmp_path), "-o", str(out), *extra)
        assert r.exit_code == 0, r.output
        outs.append(pd.read_csv(out))
    assert len(outs[0]) >= 100
    assert not outs[0].equals(outs[1])
    assert outs[2].equals(outs[3])
    key = list(outs[0].columns)
    pd.testing.assert_frame_equal(outs[0].sort_values(key).reset_index(drop=True),
                                  outs[2].sort_values(key).reset_index(drop=True))
