"""Homomorphic encryption: a fast Paillier core wire-compatible with python-paillier.

* :func:`generate_keypair`, :class:`PublicKey`, :class:`PrivateKey`,
  :class:`EncryptedVector` — :mod:`pets.he.paillier` (randomiser profiles, costs, the
  security assumptions of each);
* phe's EncodedNumber semantics, one exponent per column — :mod:`pets.he.encoding`;
* :class:`Packer`, :class:`PackedVector` — many small integers per plaintext, overflow
  refused — :mod:`pets.he.packing`;
* phe's JSON and JWK forms — :mod:`pets.he.serialize`;
* threshold decryption — :mod:`pets.he.threshold`;
* the checks every key passes (modulus of at least 2048 bits, odd, not prime, not a
  perfect power; p and q prime; threshold t ≥ 2 for two or more holders) and
  :func:`weak_keys_allowed`, the one opt-in for 1024-bit test keys —
  :mod:`pets.he.keycheck`.

Example
-------
>>> from pets import he                                             # doctest: +SKIP
>>> pub, priv = he.generate_keypair(2048)                           # doctest: +SKIP
>>> priv.decrypt_many(pub.encrypt_many([1, 2, 3]).sum())            # doctest: +SKIP
array([6])
"""

from .keycheck import weak_keys_allowed
from .packing import PackedVector, Packer
from .paillier import EncryptedVector, PrivateKey, PublicKey, generate_keypair
from .phe_interop import from_phe, to_phe
from .threshold import (
    KeyShare,
    PartialDecryption,
    ThresholdKey,
    combine,
    combine_many,
    deal,
)
from .serialize import (
    base64url_to_int,
    dumps_private_key,
    dumps_public_key,
    dumps_vector,
    int_to_base64url,
    loads_key,
    loads_vector,
    private_key_from_jwk,
    private_key_to_jwk,
    public_key_from_jwk,
    public_key_to_jwk,
)

__all__ = [
    "from_phe",
    "to_phe",
    "KeyShare",
    "PartialDecryption",
    "ThresholdKey",
    "combine",
    "combine_many",
    "deal",
    "EncryptedVector",
    "PackedVector",
    "Packer",
    "PrivateKey",
    "PublicKey",
    "base64url_to_int",
    "dumps_private_key",
    "dumps_public_key",
    "dumps_vector",
    "generate_keypair",
    "int_to_base64url",
    "loads_key",
    "loads_vector",
    "private_key_from_jwk",
    "private_key_to_jwk",
    "public_key_from_jwk",
    "public_key_to_jwk",
    "weak_keys_allowed",
]
