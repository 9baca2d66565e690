"""DuckDB, the embedded default engine.

Reads CSV and Parquet in place (no copy of the table into Python objects), applies the
filters, drops rows outside the public keys, bounds each person's contribution when
asked (with per-person ordinals stored in a materialised copy where they fit the
request, otherwise with window functions), clamps and fixed-point encodes values, and
returns one row of exact integer aggregates per group present in the data.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
import threading
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from .. import plan as P
from ..errors import DataError, InternalError, QueryError
from ..progress import current_sink
from .base import COUNT_COLUMN, AggregateRequest, Bounding, Measure, Ordinals, Source
from .base import _key_set  # noqa: F401 - the key comparison the engines share
from .base import fitting_ordinals as _fitting_ordinals
from .hot import DEFAULT_BUDGET_BYTES, HotTables

__all__ = ["DuckDBEngine", "quote_ident", "ENCODED_PREFIX", "BOUND_PREFIX", "HIDDEN_PREFIX"]

#: Name prefix of pre-encoded fixed-point columns in a materialised copy (hidden).
ENCODED_PREFIX = "__pets_fx__"
#: Name prefix of the per-person ordinals in a materialised copy (hidden).
BOUND_PREFIX = "__pets_bd__"
#: Every hidden column starts with this; source columns may not.
HIDDEN_PREFIX = "__pets_"
# Per-release offsets are pr · a + c with the person's number pr and a, c < 2^15: the
# sums stay below 2^31 while a person-group has fewer than _MAX_ORDINAL rows. INTEGER
# arithmetic on stored numbers: at 1M rows here about 9 ms a query against 15 ms with a
# keyed hash of the person per row (and UBIGINT arithmetic was slower still).
_OFFSET_BITS = 15
_MAX_ORDINAL = 2**30
#: How many choices of kept rows the stored mask holds (bits of an INTEGER column); a
#: release picks one with its seed. A bit test instead of two integer divisions per row:
#: see docs/scale.md.
MASK_CHOICES = 16
#: The source's row number in a copy written with ordinals: the copy is clustered by the
#: bounded group column (a bounded group-by then reads each group's rows together), and
#: record-level reads put the rows back in the source's order by it.
POSITION = BOUND_PREFIX + "pos"

_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?", re.IGNORECASE)
#: How often a query's progress is read while a progress sink is active (seconds).
_PROGRESS_POLL_S = 0.1

_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
              "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _logical(duck_type: str) -> str:
    t = duck_type.upper()
    if t in _INT_TYPES:
        return "int"
    if t in _FLOAT_TYPES or t.startswith("DECIMAL"):
        return "float"
    if t == "VARCHAR":
        return "str"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith("DATE") or t.startswith("TIMESTAMP") or t == "TIME":
        return "date"
    return "other"


class DuckDBEngine:
    """Runs plans on DuckDB. One in-memory database per engine; thread-safe (a cursor
    per call).

    ``memory_limit`` (DuckDB's syntax, e.g. ``"2GB"``; default DuckDB's, 80% of RAM)
    caps the memory DuckDB uses; beyond it, sorts, joins and aggregates spill to
    ``temp_directory`` (a :class:`pets.Holder` sets it inside its home, so spilled
    data never leaves the holder's domain; without one, DuckDB's default is ``.tmp`` in
    the current directory). ``max_temp_directory_size`` caps the spill (default
    DuckDB's, 90% of the free disk). See docs/scale.md.

    >>> DuckDBEngine(memory_limit="512MB", temp_directory="/tmp/pets-spill").memory_limit
    '512MB'
    """

    def __init__(self, threads: int | None = None, *, memory_limit: str | None = None,
                 temp_directory: str | os.PathLike[str] | None = None,
                 max_temp_directory_size: str | None = None,
                 hot_tables: str | None = None) -> None:
        for name, v in (("memory_limit", memory_limit), ("max_temp_directory_size", max_temp_directory_size),
                        ("hot_tables", hot_tables)):
            if v is not None and (not isinstance(v, str) or not _SIZE.fullmatch(v.strip())):
                raise QueryError(f"{name} must be a size such as '512MB' or '4GB', not {v!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise QueryError(f"threads must be a positive integer, not {threads!r}")
        self.memory_limit = memory_limit
        self.temp_directory = str(temp_directory) if temp_directory is not None else None
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = int(threads)
        if memory_limit is not None:
            config["memory_limit"] = memory_limit.strip()
        if max_temp_directory_size is not None:
            config["max_temp_directory_size"] = max_temp_directory_size.strip()
        if self.temp_directory is not None:
            config["temp_directory"] = self.temp_directory
        try:
            self._con = duckdb.connect(":memory:", config=config)
        except duckdb.Error as e:  # a size DuckDB does not take, a folder it cannot use
            raise QueryError(f"DuckDB refused the engine's settings ({e})") from None
        # never DuckDB's own bar on stdout: pets shows progress itself (pets.progress)
        self._con.execute("SET enable_progress_bar_print = false")
        self._lock = threading.Lock()
        self._raw_types: dict[Source, list[tuple[str, str]]] = {}
        # small sources stay in memory between releases (pets.engines.hot)
        self._hot = HotTables(self._con, DEFAULT_BUDGET_BYTES if hot_tables is None
                              else _size_bytes(hot_tables))
        self._sidecar_columns: dict[Source, frozenset[str]] = {}

    def _out_of_memory(self, what: str) -> DataError:
        """The error for a query that ran out of memory even with spilling: what to change."""
        return DataError(
            f"the engine ran out of memory {what} (memory_limit {self.memory_limit or 'DuckDB default'}, "
            f"spilling to {self.temp_directory or 'DuckDB default'}); raise memory_limit or "
            "max_temp_directory_size in the home's engine.toml (docs/scale.md)"
        )

    def _cursor(self) -> Any:
        """A cursor of the engine's database; with progress reporting on when a
        :func:`pets.progress.reporting` block is active in this thread."""
        cur = self._con.cursor()
        if current_sink() is not None:
            cur.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false; "
                        "SET progress_bar_time = 0")
        return cur

    def _execute(self, cur: Any, sql: str, params: list[Any] | None = None, fetch: str = "none") -> Any:
        """Run ``sql`` on ``cur`` and fetch (``"numpy"``, ``"df"``, ``"all"``, ``"one"``),
        reporting DuckDB's own estimate of the query's progress (a fraction, nothing
        else) to the active progress sink, polled from a thread."""
        def run() -> Any:
            r = cur.execute(sql, params or [])
            if fetch == "numpy":
                return r.fetchnumpy()
            if fetch == "df":
                return r.df()
            if fetch == "all":
                return r.fetchall()
            if fetch == "one":
                return r.fetchone()
            return None

        sink = current_sink()
        if sink is None:
            try:
                return run()
            finally:
                self._hot.release_held()
        done = threading.Event()

        def poll() -> None:
            last = -1.0
            while not done.wait(_PROGRESS_POLL_S):
                try:
                    pct = float(cur.query_progress())
                except (duckdb.Error, RuntimeError):
                    return
                if pct >= 0 and pct > last:
                    last = pct
                    try:
                        sink(min(pct, 100.0) / 100.0)
                    except Exception:  # a failing display must not fail the query
                        return

        t = threading.Thread(target=poll, name="pets-progress", daemon=True)
        t.start()
        try:
            return run()
        finally:
            done.set()
            t.join()
            self._hot.release_held()

    # -- sources ---------------------------------------------------------------------
    def _scan(self, source: Source) -> str:
        path = _quote_str(source.path)
        if source.kind == "csv":
            nulls = []
            for m in source.missing:
                nulls += [m, " " + m] if source.trim else [m]
            nullstr = ", ".join(_quote_str(m) for m in nulls)
            opt = f", nullstr=[{nullstr}]" if nulls else ""
            return f"read_csv({path}, header=true{opt})"
        if source.kind == "parquet":
            return f"read_parquet({path})"
        raise DataError(f"unknown source kind {source.kind!r}; use a CSV or Parquet file")

    def _raw(self, source: Source) -> list[tuple[str, str]]:
        with self._lock:
            cached = self._raw_types.get(source)
        if cached is None:
            try:
                rows = self._con.cursor().execute(f"DESCRIBE SELECT * FROM {self._scan(source)}").fetchall()
            except duckdb.Error as e:
                raise DataError(
                    f"cannot read {source.kind} source {source.path!r} ({type(e).__name__}); "
                    "check that the file exists and is a valid table"
                ) from None
            cached = [(r[0], r[1]) for r in rows]
            with self._lock:
                self._raw_types[source] = cached
        return cached

    def _relation(self, source: Source, hot: bool = False) -> str:
        """A sub-query yielding the source with missing markers as NULL and strings trimmed.
        ``hot``: from the source's in-memory table if it is small (:mod:`pets.engines.hot`);
        the caller then runs its query with :meth:`_execute`, which ends the table's use."""
        scan = self._hot.scan(source, self._scan) if hot else self._scan(source)
        return _relation_sql(scan, self._raw(source), source.missing, source.trim)

    def schema(self, source: Source) -> dict[str, str]:
        return {
            name: _logical(typ)
            for name, typ in self._raw(source)
            if not name.startswith((ENCODED_PREFIX, BOUND_PREFIX))
        }

    def column_names(self, source: Source) -> list[str]:
        """Every column name of ``source`` as DuckDB reads it, hidden ones included (the
        holder refuses sources whose names could shadow the engine's hidden columns)."""
        return [name for name, _ in self._raw(source)]

    def schema_of_frame(self, df: pd.DataFrame) -> dict[str, str]:
        """Logical column types of a pandas DataFrame, as DuckDB reads it."""
        cur = self._con.cursor()
        try:
            cur.register("__pets_df", df)
            rows = cur.execute("DESCRIBE SELECT * FROM __pets_df").fetchall()
        finally:
            cur.close()
        return {r[0]: _logical(r[1]) for r in rows}

    def materialize(
        self,
        source: Source | pd.DataFrame,
        dest: str,
        missing: tuple[str, ...],
        encode: tuple[tuple[str, float, float, int], ...],
        ordinals: tuple[Ordinals, ...] = (),
    ) -> Source:
        """See :meth:`pets.engines.base.Engine.materialize`. The per-person ordinals
        (:class:`Ordinals`) are computed with window functions once, here, so that a
        release can bound contributions with a row-wise predicate
        (:func:`_ordinal_predicates`)."""
        cur = self._cursor()
        params: list[Any] = []
        stored: tuple[Ordinals, ...] = ()
        try:
            if isinstance(source, pd.DataFrame):
                cur.register("__pets_df", source)
                scan = "__pets_df"
                raw = [(r[0], r[1]) for r in cur.execute("DESCRIBE SELECT * FROM __pets_df").fetchall()]
                rel = _relation_sql(scan, raw, missing, False)
            else:
                raw = self._raw(source)
                rel = self._relation(source)
            clash = [name for name, _ in raw if name.startswith(HIDDEN_PREFIX)]
            if clash:
                raise DataError(
                    f"column {clash[0]!r} starts with {HIDDEN_PREFIX!r}, which pets reserves for "
                    "the hidden columns of its stored copy; rename it"
                )
            types = {name: _logical(typ) for name, typ in raw}
            exprs = ["*"] + _encoded_exprs(encode, types)
            order = ""
            if ordinals:
                rel, stored = _ordinals_sql(rel, ordinals, exprs, params)
                # rows clustered by the first bounded group column (in the source's order
                # within a group): a bounded group-by reads each group's rows together
                # (measured ≈ 15% faster at 10^7 rows, docs/scale.md). The source's row
                # number is stored: a record-level read (fetch) restores the source's
                # order, or an extract would list rows by a value it may have generalised
                pos = quote_ident(POSITION)
                exprs.append(pos)
                grouped = [(i, o) for i, o in enumerate(stored) if o.column is not None]
                cluster = [quote_ident(o.column) for _, o in grouped[:1]]
                if grouped and types.get(grouped[0][1].column) == "str" and \
                        all(isinstance(k, str) for k in grouped[0][1].keys) and \
                        len(grouped[0][1].keys) < 2**15:
                    # and the group's index among the keys, a small integer: a bounded
                    # group-by groups by it (a perfect hash) and names the keys after
                    i, o = grouped[0]
                    listed = ", ".join(_quote_str(k) for k in o.keys)  # type: ignore[arg-type]
                    index = quote_ident(_key_index(o))
                    exprs.append(f"CASE WHEN {quote_ident(f'{BOUND_PREFIX}in{i}')} THEN "
                                 f"(list_position([{listed}], {quote_ident(o.column)}) - 1)::SMALLINT "
                                 f"END AS {index}")
                    cluster = [index]
                order = f" ORDER BY {', '.join(cluster + [pos])}"
            self._execute(
                cur,
                f"COPY (SELECT {', '.join(exprs)} FROM {rel}{order}) TO {_quote_str(dest)} (FORMAT parquet)",
                params,
            )
            if stored:
                stored = self._usable_ordinals(cur, dest, stored)
        except duckdb.Error as e:
            raise self._store_failed(e, "a copy of the source") from None
        finally:
            cur.close()
        return Source("parquet", dest, (), trim=False, encoded=tuple(encode), ordinals=stored)

    def _store_failed(self, e: Exception, what: str) -> Exception:
        """The error for a failed write of ``what`` into the home (DuckDB's own message is
        never passed on: it can quote data values)."""
        if isinstance(e, duckdb.OutOfMemoryException):
            return self._out_of_memory(f"storing {what}")
        return DataError(f"cannot store {what} ({type(e).__name__}); check that it is a valid "
                         "table with named columns")

    def store_ordinals(self, source: Source, dest: str, ordinals: tuple[Ordinals, ...],
                       encode: tuple[tuple[str, float, float, int], ...] = ()) -> Source:
        """Write the per-person ``ordinals`` of a source read in place to a Parquet
        *sidecar* ``dest`` (inside the holder's home): only the hidden ordinal columns,
        one row per source row, in the source's order. Return ``source`` with the
        ordinals it could store and ``sidecar=dest``.

        At release time a request the ordinals fit bounds contributions with the same
        row-wise predicate as on a stored copy (:func:`_ordinal_predicates`), instead
        of sorting every person's rows with window functions: it reads the sidecar
        alone when the sidecar holds every column the request needs (the group column's
        in-key values are stored too; see :meth:`_sidecar_alone`), otherwise the source
        ``POSITIONAL JOIN`` the sidecar. The ordinals are those :func:`_ordinals_sql` computes
        for a copy (same guarantee); the sidecar is valid for these exact bytes of the
        source only: the holder names it by the file's digest and refuses a changed file.
        The ``encode`` columns are stored pre-encoded beside them too, as in a copy
        (:meth:`materialize`): a bounded release then sums them without per-row work."""
        if source.kind != "parquet":
            raise QueryError("ordinals are stored beside Parquet sources only; register a CSV with copy=True")
        cur = self._cursor()
        params: list[Any] = []
        try:
            exprs = ["*"] + _encoded_exprs(encode, self.schema(source))
            fx = [ENCODED_PREFIX + column for column, *_ in encode]
            rel, stored = _ordinals_sql(self._relation(source), ordinals, exprs, params)
            exprs[0] = "*"  # keep the position, to write the rows in the source's order
            # the person's number is shared by the ordinals of one unit: once
            cols = ", ".join([quote_ident(c) for c in dict.fromkeys(
                [c for o in stored for c in o.columns + (o.mask,) if c] + fx)] + [
                # the group column's value where it is one of the keys (NULL elsewhere,
                # as the ordinals): a release it fits reads the sidecar alone
                f"CASE WHEN {quote_ident(f'{BOUND_PREFIX}in{i}')} THEN {quote_ident(o.column)} END "
                f"AS {quote_ident(_group_copy(o))}" for i, o in enumerate(stored) if o.column is not None])
            self._execute(
                cur,
                f"COPY (SELECT {cols} FROM (SELECT {', '.join(exprs)} FROM {rel}) "
                f"ORDER BY {quote_ident(BOUND_PREFIX + 'pos')}) TO {_quote_str(dest)} (FORMAT parquet)",
                params,
            )
            stored = self._usable_ordinals(cur, dest, stored)
        except duckdb.Error as e:
            raise self._store_failed(e, "the bounding ordinals of the source") from None
        finally:
            cur.close()
        if not stored:
            return source
        return dataclasses.replace(source, ordinals=stored, sidecar=dest, encoded=tuple(encode))

    @staticmethod
    def _usable_ordinals(cur: Any, dest: str, stored: tuple[Ordinals, ...]) -> tuple[Ordinals, ...]:
        """The ordinals whose row counts leave the INTEGER offsets room (all, unless a
        person has 2^30 rows in one group); the others stay unused (query-time bounding)."""
        cols = [o.columns[3] for o in stored]
        tops = cur.execute(
            f"SELECT {', '.join(f'max({quote_ident(c)})' for c in cols)} FROM read_parquet({_quote_str(dest)})"
        ).fetchone()
        return tuple(o for o, top in zip(stored, tops) if top is None or top < _MAX_ORDINAL)

    def _sidecar_alone(self, source: Source, o: Ordinals, request: AggregateRequest) -> bool:
        """Whether the sidecar of ``source`` alone answers ``request`` (which ``o``
        fits): its group column's values are stored (sidecars written since they are),
        and every measure is a row count or a sum / count of present values of a
        pre-encoded column under its bounds."""
        with self._lock:
            have = self._sidecar_columns.get(source)
        if have is None:
            try:
                rows = self._con.cursor().execute(
                    f"DESCRIBE SELECT * FROM read_parquet({_quote_str(source.sidecar)})").fetchall()
            except duckdb.Error:
                return False  # unreadable: the join fails the same way, with its message
            have = frozenset(r[0] for r in rows)
            with self._lock:
                self._sidecar_columns[source] = have
        if o.column is not None and _group_copy(o) not in have:
            return False
        return all(_from_encoded(m, source.encoded, have) for m in request.measures)

    def forget(self, source: Source) -> None:
        with self._lock:
            self._raw_types.pop(source, None)
            self._sidecar_columns.pop(source, None)
        self._hot.forget(source)

    def fetch(self, source: Source, columns: tuple[str, ...], filters: tuple[P.Expr, ...]) -> pd.DataFrame:
        """The rows of ``columns`` that pass ``filters`` — for a mechanism that releases
        record-level data (a k-anonymous extract) and must see the values it generalises."""
        return self._rows(source, columns, filters, counted=False)

    def fetch_counted(self, source: Source, columns: tuple[str, ...],
                      filters: tuple[P.Expr, ...]) -> pd.DataFrame:
        """The distinct rows of ``columns`` that pass ``filters``, each with the number of
        rows that have it in :data:`COUNT_COLUMN`, in the order of the tuples (so an
        extract built from them does not depend on DuckDB's parallel grouping): the
        class sizes of a k-anonymous extract are counted by DuckDB."""
        return self._rows(source, columns, filters, counted=True)

    def _rows(self, source: Source, columns: tuple[str, ...], filters: tuple[P.Expr, ...],
              counted: bool) -> pd.DataFrame:
        params: list[Any] = []
        where = [_expr_sql(f, params) for f in filters]
        cols = ", ".join(quote_ident(c) for c in columns)
        extra = f", count(*) AS {quote_ident(COUNT_COLUMN)}" if counted else ""
        sql = f"SELECT {cols}{extra} FROM {self._relation(source, hot=True)} AS t"
        if where:
            sql += f" WHERE {' AND '.join(where)}"
        if counted:
            sql += f" GROUP BY ALL ORDER BY {cols}" if columns else ""
        elif POSITION in self.column_names(source):  # a copy clustered by group: source order
            sql += f" ORDER BY {quote_ident(POSITION)}"
        try:
            cur = self._cursor()
            try:
                return self._execute(cur, sql, params, "df")
            finally:
                cur.close()
        except duckdb.Error as e:
            if isinstance(e, duckdb.OutOfMemoryException):
                raise self._out_of_memory("reading the rows") from None
            raise DataError(
                f"the engine could not read the rows ({type(e).__name__}); check the filters"
            ) from None

    # -- aggregation -----------------------------------------------------------------
    def aggregate(self, source: Source, request: AggregateRequest) -> pd.DataFrame:
        return pd.DataFrame(self.aggregate_columns(source, request))

    def aggregate_columns(self, source: Source, request: AggregateRequest) -> dict[str, np.ndarray]:
        """:meth:`aggregate`'s table as one NumPy array per column (no DataFrame built):
        the group columns (an object array with ``None`` where a key is missing, if
        any is) then one int64 array per measure key."""
        types = self.schema(source)
        params: list[Any] = []
        where = [_expr_sql(f, params) for f in request.filters]
        b = request.bounding
        ords = _fitting_ordinals(source, request)
        if ords is not None and source.sidecar and not os.path.isfile(source.sidecar):
            ords = None  # the ordinals beside a file read in place are gone: windows below
        if ords is not None:
            assert b is not None
            # the stored ordinals are NULL outside the keys and for a missing person
            where += _ordinal_predicates(ords, b)
            b = None  # bounded: no window below
        if b is not None:
            # rows outside the public keys must not use up a person's contribution bound
            for i, (column, keys) in enumerate(zip(request.group_columns, request.group_keys)):
                if not keys:  # keys not public: every group counts towards the bound
                    continue
                ref = (quote_ident(f"__pets_g{i}") if request.group_exprs
                       and request.group_exprs[i] is not None else quote_ident(column))
                where.append(f"{ref} IN ({', '.join('?' for _ in keys)})")
                params.extend(keys)
        # without bounding, groups outside the keys are computed and dropped by the
        # mechanism: cheaper than filtering every row against the key list
        gcols = [quote_ident(c) for c in request.group_columns]
        # a source with ordinals beside it is read from its file: the join pairs rows by position
        rel = self._relation(source, hot=not source.sidecar)
        index_of: Ordinals | None = None
        joined = ords is not None and bool(source.sidecar)
        if joined and self._sidecar_alone(source, ords, request):
            # every column the release needs is in the sidecar (the bit of the choice,
            # the group's in-key value, pre-encoded sums): read it alone, not the source
            # (the holder checked the source's bytes are those the sidecar belongs to)
            assert ords is not None
            rel = f"read_parquet({_quote_str(source.sidecar)})"
            gcols = [quote_ident(_group_copy(ords))] if gcols else []
        elif ords is not None and ords.column is not None and not source.sidecar and gcols and \
                _key_index(ords) in self.column_names(source):
            # a copy holding the group's index among the keys: group by it, name after
            index_of = ords
            gcols = [quote_ident(_key_index(ords))]
        elif joined:
            # in place: the source's rows beside their ordinals, row for row (the sidecar
            # was written in the order DuckDB reads these bytes; the holder refuses others)
            rel = f"(SELECT * FROM {rel} POSITIONAL JOIN read_parquet({_quote_str(source.sidecar)}))"
        gexprs = request.group_exprs or (None,) * len(gcols)
        if any(e is not None for e in gexprs):
            # CASE group keys: computed once per row under hidden names, output renamed
            extra = ", ".join(
                f"{_expr_sql(e, None)} AS {quote_ident(f'__pets_g{i}')}"
                for i, e in enumerate(gexprs) if e is not None
            )
            rel = f"(SELECT *, {extra} FROM {rel} AS t)"
            gcols = [quote_ident(f"__pets_g{i}") if e is not None else g
                     for i, (e, g) in enumerate(zip(gexprs, gcols))]
        where_sql = f" WHERE {' AND '.join(where)}" if where else ""
        if b is not None:
            unit = quote_ident(b.unit)
            # a person's groups are ranked by a keyed hash of (person, group): a fresh,
            # independent choice of groups per person and per release
            order_g = ", ".join([f"hash({unit}, {', '.join(gcols or ['0'])}, {int(b.seed)})"] + gcols)
            rows = (
                f"SELECT *, random() AS __pets_rand FROM {rel} AS t"
                f"{where_sql}{' AND ' if where else ' WHERE '}{unit} IS NOT NULL"
            )
            # one sort per person: in the order (hash, group, random), a row's group rank is
            # dense_rank() and its place in its group is row_number() − rank() + 1 (rank()
            # is the place of the group's first row); both windows share the partition and
            # an order prefix (measured ≈ 30% faster than two independent windows)
            inner = (
                f"SELECT *, row_number() OVER wr - rank() OVER wg + 1 AS __pets_rn, "
                f"dense_rank() OVER wg AS __pets_gr FROM ({rows}) "
                f"WINDOW wg AS (PARTITION BY {unit} ORDER BY {order_g}), "
                f"wr AS (PARTITION BY {unit} ORDER BY {order_g}, __pets_rand)"
            )
            src = (
                f"(SELECT * FROM ({inner}) WHERE __pets_rn <= {int(b.max_rows_per_group)} "
                f"AND __pets_gr <= {int(b.max_groups)})"
            )
            where_sql = ""
        else:
            src = rel
        outs = [g if g == quote_ident(c) else f"{g} AS {quote_ident(c)}"
                for g, c in zip(gcols, request.group_columns)]
        clash = {m.key for m in request.measures} & set(request.group_columns)
        if clash:  # one result column cannot be both: the mechanism must name keys apart
            raise InternalError(
                f"measure key {sorted(clash)[0]!r} is also a group column's name; this is a bug"
            )
        # measures under hidden names in the SQL: DuckDB must never bind a data column
        # (in GROUP BY, WHERE) to a measure's alias
        hidden = [dataclasses.replace(m, key=f"{HIDDEN_PREFIX}m{i}") for i, m in enumerate(request.measures)]
        # a sidecar's pre-encoded columns exist only where the sidecar is joined
        encoded = source.encoded if not source.sidecar or joined else ()
        selects = outs + [_measure_sql(m, types, encoded) for m in hidden]
        sql = f"SELECT {', '.join(selects)} FROM {src} AS t{where_sql}"
        if gcols:
            sql += f" GROUP BY {', '.join(gcols)}"
        try:
            cur = self._cursor()
            try:
                cols = self._execute(cur, sql, params, "numpy")
            finally:
                cur.close()
            keys = dict(zip((m.key for m in hidden), (m.key for m in request.measures)))
            if index_of is not None:  # the group's index among the keys → the key
                column = request.group_columns[0]
                idx = cols[column]
                if np.ma.is_masked(idx):
                    raise InternalError("a kept row of the stored copy has no key index; this is a bug")
                cols[column] = np.array(index_of.keys, dtype=object)[np.asarray(idx, dtype=np.int64)]
            out = {keys[k] if k in keys else k: np.asarray(v) if k in keys else _plain_array(v)
                   for k, v in cols.items()}
        except duckdb.Error as e:
            if isinstance(e, duckdb.OutOfMemoryException):
                raise self._out_of_memory("computing this query") from None
            # DuckDB messages can quote data values: never pass them on.
            raise DataError(
                f"the engine could not compute this query ({type(e).__name__}); check column "
                "types against the literals and bounds used"
            ) from None
        return out


def _plain_array(v: Any) -> np.ndarray:
    """A fetched group column as a plain array: a masked (NULL) entry becomes ``None`` (an
    object array), never the masked array's fill value (0 for a NULL integer key would
    be counted under a public key 0)."""
    if np.ma.isMaskedArray(v) and np.ma.is_masked(v):
        out = np.asarray(v, dtype=object)
        out[np.ma.getmaskarray(v)] = None
        return out
    return np.asarray(v)


def _size_bytes(text: str) -> int:
    """Bytes of a size such as ``"512MB"`` (DuckDB's units: KB = 1000 B, KiB = 1024 B)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text.strip())
    unit = (m.group(2) if m else "").upper() or "B"
    mult = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
            "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    return int(float(m.group(1)) * mult) if m else 0


def _relation_sql(
    scan: str, raw: list[tuple[str, str]], missing: tuple[str, ...], trim: bool
) -> str:
    cols = []
    markers = ", ".join(_quote_str(m) for m in missing)
    for name, typ in raw:
        q = quote_ident(name)
        if typ.upper() == "VARCHAR" and (trim or missing):
            v = f"trim({q})" if trim else q
            if markers:
                cols.append(f"CASE WHEN {v} IN ({markers}) THEN NULL ELSE {v} END AS {q}")
            else:
                cols.append(f"{v} AS {q}")
        else:
            cols.append(q)
    if not (trim or missing) or all(c == quote_ident(n) for c, (n, _) in zip(cols, raw)):
        # nothing to clean: the scan itself (a sub-query listing every column costs
        # DuckDB a bind of each, about 0.2 ms a small release)
        return scan
    return f"(SELECT {', '.join(cols)} FROM {scan})"


def _encoded_exprs(encode: tuple[tuple[str, float, float, int], ...], types: dict[str, str]) -> list[str]:
    """SELECT items storing each ``encode`` column pre-encoded under its hidden name."""
    out = []
    for column, lo, hi, factor in encode:
        v = _encode_sql(quote_ident(column), lo, hi, factor, types.get(column) == "int")
        # int32 when every value fits: Parquet reads it as fast as the raw column
        # (int64 pages decode about twice as slowly here)
        fits = max(abs(math.floor(lo * factor)), abs(math.ceil(hi * factor))) < 2**31
        out.append(f"({v})::{'INTEGER' if fits else 'BIGINT'} AS {quote_ident(ENCODED_PREFIX + column)}")
    return out


def _encode_sql(c: str, lower: float, upper: float, factor: int, int_column: bool) -> str:
    """``round(clamp(c, lower, upper) * factor)`` as BIGINT (DuckDB's cast rounds to
    nearest). Clamped with if(): measurably faster in DuckDB than least(greatest(...));
    a NULL stays NULL."""
    if int_column and factor == 1 and float(lower).is_integer() and float(upper).is_integer():
        lo, hi = int(lower), int(upper)
        return f"if({c} > {hi}, {hi}, if({c} < {lo}, {lo}, {c}))::BIGINT"
    lo_f, hi_f = float(lower), float(upper)
    x = f"{c}::DOUBLE"
    return f"(if({x} > {hi_f!r}, {hi_f!r}, if({x} < {lo_f!r}, {lo_f!r}, {x})) * {int(factor)})::BIGINT"


def _measure_sql(m: Measure, types: dict[str, str],
                 encoded: tuple[tuple[str, float, float, int], ...] = ()) -> str:
    key = quote_ident(m.key)
    if m.kind == "rows":
        return f"count(*) AS {key}"
    if m.expr is not None:  # an expression: its columns clamped first, literals inline
        c = f"({_expr_sql(m.expr, None, {n: (lo, hi) for n, lo, hi in m.clamps})})"
        return _value_measure_sql(m, c, key, False, ())
    assert m.column is not None
    c = quote_ident(m.column)
    return _value_measure_sql(m, c, key, types.get(m.column) == "int", encoded)


def _value_measure_sql(m: Measure, c: str, key: str, int_column: bool,
                       encoded: tuple[tuple[str, float, float, int], ...]) -> str:
    if m.kind == "present":
        if m.column is not None and m.expr is None and any(e[0] == m.column for e in encoded):
            # NULL exactly where the column is: the same count, and the column itself
            # need not be read
            return f"count({quote_ident(ENCODED_PREFIX + m.column)}) AS {key}"
        return f"count({c}) AS {key}"
    if m.kind == "distinct":
        return f"count(DISTINCT {c}) AS {key}"
    if m.kind in ("range", "range_closed"):  # raw values, not clamped: outside → no bin
        op = "<" if m.kind == "range" else "<="
        return (f"count(*) FILTER (WHERE {c} >= {float(m.lower)!r} AND {c} {op} "
                f"{float(m.upper)!r}) AS {key}")
    if m.kind in ("lt", "le"):
        lo_f, hi_f = float(m.lower), float(m.upper)
        x = f"{c}::DOUBLE"
        clamped = f"if({x} > {hi_f!r}, {hi_f!r}, if({x} < {lo_f!r}, {lo_f!r}, {x}))"
        op = "<" if m.kind == "lt" else "<="
        return f"count(*) FILTER (WHERE {clamped} {op} {float(m.threshold)!r}) AS {key}"
    if m.kind == "sum" and not m.center and m.column is not None and \
            (m.column, m.lower, m.upper, m.factor) in encoded:
        # pre-encoded at registration: the exact same values, no per-row work now
        return f"coalesce(sum({quote_ident(ENCODED_PREFIX + m.column)}), 0)::BIGINT AS {key}"
    v = _encode_sql(c, m.lower, m.upper, m.factor, int_column)
    if m.center:
        v = f"({v} - {int(m.center)})"
    if m.kind == "sum":
        return f"coalesce(sum({v}), 0)::BIGINT AS {key}"
    if m.kind == "sumsq":
        return f"coalesce(sum({v} * {v}), 0)::BIGINT AS {key}"
    raise QueryError(f"unknown measure kind {m.kind!r}")


def _lit_sql(v: Any) -> str:
    """A literal written into the SQL text (numbers checked finite by the plan; strings
    quoted with '' doubled): for expressions outside the WHERE's parameter order."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return f"({int(v)})"
    if isinstance(v, float):
        return f"CAST({float(v)!r} AS DOUBLE)"
    if isinstance(v, str):
        return _quote_str(v)
    raise QueryError(f"unsupported literal of type {type(v).__name__}")


def _clamp_sql(name: str, lower: float, upper: float) -> str:
    x = f"CAST({quote_ident(name)} AS DOUBLE)"
    lo, hi = f"CAST({float(lower)!r} AS DOUBLE)", f"CAST({float(upper)!r} AS DOUBLE)"
    return f"if({x} > {hi}, {hi}, if({x} < {lo}, {lo}, {x}))"


def _expr_sql(e: P.Expr, params: list[Any] | None,
              clamps: dict[str, tuple[float, float]] | None = None) -> str:
    """SQL for an expression; literals as ``?`` parameters appended to ``params``, or
    written inline when ``params`` is None. Arithmetic is computed in DOUBLE (no integer
    overflow); ``clamps`` clamps those columns where they give a value (not in a CASE
    condition)."""
    if isinstance(e, P.Col):
        if clamps and e.name in clamps:
            return _clamp_sql(e.name, *clamps[e.name])
        return quote_ident(e.name)
    if isinstance(e, P.Lit):
        if e.value is None:
            return "NULL"
        if params is None:
            return _lit_sql(e.value)
        params.append(e.value)
        return "?"
    if isinstance(e, P.Arith):  # literals inline: the types must be known to DuckDB
        left = _expr_sql(e.left, None, clamps)
        right = _expr_sql(e.right, None, clamps)
        return f"(CAST({left} AS DOUBLE) {e.op} CAST({right} AS DOUBLE))"
    if isinstance(e, P.Neg):
        return f"(- CAST({_expr_sql(e.operand, None, clamps)} AS DOUBLE))"
    if isinstance(e, P.Case):
        parts = ["CASE"]
        for cond, value in e.whens:
            parts.append(f"WHEN {_expr_sql(cond, None)} THEN {_expr_sql(value, None, clamps)}")
        if e.default is not None:
            parts.append(f"ELSE {_expr_sql(e.default, None, clamps)}")
        return f"({' '.join(parts)} END)"
    if isinstance(e, P.Compare):
        if isinstance(e.right, P.Lit) and e.right.value is None and e.op in ("==", "!="):
            return f"({_expr_sql(e.left, params)} IS {'NOT ' if e.op == '!=' else ''}NULL)"
        op = "=" if e.op == "==" else ("<>" if e.op == "!=" else e.op)
        left = _expr_sql(e.left, params)
        return f"({left} {op} {_expr_sql(e.right, params)})"
    if isinstance(e, P.And):
        left = _expr_sql(e.left, params)
        return f"({left} AND {_expr_sql(e.right, params)})"
    if isinstance(e, P.Or):
        left = _expr_sql(e.left, params)
        return f"({left} OR {_expr_sql(e.right, params)})"
    if isinstance(e, P.Not):
        return f"(NOT {_expr_sql(e.operand, params)})"
    if isinstance(e, P.IsIn):
        left = _expr_sql(e.operand, params)
        if params is None:
            return f"({left} IN ({', '.join(_lit_sql(v) for v in e.values)}))"
        params.extend(e.values)
        return f"({left} IN ({', '.join('?' for _ in e.values)}))"
    if isinstance(e, P.IsNull):
        return f"({_expr_sql(e.operand, params)} IS NULL)"
    raise QueryError(f"unsupported expression {type(e).__name__}")


# -- contribution bounding with stored ordinals ------------------------------------------


def _group_copy(o: Ordinals) -> str:
    """The hidden name under which a sidecar stores the in-key values of the group
    column of ``o`` (beside its row ordinal ``…_ri``)."""
    return o.columns[2][: -len("_ri")] + "_grp"


def _key_index(o: Ordinals) -> str:
    """The hidden name under which a copy stores the index among ``o.keys`` of the
    group column's value (NULL outside the keys)."""
    return o.columns[2][: -len("_ri")] + "_key"


def _from_encoded(m: Measure, encoded: tuple[tuple[str, float, float, int], ...],
                  have: frozenset[str]) -> bool:
    """Whether measure ``m`` reads only a pre-encoded column in ``have`` (or nothing)."""
    if m.kind == "rows":
        return True
    if m.expr is not None or m.column is None or ENCODED_PREFIX + m.column not in have:
        return False
    if m.kind == "present":
        return any(e[0] == m.column for e in encoded)
    return m.kind == "sum" and not m.center and (m.column, m.lower, m.upper, m.factor) in encoded


def _ordinal_predicates(o: Ordinals, b: Bounding) -> list[str]:
    """Row-wise predicates that keep, per person, at most ``max_groups`` of their groups
    and, per person and group, at most ``max_rows_per_group`` of their rows.

    With the stored columns gi (the group's index among the person's ng groups, in a
    random order fixed when the copy was written), ri (the row's index among the
    person's nr rows in that group, random order likewise) and pr (a random number per
    person), and fresh a₁, c₁, a₂, c₂ < 2^15 from the release's seed, a row is kept iff

        (gi + pr·a₁ + c₁) mod ng < max_groups   and   (ri + pr·a₂ + c₂) mod nr < max_rows_per_group.

    **Guarantee.** gi is a bijection from the person's groups onto 0 … ng−1 (dense rank,
    ties broken by the group value) and the offset pr·a₁ + c₁ is the same on all of the
    person's rows, so the first test keeps exactly min(ng, max_groups) of the person's
    groups: a cyclic run in the stored order. Likewise ri is a bijection from the
    person's rows in one group onto 0 … nr−1, so the second keeps exactly
    min(nr, max_rows_per_group) of them. Every quantity involved — gi, ng, ri, nr, pr —
    is computed from that person's own rows (partitions by person) and from randomness
    drawn independently of the data; none depends on another person's rows. So adding or
    removing one person adds or removes only that person's kept rows, at most
    max_groups × max_rows_per_group of them in at most max_groups groups, and leaves
    everyone else's kept rows as they were: the sensitivity the mechanism computes from
    the bounds holds. The bound holds for every value of the random quantities; their
    quality affects only which rows are kept, never how many.

    **Which rows.** For one release, over the random order fixed at registration, a
    person's kept groups are a uniformly random subset of size min(ng, max_groups) (a
    fixed run of positions in a uniformly random order), independently across persons,
    as with the window functions. Across releases the order stays fixed and only the
    offset moves, so a person's kept groups are always one of ng cyclic runs of that
    order, not any subset; and the offsets of different persons move together through
    a₁, c₁ (an affine map of pr), not independently. That affects only which rows feed
    different releases, not any one release's bound. Offsets are reduced modulo ng and
    nr from below 2^30, so each run is equally likely to within ng / 2^15.
    """
    if o.mask and o.mask_bounds is not None and int(o.mask_bounds[1]) == int(b.max_rows_per_group) and (
            o.column is None or int(o.mask_bounds[0]) == int(b.max_groups)):
        # one of the precomputed choices, picked by the release's seed: a bit test
        return [f"({quote_ident(o.mask)} & {1 << (int(b.seed) % MASK_CHOICES)}) <> 0"]
    gi, ng, ri, nr, pr = (quote_ident(c) if c else "" for c in o.columns)
    a1, c1, a2, c2 = ((int(b.seed) >> (_OFFSET_BITS * i)) & (2**_OFFSET_BITS - 1) for i in range(4))
    out = []
    if o.column is not None and int(b.max_groups) < len(o.keys):  # else ng <= max_groups
        out.append(f"(({gi} + {pr} * {a1} + {c1}) % {ng}) < {int(b.max_groups)}")
    out.append(f"(({ri} + {pr} * {a2} + {c2}) % {nr}) < {int(b.max_rows_per_group)}")
    return out


def _ordinals_sql(
    rel: str, ordinals: tuple[Ordinals, ...], exprs: list[str], params: list[Any]
) -> tuple[str, tuple[Ordinals, ...]]:
    """Extend ``exprs`` (a SELECT list over ``rel`` starting with ``*``) with the
    ordinals' columns; return the relation to select from and the ordinals with their
    hidden column names.

    Window functions, once: gi is a dense rank of the person's in-key groups ordered by
    a keyed hash of (person, group) under a fresh secret seed (ties broken by the group),
    ng = max(gi) + 1 over the person, ri a row number over (person, group) ordered by
    random(), nr the rows of that partition, pr a keyed hash of the person modulo 2^15.
    A row whose person is missing or whose group is outside the keys gets NULLs. See
    :func:`_ordinal_predicates` for how a release uses them."""
    seed_g, seed_p = secrets.randbits(62), secrets.randbits(62)
    rnd = quote_ident(BOUND_PREFIX + "rand")
    pos = quote_ident(BOUND_PREFIX + "pos")
    pre = ["*", f"random() AS {rnd}"]
    windows = ["*"]
    per_person = ["*"]  # ng and pr, over the windows' output
    hidden = [rnd, pos]
    units: dict[str, str] = {}
    stored = []
    for i, o in enumerate(ordinals):
        u = quote_ident(o.unit)
        flag = quote_ident(f"{BOUND_PREFIX}in{i}")
        hidden.append(flag)
        if o.unit not in units:
            units[o.unit] = f"{BOUND_PREFIX}pr{len(units)}"
            per_person.append(
                f"CASE WHEN {u} IS NOT NULL THEN (hash({u}, {seed_p}) % {2**_OFFSET_BITS})::INTEGER END "
                f"AS {quote_ident(units[o.unit])}"
            )
        names = [f"{BOUND_PREFIX}{i}_{part}" for part in ("gi", "ng", "ri", "nr")]
        gi, ng, ri, nr = (quote_ident(n) for n in names)
        if o.column is None:
            pre.append(f"({u} IS NOT NULL) AS {flag}")
            part = f"{u}, {flag}"
            names[:2] = ["", ""]
        else:
            g = quote_ident(o.column)
            pre.append(f"({u} IS NOT NULL AND {g} IN ({', '.join('?' for _ in o.keys)})) AS {flag}")
            params.extend(o.keys)
            part = f"{u}, {g}, {flag}"
            windows.append(
                f"CASE WHEN {flag} THEN (dense_rank() OVER (PARTITION BY {u}, {flag} "
                f"ORDER BY hash({u}, {g}, {seed_g}), {g}) - 1)::INTEGER END AS {gi}"
            )
            # the number of ranks itself (not a count of distinct values), so that the
            # ranks are exactly 0 … ng − 1 whatever the type's equality
            per_person.append(f"CASE WHEN {flag} THEN max({gi}) OVER (PARTITION BY {u}, {flag}) + 1 END AS {ng}")
        windows.append(
            f"CASE WHEN {flag} THEN (row_number() OVER (PARTITION BY {part} ORDER BY {rnd}) - 1)::INTEGER "
            f"END AS {ri}"
        )
        windows.append(f"CASE WHEN {flag} THEN (count(*) OVER (PARTITION BY {part}))::INTEGER END AS {nr}")
        columns = tuple(names) + (units[o.unit],)
        mask = ""
        if o.mask_bounds is not None:
            mask = f"{BOUND_PREFIX}{i}_mask"
            exprs.append(f"{_mask_sql(columns, o.column is not None, o.mask_bounds, flag)} AS {quote_ident(mask)}")
        stored.append(Ordinals(o.unit, o.column, tuple(o.keys), columns, o.mask_bounds, mask))
    assert exprs[0] == "*"
    exprs[0] = f"* EXCLUDE ({', '.join(hidden)})"
    inner = f"(SELECT *, row_number() OVER () AS {pos} FROM {rel})"  # the source's order
    return (f"(SELECT {', '.join(per_person)} FROM (SELECT {', '.join(windows)} FROM "
            f"(SELECT {', '.join(pre)} FROM {inner})))", tuple(stored))


def _mask_sql(columns: tuple[str, ...], grouped: bool, bounds: tuple[int, int], flag: str) -> str:
    """The precomputed choices: bit k (k < MASK_CHOICES) is set iff the row is kept by
    the predicates of :func:`_ordinal_predicates` under ``bounds`` with the k-th of
    MASK_CHOICES sets of offsets (a₁, c₁, a₂, c₂) drawn here from the CSPRNG and not
    kept. NULL where the row takes no part in the bounding."""
    gi, ng, ri, nr, pr = (quote_ident(c) if c else "" for c in columns)
    max_groups, max_rows = int(bounds[0]), int(bounds[1])
    terms = []
    for k in range(MASK_CHOICES):
        a1, c1, a2, c2 = (secrets.randbelow(2**_OFFSET_BITS) for _ in range(4))
        cond = f"(({ri} + {pr} * {a2} + {c2}) % {nr}) < {max_rows}"
        if grouped:
            cond = f"(({gi} + {pr} * {a1} + {c1}) % {ng}) < {max_groups} AND {cond}"
        terms.append(f"CASE WHEN {cond} THEN {1 << k} ELSE 0 END")
    return f"CASE WHEN {flag} THEN ({' + '.join(terms)})::INTEGER END"
