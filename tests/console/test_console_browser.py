"""The holder's console driven in headless Chromium: sign in, grant, watch a release
appear, revoke, issue and revoke keys, a tampered log flagged, CSRF refused, CSP sent,
no protected value rendered. Screenshots of each page are saved (see conftest)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx

import pets
from pets.console.app import CSP

from .conftest import ACCOUNT, PASSWORD, PURPOSE, SECRET_INCOMES, SECRET_NAMES, sign_in

PAGES = ("datasets", "grants", "releases", "audit", "keys", "accounts")


def _by(console: Any) -> list[dict[str, Any]]:
    return [r for r in console.holder().audit().records() if r.get("by") == ACCOUNT]


def test_sign_in_is_required_and_a_wrong_password_is_refused_and_audited(console, page) -> None:
    page.goto(console.url + "/console/audit")
    assert "/console/login" in page.url
    page.get_by_label("Account").fill(ACCOUNT)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("#error").inner_text() == "Unknown account or wrong password."
    refused = console.holder().audit().records(kind="auth", status="refused")
    assert refused[-1]["rule"] == "bad_password" and refused[-1]["path"] == "/console/login"
    assert "not the password" not in str(refused)
    # the right password leads on to the page first asked for
    page.get_by_label("Account").fill(ACCOUNT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/audit$"))
    assert page.locator("#who").inner_text() == ACCOUNT
    assert _by(console)[-1]["action"] == "signed_in"
    cookie = next(c for c in page.context.cookies() if c["name"] == "pets_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    # sign out ends the session: the old cookie no longer opens a page
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/login"))
    assert _by(console)[-1]["action"] == "signed_out"
    r = httpx.get(console.url + "/console/grants", cookies={"pets_console": cookie["value"]})
    assert r.status_code == 303 and "/console/login" in r.headers["location"]


def test_grant_watch_a_release_appear_then_revoke(console, page, shots: Path) -> None:
    sign_in(page, console.url)
    form = page.locator("#grant-form")
    form.get_by_label("Analyst").fill("bob")
    form.get_by_label("Dataset").select_option("people")
    form.get_by_label("Purpose").fill("health-survey")
    form.get_by_label("ε (total)").fill("1.5")
    form.get_by_role("button", name="Grant").click()
    assert page.locator("#flash").inner_text() == "Granted bob ε=1.5, δ=0 on people for health-survey."
    g = console.holder().grants("bob").to_dict("records")
    assert [(x["dataset"], x["purpose"], x["epsilon"]) for x in g] == [("people", "health-survey", 1.5)]
    rec = console.holder().audit().records(kind="grant", analyst="bob")[-1]
    assert rec["by"] == ACCOUNT and rec["epsilon"] == 1.5

    # issue bob a key: shown once, on this response only
    page.goto(console.url + "/console/keys")
    page.get_by_label("Analyst").fill("bob")
    page.get_by_role("button", name="Issue key").click()
    key = page.locator("#newkey").input_value()
    assert key.startswith("pets_")
    page.screenshot(path=str(shots / "keys.png"), full_page=True)
    page.reload()  # the browser sends the form again: nothing is issued, the key is not shown
    assert page.locator("#newkey").count() == 0 and key not in page.content()
    assert page.locator("#flash").inner_text().startswith("Not done: this form was already sent")
    assert len(console.holder()._store.list_keys("bob")) == 1
    assert console.holder().audit().records(kind="key", analyst="bob")[-1]["by"] == ACCOUNT

    # watch: the releases page, live, while bob releases over HTTP
    page.goto(console.url + "/console/releases?analyst=bob")
    assert "0 records match" in page.locator("#count").inner_text()
    page.get_by_label("Update live (every 2 s)").check()
    s = pets.connect(console.url, api_key=key, purpose="health-survey")
    q = s.table("people").group_by("region").agg(n=pets.count())
    r = s.release(q, pets.DP(epsilon=0.5))
    row = page.locator(f"#records tr[data-id='{r.audit_id}']")
    row.wait_for(timeout=10_000)
    cells = row.locator("td").all_inner_texts()
    assert cells[2:7] == ["bob", "people", "health-survey", "dp", "released"]
    assert cells[9] == "ε 0.5" and cells[10] == "2"
    assert cells[11] == f"n: {r.scale['n']:.6g}"
    page.screenshot(path=str(shots / "releases.png"), full_page=True)

    # the grant shows what was spent, with its bar and burn-down
    page.goto(console.url + "/console/grants")
    tr = page.locator("tr.grant[data-analyst='bob'][data-purpose='health-survey']")
    assert tr.locator("td.spent").inner_text() == "0.5" and tr.locator("td.left").inner_text() == "1"
    assert "0.5 of 1.5 spent (33%)" in tr.locator("svg.budget-bar").get_attribute("aria-label")
    assert "1 charge, 1 of 1.5 left" in tr.locator("svg.burndown").get_attribute("aria-label")
    page.screenshot(path=str(shots / "grants.png"), full_page=True)

    # change the grant, then revoke it (the confirm dialog accepted)
    tr.get_by_label("New ε for health-survey").fill("3")
    tr.get_by_role("button", name="Set").click()
    assert console.holder().grants("bob")["epsilon"].tolist() == [3.0]
    page.once("dialog", lambda d: d.accept())
    page.locator("tr.grant[data-analyst='bob']").get_by_role("button", name=re.compile("Revoke")).click()
    page.wait_for_selector("#flash")
    assert page.locator("#flash").inner_text() == "Revoked the grant of bob on people for health-survey."
    assert console.holder().grants("bob").empty
    assert page.locator("tr.grant[data-analyst='bob']").count() == 0
    rec = console.holder().audit().records(kind="revoke", analyst="bob")[-1]
    assert rec["by"] == ACCOUNT and rec["previous"]["epsilon"] == 3.0
    # a revoked grant refuses bob, and the refusal shows up filtered by its rule
    try:
        s.release(q, pets.DP(epsilon=0.1))
        raise AssertionError("a revoked grant released")
    except pets.PolicyError:
        pass
    page.goto(console.url + "/console/releases?analyst=bob&status=refused&rule=no_grant")
    assert "1 record match" in page.locator("#count").inner_text()

    # revoke bob's key from the keys page
    page.goto(console.url + "/console/keys")
    page.once("dialog", lambda d: d.accept())
    row = page.locator("tr", has_text="bob")
    row.get_by_role("button", name=re.compile("Revoke key")).click()
    page.wait_for_selector("#flash")
    assert page.locator("#flash").inner_text().startswith("Revoked key ")
    assert all(k["revoked"] for k in console.holder()._store.list_keys("bob"))
    assert page.errors == []  # no CSP violation or script error on any of these pages


def test_bad_input_is_a_clear_message_and_changes_nothing(console, page) -> None:
    sign_in(page, console.url)
    before = len(console.holder().audit())
    form = page.locator("#grant-form")
    form.get_by_label("Analyst").fill("carol")
    form.get_by_label("Purpose").fill("*")
    form.get_by_label("ε (total)").fill("1")
    form.get_by_role("button", name="Grant").click()
    assert page.locator("#flash").inner_text().startswith("Not done: purpose '*' is a wildcard")
    form = page.locator("#grant-form")
    form.get_by_label("Analyst").fill("carol")
    form.get_by_label("Purpose").fill("stats")
    form.get_by_label("ε (total)").fill("lots")
    form.get_by_role("button", name="Grant").click()
    assert page.locator("#flash").inner_text() == "Not done: epsilon must be a number, got 'lots'"
    assert console.holder().grants("carol").empty
    assert len(console.holder().audit()) == before


def test_csrf_refused_and_changes_nothing(console, page, shots: Path) -> None:
    sign_in(page, console.url)
    before = console.holder().grants()
    form = page.locator("#grant-form")
    form.locator("input[name=csrf]").evaluate("e => { e.value = 'forged-token' }")
    form.get_by_label("Analyst").fill("mallory")
    form.get_by_label("Purpose").fill("anything-else")
    form.get_by_label("ε (total)").fill("100")
    form.get_by_role("button", name="Grant").click()
    assert "CSRF check failed" in page.locator("#error").inner_text()
    page.screenshot(path=str(shots / "csrf-refused.png"))
    assert console.holder().grants().equals(before)
    assert console.holder().audit().records(kind="auth")[-1]["rule"] == "csrf"
    # a form on another site (localhost is another site than 127.0.0.1) posting to the
    # console: the SameSite=Strict cookie is not sent, so the post only asks to sign in
    page.goto(console.url.replace("127.0.0.1", "localhost") + "/healthz")  # no console CSP
    page.set_content(
        f'<form method="post" action="{console.url}/console/grants/set">'
        '<input name="analyst" value="mallory"><input name="dataset" value="people">'
        '<input name="purpose" value="x"><input name="epsilon" value="9">'
        '<button id="go">go</button></form>')
    page.click("#go")
    page.wait_for_load_state()
    assert "/console/login" in page.url
    assert console.holder().grants("mallory").empty


def test_csp_and_security_headers_on_every_page(console, page, shots: Path) -> None:
    sign_in(page, console.url)
    for name in PAGES:
        resp = page.goto(f"{console.url}/console/{name}")
        assert resp.status == 200
        h = resp.headers
        assert h["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert h["x-frame-options"] == "DENY" and h["cache-control"] == "no-store"
        assert h["x-content-type-options"] == "nosniff"
        assert page.locator("script:not([src])").count() == 0  # no inline script at all
        page.screenshot(path=str(shots / f"page-{name}.png"))
    # the page of an unknown route and the static files carry the headers too
    r = httpx.get(console.url + "/console/static/console.js")
    assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
    assert page.errors == []


def test_keyboard_navigation_and_labels(console, page) -> None:
    sign_in(page, console.url)
    page.goto(console.url + "/console/grants")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Datasets"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/datasets$"))
    for name in PAGES:  # every form field has a label
        page.goto(f"{console.url}/console/{name}")
        unlabelled = page.evaluate(
            "Array.from(document.querySelectorAll('input:not([type=hidden]), select'))"
            ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
            ".map(e => e.name)")
        assert unlabelled == [], name


def test_no_protected_value_rendered(console, page) -> None:
    s = console.connect("alice")
    s.release(s.table("people").group_by("region").agg(n=pets.count(),
              total=pets.sum("income", bounds=(0, 2_000_000))), pets.DP(epsilon=0.5))
    s.release(s.table("people").filter(pets.col("income") >= SECRET_INCOMES[3])
              .agg(n=pets.count()), pets.DP(epsilon=0.2))
    try:  # refused: person_id is on the negative list; the refusal names no value
        s.release(s.table("people").filter(pets.col("person_id") == SECRET_NAMES[5])
                  .agg(n=pets.count()), pets.DP(epsilon=0.1))
    except pets.PolicyError:
        pass
    sign_in(page, console.url)
    html = ""
    for name in PAGES:
        page.goto(f"{console.url}/console/{name}")
        html += page.content()
    page.goto(f"{console.url}/console/releases?dataset=people")
    html += page.content()
    assert "filtered on income" in html and "filtered on person_id" in html
    assert "north, south" in html  # public keys are shown: they are in the policy
    for v in SECRET_NAMES:
        assert v not in html
    for x in SECRET_INCOMES:
        for text in (f"{x:g}", f"{x:.2f}", repr(x), f"{x:,.2f}"):
            assert text not in html, text


def test_register_a_dataset_from_a_file(console, page, tmp_path) -> None:
    data, policy = tmp_path / "towns.csv", tmp_path / "towns.policy.toml"
    data.write_text("region,age\nnorth,30\nsouth,41\nnorth,52\n")
    policy.write_text('[columns.region]\nrole = "attribute"\ngrade = 1\nkeys = ["north", "south"]\n'
                      '[grades.1]\nallow = ["dp"]\n')
    sign_in(page, console.url)
    page.goto(console.url + "/console/datasets")
    page.get_by_label("Name").fill("towns")
    page.get_by_label("Data file path").fill(str(tmp_path / "missing.csv"))
    page.get_by_label("Policy file path").fill(str(policy))
    page.get_by_role("button", name="Register").click()
    assert page.locator("#flash").inner_text().startswith("Not done: source file")
    assert "towns" not in console.holder().datasets()
    page.get_by_label("Name").fill("towns")
    page.get_by_label("Data file path").fill(str(data))
    page.get_by_label("Policy file path").fill(str(policy))
    page.get_by_role("button", name="Register").click()
    assert page.locator("#flash").inner_text() == f"Registered dataset towns from {data}."
    assert page.get_by_role("heading", name="towns").count() == 1
    rec = console.holder().audit().records(kind="register", dataset="towns")[-1]
    assert rec["by"] == ACCOUNT
    for v in ("30", "41", "52"):  # rows are never shown
        assert f"<td>{v}</td>" not in page.content()


def test_tampered_log_is_flagged(console, page, shots: Path) -> None:
    sign_in(page, console.url)
    page.goto(console.url + "/console/audit")
    page.get_by_role("button", name="Verify the whole log now").click()
    assert page.locator("#verification").inner_text().startswith("✔ Verified")
    assert _by(console)[-1]["action"] == "verified" and _by(console)[-1]["ok"] is True
    head = page.locator("#head").inner_text()
    assert head == str(console.holder().audit().head())
    page.screenshot(path=str(shots / "audit.png"))
    # someone edits a grant record in the database behind pets' back
    con = sqlite3.connect(console.home / "pets.db")
    with con:
        rid = con.execute("SELECT id FROM audit WHERE kind = 'grant' ORDER BY id LIMIT 1").fetchone()[0]
        con.execute("UPDATE audit SET body = replace(body, '\"epsilon\":2.0', '\"epsilon\":20.0') "
                    "WHERE id = ?", (rid,))
    con.close()
    page.get_by_role("button", name="Verify the whole log now").click()
    text = page.locator("#verification").inner_text()
    assert text.startswith("✘ FAILED") and f"audit record {rid}" in text
    assert page.locator("#flash").inner_text().startswith("VERIFICATION FAILED")
    page.screenshot(path=str(shots / "audit-tampered.png"))
