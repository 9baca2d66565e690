"""Checks every Paillier key passes before pets uses it, and the one opt-in for test keys.

A key that pets builds, loads or deals — :class:`pets.he.PublicKey`,
:class:`pets.he.PrivateKey`, :func:`pets.he.generate_keypair`, :func:`pets.he.loads_key`
and the JWK loaders, :func:`pets.he.deal`, :class:`pets.he.ThresholdKey` and
:class:`pets.he.KeyShare` (also from their dicts) — must have a modulus n that is

* at least :data:`MIN_BITS` (2048) bits long (≈ 112-bit security; 3072 is the default);
* odd, not a perfect power (a square n = p² in particular), without a prime factor below
  2¹⁶, and not a probable prime (gmpy2's BPSW test): under a prime or a p² modulus, or
  one with a small factor, anyone can decrypt, or learn something about every plaintext.

A private key's p and q must also be (BPSW probable) primes, p ≠ q, p·q = n, and
gcd(n, (p − 1)(q − 1)) = 1. A threshold key needs t ≥ 2 whenever it has two or more
holders: a threshold of 1 would let any single holder decrypt alone.

These checks catch mistakes and toy keys. They cannot prove that n is a product of two
large primes whose factors nobody but the key owner knows: take a public key only from
its owner, over an authenticated channel.

**Test keys.** Small keys are faster to generate; tests and interoperability checks may
use moduli from :data:`WEAK_MIN_BITS` (1024) bits, and only inside::

    with pets.he.weak_keys_allowed():
        pub, priv = pets.he.generate_keypair(1024)
        key, shares = pets.he.deal(3, 2, bits=1024)

The opt-in lowers the size floor only; every other check still applies, and t ≥ 2 still
holds. It is scoped to the ``with`` block and to the thread (or asyncio task) that
entered it (a :class:`contextvars.ContextVar`); keys built inside stay usable after the
block. Never use it in production code: a 1024-bit modulus offers about 80-bit security.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gmpy2
import numpy as np

from ..errors import QueryError

__all__ = [
    "MIN_BITS",
    "WEAK_MIN_BITS",
    "check_bits",
    "check_modulus",
    "check_prime_factors",
    "check_threshold",
    "min_modulus_bits",
    "weak_keys_allowed",
    "weak_keys_are_allowed",
]

MIN_BITS = 2048
"""The smallest modulus pets accepts outside :func:`weak_keys_allowed` (≈ 112-bit)."""
WEAK_MIN_BITS = 1024
"""The smallest modulus pets accepts at all, inside :func:`weak_keys_allowed` (tests)."""

_MPZ = type(gmpy2.mpz(0))
_SMALL_FACTOR_BOUND = 1 << 16
_SMALL_PRIMES_PRODUCT = gmpy2.primorial(_SMALL_FACTOR_BOUND)  # ≈ 94,000 bits, one gcd

_WEAK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pets_he_weak_keys_allowed", default=False
)

OPT_IN_HINT = "for tests only, build it inside `with pets.he.weak_keys_allowed():`"


@contextmanager
def weak_keys_allowed() -> Iterator[None]:
    """Accept Paillier moduli of 1024 to 2047 bits inside the ``with`` block. Tests only.

    Every other check (odd, not prime, not a perfect power, no small factor, valid p and
    q, threshold t ≥ 2 for two or more holders) still applies. See the module docstring.
    """
    token = _WEAK.set(True)
    try:
        yield
    finally:
        _WEAK.reset(token)


def weak_keys_are_allowed() -> bool:
    """Whether the caller is inside :func:`weak_keys_allowed`."""
    return _WEAK.get()


def min_modulus_bits() -> int:
    """The size floor that applies here and now: 2048, or 1024 inside the opt-in."""
    return WEAK_MIN_BITS if _WEAK.get() else MIN_BITS


def check_bits(bits: int, what: str = "bits") -> None:
    """Refuse a key size below the floor (2048, or 1024 inside the opt-in)."""
    floor = min_modulus_bits()
    if bits >= floor:
        return
    if bits >= WEAK_MIN_BITS:
        raise QueryError(
            f"{what}={bits} is too weak for a Paillier key: use at least {MIN_BITS} bits "
            f"(≈ 112-bit security; 3072, ≈ 128-bit, is the default); {OPT_IN_HINT}"
        )
    raise QueryError(
        f"{what}={bits} is too weak for a Paillier key: use at least {MIN_BITS} bits "
        f"(≈ 112-bit security; 3072, ≈ 128-bit, is the default); even test keys need "
        f"{WEAK_MIN_BITS}"
    )


def check_modulus(n: Any) -> int:
    """``n`` as an int if it can be a Paillier modulus, else :class:`QueryError` saying why.

    The order of the checks is fixed, so the message names the first reason.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer | _MPZ):
        raise QueryError("the Paillier modulus n must be an integer")
    n = int(n)
    if n <= 0:
        raise QueryError("the Paillier modulus n must be a positive integer")
    bits = n.bit_length()
    if bits < min_modulus_bits():
        if bits >= WEAK_MIN_BITS:
            raise QueryError(
                f"the Paillier modulus n has {bits} bits: at least {MIN_BITS} are needed "
                f"(≈ 112-bit security; use a 3072-bit key); {OPT_IN_HINT}"
            )
        raise QueryError(
            f"the Paillier modulus n has {bits} bits: at least {MIN_BITS} are needed "
            f"(≈ 112-bit security; use a 3072-bit key); even test keys need {WEAK_MIN_BITS}"
        )
    mn = gmpy2.mpz(n)
    if n % 2 == 0:
        raise QueryError(
            "the Paillier modulus n is even: it must be the product of two distinct large "
            "odd primes p·q"
        )
    if gmpy2.is_square(mn):
        raise QueryError(
            "the Paillier modulus n is a perfect square (p = q?): it must be the product "
            "of two distinct large primes p·q"
        )
    if gmpy2.is_power(mn):
        raise QueryError(
            "the Paillier modulus n is a perfect power: it must be the product of two "
            "distinct large primes p·q"
        )
    if gmpy2.gcd(mn, _SMALL_PRIMES_PRODUCT) != 1:
        raise QueryError(
            f"the Paillier modulus n has a prime factor below {_SMALL_FACTOR_BOUND}: it "
            "must be the product of two distinct large primes p·q"
        )
    if gmpy2.is_bpsw_prp(mn):
        raise QueryError(
            "the Paillier modulus n is prime, so anyone can decrypt under it: it must be "
            "the product of two distinct large primes p·q"
        )
    return n


