"""The side-door harness over HTTP: the transport adds no side door.

The cases of ``tests/system/test_side_doors.py`` that run on one holder are run again
with the analyst on the far side of a real server: each world (D and every neighbour D')
gets its own ``pets`` server on loopback (uvicorn on a free port, in this process, over
that world's home), and the analyst's session is ``pets.connect(url, api_key=...)``.
The observation and the invariants are the harness's own: outcome, exception class,
message, rule and column as the client rebuilds them from the HTTP answer, explain,
what was charged, and the release's metadata. On top, the raw HTTP answer of every
refusal (status code and JSON body) must be the same on D and D'.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

import pets  # noqa: E402
from pets.server import create_app  # noqa: E402

from system.side_doors import ANALYST, PURPOSE, STRANGER, Case, World, check_case  # noqa: E402
from system.test_side_doors import CASES  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::pets.holder.HierarchyWarning")


class _Server:
    """A real uvicorn server for one holder, on 127.0.0.1, in a thread of this process."""

    def __init__(self, holder: pets.Holder) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = create_app(holder, rate=1e6, burst=10**6, concurrency=64)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


_SERVERS: list[_Server] = []


@pytest.fixture(autouse=True, scope="module")
def _stop_servers():
    yield
    for s in _SERVERS:  # all told to exit first, then joined: they shut down together
        s.server.should_exit = True
    for s in _SERVERS:
        s.stop()
    _SERVERS.clear()


class HttpWorld(World):
    """A world whose analysts work over HTTP: ``local(analyst)`` is a remote session."""

    def local(self, analyst: str = ANALYST) -> Any:  # type: ignore[override]
        key = self.extra["keys"][analyst]
        return pets.connect(self.extra["url"], api_key=key, purpose=PURPOSE, timeout=120)


def _over_http(case: Case) -> Case:
    def setup(d: Path, data: Any) -> World:
        w = case.setup(d, data)
        srv = _Server(w.holder)
        _SERVERS.append(srv)
        keys = {a: w.holder.issue_key(a) for a in (ANALYST, STRANGER)}
        hw = HttpWorld(w.dir, w.holders, w.dataset, extra={**w.extra, "url": srv.url,
                                                              "keys": keys})
        hw.session = hw.local()
        return hw
    return dataclasses.replace(case, name=case.name + "_http", setup=setup)


def _eligible(c: Case) -> bool:
    """One holder, a release form, in this process (isolated cases run in a child that
    rebuilds the case by name), and not federated (the HTTP federation has its own tests)."""
    if not c.release_form or c.isolate:
        return False
    code = c.request.__code__
    return "fed" not in code.co_freevars and "fed" not in code.co_names


HTTP_CASES = [_over_http(c) for c in CASES if _eligible(c)]
#: in the default run: one case of each way a request ends over HTTP (a refusal by the
#: grant, the budget, the policy's lists, the plan check, k-anonymity; three releases);
#: every case with -m slow, which .ci/run runs after the suite. The same cases all run
#: in process in the default run (tests/system/test_side_doors.py).
_QUICK = {"dp_count_public_keys_http", "sql_text_http", "dp_unit_bounded_http",
          "refuse_default_deny_http", "refuse_budget_http", "refuse_negative_list_sql_http",
          "refuse_unknown_column_http", "no_grant_near_miss_column_http",
          "kanon_missing_qi_http", "refuse_kanon_option_search_http"}


def _param(c: Case) -> Any:
    return pytest.param(c, id=c.name, marks=() if c.name in _QUICK else pytest.mark.slow)


def test_the_quick_http_cases_exist() -> None:
    assert _QUICK <= {c.name for c in HTTP_CASES}


def test_the_http_harness_covers_releases_and_refusals() -> None:
    kinds = {c.expect.kind for c in HTTP_CASES}
    assert {"released", "refused"} <= kinds and len(HTTP_CASES) >= 20


@pytest.mark.parametrize("c", [_param(c) for c in HTTP_CASES])
def test_nothing_observable_over_http_depends_on_the_data_unless_charged(c: Case,
                                                                         tmp_path: Path) -> None:
    obs = check_case(c, tmp_path)
    assert len(obs) == 1 + len(c.neighbours)


def test_raw_http_refusals_are_byte_identical_on_neighbours(tmp_path: Path) -> None:
    """Status, headers that matter and body of refusals, as any HTTP client sees them."""
    pol = pets.example_policy("adult")
    data = pets.example_data("adult")
    import pandas as pd

    base = pd.read_csv(data, nrows=300, skipinitialspace=True)
    worlds = {"D": base, "D-1": base.iloc[1:], "D+1": pd.concat([base, base.iloc[[5]]])}
    bodies = [
        {"purpose": PURPOSE, "sql": "SELECT AVG(salary) AS m FROM adult",
         "protection": {"form": "dp", "epsilon": 0.5}},
        {"purpose": PURPOSE, "sql": "SELECT SUM(fnlwgt) AS w FROM adult",
         "protection": {"form": "dp", "epsilon": 0.5}},
        {"purpose": PURPOSE, "sql": "SELECT COUNT(*) AS n FROM adult",
         "protection": {"form": "dp", "epsilon": 1e9}},
        {"purpose": "not-granted", "sql": "SELECT COUNT(*) AS n FROM adult",
         "protection": {"form": "dp", "epsilon": 0.5}},
    ]
    seen: dict[str, list[tuple[int, str, str]]] = {}
    for name, df in worlds.items():
        h = pets.Holder(tmp_path / name)
        h.register("adult", df.reset_index(drop=True), pol)
        h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=1.0)
        key = h.issue_key(ANALYST)
        srv = _Server(h)
        _SERVERS.append(srv)
        out = []
        for b in bodies:
            r = httpx.post(srv.url + "/v1/release", json=b,
                           headers={"Authorization": f"Bearer {key}"})
            assert r.status_code >= 400, r.text
            out.append((r.status_code, r.headers.get("content-type", ""), r.text))
        seen[name] = out
    assert seen["D-1"] == seen["D"] and seen["D+1"] == seen["D"]
    assert [(s, json.loads(b)["error"]["type"]) for s, _, b in seen["D"]] == [
        (422, "QueryError"), (403, "PolicyError"), (409, "BudgetExceeded"), (403, "PolicyError")]
