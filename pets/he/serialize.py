"""Keys and ciphertexts in python-paillier's (``phe``) JSON and JWK forms, both ways.

**Keys — JWK**, as ``pheutil genpkey`` writes them (integers base64url, big-endian, no
padding, as ``phe.util.int_to_base64``)::

    public:  {"kty": "DAJ", "alg": "PAI-GN1", "key_ops": ["encrypt"], "n": "...", "kid": "..."}
    private: {"kty": "DAJ", "key_ops": ["decrypt"], "p": "...", "q": "...",
              "pub": {<public JWK>}, "kid": "..."}

**Ciphertexts — JSON**, as in ``phe``'s documentation (README, "Serialisation")::

    {"public_key": {"g": g, "n": n}, "values": [["<ciphertext as decimal string>", exponent], ...]}

``n`` and ``g`` are JSON integers, ciphertexts decimal strings. :func:`dumps_vector` also
writes a ``"pets"`` member with the packing parameters of a :class:`pets.he.PackedVector`
(``phe`` ignores it). Loading checks that the key in the text is the expected key and
validates every ciphertext (0 < c < n², gcd(c, n) = 1): anything else raises
:class:`pets.errors.DataError` ("ciphertext is not valid under this public key"). Malformed
text raises :class:`pets.errors.DataError` too.

Keys are never pickled (unpickling runs code): these are the only stored forms.

**Loaded keys are checked** like every key pets builds (:mod:`pets.he.keycheck`): a
modulus below 2048 bits, even, prime, a perfect power or with a small factor, and a
private key whose p and q are not two distinct primes with p·q = n, raise
:class:`pets.errors.DataError` naming the reason. ``phe``'s own keys of 2048 bits and
more (its default is 3072) load; its 1024-bit keys load only inside
:func:`pets.he.weak_keys_allowed` (tests and interoperability checks).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import DataError, QueryError
from .packing import PackedVector, Packer
from .paillier import EncryptedVector, PrivateKey, PublicKey, _check_ciphertexts

__all__ = [
    "base64url_to_int",
    "dumps_private_key",
    "dumps_public_key",
    "dumps_vector",
    "int_to_base64url",
    "loads_key",
    "loads_vector",
    "private_key_from_jwk",
    "private_key_to_jwk",
    "public_key_from_jwk",
    "public_key_to_jwk",
]


def int_to_base64url(value: int) -> str:
    """Big-endian, minimal length, base64url without padding (``phe.util.int_to_base64``)."""
    value = int(value)
    if value <= 0:
        raise QueryError("only positive integers are written in JWK form")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def base64url_to_int(text: str) -> int:
    """Inverse of :func:`int_to_base64url` (``phe.util.base64_to_int``)."""
    if not isinstance(text, str):
        raise DataError("a JWK integer must be a base64url string")
    pad = (-len(text)) % 4
    if pad == 3:
        raise DataError("invalid base64url string in a JWK")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * pad)
    except (ValueError, TypeError):
        raise DataError("invalid base64url string in a JWK") from None
    return int.from_bytes(raw, "big")


def _parse(text_or_obj: Any, what: str) -> dict[str, Any]:
    if isinstance(text_or_obj, dict):
        return text_or_obj
    if isinstance(text_or_obj, bytes | str):
        try:
            obj = json.loads(text_or_obj)
        except ValueError:
            raise DataError(f"{what} is not valid JSON") from None
        if isinstance(obj, dict):
            return obj
    raise DataError(f"{what} must be a JSON object")


# --------------------------------------------------------------------------- keys


def public_key_to_jwk(public_key: PublicKey, kid: str | None = None) -> dict[str, Any]:
    """``phe``'s public JWK of a key."""
    if isinstance(public_key, PrivateKey):
        public_key = public_key.public_key
    if not isinstance(public_key, PublicKey):
        raise QueryError("public_key_to_jwk takes a pets.he.PublicKey")
    return {
        "kty": "DAJ",
        "alg": "PAI-GN1",
        "key_ops": ["encrypt"],
        "n": int_to_base64url(public_key.n),
        "kid": kid
        if kid is not None
        else f"Paillier public key {public_key.fingerprint} (pets)",
    }


def public_key_from_jwk(jwk: dict[str, Any] | str) -> PublicKey:
    """A :class:`PublicKey` from ``phe``'s public JWK (dict or JSON text)."""
    obj = _parse(jwk, "a public JWK")
    if obj.get("kty") != "DAJ" or obj.get("alg") != "PAI-GN1" or "n" not in obj:
        raise DataError("not a Paillier public JWK (kty 'DAJ', alg 'PAI-GN1', n)")
    if "encrypt" not in (obj.get("key_ops") or []):
        raise DataError("a Paillier public JWK must list 'encrypt' in key_ops")
    try:
        return PublicKey(base64url_to_int(obj["n"]))
    except QueryError as exc:
        raise DataError(f"the JWK does not hold a usable modulus: {exc}") from None


def private_key_to_jwk(
    private_key: PrivateKey, kid: str | None = None
) -> dict[str, Any]:
    """``phe``'s private JWK of a key (p, q and the public JWK under ``pub``)."""
    if not isinstance(private_key, PrivateKey):
        raise QueryError("private_key_to_jwk takes a pets.he.PrivateKey")
    return {
        "kty": "DAJ",
        "key_ops": ["decrypt"],
        "p": int_to_base64url(private_key.p),
        "q": int_to_base64url(private_key.q),
        "pub": public_key_to_jwk(private_key.public_key),
        "kid": kid
        if kid is not None
        else f"Paillier private key {private_key.public_key.fingerprint} (pets)",
    }


