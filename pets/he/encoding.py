"""Signed and fixed-point values as Paillier plaintexts: ``phe``'s EncodedNumber semantics.

Paillier encrypts integers modulo n. Like python-paillier (``phe.EncodedNumber``), a real
value ``v`` is written as ``v ≈ mantissa · BASE**exponent`` with ``BASE = 16`` and an
integer ``mantissa``; the *encoding* is ``mantissa mod n`` and the exponent travels in
clear next to the ciphertext. Signed mantissas lie in ``[-max_int, max_int]`` with
``max_int = n // 3 - 1``; a negative mantissa is stored as ``n - |mantissa|``. Decoded
plaintexts strictly between ``max_int`` and ``n - max_int`` are the *overflow band*: a sum
or product that left the signed range lands there (or a ciphertext was tampered with, or
decrypted with the wrong key), and decoding refuses it with :class:`pets.errors.DataError`
instead of returning a wrong number.

The exponent of one value follows ``phe`` exactly:

* an ``int`` gets exponent 0;
* a ``float`` gets the exponent of its least significant mantissa bit, rounded down to a
  power of 16: ``floor((frexp(v)[1] - 53) / 4)`` — every bit of the float is kept;
* ``precision=p`` fixes it to ``floor(log16(p))`` (values are rounded to that grid, half
  to even, as ``round(Fraction)`` does in ``phe``);
* ``max_exponent`` caps it: ``min(max_exponent, exponent)``.

**Columns share one exponent.** :func:`encode_column` encodes a whole column with a
single exponent: the smallest exponent any of its values needs (so every value is
represented exactly, as ``phe`` would encode it on its own, only with more trailing
hexadecimal zeros), or the one given. One exponent per column means the vector can be
added and summed without per-value exponent alignment, and the exponent leaks only what
the column as a whole needs, not each value's magnitude.

numpy integer and float scalars are accepted (as Python ints and floats); NaN and
infinities are refused.

Example
-------
>>> n = 2**61 - 1  # any modulus works for the encoding itself (keys are ≥ 2048 bits)
>>> enc, e = encode_column(n, [1.5, -2.25, 3])
>>> e
-13
>>> decode_column(n, enc, e).tolist()
[1.5, -2.25, 3.0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import DataError, QueryError

__all__ = [
    "BASE",
    "FLOAT_MANTISSA_BITS",
    "LOG2_BASE",
    "decode",
    "decode_column",
    "encode",
    "encode_column",
    "max_int",
    "value_exponent",
]

BASE = 16
"""Base of the exponent, as in ``phe.EncodedNumber.BASE``."""
LOG2_BASE = 4
FLOAT_MANTISSA_BITS = 53  # sys.float_info.mant_dig


def _modulus(n: Any) -> int:
    """Accept an int modulus or anything with an ``.n`` (a public or private key)."""
    if hasattr(n, "n"):
        n = n.n
    elif hasattr(n, "public_key"):
        n = n.public_key.n
    return int(n)


def max_int(n: Any) -> int:
    """Largest mantissa magnitude that encodes without entering the overflow band."""
    return _modulus(n) // 3 - 1


def _as_number(value: Any) -> int | float:
    """A Python int or float for ``value``; a QueryError for anything else."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            raise QueryError("cannot encode NaN or an infinity for encryption")
        return v
    raise QueryError(
        f"cannot encode a value of type {type(value).__name__} for encryption: "
        "use ints or floats"
    )


def _float_exponent(v: float) -> int:
    # phe: floor((frexp(v)[1] - mantissa bits) / log2(BASE)); LOG2_BASE is exactly 4.
    return (math.frexp(v)[1] - FLOAT_MANTISSA_BITS) // LOG2_BASE


def _precision_exponent(precision: float) -> int:
    if not (isinstance(precision, int | float | np.integer | np.floating)) or not (
        math.isfinite(precision) and precision > 0
    ):
        raise QueryError("precision must be a positive finite number")
    return math.floor(math.log(precision, BASE))


def value_exponent(
    value: Any, precision: float | None = None, max_exponent: int | None = None
) -> int:
    """The exponent ``phe`` would give ``value`` (see the module docstring)."""
    if precision is None:
        v = _as_number(value)
        exponent = 0 if isinstance(v, int) else _float_exponent(v)
    else:
        exponent = _precision_exponent(precision)
    if max_exponent is not None:
        exponent = min(int(max_exponent), exponent)
    return exponent


def _mantissa(v: float, exponent: int) -> int:
    """round(v · BASE**-exponent), exact, half to even (phe's Fraction rounding)."""
    if isinstance(v, int):
        if exponent <= 0:
            return v * BASE**-exponent
        return round(Fraction(v, BASE**exponent))
    # v = num / 2**k exactly; the product is an integer when exponent is fine enough.
    num, den = v.as_integer_ratio()
    if exponent <= 0:
        top = num * BASE**-exponent
        if top % den == 0:
            return top // den
        return round(Fraction(top, den))
    return round(Fraction(num, den * BASE**exponent))


