"""Packing many small integers into one Paillier plaintext.

A 2048-bit plaintext has room for dozens of small counters. :class:`Packer` lays values
side by side in *slots* of ``slot_bits = value_bits + ⌈log2(max_summands)⌉ + 1`` bits:

* signed values in ``[-2^(value_bits−1), 2^(value_bits−1) − 1]`` are offset-encoded
  (``u = v + 2^(value_bits−1)``, so ``0 ≤ u < 2^value_bits``);
* adding ciphertexts adds the plaintexts, hence every slot at once; after ``s`` summands a
  slot holds at most ``s · (2^value_bits − 1) < 2^(slot_bits − 1)``: the ⌈log2⌉ bits are
  the carry headroom for ``max_summands`` summands and the last bit stays clear, so a slot
  never carries into its neighbour;
* ``slots_per_plaintext = (bits of n − 1) // slot_bits``, so a packed plaintext is < n;
* unpacking subtracts ``offset · summands`` from each slot.

Overflow is refused, never wrapped: :meth:`Packer.pack` refuses a value outside the
range (:class:`pets.errors.QueryError`), a :class:`PackedVector` counts its summands and
refuses an addition that would exceed ``max_summands``, and :meth:`Packer.unpack` checks
every slot (and the unused ones) against the bound for the declared number of summands
(:class:`pets.errors.DataError` if a slot is out of range, e.g. a tampered ciphertext).

**The decryptor learns every slot.** Pack only cells that are all released outputs
(e.g. all the cells of a group-by, or several released columns of one group): never pack
partial sums that are not themselves released. :meth:`Packer.encrypt_grouped` follows
this rule: each plaintext slot is one group's cell, rows of one value per group are
encrypted and summed slot-wise, and what is decrypted is exactly the group totals.

Packed plaintexts are encrypted by the same path as everything else
(:meth:`pets.he.PublicKey.raw_encrypt_many`, or the key owner's CRT path). ``phe`` can
decrypt them only with ``raw_decrypt``, then :meth:`Packer.unpack`.

Example
-------
>>> pub, priv = pets.he.generate_keypair(2048)                    # doctest: +SKIP
>>> packer = Packer(pub, value_bits=32, max_summands=1000)         # doctest: +SKIP
>>> a = packer.encrypt([1, -2, 3]); b = packer.encrypt([10, 20, -30])   # doctest: +SKIP
>>> (a + b).decrypt(priv)                                          # doctest: +SKIP
array([ 11,  18, -27])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gmpy2
import numpy as np

from ..errors import DataError, QueryError
from .paillier import PrivateKey, PublicKey, _check_ciphertexts

__all__ = ["PackedVector", "Packer"]


def _int_values(values: Any, what: str = "values") -> list[int]:
    arr = np.asarray(values) if not isinstance(values, list | tuple) else None
    if arr is not None:
        if arr.ndim != 1:
            raise QueryError(f"{what} must be one-dimensional")
        if arr.dtype.kind in "iub":
            return [int(x) for x in arr.tolist()]
        if arr.dtype.kind != "O":
            raise QueryError(f"packed {what} must be integers")
        values = arr.tolist()
    out = []
    for v in values:
        if isinstance(v, int | np.integer | np.bool_):
            out.append(int(v))
        else:
            raise QueryError(f"packed {what} must be integers")
    return out


class Packer:
    """Packs signed integers of ``value_bits`` bits into plaintexts of ``public_key``,
    with carry headroom for ``max_summands`` additions (see the module docstring).

    Attributes: ``slot_bits``, ``slots_per_plaintext``, ``offset``, ``min_value``,
    ``max_value``.
    """

    def __init__(
        self, public_key: PublicKey, value_bits: int, max_summands: int
    ) -> None:
        if isinstance(public_key, PrivateKey):
            public_key = public_key.public_key
        if not isinstance(public_key, PublicKey):
            raise QueryError("public_key must be a pets.he.PublicKey")
        for name, v in (("value_bits", value_bits), ("max_summands", max_summands)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise QueryError(f"{name} must be a positive integer")
        self.public_key = public_key
        self.value_bits = int(value_bits)
        self.max_summands = int(max_summands)
        self.slot_bits = self.value_bits + (self.max_summands - 1).bit_length() + 1
        self.slots_per_plaintext = (public_key.n.bit_length() - 1) // self.slot_bits
        if self.slots_per_plaintext < 1:
            raise QueryError(
                f"slots of {self.slot_bits} bits do not fit in a {public_key.bits}-bit "
                "plaintext: lower value_bits or max_summands"
            )
        self.offset = 1 << (self.value_bits - 1)
        self.min_value = -self.offset
        self.max_value = self.offset - 1

    def __repr__(self) -> str:
        return (
            f"Packer(value_bits={self.value_bits}, max_summands={self.max_summands}, "
            f"slot_bits={self.slot_bits}, slots_per_plaintext={self.slots_per_plaintext})"
        )

    def _key(self) -> tuple[int, int, int]:
        return (self.public_key.n, self.value_bits, self.max_summands)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Packer) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(("pets.he.Packer",) + self._key())

    def n_plaintexts(self, n_values: int) -> int:
        """How many plaintexts ``n_values`` values take."""
        return -(-int(n_values) // self.slots_per_plaintext)

    # -- plaintext packing
    def pack(self, values: Iterable[int]) -> list[int]:
        """Offset-encode and pack integers; unused slots of the last plaintext stay 0.

        Raises :class:`pets.errors.QueryError` if a value is outside
        ``[min_value, max_value]``.
        """
        ints = _int_values(values)
        lo, hi = self.min_value, self.max_value
        for i, v in enumerate(ints):
            if not lo <= v <= hi:
                raise QueryError(
                    f"value at position {i} does not fit in {self.value_bits} signed bits "
                    f"([{lo}, {hi}]): widen value_bits"
                )
        sb, spp, off = self.slot_bits, self.slots_per_plaintext, self.offset
        out = []
        for start in range(0, len(ints), spp):
            acc = 0
            for v in reversed(ints[start : start + spp]):
                acc = (acc << sb) | (v + off)
            out.append(acc)
        return out

    def _check_summands(self, summands: int) -> int:
        if (
            isinstance(summands, bool)
            or not isinstance(summands, int | np.integer)
            or summands < 1
        ):
            raise QueryError("summands must be a positive integer")
        if summands > self.max_summands:
            raise QueryError(
                f"{summands} summands exceed the declared max_summands={self.max_summands}: "
                "the slots could overflow"
            )
        return int(summands)

    def unpack(
        self, plaintexts: Sequence[int], n_values: int, summands: int = 1
    ) -> np.ndarray:
        """The slot values of decrypted packed plaintexts, sums of ``summands`` values each.

        Subtracts ``offset · summands`` from every slot. Raises
        :class:`pets.errors.DataError` if a slot exceeds ``summands · (2^value_bits − 1)``
        or an unused slot is not zero (overflow or tampering).
        """
        summands = self._check_summands(summands)
        n_values = int(n_values)
        if n_values < 0 or self.n_plaintexts(n_values) != len(plaintexts):
            raise QueryError(
                f"{n_values} values take {self.n_plaintexts(max(n_values, 0))} plaintexts, "
                f"got {len(plaintexts)}"
            )
        sb, spp = self.slot_bits, self.slots_per_plaintext
        mask = (1 << sb) - 1
        bound = summands * ((1 << self.value_bits) - 1)
        shift = self.offset * summands
        out: list[int] = []
        for k, p in enumerate(plaintexts):
            p = int(p)
            if p < 0 or p >> (spp * sb):
                raise DataError(
                    "packed plaintext out of range: overflow or a tampered ciphertext"
                )
            used = min(spp, n_values - k * spp)
            for _ in range(used):
                slot = p & mask
                if slot > bound:
                    raise DataError(
                        "overflow detected in a packed slot: more summands than declared, or "
                        "a tampered ciphertext"
                    )
                out.append(slot - shift)
                p >>= sb
            if p:
                raise DataError(
                    "unused packed slots are not empty: a tampered ciphertext"
                )
        if self.value_bits + summands.bit_length() <= 62:
            return np.array(out, dtype=np.int64)
        arr = np.empty(len(out), dtype=object)
        arr[:] = out
        return arr

    # -- encryption
    def _encryptor(self, private_key: PrivateKey | None) -> Any:
        if private_key is None:
            return self.public_key
        if (
            not isinstance(private_key, PrivateKey)
            or private_key.public_key.n != self.public_key.n
        ):
            raise QueryError(
                "private_key must be the PrivateKey of this packer's public key"
            )
        return private_key

    def encrypt(
        self,
        values: Iterable[int],
        *,
        private_key: PrivateKey | None = None,
        profile: str = "djn",
        randomness_bits: int | None = None,
        workers: int | None = None,
    ) -> PackedVector:
        """Pack and encrypt ``values``: a :class:`PackedVector` of one summand.

        ``private_key`` (the key owner only) selects the faster CRT encryption.
        """
        ints = _int_values(values)
        plaintexts = self.pack(ints)
        cts = self._encryptor(private_key).raw_encrypt_many(
            plaintexts, profile, randomness_bits=randomness_bits, workers=workers
        )
        return PackedVector(self, cts, len(ints), 1)

    def encrypt_grouped(
        self,
        values: Iterable[int],
        groups: Iterable[int],
        n_groups: int,
        *,
        private_key: PrivateKey | None = None,
        profile: str = "djn",
        randomness_bits: int | None = None,
        workers: int | None = None,
    ) -> PackedVector:
        """Encrypt every value and sum them by group: a :class:`PackedVector` of the
        ``n_groups`` encrypted group totals.

        Values are laid out in rows holding at most one value per group, slot g of a row
        being group g (an absent value counts as 0); each row is packed and encrypted, and
        the rows are summed slot-wise, so the decryptor sees only the group totals. The
        number of rows (the size of the largest group) is the number of summands and must
        not exceed ``max_summands``. ``groups`` are integers in ``[0, n_groups)``.
        """
        vals = np.asarray(_int_values(values), dtype=object)
        grp = np.asarray(groups)
        if grp.ndim != 1 or len(grp) != len(vals):
            raise QueryError(
                "values and groups must be one-dimensional and of equal length"
            )
        if (
            isinstance(n_groups, bool)
            or not isinstance(n_groups, int | np.integer)
            or n_groups < 1
        ):
            raise QueryError("n_groups must be a positive integer")
        n_groups = int(n_groups)
        if len(grp) and (
            grp.dtype.kind not in "iu" or grp.min() < 0 or grp.max() >= n_groups
        ):
            raise QueryError("groups must be integers in [0, n_groups)")
        grp = grp.astype(np.int64, copy=False)
        counts = np.bincount(grp, minlength=n_groups)
        rows = int(counts.max()) if len(grp) else 1
        rows = max(rows, 1)
        self._check_summands(rows)
        order = np.argsort(grp, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.empty(len(grp), dtype=np.int64)
        rank[order] = np.arange(len(grp)) - starts[grp[order]]
        matrix = np.zeros((rows, n_groups), dtype=object)
        matrix[:] = 0
        matrix[rank, grp] = vals
        per_row = self.n_plaintexts(n_groups)
        plaintexts: list[int] = []
        for r in range(rows):
            plaintexts.extend(self.pack(matrix[r].tolist()))
        cts = self._encryptor(private_key).raw_encrypt_many(
            plaintexts, profile, randomness_bits=randomness_bits, workers=workers
        )
        n2 = self.public_key._n2
        sums = []
        for k in range(per_row):
            acc = gmpy2.mpz(1)
            for c in cts[k::per_row]:
                acc = acc * c % n2
            sums.append(int(acc))
        return PackedVector(self, sums, n_groups, rows)

    def vector(
        self, ciphertexts: Iterable[int], n_values: int, summands: int = 1
    ) -> PackedVector:
        """A :class:`PackedVector` from received ciphertext ints (validated: 0 < c < n²,
        gcd(c, n) = 1, else :class:`pets.errors.DataError`)."""
        cts = _check_ciphertexts(self.public_key, ciphertexts)
        return PackedVector(self, cts, n_values, summands)


class PackedVector:
    """Encrypted packed plaintexts holding ``n_values`` slot values, each the sum of
    ``summands`` packed values.

    ``a + b`` (same packer, same ``n_values``) adds slot-wise and adds the summand counts;
    it raises :class:`pets.errors.QueryError` rather than exceed ``max_summands``.
    ``sum([...])`` works. :meth:`decrypt` unpacks. ``.ciphertexts`` are Python ints mod n².
    """

    __slots__ = ("_c", "n_values", "packer", "summands")

    def __init__(
        self,
        packer: Packer,
        ciphertexts: Iterable[int],
        n_values: int,
        summands: int = 1,
    ) -> None:
        if not isinstance(packer, Packer):
            raise QueryError("packer must be a pets.he.Packer")
        self.packer = packer
        self._c = [int(c) for c in ciphertexts]
        self.n_values = int(n_values)
        self.summands = packer._check_summands(summands)
        if packer.n_plaintexts(self.n_values) != len(self._c):
            raise QueryError(
                f"{self.n_values} packed values need {packer.n_plaintexts(self.n_values)} "
                f"ciphertexts, got {len(self._c)}"
            )

    @property
    def public_key(self) -> PublicKey:
        return self.packer.public_key

    @property
    def ciphertexts(self) -> list[int]:
        return list(self._c)

    @property
    def n_ciphertexts(self) -> int:
        return len(self._c)

    def __len__(self) -> int:
        return self.n_values

    def __repr__(self) -> str:
        return (
            f"<pets.he.PackedVector {self.n_values} values in {len(self._c)} ciphertexts, "
            f"{self.summands}/{self.packer.max_summands} summands>"
        )

    def __add__(self, other: Any) -> PackedVector:
        if not isinstance(other, PackedVector):
            raise QueryError("a PackedVector adds only to another PackedVector")
        if other.public_key.n != self.public_key.n:
            raise DataError(
                "cannot combine vectors encrypted under different public keys"
            )
        if other.packer != self.packer:
            raise QueryError("packed vectors differ in value_bits or max_summands")
        if other.n_values != self.n_values:
            raise QueryError(
                f"packed vectors of {self.n_values} and {other.n_values} values"
            )
        summands = self.summands + other.summands
        if summands > self.packer.max_summands:
            raise QueryError(
                f"adding would make {summands} summands, more than the declared "
                f"max_summands={self.packer.max_summands}: the slots could overflow"
            )
        n2 = self.public_key._n2
        cts = [int(gmpy2.mpz(a) * b % n2) for a, b in zip(self._c, other._c)]
        return PackedVector(self.packer, cts, self.n_values, summands)

    def __radd__(self, other: Any) -> PackedVector:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum([...]) starts from 0
        return self.__add__(other)

    def rerandomize(self) -> PackedVector:
        """The same plaintexts under fresh randomness."""
        cts = self.public_key.rerandomize_many(self._c)
        return PackedVector(self.packer, cts, self.n_values, self.summands)

    def decrypt(self, private_key: PrivateKey) -> np.ndarray:
        """Decrypt and unpack: an int64 array of the ``n_values`` slot sums."""
        if not isinstance(private_key, PrivateKey):
            raise QueryError("decrypt takes a pets.he.PrivateKey")
        if private_key.public_key.n != self.public_key.n:
            raise DataError("the vector was encrypted under another public key")
        plain = private_key.raw_decrypt_many(self._c)
        return self.packer.unpack(plain, self.n_values, self.summands)
