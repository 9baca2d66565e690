"""pets.he: the Paillier core, the EncodedNumber encoding, packing and serialisation."""

from __future__ import annotations

import json
import math
import secrets

import gmpy2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pets.errors import DataError, QueryError
from pets.he import (
    EncryptedVector,
    PackedVector,
    Packer,
    PrivateKey,
    PublicKey,
    dumps_vector,
    encoding,
    generate_keypair,
    loads_key,
    loads_vector,
    paillier,
    private_key_to_jwk,
    public_key_to_jwk,
)

HYP = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SMALL_INTS = st.integers(min_value=-(2**40), max_value=2**40)
FLOATS = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return generate_keypair(2048)


@pytest.fixture(scope="module")
def other_keys() -> tuple[PublicKey, PrivateKey]:
    return generate_keypair(2048)


# --------------------------------------------------------------------------- key generation


def test_keygen_gives_n_of_exact_bits_from_two_distinct_equal_size_primes(keys):
    pub, priv = keys
    assert pub.n.bit_length() == 2048
    assert priv.p * priv.q == pub.n
    assert priv.p.bit_length() == priv.q.bit_length() == 1024
    assert priv.p < priv.q  # stored like phe
    assert gmpy2.is_prime(priv.p, 50) and gmpy2.is_prime(priv.q, 50)
    assert priv.q - priv.p >= 2 ** (1024 - 100)
    assert math.gcd(pub.n, (priv.p - 1) * (priv.q - 1)) == 1
    assert (
        pub.g == pub.n + 1 and pub.nsquare == pub.n**2 and pub.max_int == pub.n // 3 - 1
    )


def test_keygen_3072_is_the_default_size():
    pub, priv = generate_keypair()
    assert pub.n.bit_length() == 3072
    assert priv.p.bit_length() == priv.q.bit_length() == 1536


@pytest.mark.parametrize("bits", [512, 1024, 2047])
def test_keygen_refuses_weak_sizes(bits):
    with pytest.raises(QueryError, match=f"bits={bits} is too weak for a Paillier key: use at least 2048"):
        generate_keypair(bits)


def test_keygen_refuses_unlisted_sizes():
    with pytest.raises(QueryError, match="one of"):
        generate_keypair(2500)


def test_private_key_must_match_public_key(keys, other_keys):
    pub, priv = keys
    with pytest.raises(QueryError, match=r"do not match the public key \(p·q ≠ n\)"):
        PrivateKey(other_keys[0], priv.p, priv.q)
    with pytest.raises(QueryError, match="p and q must be different primes"):
        PrivateKey(pub, priv.p, priv.p)
    assert PrivateKey(pub, priv.q, priv.p) == priv  # order does not matter


def test_public_key_refuses_even_or_tiny_moduli():
    # every bad-modulus case, and the opt-in for test keys: test_he_keycheck.py
    with pytest.raises(QueryError, match="the Paillier modulus n is even"):
        PublicKey(2**2048)
    with pytest.raises(QueryError, match="n has 7 bits: at least 2048 are needed"):
        PublicKey(3 * 5 * 7)


# --------------------------------------------------------------------------- homomorphic properties


@HYP
@given(st.lists(st.tuples(SMALL_INTS, SMALL_INTS), min_size=1, max_size=4))
def test_sum_of_two_encrypted_int_vectors_decrypts_to_the_sum(keys, pairs):
    pub, priv = keys
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    got = priv.decrypt_many(pub.encrypt_many(a) + pub.encrypt_many(b))
    assert got.tolist() == [x + y for x, y in pairs]


@HYP
@given(st.lists(SMALL_INTS, min_size=1, max_size=6))
def test_sum_of_a_vector_is_the_sum_of_its_values(keys, values):
    pub, priv = keys
    total = pub.encrypt_many(values).sum()
    assert len(total) == 1
    assert priv.decrypt_many(total).tolist() == [sum(values)]


