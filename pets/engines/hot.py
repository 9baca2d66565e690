"""Small sources kept in DuckDB's memory between releases ("hot" tables).

A release on a file reads it again each time: for a table of tens of thousands of rows
that read costs more than the aggregate itself (a 30,000-row Parquet file: about 2.5 ms
a query read from the file, 1.9 ms from memory). The engine therefore loads a source
whose file is at most ``max_file_bytes`` into an in-memory table on its second release
(a one-off read costs no copy) and runs later releases on that table, up to ``budget_bytes`` of tables (DuckDB's own
estimate of their size), least recently used dropped first. A Parquet file is loaded only
up to ``PARQUET_MAX_BYTES`` (1 MiB): beyond that DuckDB's Parquet scan is faster than its
in-memory table; a CSV file up to the budget's eighth.

Nothing observable changes but time: the table holds exactly the rows DuckDB reads from
the file (the same reader, the same type inference, the rows in the file's order), it
lives in the engine's own in-memory database inside the holder's process, and it is
keyed by the source *and* the file's size and modification time, so a changed file is
read afresh (the holder refuses a changed source before any release anyway).

A table in use by a running query is never dropped: each use is counted from the
moment its name is put into a query until that query's result is fetched.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from .base import Source

__all__ = ["HotTables", "DEFAULT_BUDGET_BYTES", "reads_once"]

_COLD: contextvars.ContextVar[bool] = contextvars.ContextVar("pets_engine_cold", default=False)
_F = TypeVar("_F", bound=Callable[..., Any])


def reads_once(fn: _F) -> _F:
    """Decorate work that reads sources once (a registration's checks and copy): its
    reads come from the files and load nothing into memory."""
    @functools.wraps(fn)
    def cold(*args: Any, **kwargs: Any) -> Any:
        token = _COLD.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _COLD.reset(token)

    return cold  # type: ignore[return-value]

#: Default memory for hot tables (DuckDB's estimate of their in-memory size).
DEFAULT_BUDGET_BYTES = 512 * 2**20
#: A source file larger than this is always read from the file.
_FILE_FRACTION = 8  # a file may use at most 1/8 of the budget
#: A Parquet file larger than this is always read from the file: DuckDB's scan of a
#: Parquet file (dictionary-encoded strings) beats its own uncompressed in-memory table
#: from about 10^5 rows on (measured, group-by of 50 string keys: 30,000 rows 1.77 ms
#: from the file, 1.60 ms hot; 100,000 rows 1.89 / 2.72 ms; 10^6 rows 6.7 / 11.9 ms).
#: CSV files gain at every size (10^6 rows: 70 ms parsed, 10 ms hot).
PARQUET_MAX_BYTES = 1 << 20


class HotTables:
    """LRU cache of in-memory copies of small sources, for one DuckDB connection."""

    def __init__(self, con: Any, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._con = con
        self.budget_bytes = int(budget_bytes)
        self.max_file_bytes = self.budget_bytes // _FILE_FRACTION
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        # key -> [table name, estimated bytes, uses in flight, dropped when unused]
        self._tables: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self._retired: dict[str, list[Any]] = {}  # out of the cache, still in use
        self._seen: dict[tuple[Any, ...], None] = {}  # read once from the file so far
        self._serial = 0
        self._held = threading.local()

    @staticmethod
    def _key(source: Source) -> tuple[Any, ...] | None:
        try:
            st = os.stat(source.path)
        except OSError:
            return None
        return (source, st.st_size, st.st_mtime_ns)

    def scan(self, source: Source, file_scan: Callable[[Source], str]) -> str:
        """The FROM item for ``source``: a hot table's name (counted as in use by this
        thread until :meth:`release_held`), or ``file_scan(source)``."""
        if self.budget_bytes <= 0 or source.kind not in ("csv", "parquet") or _COLD.get():
            return file_scan(source)
        key = self._key(source)
        if key is None or key[1] > (self.max_file_bytes if source.kind == "csv"
                                    else min(self.max_file_bytes, PARQUET_MAX_BYTES)):
            return file_scan(source)
        with self._lock:
            entry = self._tables.get(key)
            if entry is not None and not entry[3]:
                self._tables.move_to_end(key)
                return self._hold(entry)
            if key not in self._seen:  # loaded on its second read: a source read once
                self._seen[key] = None  # (a one-off release) costs no copy into memory
                while len(self._seen) > 4096:
                    self._seen.pop(next(iter(self._seen)))
                return file_scan(source)
        entry = self._load(key, source, file_scan)
        if entry is None:
            return file_scan(source)
        with self._lock:
            return self._hold(entry)

    def _hold(self, entry: list[Any]) -> str:
        entry[2] += 1
        held = getattr(self._held, "names", None)
        if held is None:
            held = self._held.names = []
        held.append(entry[0])
        return _quote(entry[0])

    def _load(self, key: tuple[Any, ...], source: Source, file_scan: Callable[[Source], str]) -> list[Any] | None:
        with self._load_lock:  # one load at a time; a second thread finds it loaded
            with self._lock:
                entry = self._tables.get(key)
                if entry is not None and not entry[3]:
                    return entry
                self._serial += 1
                name = f"__pets_hot_{self._serial}"
            cur = self._con.cursor()
            try:
                cur.execute(f"CREATE TABLE {_quote(name)} AS SELECT * FROM {file_scan(source)}")
                row = cur.execute(
                    "SELECT estimated_size FROM duckdb_tables() WHERE table_name = ?", [name]
                ).fetchone()
                size = int(row[0]) if row and row[0] is not None else key[1]
            except Exception:  # unreadable now: the release reads the file and says why
                try:
                    cur.execute(f"DROP TABLE IF EXISTS {_quote(name)}")
                except Exception:
                    pass
                return None
            finally:
                cur.close()
            with self._lock:
                entry = [name, size, 0, False]
                self._tables[key] = entry
                # older versions of the same file (re-registered, rewritten), then the
                # least recently used
                victims = [k for k in self._tables if k[0].path == source.path and k != key]
                total = sum(e[1] for e in self._tables.values())
                for k in list(self._tables):
                    if total <= self.budget_bytes:
                        break
                    if k != key and k not in victims:
                        victims.append(k)
                        total -= self._tables[k][1]
                drop = [self._retire(k) for k in victims]
            self._drop([n for n in drop if n])
            if size > self.budget_bytes:  # larger in memory than the whole budget
                with self._lock:
                    n = self._retire(key)
                self._drop([n] if n else [])
                return None
            return entry

    def _retire(self, key: tuple[Any, ...]) -> str | None:
        """Take ``key`` out of the cache (lock held); its table's name if it can be
        dropped now, else ``None`` (dropped when its last use ends)."""
        entry = self._tables.pop(key, None)
        if entry is None:
            return None
        entry[3] = True
        if entry[2] == 0:
            return entry[0]
        self._retired[entry[0]] = entry
        return None

    def release_held(self) -> None:
        """End this thread's uses of hot tables (after its query's result is fetched)."""
        held = getattr(self._held, "names", None)
        if not held:
            return
        self._held.names = []
        drop = []
        with self._lock:
            live = {e[0]: e for e in self._tables.values()}
            for name in held:
                entry = live.get(name) or self._retired.get(name)
                if entry is None:  # pragma: no cover - every held name is live or retired
                    continue
                entry[2] -= 1
                if entry[3] and entry[2] == 0:
                    self._retired.pop(name, None)
                    drop.append(name)
        self._drop(drop)

    def forget(self, source: Source) -> None:
        """Drop every hot table of ``source``'s file (re-registered, removed)."""
        with self._lock:
            drop = [self._retire(k) for k in [k for k in self._tables if k[0].path == source.path]]
        self._drop([n for n in drop if n])

    def _drop(self, names: list[str]) -> None:
        for name in names:
            cur = self._con.cursor()
            try:
                cur.execute(f"DROP TABLE IF EXISTS {_quote(name)}")
            except Exception:  # pragma: no cover - an in-memory drop does not fail
                pass
            finally:
                cur.close()

    def stats(self) -> dict[str, int]:
        """How many tables are hot and DuckDB's estimate of their bytes."""
        with self._lock:
            return {"tables": len(self._tables), "bytes": sum(e[1] for e in self._tables.values())}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
