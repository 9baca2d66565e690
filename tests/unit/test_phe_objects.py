"""phe's own objects in and out of pets.he (issue #14, 10): keys and EncryptedNumbers
cross both ways with the same numbers — nothing decrypted, re-encoded or re-encrypted."""

from __future__ import annotations

import numpy as np
import pytest
from phe import paillier

import pets
from pets import he


@pytest.fixture(scope="module")
def phe_keys():
    return paillier.generate_paillier_keypair(n_length=2048)


def test_phe_keys_become_pets_keys_and_back(phe_keys) -> None:
    ppub, ppriv = phe_keys
    pub, priv = he.from_phe(ppub), he.from_phe(ppriv)
    assert isinstance(pub, he.PublicKey) and isinstance(priv, he.PrivateKey)
    assert pub.n == ppub.n and (priv.p, priv.q) == (min(ppriv.p, ppriv.q), max(ppriv.p, ppriv.q))
    assert he.PublicKey.from_phe(ppub) == pub and he.PrivateKey.from_phe(ppriv) == priv
    back_pub, back_priv = he.to_phe(pub), priv.to_phe()
    assert isinstance(back_pub, paillier.PaillierPublicKey) and back_pub == ppub
    assert isinstance(back_priv, paillier.PaillierPrivateKey) and back_priv == ppriv
    # pets' constructors take phe's public key where they take theirs
    assert he.PrivateKey(ppub, ppriv.p, ppriv.q) == priv


def test_phe_encrypted_numbers_in_pets_and_back_keep_their_ciphertexts(phe_keys) -> None:
    ppub, ppriv = phe_keys
    values = [3, -7, 1_000_000, 0]
    nums = [ppub.encrypt(v) for v in values]
    vec = he.from_phe(nums)
    assert vec.ciphertexts == [x.ciphertext(be_secure=False) for x in nums]  # no re-encryption
    assert vec.exponent == 0 and not vec.needs_rerandomize
    pub, priv = he.from_phe(ppub), he.from_phe(ppriv)
    assert priv.decrypt_many(vec).tolist() == values
    assert priv.decrypt_many(nums).tolist() == values  # phe numbers directly
    # computed on in pets (sum, scalar product), decrypted by phe
    total = (vec * 2).sum()
    out = total.to_phe()
    assert [ppriv.decrypt(x) for x in out] == [2 * sum(values)]
    # pets' own ciphertexts to phe, which adds to them and decrypts
    mine = pub.encrypt_many([1.5, -2.25])
    theirs = he.to_phe(mine, ppub)
    assert all(x.public_key is ppub for x in theirs)
    assert [ppriv.decrypt(x + 1) for x in theirs] == [2.5, -1.25]
    assert [x.ciphertext(be_secure=False) for x in theirs] == mine.ciphertexts
    assert he.EncryptedVector.from_phe(theirs).ciphertexts == mine.ciphertexts


def test_phe_numbers_with_different_exponents_are_aligned_as_phe_adds_them(phe_keys) -> None:
    ppub, ppriv = phe_keys
    nums = [ppub.encrypt(2.5), ppub.encrypt(7), ppub.encrypt(-0.001)]
    vec = he.from_phe(nums)
    assert vec.exponent == min(x.exponent for x in nums)
    assert vec.needs_rerandomize  # aligning raised ciphertexts to a power
    got = he.from_phe(ppriv).decrypt_many(vec)
    assert np.allclose(got, [2.5, 7, -0.001], rtol=0, atol=1e-12)
    # unobfuscated phe results (a product) are marked too
    assert he.from_phe([nums[1] * 3]).needs_rerandomize


def test_bad_phe_input_gives_clear_errors(phe_keys) -> None:
    ppub, _ = phe_keys
    other, _ = paillier.generate_paillier_keypair(n_length=2048)
    with pytest.raises(pets.DataError, match="different public keys"):
        he.from_phe([ppub.encrypt(1), other.encrypt(1)])
    with pytest.raises(pets.QueryError, match="from_phe takes phe EncryptedNumbers, got a int"):
        he.from_phe([ppub.encrypt(1), 5])
    with pytest.raises(pets.QueryError, match="at least one EncryptedNumber"):
        he.from_phe([])
    with pytest.raises(pets.QueryError, match="to_phe takes a pets.he PublicKey"):
        he.to_phe("key")
    with pytest.raises(pets.QueryError, match="phe.PaillierPublicKey"):
        he.PublicKey.from_phe(123)
    with pytest.raises(pets.QueryError):  # a 1024-bit phe key: refused as pets' own would be
        he.from_phe(paillier.generate_paillier_keypair(n_length=1024)[0])
