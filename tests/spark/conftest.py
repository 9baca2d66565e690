"""Fixtures of the Spark engine's tests: ONE Spark session (``local[2]``) for the whole
run — the JVM takes seconds to start — shared by every test through a SparkEngine.

Every module here is marked ``spark`` and skipped where pyspark is not installed (the
default suite); ``.ci/run`` runs them in a separate environment with ``pets[spark]``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest


@pytest.fixture(scope="session")
def spark_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("the Spark engine needs Java 17+ on the PATH")
    from pyspark.sql import SparkSession

    from pets.engines.spark import SparkEngine

    wh = tmp_path_factory.mktemp("spark-warehouse")
    session = (
        SparkSession.builder.master("local[2]").appName("pets-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(wh))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield SparkEngine(session=session)
    session.stop()


@pytest.fixture(scope="session")
def spark_session(spark_engine: Any) -> Any:
    return spark_engine.session


def write_parquet(df: Any, path: Path) -> Path:
    """A pandas frame as one Parquet file, written by DuckDB (the engines' common input)."""
    import duckdb

    duckdb.from_df(df).write_parquet(str(path))
    return path
