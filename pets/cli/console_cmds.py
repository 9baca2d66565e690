"""``pets console add-holder``: the console's accounts (docs/console.md)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated, Optional

import typer

from ._app import Home, app, command, open_home, usage_error

console_app = typer.Typer(help="The holder's web console (served by `pets serve` at /console).",
                          no_args_is_help=True)
app.add_typer(console_app, name="console")


def _password(name: str, password_file: str | None) -> str:
    if password_file:
        with open(password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    env = os.environ.get("PETS_CONSOLE_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise usage_error("the two passwords differ; nothing was changed")
    return first


@command(console_app, "add-holder")
def add_holder(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Account name (letters, digits, '_', '.', '-').")],
    home: Home = None,
    password_file: Annotated[Optional[str], typer.Option(
        "--password-file", help="Read the password from the first line of this file (else "
                                "$PETS_CONSOLE_PASSWORD, standard input, or a prompt).")] = None,
) -> None:
    """Add a console account for the holder's staff (audited)."""
    from ..console import add_holder as add

    h = open_home(home)
    add(h.home, name, _password(name, password_file))
    typer.echo(f"added console account {name!r}; sign in at /console of "
               f"`pets serve --home {h.home}`")
