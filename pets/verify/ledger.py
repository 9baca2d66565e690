"""Verification quotas, kept in the holder's SQLite store next to the audit log.

Every answered subject is one row of ``verify_claims`` (audit id, dataset, analyst,
period, subject digest), written in the same ``BEGIN IMMEDIATE`` transaction as the
signed audit record of the answer, after the counts are checked under the same write
lock: concurrent sessions — threads or processes on the same home — cannot exceed a
quota. The audit record carries the subject digest (one subject) or the SHA-256 of the
batch's digests, so the table can be checked against the signed log.

Subjects are never stored as given: a subject is ``HMAC-SHA256(holder secret, dataset,
key columns, key values)``, with the secret in ``<home>/verify-subject.key`` (created on
first use, mode 0600), so a leaked log or database does not list who was asked about,
and low-entropy keys cannot be brute-forced from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import PolicyError

__all__ = ["period_of", "subject_digests", "used", "commit", "SECRET_FILE"]

SECRET_FILE = "verify-subject.key"

_TABLE = (
    "CREATE TABLE IF NOT EXISTS verify_claims (audit_id INTEGER NOT NULL, dataset TEXT NOT NULL, "
    "analyst TEXT NOT NULL, period TEXT NOT NULL, subject TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 1)",
    "CREATE INDEX IF NOT EXISTS verify_claims_subject ON verify_claims (dataset, period, subject)",
    "CREATE INDEX IF NOT EXISTS verify_claims_analyst ON verify_claims (dataset, analyst, period)",
)

#: the clock quotas use (tests replace it)
now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # noqa: E731


def period_of(period: str, when: datetime | None = None) -> str:
    """The calendar period (UTC) ``when`` falls in: ``2026-12-02``, ``2026-W49``,
    ``2026-12`` or ``2026``."""
    t = (when or now()).astimezone(timezone.utc)
    if period == "day":
        return t.strftime("%Y-%m-%d")
    if period == "week":
        y, w, _ = t.isocalendar()
        return f"{y}-W{w:02d}"
    if period == "month":
        return t.strftime("%Y-%m")
    return t.strftime("%Y")


def _secret(home: Path) -> bytes:
    path = home / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    tmp = home / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # atomic: the first process to link wins, the others read it
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def subject_digests(home: Path, dataset: str, keys: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> list[str]:
    """The keyed digest of each subject (a tuple of key values): HMAC-SHA256 over the
    dataset, the key columns and the values, each tagged with its kind (so "42" and 42
    differ, while 42 and 42.0 are one subject)."""
    secret = _secret(home)
    head = json.dumps([dataset, list(keys)], ensure_ascii=False) + "\x1e"
    digest = hmac.digest
    out = []
    for row in rows:
        msg = head + "\x1f".join(map(_tagged, row))
        out.append(digest(secret, msg.encode("utf-8"), "sha256").hex()[:32])
    return out


def _tagged(v: Any) -> str:
    v = _plain(v)
    if isinstance(v, str):
        return "s" + v
    if isinstance(v, bool):
        return "b" + str(v)
    return "n" + repr(v)


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # 42 and 42.0 name the same subject
    return v


def batch_digest(digests: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()


def _ensure(con: Any) -> None:
    for sql in _TABLE:
        con.execute(sql)


def _counts(con: Any, dataset: str, analyst: str, period: str,
            digests: Sequence[str]) -> tuple[int, dict[str, int]]:
    (mine,) = con.execute(
        "SELECT COALESCE(SUM(n), 0) FROM verify_claims WHERE dataset = ? AND analyst = ? AND period = ?",
        (dataset, analyst, period)).fetchone()
    per: dict[str, int] = {}
    uniq = list(dict.fromkeys(digests))
    for i in range(0, len(uniq), 500):
        chunk = uniq[i:i + 500]
        q = ("SELECT subject, COUNT(*) FROM verify_claims WHERE dataset = ? AND period = ? "
             f"AND subject IN ({', '.join('?' for _ in chunk)}) GROUP BY subject")
        for s, n in con.execute(q, (dataset, period, *chunk)):
            per[s] = int(n)
    return int(mine), per


def _check(vp: Any, analyst: str, dataset: str, mine: int, per: dict[str, int],
           digests: Sequence[str], n: int) -> None:
    if mine + n > vp.max_per_analyst:
        raise PolicyError(
            f"analyst {analyst!r} has had {mine} of the {vp.max_per_analyst} verification "
            f"answers the policy allows per {vp.period} from dataset {dataset!r}; this request "
            f"asks {n} more",
            rule="verify_max_per_analyst", allowed=vp.max_per_analyst,
        )
    asked = Counter(digests)
    over = sum(1 for d, k in asked.items() if per.get(d, 0) + k > vp.max_per_subject)
    if over:
        who = "this subject has" if n == 1 else f"{over} of the subjects asked about have"
        raise PolicyError(
            f"{who} reached the policy's limit of {vp.max_per_subject} claims per subject per "
            f"{vp.period} (all verifiers together): repeated claims about one person would "
            "reconstruct their record",
            rule="verify_max_per_subject", allowed=vp.max_per_subject,
        )


def used(store: Any, vp: Any, analyst: str, dataset: str, digests: Sequence[str],
         n: int | None = None) -> int:
    """Check the quotas without writing (explain, and the early refusal); returns the
    answers the analyst has left in this period before this request. ``n``: answers
    asked when the subjects are not known to the holder (PSI; ``digests`` empty)."""
    n = len(digests) if n is None else n
    period = period_of(vp.period)
    try:
        with store._read() as con:
            mine, per = _counts(con, dataset, analyst, period, digests)
    except sqlite3.OperationalError:  # no verification yet: no table
        mine, per = 0, {}
    _check(vp, analyst, dataset, mine, per, digests, n)
    return vp.max_per_analyst - mine


def commit(store: Any, vp: Any, record: dict[str, Any], digests: Sequence[str],
           n: int | None = None) -> tuple[int, int]:
    """Check the quotas, append the audit record and count the subjects, in one
    transaction. Returns ``(audit id, answers left to the analyst this period)``. With
    ``n`` and no digests (PSI) one row counts ``n`` answers and no subject."""
    n = len(digests) if n is None else n
    analyst, dataset = record["analyst"], record["dataset"]
    period = period_of(vp.period)
    rec, body = store._prepare({**record, "status": "released", "period": period})
    with store._write() as con:
        _ensure(con)
        mine, per = _counts(con, dataset, analyst, period, digests)
        _check(vp, analyst, dataset, mine, per, digests, n)
        audit_id = store._append(con, rec, body)
        if digests:
            con.executemany(
                "INSERT INTO verify_claims (audit_id, dataset, analyst, period, subject) "
                "VALUES (?, ?, ?, ?, ?)",
                ((audit_id, dataset, analyst, period, d) for d in digests))
        else:
            con.execute("INSERT INTO verify_claims (audit_id, dataset, analyst, period, "
                        "subject, n) VALUES (?, ?, ?, ?, '', ?)",
                        (audit_id, dataset, analyst, period, n))
    return audit_id, vp.max_per_analyst - mine - n
