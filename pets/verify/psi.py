"""Private set intersection for batch verification, with OpenMined's ``openmined-psi``
(ECDH-PSI on P-256, ``pip install 'pets[psi]'``).

The verifier holds (subject key, claimed value) pairs it must not show the holder. It
blinds them (:class:`PSIVerifier`, the library's client) and sends only the blinded
request; the holder's mechanism (:class:`PSI` protection, :mod:`pets.mechanisms.verify`)
builds its own set of (key, value) pairs from the data inside its domain, answers with
the library's server setup (a Golomb-compressed set, not the Bloom filter whose
false-positive rate is off, see docs/verification.md) and the doubly blinded request,
and the verifier learns which of its pairs are in the holder's set. The holder learns
the number of pairs asked (the request's size), which is what the quotas count.

Both sets are encoded the same way: the key values, then the claimed values, each
tagged with its kind (numbers by value, so 42 and 42.0 agree; strings stripped); a value of a column
with a policy ``granularity`` g is its granule ``floor(v / g) * g``, so a claim of
``age = 40`` at granularity 10 means "age in [40, 50)".
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import QueryError
from ..mechanisms.verify import PSI

__all__ = ["FPR", "PSI", "PSIVerifier", "encode_pairs", "library"]

#: false-positive rate of one whole query (the library divides it over the items)
FPR = 1e-9


def library() -> Any:
    """``private_set_intersection.python``, or a QueryError saying how to install it."""
    try:
        import private_set_intersection.python as psi
    except ImportError:  # pragma: no cover - depends on the environment
        raise QueryError("private set intersection needs the optional dependency "
                         "openmined-psi: pip install 'pets[psi]'") from None
    return psi


def _norm(v: Any, g: float | None) -> Any:
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        if g is not None:
            v = math.floor(v / g + 1e-9) * g
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
            return int(v)
        return v
    return str(v).strip()


def _tag(v: Any) -> str:
    if isinstance(v, str):
        return "s" + v
    if isinstance(v, bool):
        return "b" + str(v)
    if v is None:
        return "z"
    return "n" + repr(v)


def encode_pairs(keys: Sequence[Sequence[Any]], values: Sequence[Sequence[Any]],
                 granularity: Sequence[float | None]) -> list[str]:
    """The PSI items of (key, claimed value) rows, as both sides write them: each value
    normalised (:func:`_norm`) and tagged with its kind, keys then values."""
    out = []
    gs = list(granularity)
    for k, v in zip(keys, values):
        out.append("\x1f".join(_tag(_norm(x, None)) for x in k) + "\x1e"
                   + "\x1f".join(_tag(_norm(x, g)) for x, g in zip(v, gs)))
    return out


class PSIVerifier:
    """The verifier's side: blinds ``pairs`` (a DataFrame with the subject-key columns
    ``keys`` and the claimed columns ``columns``), then turns the holder's answer into
    one match per row. ``granularity`` gives the policy's granularity of a claimed
    column (``{column: g}``) so that claimed values are read as their granule."""

    def __init__(self, pairs: pd.DataFrame, keys: Sequence[str], columns: Sequence[str],
                 granularity: dict[str, float] | None = None) -> None:
        if not isinstance(pairs, pd.DataFrame) or len(pairs) == 0:
            raise QueryError("pairs must be a non-empty DataFrame of subject keys and claimed values")
        keys, columns = list(keys), list(columns)
        missing = [c for c in keys + columns if c not in pairs.columns]
        if missing:
            raise QueryError(f"pairs has no column {missing[0]!r}; it needs the subject keys "
                             f"{keys} and the claimed columns {columns}")
        if pairs[keys + columns].isna().any().any():
            raise QueryError("pairs has missing values; every row needs a key and a claimed value")
        g = granularity or {}
        self.pairs = pairs
        self.keys, self.columns = tuple(keys), tuple(columns)
        self.items = encode_pairs(pairs[keys].to_numpy(dtype=object).tolist(),
                                  pairs[columns].to_numpy(dtype=object).tolist(),
                                  [g.get(c) for c in columns])
        psi = library()
        self._client = psi.client.CreateWithNewKey(True)

    def request(self) -> PSI:
        """The protection to send: the blinded request, nothing of the pairs."""
        req = self._client.CreateRequest(self.items)
        return PSI(request=req.SerializeToString(), keys=self.keys, columns=self.columns)

    def matches(self, setup: bytes, response: bytes) -> np.ndarray:
        """One bool per row of ``pairs``: its (key, value) is in the holder's set."""
        psi = library()
        s, r = psi.ServerSetup(), psi.Response()
        s.ParseFromString(setup)
        r.ParseFromString(response)
        hit = np.zeros(len(self.items), dtype=bool)
        idx = list(self._client.GetIntersection(s, r))
        hit[idx] = True
        return hit


def holder_answer(request: bytes, items: int, server_items: list[str]) -> tuple[bytes, bytes]:
    """The holder's side: a fresh server key, the GCS setup of its items and the
    response to the request (runs inside the holder's domain)."""
    psi = library()
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(FPR, items, server_items, psi.DataStructure.GCS)
    req = psi.Request()
    req.ParseFromString(request)
    resp = server.ProcessRequest(req)
    return setup.SerializeToString(), resp.SerializeToString()
