"""python-paillier (``phe``) objects in and out of :mod:`pets.he`, without re-encoding.

pets' Paillier is phe's scheme (g = n + 1, phe's EncodedNumber with BASE 16), so the
numbers cross unchanged: a key is its n (and p, q), a ciphertext the same integer
mod n², an ``EncryptedNumber``'s exponent the vector's shared exponent. Nothing is
decrypted, re-encoded or re-encrypted on the way.

* :func:`from_phe` — ``phe.PaillierPublicKey`` → :class:`~pets.he.PublicKey`,
  ``phe.PaillierPrivateKey`` → :class:`~pets.he.PrivateKey`, an ``EncryptedNumber`` or a
  sequence of them (one key) → :class:`~pets.he.EncryptedVector`. Numbers with
  different exponents are aligned to the smallest as phe does when it adds them
  (``decrease_exponent_to``: a homomorphic step, the values do not change).
* :func:`to_phe` — the way back: keys to phe keys, a vector to a list of
  ``EncryptedNumber`` (with one shared ``phe.PaillierPublicKey``).
* ``PublicKey.from_phe`` / ``.to_phe()``, ``PrivateKey.from_phe`` / ``.to_phe()``,
  ``EncryptedVector.from_phe`` / ``.to_phe()`` are the same as methods, and
  ``PrivateKey.decrypt_many`` takes a list of phe ``EncryptedNumber`` directly.

A phe number that phe has not obfuscated (the result of ``*`` or of adding a plain
number) comes in marked as needing re-randomisation, as pets' own vectors are
(:attr:`~pets.he.EncryptedVector.needs_rerandomize`), so :func:`pets.he.dumps_vector`
re-randomises it before it leaves.

The same checks apply as to keys built from their numbers (:mod:`pets.he.keycheck`): a
phe key below 2048 bits is refused outside :func:`pets.he.weak_keys_allowed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import DataError, QueryError

__all__ = ["from_phe", "to_phe", "is_phe"]


def _phe() -> Any:
    try:
        from phe import paillier
    except ImportError:  # pragma: no cover - phe is a runtime dependency
        raise QueryError("phe (python-paillier) is not installed: pip install phe") from None
    return paillier


from .paillier import is_phe  # noqa: E402,F401  (re-exported)


def from_phe(obj: Any) -> Any:
    """A phe key, ``EncryptedNumber`` or sequence of ``EncryptedNumber`` as pets' object."""
    from .paillier import EncryptedVector, PrivateKey, PublicKey

    paillier = _phe()
    if isinstance(obj, paillier.PaillierPublicKey):
        return PublicKey(obj.n)
    if isinstance(obj, paillier.PaillierPrivateKey):
        return PrivateKey(PublicKey(obj.public_key.n), obj.p, obj.q)
    if isinstance(obj, paillier.EncryptedNumber):
        obj = [obj]
    if isinstance(obj, (str, bytes)) or not isinstance(obj, Iterable):
        raise QueryError(
            "from_phe takes a phe.PaillierPublicKey, a phe.PaillierPrivateKey, an "
            f"EncryptedNumber or a list of them, not {type(obj).__name__}"
        )
    nums = list(obj)
    if not nums:
        raise QueryError("from_phe needs at least one EncryptedNumber")
    if not all(isinstance(x, paillier.EncryptedNumber) for x in nums):
        bad = next(x for x in nums if not isinstance(x, paillier.EncryptedNumber))
        raise QueryError(f"from_phe takes phe EncryptedNumbers, got a {type(bad).__name__}")
    n = nums[0].public_key.n
    if any(x.public_key.n != n for x in nums):
        raise DataError("the EncryptedNumbers are under different public keys")
    exponent = min(x.exponent for x in nums)
    pub = PublicKey(n)
    fresh = True
    parts = []
    for x in nums:
        # phe's private flag: True once it has been obfuscated (fresh, or re-randomised)
        fresh &= bool(getattr(x, "_EncryptedNumber__is_obfuscated", False))
        parts.append(EncryptedVector(pub, [x.ciphertext(be_secure=False)], x.exponent, validate=True))
    fresh &= all(x.exponent == exponent for x in nums)  # aligning is a power: not fresh
    aligned = [p.decrease_exponent_to(exponent) for p in parts]
    return EncryptedVector(pub, [c for p in aligned for c in p.ciphertexts], exponent, _fresh=fresh)


def to_phe(obj: Any, public_key: Any = None) -> Any:
    """pets' key or vector as phe's: a ``PublicKey`` → ``phe.PaillierPublicKey``, a
    ``PrivateKey`` → ``phe.PaillierPrivateKey``, an ``EncryptedVector`` → a list of
    ``phe.EncryptedNumber`` sharing one ``phe.PaillierPublicKey`` (``public_key``, if
    given, must be phe's key for the same n: numbers of one key then share it)."""
    from .packing import PackedVector
    from .paillier import EncryptedVector, PrivateKey, PublicKey

    paillier = _phe()
    if isinstance(obj, PublicKey):
        return paillier.PaillierPublicKey(obj.n)
    if isinstance(obj, PrivateKey):
        return paillier.PaillierPrivateKey(paillier.PaillierPublicKey(obj.public_key.n), obj.p, obj.q)
    if isinstance(obj, PackedVector):
        raise QueryError("a PackedVector holds several values per ciphertext, which phe cannot "
                         "decode; decrypt it with pets (PrivateKey.decrypt_many)")
    if isinstance(obj, EncryptedVector):
        if public_key is None:
            public_key = paillier.PaillierPublicKey(obj.public_key.n)
        elif not isinstance(public_key, paillier.PaillierPublicKey) or public_key.n != obj.public_key.n:
            raise DataError("public_key must be phe's key for the vector's modulus")
        return [paillier.EncryptedNumber(public_key, c, obj.exponent) for c in obj.ciphertexts]
    raise QueryError(f"to_phe takes a pets.he PublicKey, PrivateKey or EncryptedVector, not {type(obj).__name__}")