@HYP
@given(
    st.lists(
        st.tuples(SMALL_INTS, st.integers(-(2**20), 2**20)), min_size=1, max_size=4
    ),
    SMALL_INTS,
)
def test_multiplication_by_plain_scalars_and_arrays(keys, pairs, k):
    pub, priv = keys
    values = [x for x, _ in pairs]
    factors = [y for _, y in pairs]
    v = pub.encrypt_many(values)
    assert priv.decrypt_many(v * k).tolist() == [x * k for x in values]
    assert priv.decrypt_many(v * np.array(factors)).tolist() == [
        x * y for x, y in pairs
    ]
    assert priv.decrypt_many(-v).tolist() == [-x for x in values]


@HYP
@given(st.lists(FLOATS, min_size=1, max_size=4))
def test_negative_and_fractional_values_share_one_exponent(keys, values):
    pub, priv = keys
    v = pub.encrypt_many(values)
    expected_exponent = min(encoding.value_exponent(x) for x in values)
    assert v.exponent == expected_exponent
    assert priv.decrypt_many(v).tolist() == values  # exact: every float bit is kept
    total = priv.decrypt_many((v + v).sum())[0]
    assert total == pytest.approx(2 * math.fsum(values), rel=1e-12, abs=1e-6)


@HYP
@given(
    st.lists(SMALL_INTS, min_size=2, max_size=2),
    st.lists(FLOATS, min_size=2, max_size=2),
)
def test_adding_int_and_float_vectors_aligns_exponents_like_phe(keys, ints, floats):
    pub, priv = keys
    a, b = pub.encrypt_many(ints), pub.encrypt_many(floats)
    assert a.exponent == 0 and b.exponent < 0
    s = a + b
    assert s.exponent == b.exponent
    got = priv.decrypt_many(s)
    for g, x, y in zip(got, ints, floats):
        assert g == pytest.approx(x + y, rel=1e-12, abs=1e-6)


def test_adding_plain_values_and_subtracting(keys):
    pub, priv = keys
    v = pub.encrypt_many([10, -20, 30])
    assert priv.decrypt_many(v + 5).tolist() == [15, -15, 35]
    assert priv.decrypt_many(v + [1, 2, 3]).tolist() == [11, -18, 33]
    assert priv.decrypt_many(v + 0.5).tolist() == [10.5, -19.5, 30.5]
    assert priv.decrypt_many(v - [1, 2, 3]).tolist() == [9, -22, 27]
    assert priv.decrypt_many(100 - v).tolist() == [90, 120, 70]
    assert priv.decrypt_many(v * 0.5).tolist() == [5.0, -10.0, 15.0]
    assert priv.decrypt_many(sum([v, v, v])).tolist() == [30, -60, 90]


def test_fixed_exponent_and_precision_round_to_the_grid(keys):
    pub, priv = keys
    v = pub.encrypt_many([1.26, -3.5], exponent=-1)
    assert v.exponent == -1
    assert priv.decrypt_many(v).tolist() == [1.25, -3.5]
    w = pub.encrypt_many([1.26, 2], precision=0.01)
    assert w.exponent == math.floor(math.log(0.01, 16))
    assert priv.decrypt_many(w).tolist() == pytest.approx([1.26, 2], abs=1 / 256)


def test_indexing_slicing_and_length(keys):
    pub, priv = keys
    v = pub.encrypt_many(np.arange(6))
    assert len(v) == 6
    assert priv.decrypt_many(v[2]).tolist() == [2]
    assert priv.decrypt_many(v[1:4]).tolist() == [1, 2, 3]
    assert isinstance(v.ciphertexts[0], int)
    assert all(0 < c < pub.nsquare for c in v.ciphertexts)


def test_length_mismatch_and_ciphertext_products_are_refused(keys):
    pub, _ = keys
    v = pub.encrypt_many([1, 2])
    with pytest.raises(QueryError, match="length"):
        v + pub.encrypt_many([1, 2, 3])
    with pytest.raises(QueryError, match="length"):
        v + [1, 2, 3]
    with pytest.raises(QueryError):
        v * v


