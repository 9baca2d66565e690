"""Console accounts: scrypt-hashed passwords, sessions, the CLI; bad input is a clear
error that changes nothing."""

from __future__ import annotations

import sqlite3

import pytest

import pets
from pets.cli import main
from pets.console.accounts import Accounts, check_password, hash_password


def test_password_hash_is_salted_scrypt_and_checks(tmp_path) -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$32768$8$1$")
    assert check_password(a, "correct horse battery")
    assert not check_password(a, "correct horse batterY")
    assert not check_password("garbage", "x")


def test_accounts_store_only_hashes_and_sessions_end(tmp_path) -> None:
    acc = Accounts(tmp_path)
    acc.add("steward", "a long enough password")
    raw = sqlite3.connect(tmp_path / "console.db").execute("SELECT * FROM accounts").fetchall()
    assert "a long enough password" not in repr(raw)
    assert acc.check("steward", "a long enough password")
    assert not acc.check("steward", "wrong password!!") and not acc.check("nobody", "x" * 12)
    token, sess = acc.start("steward")
    assert acc.session(token) == sess and acc.session("forged") is None
    tokens = sqlite3.connect(tmp_path / "console.db").execute("SELECT token_hash FROM sessions").fetchall()
    assert token not in repr(tokens)
    acc.end(token)
    assert acc.session(token) is None
    assert acc.use_nonce("n1") and not acc.use_nonce("n1")


@pytest.mark.parametrize("name, password, message", [
    ("bad name", "a long enough password", "account name 'bad name' is not valid"),
    ("holder", "a long enough password", "account name 'holder' is not valid"),
    ("steward", "short", "at least 12 characters"),
])
def test_bad_accounts_are_refused_and_change_nothing(tmp_path, name, password, message) -> None:
    acc = Accounts(tmp_path)
    with pytest.raises(pets.QueryError, match=message):
        acc.add(name, password)
    assert acc.names() == []


def test_cli_add_holder(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    pets.Holder(home)  # an existing home: the CLI never creates one here
    pw = tmp_path / "pw"
    pw.write_text("a long enough password\n")
    assert main(["console", "add-holder", "steward", "--home", str(home), "--password-file", str(pw)]) == 0
    assert "added console account 'steward'" in capsys.readouterr().out
    assert Accounts(home).check("steward", "a long enough password")
    rec = pets.Holder(home).audit().records(kind="console")[-1]
    assert rec["by"] == "steward" and rec["action"] == "account_added"
    assert main(["console", "add-holder", "steward", "--home", str(home), "--password-file", str(pw)]) == 5
    assert "console account 'steward' already exists" in capsys.readouterr().err
    pw.write_text("short\n")
    assert main(["console", "add-holder", "clerk", "--home", str(home), "--password-file", str(pw)]) == 5
    assert "at least 12 characters" in capsys.readouterr().err
    assert [a["name"] for a in Accounts(home).names()] == ["steward"]


def test_console_doc_python_runs() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    ns: dict = {}
    exec(compile("\n".join(blocks), "docs/console.md", "exec"), ns)
    assert ns["holder"].audit().records(kind="console")[-1]["by"] == "steward"
