"""A fast Paillier cryptosystem on gmpy2, wire-compatible with python-paillier (``phe``).

Keys are the same numbers as ``phe``'s: a public key is n alone (g = n + 1), a private
key is (p, q). A ciphertext is an int modulo n² plus ``phe``'s EncodedNumber exponent, so
ciphertexts cross between pets and ``phe`` both ways::

    >>> pub, priv = generate_keypair(2048)                           # doctest: +SKIP
    >>> v = pub.encrypt_many([1.5, -2, 3])                           # doctest: +SKIP
    >>> priv.decrypt_many((v + v).sum() * 3)                         # doctest: +SKIP
    array([15.])

Encryption is c = (1 + n·m) · R mod n² with R a random n-th residue. (1 + n·m) needs no
exponentiation (m < n, so 1 + n·m < n² is a single multiplication); all the cost is in R.
Three randomiser profiles:

``"djn"`` (the default)
    R = hs^x mod n² with hs = (−y²)^n mod n² (y random, derived by the encryptor from n
    alone, so any ``phe`` public key works) and x uniform of ⌈k/2⌉ bits (k = bits of n),
    from :mod:`secrets`. This is the randomiser of Damgård, Jurik and Nielsen ("A
    generalization of Paillier's public-key system with applications to electronic
    voting", IJIS 2010), used by HEU, Intel IPCL and Google's private-join-and-compute.
    Security: semantic security under DCR plus the assumption that hs^x with such an x is
    indistinguishable from a uniformly random element of ⟨hs⟩ (the DJN assumption).
    hs^x is computed with a fixed-base table of byte windows, hs^(j·256^i) for every byte
    position i and byte value j, built once per key and cached (0.13 s and ≈ 18 MB at
    2048 bits, 0.35 s and ≈ 40 MB at 3072). **Cost per encryption: ⌈k/16⌉ − 1
    multiplications mod n² for hs^x (one per byte of x, the first is a table read; a zero
    byte is skipped) + 1 for (1 + n·m) · R = ⌈k/16⌉ multiplications mod n², i.e. 128 at
    2048 bits and 192 at 3072** (:func:`modmul_count`). **The table lookup is not
    constant-time**: an attacker sharing the CPU cache could learn bytes of x and hence m.
``"short_exponent"`` (opt-in)
    The same with x of 4λ bits (λ = 112 at 2048 bits, 128 at 3072, 152 at 4096), i.e. 56
    resp. 64 multiplications. It rests on the *short-exponent* assumption on top of DCR:
    hs^x with x of only 4λ bits is indistinguishable from hs^x with a full-length x in the
    subgroup ⟨hs⟩ of unknown order (Koshiba–Kurosawa, "Short exponent Diffie–Hellman
    problems", PKC 2004; as used for DJN-style randomisers). The best known attacks on a
    c-bit exponent (Pollard's lambda, baby-step giant-step) cost 2^(c/2), so 2λ bits is
    the floor that keeps λ-bit security and 4λ leaves a margin; a custom
    ``randomness_bits`` below 2λ is refused.
``"phe"`` (reference)
    R = r^n mod n² with r uniform in Z*_n, as ``phe`` does: about k squarings mod n².
    Security under DCR alone.

The key owner encrypts faster with :meth:`PrivateKey.encrypt_many`: the same hs^x, computed
mod p² and mod q² with two half-size tables and recombined by CRT (for ``"phe"``:
y_p^p mod p² and y_q^q mod q²). Decryption uses CRT with ``phe``'s precomputed hp, hq.

Large batches (``len(values) >= POOL_THRESHOLD``, 1,000) are split over a process pool
(:class:`concurrent.futures.ProcessPoolExecutor`, ``workers=`` processes, default: the
CPUs available; measured 1.85× at 2,000 values and 1.98× at 6,000 on 2 cores, break-even
near 500). On Linux the pool forks, so workers inherit the already-built table at no
cost; elsewhere each worker rebuilds it once. The forked workers only compute with gmpy2
and return ints, but forking a process that runs other threads (e.g. a DuckDB query at
the same moment) is best avoided: pass ``workers=1`` there. ``workers=1``, small batches
and calls from inside a daemonic process stay in this process.

**Keys are checked** (:mod:`pets.he.keycheck`): n of at least 2048 bits, odd, not prime,
not a perfect power, no prime factor below 2¹⁶; p and q distinct primes with p·q = n.
1024-bit keys only inside :func:`pets.he.weak_keys_allowed` (tests). Security here means
semantic security against whoever does not hold p and q: these checks cannot tell
whether someone besides the key owner knows the factors of a given n.

Keys must never be pickled to storage (use :mod:`pets.he.serialize`'s JWK forms); the
only pickling here is to spawned pool workers on platforms without ``fork`` (a key below
2048 bits is rebuilt there as it was built, inside the opt-in).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import secrets
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import gmpy2
import numpy as np

from ..errors import DataError, QueryError
from . import encoding as _enc
from . import keycheck as _keycheck

__all__ = [
    "POOL_THRESHOLD",
    "PROFILES",
    "EncryptedVector",
    "PrivateKey",
    "PublicKey",
    "generate_keypair",
    "modmul_count",
    "security_bits",
]

PROFILES = ("djn", "short_exponent", "phe")
KEY_SIZES = (2048, 3072, 4096)
WEAK_KEY_SIZES = (1024,)  # inside pets.he.weak_keys_allowed() only (tests)
DEFAULT_BITS = 3072
MIN_MODULUS_BITS = _keycheck.MIN_BITS  # 1024 inside pets.he.weak_keys_allowed() (tests)
POOL_THRESHOLD = 1000
"""Batches at least this long go to a process pool (unless ``workers=1``)."""
WINDOW_BITS = 8

_mpz = gmpy2.mpz
_ONE = gmpy2.mpz(1)


def security_bits(modulus_bits: int) -> int:
    """λ, the estimated security of a modulus (NIST SP 800-56B): 112 at 2048 bits, 128 at
    3072, 152 at 4096; 80 below 2048 (test keys only)."""
    if modulus_bits >= 4096:
        return 152
    if modulus_bits >= 3072:
        return 128
    if modulus_bits >= 2048:
        return 112
    return 80


def modmul_count(
    modulus_bits: int, profile: str = "djn", randomness_bits: int | None = None
) -> int:
    """Multiplications mod n² one encryption needs with the fixed-base table.

    ⌈x_bits / 8⌉ − 1 for hs^x (one per byte of x; the first is a table read) plus one for
    (1 + n·m) · R. ``"phe"`` is not table-based (≈ k squarings + k/5 multiplications).
    """
    if profile == "djn":
        x_bits = (modulus_bits + 1) // 2
    elif profile == "short_exponent":
        x_bits = randomness_bits or 4 * security_bits(modulus_bits)
    else:
        raise QueryError(
            "modmul_count applies to the table-based profiles 'djn' and 'short_exponent'"
        )
    return -(-x_bits // WINDOW_BITS)


# --------------------------------------------------------------------------- key generation


def _random_prime(bits: int) -> gmpy2.mpz:
    """A random prime of exactly ``bits`` bits with its top two bits set (CSPRNG start)."""
    top = 3 << (bits - 2)
    while True:
        start = _mpz(secrets.randbits(bits)) | top | 1
        p = gmpy2.next_prime(start)
        if p.bit_length() == bits and gmpy2.is_prime(p, 40):
            return p


def generate_keypair(bits: int = DEFAULT_BITS) -> tuple[PublicKey, PrivateKey]:
    """A fresh key pair: n = p·q of exactly ``bits`` bits, |p| = |q| = bits/2.

    p and q come from :mod:`secrets` (random odd numbers with the top two bits set, then
    gmpy2's ``next_prime``, re-checked with 40 rounds of ``is_prime``); p ≠ q,
    |p − q| ≥ 2^(bits/2 − 100) and gcd(n, (p−1)(q−1)) = 1. ``bits`` is 2048 (≈ 112-bit
    security), 3072 (≈ 128-bit, the default, as ``phe``'s) or 4096 (≈ 152-bit); 1024
    only inside :func:`pets.he.weak_keys_allowed` (tests), else :class:`QueryError`.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise QueryError("bits must be an integer: 2048, 3072 or 4096")
    bits = int(bits)
    _keycheck.check_bits(bits)
    allowed = KEY_SIZES + WEAK_KEY_SIZES if _keycheck.weak_keys_are_allowed() else KEY_SIZES
    if bits not in allowed:
        raise QueryError(f"bits must be one of {allowed}, got {bits}")
    half = bits // 2
    min_gap = _mpz(1) << (half - 100)
    while True:
        p = _random_prime(half)
        q = _random_prime(half)
        if p == q or abs(p - q) < min_gap:
            continue
        n = p * q
        if n.bit_length() != bits or gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
            continue
        public_key = PublicKey(int(n))
        return public_key, PrivateKey(public_key, int(p), int(q))


# --------------------------------------------------------------------------- fixed-base tables


class _FixedBase:
    """base^x mod m for random x of ``x_bits`` bits, by a table of byte windows.

    Row i holds base^(j · 256^i) for j = 0..255, so base^x = ∏_i row_i[byte_i(x)]:
    one multiplication per nonzero byte. The lookup is not constant-time.
    """

    __slots__ = ("base", "modulus", "nbytes", "rows", "top_mask", "x_bits")

    def __init__(self, base: Any, modulus: Any, x_bits: int) -> None:
        self.base = _mpz(base)
        self.modulus = _mpz(modulus)
        self.x_bits = int(x_bits)
        self.nbytes = -(-self.x_bits // 8)
        extra = self.nbytes * 8 - self.x_bits
        self.top_mask = 0xFF >> extra if extra else 0
        mod = self.modulus
        rows = []
        b = self.base % mod
        for _ in range(self.nbytes):
            row = [_ONE] * 256
            acc = _ONE
            for j in range(1, 256):
                acc = acc * b % mod
                row[j] = acc
            rows.append(row)
            b = acc * b % mod  # base^(256^(i+1))
        self.rows = rows

    def random_bytes(self) -> bytes:
        xb = secrets.token_bytes(self.nbytes)
        if self.top_mask:
            xb = xb[:-1] + bytes((xb[-1] & self.top_mask,))
        return xb

    def power(self, xb: bytes) -> gmpy2.mpz:
        """base^x mod m for x given as little-endian bytes."""
        mod = self.modulus
        r = _ONE
        for row, d in zip(self.rows, xb):
            if d:
                r = r * row[d] % mod
        return r

    def random_power(self) -> gmpy2.mpz:
        return self.power(self.random_bytes())


def _random_unit(n: Any) -> gmpy2.mpz:
    n = _mpz(n)
    while True:
        r = _mpz(secrets.randbelow(int(n) - 1) + 1)
        if gmpy2.gcd(r, n) == 1:
            return r


def _djn_base(n: Any, n2: Any) -> gmpy2.mpz:
    """hs = (−y²)^n mod n² for a fresh random unit y: derived from n alone."""
    n = _mpz(n)
    y = _random_unit(n)
    return gmpy2.powmod(n - (y * y) % n, n, n2)


# --------------------------------------------------------------------------- process pool

_POOL_STATE: tuple[Any, str, int | None] | None = None


def _pool_init(encryptor: Any, profile: str, x_bits: int | None) -> None:
    global _POOL_STATE
    _POOL_STATE = (encryptor, profile, x_bits)


def _pool_encrypt(chunk: list[int]) -> list[int]:
    assert _POOL_STATE is not None
    encryptor, profile, x_bits = _POOL_STATE
    return encryptor._encrypt_serial(chunk, profile, x_bits)


def _mp_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _resolve_workers(workers: int | None) -> int:
    if workers is None:
        return _available_cpus()
    if (
        isinstance(workers, bool)
        or not isinstance(workers, int | np.integer)
        or workers < 1
    ):
        raise QueryError("workers must be a positive integer (or None for all CPUs)")
    return int(workers)


def _encrypt_batch(
    encryptor: Any,
    plaintexts: list[int],
    profile: str,
    x_bits: int | None,
    workers: int | None,
) -> list[int]:
    count = len(plaintexts)
    w = min(_resolve_workers(workers), count)
    if w <= 1 or count < POOL_THRESHOLD or multiprocessing.current_process().daemon:
        return encryptor._encrypt_serial(plaintexts, profile, x_bits)
    encryptor._prepare(
        profile, x_bits
    )  # build the table here: forked workers inherit it
    nchunks = w * 4
    step = -(-count // nchunks)
    chunks = [plaintexts[i : i + step] for i in range(0, count, step)]
    with ProcessPoolExecutor(
        max_workers=w,
        mp_context=_mp_context(),
        initializer=_pool_init,
        initargs=(encryptor, profile, x_bits),
    ) as pool:
        out: list[int] = []
        for part in pool.map(_pool_encrypt, chunks):
            out.extend(part)
    return out


# --------------------------------------------------------------------------- keys


def _rebuild_context(n: int) -> Any:
    """The context to rebuild an unpickled key of modulus ``n`` in (see PublicKey)."""
    import contextlib

    small = int(n).bit_length() < _keycheck.MIN_BITS
    return _keycheck.weak_keys_allowed() if small else contextlib.nullcontext()


def _fingerprint(n: int) -> str:
    raw = int(n).to_bytes((int(n).bit_length() + 7) // 8, "big")
    return hashlib.sha256(raw).hexdigest()[:16]


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer | type(_ONE)):
        raise QueryError(f"{what} must be an integer")
    return int(value)


class PublicKey:
    """A Paillier public key: the modulus n (g = n + 1), as ``phe.PaillierPublicKey``.

    ``n`` must have at least 2048 bits and be odd, not a perfect power (e.g. a square),
    free of prime factors below 2¹⁶ and not prime (gmpy2's BPSW test), else
    :class:`pets.errors.QueryError` says which (:mod:`pets.he.keycheck`). Moduli of
    1024–2047 bits are accepted only inside :func:`pets.he.weak_keys_allowed` (tests).
    These checks cannot prove that n = p·q with p, q known only to the key owner: take a
    public key from its owner over an authenticated channel. Attributes: ``n``,
    ``nsquare``, ``g``, ``max_int`` (``n // 3 - 1``, ``phe``'s bound for signed
    encodings), ``bits``.
    """

    def __init__(self, n: int) -> None:
        n = _keycheck.check_modulus(n)
        self.n = n
        self.nsquare = n * n
        self.g = n + 1
        self.max_int = n // 3 - 1
        self._n = _mpz(n)
        self._n2 = _mpz(self.nsquare)
        self._tables: dict[int, _FixedBase] = {}
        self._lock = threading.Lock()

    # -- identity
    @property
    def bits(self) -> int:
        return self.n.bit_length()

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of SHA-256 of n (big-endian): names the key in logs and JWKs."""
        return _fingerprint(self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("pets.he.PublicKey", self.n))

    def __repr__(self) -> str:
        return f"<pets.he.PublicKey {self.bits} bits {self.fingerprint}>"

    @classmethod
    def from_phe(cls, key: Any) -> "PublicKey":
        """The same key from a ``phe.PaillierPublicKey`` (its n)."""
        from .phe_interop import from_phe

        if not is_phe(key):
            raise QueryError("PublicKey.from_phe takes a phe.PaillierPublicKey")
        return from_phe(key)

    def to_phe(self) -> Any:
        """This key as a ``phe.PaillierPublicKey``."""
        from .phe_interop import to_phe

        return to_phe(self)

    # Pickling exists only for spawned pool workers (never store keys this way). A key
    # below 2048 bits could only have been built inside weak_keys_allowed(): the worker
    # rebuilds it the same way.
    def __getstate__(self) -> dict[str, Any]:
        return {"n": self.n}  # tables are rebuilt where needed

    def __setstate__(self, state: dict[str, Any]) -> None:
        with _rebuild_context(state["n"]):
            self.__init__(state["n"])  # type: ignore[misc]

    # -- randomisers
    def _resolve_profile(self, profile: str, randomness_bits: int | None) -> int | None:
        """x_bits for the table profiles, None for ``"phe"``."""
        if profile == "djn":
            if randomness_bits is not None:
                raise QueryError(
                    "randomness_bits applies to profile='short_exponent' only; 'djn' uses "
                    "⌈bits/2⌉-bit exponents"
                )
            return (self.bits + 1) // 2
        if profile == "short_exponent":
            lam = security_bits(self.bits)
            if randomness_bits is None:
                return 4 * lam
            x_bits = _as_int(randomness_bits, "randomness_bits")
            if x_bits < 2 * lam:
                raise QueryError(
                    f"randomness_bits={x_bits} is too short for a {self.bits}-bit key: the "
                    f"short-exponent profile needs at least 2λ = {2 * lam} bits (default "
                    f"4λ = {4 * lam})"
                )
            if x_bits > self.bits:
                raise QueryError(f"randomness_bits must be at most {self.bits}")
            return x_bits
        if profile == "phe":
            if randomness_bits is not None:
                raise QueryError(
                    "randomness_bits applies to profile='short_exponent' only"
                )
            return None
        raise QueryError(f"unknown profile {profile!r}: use one of {PROFILES}")

    def _table(self, x_bits: int) -> _FixedBase:
        table = self._tables.get(x_bits)
        if table is None:
            with self._lock:
                table = self._tables.get(x_bits)
                if table is None:
                    table = _FixedBase(_djn_base(self._n, self._n2), self._n2, x_bits)
                    self._tables[x_bits] = table
        return table

    def _prepare(self, profile: str, x_bits: int | None) -> None:
        if x_bits is not None:
            self._table(x_bits)

    def _randomiser(self, profile: str, x_bits: int | None) -> Any:
        """A function returning one fresh random n-th residue R mod n²."""
        if x_bits is None:
            n, n2 = self._n, self._n2
            return lambda: gmpy2.powmod(_random_unit(n), n, n2)
        return self._table(x_bits).random_power

    # -- encryption
    def _encrypt_serial(
        self, plaintexts: Sequence[int], profile: str, x_bits: int | None
    ) -> list[int]:
        n, n2 = self._n, self._n2
        rand = self._randomiser(profile, x_bits)
        return [int((n * m + 1) * rand() % n2) for m in plaintexts]

    def _check_plaintexts(self, plaintexts: Iterable[Any]) -> list[int]:
        out = []
        n = self.n
        for m in plaintexts:
            m = _as_int(m, "a plaintext")
            if not 0 <= m < n:
                raise QueryError("raw plaintexts must lie in [0, n)")
            out.append(m)
        return out

    def raw_encrypt_many(
        self,
        plaintexts: Iterable[int],
        profile: str = "djn",
        *,
        randomness_bits: int | None = None,
        workers: int | None = None,
    ) -> list[int]:
        """Encrypt already-encoded plaintexts in [0, n); return ciphertext ints mod n²."""
        x_bits = self._resolve_profile(profile, randomness_bits)
        return _encrypt_batch(
            self, self._check_plaintexts(plaintexts), profile, x_bits, workers
        )

    def raw_encrypt(self, plaintext: int, profile: str = "djn") -> int:
        """Encrypt one plaintext in [0, n) (as ``phe``'s ``raw_encrypt``)."""
        return self.raw_encrypt_many([plaintext], profile, workers=1)[0]

    def encrypt_many(
        self,
        values: Iterable[Any],
        exponent: int | None = None,
        precision: float | None = None,
        profile: str = "djn",
        *,
        randomness_bits: int | None = None,
        workers: int | None = None,
    ) -> EncryptedVector:
        """Encode a column with one shared exponent (:mod:`pets.he.encoding`) and encrypt it.

        ``exponent`` fixes the EncodedNumber exponent (values rounded to its grid);
        ``precision`` fixes it to ``floor(log16(precision))``; otherwise it is the smallest
        exponent any value needs (0 for an all-integer column). ``profile`` picks the
        randomiser (module docstring); ``workers`` the process count for batches of at
        least :data:`POOL_THRESHOLD` values.
        """
        x_bits = self._resolve_profile(profile, randomness_bits)
        encodings, e = _enc.encode_column(self.n, values, exponent, precision)
        cts = _encrypt_batch(self, encodings, profile, x_bits, workers)
        return EncryptedVector(self, cts, e, _fresh=True)

    def rerandomize_many(self, ciphertexts: Sequence[int]) -> list[int]:
        """Multiply each ciphertext by a fresh random n-th residue (``phe``'s obfuscate)."""
        n2 = self._n2
        if len(ciphertexts) < 16 and not self._tables:
            rand = self._randomiser("phe", None)  # cheaper than building a table
        else:
            rand = self._table((self.bits + 1) // 2).random_power
        return [int(_mpz(c) * rand() % n2) for c in ciphertexts]


class PrivateKey:
    """A Paillier private key (p, q) for ``public_key``, as ``phe.PaillierPrivateKey``.

    p and q must be distinct (BPSW probable) primes with p·q = n and
    gcd(n, (p − 1)(q − 1)) = 1, else :class:`pets.errors.QueryError` says which. Like
    ``phe``, p and q are stored with p < q. Decryption uses CRT with ``phe``'s
    precomputed hp = L_p(g^(p−1) mod p²)⁻¹ mod p and hq. :meth:`encrypt_many` is the key
    owner's faster encryption (CRT; same profiles and output as the public key's).
    """

    def __init__(self, public_key: PublicKey, p: int, q: int) -> None:
        if is_phe(public_key):  # phe's PaillierPublicKey: the same n
            public_key = PublicKey(public_key.n)
        if not isinstance(public_key, PublicKey):
            raise QueryError("public_key must be a pets.he.PublicKey")
        p = _as_int(p, "p")
        q = _as_int(q, "q")
        _keycheck.check_prime_factors(public_key.n, p, q)
        if q < p:
            p, q = q, p
        self.public_key = public_key
        self.p = p
        self.q = q
        self._p, self._q = _mpz(p), _mpz(q)
        self.psquare = p * p
        self.qsquare = q * q
        self._p2, self._q2 = _mpz(self.psquare), _mpz(self.qsquare)
        self.p_inverse = int(gmpy2.invert(self._p, self._q))
        g = _mpz(public_key.g)
        self.hp = int(self._h(g, self._p, self._p2))
        self.hq = int(self._h(g, self._q, self._q2))
        self._hp, self._hq = _mpz(self.hp), _mpz(self.hq)
        self._p_inv = _mpz(self.p_inverse)
        self._p2_inv_q2 = gmpy2.invert(self._p2, self._q2)
        self._tables: dict[int, tuple[_FixedBase, _FixedBase]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_phe(cls, key: Any) -> "PrivateKey":
        """The same key from a ``phe.PaillierPrivateKey`` (its p and q)."""
        from .phe_interop import from_phe

        if not is_phe(key):
            raise QueryError("PrivateKey.from_phe takes a phe.PaillierPrivateKey")
        return from_phe(key)

    def to_phe(self) -> Any:
        """This key as a ``phe.PaillierPrivateKey``."""
        from .phe_interop import to_phe

        return to_phe(self)

    @staticmethod
    def _h(g: Any, x: Any, x2: Any) -> Any:
        return gmpy2.invert((gmpy2.powmod(g, x - 1, x2) - 1) // x, x)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and (other.p, other.q) == (self.p, self.q)

    def __hash__(self) -> int:
        return hash(("pets.he.PrivateKey", self.p, self.q))

    def __repr__(self) -> str:
        return f"<pets.he.PrivateKey for {self.public_key!r}>"

    def __getstate__(self) -> dict[str, Any]:
        return {"n": self.public_key.n, "p": self.p, "q": self.q}

    def __setstate__(self, state: dict[str, Any]) -> None:
        with _rebuild_context(state["n"]):
            self.__init__(PublicKey(state["n"]), state["p"], state["q"])  # type: ignore[misc]

    @property
    def n(self) -> int:
        return self.public_key.n

    # -- decryption
    def _raw_decrypt(self, c: Any) -> int:
        p, q, p2, q2 = self._p, self._q, self._p2, self._q2
        mp = (gmpy2.powmod(c, p - 1, p2) - 1) // p * self._hp % p
        mq = (gmpy2.powmod(c, q - 1, q2) - 1) // q * self._hq % q
        u = (mq - mp) * self._p_inv % q
        return int(mp + u * p)

    def _checked(self, c: Any) -> gmpy2.mpz:
        c = _mpz(_as_int(c, "a ciphertext"))
        if not 0 < c < self.public_key._n2 or gmpy2.gcd(c, self.public_key._n) != 1:
            raise DataError("ciphertext is not valid under this public key")
        return c

    def raw_decrypt(self, ciphertext: int) -> int:
        """The plaintext in [0, n) of one ciphertext int (as ``phe``'s ``raw_decrypt``)."""
        return self._raw_decrypt(self._checked(ciphertext))

    def raw_decrypt_many(self, ciphertexts: Iterable[int]) -> list[int]:
        return [self._raw_decrypt(self._checked(c)) for c in ciphertexts]

    def decrypt_many(self, vector: Any) -> np.ndarray:
        """Decrypt and decode a vector: int64 (or object ints) if its exponent is ≥ 0, else
        float64. A :class:`pets.he.PackedVector` is unpacked into its slot values.

        Raises :class:`pets.errors.DataError` if the vector belongs to another key, a
        ciphertext is invalid, or a value lies in the overflow band.
        """
        from .packing import PackedVector

        if isinstance(vector, PackedVector):
            return vector.decrypt(self)
        if is_phe(vector) or (isinstance(vector, (list, tuple)) and vector and all(map(is_phe, vector))):
            from .phe_interop import from_phe

            vector = from_phe(vector)  # phe EncryptedNumber(s): the same ciphertexts
        if not isinstance(vector, EncryptedVector):
            raise QueryError("decrypt_many takes an EncryptedVector, a PackedVector or phe EncryptedNumbers")
        if vector.public_key.n != self.public_key.n:
            raise DataError("the vector was encrypted under another public key")
        plain = self.raw_decrypt_many(vector._c)
        return _enc.decode_column(self.public_key.n, plain, vector.exponent)

    # -- CRT encryption for the key owner
    def _tables_for(self, x_bits: int) -> tuple[_FixedBase, _FixedBase]:
        tables = self._tables.get(x_bits)
        if tables is None:
            with self._lock:
                tables = self._tables.get(x_bits)
                if tables is None:
                    pk = self.public_key
                    hs = _djn_base(pk._n, pk._n2)
                    tables = (
                        _FixedBase(hs % self._p2, self._p2, x_bits),
                        _FixedBase(hs % self._q2, self._q2, x_bits),
                    )
                    self._tables[x_bits] = tables
        return tables

    def _prepare(self, profile: str, x_bits: int | None) -> None:
        if x_bits is not None:
            self._tables_for(x_bits)

    def _encrypt_serial(
        self, plaintexts: Sequence[int], profile: str, x_bits: int | None
    ) -> list[int]:
        p, q, p2, q2 = self._p, self._q, self._p2, self._q2
        inv = self._p2_inv_q2
        out = []
        if x_bits is None:
            for m in plaintexts:
                # y_p^p mod p², y_q^q mod q²: a uniform n-th residue, recombined by CRT.
                rp = gmpy2.powmod(_random_unit(p), p, p2)
                rq = gmpy2.powmod(_random_unit(q), q, q2)
                cp = (p * (q * m % p) + 1) * rp % p2
                cq = (q * (p * m % q) + 1) * rq % q2
                out.append(int(cp + p2 * ((cq - cp) * inv % q2)))
            return out
        tp, tq = self._tables_for(x_bits)
        for m in plaintexts:
            xb = tp.random_bytes()
            # (1 + n·m) mod p² = 1 + p·(q·m mod p), likewise mod q².
            cp = (p * (q * m % p) + 1) * tp.power(xb) % p2
            cq = (q * (p * m % q) + 1) * tq.power(xb) % q2
            out.append(int(cp + p2 * ((cq - cp) * inv % q2)))
        return out

    def raw_encrypt_many(
        self,
        plaintexts: Iterable[int],
        profile: str = "djn",
        *,
        randomness_bits: int | None = None,
        workers: int | None = None,
    ) -> list[int]:
        """CRT encryption of plaintexts in [0, n) (same output distribution as the public key's)."""
        pk = self.public_key
        x_bits = pk._resolve_profile(profile, randomness_bits)
        return _encrypt_batch(
            self, pk._check_plaintexts(plaintexts), profile, x_bits, workers
        )

    def encrypt_many(
        self,
        values: Iterable[Any],
        exponent: int | None = None,
        precision: float | None = None,
        profile: str = "djn",
        *,
        randomness_bits: int | None = None,
        workers: int | None = None,
    ) -> EncryptedVector:
        """As :meth:`PublicKey.encrypt_many`, faster by CRT (the key owner only)."""
        pk = self.public_key
        x_bits = pk._resolve_profile(profile, randomness_bits)
        encodings, e = _enc.encode_column(pk.n, values, exponent, precision)
        cts = _encrypt_batch(self, encodings, profile, x_bits, workers)
        return EncryptedVector(pk, cts, e, _fresh=True)


# --------------------------------------------------------------------------- vectors


def is_phe(obj: Any) -> bool:
    """True for python-paillier's objects (checked by module, without importing phe)."""
    return type(obj).__module__.split(".")[0] == "phe"


def _check_ciphertexts(public_key: PublicKey, ciphertexts: Iterable[Any]) -> list[int]:
    n, n2 = public_key._n, public_key._n2
    out = []
    for c in ciphertexts:
        try:
            c = int(c)
        except (TypeError, ValueError):
            raise DataError("ciphertext is not valid under this public key") from None
        if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:
            raise DataError("ciphertext is not valid under this public key")
        out.append(c)
    return out


class EncryptedVector:
    """Ciphertexts of one column under one key, sharing one EncodedNumber exponent.

    ``.ciphertexts`` (Python ints mod n²), ``.exponent``, ``.public_key``. Operations,
    all under the same key (else :class:`pets.errors.DataError`):

    * ``v + w`` elementwise with another vector of the same length; different exponents
      are aligned as ``phe`` does (the one with the larger exponent is multiplied by
      BASE^diff, i.e. its ciphertexts raised to 16^diff);
    * ``v + x`` with a plain scalar or array (encoded with ``max_exponent=v.exponent``, as
      ``phe``'s ``_add_scalar``); ``-v``, ``v - w``;
    * ``v * k`` by a plain int or float scalar or array (ciphertext^encoding mod n²;
      negative factors through the inverse); the exponents add;
    * ``v.sum()`` — a one-element vector, the product of the ciphertexts mod n²;
    * ``len(v)``, ``v[i]``, ``v[a:b]`` (vectors again).

    Like ``phe``, results of ``*`` and plain ``+`` are not re-randomised (they reveal their
    relation to the inputs to whoever holds both); :meth:`rerandomize` does it, and
    :func:`pets.he.dumps_vector` does it automatically for such vectors. Sums of fresh
    ciphertexts need none.
    """

    __slots__ = ("_c", "_fresh", "exponent", "public_key")

    def __init__(
        self,
        public_key: PublicKey,
        ciphertexts: Iterable[int],
        exponent: int = 0,
        *,
        validate: bool = False,
        _fresh: bool = False,
    ) -> None:
        if is_phe(public_key):  # phe's PaillierPublicKey: the same n
            public_key = PublicKey(public_key.n)
        if not isinstance(public_key, PublicKey):
            raise QueryError("public_key must be a pets.he.PublicKey")
        self.public_key = public_key
        if validate:
            self._c = _check_ciphertexts(public_key, ciphertexts)
        else:
            self._c = [int(c) for c in ciphertexts]
        self.exponent = _as_int(exponent, "exponent")
        self._fresh = _fresh

    @property
    def ciphertexts(self) -> list[int]:
        return list(self._c)

    @classmethod
    def from_phe(cls, numbers: Any) -> "EncryptedVector":
        """A vector of phe ``EncryptedNumber``s (one key), their ciphertexts unchanged
        (:func:`pets.he.from_phe`)."""
        from .phe_interop import from_phe

        return from_phe(numbers)

    def to_phe(self, public_key: Any = None) -> list[Any]:
        """These ciphertexts as phe ``EncryptedNumber``s (:func:`pets.he.to_phe`)."""
        from .phe_interop import to_phe

        return to_phe(self, public_key)

    @property
    def needs_rerandomize(self) -> bool:
        """True if the vector came from ``*`` or plain ``+`` and has not been re-randomised."""
        return not self._fresh

    def __len__(self) -> int:
        return len(self._c)

    def __repr__(self) -> str:
        return (
            f"<pets.he.EncryptedVector {len(self._c)} ciphertexts, exponent {self.exponent}, "
            f"key {self.public_key.fingerprint}>"
        )

    def __getitem__(self, index: int | slice) -> EncryptedVector:
        if isinstance(index, slice):
            return EncryptedVector(
                self.public_key, self._c[index], self.exponent, _fresh=self._fresh
            )
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise QueryError("index an EncryptedVector with an int or a slice")
        return EncryptedVector(
            self.public_key, [self._c[int(index)]], self.exponent, _fresh=self._fresh
        )

    def _same_key(self, other: EncryptedVector) -> None:
        if other.public_key.n != self.public_key.n:
            raise DataError(
                "cannot combine vectors encrypted under different public keys"
            )

    def decrease_exponent_to(self, new_exponent: int) -> EncryptedVector:
        """The same values with a smaller exponent (ciphertexts raised to 16^diff)."""
        new_exponent = _as_int(new_exponent, "new_exponent")
        if new_exponent > self.exponent:
            raise QueryError("the exponent can only be decreased without decrypting")
        if new_exponent == self.exponent:
            return self
        factor = _mpz(_enc.BASE) ** (self.exponent - new_exponent)
        n2 = self.public_key._n2
        cts = [int(gmpy2.powmod(c, factor, n2)) for c in self._c]
        return EncryptedVector(self.public_key, cts, new_exponent)

    def _plain(self, other: Any) -> tuple[list[int], int, bool]:
        """Encode a plain scalar or array; (encodings, exponent, is_scalar)."""
        if isinstance(other, int | float | np.integer | np.floating) and not isinstance(
            other, bool
        ):
            enc, e = _enc.encode(self.public_key.n, other, max_exponent=None)
            return [enc], e, True
        if isinstance(other, bool):
            raise QueryError("cannot combine an EncryptedVector with a bool")
        encs, e = _enc.encode_column(self.public_key.n, other)
        if len(encs) != len(self._c):
            raise QueryError(
                f"length mismatch: {len(self._c)} ciphertexts and {len(encs)} plain values"
            )
        return encs, e, False

    def __add__(self, other: Any) -> EncryptedVector:
        pk = self.public_key
        n2 = pk._n2
        if isinstance(other, EncryptedVector):
            self._same_key(other)
            if len(other) != len(self):
                raise QueryError(
                    f"length mismatch: {len(self)} and {len(other)} ciphertexts"
                )
            a, b = self, other
            if a.exponent > b.exponent:
                a = a.decrease_exponent_to(b.exponent)
            elif b.exponent > a.exponent:
                b = b.decrease_exponent_to(a.exponent)
            cts = [int(_mpz(x) * y % n2) for x, y in zip(a._c, b._c)]
            return EncryptedVector(
                pk, cts, a.exponent, _fresh=self._fresh and other._fresh
            )
        if hasattr(other, "summands") and hasattr(other, "packer"):
            raise QueryError("cannot add a PackedVector to an EncryptedVector")
        if (
            isinstance(other, int | np.integer)
            and not isinstance(other, bool)
            and other == 0
        ):
            return self
        # Plain values, phe's _add_scalar: encode with max_exponent = self.exponent.
        if isinstance(other, int | float | np.integer | np.floating) and not isinstance(
            other, bool
        ):
            e = _enc.value_exponent(other, max_exponent=self.exponent)
            encs = [_enc.encode(pk.n, other, max_exponent=e)[0]]
            scalar = True
        else:
            values = _enc._column_values(other)
            e = _enc.column_exponent(values, max_exponent=self.exponent)
            encs, e = _enc.encode_column(pk.n, values, exponent=e)
            scalar = False
            if len(encs) != len(self):
                raise QueryError(
                    f"length mismatch: {len(self)} ciphertexts and {len(encs)} plain values"
                )
        a = self.decrease_exponent_to(e) if e < self.exponent else self
        n = pk._n
        if scalar:
            g = n * encs[0] + 1
            cts = [int(g * c % n2) for c in a._c]
        else:
            cts = [int((n * m + 1) * c % n2) for m, c in zip(encs, a._c)]
        return EncryptedVector(pk, cts, a.exponent)

    def __radd__(self, other: Any) -> EncryptedVector:
        return self.__add__(other)

    def __mul__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector) or hasattr(other, "summands"):
            raise QueryError(
                "Paillier cannot multiply two ciphertexts; multiply by plain values"
            )
        encs, e, scalar = self._plain(other)
        pk = self.public_key
        n, n2, limit = pk.n, pk._n2, pk.n - pk.max_int
        exps = [m - n if m >= limit else m for m in encs]  # negatives via the inverse
        if scalar:
            k = exps[0]
            cts = [int(gmpy2.powmod(c, k, n2)) for c in self._c]
        else:
            cts = [int(gmpy2.powmod(c, k, n2)) for c, k in zip(self._c, exps)]
        return EncryptedVector(pk, cts, self.exponent + e)

    def __rmul__(self, other: Any) -> EncryptedVector:
        return self.__mul__(other)

    def __neg__(self) -> EncryptedVector:
        return self * -1

    def __sub__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self + (-other)
        if isinstance(other, int | float | np.integer | np.floating) and not isinstance(
            other, bool
        ):
            return self + (-other)
        return self + [-v for v in _enc._column_values(other)]

    def __rsub__(self, other: Any) -> EncryptedVector:
        return (-self) + other

    def sum(self) -> EncryptedVector:
        """A one-element vector: the product of all ciphertexts mod n² (the encrypted sum)."""
        n2 = self.public_key._n2
        acc = _ONE
        for c in self._c:
            acc = acc * c % n2
        return EncryptedVector(
            self.public_key, [int(acc)], self.exponent, _fresh=self._fresh
        )

    def rerandomize(self) -> EncryptedVector:
        """The same plaintexts under fresh randomness (``phe``'s ``obfuscate``)."""
        cts = self.public_key.rerandomize_many(self._c)
        return EncryptedVector(self.public_key, cts, self.exponent, _fresh=True)

    def decrypt(self, private_key: PrivateKey) -> np.ndarray:
        """Shorthand for ``private_key.decrypt_many(self)``."""
        return private_key.decrypt_many(self)