# --------------------------------------------------------------------------- profiles and speed paths


@pytest.mark.parametrize("profile", ["djn", "short_exponent", "phe"])
def test_every_profile_public_and_crt_decrypts(keys, profile):
    pub, priv = keys
    values = [0, 1, -1, 123456789, -(2**60)]
    assert (
        priv.decrypt_many(pub.encrypt_many(values, profile=profile)).tolist() == values
    )
    assert (
        priv.decrypt_many(priv.encrypt_many(values, profile=profile)).tolist() == values
    )


def test_short_exponent_refuses_less_than_two_lambda(keys):
    pub, priv = keys
    assert paillier.security_bits(2048) == 112 and paillier.security_bits(3072) == 128
    with pytest.raises(QueryError, match="at least 2λ = 224"):
        pub.encrypt_many([1], profile="short_exponent", randomness_bits=223)
    v = pub.encrypt_many([7], profile="short_exponent", randomness_bits=224)
    assert priv.decrypt_many(v).tolist() == [7]
    with pytest.raises(QueryError, match="short_exponent"):
        pub.encrypt_many([1], profile="djn", randomness_bits=1024)
    with pytest.raises(QueryError, match="unknown profile"):
        pub.encrypt_many([1], profile="fast")


def test_modmul_count_of_the_default_path():
    assert paillier.modmul_count(2048) == 128
    assert paillier.modmul_count(3072) == 192
    assert paillier.modmul_count(2048, "short_exponent") == 56


def test_fixed_base_table_computes_the_power():
    mod = gmpy2.mpz(2**521 - 1)
    base = gmpy2.mpz(secrets.randbelow(2**500) + 2)
    table = paillier._FixedBase(base, mod, 131)
    for _ in range(5):
        xb = table.random_bytes()
        x = int.from_bytes(xb, "little")
        assert x < 2**131
        assert table.power(xb) == gmpy2.powmod(base, x, mod)


def test_process_pool_path_decrypts(keys, monkeypatch):
    pub, priv = keys
    monkeypatch.setattr(paillier, "POOL_THRESHOLD", 8)
    values = list(range(-20, 20))
    v = pub.encrypt_many(values, workers=2)
    assert priv.decrypt_many(v).tolist() == values
    w = priv.encrypt_many(values, workers=2)
    assert priv.decrypt_many(w).tolist() == values
    with pytest.raises(QueryError):
        pub.encrypt_many(values, workers=0)


def test_spawned_pool_workers_rebuild_the_table(keys, monkeypatch):
    import multiprocessing

    pub, priv = keys
    monkeypatch.setattr(paillier, "POOL_THRESHOLD", 8)
    monkeypatch.setattr(
        paillier, "_mp_context", lambda: multiprocessing.get_context("spawn")
    )
    values = list(range(16))
    assert priv.decrypt_many(pub.encrypt_many(values, workers=2)).tolist() == values


def test_keys_pickle_without_their_tables(keys):
    import pickle

    pub, priv = keys
    pub.encrypt_many([1])
    assert "_tables" not in pub.__getstate__()
    assert pickle.loads(pickle.dumps(pub)) == pub
    assert pickle.loads(pickle.dumps(priv)) == priv


def test_ciphertexts_are_randomised(keys):
    pub, priv = keys
    a, b = pub.encrypt_many([5, 5]).ciphertexts
    assert a != b
    v = pub.encrypt_many([5]) * 3
    assert v.needs_rerandomize
    r = v.rerandomize()
    assert not r.needs_rerandomize and r.ciphertexts != v.ciphertexts
    assert priv.decrypt_many(r).tolist() == [15]


# --------------------------------------------------------------------------- encoding


