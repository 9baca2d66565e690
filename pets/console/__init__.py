"""The holder's web console (``/console`` of ``pets serve``): see and steer datasets,
grants, budgets, releases, refusals, the audit log and API keys in a browser.

Needs ``jinja2`` (``pip install 'pets[console]'``). Accounts:
``pets console add-holder --home H NAME`` or :func:`add_holder`. See docs/console.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["add_holder", "mount"]


def add_holder(home: "str | os.PathLike[str]", name: str, password: str) -> None:
    """Create a console account in ``home`` (audited as a ``console`` record naming it)."""
    from ..holder import Holder
    from .accounts import Accounts

    holder = Holder(Path(home))
    Accounts(holder.home).add(name, password)
    holder._store.record_console_act(name, "account_added", added=name)


def mount(app: Any, holder: Any, path: str = "/console") -> None:
    """Mount the console on a FastAPI/Starlette ``app``; without jinja2 installed, ``path``
    answers 501 saying what to install."""
    try:
        from .app import create_console
    except ImportError:  # the console extra is not installed
        from starlette.responses import PlainTextResponse
        from starlette.routing import Mount

        async def missing(scope: Any, receive: Any, send: Any) -> None:
            await PlainTextResponse("the console needs jinja2: pip install 'pets[console]'",
                                    status_code=501)(scope, receive, send)

        app.router.routes.append(Mount(path, app=missing))
        return
    app.mount(path, create_console(holder, prefix=path))
