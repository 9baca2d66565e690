"""Weak or malformed Paillier keys are refused everywhere a key enters pets.he — built,
generated, loaded from JWK, dealt, or rebuilt from a threshold key's dict — unless a test
opts in to 1024-bit keys with ``pets.he.weak_keys_allowed()`` (issue 9, item 9).

Every refusal asserts its exception type and the message that says what to change.
"""

from __future__ import annotations

import json
import pickle
import secrets

import gmpy2
import pytest

phe = pytest.importorskip("phe")
from phe import util as phe_util

import pets
from pets.errors import DataError, QueryError
from pets.he import (
    KeyShare,
    PrivateKey,
    PublicKey,
    ThresholdKey,
    deal,
    generate_keypair,
    loads_key,
    private_key_from_jwk,
    public_key_from_jwk,
    public_key_to_jwk,
    weak_keys_allowed,
)
from pets.he import keycheck

OPT_IN = r"pets\.he\.weak_keys_allowed\(\)"


def _prime(bits: int) -> int:
    """A random prime of exactly ``bits`` bits (test data, not a key)."""
    while True:
        p = int(gmpy2.next_prime(secrets.randbits(bits) | (3 << (bits - 2))))
        if p.bit_length() == bits:
            return p


@pytest.fixture(scope="module")
def weak_pair() -> tuple[PublicKey, PrivateKey]:
    with weak_keys_allowed():
        return generate_keypair(1024)


@pytest.fixture(scope="module")
def phe_1024():
    return phe.generate_paillier_keypair(n_length=1024)


def _public_jwk(n: int) -> dict:
    return {"kty": "DAJ", "alg": "PAI-GN1", "key_ops": ["encrypt"],
            "n": phe_util.int_to_base64(n), "kid": "test"}


def _private_jwk(n: int, p: int, q: int) -> dict:
    return {"kty": "DAJ", "key_ops": ["decrypt"], "p": phe_util.int_to_base64(p),
            "q": phe_util.int_to_base64(q), "pub": _public_jwk(n), "kid": "test"}


# --------------------------------------------------------------------------- bad moduli


PRIME = "n is prime, so anyone can decrypt under it"


def _bad_moduli() -> list[tuple[str, int, str, str | None]]:
    """(case, n, message, message inside the opt-in or None if accepted there)."""
    p1024 = _prime(1024)
    small = r"n has 1024 bits: at least 2048 are needed"
    return [
        ("1024-bit", _prime(512) * _prime(512), small, None),
        ("1024-bit prime", p1024, small, PRIME),
        ("even", 2 * _prime(2047), "n is even", "n is even"),
        ("power of two", 2**2048, "n is even", "n is even"),
        ("prime", _prime(2048), PRIME, PRIME),
        ("square", p1024 * p1024, r"n is a perfect square \(p = q\?\)", "perfect square"),
        ("cube", _prime(700) ** 3, "n is a perfect power", "n is a perfect power"),
        ("small factor", 3 * _prime(2047), "n has a prime factor below 65536", "below 65536"),
        ("tiny", 3 * 5 * 7, "n has 7 bits: .* even test keys need 1024", "even test keys"),
    ]


BAD = _bad_moduli()
BAD3 = [b[:3] for b in BAD]
IDS = [b[0] for b in BAD]


@pytest.mark.parametrize(("what", "n", "message"), BAD3, ids=IDS)
def test_public_key_refuses_bad_moduli(what, n, message):
    with pytest.raises(QueryError, match=message):
        PublicKey(n)


@pytest.mark.parametrize(("what", "n", "message"), BAD3, ids=IDS)
def test_jwk_loaders_refuse_bad_moduli(what, n, message):
    jwk = _public_jwk(n)
    for load in (public_key_from_jwk, loads_key):
        with pytest.raises(DataError, match="the JWK does not hold a usable modulus: .*" + message):
            load(json.dumps(jwk))
    with pytest.raises(DataError, match=message):
        loads_key(_private_jwk(n, 3, 5))


