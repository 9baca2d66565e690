"""Generalisation hierarchies: one column's values and their coarser labels.

A :class:`Hierarchy` lists the distinct original values of a column (the *leaves*,
level 0) and, for each level ``1..height``, the generalised label of every leaf. The top
level is usually ``"*"`` (the value fully suppressed)::

    >>> h = Hierarchy.from_rows([["39", "35-39", "30-39", "*"],
    ...                          ["42", "40-44", "40-49", "*"]], name="age")
    >>> h.height
    3
    >>> list(h.generalize([39, 42, 39], 2))
    ['30-39', '40-49', '30-39']

Hierarchies come from the CSV format of ARX and the benchmark files (no header; column
0 the original value, column *i* its level-*i* label; :meth:`Hierarchy.from_csv`), from
a dict or a list of rows, or from builders: numeric :meth:`~Hierarchy.intervals`,
:meth:`~Hierarchy.masking` of trailing characters, :meth:`~Hierarchy.dates` and
:meth:`~Hierarchy.ordered` categories. Every constructor validates: no duplicate leaf,
every line of the same depth, at least one level above the leaves, and the hierarchy
*monotone* (two leaves that share a label at level *h* share their labels at every
level above *h*, so each level is a function of the one below and levels nest).

**Matching data to leaves.** Leaves and data values are matched by their *string form*
(the leaf's *key*): strings are stripped of surrounding whitespace; integers (Python or
numpy) are written ``str(int(x))``; floats with an integral value are written as the
integer (``39.0`` matches the leaf ``"39"``), other floats as ``repr(float(x))``
(``20.5`` → ``"20.5"``); ``datetime.date`` values and midnight datetimes/Timestamps as
``"YYYY-MM-DD"``, other datetimes as ``"YYYY-MM-DD HH:MM:SS[.ffffff]"``; booleans as
``"True"``/``"False"``; anything else ``str(x)``. So an int ``age`` column matches the
string leaves of ``adult_hierarchy_age.csv``, and ``" Male"`` matches ``"Male"``. A
missing value (None, NaN, NaT, pd.NA) never matches: replace it with a marker (e.g.
``"?"``) that has a leaf in the hierarchy, or drop those rows.

:meth:`Hierarchy.encode` turns a column into integer codes for the search:
``codes[row]`` the row's leaf, ``gen[leaf, h]`` the leaf's level-*h* label index. It is
vectorised (one ``pandas.factorize`` over the rows, then work on the distinct values
only).

Errors raise :class:`pets.errors.QueryError` saying what to change; a message quotes at
most the offending value(s) of the hierarchy or data, never a whole column.
"""

from __future__ import annotations

import csv
import datetime as _dt
import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from pets.errors import QueryError

__all__ = ["EncodedHierarchy", "Hierarchy", "leaf_key"]

_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_DATE_LEVELS = ("day", "month", "quarter", "year", "decade")


# ---------------------------------------------------------------------------------------
# matching by string form


def _is_missing(x: Any) -> bool:
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    if isinstance(x, (float, np.floating)):
        return bool(np.isnan(x))
    if isinstance(x, np.datetime64):
        return bool(np.isnat(x))
    return False


def _float_key(f: float) -> str:
    if f.is_integer():
        return str(int(f))
    return repr(f)


def leaf_key(x: Any) -> str:
    """The string form by which a value is matched to a hierarchy leaf.

    Strings are stripped; ints → ``str(int(x))``; integral floats → the integer
    (``39.0`` → ``"39"``), other floats → ``repr(float(x))``; dates and midnight
    datetimes → ``"YYYY-MM-DD"``, other datetimes → ``"YYYY-MM-DD HH:MM:SS[.ffffff]"``;
    bools → ``"True"``/``"False"``; anything else ``str(x)``. Missing values (None, NaN,
    NaT, pd.NA) have no key: :class:`~pets.errors.QueryError`.
    """
    if isinstance(x, str):
        return x.strip()
    if _is_missing(x):
        raise QueryError(
            "a missing value (None/NaN) cannot be a hierarchy value; use a marker such as '?'"
        )
    if isinstance(x, (bool, np.bool_)):
        return "True" if x else "False"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isinf(f):
            return repr(f)
        return _float_key(f)
    if isinstance(x, np.datetime64):
        x = pd.Timestamp(x)
    if isinstance(x, _dt.datetime):
        if (
            x.tzinfo is None
            and x.hour == 0
            and x.minute == 0
            and x.second == 0
            and x.microsecond == 0
            and getattr(x, "nanosecond", 0) == 0
        ):
            return f"{x.year:04d}-{x.month:02d}-{x.day:02d}"
        return x.isoformat(sep=" ")
    if isinstance(x, _dt.date):
        return x.isoformat()
    return str(x).strip()


def _label(x: Any, where: str) -> str:
    """A level label as a string (strings stripped); missing or empty → error."""
    if isinstance(x, str):
        s = x.strip()
    elif _is_missing(x):
        s = ""
    else:
        s = leaf_key(x)
    if s == "":
        raise QueryError(f"{where} has an empty or missing label; give every level a label (e.g. '*')")
    return s


def _q(x: Any) -> str:
    """Quote one value for a message, shortened if very long."""
    s = str(x)
    if len(s) > 60:
        s = s[:57] + "..."
    return repr(s)


