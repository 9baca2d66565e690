"""A spinner with the elapsed time for long operations (rich, on stderr), for the
``progress=`` option of :meth:`pets.Holder.register` and
:meth:`pets.FederatedSession.release`. Shows nothing when stderr is not a terminal."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

__all__ = ["spinner"]


@contextmanager
def spinner(label: str, enabled: bool = True) -> Iterator[None]:
    """Show ``label`` with a spinner and the elapsed time while the block runs."""
    if enabled is not True and enabled is not False:
        from .errors import QueryError

        raise QueryError(f"progress must be True or False, not {enabled!r}")
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
