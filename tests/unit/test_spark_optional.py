"""The Spark engine is optional: without pyspark, asking for it says how to install it and
changes nothing (these run in the default suite; tests/spark runs the engine itself)."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner  # click comes with uvicorn (test extra)

import pets
from pets.cli import command
from pets.errors import DataError, QueryError

POLICY = {"columns": {"x": {"role": "attribute", "grade": 1, "bounds": [0, 10]}},
          "grades": {"1": {"allow": ["dp"]}}}


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "t.parquet"
    duckdb.from_df(pd.DataFrame({"x": [1, 2, 3]})).write_parquet(str(path))
    return path


def test_without_pyspark_registering_with_spark_names_the_extra(tmp_path: Path, parquet: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark → ImportError
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(DataError, match=r'needs pyspark and Java 17\+: pip install "pets\[spark\]"'):
        h.register("t", parquet, POLICY, engine="spark")
    assert h.datasets() == []


def test_without_pyspark_the_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from pets.engines.spark import SparkEngine

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(DataError, match=r'pip install "pets\[spark\]"'):
        SparkEngine().session


def test_an_unknown_engine_is_refused_naming_the_choices(tmp_path: Path, parquet: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(QueryError, match="engine must be 'duckdb' or 'spark', got 'DuckDB'"):
        h.register("t", parquet, POLICY, engine="DuckDB")
    assert h.datasets() == []


def test_spark_engine_takes_a_session_or_a_master_not_both() -> None:
    from pets.engines.spark import SparkEngine

    with pytest.raises(QueryError, match="either session= or master=/config="):
        SparkEngine(session=object(), master="local[1]")
    assert SparkEngine().master == "local[2]"


def test_the_cli_refuses_copy_with_the_spark_engine_in_its_flags(tmp_path: Path, parquet: Path) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text('[columns.x]\nrole = "attribute"\ngrade = 1\nbounds = [0, 10]\n[grades.1]\nallow = ["dp"]\n')
    home = tmp_path / "home"
    r = CliRunner().invoke(command(), ["register", "t", str(parquet), "--policy", str(pol), "--home", str(home),
                                       "--engine", "spark", "--copy"],
                           env={"PETS_HOME": "", "PETS_AUDIT_KEY": ""}, prog_name="pets")
    assert r.exit_code == 2, r.output
    assert "--copy" in r.output and "--engine spark" in r.output
    assert not (home / "data").exists()
    r = CliRunner().invoke(command(), ["register", "t", str(parquet), "--policy", str(pol), "--home", str(home),
                                       "--engine", "hadoop"],
                           env={"PETS_HOME": "", "PETS_AUDIT_KEY": ""}, prog_name="pets")
    assert r.exit_code == 2 and "--engine" in r.output and "'hadoop'" in r.output
