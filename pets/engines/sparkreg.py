"""Registering a dataset whose releases run on Spark (``holder.register(..., engine="spark")``).

The source is read in place: a Parquet file, a folder of Parquet files (as Spark writes
them), a CSV file, or a table of the Spark session's catalog. As for a file registered
with DuckDB, pets pins what it registered and refuses to answer once it changes: a
file by its SHA-256, a folder or a table by the list of its data files with their sizes
and modification times (a rewrite or an append changes them). A table or view that is
not backed by files (an in-memory view) cannot be pinned and is refused.

The session comes from the holder (``pets.Holder(home, spark=SparkEngine(...))``) or,
on first use, from ``home/spark.toml``::

    master = "spark://head:7077"        # default "local[2]"
    [conf]
    "spark.executor.memory" = "8g"
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import tomllib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

from ..errors import DataError, PolicyFormatError, QueryError
from .base import Source

if TYPE_CHECKING:
    from ..holder import Holder
    from .spark import SparkEngine

__all__ = ["register_spark", "engine_from_home", "folder_fingerprint", "table_fingerprint",
           "CONFIG_FILE"]

#: The file of the home that configures the holder's Spark session.
CONFIG_FILE = "spark.toml"


def engine_from_home(home: Path) -> "SparkEngine":
    """A SparkEngine with the master and options of ``home/spark.toml`` (if there)."""
    from .spark import SparkEngine

    path = Path(home) / CONFIG_FILE
    if not path.exists():
        return SparkEngine()
    try:
        cfg = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PolicyFormatError(f"cannot read {path}: {e}") from None
    unknown = set(cfg) - {"master", "conf"}
    if unknown:
        raise PolicyFormatError(
            f"{path}: unknown key {sorted(unknown)[0]!r}; use master = \"...\" and a [conf] table"
        )
    master = cfg.get("master")
    conf = cfg.get("conf", {})
    if master is not None and not isinstance(master, str):
        raise PolicyFormatError(f"{path}: master must be a string such as \"local[2]\"")
    if not isinstance(conf, dict) or any(isinstance(v, (dict, list)) for v in conf.values()):
        raise PolicyFormatError(f"{path}: [conf] must map Spark option names to values")
    return SparkEngine(master=master, config={str(k): str(v) for k, v in conf.items()})


def _digest(entries: list[tuple[str, int, int]]) -> tuple[str, int, int]:
    h = hashlib.sha256()
    for name, size, mtime in sorted(entries):
        h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return (h.hexdigest(), sum(e[1] for e in entries), max((e[2] for e in entries), default=0))


def folder_fingerprint(path: Path) -> tuple[str, int, int]:
    """(digest, total size, latest mtime_ns) of the data files under a folder: their
    relative names, sizes and modification times (Spark's hidden ``_*`` and ``.*`` files
    left out)."""
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for f in files:
            if f.startswith((".", "_")):
                continue
            p = Path(root) / f
            st = p.stat()
            entries.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns))
    return _digest(entries)


def table_fingerprint(engine: "SparkEngine", name: str) -> tuple[str, int, int]:
    """The fingerprint of a catalog table from the files Spark reads for it (sizes and
    times where the files are local; their names elsewhere)."""
    from .spark import _spark_errors

    try:
        files = engine.session.table(name).inputFiles()
    except _spark_errors():
        raise DataError(
            f"the Spark table {name!r} of a registered dataset cannot be read; re-register "
            "it with holder.register(..., replace=True)"
        ) from None
    if not files:
        raise DataError(
            f"the Spark table {name!r} is not backed by files (an in-memory view?): pets pins "
            "what it registers and cannot pin it; save it as a table or as Parquet first"
        )
    entries = []
    for uri in files:
        u = urlparse(uri)
        size = mtime = 0
        if u.scheme in ("", "file"):
            try:
                st = Path(unquote(u.path)).stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                pass
        entries.append((uri, size, mtime))
    return _digest(entries)


def register_spark(holder: "Holder", name: str, source: Any, policy: Any, *, replace: bool,
                   copy: bool) -> int:
    """Check and store the registration of ``source`` with the Spark engine; return its
    number of rows. Nothing is stored if anything is wrong."""
    from .. import holder as H
    from ..policy import Policy
    from .spark import INSTALL_HINT

    H._check_name(name, "dataset name")
    if isinstance(source, pd.DataFrame):
        raise QueryError(
            "engine='spark' takes a Parquet path, a folder of Parquet files or a Spark table "
            "name; register a pandas DataFrame with the default engine"
        )
    if not isinstance(source, (str, os.PathLike)):
        raise QueryError(
            "source must be a Parquet/CSV path or a Spark table name with engine='spark', "
            f"got {type(source).__name__}"
        )
    if not replace and holder._store.get_dataset(name) is not None:
        raise QueryError(f"dataset {name!r} is already registered; pass replace=True to replace it")
    pol = Policy.load(policy)
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise DataError(f"engine='spark' needs pyspark and Java 17+: {INSTALL_HINT}") from None
    engine = holder._spark_engine()
    path = Path(source).expanduser()
    low = path.name.lower()
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            kind = "parquet"
            if not any(p.suffix.lower() in (".parquet", ".pq") for p in path.rglob("*")
                       if not p.name.startswith((".", "_"))):
                raise DataError(
                    f"the folder {str(source)!r} holds no .parquet files; give a Parquet file, "
                    "a folder of them or a Spark table name"
                )
            fp = folder_fingerprint(path)
        else:
            if low.endswith(H._CSV):
                kind = "csv"
            elif low.endswith(H._PARQUET):
                kind = "parquet"
            else:
                raise DataError(
                    f"cannot tell the format of {path.name!r}: use a .csv or .parquet file, a "
                    "folder of Parquet files or a Spark table name"
                )
            st = path.stat()
            fp = (H._sha256(path), st.st_size, st.st_mtime_ns)
        where = str(path)
    elif isinstance(source, str) and engine.table_exists(source):
        kind, where = "table", source
        fp = table_fingerprint(engine, source)
    else:
        raise DataError(
            f"source {str(source)!r} is neither a file, a folder nor a table of the Spark "
            "session's catalog"
        )
    src = Source(kind, where, tuple(pol.missing), trim=kind == "csv")
    engine.forget(src)
    H._check_columns(engine.column_names(src), f"the source {str(source)!r}")
    schema = engine.schema(src)
    H._check_policy_against(pol, schema)
    schema = {c: (pol.columns[c].type if c in pol.columns and pol.columns[c].type else t)
              for c, t in schema.items()}
    n_rows = H._count_rows(engine, src)
    H._check_rows(pol, n_rows)
    H._check_hierarchies(pol, lambda c: engine.fetch(src, (c,), ())[c])
    stored: dict[str, Any] = {"kind": kind, "path": where, "missing": list(pol.missing),
                              "trim": kind == "csv", "encoded": []}
    old_copy = None
    if copy:
        # Spark writes a Parquet copy into the home, with the bounded columns pre-encoded
        # and the per-person ordinals (pets.engines.sparkcopy); it is what releases read
        data_dir = holder.home / "data"
        data_dir.mkdir(exist_ok=True)
        dest = data_dir / f"{name}.{uuid.uuid4().hex[:12]}.spark"
        try:
            copied = engine.materialize(src, str(dest), tuple(pol.missing), H._encode_wanted(pol, schema),
                                        ordinals=H._ordinals_wanted(pol, schema))
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        stored = {"kind": "parquet", "path": str(dest), "missing": [], "trim": False,
                  "encoded": [list(e) for e in copied.encoded],
                  "ordinals": [H._ordinals_record(o) for o in copied.ordinals]}
        fp = folder_fingerprint(dest)
        prev = holder._store.get_dataset(name) if replace else None
        if prev is not None and prev.get("engine") == "spark":
            p = Path(prev["source"]["path"])
            if p.parent == data_dir and p.name.endswith(".spark"):
                old_copy = p
    record = {
        "name": name,
        "origin": {"kind": "spark-table" if kind == "table" else "path", "path": where},
        "engine": "spark",
        "source": stored,
        "sha256": fp[0],
        "size": fp[1],
        "mtime_ns": fp[2],
        "policy": pol.to_dict(),
        "schema": schema,
        "registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "registration": uuid.uuid4().hex,
    }
    try:
        holder._store.put_dataset(name, record, replace=replace)
    except BaseException:
        if copy:
            shutil.rmtree(stored["path"], ignore_errors=True)
        raise
    if old_copy is not None and old_copy != Path(stored["path"]):
        shutil.rmtree(old_copy, ignore_errors=True)  # the replaced registration's copy
    return n_rows
