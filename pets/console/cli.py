"""``pets console``: the console's accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

__all__ = ["add_parser"]


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    env = os.environ.get("PETS_CONSOLE_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("pets: error: the two passwords differ; nothing was changed")
    return first


def _run(args: argparse.Namespace) -> int:
    from ..cli import _audit_home
    from . import add_holder

    home = _audit_home(args)
    add_holder(home, args.name, _password(args))
    print(f"added console account {args.name!r}; sign in at /console of `pets serve --home {home}`")
    return 0


def add_parser(sub: Any) -> None:
    c = sub.add_parser("console", help="the holder's web console (served by `pets serve` at /console)")
    csub = c.add_subparsers(dest="console_command", required=True)
    a = csub.add_parser("add-holder", help="add a console account for the holder's staff "
                                           "(password from --password-file, "
                                           "$PETS_CONSOLE_PASSWORD, stdin or a prompt)")
    a.add_argument("name", help="account name (letters, digits, '_', '.', '-')")
    a.add_argument("--home", help="holder home (default: $PETS_HOME)")
    a.add_argument("--password-file", dest="password_file",
                   help="read the password from the first line of this file")
    a.set_defaults(fn=_run)
