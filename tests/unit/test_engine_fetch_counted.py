"""DuckDB counts the classes of a k-anonymous extract (``fetch_counted``): the distinct
tuples with their row counts are the same multiset as the rows ``fetch`` gives, NULLs
and filters included, in a fixed order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pets import plan as P
from pets.engines.base import COUNT_COLUMN, Source
from pets.engines.duckdb import DuckDBEngine


def _source(tmp_path: Path) -> Source:
    rng = np.random.default_rng(5)  # test data only
    n = 2000
    df = pd.DataFrame({
        "g": rng.choice(["a", "b", None], n),
        "age": rng.integers(18, 30, n).astype("float64"),
        "x": rng.integers(0, 4, n),
    })
    df.loc[::97, "age"] = np.nan
    con = duckdb.connect()
    con.register("df", df)
    con.execute(f"COPY df TO '{tmp_path / 't.parquet'}' (FORMAT parquet)")
    con.close()
    return Source("parquet", str(tmp_path / "t.parquet"), trim=False)


def _multiset(df: pd.DataFrame, cols: tuple[str, ...], counts: pd.Series | None = None) -> Counter:
    keyed = [tuple(None if pd.isna(v) else v for v in row) for row in df[list(cols)].itertuples(index=False)]
    if counts is None:
        return Counter(keyed)
    out: Counter = Counter()
    for k, c in zip(keyed, counts):
        out[k] += int(c)
    return out


def test_counted_rows_are_the_fetched_multiset_with_nulls_and_filters(tmp_path: Path) -> None:
    src, eng = _source(tmp_path), DuckDBEngine()
    cols = ("g", "age", "x")
    for flt in ((), (P.Compare(">=", P.Col("x"), P.Lit(2)),)):
        rows = eng.fetch(src, cols, flt)
        counted = eng.fetch_counted(src, cols, flt)
        assert list(counted.columns) == [*cols, COUNT_COLUMN]
        assert counted[COUNT_COLUMN].sum() == len(rows) and (counted[COUNT_COLUMN] >= 1).all()
        # distinct tuples only (NULLs form their own tuples), and the same multiset
        assert len(_multiset(counted, cols)) == len(counted)
        assert _multiset(counted, cols, counted[COUNT_COLUMN]) == _multiset(rows, cols)
        # a fixed order, so an extract built from it never depends on parallel grouping
        again = eng.fetch_counted(src, cols, flt)
        pd.testing.assert_frame_equal(counted, again)
    assert len(eng.fetch_counted(src, cols, (P.Compare(">", P.Col("x"), P.Lit(99)),))) == 0
