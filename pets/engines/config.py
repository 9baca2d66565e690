"""The DuckDB engine a :class:`pets.Holder` builds for its home.

A home may hold ``engine.toml`` to size the engine for the machine::

    [duckdb]
    memory_limit = "4GB"              # DuckDB's memory cap; beyond it, spill to disk
    threads = 2                       # default: DuckDB's (the cores)
    temp_directory = "spill"          # relative to the home (the default) or absolute
    max_temp_directory_size = "100GB" # cap on the spill (default DuckDB's: 90% of free disk)
    hot_tables = "512MB"              # small sources kept in memory between releases; "0" = never

Without the file, DuckDB's defaults apply (memory: 80% of RAM, every core) and spilled
data goes to ``<home>/spill``, inside the holder's domain, never a system temp folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import QueryError
from .duckdb import DuckDBEngine

__all__ = ["ENGINE_CONFIG", "SPILL_DIR", "engine_for_home"]

#: The file in a holder's home that configures its engine.
ENGINE_CONFIG = "engine.toml"
#: Where DuckDB spills by default, relative to the home.
SPILL_DIR = "spill"
_KEYS = {"memory_limit", "threads", "temp_directory", "max_temp_directory_size", "hot_tables"}


def engine_for_home(home: Path) -> DuckDBEngine:
    """A DuckDB engine configured by ``home/engine.toml`` (if any), spilling inside
    ``home``. A malformed file is refused with what to change."""
    path = home / ENGINE_CONFIG
    conf: dict[str, Any] = {}
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise QueryError(f"{path} is not valid TOML ({e}); fix or remove it") from None
        extra = set(doc) - {"duckdb"}
        if extra:
            raise QueryError(f"{path}: unknown section [{sorted(extra)[0]}]; only [duckdb] is read")
        conf = doc.get("duckdb", {})
        if not isinstance(conf, dict):
            raise QueryError(f"{path}: duckdb must be a table ([duckdb])")
        unknown = set(conf) - _KEYS
        if unknown:
            raise QueryError(
                f"{path}: unknown key {sorted(unknown)[0]!r} in [duckdb]; known: {', '.join(sorted(_KEYS))}"
            )
    temp = conf.get("temp_directory", SPILL_DIR)
    if not isinstance(temp, str) or not temp:
        raise QueryError(f"{path}: temp_directory must be a folder path")
    spill = Path(temp).expanduser()
    if not spill.is_absolute():
        spill = home / spill
    try:
        return DuckDBEngine(conf.get("threads"), memory_limit=conf.get("memory_limit"),
                            temp_directory=str(spill),
                            max_temp_directory_size=conf.get("max_temp_directory_size"),
                            hot_tables=conf.get("hot_tables"))
    except Exception as e:  # a QueryError naming the Python argument: say the file's key
        raise QueryError(f"{path}: {e}") from None
