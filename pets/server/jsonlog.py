"""The server's log: one JSON object per line on stderr.

The app logs its events (``pets.server``) as JSON objects already; this formatter adds
the time, level and logger to them, and wraps every other library's line (uvicorn's
start-up and shutdown messages) as ``{"event": "log", "message": ...}``, so that every
line a ``pets serve`` process writes parses as JSON. What the app logs is chosen so that
no protected value is ever in it: method, path, status, duration, analyst and key id
(a hash prefix, never the key), and exception class names — never bodies, plans,
answers, keys or rows.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "configure"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        msg = record.getMessage()
        fields = None
        if msg.startswith("{"):
            try:
                fields = json.loads(msg)
            except ValueError:
                fields = None
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["event"] = "log"
            out["message"] = msg
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__  # the class only, no message
        return json.dumps(out, default=str)


def configure(level: str = "info") -> None:
    """Send every logger's lines to stderr as JSON at ``level`` and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pets.server").setLevel(level.upper())
