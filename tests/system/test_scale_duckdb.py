"""DuckDB larger than its memory: the engine's memory_limit / temp_directory, set by the
home's engine.toml, spilling inside the home; releases over data larger than the limit
give the exact answer; a query that needs more than the limit and the allowed spill
fails with what to change, and registers nothing."""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import pytest

import pets
from pets.engines.duckdb import DuckDBEngine

REGIONS = [f"r{i:02d}" for i in range(50)]
HUGE = 1e7  # ε: noise far below 0.5 on counts (scale 1e-7): counts round to the exact value


def _generate(path: Path, rows: int) -> None:
    """Rows of (person_id, region, income), about 5 rows per person, written by DuckDB."""
    con = duckdb.connect()
    con.execute(f"""
        COPY (SELECT (hash(i, 11) % {max(1, rows // 5)})::BIGINT AS person_id,
                     'r' || lpad((hash(i, 22) % 50)::VARCHAR, 2, '0') AS region,
                     (hash(i, 33) % 1000)::INTEGER AS income
              FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)""")
    con.close()


def _policy(unit: bool) -> dict:
    p: dict = {
        "columns": {
            "region": {"role": "attribute", "grade": 1, "keys": REGIONS},
            "income": {"role": "attribute", "grade": 1, "bounds": [0, 1000]},
            "person_id": {"role": "identifier", "grade": 1},
        },
        "grades": {"1": {"allow": ["dp"]}},
    }
    if unit:  # bounds above anyone's rows: the bounding keeps every row (the exact answer)
        p["dataset"] = {"privacy_unit": "person_id", "max_groups": 50, "max_rows_per_group": 1000}
    return p


def _exact(path: Path) -> dict[str, int]:
    rows = duckdb.connect().execute(
        f"SELECT region, count(*) FROM read_parquet('{path}') GROUP BY region").fetchall()
    return {r: int(n) for r, n in rows}


def _home(tmp: Path, **conf: str) -> Path:
    home = tmp / "home"
    home.mkdir()
    if conf:
        body = "".join(f'{k} = "{v}"\n' for k, v in conf.items())
        (home / "engine.toml").write_text(f"[duckdb]\n{body}")
    return home


def _setting(h: pets.Holder, name: str) -> str:
    return str(h._engine._con.execute(f"SELECT current_setting('{name}')").fetchone()[0])  # type: ignore[attr-defined]


# ------------------------------------------------------------------ configuration


def test_a_holder_spills_inside_its_home_by_default(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    assert _setting(h, "temp_directory") == str(h.home / "spill")


def test_engine_toml_sets_the_memory_limit_threads_and_spill_folder(tmp_path: Path) -> None:
    home = _home(tmp_path, memory_limit="300MB", temp_directory="scratch", max_temp_directory_size="2GB")
    (home / "engine.toml").write_text((home / "engine.toml").read_text() + "threads = 1\n")
    h = pets.Holder(home)
    assert _setting(h, "memory_limit") in ("286.1 MiB", "300.0 MB")  # DuckDB's own rendering
    assert _setting(h, "threads") == "1"
    assert _setting(h, "temp_directory") == str(h.home / "scratch")
    assert h._engine.memory_limit == "300MB"  # type: ignore[attr-defined]


@pytest.mark.parametrize("text, message", [
    ("[duckdb]\nmemory_limit = 'lots'\n", "memory_limit must be a size such as '512MB'"),
    ("[duckdb]\nmemory = '1GB'\n", "unknown key 'memory' in \\[duckdb\\]"),
    ("[spark]\nmaster = 'local'\n", "unknown section \\[spark\\]"),
    ("[duckdb\n", "is not valid TOML"),
    ("[duckdb]\nthreads = 0\n", "threads must be a positive integer"),
    ("[duckdb]\ntemp_directory = ''\n", "temp_directory must be a folder path"),
])
def test_a_bad_engine_toml_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "engine.toml").write_text(text)
    with pytest.raises(pets.QueryError, match=message) as e:
        pets.Holder(home)
    assert "engine.toml" in str(e.value)


def test_bad_engine_arguments_are_refused_in_python_terms() -> None:
    with pytest.raises(pets.QueryError, match="memory_limit must be a size such as '512MB' or '4GB', not 5"):
        DuckDBEngine(memory_limit=5)  # type: ignore[arg-type]
    with pytest.raises(pets.QueryError, match="max_temp_directory_size must be a size"):
        DuckDBEngine(max_temp_directory_size="a lot")
    with pytest.raises(pets.QueryError, match="threads must be a positive integer, not True"):
        DuckDBEngine(True)  # type: ignore[arg-type]


# ------------------------------------------------------------------ larger than memory


@pytest.mark.slow
def test_a_release_over_a_file_larger_than_the_memory_limit_is_exact(tmp_path: Path) -> None:
    """A 20M-row file (≈ 400 MB as DuckDB holds its columns, larger than the 50 MB
    limit), read in place: the DP counts by region at a huge ε equal the exact ones."""
    path = tmp_path / "big.parquet"
    _generate(path, 20_000_000)
    h = pets.Holder(_home(tmp_path, memory_limit="50MB"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.register("big", path, _policy(unit=False))
    h.grant("ann", dataset="big", purpose="p", epsilon=1e9)
    s = h.session("ann", purpose="p")
    r = s.release(s.table("big").group_by("region").agg(n=pets.count()), pets.DP(epsilon=HUGE))
    got = {k: int(round(v)) for k, v in zip(r.df["region"], r.df["n"])}
    assert got == _exact(path)
    assert sum(got.values()) == 20_000_000


@pytest.mark.slow
def test_bounding_ordinals_beyond_the_memory_limit_spill_into_the_home(tmp_path: Path) -> None:
    """Registering 2M rows in place with a privacy unit sorts every person's rows (the
    ordinals sidecar): more than a 100 MB limit holds. With spilling forbidden it fails
    with what to change and registers nothing; with spilling (into the home) it
    completes and the bounded release is exact where the bound does not bind."""
    path = tmp_path / "people.parquet"
    _generate(path, 2_000_000)
    home = _home(tmp_path, memory_limit="100MB", max_temp_directory_size="0KB")
    h = pets.Holder(home)
    with pytest.raises(pets.DataError, match="ran out of memory storing the bounding ordinals .*"
                                             "raise memory_limit or max_temp_directory_size"):
        h.register("p", path, _policy(unit=True))
    assert h.datasets() == [] and not any((home / "data" / "ordinals").glob("*.parquet"))
    (home / "engine.toml").write_text('[duckdb]\nmemory_limit = "100MB"\n')
    h = pets.Holder(home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.register("p", path, _policy(unit=True))
    assert (home / "spill").is_dir()  # DuckDB spilled there, inside the home
    assert h._dataset("p").source.sidecar
    h.grant("ann", dataset="p", purpose="p", epsilon=1e9)
    s = h.session("ann", purpose="p")
    r = s.release(s.table("p").group_by("region").agg(n=pets.count()), pets.DP(epsilon=HUGE))
    assert {k: int(round(v)) for k, v in zip(r.df["region"], r.df["n"])} == _exact(path)
