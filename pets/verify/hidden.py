"""Hidden equality claims with the verifier's Paillier key.

The verifier V owns a Paillier key pair and sends Enc(c), its claimed value encrypted
under its own public key. The holder H, inside its domain, looks up the subject's value
x of the claimed column and answers Enc(r·(x − c)) for a uniform random unit r, freshly
re-randomised: V decrypts 0 exactly when x = c, and otherwise a uniform unit mod n that
says nothing more. H never sees c (semantic security of Paillier); H still sees *which
subject* is asked about and which column — and counts it against the per-subject quota.

Values are encoded as integers mod n the same way on both sides
(:func:`encode_value`): integers as themselves, other values (text, fractions) as the
SHA-256 of their normalised JSON; a value of a column with a policy ``granularity`` g is
its granule ``floor(v / g) * g`` (so a hidden claim of ``age = 40`` at granularity 10
means "age in [40, 50)", as in PSI). An absent subject, a missing value, or several
records that disagree answer an encryption of a random unit: no match.

Against a cheating holder (one that answers Enc(0)) this gives no protection: that
needs a commitment to x and a zero-knowledge proof, which pets does not implement.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import QueryError

__all__ = ["HiddenVerifier", "encode_value", "holder_response"]


def encode_value(v: Any, granularity: float | None, n: int) -> int:
    """A claimed or recorded value as an integer mod n (see the module docstring)."""
    from .psi import _norm

    v = _norm(v, granularity)
    if isinstance(v, int) and not isinstance(v, bool):
        return v % n
    text = json.dumps(v, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big") % n


def _unit(n: int) -> int:
    import gmpy2

    while True:
        r = secrets.randbelow(n - 1) + 1
        if gmpy2.gcd(r, n) == 1:
            return r


def holder_response(public_key: Any, ciphertext: int, x: int | None) -> int:
    """Enc(r·(x − c)) from Enc(c) (``ciphertext``), re-randomised; for ``x`` None (no
    value to compare) a fresh encryption of a random unit, which looks the same."""
    import gmpy2

    n, n2 = public_key.n, public_key.nsquare
    if x is None:
        return int(public_key.raw_encrypt(_unit(n)))
    inv = gmpy2.invert(gmpy2.mpz(ciphertext), n2)
    t = inv * (1 + (x % n) * n) % n2  # Enc(x - c): g^x = 1 + x·n mod n²
    t = gmpy2.powmod(t, _unit(n), n2)  # Enc(r·(x - c))
    return int(public_key.rerandomize_many([int(t)])[0])


class HiddenVerifier:
    """The verifier's side: a Paillier key pair (new, ``key_bits``, or given), the
    encryption of a claim and the reading of the holder's answer."""

    def __init__(self, keypair: tuple[Any, Any] | None = None, key_bits: int = 2048) -> None:
        from ..he import generate_keypair

        if keypair is None:
            keypair = generate_keypair(key_bits)
        self.public_key, self.private_key = keypair

    def encrypt(self, value: Any, granularity: float | None = None) -> int:
        return int(self.public_key.raw_encrypt(encode_value(value, granularity, self.public_key.n)))

    def match(self, answer: int) -> bool:
        return self.private_key.raw_decrypt(int(answer)) == 0
