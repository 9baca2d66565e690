"""Threshold Paillier decryption: a t-of-n key split among holders, with a trusted dealer.

Once the shares are in their holders' hands, no single holder can decrypt (t ≥ 2 is
enforced for two or more holders); the dealer, and whoever holds all the shares before
they are handed out, can. A dealer generates an ordinary Paillier key (g = n + 1, the
public key is n alone, so anyone can encrypt with ``phe`` or :mod:`pets.he.paillier`) and
splits the decryption exponent among ``n_parties`` holders so that any ``t`` of them,
each contributing a *partial decryption* of the agreed ciphertext, recover the plaintext,
and any ``t - 1`` learn nothing about it. The scheme is Shoup's threshold RSA ("Practical
threshold signatures", Eurocrypt 2000) carried over to Paillier by Fouque–Poupard–Stern
(FC 2000) and Damgård–Jurik (PKC 2001), with s = 1:

* **Dealing.** Safe primes p = 2p' + 1, q = 2q' + 1, n = pq, m = p'q'. The secret
  exponent d satisfies d ≡ 0 (mod m) and d ≡ 1 (mod n); it is shared with a random
  polynomial f of degree t − 1 over Z_{nm}, f(0) = d, and holder i (1-based) gets
  s_i = f(i). Δ = n_parties!. Verification material: a random square v in Z*_{n²} and
  v_i = v^{Δ s_i} mod n² for every holder.
* **Partial decryption** by holder i: c_i = c^{2Δ s_i} mod n², with a non-interactive
  Chaum–Pedersen proof (Fiat–Shamir, SHA-256) that log_{c⁴}(c_i²) = log_v(v_i), i.e. that
  c_i was computed with the same s_i the dealer committed to in v_i.
* **Combining** any set S of at least t partials: c' = ∏ c_i^{2μ_i} mod n² with the
  integer Lagrange coefficients μ_i = Δ ∏_{j ∈ S, j ≠ i} j / (j − i); then
  c' = (1 + n)^{4Δ² M} and M = L(c') · (4Δ²)⁻¹ mod n, L(u) = (u − 1) / n.

Threat model and roles
----------------------
* **The dealer is trusted, and holds the whole key while it deals.** It sees p, q, m and
  d, i.e. it could decrypt everything. :func:`deal` keeps nothing itself, but it returns
  *every* :class:`KeyShare` to its caller: until the caller has handed each share to its
  holder over a private channel and dropped every reference to the others, the caller
  alone can decrypt everything. Python cannot wipe integers from memory: run the dealer
  in a process that exits after dealing. There is no distributed key generation here.
* **In one process there is no separation.** :class:`pets.Federation` with in-process
  holders is its own dealer and keeps all the holders' shares in one Python object for
  its lifetime: it reproduces the protocol's message flow (each share partially decrypts
  on its own, partials are proven and combined), not its trust split. Whoever runs that
  process, or can read its memory, holds the whole decryption key. The threshold
  protects only when each holder keeps its share in its own process or machine.
* **Holders are honest-but-curious** for privacy: any coalition of at most t − 1 holders
  learns nothing about any plaintext beyond what the combined outputs reveal (the secret
  sharing is perfect over Z_{nm} and the decryption key is never reconstructed; the final
  value of the combination is the plaintext itself, released to whoever combines). Any
  t holders together can decrypt *every* ciphertext under the key, not only the agreed
  one, and their shares even give them a multiple of m, hence the factors of n. Hence
  t ≥ 2 whenever there are two or more holders (:func:`deal` refuses t = 1 of n ≥ 2).
* **Integrity against malicious holders**: every partial carries a zero-knowledge proof
  of correct partial decryption; :func:`combine` checks it by default, so a holder who
  sends a wrong c_i is caught (by index) instead of silently corrupting the result. A
  holder can still refuse to answer; then any t others suffice.
* **What a holder decrypts is a protocol decision.** A partial decryption is bound to
  its ciphertext; holders must only partially decrypt the agreed aggregate ciphertext
  (in the in-process federation, the federation code itself drives every share, so this
  rests on that code), and :func:`combine` refuses partials of different ciphertexts. Pass ``ciphertext=`` to also check they are partials of the one you
  expect.
* Security rests on the decisional composite residuosity assumption (semantic security
  of Paillier), on safe primes of equal size and on the random-oracle model for the
  Fiat–Shamir proofs. Use n of 3072 bits (≈ 128-bit security, the default) or 2048 bits
  (≈ 112-bit). :func:`deal`, :class:`ThresholdKey` and :class:`KeyShare` (also from their
  dicts) refuse smaller, even, prime or square moduli and t outside 2..n_parties
  (:mod:`pets.he.keycheck`); 1024-bit keys are dealt only inside
  :func:`pets.he.weak_keys_allowed` (tests).
* The exponentiations are not constant-time (gmpy2's ``powmod``): a holder that shares a
  machine with an attacker measuring cache timing could leak bits of its share.

Example
-------
>>> key, shares = deal(3, 2, bits=2048)                          # doctest: +SKIP
>>> c = phe.PaillierPublicKey(key.n).raw_encrypt(42)              # doctest: +SKIP
>>> combine([shares[0].partial_decrypt(c), shares[2].partial_decrypt(c)], key)  # doctest: +SKIP
42

Everything works on plain ints: n and ciphertexts mod n² (the wire form of ``phe`` and
of :mod:`pets.he.paillier`). Signed plaintexts are decoded with :func:`to_signed` (or
``signed=True``); ``phe`` EncodedNumber values with
``phe.EncodedNumber(phe.PaillierPublicKey(n), plaintext, exponent).decode()``.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gmpy2
import numpy as np

from ..errors import DataError, InternalError, QueryError
from . import keycheck as _keycheck

__all__ = [
    "DecryptionProof",
    "KeyShare",
    "PartialDecryption",
    "ThresholdKey",
    "combine",
    "combine_many",
    "deal",
    "generate_safe_prime",
    "to_signed",
]

DEFAULT_BITS = 3072
MIN_BITS = _keycheck.MIN_BITS  # 1024 inside pets.he.weak_keys_allowed() (tests only)
_HASH_BITS = 256  # challenge length of the Fiat–Shamir proofs (SHA-256)
_STAT_BITS = 128  # statistical hiding of the proof's response z
_DOMAIN = b"pets.he.threshold.v1"


# --------------------------------------------------------------------------- safe primes


def _small_primes(bound: int) -> list[int]:
    sieve = np.ones(bound, dtype=bool)
    sieve[:2] = False
    for i in range(2, math.isqrt(bound) + 1):
        if sieve[i]:
            sieve[i * i :: i] = False
    return [int(x) for x in np.flatnonzero(sieve)]


_SIEVE_PRIMES = [r for r in _small_primes(1 << 16) if r >= 5]
_INV6 = [pow(6, -1, r) for r in _SIEVE_PRIMES]
_WINDOW = 1 << 15


def generate_safe_prime(bits: int) -> int:
    """A random safe prime p = 2p' + 1 (p' prime) of exactly ``bits`` bits, top two bits set.

    Candidates p' ≡ 5 (mod 6) are drawn from a CSPRNG (:mod:`secrets`) and sieved for
    both p' and 2p' + 1 against the primes below 2¹⁶ at once; survivors pass base-2 Fermat
    tests on p' and p, then gmpy2's BPSW + Miller–Rabin on both. With the top two bits set,
    the product of two such primes has exactly 2·``bits`` bits.
    """
    if bits < 32:
        raise QueryError(f"safe primes need at least 32 bits, got bits={bits}")
    lo = (1 << (bits - 2)) + (1 << (bits - 3))  # p' range: p = 2p' + 1 starts 0b11...
    hi = 1 << (bits - 1)
    span = hi - lo - 6 * _WINDOW
    while True:
        base = lo + secrets.randbelow(span)
        base += (5 - base) % 6  # p' odd and p' ≢ 1 (mod 3), else 3 | 2p' + 1
        alive = np.ones(_WINDOW, dtype=bool)  # candidate k stands for p' = base + 6k
        for r, inv6 in zip(_SIEVE_PRIMES, _INV6):
            b = base % r
            alive[(-b * inv6) % r :: r] = False  # r | p'
            alive[(((r - 1) // 2 - b) * inv6) % r :: r] = False  # r | 2p' + 1
        for k in np.flatnonzero(alive):
            pp = gmpy2.mpz(base + 6 * int(k))
            if gmpy2.powmod(2, pp - 1, pp) != 1:
                continue
            p = 2 * pp + 1
            if gmpy2.powmod(2, p - 1, p) != 1:
                continue
            if gmpy2.is_prime(pp, 40) and gmpy2.is_prime(p, 40):
                return int(p)


# --------------------------------------------------------------------------- helpers


def to_signed(plaintext: int, n: int) -> int:
    """Read a plaintext mod n as a signed integer: values above n // 2 are negative."""
    plaintext = int(plaintext) % n
    return plaintext - n if plaintext > n // 2 else plaintext