def encode(
    n: Any,
    scalar: Any,
    precision: float | None = None,
    max_exponent: int | None = None,
) -> tuple[int, int]:
    """Encode one int or float as ``(encoding mod n, exponent)``, exactly as ``phe`` does.

    Raises :class:`pets.errors.QueryError` if the mantissa does not fit in
    ``±(n // 3 - 1)``.
    """
    modulus = _modulus(n)
    v = _as_number(scalar)
    exponent = value_exponent(v, precision, max_exponent)
    mantissa = _mantissa(v, exponent)
    if abs(mantissa) > modulus // 3 - 1:
        raise QueryError(
            "value too large to encode under this key: the mantissa must be within "
            "±(n // 3 - 1); use a larger key or a coarser precision"
        )
    return mantissa % modulus, exponent


def _signed(modulus: int, encoding: int) -> int:
    if not 0 <= encoding < modulus:
        raise DataError("decrypted value is not a plaintext of this key (corrupted)")
    limit = modulus // 3 - 1
    if encoding <= limit:
        return encoding
    if encoding >= modulus - limit:
        return encoding - modulus
    raise DataError(
        "overflow detected in a decrypted value: it lies in the overflow band between "
        "n // 3 and 2n // 3 (the sum left the signed range, or the ciphertext was "
        "tampered with or decrypted with another key)"
    )


def decode(n: Any, encoding: int, exponent: int) -> int | float:
    """Decode one plaintext: an int if ``exponent >= 0``, else a float (``phe`` semantics).

    Raises :class:`pets.errors.DataError` for a value in the overflow band.
    """
    modulus = _modulus(n)
    mantissa = _signed(modulus, int(encoding))
    if exponent >= 0:
        return mantissa * BASE**exponent
    try:
        return mantissa / BASE**-exponent
    except OverflowError as exc:  # pragma: no cover - needs an astronomically large sum
        raise DataError("decoded value too large for a float") from exc


def _column_values(values: Any) -> list[int | float]:
    """Python ints/floats for a 1-d column (list, tuple, numpy array, pandas Series)."""
    if isinstance(values, np.ndarray) or hasattr(values, "to_numpy"):
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise QueryError("encrypt a one-dimensional column of values")
        if arr.dtype.kind in "iub":
            return [int(x) for x in arr.tolist()]
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise QueryError("cannot encode NaN or an infinity for encryption")
            return [float(x) for x in arr.tolist()]
        return [_as_number(x) for x in arr.tolist()]
    if isinstance(values, int | float | np.integer | np.floating):
        raise QueryError("encrypt a column (a list or array) of values, not a scalar")
    return [_as_number(x) for x in values]


def column_exponent(
    values: Sequence[int | float],
    precision: float | None = None,
    max_exponent: int | None = None,
) -> int:
    """The one exponent of a column: the smallest exponent any of its values needs."""
    if precision is not None:
        exponent = _precision_exponent(precision)
    else:
        exponent = 0
        for v in values:
            if isinstance(v, float):
                exponent = min(exponent, _float_exponent(v))
    if max_exponent is not None:
        exponent = min(int(max_exponent), exponent)
    return exponent


def encode_column(
    n: Any,
    values: Iterable[Any],
    exponent: int | None = None,
    precision: float | None = None,
    max_exponent: int | None = None,
) -> tuple[list[int], int]:
    """Encode a column with ONE shared exponent: ``(encodings mod n, exponent)``.

    ``exponent`` fixes the exponent (values are rounded to its grid, half to even);
    otherwise it is the smallest exponent any value needs under ``phe``'s rules (see
    :func:`value_exponent`), capped by ``max_exponent``. Raises
    :class:`pets.errors.QueryError` when a value does not fit under this key.
    """
    modulus = _modulus(n)
    column = _column_values(values)
    if exponent is not None:
        if precision is not None:
            raise QueryError("give either exponent= or precision=, not both")
        if not isinstance(exponent, int | np.integer) or isinstance(exponent, bool):
            raise QueryError("exponent must be an integer")
        e = int(exponent)
        if max_exponent is not None:
            e = min(e, int(max_exponent))
    else:
        e = column_exponent(column, precision, max_exponent)
    limit = modulus // 3 - 1
    out: list[int] = []
    append = out.append
    scale = BASE**-e if e <= 0 else 0
    for i, v in enumerate(column):
        if scale and isinstance(v, int):
            m = v * scale
        else:
            m = _mantissa(v, e)
        if m > limit or -m > limit:
            raise QueryError(
                f"value at position {i} is too large to encode under this key: mantissas "
                "must be within ±(n // 3 - 1); use a larger key or a coarser precision"
            )
        append(m % modulus)
    return out, e


def decode_column(n: Any, encodings: Iterable[int], exponent: int) -> np.ndarray:
    """Decode plaintexts sharing one exponent into a numpy array.

    ``exponent >= 0`` gives integers (int64 when they fit, else an object array of Python
    ints); a negative exponent gives float64. Raises :class:`pets.errors.DataError` if any
    value lies in the overflow band.
    """
    modulus = _modulus(n)
    mantissas = [_signed(modulus, int(c)) for c in encodings]
    if exponent >= 0:
        factor = BASE**exponent
        ints = [m * factor for m in mantissas] if factor != 1 else mantissas
        lo, hi = -(2**63), 2**63 - 1
        if all(lo <= v <= hi for v in ints):
            return np.array(ints, dtype=np.int64)
        arr = np.empty(len(ints), dtype=object)
        arr[:] = ints
        return arr
    divisor = BASE**-exponent
    try:
        return np.array([m / divisor for m in mantissas], dtype=np.float64)
    except OverflowError as exc:  # pragma: no cover
        raise DataError("decoded value too large for a float") from exc
