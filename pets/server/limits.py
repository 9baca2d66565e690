"""Per-key rate and concurrency limits of a server: in memory for one process, in a small
SQLite file beside the store when ``pets serve --processes N`` runs several.

Both keep, per key id (or per client address for failed authentications):

* a **token bucket** — ``take(who)`` gives 0 (a token was taken) or the seconds until the
  next token, so the caller can answer 429 with ``Retry-After``;
* **requests in flight** — ``acquire(who)`` is False at the limit; ``release(who)`` ends
  one.

The shared form keeps the same state in ``<home>/server-limits.db`` (WAL, no fsync:
it is reset at every server start and holds no privacy state — the budget is in the
store). A request in flight is a row of (key, process id); a process that dies holding
slots (SIGKILL) has them freed when any process next starts, and when a key finds
itself at its limit, the slots of processes no longer alive are dropped first.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..store.locks import WriterLock

__all__ = ["Buckets", "Slots", "SharedLimits", "LIMITS_FILE"]

#: the shared limits' file, in the home
LIMITS_FILE = "server-limits.db"


class Buckets:
    """Token buckets by key id, in this process: ``take`` gives 0 or the seconds to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[who] = (tokens - 1.0, now)
                return 0.0
            self._state[who] = (tokens, now)
            if len(self._state) > 100_000:  # forget idle keys/addresses
                self._state = {k: v for k, v in self._state.items() if now - v[1] < 60}
            return (1.0 - tokens) / self.rate


class Slots:
    """Requests in flight per key, in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._n: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, who: str) -> bool:
        with self._lock:
            n = self._n.get(who, 0)
            if n >= self.limit:
                return False
            self._n[who] = n + 1
            return True

    def release(self, who: str) -> None:
        with self._lock:
            n = self._n.get(who, 1) - 1
            if n <= 0:
                self._n.pop(who, None)
            else:
                self._n[who] = n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process: it exists
        return True
    return True


class SharedLimits:
    """Token buckets and in-flight slots shared by the processes of one server, in
    ``<home>/server-limits.db``. One object serves as both a ``Buckets`` (``take``) and
    a ``Slots`` (``acquire``/``release``) for the limits given."""

    def __init__(self, home: str | os.PathLike[str], rate: float, burst: int,
                 limit: int) -> None:
        self.path = Path(home) / LIMITS_FILE
        self.rate, self.burst, self.limit = float(rate), float(burst), int(limit)
        self._local = threading.local()
        self._writer = WriterLock.of(self.path)
        with self._tx() as con:
            con.execute("CREATE TABLE IF NOT EXISTS buckets "
                        "(who TEXT PRIMARY KEY, tokens REAL NOT NULL, last REAL NOT NULL)")
            con.execute("CREATE TABLE IF NOT EXISTS inflight (who TEXT NOT NULL, "
                        "pid INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (who, pid))")
            pids = [p for (p,) in con.execute("SELECT DISTINCT pid FROM inflight")]
            for p in pids:
                if p != os.getpid() and not _alive(p):
                    con.execute("DELETE FROM inflight WHERE pid = ?", (p,))

    @staticmethod
    def reset(home: str | os.PathLike[str]) -> None:
        """Forget all state (the server is starting: nothing is in flight)."""
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(Path(home) / (LIMITS_FILE + suffix))
            except FileNotFoundError:
                pass

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = getattr(self._local, "con", None)
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = OFF")
            self._local.con, self._local.pid = con, os.getpid()
        with self._writer.held():  # queue in the kernel, not in SQLite's sleeping busy wait
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def take(self, who: str) -> float:
        now = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        with self._tx() as con:
            row = con.execute("SELECT tokens, last FROM buckets WHERE who = ?", (who,)).fetchone()
            tokens, last = row if row is not None else (self.burst, now)
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            con.execute("INSERT OR REPLACE INTO buckets (who, tokens, last) VALUES (?, ?, ?)",
                        (who, tokens, now))
            return wait

    def acquire(self, who: str) -> bool:
        pid = os.getpid()
        with self._tx() as con:
            rows = con.execute("SELECT pid, n FROM inflight WHERE who = ?", (who,)).fetchall()
            if sum(n for _, n in rows) >= self.limit:
                dead = [p for p, _ in rows if p != pid and not _alive(p)]
                for p in dead:
                    con.execute("DELETE FROM inflight WHERE pid = ?", (p,))
                if sum(n for p, n in rows if p not in dead) >= self.limit:
                    return False
            con.execute("INSERT INTO inflight (who, pid, n) VALUES (?, ?, 1) "
                        "ON CONFLICT (who, pid) DO UPDATE SET n = n + 1", (who, pid))
            return True

    def release(self, who: str) -> None:
        pid = os.getpid()
        with self._tx() as con:
            con.execute("UPDATE inflight SET n = n - 1 WHERE who = ? AND pid = ?", (who, pid))
            con.execute("DELETE FROM inflight WHERE who = ? AND pid = ? AND n <= 0", (who, pid))