@pytest.mark.parametrize(("what", "n", "_", "opted_in"), BAD, ids=IDS)
def test_the_opt_in_lowers_the_size_floor_only(what, n, _, opted_in):
    with weak_keys_allowed():
        if opted_in is None:
            assert PublicKey(n).bits == 1024
        else:
            with pytest.raises(QueryError, match=opted_in):
                PublicKey(n)


def test_weak_keys_name_the_opt_in(weak_pair):
    pub, _ = weak_pair
    with pytest.raises(QueryError, match=f"n has 1024 bits: .*use a 3072-bit key.*{OPT_IN}"):
        PublicKey(pub.n)


def test_a_non_integer_modulus_is_refused():
    for bad in ("123", 1.5, True, None):
        with pytest.raises(QueryError, match="the Paillier modulus n must be an integer"):
            PublicKey(bad)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="must be a positive integer"):
        PublicKey(-(2**2048 + 1))


# --------------------------------------------------------------------------- the opt-in


def test_generate_keypair_refuses_1024_bits_unless_opted_in():
    with pytest.raises(QueryError, match=f"bits=1024 is too weak for a Paillier key: use at least 2048 bits.*{OPT_IN}"):
        generate_keypair(1024)
    with weak_keys_allowed():
        pub, priv = generate_keypair(1024)
        with pytest.raises(QueryError, match="bits=512 is too weak .* even test keys need 1024"):
            generate_keypair(512)
        with pytest.raises(QueryError, match=r"bits must be one of \(2048, 3072, 4096, 1024\)"):
            generate_keypair(1536)
    assert pub.bits == 1024
    # keys built inside the block stay usable after it
    assert priv.decrypt_many(pub.encrypt_many([3, -4]).sum()).tolist() == [-1]


def test_the_opt_in_is_scoped_to_its_block(weak_pair):
    pub, _ = weak_pair
    assert not keycheck.weak_keys_are_allowed()
    with weak_keys_allowed():
        with weak_keys_allowed():
            assert PublicKey(pub.n) == pub
        assert keycheck.weak_keys_are_allowed()  # nesting restores, not clears
        assert keycheck.min_modulus_bits() == 1024
    assert keycheck.min_modulus_bits() == 2048
    with pytest.raises(QueryError, match="at least 2048"):
        PublicKey(pub.n)
    with pytest.raises(RuntimeError), weak_keys_allowed():
        raise RuntimeError("the block fails")
    assert not keycheck.weak_keys_are_allowed()  # restored on an exception too


def test_weak_keys_pickle_to_pool_workers_and_back(weak_pair):
    """Pickling exists only for spawned pool workers; they rebuild the key as it was."""
    pub, priv = weak_pair
    assert pickle.loads(pickle.dumps(priv)) == priv
    assert pickle.loads(pickle.dumps(pub)) == pub


# --------------------------------------------------------------------------- private keys


def test_private_key_refuses_equal_or_mismatched_factors():
    pub, priv = generate_keypair(2048)
    with pytest.raises(QueryError, match=r"p and q must be different primes \(p = q makes n a square\)"):
        PrivateKey(pub, priv.p, priv.p)
    with pytest.raises(QueryError, match=r"p and q do not match the public key \(p·q ≠ n\)"):
        PrivateKey(pub, priv.p, priv.q + 2)
    with pytest.raises(QueryError, match="p is not prime"):
        PrivateKey(pub, 1, pub.n)  # p·q = n, but 1 is no prime


def test_private_key_refuses_composite_factors():
    a, b, c = _prime(683), _prime(683), _prime(683)
    pub = PublicKey(a * b * c)  # a composite n passes the public checks
    assert pub.bits >= 2048
    with pytest.raises(QueryError, match="p is not prime: a Paillier private key is two primes"):
        PrivateKey(pub, a * b, c)
    with pytest.raises(DataError, match="p and q are not a usable key: .*is not prime"):
        loads_key(_private_jwk(pub.n, a * b, c))


def test_private_key_refuses_p_dividing_q_minus_one():
    p = _prime(1024)
    k = 1 << 40
    while not gmpy2.is_prime(k * p + 1):
        k += 2
    q = k * p + 1
    pub = PublicKey(p * q)
    with pytest.raises(QueryError, match=r"gcd\(n, \(p − 1\)\(q − 1\)\) ≠ 1"):
        PrivateKey(pub, p, q)