def private_key_from_jwk(jwk: dict[str, Any] | str) -> PrivateKey:
    """A :class:`PrivateKey` from ``phe``'s private JWK (dict or JSON text)."""
    obj = _parse(jwk, "a private JWK")
    if obj.get("kty") != "DAJ" or not {"p", "q", "pub"} <= obj.keys():
        raise DataError("not a Paillier private JWK (kty 'DAJ', p, q, pub)")
    if "decrypt" not in (obj.get("key_ops") or []):
        raise DataError("a Paillier private JWK must list 'decrypt' in key_ops")
    public_key = public_key_from_jwk(obj["pub"])
    try:
        return PrivateKey(
            public_key, base64url_to_int(obj["p"]), base64url_to_int(obj["q"])
        )
    except QueryError as exc:
        raise DataError(f"the private JWK's p and q are not a usable key: {exc}") from None


def dumps_public_key(public_key: PublicKey, kid: str | None = None) -> str:
    return json.dumps(public_key_to_jwk(public_key, kid))


def dumps_private_key(private_key: PrivateKey, kid: str | None = None) -> str:
    return json.dumps(private_key_to_jwk(private_key, kid))


def loads_key(text: str | dict[str, Any]) -> PublicKey | PrivateKey:
    """A public or private key from either JWK form."""
    obj = _parse(text, "a JWK")
    if "p" in obj or "decrypt" in (obj.get("key_ops") or []):
        return private_key_from_jwk(obj)
    return public_key_from_jwk(obj)


# --------------------------------------------------------------------------- ciphertexts


def dumps_vector(
    vector: EncryptedVector | PackedVector, *, rerandomize: bool | None = None
) -> str:
    """``phe``'s JSON form of a vector (see the module docstring).

    ``rerandomize=None`` re-randomises vectors that came from ``*`` or a plain ``+``
    (like ``phe``'s ``ciphertext()``, which obfuscates before anything leaves the
    machine); ``True`` always does, ``False`` never.
    """
    if isinstance(vector, PackedVector):
        if rerandomize:
            vector = vector.rerandomize()
        pk = vector.public_key
        obj: dict[str, Any] = {
            "public_key": {"g": pk.g, "n": pk.n},
            "values": [[str(c), 0] for c in vector._c],
            "pets": {
                "packed": {
                    "value_bits": vector.packer.value_bits,
                    "max_summands": vector.packer.max_summands,
                    "n_values": vector.n_values,
                    "summands": vector.summands,
                }
            },
        }
        return json.dumps(obj)
    if not isinstance(vector, EncryptedVector):
        raise QueryError("dumps_vector takes an EncryptedVector or a PackedVector")
    if rerandomize or (rerandomize is None and vector.needs_rerandomize):
        vector = vector.rerandomize()
    pk = vector.public_key
    e = vector.exponent
    return json.dumps(
        {
            "public_key": {"g": pk.g, "n": pk.n},
            "values": [[str(c), e] for c in vector._c],
        }
    )


def loads_vector(
    text: str | bytes | dict[str, Any], public_key: PublicKey | PrivateKey
) -> EncryptedVector | PackedVector:
    """An :class:`EncryptedVector` (or :class:`PackedVector`) from ``phe``'s JSON form.

    The key in the text must be ``public_key`` (n equal; g, if present, n + 1) and every
    ciphertext valid under it, else :class:`pets.errors.DataError`. Values with different
    exponents (possible in ``phe``'s form) are aligned to the smallest, as ``phe`` does
    when adding them.
    """
    if isinstance(public_key, PrivateKey):
        public_key = public_key.public_key
    if not isinstance(public_key, PublicKey):
        raise QueryError("loads_vector needs the expected pets.he.PublicKey")
    obj = _parse(text, "serialised ciphertexts")
    pk = obj.get("public_key")
    values = obj.get("values")
    if not isinstance(pk, dict) or "n" not in pk or not isinstance(values, list):
        raise DataError(
            "serialised ciphertexts need 'public_key': {'n': ...} and 'values'"
        )
    try:
        n = int(pk["n"])
        g = int(pk["g"]) if "g" in pk else n + 1
    except (TypeError, ValueError):
        raise DataError("the serialised public key is malformed") from None
    if n != public_key.n or g != n + 1:
        raise DataError(
            "the ciphertexts were encrypted under another public key: "
            "ciphertext is not valid under this public key"
        )
    cts: list[Any] = []
    exps: list[int] = []
    for item in values:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise DataError("each serialised value must be [ciphertext, exponent]")
        c, e = item
        if not isinstance(c, str | int) or isinstance(c, bool):
            raise DataError("ciphertext is not valid under this public key")
        try:
            e = int(e)
        except (TypeError, ValueError):
            raise DataError("a serialised exponent is not an integer") from None
        cts.append(c)
        exps.append(e)
    checked = _check_ciphertexts(public_key, cts)
    packed = (
        (obj.get("pets") or {}).get("packed")
        if isinstance(obj.get("pets"), dict)
        else None
    )
    if packed is not None:
        try:
            packer = Packer(
                public_key, int(packed["value_bits"]), int(packed["max_summands"])
            )
            return PackedVector(
                packer, checked, int(packed["n_values"]), int(packed["summands"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed packing parameters: {exc}") from None
    if not exps:
        return EncryptedVector(public_key, [], 0)
    target = min(exps)
    if all(e == target for e in exps):
        return EncryptedVector(public_key, checked, target)
    parts = [
        EncryptedVector(public_key, [c], e).decrease_exponent_to(target)
        for c, e in zip(checked, exps)
    ]
    return EncryptedVector(public_key, [p._c[0] for p in parts], target)
