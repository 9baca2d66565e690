"""Holder accounts of the console and their sign-in sessions, in ``<home>/console.db``.

Accounts are the holder's staff, separate from analysts' API keys: an account can sign
in to the console and nothing else; an API key can ask for releases and nothing else.

Passwords are hashed with scrypt (``cryptography``'s :class:`Scrypt`, memory-hard:
n=2**15, r=8, p=1, 32 MiB per hash) with a random 16-byte salt; the stored text is
``scrypt$n$r$p$salt$hash`` (base64). A session token is 256 random bits kept by the
browser in a cookie; the file keeps only its SHA-256, with the session's CSRF token
and its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import QueryError

__all__ = ["Accounts", "ConsoleSession", "MIN_PASSWORD", "SESSION_SECONDS"]

#: Shortest password an account may have (characters).
MIN_PASSWORD = 12
#: A session ends this many seconds after its last use.
SESSION_SECONDS = 8 * 3600
_N, _R, _P = 2**15, 8, 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_TABLES = (
    """CREATE TABLE IF NOT EXISTS accounts (
        name TEXT PRIMARY KEY,
        password TEXT NOT NULL,
        created TEXT NOT NULL,
        disabled TEXT)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_hash TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires REAL NOT NULL,
        flash TEXT)""",
    """CREATE TABLE IF NOT EXISTS used_nonces (
        nonce TEXT PRIMARY KEY,
        expires REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS verifications (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        account TEXT NOT NULL,
        ok INTEGER NOT NULL,
        head TEXT NOT NULL,
        message TEXT NOT NULL)""",
)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _kdf(salt: bytes, n: int = _N, r: int = _R, p: int = _P) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = _kdf(salt).derive(password.encode("utf-8"))
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison by Scrypt.verify)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        _kdf(base64.b64decode(salt), int(n), int(r), int(p)).verify(
            password.encode("utf-8"), base64.b64decode(digest))
        return True
    except (InvalidKey, ValueError):
        return False


#: A hash to check against when the account does not exist, so that a sign-in takes as
#: long for an unknown name as for a wrong password.
_DUMMY = hash_password(secrets.token_urlsafe(16))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_account_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "holder":
        raise QueryError(
            f"account name {name!r} is not valid: use letters, digits, '_', '.' or '-', "
            "starting with a letter or '_' (at most 64 characters; not 'holder')")
    return name


def check_new_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise QueryError(f"a console password needs at least {MIN_PASSWORD} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise QueryError("a console password may not contain control characters")
    if len(password) > 1024:
        raise QueryError("a console password may have at most 1024 characters")
    return password


@dataclass(frozen=True)
class ConsoleSession:
    account: str
    csrf: str


class Accounts:
    """The console's accounts and sessions of one home (``<home>/console.db``)."""

    def __init__(self, home: str | Path) -> None:
        self.path = Path(home) / "console.db"
        with self._db() as con:
            for sql in _TABLES:
                con.execute(sql)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            yield con
        finally:
            con.close()

    # -- accounts --------------------------------------------------------------------
    def add(self, name: str, password: str) -> None:
        """Create an account; :class:`pets.QueryError` if the name is taken or invalid."""
        check_account_name(name)
        check_new_password(password)
        stored = hash_password(password)
        with self._db() as con:
            try:
                con.execute("INSERT INTO accounts (name, password, created) VALUES (?, ?, ?)",
                            (name, stored, _now()))
            except sqlite3.IntegrityError:
                raise QueryError(f"console account {name!r} already exists") from None

    def set_password(self, name: str, password: str) -> None:
        check_new_password(password)
        stored = hash_password(password)
        with self._db() as con:
            if con.execute("UPDATE accounts SET password = ? WHERE name = ?",
                           (stored, name)).rowcount == 0:
                raise QueryError(f"no console account {name!r}")
            con.execute("DELETE FROM sessions WHERE account = ?", (name,))

    def names(self) -> list[dict[str, str | None]]:
        with self._db() as con:
            rows = con.execute("SELECT name, created, disabled FROM accounts ORDER BY name")
            return [{"name": n, "created": c, "disabled": d} for n, c, d in rows]

    def check(self, name: str, password: str) -> bool:
        """Whether ``name`` is a live account with this ``password``."""
        with self._db() as con:
            row = con.execute("SELECT password, disabled FROM accounts WHERE name = ?",
                              (name,)).fetchone()
        ok = check_password(row[0] if row else _DUMMY, password)
        return bool(row) and ok and row[1] is None

    # -- sessions --------------------------------------------------------------------
    def start(self, name: str) -> tuple[str, ConsoleSession]:
        """A new session for ``name``: (cookie token, session)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self._db() as con:
            con.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            con.execute("INSERT INTO sessions (token_hash, account, csrf, expires) "
                        "VALUES (?, ?, ?, ?)",
                        (_token_hash(token), name, csrf, time.time() + SESSION_SECONDS))
        return token, ConsoleSession(name, csrf)

    def session(self, token: str | None) -> ConsoleSession | None:
        """The live session of a cookie token (its expiry moved on), or ``None``."""
        if not token or len(token) > 200:
            return None
        h = _token_hash(token)
        now = time.time()
        with self._db() as con:
            row = con.execute(
                "SELECT s.account, s.csrf, s.expires FROM sessions s JOIN accounts a "
                "ON a.name = s.account WHERE s.token_hash = ? AND a.disabled IS NULL",
                (h,)).fetchone()
            if row is None or row[2] < now:
                return None
            if row[2] - now < SESSION_SECONDS - 60:
                con.execute("UPDATE sessions SET expires = ? WHERE token_hash = ?",
                            (now + SESSION_SECONDS, h))
        return ConsoleSession(str(row[0]), str(row[1]))

    def end(self, token: str | None) -> None:
        if token:
            with self._db() as con:
                con.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    def flash(self, token: str | None, message: str | None) -> None:
        """Keep ``message`` for the session's next page (post, redirect, get)."""
        if token:
            with self._db() as con:
                con.execute("UPDATE sessions SET flash = ? WHERE token_hash = ?",
                            (message, _token_hash(token)))

    def take_flash(self, token: str | None) -> str | None:
        if not token:
            return None
        h = _token_hash(token)
        with self._db() as con:
            row = con.execute("SELECT flash FROM sessions WHERE token_hash = ?", (h,)).fetchone()
            if row is None or row[0] is None:
                return None
            con.execute("UPDATE sessions SET flash = NULL WHERE token_hash = ?", (h,))
        return str(row[0])

    def use_nonce(self, nonce: str | None) -> bool:
        """``True`` the first time a form's one-time ``nonce`` is used, ``False`` after
        (a reloaded or resubmitted form)."""
        if not nonce or len(nonce) > 100:
            return False
        with self._db() as con:
            con.execute("DELETE FROM used_nonces WHERE expires < ?", (time.time(),))
            try:
                con.execute("INSERT INTO used_nonces (nonce, expires) VALUES (?, ?)",
                            (nonce, time.time() + 2 * SESSION_SECONDS))
            except sqlite3.IntegrityError:
                return False
        return True

    @staticmethod
    def same(a: str | None, b: str | None) -> bool:
        return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))

    # -- verification results ----------------------------------------------------------
    def note_verification(self, account: str, ok: bool, head: str, message: str) -> None:
        with self._db() as con:
            con.execute("INSERT INTO verifications (ts, account, ok, head, message) "
                        "VALUES (?, ?, ?, ?, ?)", (_now(), account, int(ok), head, message))

    def last_verification(self) -> dict[str, object] | None:
        with self._db() as con:
            row = con.execute("SELECT ts, account, ok, head, message FROM verifications "
                              "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {"ts": row[0], "account": row[1], "ok": bool(row[2]), "head": row[3],
                "message": row[4]}


