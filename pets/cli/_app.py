"""The typer app, exit codes, error reporting, the home option and terminal output.

Everything here is cheap to import (typer only): pandas, DuckDB and the rest of pets are
imported inside the commands that need them, so that ``pets --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional, TypeVar

import typer

# typer up to 0.2x runs on the click package; later typers carry their own copy of click.
# Take click's exception classes from wherever this typer's BadParameter lives, so pets
# never imports click itself (a plain install may not even have it).
_click_exceptions = sys.modules[typer.BadParameter.__module__]
UsageError = _click_exceptions.UsageError
ClickException = _click_exceptions.ClickException
_PASS_THROUGH = tuple({typer.Exit, typer.Abort, ClickException,
                       *(getattr(_click_exceptions, n) for n in ("Exit", "Abort")
                         if hasattr(_click_exceptions, n))})

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from ..holder import Holder

__all__ = [
    "EXIT_OK", "EXIT_UNEXPECTED", "EXIT_USAGE", "EXIT_REFUSED", "EXIT_BUDGET", "EXIT_INPUT",
    "EXIT_AUDIT", "EXIT_PIPE", "app", "command", "Home", "open_home", "out", "err", "step",
    "print_frame", "usage_error", "exit_code_of", "cli_message", "printable",
]

# -- exit codes (API.md: "Command line") ------------------------------------------------
EXIT_OK = 0
EXIT_UNEXPECTED = 1  # a bug or an error pets did not expect
EXIT_USAGE = 2  # the command line itself is wrong (click/typer usage errors too)
EXIT_REFUSED = 3  # refused by the policy (PolicyError, AuthError)
EXIT_BUDGET = 4  # the privacy budget would be exceeded (BudgetExceeded)
EXIT_INPUT = 5  # bad input or query: unknown column, bad SQL, missing file, no such home
EXIT_AUDIT = 6  # the audit log failed verification (AuditError)
EXIT_PIPE = 141  # stdout closed early (`pets ... | head`): quietly, as 128 + SIGPIPE

_EPILOG = ("Exit codes: 0 success, 1 unexpected error, 2 usage error, 3 refused by the "
           "policy, 4 budget exceeded, 5 bad input or query, 6 audit verification failed. "
           "PETS_HOME stands in for --home.")

app = typer.Typer(
    name="pets",
    help="Release results, never raw data: differential privacy, k-anonymous extracts and "
         "homomorphic totals behind one policy, ledger and audit log.",
    epilog=_EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def command(group: typer.Typer | None = None, name: str | None = None, **kw: Any) -> Callable[[F], F]:
    """Register a command on ``group`` (default: the top-level app), with pets' error
    handling: a :class:`pets.PetsError` becomes a one-line message on stderr in the
    CLI's terms and the exit code of its kind; a closed stdout exits quietly. The
    function returns ``None``/0 or an exit code."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                code = fn(*args, **kwargs)
            except _PASS_THROUGH:
                raise
            except BrokenPipeError:
                _quiet_stdout()
                raise typer.Exit(EXIT_PIPE) from None
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
            except Exception as e:  # noqa: BLE001 - every error becomes a message + code
                code = report(e)
            if code:
                raise typer.Exit(int(code))

        (group or app).command(name, **kw)(run)
        return fn

    return deco


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's last flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no real fd (CliRunner)
        pass


def _on_broken_pipe() -> None:
    _quiet_stdout()
    raise typer.Exit(EXIT_PIPE)


def exit_code_of(e: BaseException) -> int:
    """The exit code for an exception (see API.md)."""
    from ..errors import (AuditError, AuthError, BudgetExceeded, DataError, InternalError,
                          PetsError, PolicyError, QueryError)

    if isinstance(e, AuditError):
        return EXIT_AUDIT
    if isinstance(e, BudgetExceeded):
        return EXIT_BUDGET
    if isinstance(e, (PolicyError, AuthError)):
        return EXIT_REFUSED
    if isinstance(e, InternalError):
        return EXIT_UNEXPECTED
    if isinstance(e, (QueryError, DataError, OSError, UnicodeDecodeError)):
        return EXIT_INPUT  # PolicyFormatError is a QueryError-like ValueError: also here
    if isinstance(e, PetsError):
        return EXIT_INPUT if isinstance(e, ValueError) else EXIT_UNEXPECTED
    return EXIT_UNEXPECTED


# The library's hints name Python calls; on the command line, name the flags instead.
_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"holder\.register\(\.\.\., replace=True\)"),
     "`pets register --replace NAME SOURCE --policy POLICY`"),
    (re.compile(r"pass replace=True to replace it"), "add --replace to replace it"),
    (re.compile(r"\(holder\.grant\(\.\.\.\), or `pets grant` on the command line\)"),
     "(`pets grant --analyst A --dataset D --purpose P --epsilon E`)"),
    (re.compile(r"with holder\.grant\(\.\.\.\)"),
     "with `pets grant --analyst A --dataset D --purpose P --epsilon E`"),
    (re.compile(r"\bcopy=True\b"), "--copy"),
    (re.compile(r"name the dataset: s\.remaining\('adult'\)"), "name the dataset with --dataset"),
    (re.compile(r"ask with pets\.HE\(key_bits=(\d+), \.\.\.\)"), r"ask with --key-bits \1"),
]


def cli_message(text: str) -> str:
    """A library message with its Python hints replaced by the CLI's flags."""
    for pat, repl in _HINTS:
        text = pat.sub(repl, text)
    return printable(text)