def _keys_of(uniques: Any, strip: bool = True) -> list[str] | np.ndarray:
    """The :func:`leaf_key` of each of an array of non-missing values, vectorised for
    the common dtypes (ints, floats, strings, dates). ``strip=False`` leaves strings
    as they are (the caller strips where an exact match fails)."""
    dtype = getattr(uniques, "dtype", None)
    if dtype is not None and isinstance(dtype, pd.CategoricalDtype):
        uniques = np.asarray(uniques)
        dtype = uniques.dtype
    if dtype is not None:
        if pd.api.types.is_bool_dtype(dtype):
            arr = np.asarray(uniques, dtype=bool)
            return np.where(arr, "True", "False").astype(object)
        if pd.api.types.is_integer_dtype(dtype):
            arr = np.asarray(uniques, dtype=np.int64 if pd.api.types.is_signed_integer_dtype(dtype) else np.uint64)
            return arr.astype(str).astype(object)
        if pd.api.types.is_float_dtype(dtype):
            arr = np.asarray(uniques, dtype=np.float64)
            out = np.empty(len(arr), dtype=object)
            integral = np.isfinite(arr) & (arr == np.round(arr))
            small = integral & (np.abs(arr) < 2.0**62)
            out[small] = arr[small].astype(np.int64).astype(str)
            big = np.nonzero(integral & ~small)[0]
            if len(big):
                out[big] = [str(int(v)) for v in arr[big]]
            # numpy writes a float64 as its shortest round-trip form, as repr() does
            # (inf/-inf as "inf"/"-inf", like repr)
            out[~integral] = arr[~integral].astype(str)
            return out
        if pd.api.types.is_datetime64_any_dtype(dtype):
            idx = pd.DatetimeIndex(uniques)
            if idx.tz is None and (idx == idx.normalize()).all():
                return np.asarray(idx.strftime("%Y-%m-%d"), dtype=object)
            return [leaf_key(v) for v in idx]
    arr = np.asarray(uniques, dtype=object)
    kind = pd.api.types.infer_dtype(arr, skipna=False)
    if kind == "string":
        if not strip:
            return arr
        return pd.Series(arr, dtype=object).str.strip().to_numpy(dtype=object)
    return [leaf_key(v) for v in arr]


# ---------------------------------------------------------------------------------------
# encoded form


@dataclass(frozen=True, eq=False)
class EncodedHierarchy:
    """A hierarchy with one data column encoded as integer codes.

    ``codes[row]`` is the row's leaf (an index into ``labels[0]``, int32);
    ``gen[leaf, h]`` the index of the leaf's level-``h`` label in ``labels[h]`` (int32,
    ``gen[:, 0] == arange(n_leaves)``); so ``gen[codes, h]`` codes the column
    generalised to level ``h``. ``leaf_share[h][c]`` is the number of leaves under label
    ``c`` of level ``h`` divided by the number of leaves (ARX's Loss metric);
    ``order`` a float per leaf when every leaf is a number (for ordered numeric
    quasi-identifiers and distances), else None. ``gen``, ``leaf_share`` and ``order``
    are read-only (shared with the hierarchy).
    """

    name: str | None
    codes: np.ndarray
    gen: np.ndarray
    labels: list[list[str]]
    leaf_share: list[np.ndarray]
    order: np.ndarray | None

    @property
    def height(self) -> int:
        """Number of levels above the leaves."""
        return int(self.gen.shape[1]) - 1

    @property
    def n_leaves(self) -> int:
        return int(self.gen.shape[0])

    def level_codes(self, level: int) -> np.ndarray:
        """Codes of the column generalised to ``level`` (indices into ``labels[level]``)."""
        return self.gen[self.codes, level]


# ---------------------------------------------------------------------------------------
# the hierarchy


