"""A writers' lock shared by the threads and processes of one machine.

SQLite lets one writer at a time into a database; the others wait in its busy handler,
which *sleeps* (1, 2, 5, 10 … ms) and retries. Under a server's load — several worker
threads, or ``pets serve --processes N`` — writers meet often, and each meeting costs a
sleep far longer than the write. Taking this lock before ``BEGIN IMMEDIATE`` makes writers
queue in the kernel instead: the next one starts the moment the last one commits.

The lock is a ``threading.Lock`` (threads of this process) and an ``fcntl.flock`` on a
file beside the database (other processes); one lock file per database path, one open
file per process (an ``flock`` belongs to the open file, so a forked child reopens it).
Where ``fcntl`` is missing (Windows) only the thread lock is taken and SQLite's own
waiting covers other processes. The lock carries no state: a process that dies holding
it releases it with its file descriptors.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock"]

_registry: dict[str, "WriterLock"] = {}
_registry_lock = threading.Lock()


class WriterLock:
    """``with WriterLock.of(path).held(): ...`` — the one writer of ``path`` (a database
    file) among this machine's threads and processes."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._thread = threading.RLock()
        self._depth = 0  # guarded by _thread
        self._fd: int | None = None
        self._pid: int | None = None

    @classmethod
    def of(cls, db_path: str | os.PathLike[str]) -> "WriterLock":
        """The lock of the database at ``db_path`` (one object per path in a process)."""
        key = os.path.abspath(os.fspath(db_path))
        with _registry_lock:
            lock = _registry.get(key)
            if lock is None:
                lock = _registry[key] = cls(Path(key + "-lock"))
            return lock

    def _file(self) -> int | None:
        if self._pid != os.getpid():
            # a forked child shares its parent's open file (and so its flock): reopen
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only home: SQLite refuses the write itself
                self._fd = None
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread:
            fd = self._file() if fcntl is not None and self._depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