def report(e: BaseException) -> int:
    """Print ``e`` as one line on stderr; return its exit code."""
    from ..errors import PetsError, PolicyError

    code = exit_code_of(e)
    if isinstance(e, OSError) and not isinstance(e, PetsError):
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        msg = f"{e.strerror or e}{where}"
        kind = "error"
    elif isinstance(e, PetsError):
        rule = f" [{e.rule}]" if isinstance(e, PolicyError) and e.rule else ""
        msg = f"{type(e).__name__}{rule}: {cli_message(str(e))}"
        kind = "error"
    else:
        msg = f"{type(e).__name__}: {printable(str(e))}"
        kind = "unexpected error (a bug: please report it; PETS_DEBUG=1 shows the traceback)"
        if os.environ.get("PETS_DEBUG"):
            import traceback

            traceback.print_exception(e, file=sys.stderr)
    err().print(f"[bold red]pets: {kind}:[/] ", end="", highlight=False)
    err().print(msg, markup=False, highlight=False, soft_wrap=True)
    return code


def usage_error(message: str, param: str | None = None) -> Exception:
    """A usage error (exit code 2) naming the flag at fault."""
    if param:
        return typer.BadParameter(message, param_hint=param)
    return UsageError(message)


def printable(value: Any) -> Any:
    """A string with its control, format and other non-printing characters (Unicode
    category C: escape sequences, bidi overrides, …) shown as escapes, so nothing stored
    can drive the terminal or hide text. Other values as they are."""
    if not isinstance(value, str):
        return value
    if all(not unicodedata.category(ch).startswith("C") for ch in value):
        return value
    out = []
    for ch in value:
        if unicodedata.category(ch).startswith("C"):
            esc = ch.encode("unicode_escape").decode("ascii")
            out.append(esc if esc != ch else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


# -- the holder's home -----------------------------------------------------------------
Home = Annotated[Optional[str], typer.Option(
    "--home", envvar="PETS_HOME", show_envvar=True,
    help="The holder's home folder (its pets.db: datasets, grants, ledger, audit log).")]


def open_home(home: str | None, *, create: bool = False, audit_key: str | None = None) -> "Holder":
    """The Holder at ``home``. Unless ``create``, the home must already exist: a typo'd
    --home is an error, not a new empty home."""
    if not home:
        raise usage_error("--home is required (or set PETS_HOME)", "--home")
    path = Path(home).expanduser()
    if not create and not (path / "pets.db").is_file():
        from ..errors import DataError

        what = "does not exist" if not path.exists() else "holds no pets home (no pets.db)"
        raise DataError(
            f"--home {home!r} {what}; check the path (or PETS_HOME). `pets register` "
            "creates a home")
    from ..holder import Holder

    return Holder(path, audit_key=audit_key)


# -- output ------------------------------------------------------------------------------
_CONSOLES: dict[bool, "Console"] = {}


def _console(stderr: bool) -> "Console":
    c = _CONSOLES.get(stderr)
    stream = sys.stderr if stderr else sys.stdout
    if c is None or c.file is not stream:  # CliRunner swaps the streams per invocation
        from rich.console import Console

        c = Console(file=stream, highlight=False, soft_wrap=True)
        c.on_broken_pipe = _on_broken_pipe  # type: ignore[method-assign]  # rich: exit 1
        if not c.is_terminal:
            c.width = max(c.width, 200)  # a pipe or a file: do not wrap tables at 80
        _CONSOLES[stderr] = c
    return c


def out() -> "Console":
    """The console on stdout (results)."""
    return _console(False)


def err() -> "Console":
    """The console on stderr (messages, progress)."""
    return _console(True)


T = TypeVar("T")


@contextmanager
def step(label: str, console: "Console | None" = None) -> Iterator[None]:
    """Show ``label`` while the block runs: a spinner with the elapsed time on a terminal,
    otherwise (on a ``console`` given, e.g. the demo's stdout) a line before and one after
    with the seconds it took; nothing on a redirected stderr."""
    c = console or err()
    t = time.perf_counter()
    if console is None and not c.is_terminal:  # messages on a redirected stderr: none
        yield
    elif c.is_terminal:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from ..progress import bar

        with bar(label, True, c):  # a bar once the engine reports its scan's progress
            yield
        c.print(f"  [green]✓[/] {label} ({time.perf_counter() - t:.2f} s)", highlight=False)
    else:
        c.print(f"  {label} …", highlight=False, markup=False)
        yield
        c.print(f"    done ({time.perf_counter() - t:.2f} s)", highlight=False)


def _cell(v: Any, integer: bool) -> str:
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (integer and isinstance(v, float) and v.is_integer()):
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(printable(str(v)))


def print_frame(df: "pd.DataFrame", fmt: str = "table", console: "Console | None" = None,
                title: str | None = None) -> None:
    """Print a DataFrame as a table (rich), CSV or JSON records on stdout."""
    if fmt == "csv":
        df.to_csv(sys.stdout, index=False)
        return
    if fmt == "json":
        sys.stdout.write(df.to_json(orient="records") + "\n")
        return
    from rich import box
    from rich.table import Table

    c = console or out()
    t = Table(box=box.SIMPLE_HEAD, title=title, show_edge=False, pad_edge=False)
    kinds = {}
    for name in df.columns:
        k = df[name].dtype.kind
        kinds[name] = k
        t.add_column(str(printable(str(name))), justify="right" if k in "iuf" else "left",
                     style=None, header_style="bold")
    for row in df.itertuples(index=False):
        t.add_row(*(_cell(v.item() if hasattr(v, "item") else v, kinds[n] in "iu")
                    for v, n in zip(row, df.columns)))
    c.print(t)


def cost_dict(cost: Any) -> dict[str, float]:
    """A pets.Cost as a plain dict (JSON)."""
    return {"epsilon": cost.epsilon, "delta": cost.delta, "rho": cost.rho}


def split_list(text: str | None) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]
