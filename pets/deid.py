"""De-identification helpers: prepare a table before registering it.

These run on the holder's side, on a pandas DataFrame (or from the command line, ``pets
deid``); they are not releases and spend nothing. Each returns a new object and leaves
its input unchanged.

* :func:`mask` — keep only the first / last characters of a text value;
* :func:`pseudonymize` — a keyed pseudonym, ``HMAC-SHA256(secret, value)``: the same
  value gives the same pseudonym under the same secret in every table (joins and
  verification subject keys keep working), and without the secret nobody can map a
  pseudonym back, even for small key spaces (unlike a plain hash);
* :func:`shift_dates` — move dates by a per-subject offset derived from the secret
  (intervals within one subject's records are kept), or by a fixed number of days;
* :func:`top_code` / :func:`bottom_code` — cap values above / below a threshold;
* :func:`generalize` — replace values by their label at a level of a
  :class:`pets.anon.Hierarchy` (e.g. ``hierarchies/age.csv``);
* :func:`deidentify` — apply a plan of the above, column by column.

>>> import pandas as pd
>>> secret = bytes(32)  # use new_secret() and keep it safe
>>> pseudonymize(pd.Series(["P-1", "P-2", "P-1"]), secret, length=8).tolist()
['beb32a0c', '1b58c51f', 'beb32a0c']
>>> mask(pd.Series(["13800138000"]), keep_last=4).tolist()
['*******8000']
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets as _secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import QueryError

__all__ = [
    "bottom_code", "deidentify", "generalize", "load_secret", "mask", "new_secret",
    "pseudonymize", "shift_dates", "top_code",
]

#: the shortest holder secret accepted (bytes)
MIN_SECRET_BYTES = 16


def new_secret() -> bytes:
    """32 random bytes from the OS CSPRNG: a holder secret for pseudonyms and date shifts."""
    return _secrets.token_bytes(32)


def load_secret(path: str | os.PathLike[str], *, create: bool = False) -> bytes:
    """The secret in file ``path`` (raw bytes, or hex text); with ``create=True`` a new
    one is written there (mode 0600) when the file does not exist."""
    p = Path(path)
    if not p.exists():
        if not create:
            raise QueryError(f"secret file {str(p)!r} does not exist; create one with "
                             "pets.deid.new_secret() (or `pets deid --new-secret FILE`)")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_secret().hex() + "\n")
    raw = p.read_bytes()
    try:
        text = raw.decode("ascii").strip()
        if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
            raw = bytes.fromhex(text)
    except UnicodeDecodeError:
        pass
    return _check_secret(raw)


def _check_secret(secret: Any) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, (bytes, bytearray)):
        raise QueryError(f"the secret must be bytes (e.g. pets.deid.new_secret()), not "
                         f"{type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise QueryError(f"the secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
                         "random bytes (pets.deid.new_secret())")
    return bytes(secret)


def _series(values: Any, what: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, (list, tuple, np.ndarray, pd.Index)):
        return pd.Series(values)
    raise QueryError(f"{what} takes a pandas Series (a column) or a list, not {type(values).__name__}")


def _key_text(v: Any) -> str:
    """The text a value is keyed by (42, 42.0 and "42" are one key)."""
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def mask(values: Any, *, keep_first: int = 0, keep_last: int = 0, char: str = "*") -> pd.Series:
    """Each text value with all but its first ``keep_first`` and last ``keep_last``
    characters replaced by ``char``; a value no longer than what would be kept is masked
    whole (missing values stay missing)."""
    s = _series(values, "mask")
    for n, name in ((keep_first, "keep_first"), (keep_last, "keep_last")):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise QueryError(f"{name} must be an integer >= 0, not {n!r}")
    if not isinstance(char, str) or len(char) != 1:
        raise QueryError(f"char must be one character, not {char!r}")

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return v
        t = _key_text(v)
        if keep_first + keep_last >= len(t):  # keeping that much would show it all
            return char * len(t)
        return t[:keep_first] + char * (len(t) - keep_first - keep_last) + (
            t[len(t) - keep_last:] if keep_last else "")

    return s.map(one).astype(object)


def pseudonymize(values: Any, secret: bytes | str, *, length: int = 16, prefix: str = "") -> pd.Series:
    """Keyed pseudonyms: ``prefix`` + the first ``length`` hex digits of
    ``HMAC-SHA256(secret, value)``. Stable across tables under one secret; missing values
    stay missing. ``length`` 8…64 (16 hex digits = 64 bits: collisions are unlikely below
    ~10⁸ subjects; check uniqueness of keys after pseudonymising)."""
    s = _series(values, "pseudonymize")
    key = _check_secret(secret)
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 64:
        raise QueryError(f"length must be an integer 8…64 (hex digits), not {length!r}")

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return v
        d = hmac.new(key, _key_text(v).encode("utf-8"), hashlib.sha256).hexdigest()
        return prefix + d[:length]

    return s.map(one).astype(object)


def _offsets(subjects: pd.Series, key: bytes, max_days: int) -> np.ndarray:
    """A per-subject offset in [-max_days, max_days] \\ {0}, uniform from the HMAC."""
    span = 2 * max_days
    out = np.empty(len(subjects), dtype=np.int64)
    cache: dict[str, int] = {}
    for i, v in enumerate(subjects.tolist()):
        t = _key_text(v)
        o = cache.get(t)
        if o is None:
            d = hmac.new(key, b"date-shift\x00" + t.encode("utf-8"), hashlib.sha256).digest()
            r = int.from_bytes(d[:8], "big") % span  # bias < span / 2^64
            o = r - max_days + (1 if r >= max_days else 0)  # never 0
            cache[t] = o
        out[i] = o
    return out


def shift_dates(values: Any, *, days: int | None = None, secret: bytes | str | None = None,
                by: Any = None, max_days: int = 30) -> pd.Series:
    """Dates moved by ``days`` (a fixed shift), or by a per-subject shift of up to
    ``max_days`` days either way (never 0) derived from ``secret`` and the subject keys
    ``by`` (a column of the same length): every record of one subject moves by the same
    amount, in every table shifted with the same secret, so intervals within a subject's
    history are kept. Values are parsed as dates; missing ones stay missing."""
    s = _series(values, "shift_dates")
    try:
        d = pd.to_datetime(s, errors="raise")
    except (ValueError, TypeError):
        raise QueryError("shift_dates needs dates (e.g. 2024-03-01); some values are not dates") from None
    if days is not None:
        if secret is not None or by is not None:
            raise QueryError("give either days= (one shift for all) or secret= and by= "
                             "(a shift per subject), not both")
        if isinstance(days, bool) or not isinstance(days, int):
            raise QueryError(f"days must be an integer, not {days!r}")
        return d + pd.Timedelta(days=days)
    if secret is None or by is None:
        raise QueryError("shift_dates needs days= (a fixed shift), or secret= and by= "
                         "(the subject key column) for a shift per subject")
    if isinstance(max_days, bool) or not isinstance(max_days, int) or max_days < 1:
        raise QueryError(f"max_days must be an integer >= 1, not {max_days!r}")
    subj = _series(by, "shift_dates(by=...)")
    if len(subj) != len(s):
        raise QueryError(f"by= has {len(subj)} values for {len(s)} dates; give the subject "
                         "key column of the same table")
    off = _offsets(subj, _check_secret(secret), max_days)
    return d + pd.to_timedelta(off, unit="D")


def _numbers(values: Any, what: str) -> pd.Series:
    s = _series(values, what)
    n = pd.to_numeric(s, errors="coerce")
    bad = n.isna() & s.notna()
    if bad.any():
        raise QueryError(f"{what} needs numbers; row {int(np.flatnonzero(bad.to_numpy())[0])} is not one")
    return n


def top_code(values: Any, upper: float) -> pd.Series:
    """Values above ``upper`` replaced by ``upper`` (the rare large values that single
    a person out)."""
    if isinstance(upper, bool) or not isinstance(upper, (int, float)) or not math.isfinite(upper):
        raise QueryError(f"upper must be a finite number, not {upper!r}")
    n = _numbers(values, "top_code")
    return n.where(n.isna() | (n <= upper), upper)


def bottom_code(values: Any, lower: float) -> pd.Series:
    """Values below ``lower`` replaced by ``lower``."""
    if isinstance(lower, bool) or not isinstance(lower, (int, float)) or not math.isfinite(lower):
        raise QueryError(f"lower must be a finite number, not {lower!r}")
    n = _numbers(values, "bottom_code")
    return n.where(n.isna() | (n >= lower), lower)


def generalize(values: Any, hierarchy: Any, level: int) -> pd.Series:
    """Each value replaced by its label at ``level`` of ``hierarchy`` (a
    :class:`pets.anon.Hierarchy`, or the path of a hierarchy CSV as ``pets anonymize``
    reads them). A value the hierarchy lacks is a QueryError naming it."""
    from .anon.hierarchy import Hierarchy

    s = _series(values, "generalize")
    h = hierarchy if isinstance(hierarchy, Hierarchy) else Hierarchy.from_csv(hierarchy)
    return pd.Series(h.generalize(s.to_numpy(), level), index=s.index, name=s.name, dtype=object)


#: the operations :func:`deidentify` knows, and their parameters
OPERATIONS = ("drop", "mask", "pseudonymize", "shift_dates", "top_code", "bottom_code", "generalize")


def deidentify(df: pd.DataFrame, plan: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]] | tuple[str, Mapping[str, Any]]],
               *, secret: bytes | str | None = None) -> pd.DataFrame:
    """A copy of ``df`` with ``plan`` applied: column → ``(operation, {parameters})`` or a
    list of them, applied in order; ``secret`` is passed to ``pseudonymize`` and
    ``shift_dates`` (whose ``by=`` names a column of ``df``, taken before any change).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": ["a", "b"], "age": [34, 97], "phone": ["5550100", "5550199"]})
    >>> deidentify(df, {"age": ("top_code", {"upper": 90}), "phone": ("mask", {"keep_last": 2}),
    ...                 "id": ("pseudonymize", {"length": 8})}, secret=bytes(32))
             id  age    phone
    0  9615a95d   34  *****00
    1  6303a85b   90  *****99
    """
    if not isinstance(df, pd.DataFrame):
        raise QueryError(f"deidentify takes a pandas DataFrame, not {type(df).__name__}")
    if not isinstance(plan, Mapping):
        raise QueryError("the plan is a dict: column → (operation, {parameters})")
    original = df
    out = df.copy()
    for column, steps in plan.items():
        if column not in df.columns:
            raise QueryError(f"unknown column {column!r}; the table has: {', '.join(map(str, df.columns))}")
        if isinstance(steps, tuple) and steps and isinstance(steps[0], str):
            steps = [steps]
        for step in steps:  # type: ignore[union-attr]
            if not (isinstance(step, (tuple, list)) and len(step) == 2
                    and isinstance(step[1], Mapping)):
                raise QueryError(f"plan for {column!r}: each step is (operation, {{parameters}})")
            op, params = step[0], dict(step[1])
            if op not in OPERATIONS:
                raise QueryError(f"unknown operation {op!r}; use one of {', '.join(OPERATIONS)}")
            if op == "drop":
                out = out.drop(columns=[column])
                break
            try:
                if op == "mask":
                    out[column] = mask(out[column], **params)
                elif op == "pseudonymize":
                    out[column] = pseudonymize(out[column], params.pop("secret", secret), **params)
                elif op == "shift_dates":
                    by = params.pop("by", None)
                    if by is not None:
                        if by not in original.columns:
                            raise QueryError(f"shift_dates by={by!r}: unknown column")
                        params.update(by=original[by], secret=params.pop("secret", secret))
                    out[column] = shift_dates(out[column], **params)
                elif op == "top_code":
                    out[column] = top_code(out[column], **params)
                elif op == "bottom_code":
                    out[column] = bottom_code(out[column], **params)
                else:
                    out[column] = generalize(out[column], **params)
            except TypeError as e:
                raise QueryError(f"{op} on column {column!r}: {e}") from None
    return out
