"""The console in a real browser: ``pets serve`` (uvicorn, in a subprocess on 127.0.0.1)
over a real home, driven by Playwright through the system's Chromium
(``/usr/bin/chromium``, Debian's package; ``.ci/run`` installs it where missing).
Nothing of pets is mocked. Screenshots go to ``$PETS_SCREENSHOTS`` or a tmp dir."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("jinja2")
sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pets  # noqa: E402
from pets.console import add_holder  # noqa: E402
from tests.server.conftest import start, stop  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ACCOUNT, PASSWORD = "steward", "correct horse battery staple"
PURPOSE = "labour-stats"

#: Values of protected columns in the ``people`` table: none may appear on any page.
SECRET_NAMES = [f"Zelda-{i:03d}-Quux" for i in range(40)]
SECRET_INCOMES = [987_000.0 + i * 13.37 for i in range(40)]


def people() -> pd.DataFrame:
    rng = np.random.default_rng(7)  # test data, not privacy noise
    return pd.DataFrame({
        "person_id": SECRET_NAMES,
        "region": rng.choice(["north", "south"], 40),
        "income": SECRET_INCOMES,
        "age": rng.integers(20, 70, 40),
    })


PEOPLE_POLICY: dict[str, Any] = {
    "negative_list": ["person_id"],
    "columns": {
        "region": {"role": "attribute", "grade": 1, "keys": ["north", "south"]},
        "income": {"role": "attribute", "grade": 3, "bounds": [0, 2_000_000]},
        "age": {"role": "quasi_identifier", "grade": 2, "bounds": [18, 90]},
    },
    "grades": {"1": {"allow": ["dp"]}, "2": {"allow": ["dp"]},
               "3": {"allow": ["dp"], "max_epsilon": 1.0}},
}


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = os.environ.get("PETS_SCREENSHOTS")
    path = Path(d) if d else tmp_path_factory.mktemp("console-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("console-home")
    h = pets.Holder(home)
    h.register("people", people(), PEOPLE_POLICY)
    h.grant("alice", dataset="people", purpose=PURPOSE, epsilon=2.0)
    add_holder(home, ACCOUNT, PASSWORD)
    srv = start(home)
    srv.keys["alice"] = h.issue_key("alice")
    try:
        yield srv
    finally:
        stop(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        ctx.close()


def sign_in(page: Any, url: str, account: str = ACCOUNT, password: str = PASSWORD) -> None:
    page.goto(url + "/console/grants")
    assert re.search(r"/console/login", page.url)
    page.get_by_label("Account").fill(account)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/grants$"))
