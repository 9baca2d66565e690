"""Progress on long operations (rich, on stderr), for the ``progress=`` option of
:meth:`pets.Holder.register`, :meth:`pets.Session.release` and
:meth:`pets.FederatedSession.release`, and for the CLI. Shows nothing when stderr is
not a terminal.

Two pieces:

* :func:`spinner` — a spinner with the elapsed time;
* :func:`bar` — the same, turning into a bar with a percentage once the engine reports
  how far its scan has got: inside the block, the DuckDB engine polls DuckDB's own
  estimate of the running query's progress (``query_progress()``) from a thread and
  sends it to the active *sink*.

A sink receives one number only — the fraction of the current query's work done, in
[0, 1] — never a value, a row or a column name of the data. :func:`reporting` installs
any callable as the sink (a test or a GUI can record the fractions):

>>> import pets, tempfile
>>> from pets.progress import reporting
>>> seen = []
>>> holder = pets.Holder(tempfile.mkdtemp())
>>> with reporting(seen.append):
...     _ = holder.register("adult", pets.example_data(), pets.example_policy())
>>> all(0.0 <= f <= 1.0 for f in seen)
True
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

__all__ = ["spinner", "bar", "reporting", "current_sink"]

Sink = Callable[[float], None]

_SINK: ContextVar[Sink | None] = ContextVar("pets_progress_sink", default=None)


def current_sink() -> Sink | None:
    """The progress sink active in this thread (or None): engines report to it."""
    return _SINK.get()


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Send the engine's progress fractions (floats in [0, 1]) to ``sink`` while the
    block runs, in this thread. Nested blocks replace the outer sink for their span."""
    if not callable(sink):
        from .errors import QueryError

        raise QueryError(f"a progress sink must be callable, not {type(sink).__name__}")
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def _check(enabled: object) -> None:
    if enabled is not True and enabled is not False:
        from .errors import QueryError

        raise QueryError(f"progress must be True or False, not {enabled!r}")


@contextmanager
def spinner(label: str, enabled: bool = True) -> Iterator[None]:
    """Show ``label`` with a spinner and the elapsed time while the block runs."""
    _check(enabled)
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as p:
        p.add_task(label, total=None)
        yield


@contextmanager
def bar(label: str, enabled: bool = True, console: object | None = None) -> Iterator[None]:
    """Show ``label`` with a progress bar fed by the engine's scans (a spinner until the
    first report) and the elapsed time, on a terminal only. ``console`` is a rich
    Console to draw on (default: stderr)."""
    _check(enabled)
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn)

    c = console if isinstance(console, Console) else Console(stderr=True)
    if not c.is_terminal:
        yield
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TaskProgressColumn(), TimeElapsedColumn(), console=c, transient=True) as p:
        task = p.add_task(label, total=None)

        def sink(fraction: float) -> None:
            p.update(task, total=1.0, completed=max(0.0, min(1.0, float(fraction))))

        with reporting(sink):
            yield
