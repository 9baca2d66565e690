"""Small sources kept in DuckDB's memory between releases (pets.engines.hot): the same
answers as reading the file, a changed file read afresh, bounded memory, and no table
dropped under a running query."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import pets
from pets import plan as P
from pets.engines.base import AggregateRequest, Measure, Source
from pets.engines.config import engine_for_home
from pets.engines.duckdb import DuckDBEngine
from pets.errors import QueryError


def _write(path: Path, n: int, shift: int = 0) -> Source:
    df = pd.DataFrame({"g": ["a", "b", "c"] * (n // 3), "x": [(i + shift) % 7 for i in range(n // 3 * 3)]})
    con = duckdb.connect()
    con.register("df", df)
    con.execute(f"COPY df TO '{path}' (FORMAT parquet)")
    con.close()
    return Source("parquet", str(path), trim=False)


def _request(lo: int) -> AggregateRequest:
    return AggregateRequest(
        filters=(P.Compare(">=", P.Col("x"), P.Lit(lo)),),
        group_columns=("g",), group_keys=(("a", "b", "c"),),
        measures=(Measure("n", "rows"), Measure("s", "sum", "x", 0.0, 10.0, 1)),
    )


def _rows(df: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, df[["g", "n", "s"]].itertuples(index=False)))


def test_hot_answers_equal_the_file_and_a_changed_file_is_read_again(tmp_path: Path) -> None:
    src = _write(tmp_path / "t.parquet", 3000)
    hot, cold = DuckDBEngine(), DuckDBEngine(hot_tables="0")
    hot.aggregate(src, _request(0))
    assert hot._hot.stats()["tables"] == 0  # a one-off read loads nothing
    for lo in (0, 3, 6):
        assert _rows(hot.aggregate(src, _request(lo))) == _rows(cold.aggregate(src, _request(lo)))
    assert hot._hot.stats()["tables"] == 1 and cold._hot.stats()["tables"] == 0
    before = _rows(hot.aggregate(src, _request(0)))
    # the same path, other rows (size or mtime differ): the hot table must not answer
    _write(tmp_path / "t.parquet", 3003, shift=1)
    os.utime(tmp_path / "t.parquet", ns=(1, 1))
    hot.aggregate(src, _request(0))  # the new version's first read: from the file
    after = _rows(hot.aggregate(src, _request(0)))
    assert after == _rows(cold.aggregate(src, _request(0))) and after != before
    assert hot._hot.stats()["tables"] == 1  # the old version was dropped, not kept beside
    # record-level reads (k-anonymous extracts) come from the hot table in the file's order
    got = hot.fetch(src, ("g", "x"), ())
    pd.testing.assert_frame_equal(got, cold.fetch(src, ("g", "x"), ()))
    hot.forget(src)
    assert hot._hot.stats()["tables"] == 0


def test_budget_bounds_memory_and_large_files_are_read_in_place(tmp_path: Path) -> None:
    sources = [_write(tmp_path / f"t{i}.parquet", 3000, shift=i) for i in range(6)]
    one = DuckDBEngine()._hot
    eng = DuckDBEngine()
    eng.aggregate(sources[0], _request(0))
    eng.aggregate(sources[0], _request(0))
    per_table = eng._hot.stats()["bytes"]
    assert per_table > 0
    small = DuckDBEngine(hot_tables=f"{per_table * 2 + per_table // 2}B")
    cold = DuckDBEngine(hot_tables="0")
    for s in sources * 2:
        assert _rows(small.aggregate(s, _request(2))) == _rows(cold.aggregate(s, _request(2)))
        st = small._hot.stats()
        assert st["tables"] <= 2 and st["bytes"] <= small._hot.budget_bytes
    # a file above budget / 8 is never loaded
    tiny = DuckDBEngine(hot_tables=f"{os.path.getsize(sources[0].path) * 8 - 8}B")
    tiny.aggregate(sources[0], _request(0))
    tiny.aggregate(sources[0], _request(0))
    assert tiny._hot.stats()["tables"] == 0
    assert one.budget_bytes == 512 * 2**20


def test_no_table_is_dropped_under_a_running_query(tmp_path: Path) -> None:
    """Eight threads on five sources with room for one table: every query answers right."""
    sources = [_write(tmp_path / f"t{i}.parquet", 3000, shift=i) for i in range(5)]
    cold = DuckDBEngine(hot_tables="0")
    want = [_rows(cold.aggregate(s, _request(3))) for s in sources]
    eng = DuckDBEngine()
    eng.aggregate(sources[0], _request(0))
    eng.aggregate(sources[0], _request(0))
    eng = DuckDBEngine(hot_tables=f"{eng._hot.stats()['bytes'] + 1}B")
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(40):
                j = (i + k) % len(sources)
                assert _rows(eng.aggregate(sources[j], _request(3))) == want[j]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert eng._hot.stats()["tables"] <= 1
    # every table not in the cache was dropped once its last query ended
    names = {r[0] for r in eng._con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '__pets_hot_%'").fetchall()}
    assert len(names) == eng._hot.stats()["tables"]


def test_engine_toml_hot_tables(tmp_path: Path) -> None:
    (tmp_path / "engine.toml").write_text('[duckdb]\nhot_tables = "64MB"\n')
    assert engine_for_home(tmp_path)._hot.budget_bytes == 64 * 10**6
    (tmp_path / "engine.toml").write_text('[duckdb]\nhot_tables = "lots"\n')
    with pytest.raises(QueryError, match=r"engine.toml: hot_tables must be a size such as '512MB'"):
        engine_for_home(tmp_path)
    with pytest.raises(QueryError, match=r"^hot_tables must be a size"):
        DuckDBEngine(hot_tables="lots")


def test_release_through_a_holder_uses_the_hot_table(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data(), pets.example_policy(), copy=True)
    h.grant("a", dataset="adult", purpose="p", epsilon=10)
    s = h.session("a", purpose="p")
    r = s.release(pets.Query("adult").group_by("sex").agg(n=pets.count()), pets.DP(epsilon=1.0))
    assert list(r.df["sex"]) == ["Female", "Male"]
    assert h._engine._hot.stats()["tables"] == 0  # the registration's reads kept nothing
    s.release(pets.Query("adult").group_by("sex").agg(n=pets.count()), pets.DP(epsilon=0.5))
    assert h._engine._hot.stats()["tables"] == 1
    assert [k[0].path for k in h._engine._hot._tables] == [h._dataset("adult").source.path]


def test_a_parquet_file_over_a_mebibyte_is_read_from_the_file_and_a_csv_is_loaded(tmp_path: Path) -> None:
    """DuckDB scans a larger Parquet file faster than its in-memory table; a CSV file is
    parsed at every read, so it is loaded whatever its size within the budget."""
    from pets.engines.hot import PARQUET_MAX_BYTES

    con = duckdb.connect()
    con.execute(f"COPY (SELECT (i % 3)::VARCHAR AS g, hash(i) % 7 AS x, hash(i * 7) AS noise "
                f"FROM range(200000) t(i)) TO '{tmp_path / 'big.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT * FROM read_parquet('{tmp_path / 'big.parquet'}')) TO '{tmp_path / 'big.csv'}' (HEADER)")
    con.close()
    assert os.path.getsize(tmp_path / "big.parquet") > PARQUET_MAX_BYTES
    eng = DuckDBEngine()
    parquet = Source("parquet", str(tmp_path / "big.parquet"), trim=False)
    csv = Source("csv", str(tmp_path / "big.csv"), trim=False)
    for _ in range(3):
        eng.aggregate(parquet, _request(0))
    assert eng._hot.stats()["tables"] == 0
    want = _rows(eng.aggregate(csv, _request(2)))
    for _ in range(2):
        assert _rows(eng.aggregate(csv, _request(2))) == want
    assert eng._hot.stats()["tables"] == 1