def check_prime_factors(n: int, p: int, q: int) -> None:
    """Refuse p, q that are not the two distinct prime factors of ``n`` (checked already)."""
    if p == q:
        raise QueryError("p and q must be different primes (p = q makes n a square)")
    if p * q != n:
        raise QueryError("p and q do not match the public key (p·q ≠ n)")
    for name, x in (("p", p), ("q", q)):
        if not gmpy2.is_bpsw_prp(gmpy2.mpz(x)):
            raise QueryError(f"{name} is not prime: a Paillier private key is two primes p, q")
    if gmpy2.gcd(gmpy2.mpz(n), gmpy2.mpz((p - 1) * (q - 1))) != 1:
        raise QueryError(
            "gcd(n, (p − 1)(q − 1)) ≠ 1: p and q do not make a Paillier key (pick p, q of "
            "equal size)"
        )


def check_threshold(t: Any, n_parties: Any) -> None:
    """Refuse a threshold outside 2..n_parties (1..1 for a single holder)."""
    if isinstance(n_parties, bool) or not isinstance(n_parties, int) or n_parties < 1:
        raise QueryError(f"n_parties must be a positive integer, got {n_parties!r}")
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= n_parties:
        raise QueryError(f"t must be an integer in 1..n_parties={n_parties}, got {t!r}")
    if n_parties >= 2 and t < 2:
        raise QueryError(
            f"t={t} of {n_parties} holders would let any single holder decrypt alone: use "
            f"a threshold of at least 2 (a majority, {n_parties // 2 + 1} of {n_parties}, "
            "is usual)"
        )