@HYP
@given(st.one_of(SMALL_INTS, FLOATS))
def test_single_value_encoding_matches_phe_semantics(keys, x):
    pub, _ = keys
    enc, e = encoding.encode(pub.n, x)
    if isinstance(x, int):
        assert e == 0
    else:
        assert e == (math.frexp(x)[1] - 53) // 4
    assert encoding.decode(pub.n, enc, e) == x


def test_values_beyond_max_int_are_refused(keys):
    pub, _ = keys
    with pytest.raises(QueryError, match="too large"):
        pub.encrypt_many([pub.max_int + 1])
    assert encoding.encode(pub.n, -pub.max_int)[0] == pub.n - pub.max_int


def test_overflow_band_is_detected_on_decrypt(keys):
    pub, priv = keys
    big = pub.encrypt_many([pub.max_int])
    with pytest.raises(DataError, match="overflow"):
        priv.decrypt_many(big + big)
    with pytest.raises(DataError, match="overflow"):
        encoding.decode(pub.n, pub.n // 2, 0)


def test_nan_and_non_numbers_are_refused(keys):
    pub, _ = keys
    with pytest.raises(QueryError):
        pub.encrypt_many([1.0, float("nan")])
    with pytest.raises(QueryError):
        pub.encrypt_many(["3"])
    with pytest.raises(QueryError):
        pub.encrypt_many(np.zeros((2, 2)))


def test_huge_integer_results_come_back_as_python_ints(keys):
    pub, priv = keys
    got = priv.decrypt_many(pub.encrypt_many([2**70, -(2**70)]))
    assert got.dtype == object and got.tolist() == [2**70, -(2**70)]


# --------------------------------------------------------------------------- packing


@HYP
@given(st.integers(2, 62), st.integers(1, 50), st.integers(0, 2**32 - 1), st.data())
def test_packing_round_trip(keys, value_bits, summands, seed, data):
    pub, _ = keys
    packer = Packer(pub, value_bits, 50)
    n = data.draw(st.integers(1, 2 * packer.slots_per_plaintext + 3))
    rng = np.random.default_rng(seed)
    rows = rng.integers(
        packer.min_value, packer.max_value, size=(summands, n), endpoint=True
    )
    rows[0, 0] = packer.min_value
    rows[-1, -1] = packer.max_value
    total = [int(x) for x in rows.astype(object).sum(axis=0)]
    plain = [
        sum(ps) for ps in zip(*(packer.pack(r) for r in rows))
    ]  # slot-wise addition
    assert packer.unpack(plain, n, summands).tolist() == total


def test_slot_layout(keys):
    pub, _ = keys
    packer = Packer(pub, value_bits=32, max_summands=1000)
    assert packer.slot_bits == 32 + 10 + 1
    assert packer.slots_per_plaintext == 2047 // 43
    assert Packer(pub, 63, 1).slot_bits == 64


def test_encrypted_packed_sums(keys):
    pub, priv = keys
    packer = Packer(pub, value_bits=32, max_summands=3)
    a = packer.encrypt(list(range(-60, 60)))
    b = packer.encrypt([7] * 120, private_key=priv)
    assert a.n_ciphertexts == math.ceil(120 / packer.slots_per_plaintext)
    total = a + b
    assert total.summands == 2
    assert priv.decrypt_many(total).tolist() == [x + 7 for x in range(-60, 60)]
    assert sum([a, b, a]).summands == 3


def test_packing_refuses_out_of_range_values(keys):
    pub, _ = keys
    packer = Packer(pub, value_bits=8, max_summands=10)
    packer.pack([-128, 127])
    with pytest.raises(QueryError, match="8 signed bits"):
        packer.pack([128])
    with pytest.raises(QueryError, match="8 signed bits"):
        packer.encrypt([-129])
    with pytest.raises(QueryError, match="integers"):
        packer.pack([1.5])


def test_packing_refuses_more_summands_than_declared(keys):
    pub, _ = keys
    packer = Packer(pub, value_bits=8, max_summands=2)
    a = packer.encrypt([127, -128])
    s = a + a
    with pytest.raises(QueryError, match="max_summands=2"):
        s + a
    with pytest.raises(QueryError, match="max_summands"):
        packer.unpack(packer.pack([1]), 1, summands=3)


def test_slot_overflow_is_detected_not_wrapped(keys):
    pub, priv = keys
    packer = Packer(pub, value_bits=8, max_summands=2)
    plain = packer.pack([127, 127])
    # three summands squeezed into a vector declared to hold one: the slot bound catches it
    forged = [p * 3 for p in plain]
    with pytest.raises(DataError, match="overflow"):
        packer.unpack(forged, 2, summands=1)
    # a tampered ciphertext decrypts to garbage, which is refused
    v = packer.encrypt([1, 2])
    tampered = packer.vector([v.ciphertexts[0] * 2 % pub.nsquare], 2, 1)
    with pytest.raises(DataError):
        priv.decrypt_many(tampered)


def test_grouped_encryption_gives_group_totals(keys):
    pub, priv = keys
    rng = np.random.default_rng(0)
    values = rng.integers(-1000, 1000, size=300)
    groups = rng.integers(0, 5, size=300)
    packer = Packer(pub, value_bits=16, max_summands=200)
    vec = packer.encrypt_grouped(values, groups, 5)
    expected = np.bincount(groups, weights=values, minlength=5).astype(np.int64)
    assert vec.summands == np.bincount(groups).max()
    assert priv.decrypt_many(vec).tolist() == expected.tolist()
    with pytest.raises(QueryError, match="max_summands"):
        Packer(pub, 16, 10).encrypt_grouped(values, groups, 5)
    with pytest.raises(QueryError, match="groups"):
        packer.encrypt_grouped([1], [5], 5)


def test_packed_vectors_must_share_layout_and_key(keys, other_keys):
    pub, _ = keys
    a = Packer(pub, 8, 4).encrypt([1, 2])
    with pytest.raises(QueryError):
        a + Packer(pub, 9, 4).encrypt([1, 2])
    with pytest.raises(QueryError):
        a + Packer(pub, 8, 4).encrypt([1, 2, 3])
    with pytest.raises(DataError):
        a + Packer(other_keys[0], 8, 4).encrypt([1, 2])
    with pytest.raises(QueryError):
        pub.encrypt_many([1]) + a


# --------------------------------------------------------------------------- wrong keys, tampering, serialisation


def test_vectors_under_different_keys_do_not_mix(keys, other_keys):
    pub, priv = keys
    v = other_keys[0].encrypt_many([1])
    with pytest.raises(DataError, match="different public keys"):
        pub.encrypt_many([1]) + v
    with pytest.raises(DataError, match="another public key"):
        priv.decrypt_many(v)


def test_loads_refuses_another_key(keys, other_keys):
    pub, _ = keys
    text = dumps_vector(other_keys[0].encrypt_many([1, 2]))
    with pytest.raises(DataError, match="another public key"):
        loads_vector(text, pub)


@pytest.mark.parametrize("bad", ["zero", "n2", "above", "not_coprime", "garbage"])
def test_loads_refuses_invalid_ciphertexts(keys, bad):
    pub, priv = keys
    obj = json.loads(dumps_vector(pub.encrypt_many([1, 2])))
    c = {
        "zero": "0",
        "n2": str(pub.nsquare),
        "above": str(pub.nsquare + 5),
        "not_coprime": str(priv.p * 12345),
        "garbage": "12ab",
    }[bad]
    obj["values"][1][0] = c
    with pytest.raises(DataError, match="not valid under this public key"):
        loads_vector(json.dumps(obj), pub)
    with pytest.raises(DataError, match="not valid under this public key"):
        EncryptedVector(pub, [int(c) if bad != "garbage" else c], 0, validate=True)


def test_raw_decrypt_refuses_out_of_range(keys):
    pub, priv = keys
    with pytest.raises(DataError):
        priv.raw_decrypt(pub.nsquare)
    with pytest.raises(DataError):
        priv.raw_decrypt(priv.q)


def test_decrypting_with_another_key_gives_garbage_so_loading_checks_the_key(
    keys, other_keys
):
    """A ciphertext of key A decrypted by key B is refused or garbage (it lands in the
    overflow band only a third of the time), so the key is checked when ciphertexts are
    loaded: by n."""
    pub, _ = keys
    opub, opriv = other_keys
    c = pub.encrypt_many([42]).ciphertexts[0]
    try:
        got = opriv.decrypt_many(EncryptedVector(opub, [c], 0))
    except DataError:
        pass
    else:
        assert got.tolist() != [42]
    with pytest.raises(DataError, match="another public key"):
        loads_vector(dumps_vector(pub.encrypt_many([42])), opub)


def test_vector_json_round_trip_and_form(keys):
    pub, priv = keys
    v = pub.encrypt_many([1.5, -2.0])
    text = dumps_vector(v)
    obj = json.loads(text)
    assert obj["public_key"] == {"g": pub.n + 1, "n": pub.n}
    assert obj["values"] == [
        [str(c), v.exponent] for c in v.ciphertexts
    ]  # fresh: unchanged
    back = loads_vector(text, priv)
    assert back.exponent == v.exponent and back.ciphertexts == v.ciphertexts
    assert priv.decrypt_many(back).tolist() == [1.5, -2.0]


def test_dumps_rerandomises_derived_vectors(keys):
    pub, priv = keys
    v = pub.encrypt_many([3]) * 2
    back = loads_vector(dumps_vector(v), pub)
    assert back.ciphertexts != v.ciphertexts
    assert priv.decrypt_many(back).tolist() == [6]


def test_mixed_exponents_in_json_are_aligned(keys):
    pub, priv = keys
    a, b = pub.encrypt_many([3]), pub.encrypt_many([0.25])
    obj = {
        "public_key": {"n": pub.n},
        "values": [
            [str(a.ciphertexts[0]), a.exponent],
            [str(b.ciphertexts[0]), b.exponent],
        ],
    }
    back = loads_vector(json.dumps(obj), pub)
    assert back.exponent == b.exponent
    assert priv.decrypt_many(back).tolist() == [3.0, 0.25]


def test_packed_vector_json_round_trip(keys):
    pub, priv = keys
    packer = Packer(pub, 16, 8)
    v = packer.encrypt([5, -6, 7]) + packer.encrypt([1, 1, 1])
    back = loads_vector(dumps_vector(v), pub)
    assert (
        isinstance(back, PackedVector) and back.summands == 2 and back.packer == packer
    )
    assert priv.decrypt_many(back).tolist() == [6, -5, 8]


def test_malformed_serialisations_are_refused(keys):
    pub, _ = keys
    for text in ["not json", "[]", '{"values": []}', '{"public_key": {"n": 5}}']:
        with pytest.raises(DataError):
            loads_vector(text, pub)
    with pytest.raises(DataError):
        loads_key('{"kty": "RSA", "n": "AQAB"}')


def test_jwk_round_trip(keys):
    pub, priv = keys
    jwk = public_key_to_jwk(pub)
    assert {k: jwk[k] for k in ("kty", "alg", "key_ops")} == {
        "kty": "DAJ",
        "alg": "PAI-GN1",
        "key_ops": ["encrypt"],
    }
    assert loads_key(json.dumps(jwk)) == pub
    pjwk = private_key_to_jwk(priv, kid="k1")
    assert (
        pjwk["kty"] == "DAJ" and pjwk["key_ops"] == ["decrypt"] and pjwk["kid"] == "k1"
    )
    assert loads_key(pjwk) == priv
    pjwk["q"] = pjwk["p"]
    with pytest.raises(DataError):
        loads_key(pjwk)