class Hierarchy:
    """A generalisation hierarchy of one column (see the module docstring).

    Build one with :meth:`from_csv`, :meth:`from_dict`, :meth:`from_rows` or a builder
    (:meth:`intervals`, :meth:`masking`, :meth:`dates`, :meth:`ordered`); the plain
    constructor is internal. ``values`` are the leaves as given (strings from a CSV,
    numbers from :meth:`intervals`, ...), ``labels(h)`` the distinct labels of level
    ``h`` as strings, ``height`` the number of levels above the leaves.
    """

    name: str | None

    def __init__(
        self,
        values: Sequence[Any],
        levels: Sequence[Sequence[str]],
        *,
        name: str | None = None,
        _origin: Sequence[str] | None = None,
        _keys: Sequence[str] | None = None,
    ) -> None:
        # values: leaves as given; levels[h-1][i]: level-h label (str) of leaf i;
        # _origin[i]: where leaf i came from ("line 3"), for messages; _keys: the leaves'
        # keys when the caller has them already (vectorised builders)
        self.name = name
        self._values = list(values)
        self._keys = list(_keys) if _keys is not None else [leaf_key(v) for v in self._values]
        self._levels = [list(level) for level in levels]
        n = len(self._values)
        for level in self._levels:
            if len(level) != n:  # pragma: no cover - constructors guarantee this
                raise QueryError("every level must give one label per value")
        self._origin = list(_origin) if _origin is not None else None
        self.validate()

    def _where(self, i: int) -> str:
        return self._origin[i] if self._origin is not None else f"value {_q(self._keys[i])}"

    # -- constructors --------------------------------------------------------------

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]] | pd.DataFrame, name: str | None = None) -> Hierarchy:
        """From rows ``[value, level1, level2, ...]`` (a list of lists, or a DataFrame such
        as :meth:`to_frame` gives). Labels are stripped strings; leaves keep their type
        and are matched by :func:`leaf_key`."""
        if isinstance(rows, pd.DataFrame):
            rows = rows.itertuples(index=False, name=None)
        rows = list(rows)
        for i, r in enumerate(rows):
            if isinstance(r, (str, bytes)) or not isinstance(r, Iterable):
                raise QueryError(f"row {i + 1} is not a list; give each row as [value, level1, level2, ...]")
        return cls._from_lines([(f"row {i + 1}", list(r)) for i, r in enumerate(rows)], name)

    @classmethod
    def from_dict(cls, mapping: Mapping[Any, Sequence[Any]], name: str | None = None) -> Hierarchy:
        """From ``{value: [level1_label, level2_label, ...]}`` (a single label may be given
        as a plain string)."""
        if not isinstance(mapping, Mapping):
            raise QueryError("from_dict() needs a dict {value: [level1, level2, ...]}")
        lines = []
        for value, labels in mapping.items():
            if isinstance(labels, str) or not isinstance(labels, Iterable):
                labels = [labels]
            lines.append((f"value {_q(leaf_key(value) if not _is_missing(value) else value)}", [value, *labels]))
        return cls._from_lines(lines, name)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], sep: str = ";", name: str | None = None) -> Hierarchy:
        """Read the ARX / benchmark format: no header, one line per original value,
        ``value;level1;...;*``. Fields are stripped strings; blank lines are skipped.

        ``name`` defaults to the file's stem, with an ARX-style ``<dataset>_hierarchy_``
        prefix removed (``adult_hierarchy_age.csv`` → ``"age"``).
        """
        p = os.fspath(path)
        base = os.path.basename(p)
        if name is None:
            stem = os.path.splitext(base)[0]
            name = stem.split("_hierarchy_", 1)[1] if "_hierarchy_" in stem else stem
        try:
            with open(p, newline="", encoding="utf-8-sig") as f:
                lines = [
                    (f"line {i}", [c.strip() for c in row])
                    for i, row in enumerate(csv.reader(f, delimiter=sep), start=1)
                    if any(c.strip() for c in row)
                ]
        except FileNotFoundError:
            raise QueryError(f"hierarchy file {_q(base)} does not exist; check the path") from None
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise QueryError(
                f"hierarchy file {_q(base)} cannot be read ({type(e).__name__}); give a UTF-8 text file"
            ) from None
        try:
            return cls._from_lines(lines, name)
        except QueryError as e:
            raise QueryError(f"{e} (in {base})") from None

    @classmethod
    def _from_lines(cls, lines: list[tuple[str, list[Any]]], name: str | None) -> Hierarchy:
        if not lines:
            raise QueryError("the hierarchy is empty; give one line per original value")
        first_where, first = lines[0]
        depth = len(first)
        for where, row in lines:
            if len(row) != depth:
                raise QueryError(
                    f"levels of unequal depth: {where} has {len(row)} levels, {first_where} has {depth} "
                    "(counting the original value as level 0); give every value the same number of levels"
                )
        if depth < 2:
            raise QueryError(
                "the hierarchy has no levels above the original values; give each value at least "
                "one generalisation (e.g. '*')"
            )
        values = []
        for where, row in lines:
            v = row[0]
            if _is_missing(v) or (isinstance(v, str) and v.strip() == ""):
                raise QueryError(
                    f"{where} has an empty or missing original value; use a marker such as '?' for missing data"
                )
            values.append(v)
        levels = [[_label(row[h], f"{where}, level {h},") for where, row in lines] for h in range(1, depth)]
        return cls(values, levels, name=name, _origin=[w for w, _ in lines])

    # -- builders --------------------------------------------------------------------

    @classmethod
    def intervals(
        cls,
        values: Iterable[Any],
        widths: Sequence[float],
        *,
        start: float | None = None,
        top: str | None = "*",
        name: str | None = None,
    ) -> Hierarchy:
        """Numeric intervals of growing width.

        Level *i* puts each value in ``[lo, lo + widths[i-1])`` with ``lo`` on the grid
        ``start + j * width``; a final level ``top`` (unless None). Widths must grow and
        each be a multiple of the previous one, so levels nest. ``start`` defaults to the
        minimum rounded down to a multiple of the *largest* width, so every level's
        intervals fall on round multiples of its width (``0-4``, ``0-9``, ``0-19``, as in
        the benchmark files); it is then also a multiple of the first width.

        Integer data (all values ints, integral widths and start) gets inclusive labels
        ``"20-29"`` (``"20"`` for width 1; ``"[-10, 0)"`` style when ``start`` is
        negative, where a hyphen would be ambiguous); other data gets ``"[20.0, 30.0)"``.
        ``values`` are the distinct values the hierarchy knows (e.g. a column's
        ``unique()``, or ``range(0, 120)``); leaves are sorted ascending.

        Edges are computed exactly in decimal: widths and ``start`` are read to 12
        significant digits, values by their shortest decimal form, so a value on an edge
        belongs to the interval it starts (``0.3`` is in ``[0.3, 0.4)`` even though
        ``0.3 / 0.1 < 3`` in floating point). Widths too fine to write an interval's ends
        as floats at the values' magnitude raise an error.
        """
        vals, keys = _distinct_numbers(values, "intervals()")
        ws = []
        for width in widths:
            _number(width, "intervals() width")
            if not width > 0 or not math.isfinite(width):
                raise QueryError(f"interval widths must be positive numbers, not {width!r}")
            ws.append(_exact(width, digits=12))
        # exact (decimal) widths, read to 12 significant digits (0.1 * 3 is 0.3); a later
        # width is snapped to an exact multiple of the previous one
        ratios = []
        for i in range(1, len(ws)):
            a, b = ws[i - 1], ws[i]
            if not b > a:
                raise QueryError(
                    f"interval widths must increase: {_fmt_num(widths[i])} after {_fmt_num(widths[i - 1])}; "
                    "give growing widths (e.g. 5, 10, 20)"
                )
            r = b / a
            k = round(r)
            if abs(r - k) > Fraction(1, 10**9) * r:
                raise QueryError(
                    f"interval widths must nest: {_fmt_num(widths[i])} is not a multiple of "
                    f"{_fmt_num(widths[i - 1])}; make each width a multiple of the previous one "
                    f"(e.g. {_fmt_num(widths[i - 1])}, {_fmt_num(float(a * 2))})"
                )
            ratios.append(int(k))
            ws[i] = a * int(k)
        lo_v = vals[0]  # sorted
        if start is None:
            st = (_exact(lo_v) // ws[-1]) * ws[-1] if ws else _exact(lo_v)
        else:
            _number(start, "intervals() start")
            if not math.isfinite(start):
                raise QueryError(f"intervals() start must be a finite number, not {start!r}")
            st = _exact(start, digits=12)
            if st > _exact(lo_v):
                raise QueryError(
                    f"intervals() start {_fmt_num(start)} is above the smallest value {_fmt_num(lo_v)}; "
                    "lower start or leave it out"
                )
        is_int = (
            all(isinstance(v, int) for v in vals)
            and all(w.denominator == 1 for w in ws)
            and st.denominator == 1
        )
        levels: list[list[str]] = []
        if ws:
            w1 = ws[0]
            if is_int:
                s0, iw = int(st), int(w1)
                if max(abs(vals[0]), abs(vals[-1]), abs(s0)) < 2**62:  # vals are sorted
                    fine = (np.asarray(vals, dtype=np.int64) - s0) // iw
                else:
                    fine = np.asarray([(v - s0) // iw for v in vals], dtype=object)
            else:
                fine = _float_bins(vals, st, w1)
            mult = 1
            for h, w in enumerate(ws):
                if h > 0:
                    mult *= ratios[h - 1]
                j = fine // mult
                uniq, inv = np.unique(j, return_inverse=True)
                names = []
                if is_int:
                    s0, iw = int(st), int(w)
                    for jj in uniq.tolist():
                        lo_i = s0 + int(jj) * iw
                        if s0 < 0:
                            names.append(f"[{lo_i}, {lo_i + iw})")
                        elif iw == 1:
                            names.append(str(lo_i))
                        else:
                            names.append(f"{lo_i}-{lo_i + iw - 1}")
                else:
                    for jj in uniq.tolist():
                        lo = st + int(jj) * w
                        if _exact(float(lo)) != lo or _exact(float(lo + w)) != lo + w:
                            raise QueryError(
                                f"interval width {_fmt_num(float(w))} is too fine for values near "
                                f"{_fmt_float(lo)}: the interval's ends cannot be written exactly as "
                                "floating-point numbers; use wider intervals"
                            )
                        names.append(f"[{_fmt_float(lo)}, {_fmt_float(lo + w)})")
                levels.append(np.asarray(names, dtype=object)[np.asarray(inv).reshape(-1)].tolist())
        if top is not None:
            levels.append([_label(top, "top")] * len(vals))
        return cls._built(vals, levels, name, keys)

    @classmethod
    def masking(
        cls,
        values: Iterable[Any],
        *,
        char: str = "*",
        levels: int | None = None,
        name: str | None = None,
    ) -> Hierarchy:
        """Mask trailing characters of equal-length codes (postcodes, ID numbers).

        Level *i* replaces the last *i* characters by ``char``: ``"12345"`` →
        ``"1234*"`` → ``"123**"`` → ... ``levels`` defaults to the length, whose last
        level is all masked. Values are matched by :func:`leaf_key` (so give postcodes
        as strings to keep leading zeros); leaves are sorted.
        """
        if not isinstance(char, str) or len(char) != 1:
            raise QueryError(f"masking char must be one character, not {char!r}")
        vals, keys = _distinct(values, "masking()")
        lengths = pd.Series(keys, dtype=object).str.len().to_numpy()
        length = int(lengths[0])
        if (lengths != length).any():
            k = keys[int(np.nonzero(lengths != length)[0][0])]
            raise QueryError(
                f"masking needs values of equal length: {_q(keys[0])} has {length} characters, "
                f"{_q(k)} has {len(k)}; pad them to one length (e.g. leading zeros) first"
            )
        if length == 0:
            raise QueryError("masking needs non-empty values; use a marker such as '?' for missing data")
        if levels is None:
            levels = length
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 1 <= levels <= length:
            raise QueryError(f"masking levels must be an integer in 1..{length} (the value length), not {levels!r}")
        fixed = np.asarray(keys, dtype=f"<U{length}")
        order = np.argsort(fixed, kind="stable")
        vals = [vals[i] for i in order]
        keys = [keys[i] for i in order]
        chars = fixed[order].view(np.uint32).reshape(len(keys), length)  # one code point per cell
        labs = []
        for i in range(1, int(levels) + 1):
            masked = chars.copy()
            masked[:, length - i :] = ord(char)
            labs.append(masked.view(f"<U{length}").reshape(-1).astype(object).tolist())
        return cls._built(vals, labs, name, keys)

    @classmethod
    def dates(
        cls,
        values: Iterable[Any],
        *,
        levels: Sequence[str] = ("month", "year", "decade"),
        top: str | None = "*",
        name: str | None = None,
    ) -> Hierarchy:
        """Dates: day → ``"2024-03"`` (month) → ``"2024"`` (year) → ``"2020s"`` (decade)
        → ``"*"``.

        ``values`` are ``datetime.date``/``datetime``/``pandas.Timestamp``/
        ``numpy.datetime64`` values or ISO 8601 strings (``"2024-03-05"``). ``levels``
        is any increasing selection of ``"day"`` (for datetimes with a time),
        ``"month"``, ``"quarter"`` (``"2024-Q1"``), ``"year"``, ``"decade"``; then
        ``top`` unless None. Leaves are sorted by date and keep the type given: string
        leaves match equal strings in the data, date leaves match dates, Timestamps and
        their ``"YYYY-MM-DD"`` string form (see :func:`leaf_key`).
        """
        if isinstance(levels, str):
            levels = [levels]
        levels = list(levels)
        ranks = []
        for lv in levels:
            if lv not in _DATE_LEVELS:
                raise QueryError(f"unknown date level {lv!r}; use some of {', '.join(_DATE_LEVELS)}")
            ranks.append(_DATE_LEVELS.index(lv))
        for a, b in itertools.pairwise(ranks):
            if b <= a:
                raise QueryError(
                    f"date levels must get coarser: {_DATE_LEVELS[b]!r} after {_DATE_LEVELS[a]!r}; "
                    f"list them in the order {', '.join(_DATE_LEVELS)}"
                )
        vals, keys = _distinct(values, "dates()")
        parsed = [_as_datetime(v) for v in vals]
        order = sorted(
            range(len(vals)),
            key=lambda i: (
                parsed[i].year,
                parsed[i].month,
                parsed[i].day,
                parsed[i].hour,
                parsed[i].minute,
                parsed[i].second,
                parsed[i].microsecond,
            ),
        )
        vals = [vals[i] for i in order]
        keys = [keys[i] for i in order]
        parsed = [parsed[i] for i in order]
        labs: list[list[str]] = []
        for lv in levels:
            if lv == "day":
                labs.append([f"{d.year:04d}-{d.month:02d}-{d.day:02d}" for d in parsed])
            elif lv == "month":
                labs.append([f"{d.year:04d}-{d.month:02d}" for d in parsed])
            elif lv == "quarter":
                labs.append([f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}" for d in parsed])
            elif lv == "year":
                labs.append([f"{d.year:04d}" for d in parsed])
            else:
                labs.append([f"{d.year // 10 * 10}s" for d in parsed])
        if top is not None:
            labs.append([_label(top, "top")] * len(vals))
        return cls._built(vals, labs, name, keys)

    @classmethod
    def ordered(
        cls,
        values_in_order: Iterable[Any],
        group_sizes: Sequence[int],
        *,
        top: str | None = "*",
        name: str | None = None,
    ) -> Hierarchy:
        """Ordered categories (education levels, income bands): level *i* groups
        consecutive runs of ``group_sizes[i-1]`` values, labelled ``"first..last"`` (a
        single value keeps its own label; the last run may be shorter); then ``top``
        unless None. Sizes must grow and each be a multiple of the previous one, so
        levels nest. Leaves keep the order given."""
        vals = list(values_in_order)
        if not vals:
            raise QueryError("ordered() got no values; give the categories in order")
        seen: dict[str, int] = {}
        for v in vals:
            if _is_missing(v):
                raise QueryError(
                    "ordered() got a missing value (None/NaN); drop it or use a marker such as '?'"
                )
            k = leaf_key(v)
            if k in seen:
                raise QueryError(f"ordered() got {_q(k)} twice; list each category once")
            seen[k] = 1
        sizes = []
        for g in group_sizes:
            if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
                raise QueryError(f"group sizes must be positive integers, not {g!r}")
            sizes.append(int(g))
        for a, b in itertools.pairwise(sizes):
            if b <= a:
                raise QueryError(f"group sizes must increase: {b} after {a}; give growing sizes (e.g. 2, 4, 8)")
            if b % a:
                raise QueryError(
                    f"group sizes must nest: {b} is not a multiple of {a}; make each size a multiple "
                    f"of the previous one (e.g. {a}, {2 * a})"
                )
        keys = [leaf_key(v) for v in vals]
        labs: list[list[str]] = []
        for g in sizes:
            level = []
            for i in range(len(vals)):
                a = i // g * g
                b = min(a + g, len(vals)) - 1
                level.append(keys[a] if a == b else f"{keys[a]}..{keys[b]}")
            labs.append(level)
        if top is not None:
            labs.append([_label(top, "top")] * len(vals))
        return cls._built(vals, labs, name)

    @classmethod
    def _built(
        cls, vals: list[Any], levels: list[list[str]], name: str | None, keys: Sequence[str] | None = None
    ) -> Hierarchy:
        if not levels:
            raise QueryError(
                "the hierarchy has no levels above the original values; give at least one level or a top (e.g. '*')"
            )
        return cls(vals, levels, name=name, _keys=keys)

    # -- validation ------------------------------------------------------------------

    def validate(self) -> None:
        """Check the hierarchy; build the integer form. Called by every constructor.

        No duplicate leaf; height >= 1; monotone: leaves that share a label at level
        ``h`` share their labels at every level above ``h``.
        """
        n = len(self._keys)
        if n == 0:
            raise QueryError("the hierarchy is empty; give one line per original value")
        if not self._levels:
            raise QueryError(
                "the hierarchy has no levels above the original values; give each value at least "
                "one generalisation (e.g. '*')"
            )
        self._index = pd.Index(self._keys, dtype=object)
        if not self._index.is_unique:
            index: dict[str, int] = {}
            for i, k in enumerate(self._keys):
                j = index.setdefault(k, i)
                if j != i:
                    raise QueryError(
                        f"duplicate value {_q(k)} in the hierarchy{self._of()} ({self._where(j)} and "
                        f"{self._where(i)}); list each original value once"
                    )
        # leaves written as a number's canonical key ("39", "20.5"): numeric data is
        # matched against these by value (fast), everything else by string form
        keys = pd.Series(self._keys, dtype=object)
        is_num = keys.str.fullmatch(_NUMBER_RE.pattern).to_numpy(dtype=bool)
        num_pos = np.nonzero(is_num)[0]
        with np.errstate(over="ignore"):
            nums = keys.to_numpy(dtype=object)[num_pos].astype(np.float64)
        finite = np.isfinite(nums)
        canonical = np.zeros(len(num_pos), dtype=bool)
        if finite.any():
            canonical[finite] = np.asarray(_keys_of(nums[finite]), dtype=object) == keys.to_numpy(dtype=object)[
                num_pos[finite]
            ]
        self._num_pos = num_pos[canonical].astype(np.intp)
        self._num_index = pd.Index(nums[canonical], dtype=np.float64)
        H = len(self._levels)
        gen = np.empty((n, H + 1), dtype=np.int32)
        gen[:, 0] = np.arange(n, dtype=np.int32)
        labels: list[list[str]] = [list(self._keys)]
        for h, level in enumerate(self._levels, start=1):
            codes, uniques = pd.factorize(np.asarray(level, dtype=object))
            gen[:, h] = codes
            labels.append([str(u) for u in uniques])
        for h in range(1, H):
            a, b = gen[:, h], gen[:, h + 1]
            _, first = np.unique(a, return_index=True)  # first leaf of each level-h label
            bad = np.nonzero(b[first[a]] != b)[0]
            if len(bad):
                i = int(bad[0])
                j = int(first[a[i]])
                raise QueryError(
                    f"non-monotone hierarchy: {_q(self._keys[j])} and {_q(self._keys[i])} share level {h} "
                    f"label {_q(labels[h][a[i]])} but differ at level {h + 1}{self._of(' (hierarchy ', ')')}; "
                    f"give every value under {_q(labels[h][a[i]])} the same level-{h + 1} label"
                )
        gen.setflags(write=False)
        self._gen = gen
        self._labels = labels
        self._label_arrays = [np.asarray(lab, dtype=object) for lab in labels]
        shares = []
        for h in range(H + 1):
            s = np.bincount(gen[:, h], minlength=len(labels[h])).astype(np.float64) / n
            s.setflags(write=False)
            shares.append(s)
        self._leaf_share = shares
        order = None
        if is_num.all() and finite.all():
            order = nums
            order.setflags(write=False)
        self._order = order

    def _of(self, pre: str = " of ", post: str = "") -> str:
        return f"{pre}{_q(self.name)}{post}" if self.name is not None else ""

    # -- properties ------------------------------------------------------------------

    @property
    def values(self) -> list[Any]:
        """The leaves (level 0) as given, in the hierarchy's order."""
        return list(self._values)

    @property
    def height(self) -> int:
        """Number of levels above the leaves (levels are ``0..height``)."""
        return len(self._levels)

    @property
    def n_leaves(self) -> int:
        return len(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def labels(self, level: int) -> list[str]:
        """Distinct labels of ``level`` in first-appearance order of the leaves (level 0:
        the leaves' string keys)."""
        return list(self._labels[self._check_level(level)])

    def _check_level(self, level: Any) -> int:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= self.height:
            raise QueryError(
                f"level {level!r} is out of range for the hierarchy{self._of()}; use 0..{self.height}"
            )
        return int(level)

    def __repr__(self) -> str:
        return f"Hierarchy(name={self.name!r}, leaves={self.n_leaves}, height={self.height})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hierarchy):
            return NotImplemented
        return self._keys == other._keys and self._levels == other._levels

    __hash__ = None  # type: ignore[assignment]

    # -- data ------------------------------------------------------------------------

    def encode(self, data_values: Any) -> EncodedHierarchy:
        """Encode a column (Series, array, Categorical, list) as leaf codes.

        Vectorised: one ``pandas.factorize`` over the rows, then matching of the distinct
        values only (see :func:`leaf_key`). A value with no leaf or a missing value
        raises :class:`~pets.errors.QueryError`.
        """
        if isinstance(data_values, pd.DataFrame):
            raise QueryError("encode() takes one column (a Series or array), not a DataFrame")
        if isinstance(data_values, (str, bytes)):
            raise QueryError("encode() takes a column of values, not a single string")
        if not isinstance(
            data_values, (pd.Series, pd.Index, pd.Categorical, np.ndarray, pd.api.extensions.ExtensionArray)
        ):
            data_values = pd.Series(list(data_values))
        if isinstance(data_values, np.ndarray) and data_values.ndim != 1:
            raise QueryError(f"encode() takes one column (1-D), not an array of shape {data_values.shape}")
        dtype = getattr(data_values, "dtype", None)
        if dtype is not None and (dtype == object or pd.api.types.is_string_dtype(dtype)) and not isinstance(
            dtype, pd.CategoricalDtype
        ):
            # fast path for clean string columns: factorize the rows (pandas' string
            # hashing, no Python object per row), then look the distinct values up among
            # the leaves — 10x faster on 1M rows than hashing every row as an object
            try:
                codes, uniques = pd.factorize(data_values, use_na_sentinel=True)
                # (get_indexer, not Categorical(values, categories=...): the latter is
                # deprecated in pandas 3 for values outside the categories)
                fast = self._index.get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
            except (TypeError, ValueError, pd.errors.InvalidIndexError):
                fast = None
            if fast is not None and (len(codes) == 0 or (codes.min() >= 0 and fast.min() >= 0)):
                return self._encoded(fast.astype(np.int32)[np.asarray(codes)])
        try:
            codes, uniques = pd.factorize(data_values, use_na_sentinel=True)
        except TypeError:
            raise QueryError(
                "encode() needs a column of plain values (strings, numbers, dates); this one holds "
                "unhashable values such as lists"
            ) from None
        codes = np.asarray(codes)
        n_missing = int(np.count_nonzero(codes < 0)) if len(codes) else 0
        col = f"column {_q(self.name)}" if self.name is not None else "the column"
        if n_missing:
            raise QueryError(
                f"{col} has {n_missing} missing value{'s' if n_missing != 1 else ''} (None/NaN); "
                "replace them with a marker (e.g. '?') that has a leaf in the hierarchy, or drop those rows"
            )
        idx = self._leaf_index_of(uniques)
        leaf_codes = idx.astype(np.int32)[codes] if len(codes) else np.empty(0, dtype=np.int32)
        return self._encoded(leaf_codes)

    def _encoded(self, leaf_codes: np.ndarray) -> EncodedHierarchy:
        return EncodedHierarchy(
            name=self.name,
            codes=np.ascontiguousarray(leaf_codes, dtype=np.int32),
            gen=self._gen,
            labels=[list(lab) for lab in self._labels],
            leaf_share=list(self._leaf_share),
            order=self._order,
        )

    def _leaf_index_of(self, uniques: Any) -> np.ndarray:
        """Leaf index of each distinct data value (all non-missing); unknown → error."""
        n = len(uniques)
        idx = np.full(n, -1, dtype=np.intp)
        if n == 0:
            return idx
        dtype = uniques.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            uniques = np.asarray(uniques)
            dtype = uniques.dtype
        rest = np.arange(n)
        numeric = (
            pd.api.types.is_numeric_dtype(dtype)
            and not pd.api.types.is_bool_dtype(dtype)
            and not pd.api.types.is_complex_dtype(dtype)
        )
        if numeric and len(self._num_pos):
            # fast path: numbers against the leaves whose key is a number's canonical form
            arr = np.asarray(uniques, dtype=np.float64)
            exact = pd.api.types.is_float_dtype(dtype) or bool(np.abs(arr).max() < 2.0**53)
            if exact:
                pos = self._num_index.get_indexer(arr)
                hit = pos >= 0
                idx[hit] = self._num_pos[pos[hit]]
                rest = np.nonzero(~hit)[0]
        if len(rest):
            sub = uniques if len(rest) == n else np.asarray(uniques)[rest]
            keys = _keys_of(sub, strip=False)
            idx[rest] = self._index.get_indexer(pd.Index(keys, dtype=object))
            miss = np.nonzero(idx[rest] < 0)[0]
            if len(miss):
                # strings with surrounding whitespace: retry those stripped
                stripped = [str(keys[i]).strip() for i in miss]
                idx[rest[miss]] = self._index.get_indexer(pd.Index(stripped, dtype=object))
                still = np.nonzero(idx[rest[miss]] < 0)[0]
                if len(still):
                    first = stripped[int(still[0])]
                    more = len(still) - 1
                    extra = f" ({more} other value{'s' if more != 1 else ''} missing too)" if more else ""
                    where = f"of column {_q(self.name)} " if self.name is not None else ""
                    raise QueryError(f"value {_q(first)} {where}is not in its hierarchy; add it{extra}")
        return idx

    def generalize(self, values: Any, level: int) -> np.ndarray:
        """The level-``level`` label of each value, as an object array of strings (level
        0 gives the leaves' string keys). Unknown or missing values raise."""
        level = self._check_level(level)
        enc = self.encode(values)
        return self._label_arrays[level][self._gen[enc.codes, level]]

    # -- output ----------------------------------------------------------------------

    def to_frame(self) -> pd.DataFrame:
        """One row per leaf: column ``0`` the leaf as given, column ``h`` its level-``h``
        label (``Hierarchy.from_rows(h.to_frame())`` gives the hierarchy back)."""
        data: dict[int, list[Any]] = {0: list(self._values)}
        for h, level in enumerate(self._levels, start=1):
            data[h] = list(level)
        return pd.DataFrame(data)

    def to_csv(self, path: str | os.PathLike[str], sep: str = ";") -> None:
        """Write the ARX / benchmark format (no header, leaves as their string keys)."""
        with open(os.fspath(path), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=sep, lineterminator="\n")
            for i, k in enumerate(self._keys):
                w.writerow([k, *(level[i] for level in self._levels)])


# ---------------------------------------------------------------------------------------
# helpers for the builders


def _distinct(values: Iterable[Any], what: str) -> tuple[list[Any], list[str]]:
    """The distinct values (first occurrence, by :func:`leaf_key`) and their keys;
    vectorised for arrays and Series."""
    if isinstance(values, (str, bytes)):
        raise QueryError(f"{what} needs a list of values, not a single string")
    if isinstance(values, pd.DataFrame):
        raise QueryError(f"{what} needs one column of values, not a DataFrame")
    if isinstance(values, (pd.Series, pd.Index, pd.Categorical, np.ndarray, pd.api.extensions.ExtensionArray)):
        arr: Any = values
        if isinstance(arr, np.ndarray) and arr.ndim != 1:
            raise QueryError(f"{what} needs a 1-D list of values, not an array of shape {arr.shape}")
    else:
        items = list(values)
        arr = np.empty(len(items), dtype=object)  # keep the objects as given (ints stay ints)
        arr[:] = items
    try:
        codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    except TypeError:
        raise QueryError(f"{what} needs plain values (strings, numbers, dates), not lists or dicts") from None
    if len(codes) and np.asarray(codes).min() < 0:
        raise QueryError(f"{what} got a missing value (None/NaN); drop missing values first (e.g. column.dropna())")
    if len(uniques) == 0:
        raise QueryError(f"{what} got no values; give the column's distinct values")
    keys = np.asarray(_keys_of(uniques), dtype=object)
    vals = pd.Index(uniques).tolist() if not isinstance(uniques, np.ndarray) or uniques.dtype != object else list(uniques)
    dup = pd.Index(keys).duplicated()
    if dup.any():
        keep = ~dup
        vals = [v for v, k in zip(vals, keep) if k]
        keys = keys[keep]
    return vals, keys.tolist()


def _number(x: Any, what: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise QueryError(f"{what} must be a number, not {_q(x)}")
    return x  # type: ignore[return-value]


def _distinct_numbers(values: Iterable[Any], what: str) -> tuple[list[Any], list[str]]:
    """Distinct finite numbers as Python ints/floats, sorted ascending, and their keys."""
    vals, keys = _distinct(values, what)
    arr = np.asarray(vals) if vals and not isinstance(vals[0], str) else np.asarray(vals, dtype=object)
    if arr.dtype.kind in "iu" and not any(type(v) is bool for v in vals):  # all ints, in int64
        clean: list[Any] = arr.tolist()
        order = np.argsort(arr, kind="stable")
    elif arr.dtype.kind == "f" and all(isinstance(v, (float, np.floating)) for v in vals):
        if not np.isfinite(arr).all():
            raise QueryError(f"{what} got {_q(vals[int(np.nonzero(~np.isfinite(arr))[0][0])])}; give finite numbers")
        clean = arr.tolist()
        order = np.argsort(arr, kind="stable")
    else:
        for v in vals:
            _number(v, f"each value of {what}")
        clean = [int(v) if isinstance(v, (int, np.integer)) else float(v) for v in vals]
        for v in clean:
            if isinstance(v, float) and not math.isfinite(v):
                raise QueryError(f"{what} got {_q(v)}; give finite numbers")
        order = np.asarray(sorted(range(len(clean)), key=lambda i: _exact(clean[i])), dtype=np.intp)
    return [clean[i] for i in order], [keys[i] for i in order]


def _exact(x: Any, digits: int | None = None) -> Fraction:
    """A number as the exact fraction of its shortest decimal form (0.3 → 3/10), so
    interval edges and membership read as the labels are written; ``digits`` rounds
    floats to that many significant digits first (for widths and starts)."""
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if digits is not None:
        return Fraction(f"{float(x):.{digits}g}")
    return Fraction(repr(float(x)))


def _float_bins(vals: list[Any], start: Fraction, w: Fraction) -> np.ndarray:
    """``floor((v - start) / w)`` for each value, exactly in decimal terms: floats first,
    then exact fractions for values near an edge (or too large for float precision)."""
    v = np.asarray([float(x) for x in vals], dtype=np.float64)
    q = (v - float(start)) / float(w)
    if not np.isfinite(q).all() or np.abs(q).max() > 2.0**60:
        return np.asarray([(_exact(x) - start) // w for x in vals], dtype=object)
    fine = np.floor(q)
    frac = q - fine
    out = fine.astype(np.int64)
    # float rounding can only matter close to an edge: within the rounding error of
    # v - start (a few ulps of the larger of the two), relative to the width
    tol = 1e-6 + (np.abs(v) + abs(float(start))) * 2.0**-48 / float(w) + np.abs(q) * 2.0**-48
    unsure = (frac < tol) | (frac > 1 - tol) | (np.abs(q) > 2.0**30)
    for i in np.nonzero(unsure)[0]:
        out[i] = (_exact(vals[i]) - start) // w
    return out


def _fmt_float(x: Fraction | float) -> str:
    return repr(float(x))


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _as_datetime(v: Any) -> _dt.datetime:
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    if isinstance(v, _dt.datetime):
        return v
    if isinstance(v, _dt.date):
        return _dt.datetime(v.year, v.month, v.day)
    if isinstance(v, str):
        s = v.strip()
        try:
            return _dt.datetime.fromisoformat(s)
        except ValueError:
            raise QueryError(
                f"date {_q(s)} cannot be read; write dates in ISO 8601 (YYYY-MM-DD) or give date values"
            ) from None
    raise QueryError(f"dates() needs dates, datetimes or ISO 8601 strings, not {type(v).__name__} {_q(v)}")