def _delta(n_parties: int) -> int:
    return math.factorial(n_parties)


def _encode(*values: int) -> bytes:
    out = bytearray(_DOMAIN)
    for v in values:
        v = int(v)
        b = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


def _challenge(n: int, v: int, vi: int, index: int, c: int, ci: int, a: int, b: int) -> int:
    return int.from_bytes(hashlib.sha256(_encode(n, v, vi, index, c, ci, a, b)).digest(), "big")


def _check_ciphertext(c: Any, n: int, nsquare: int) -> int:
    if isinstance(c, bool) or not isinstance(c, (int, type(gmpy2.mpz(0)))):
        raise QueryError(f"a ciphertext must be an int mod n², got {type(c).__name__}")
    c = int(c)
    if not 0 < c < nsquare:
        raise DataError("ciphertext is not valid under this public key (not in (0, n²))")
    if math.gcd(c, n) != 1:
        raise DataError("ciphertext is not valid under this public key (not invertible)")
    return c


def _lagrange(indexes: Sequence[int], delta: int) -> dict[int, int]:
    """μ_i = Δ · ∏_{j ≠ i} j / (j − i): integers for any subset of {1, …, n_parties}."""
    out = {}
    for i in indexes:
        num, den = delta, 1
        for j in indexes:
            if j != i:
                num *= j
                den *= j - i
        mu, rem = divmod(num, den)
        if rem:  # cannot happen for indexes in 1..n_parties with Δ = n_parties!
            raise InternalError(f"Lagrange coefficient of share {i} is not an integer")
        out[i] = mu
    return out


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class DecryptionProof:
    """Non-interactive proof that log_{c⁴}(c_i²) = log_v(v_i): challenge e, response z."""

    e: int
    z: int


