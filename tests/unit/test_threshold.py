"""Threshold Paillier decryption (pets.he.threshold): any t of n shares decrypt, fewer
cannot, bad or foreign partials are refused, and phe ciphertexts decrypt by threshold.

Keys are 1024-bit, dealt once per module inside ``pets.he.weak_keys_allowed()`` (the
opt-in for test keys, entered for the whole module); a 2048-bit run is marked slow. That
weak keys, t = 1 and bad moduli are refused without the opt-in is pinned in
test_he_keycheck.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import secrets

import gmpy2
import phe
import pytest

from pets.errors import DataError, QueryError
from pets.he import weak_keys_allowed
from pets.he.threshold import (
    KeyShare,
    PartialDecryption,
    ThresholdKey,
    combine,
    combine_many,
    deal,
    generate_safe_prime,
    to_signed,
)

BITS = 1024
CONFIGS = [(2, 3), (3, 5)]


@pytest.fixture(scope="module", autouse=True)
def _weak_test_keys():
    """1024-bit keys for speed: every test here runs inside the opt-in."""
    with weak_keys_allowed():
        yield


@pytest.fixture(scope="module")
def keys() -> dict[tuple[int, int], tuple[ThresholdKey, list[KeyShare]]]:
    return {(t, n): deal(n, t, bits=BITS) for t, n in CONFIGS}


@pytest.fixture(scope="module")
def other_key() -> tuple[ThresholdKey, list[KeyShare]]:
    return deal(3, 2, bits=BITS)


def encrypt(n: int, m: int) -> int:
    """Textbook Paillier with g = n + 1 on raw ints: (1 + n·m) · r^n mod n²."""
    n2 = n * n
    while True:
        r = secrets.randbelow(n)
        if r > 1 and math.gcd(r, n) == 1:
            break
    return int((1 + n * (m % n)) * gmpy2.powmod(r, n, n2) % n2)


def subsets_of_at_least(items, t):
    for size in range(t, len(items) + 1):
        yield from itertools.combinations(items, size)


# --------------------------------------------------------------------------- correctness


@pytest.mark.parametrize(("t", "n_parties"), CONFIGS)
def test_every_subset_of_at_least_t_shares_decrypts(keys, t, n_parties):
    key, shares = keys[(t, n_parties)]
    assert (key.t, key.n_parties, len(shares)) == (t, n_parties, n_parties)
    assert key.n.bit_length() == BITS
    for value in (0, 1, 123_456_789, -42, key.n // 2):
        c = encrypt(key.n, value)
        partials = [s.partial_decrypt(c) for s in shares]
        for subset in subsets_of_at_least(partials, t):
            assert combine(list(subset), key, signed=True) == value
            assert combine(list(reversed(subset)), key) == value % key.n


@pytest.mark.parametrize(("t", "n_parties"), CONFIGS)
def test_homomorphic_sums_and_negative_values_decrypt_by_threshold(keys, t, n_parties):
    key, shares = keys[(t, n_parties)]
    n2 = key.nsquare
    values = [17, -250, 3, -1, 1_000_000, -999_999]
    total = 1
    for v in values:
        total = total * encrypt(key.n, v) % n2  # Enc(a) · Enc(b) = Enc(a + b)
    scaled = pow(encrypt(key.n, -7), 6, n2)  # Enc(a)^k = Enc(k·a)
    for subset in subsets_of_at_least(shares, t):
        assert combine([s.partial_decrypt(total) for s in subset], key, signed=True) == sum(values)
        assert combine([s.partial_decrypt(scaled) for s in subset], key, signed=True) == -42


def test_to_signed_reads_the_upper_half_as_negative():
    n = 101
    assert [to_signed(x, n) for x in (0, 1, 50, 51, 100)] == [0, 1, 50, -50, -1]


def test_a_vector_of_ciphertexts_decrypts_at_once(keys):
    key, shares = keys[(3, 5)]
    values = [5, -3, 0, 2**60, -(2**40)]
    cs = [encrypt(key.n, v) for v in values]
    by_share = [shares[i].partial_decrypt_many(cs) for i in (4, 0, 2)]
    assert combine_many(by_share, key, signed=True) == values
    assert combine_many(by_share, key, ciphertexts=cs, signed=True) == values
    with pytest.raises(QueryError, match="needs t=3 shares, got 2"):
        combine_many(by_share[:2], key)
    with pytest.raises(QueryError, match="one partial per ciphertext"):
        combine_many([by_share[0], by_share[1], by_share[2][:-1]], key)
    with pytest.raises(QueryError, match="agreed ciphertext"):
        combine_many(by_share, key, ciphertexts=cs[::-1])


# --------------------------------------------------------------------------- phe interop


def test_ciphertexts_encrypted_by_phe_decrypt_by_threshold(keys):
    key, shares = keys[(2, 3)]
    pk = phe.PaillierPublicKey(key.n)
    raw = pk.raw_encrypt(31337)
    assert combine([shares[0].partial_decrypt(raw), shares[2].partial_decrypt(raw)], key) == 31337

    # phe's EncryptedNumber: signed and fixed-point values, summed homomorphically by phe
    enc = pk.encrypt(-12) + pk.encrypt(2.5) + pk.encrypt(100)
    c = enc.ciphertext(be_secure=True)
    mantissa = combine([shares[1].partial_decrypt(c), shares[2].partial_decrypt(c)], key)
    assert phe.EncodedNumber(pk, mantissa, enc.exponent).decode() == pytest.approx(90.5)


def test_ciphertexts_of_the_pets_paillier_core_decrypt_by_threshold(keys):
    paillier = pytest.importorskip("pets.he.paillier")
    encoding = pytest.importorskip("pets.he.encoding")
    key, shares = keys[(2, 3)]
    pub = paillier.PublicKey(key.n)
    assert pub.n == key.n and pub.nsquare == key.nsquare

    raw = pub.raw_encrypt(424_242)
    assert combine([s.partial_decrypt(raw) for s in shares[1:]], key) == 424_242

    # a column with negatives and fractions, summed under encryption by the pets core
    column = pub.encrypt_many([-12, 2.5, 100, -0.25])
    total = column.sum()
    (c,) = total.ciphertexts
    mantissa = combine([shares[0].partial_decrypt(c), shares[2].partial_decrypt(c)], key)
    assert encoding.decode(key.n, mantissa, total.exponent) == pytest.approx(90.25)

    # vectors: partial_decrypt_many over an EncryptedVector's ciphertexts
    values = [7, -7, 0, 2**50]
    vec = pub.encrypt_many(values)
    by_share = [s.partial_decrypt_many(vec.ciphertexts) for s in shares[:2]]
    assert combine_many(by_share, key, signed=True) == values


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("t", "n_parties"), CONFIGS)
def test_fewer_than_t_shares_are_refused(keys, t, n_parties):
    key, shares = keys[(t, n_parties)]
    c = encrypt(key.n, 7)
    partials = [s.partial_decrypt(c) for s in shares]
    for size in range(t):
        with pytest.raises(
            QueryError, match=f"threshold decryption needs t={t} shares, got {size}"
        ):
            combine(partials[:size], key)


def test_duplicate_shares_are_refused(keys):
    key, shares = keys[(2, 3)]
    c = encrypt(key.n, 7)
    p = shares[0].partial_decrypt(c)
    with pytest.raises(QueryError, match="duplicate partial decryption from share 1"):
        combine([p, p], key)
    with pytest.raises(QueryError, match="duplicate"):  # a fresh partial of the same share
        combine([p, shares[0].partial_decrypt(c), shares[1].partial_decrypt(c)], key)


def test_shares_of_another_key_are_refused(keys, other_key):
    key, shares = keys[(2, 3)]
    other, other_shares = other_key
    c = encrypt(key.n, 7)
    mine = shares[0].partial_decrypt(c)
    with pytest.raises(DataError, match="another key"):
        combine([mine, other_shares[1].partial_decrypt(encrypt(other.n, 7))], key)
    # a foreign secret passed off as share 2 of this key: its proof does not verify
    impostor = dataclasses.replace(
        other_shares[1], n=key.n, v=key.v, verification_key=key.verification_keys[1]
    )
    forged = impostor.partial_decrypt(c)
    assert not key.verify(forged)
    with pytest.raises(DataError, match=r"invalid proof .* share\(s\) \[2\]"):
        combine([mine, forged], key)
    # without proofs, the foreign exponent does not combine to a plaintext
    with pytest.raises(DataError, match="do not combine"):
        combine([mine, forged], key, verify=False)


def test_partials_of_different_ciphertexts_are_refused(keys):
    key, shares = keys[(2, 3)]
    c1, c2 = encrypt(key.n, 1), encrypt(key.n, 2)
    with pytest.raises(QueryError, match="different ciphertexts"):
        combine([shares[0].partial_decrypt(c1), shares[1].partial_decrypt(c2)], key)
    partials = [shares[0].partial_decrypt(c1), shares[1].partial_decrypt(c1)]
    assert combine(partials, key, ciphertext=c1) == 1
    with pytest.raises(QueryError, match="agreed ciphertext"):
        combine(partials, key, ciphertext=c2)


def test_invalid_ciphertexts_are_refused(keys):
    key, shares = keys[(2, 3)]
    for bad in (0, key.nsquare, -3, key.n, 2 * key.n):
        with pytest.raises(DataError, match="not valid under this public key"):
            shares[0].partial_decrypt(bad)
    with pytest.raises(QueryError, match="must be an int"):
        shares[0].partial_decrypt("12345")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n_parties", "t", "bits", "message"),
    [
        (3, 4, BITS, r"t must be an integer in 1\.\.n_parties=3, got 4"),
        (3, 0, BITS, r"t must be an integer in 1\.\.n_parties=3, got 0"),
        (0, 1, BITS, "n_parties must be a positive integer, got 0"),
        (3, 1, BITS, "t=1 of 3 holders would let any single holder decrypt alone"),
        (2, 1, BITS, "t=1 of 2 holders would let any single holder decrypt alone"),
        (3, 2, 512, "bits=512 is too weak .* even test keys need 1024"),
        (3, 2, 1025, "bits must be an even integer"),
    ],
)
def test_deal_validates_its_arguments(n_parties, t, bits, message):
    with pytest.raises(QueryError, match=message):
        deal(n_parties, t, bits=bits)


def test_a_single_holder_may_hold_the_whole_key():
    key, (share,) = deal(1, 1, bits=BITS)
    c = encrypt(key.n, 5)
    assert combine([share.partial_decrypt(c)], key) == 5


# --------------------------------------------------------------------------- secrecy


def test_partials_alone_do_not_reveal_the_plaintext(keys):
    key, shares = keys[(3, 5)]
    value = 424242
    c = encrypt(key.n, value)
    partials = [s.partial_decrypt(c) for s in shares]
    for p in partials:
        assert p.value != value
        assert (p.value - 1) % key.n != 0  # not of the form 1 + n·x: no L(·) to read off
        assert (p.value - 1) // key.n % key.n != value
    # t − 1 honest partials, combined as if the threshold were t − 1, give no plaintext
    lowered = dataclasses.replace(key, t=2)
    with pytest.raises(DataError, match="do not combine to a plaintext"):
        combine(partials[:2], lowered)


def test_key_share_repr_hides_the_secret(keys):
    _, shares = keys[(2, 3)]
    text = repr(shares[0])
    assert str(shares[0].secret) not in text and "secret" not in text
    assert "index=1" in text


# --------------------------------------------------------------------------- proofs


def test_proofs_of_honest_partials_verify(keys):
    key, shares = keys[(3, 5)]
    c = encrypt(key.n, 99)
    for s in shares:
        assert key.verify(s.partial_decrypt(c))
        assert not key.verify(s.partial_decrypt(c, prove=False))


def test_a_tampered_partial_is_caught_by_its_proof(keys):
    key, shares = keys[(3, 5)]
    n2 = key.nsquare
    c = encrypt(key.n, 99)
    good = [s.partial_decrypt(c) for s in shares[:3]]
    p = good[1]
    tampered = [
        dataclasses.replace(p, value=p.value * (1 + key.n) % n2),  # shifts the plaintext by μ_i
        dataclasses.replace(p, value=p.value * p.value % n2),
        dataclasses.replace(p, proof=dataclasses.replace(p.proof, z=p.proof.z + 1)),
        dataclasses.replace(p, proof=dataclasses.replace(p.proof, e=p.proof.e ^ 1)),
        dataclasses.replace(p, index=4),  # claims another holder's verification key
    ]
    for bad in tampered:
        assert not key.verify(bad)
        with pytest.raises(DataError, match=rf"invalid proof .* share\(s\) \[{bad.index}\]"):
            combine([good[0], bad, good[2]], key)
    # the honest rest still decrypts
    assert combine([good[0], good[2], shares[3].partial_decrypt(c)], key) == 99


def test_unproven_partials_need_verify_false(keys):
    key, shares = keys[(2, 3)]
    c = encrypt(key.n, 5)
    plain = [s.partial_decrypt(c, prove=False) for s in shares[:2]]
    with pytest.raises(QueryError, match="carries no proof"):
        combine(plain, key)
    assert combine(plain, key, verify=False) == 5
    # without proofs a tampered value is still noticed when it breaks the combination
    bad = dataclasses.replace(plain[1], value=plain[1].value * plain[1].value % key.nsquare)
    with pytest.raises(DataError, match="do not combine"):
        combine([plain[0], bad], key, verify=False)


# --------------------------------------------------------------------------- wire form


def test_keys_shares_and_partials_round_trip_through_json(keys):
    key, shares = keys[(2, 3)]
    key2 = ThresholdKey.from_dict(json.loads(json.dumps(key.to_dict())))
    shares2 = [KeyShare.from_dict(json.loads(json.dumps(s.to_dict()))) for s in shares]
    assert key2 == key and shares2 == shares
    c = encrypt(key.n, -77)
    partials = [
        PartialDecryption.from_dict(json.loads(json.dumps(s.partial_decrypt(c).to_dict())))
        for s in shares2[1:]
    ]
    assert combine(partials, key2, signed=True) == -77


# --------------------------------------------------------------------------- key generation


def test_generated_primes_are_safe_and_sized():
    for bits in (256, 512):
        p = generate_safe_prime(bits)
        assert p.bit_length() == bits and p >> (bits - 2) == 0b11
        assert gmpy2.is_prime(p) and gmpy2.is_prime((p - 1) // 2)


def test_shares_interpolate_the_dealt_exponent(keys):
    # Σ μ_i s_i ≡ Δ·d (mod nm) for every t-subset, so (1+n)^{Σ μ_i s_i · 4Δ} decrypts 1
    key, shares = keys[(3, 5)]
    c = encrypt(key.n, 1)
    results = {
        combine([s.partial_decrypt(c, prove=False) for s in sub], key, verify=False)
        for sub in itertools.combinations(shares, 3)
    }
    assert results == {1}


@pytest.mark.slow
def test_a_2048_bit_key_deals_and_decrypts():
    key, shares = deal(4, 3, bits=2048)
    assert key.n.bit_length() == 2048
    c = phe.PaillierPublicKey(key.n).raw_encrypt(2**100 + 1)
    assert combine([shares[i].partial_decrypt(c) for i in (3, 1, 0)], key) == 2**100 + 1
