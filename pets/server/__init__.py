"""The holder's HTTP server (``pip install pets[server]``; ``pets serve --home DIR``).

``create_app(home_or_holder, limits=Limits(...))`` gives the FastAPI app; see
docs/server.md for endpoints, keys, limits and deployment behind TLS.
"""

from __future__ import annotations

from .app import Limits, create_app

__all__ = ["Limits", "create_app"]
