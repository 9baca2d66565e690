"""The ``pets`` command (typer + rich).

    pets demo                                   the main job on the bundled Adult example
    pets register NAME SOURCE --policy P.toml [--copy] [--replace]   (creates the home)
    pets datasets | grants [--analyst A] | budget --analyst A --purpose P [--dataset D]
    pets grant  --analyst A --dataset D --purpose P --epsilon E [--delta D --accounting zcdp]
    pets revoke --analyst A --dataset D --purpose P
    pets query  --analyst A --purpose P --epsilon 0.1 [--explain] [--format json] "SELECT ..."
    pets extract DATASET --analyst A --purpose P --columns age,sex --k 5 -o out.csv
    pets he query --member a=HOME_A --member b=HOME_B --analyst A --purpose P [--epsilon E] "SELECT ..."
    pets fit --analyst A --purpose P --dataset D --model logistic --target T --features a,b --epsilon 1
    pets synthesize --analyst A --purpose P --dataset D --columns a,b,c --rows N --epsilon 1
    pets verify --analyst A --purpose P --dataset D --subject id=42 --claim "age >= 30"
    pets deid in.csv -o out.csv --pseudonymize id --secret-file S [--mask C --top-code C:V ...]
    pets anonymize in.csv --qi age,sex --k 5 [--hierarchies DIR] -o out.csv   (offline, ungoverned)
    pets serve | keys issue|list|revoke | audit verify|head|list | federation deal|join
    pets console add-holder NAME [--password-file F]      (an account for the web console)

Every command but ``demo`` and ``anonymize`` takes ``--home DIR`` (or ``PETS_HOME``); only
``register`` creates a home. Exit codes (API.md): 0 success, 1 unexpected error, 2 usage
error, 3 refused by the policy, 4 budget exceeded, 5 bad input or query, 6 audit
verification failed; 141 when stdout was closed early (``pets demo | head``).

Adding a command
----------------
Write a module ``pets/cli/<topic>_cmds.py`` (or anywhere) with::

    from typing import Annotated
    import typer
    from pets.cli._app import Home, app, command, open_home, out

    @command()                      # or command(sub_app, "name") for a group
    def fit(dataset: Annotated[str, typer.Argument(help="...")], home: Home = None) -> None:
        \"\"\"One line of help.\"\"\"
        import pets                 # heavy imports inside the function: `pets --help` stays fast
        h = open_home(home)         # an existing home; errors become exit codes by themselves
        ...

then add the module to ``_COMMAND_MODULES`` below. Give every option a ``help=``; raise
pets errors (they are mapped to exit codes and the CLI's wording by
:func:`pets.cli._app.report`), or :func:`pets.cli._app.usage_error` for a bad flag
combination. Put results on stdout (``out()`` or :func:`print_frame`), messages and
progress (:func:`step`) on stderr.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from typing import Any, Sequence

from ._app import app

__all__ = ["main", "app", "command"]

#: the modules whose import registers commands on ``app`` (in help order)
_COMMAND_MODULES = (
    "pets.cli.tools_cmds",     # demo, anonymize, serve, federation deal|join
    "pets.cli.holder_cmds",    # register, datasets, grant, revoke, grants, budget, keys, audit
    "pets.cli.analyst_cmds",   # query, extract, he query
    "pets.cli.models_cmds",    # fit, synthesize
    "pets.cli.verify_cmds",    # verify, deid
    "pets.cli.console_cmds",   # console add-holder
)

for _m in _COMMAND_MODULES:
    importlib.import_module(_m)


def _version(value: bool) -> None:
    if value:
        import typer

        from .. import __version__

        typer.echo(f"pets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = __import__("typer").Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Release results, never raw data: differential privacy, k-anonymous extracts and
    homomorphic totals behind one policy, ledger and audit log."""


def _restore_argument_help(cmd: Any) -> None:
    """click 8.5 resets the help text typer gives a positional argument (its Argument
    gained a ``help`` of its own); put the text back from the command's signature."""
    if isinstance(getattr(cmd, "commands", None), dict):  # a group (click's or typer's own)
        for sub in cmd.commands.values():
            _restore_argument_help(sub)
        return
    missing = [p for p in cmd.params
               if getattr(p, "param_type_name", None) == "argument" and not getattr(p, "help", None)]
    if not missing or cmd.callback is None:
        return
    hints = typing.get_type_hints(inspect.unwrap(cmd.callback), include_extras=True)
    for p in missing:
        for meta in getattr(hints.get(p.name), "__metadata__", ()):
            if getattr(meta, "help", None):
                p.help = meta.help


def command() -> Any:
    """The click command of the whole app (what ``main`` runs; tests invoke it with
    click's CliRunner)."""
    import typer

    cmd = typer.main.get_command(app)
    _restore_argument_help(cmd)
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        command().main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="pets",
                     standalone_mode=True)
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
