"""An app factory for ``uvicorn --factory --workers N`` (compare_server.py --processes):
the experiment of several server processes on one home, which ``pets serve`` does not
offer (its rate and concurrency limits are per process)."""

import os

from pets.server import create_app


def app():
    return create_app(os.environ["PETS_BENCH_HOME"], rate=1e6, burst=1_000_000,
                      concurrency=1000, workers=int(os.environ.get("PETS_BENCH_WORKERS", "8")))