# --------------------------------------------------------------------------- phe's keys


def test_phe_default_key_size_is_accepted():
    assert phe.paillier.DEFAULT_KEYSIZE == 3072 >= keycheck.MIN_BITS


def test_phe_1024_bit_keys_are_refused_unless_opted_in(phe_1024):
    ppub, ppriv = phe_1024
    assert ppub.n.bit_length() == 1024
    with pytest.raises(QueryError, match=f"n has 1024 bits.*{OPT_IN}"):
        PublicKey(ppub.n)
    with pytest.raises(DataError, match=f"usable modulus: .*n has 1024 bits.*{OPT_IN}"):
        loads_key(json.dumps(_public_jwk(ppub.n)))
    with pytest.raises(DataError, match=f"n has 1024 bits.*{OPT_IN}"):
        private_key_from_jwk(_private_jwk(ppub.n, ppriv.p, ppriv.q))
    # interoperability checks with phe's small keys opt in, and still cross both ways
    with weak_keys_allowed():
        priv = loads_key(json.dumps(_private_jwk(ppub.n, ppriv.p, ppriv.q)))
        pub = loads_key(public_key_to_jwk(PublicKey(ppub.n)))
    e = ppub.encrypt(-99)
    assert priv.decrypt_many(pets.he.EncryptedVector(pub, [e.ciphertext()], e.exponent)).tolist() == [-99]
    v = pub.encrypt_many([7])
    assert ppriv.decrypt(phe.EncryptedNumber(ppub, v.ciphertexts[0], v.exponent)) == 7


# --------------------------------------------------------------------------- threshold keys


def test_deal_refuses_weak_sizes_and_a_threshold_of_one():
    with pytest.raises(QueryError, match=f"bits=1024 is too weak .*{OPT_IN}"):
        deal(3, 2, bits=1024)
    with pytest.raises(QueryError, match="bits=2046 is too weak"):
        deal(3, 2, bits=2046)
    for n_parties in (2, 3, 10):
        with pytest.raises(
            QueryError,
            match=f"t=1 of {n_parties} holders would let any single holder decrypt alone: "
            f"use a threshold of at least 2 \\(a majority, {n_parties // 2 + 1} of {n_parties}",
        ):
            deal(n_parties, 1, bits=2048)
    with weak_keys_allowed():  # the opt-in is about key size only
        with pytest.raises(QueryError, match="t=1 of 3 holders"):
            deal(3, 1, bits=1024)


@pytest.fixture(scope="module")
def weak_threshold():
    with weak_keys_allowed():
        return deal(3, 2, bits=1024)


def test_threshold_keys_from_dicts_are_checked(weak_threshold):
    key, shares = weak_threshold
    kd, sd = key.to_dict(), shares[0].to_dict()
    with pytest.raises(QueryError, match=f"n has 1024 bits.*{OPT_IN}"):
        ThresholdKey.from_dict(kd)
    with pytest.raises(QueryError, match=f"n has 1024 bits.*{OPT_IN}"):
        KeyShare.from_dict(sd)
    with weak_keys_allowed():
        assert ThresholdKey.from_dict(kd) == key
        assert KeyShare.from_dict(sd) == shares[0]
        with pytest.raises(QueryError, match="t=1 of 3 holders would let any single holder"):
            ThresholdKey.from_dict({**kd, "t": 1})
        with pytest.raises(QueryError, match="t=1 of 3 holders would let any single holder"):
            KeyShare.from_dict({**sd, "t": 1})
        with pytest.raises(QueryError, match=r"needs 3 verification keys, got 2"):
            ThresholdKey.from_dict({**kd, "verification_keys": kd["verification_keys"][:2]})
        with pytest.raises(QueryError, match=r"index must be in 1\.\.n_parties=3, got 4"):
            KeyShare.from_dict({**sd, "index": 4})
    prime = _prime(2048)
    for bad in ({**kd, "n": str(prime)}, {**sd, "n": str(prime)}):
        cls = ThresholdKey if "t" in bad and "index" not in bad else KeyShare
        with pytest.raises(QueryError, match="n is prime"):
            cls.from_dict(bad)