@dataclass(frozen=True)
class PartialDecryption:
    """Holder ``index``'s partial decryption ``value`` = c^{2Δ s_i} mod n² of ``ciphertext``."""

    index: int
    value: int
    ciphertext: int
    n: int
    proof: DecryptionProof | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "value": str(self.value),
            "ciphertext": str(self.ciphertext),
            "n": str(self.n),
        }
        if self.proof is not None:
            d["proof"] = {"e": str(self.proof.e), "z": str(self.proof.z)}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartialDecryption:
        proof = d.get("proof")
        return cls(
            index=int(d["index"]),
            value=int(d["value"]),
            ciphertext=int(d["ciphertext"]),
            n=int(d["n"]),
            proof=None if proof is None else DecryptionProof(int(proof["e"]), int(proof["z"])),
        )


@dataclass(frozen=True)
class ThresholdKey:
    """The public side of a threshold key: the Paillier modulus ``n`` (g = n + 1),
    the threshold ``t`` of ``n_parties``, and the verification material ``v`` and
    ``verification_keys[i - 1]`` = v^{Δ s_i} mod n² of every holder i."""

    n: int
    t: int
    n_parties: int
    v: int
    verification_keys: tuple[int, ...]

    def __post_init__(self) -> None:
        _keycheck.check_modulus(self.n)
        _keycheck.check_threshold(self.t, self.n_parties)
        if len(self.verification_keys) != self.n_parties:
            raise QueryError(
                f"a threshold key of {self.n_parties} holders needs {self.n_parties} "
                f"verification keys, got {len(self.verification_keys)}"
            )

    @property
    def nsquare(self) -> int:
        return self.n * self.n

    @property
    def g(self) -> int:
        return self.n + 1

    @property
    def delta(self) -> int:
        """Δ = n_parties!."""
        return _delta(self.n_parties)

    def verify(self, partial: PartialDecryption) -> bool:
        """Whether ``partial`` carries a valid proof of correct partial decryption
        under this key (False for a partial of another key or without a proof)."""
        if partial.n != self.n or partial.proof is None:
            return False
        if not 1 <= partial.index <= self.n_parties:
            return False
        n2 = self.nsquare
        c, ci = int(partial.ciphertext), int(partial.value)
        if not (0 < c < n2 and 0 < ci < n2) or math.gcd(c * ci, self.n) != 1:
            return False
        e, z = int(partial.proof.e), int(partial.proof.z)
        if not (0 <= e < 1 << _HASH_BITS and z >= 0):
            return False
        vi = self.verification_keys[partial.index - 1]
        c4 = gmpy2.powmod(c, 4, n2)
        a = gmpy2.powmod(c4, z, n2) * gmpy2.powmod(ci, -2 * e, n2) % n2
        b = gmpy2.powmod(self.v, z, n2) * gmpy2.powmod(vi, -e, n2) % n2
        return e == _challenge(self.n, self.v, vi, partial.index, c, ci, a, b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": str(self.n),
            "t": self.t,
            "n_parties": self.n_parties,
            "v": str(self.v),
            "verification_keys": [str(x) for x in self.verification_keys],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThresholdKey:
        return cls(
            n=int(d["n"]),
            t=int(d["t"]),
            n_parties=int(d["n_parties"]),
            v=int(d["v"]),
            verification_keys=tuple(int(x) for x in d["verification_keys"]),
        )


@dataclass(frozen=True)
class KeyShare:
    """Holder ``index``'s secret share s_i = f(i) of the decryption exponent.

    Keep it secret: any t shares decrypt everything. Its repr hides ``secret``.
    """

    index: int
    secret: int = field(repr=False)
    n: int
    t: int
    n_parties: int
    v: int = field(repr=False)
    verification_key: int = field(repr=False)

    def __post_init__(self) -> None:
        _keycheck.check_modulus(self.n)
        _keycheck.check_threshold(self.t, self.n_parties)
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not (
            1 <= self.index <= self.n_parties
        ):
            raise QueryError(
                f"a key share's index must be in 1..n_parties={self.n_parties}, "
                f"got {self.index!r}"
            )

    @property
    def delta(self) -> int:
        """Δ = n_parties!."""
        return _delta(self.n_parties)

    @property
    def nsquare(self) -> int:
        return self.n * self.n

    def partial_decrypt(self, ciphertext: int, *, prove: bool = True) -> PartialDecryption:
        """c_i = c^{2Δ s_i} mod n², with a proof of correctness unless ``prove=False``."""
        n, n2 = self.n, self.nsquare
        c = _check_ciphertext(ciphertext, n, n2)
        x = self.delta * self.secret  # the exponent the proof is about: c_i² = (c⁴)^x
        ci = int(gmpy2.powmod(c, 2 * x, n2))
        proof = None
        if prove:
            r_bits = self.delta.bit_length() + 2 * n.bit_length() + _HASH_BITS + _STAT_BITS
            r = secrets.randbits(r_bits)
            a = gmpy2.powmod(gmpy2.powmod(c, 4, n2), r, n2)
            b = gmpy2.powmod(self.v, r, n2)
            e = _challenge(n, self.v, self.verification_key, self.index, c, ci, a, b)
            proof = DecryptionProof(e=e, z=r + e * x)
        return PartialDecryption(self.index, ci, c, n, proof)

    def partial_decrypt_many(
        self, ciphertexts: Iterable[int], *, prove: bool = True
    ) -> list[PartialDecryption]:
        """:meth:`partial_decrypt` of every ciphertext, in order."""
        return [self.partial_decrypt(c, prove=prove) for c in ciphertexts]

    def to_dict(self) -> dict[str, Any]:
        """The share as JSON-ready data. It contains the secret: store it like a key."""
        return {
            "index": self.index,
            "secret": str(self.secret),
            "n": str(self.n),
            "t": self.t,
            "n_parties": self.n_parties,
            "v": str(self.v),
            "verification_key": str(self.verification_key),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyShare:
        return cls(
            index=int(d["index"]),
            secret=int(d["secret"]),
            n=int(d["n"]),
            t=int(d["t"]),
            n_parties=int(d["n_parties"]),
            v=int(d["v"]),
            verification_key=int(d["verification_key"]),
        )


# --------------------------------------------------------------------------- dealing


def deal(
    n_parties: int, t: int, *, bits: int = DEFAULT_BITS
) -> tuple[ThresholdKey, list[KeyShare]]:
    """Generate a fresh ``bits``-bit Paillier key and split it ``t``-of-``n_parties``.

    Returns the public :class:`ThresholdKey` and one :class:`KeyShare` per holder
    (``shares[i - 1].index == i``). The factorisation and d exist only inside this call;
    the caller is the trusted dealer and must deliver each share privately and forget the
    rest (see the module docstring). Randomness comes from :mod:`secrets`.

    ``t`` is at least 2 when ``n_parties`` ≥ 2 (with t = 1 any single holder could
    decrypt alone); a single holder (1 of 1) holds the whole key, like an ordinary
    private key. ``bits`` is the size of n: 3072 (default, ≈ 128-bit security), 2048
    (≈ 112-bit) or more, even; 1024–2046 only inside :func:`pets.he.weak_keys_allowed`
    (tests). Anything else raises :class:`~pets.errors.QueryError` before any work.
    CPU time measured here: 0.3–2.5 s (median 0.7 s) at 2048 bits, 1.7–8 s (median 5 s)
    at 3072.
    """
    _keycheck.check_threshold(t, n_parties)
    if isinstance(bits, bool) or not isinstance(bits, int) or bits % 2:
        raise QueryError(
            f"bits must be an even integer (3072, or 2048 at least), got {bits!r}"
        )
    _keycheck.check_bits(bits)
    half = bits // 2
    while True:
        p = generate_safe_prime(half)
        q = generate_safe_prime(half)
        n = p * q
        if p != q and n.bit_length() == bits and n_parties < min(p, q) // 2:
            break
    pp, qq = (p - 1) // 2, (q - 1) // 2
    m = pp * qq
    d = m * pow(m, -1, n)  # d ≡ 0 (mod m), d ≡ 1 (mod n)
    nm = n * m
    coeffs = [d] + [secrets.randbelow(nm) for _ in range(t - 1)]

    def f(x: int) -> int:
        acc = 0
        for a in reversed(coeffs):
            acc = (acc * x + a) % nm
        return acc

    n2 = n * n
    delta = _delta(n_parties)
    # v: a random square; it generates the (cyclic) squares of Z*_{n²} except with negligible odds
    while True:
        r = secrets.randbelow(n2)
        if r > 1 and math.gcd(r, n) == 1:
            break
    v = int(gmpy2.powmod(r, 2, n2))
    secrets_ = [f(i) for i in range(1, n_parties + 1)]
    vks = tuple(int(gmpy2.powmod(v, delta * s, n2)) for s in secrets_)
    key = ThresholdKey(n=n, t=t, n_parties=n_parties, v=v, verification_keys=vks)
    shares = [
        KeyShare(index=i, secret=s, n=n, t=t, n_parties=n_parties, v=v, verification_key=vks[i - 1])
        for i, s in enumerate(secrets_, start=1)
    ]
    return key, shares


# --------------------------------------------------------------------------- combining


def _check_partials(
    partials: Sequence[PartialDecryption], key: ThresholdKey, verify: bool
) -> list[PartialDecryption]:
    partials = list(partials)
    for p in partials:
        if not isinstance(p, PartialDecryption):
            raise QueryError(f"expected PartialDecryption values, got {type(p).__name__}")
    seen: set[int] = set()
    for p in partials:
        if p.index in seen:
            raise QueryError(
                f"duplicate partial decryption from share {p.index}: each share counts once"
            )
        seen.add(p.index)
    for p in partials:
        if p.n != key.n:
            raise DataError(
                f"the partial decryption from share {p.index} belongs to another key (n differs)"
            )
        if not 1 <= p.index <= key.n_parties:
            raise QueryError(f"share index {p.index} is outside 1..n_parties={key.n_parties}")
        if not 0 < p.value < key.nsquare or math.gcd(p.value, key.n) != 1:
            raise DataError(f"the partial decryption from share {p.index} is not a unit mod n²")
    if len(partials) < key.t:
        raise QueryError(f"threshold decryption needs t={key.t} shares, got {len(partials)}")
    if len({p.ciphertext for p in partials}) != 1:
        raise QueryError(
            "the partial decryptions are of different ciphertexts; "
            "combine the partials of one ciphertext"
        )
    if verify:
        for p in partials:
            if p.proof is None:
                raise QueryError(
                    f"the partial decryption from share {p.index} carries no proof; "
                    "pass verify=False to accept unproven partials (honest-but-curious holders)"
                )
        bad = [p.index for p in partials if not key.verify(p)]
        if bad:
            raise DataError(
                f"invalid proof of partial decryption from share(s) {bad}: "
                "drop them and combine the rest"
            )
    return partials


def _combine_checked(
    partials: list[PartialDecryption], key: ThresholdKey, mu: dict[int, int]
) -> int:
    n, n2 = key.n, key.nsquare
    acc = gmpy2.mpz(1)
    for p in partials:
        acc = acc * gmpy2.powmod(p.value, 2 * mu[p.index], n2) % n2
    if (acc - 1) % n:
        raise DataError("the partial decryptions do not combine to a plaintext: a share is wrong")
    return int((acc - 1) // n * pow(4 * key.delta**2, -1, n) % n)


def combine(
    partials: Sequence[PartialDecryption],
    key: ThresholdKey,
    *,
    ciphertext: int | None = None,
    verify: bool = True,
    signed: bool = False,
) -> int:
    """The plaintext of a ciphertext from at least ``key.t`` partial decryptions of it.

    All given partials are used (any t suffice). Raises :class:`~pets.errors.QueryError`
    for fewer than t partials, two from one share, partials of different ciphertexts (or
    of another than ``ciphertext``, when given) and, with ``verify`` (the default),
    partials without a proof; :class:`~pets.errors.DataError` for partials of another key,
    an invalid proof (naming the shares at fault) or values that do not combine to a
    plaintext. Returns the plaintext in [0, n), or read as signed with ``signed=True``
    (see :func:`to_signed`).
    """
    checked = _check_partials(partials, key, verify)
    if ciphertext is not None and int(ciphertext) != checked[0].ciphertext:
        raise QueryError("the partial decryptions are not of the agreed ciphertext")
    mu = _lagrange([p.index for p in checked], key.delta)
    m = _combine_checked(checked, key, mu)
    return to_signed(m, key.n) if signed else m


def combine_many(
    partials_by_share: Sequence[Sequence[PartialDecryption]],
    key: ThresholdKey,
    *,
    ciphertexts: Sequence[int] | None = None,
    verify: bool = True,
    signed: bool = False,
) -> list[int]:
    """Decrypt a vector of ciphertexts: one list of partials per share, each from
    :meth:`KeyShare.partial_decrypt_many` over the same ciphertexts in the same order."""
    lists = [list(ps) for ps in partials_by_share]
    if len(lists) < key.t:
        raise QueryError(f"threshold decryption needs t={key.t} shares, got {len(lists)}")
    lengths = {len(ps) for ps in lists}
    if len(lengths) != 1:
        raise QueryError(
            f"every share must send one partial per ciphertext; got lengths {sorted(lengths)}"
        )
    (length,) = lengths
    if ciphertexts is not None and len(ciphertexts) != length:
        raise QueryError(
            f"{len(ciphertexts)} ciphertexts but {length} partial decryptions per share"
        )
    out = []
    mu: dict[int, int] | None = None
    for k in range(length):
        column = [ps[k] for ps in lists]
        checked = _check_partials(column, key, verify)
        if ciphertexts is not None and int(ciphertexts[k]) != checked[0].ciphertext:
            raise QueryError(
                f"partial decryptions at position {k} are not of the agreed ciphertext"
            )
        if mu is None or set(mu) != {p.index for p in checked}:
            mu = _lagrange([p.index for p in checked], key.delta)
        m = _combine_checked(checked, key, mu)
        out.append(to_signed(m, key.n) if signed else m)
    return out
