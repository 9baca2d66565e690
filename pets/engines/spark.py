"""Spark, the engine for tables that outgrow one machine (``pip install "pets[spark]"``).

Runs the same requests as :class:`pets.engines.DuckDBEngine` on a Spark DataFrame built
from a Parquet path (a file or a folder of part files, as Spark writes them), a CSV file
or a table of the session's catalog: filters, dropping rows outside the public keys,
per-person contribution bounding with window functions partitioned by the privacy
unit, clamping and fixed-point encoding, and group-by aggregates — all in Spark, as
DataFrame expressions (``pyspark.sql.functions``; user values travel as literals, never
pasted into SQL text). Only the aggregates come back, one row per group present, as a
pandas frame. Noise, policy, ledger and audit stay in pets.

The integers it returns are exactly DuckDB's for the same request and data (the tests
in ``tests/spark`` pin this): values are clamped in DOUBLE, scaled by the fixed-point
factor and rounded to the nearest integer, ties to even (Java's ``rint``, DuckDB's
cast), sums are 64-bit. Bounding keeps a fresh random choice of a person's rows per release, so the
rows kept differ between the engines (and between releases), never how many: at most
``max_groups`` groups per person and ``max_rows_per_group`` rows per person and group.

Example (needs pyspark and Java 17+)::

    from pyspark.sql import SparkSession
    from pets.engines.spark import SparkEngine

    engine = SparkEngine(session=SparkSession.builder.master("local[2]").getOrCreate())
    holder = pets.Holder("./home", spark=engine)
    holder.register("census", "lake/census/", "census.policy.toml", engine="spark")
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .. import plan as P
from ..errors import DataError, InternalError, QueryError
from .base import COUNT_COLUMN, AggregateRequest, Measure, Ordinals, Source

__all__ = ["SparkEngine", "INSTALL_HINT", "DEFAULT_MASTER"]

#: What to run when pyspark is missing.
INSTALL_HINT = 'pip install "pets[spark]"'
#: The master of the session a SparkEngine starts when given none.
DEFAULT_MASTER = "local[2]"
_ENCODED_PREFIX = "__pets_fx__"
_HIDDEN_PREFIX = "__pets_"


def _pyspark() -> Any:
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import functions as F
    except ImportError:
        raise DataError(
            f"the Spark engine needs pyspark and Java 17+: {INSTALL_HINT}"
        ) from None
    return F


def _spark_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a Spark job raises on bad input or data (their messages may quote
    data values: never passed on)."""
    out: list[type[BaseException]] = []
    try:
        from pyspark.errors import PySparkException

        out.append(PySparkException)
    except ImportError:  # pragma: no cover - pyspark < 3.4
        pass
    try:
        from py4j.protocol import Py4JError

        out.append(Py4JError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(out)


def _logical(t: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(t, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "int"
    if isinstance(t, (T.FloatType, T.DoubleType, T.DecimalType)):
        return "float"
    if isinstance(t, (T.StringType, T.VarcharType, T.CharType)):
        return "str"
    if isinstance(t, T.BooleanType):
        return "bool"
    if isinstance(t, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        return "date"
    return "other"


class SparkEngine:
    """Runs plans on Spark.

    ``session``: the SparkSession to use (a cluster's, configured as you like); without
    one, the engine starts ``SparkSession.builder.master(master)`` with the ``config``
    options on first use (default master ``local[2]``). Thread-safe as far as Spark is:
    jobs from several threads share the session.
    """

    def __init__(self, session: Any = None, *, master: str | None = None,
                 config: dict[str, str] | None = None) -> None:
        if session is not None and (master is not None or config):
            raise QueryError("give SparkEngine either session= or master=/config=, not both")
        self._session = session
        self.master = master or DEFAULT_MASTER
        self.config = dict(config or {})
        self._lock = threading.Lock()
        self._frames: dict[Source, Any] = {}

    def __repr__(self) -> str:
        return f"SparkEngine(master={self.master!r})" if self._session is None else "SparkEngine(session=...)"

    # -- the session -----------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The SparkSession (started on first use when none was given)."""
        _pyspark()
        with self._lock:
            if self._session is None:
                from pyspark.sql import SparkSession

                b = SparkSession.builder.master(self.master).appName("pets")
                b = b.config("spark.ui.showConsoleProgress", "false")
                if self.master.startswith("local"):  # small defaults for one machine
                    b = b.config("spark.sql.shuffle.partitions", "8").config("spark.ui.enabled", "false")
                for k, v in self.config.items():
                    b = b.config(str(k), str(v))
                self._session = b.getOrCreate()
            return self._session

    def table_exists(self, name: str) -> bool:
        """Whether ``name`` is a table (or view) of the session's catalog."""
        try:
            return bool(self.session.catalog.tableExists(name))
        except _spark_errors():
            return False

    # -- sources ---------------------------------------------------------------------
    def _read(self, source: Source) -> Any:
        F = _pyspark()
        spark = self.session
        try:
            if source.kind == "parquet":
                df = spark.read.parquet(source.path)
            elif source.kind == "csv":
                if len(source.missing) > 1:
                    raise DataError(
                        "the Spark engine reads a CSV file with at most one missing-value "
                        f"marker (the policy lists {len(source.missing)}); store it as Parquet "
                        "or register it with the DuckDB engine"
                    )
                opts = {"header": "true", "inferSchema": "true"}
                if source.missing:
                    opts["nullValue"] = source.missing[0]
                if source.trim:
                    opts["ignoreLeadingWhiteSpace"] = "true"
                    opts["ignoreTrailingWhiteSpace"] = "true"
                df = spark.read.options(**opts).csv(source.path)
            elif source.kind == "table":
                df = spark.table(source.path)
            else:
                raise DataError(
                    f"unknown source kind {source.kind!r}; the Spark engine reads Parquet, CSV "
                    "or a Spark table"
                )
            df.schema  # resolve now: a missing file fails here, not in the first query
        except _spark_errors() as e:
            raise DataError(
                f"cannot read {source.kind} source {source.path!r} with Spark ({type(e).__name__}); "
                "check that it exists and is a valid table"
            ) from None
        # missing markers as NULL and strings trimmed, as DuckDB's relation does
        from pyspark.sql import types as T

        cols = []
        for f in df.schema.fields:
            c = F.col(_q(f.name))
            if isinstance(f.dataType, T.StringType) and (source.trim or source.missing):
                v = F.trim(c) if source.trim else c
                if source.missing:
                    v = F.when(v.isin(*source.missing), F.lit(None).cast("string")).otherwise(v)
                cols.append(v.alias(f.name))
            else:
                cols.append(c)
        return df.select(*cols)

    def _frame(self, source: Source) -> Any:
        with self._lock:
            df = self._frames.get(source)
        if df is None:
            df = self._read(source)
            with self._lock:
                self._frames[source] = df
        return df

    def forget(self, source: Source) -> None:
        with self._lock:
            self._frames.pop(source, None)

    def column_names(self, source: Source) -> list[str]:
        return list(self._frame(source).columns)

    def schema(self, source: Source) -> dict[str, str]:
        return {f.name: _logical(f.dataType) for f in self._frame(source).schema.fields
                if not f.name.startswith(_HIDDEN_PREFIX)}

    def schema_of_frame(self, df: pd.DataFrame) -> dict[str, str]:
        """Logical column types of a pandas DataFrame (as DuckDB reads it: a DataFrame is
        always stored by the holder's embedded engine)."""
        from .duckdb import DuckDBEngine

        return DuckDBEngine().schema_of_frame(df)

    def materialize(self, source: Source | pd.DataFrame, dest: str, missing: tuple[str, ...],
                    encode: tuple[tuple[str, float, float, int], ...],
                    ordinals: tuple[Ordinals, ...] = ()) -> Source:
        """Have Spark write a Parquet copy of ``source`` to the folder ``dest``, with the
        ``encode`` columns pre-encoded and the per-person ``ordinals`` stored
        (:mod:`pets.engines.sparkcopy`)."""
        if isinstance(source, pd.DataFrame):
            raise DataError("a pandas DataFrame is registered with the default engine (DuckDB), "
                            "not with engine='spark'")
        from .sparkcopy import materialize

        try:
            return materialize(self, source, dest, encode, ordinals)
        except (DataError, QueryError, InternalError):
            raise
        except _spark_errors() as e:
            raise DataError(f"Spark could not write the copy ({type(e).__name__}); check that the "
                            "home's data folder is writable and the source readable") from None

    # -- rows ------------------------------------------------------------------------
    def fetch(self, source: Source, columns: tuple[str, ...], filters: tuple[P.Expr, ...]) -> pd.DataFrame:
        """The rows of ``columns`` that pass ``filters`` — for a record-level mechanism (a
        k-anonymous extract) that must see the values it generalises."""
        df = self._frame(source)

        def build() -> Any:
            out = df
            for f in filters:
                out = out.filter(_expr(f))
            return out.select(*[_col(c) for c in columns])

        return self._collect(build, "read the rows", "check the filters")

    def fetch_counted(self, source: Source, columns: tuple[str, ...],
                      filters: tuple[P.Expr, ...]) -> pd.DataFrame:
        """The distinct rows of ``columns`` that pass ``filters``, each with the number of
        rows that have it in the column :data:`COUNT_COLUMN`: the class-size counting of
        a k-anonymous extract runs in Spark, and only distinct tuples come back (the
        extract is the same multiset of rows as :meth:`fetch` gives, in another order)."""
        F = _pyspark()
        df = self._frame(source)

        def build() -> Any:
            out = df
            for f in filters:
                out = out.filter(_expr(f))
            return out.groupBy(*[_col(c) for c in columns]).agg(
                F.count(F.lit(1)).alias(COUNT_COLUMN))

        return self._collect(build, "count the rows", "check the filters")

    def _collect(self, build: Any, what: str, hint: str) -> pd.DataFrame:
        """Build the DataFrame (Spark analyses it eagerly: a bad column fails here) and
        bring its rows over as Arrow, then pandas. Spark's messages can quote data
        values: never passed on."""
        try:
            with warnings.catch_warnings():
                # pyspark 4.x warns that it "does not yet fully support pandas >= 3.0.0";
                # the rows come over as Arrow, converted by pyarrow, not by pyspark
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                table = build().toArrow()
            return table.to_pandas()
        except (DataError, QueryError, InternalError):
            raise
        except _spark_errors() as e:
            raise DataError(f"the engine could not {what} ({type(e).__name__}); {hint}") from None

    # -- aggregation -----------------------------------------------------------------
    def aggregate(self, source: Source, request: AggregateRequest) -> pd.DataFrame:
        return pd.DataFrame(self.aggregate_columns(source, request))

    def aggregate_columns(self, source: Source, request: AggregateRequest) -> dict[str, np.ndarray]:
        """:meth:`aggregate`'s table as one array per column: group columns as object
        arrays with ``None`` for a missing key (Arrow gives NaN or NA), int64 measures."""
        F = _pyspark()
        from pyspark.sql import Window

        types = self.schema(source)
        clash = {m.key for m in request.measures} & set(request.group_columns)
        if clash:
            raise InternalError(
                f"measure key {sorted(clash)[0]!r} is also a group column's name; this is a bug"
            )
        res = self._collect(lambda: self._plan(F, Window, self._frame(source), types, source, request),
                            "compute this query",
                            "check column types against the literals and bounds used")
        names = {f"{_HIDDEN_PREFIX}m{i}": m.key for i, m in enumerate(request.measures)}
        cols: dict[str, Any] = {}
        for c in res.columns:
            if c in names:
                cols[names[c]] = np.asarray(res[c], dtype=np.int64)
            elif c.startswith(_HIDDEN_PREFIX):
                continue
            else:
                col = res[c]
                missing = col.isna()
                cols[c] = (col.astype(object).where(~missing, None).to_numpy() if missing.any()
                           else col.to_numpy())
        return cols

    @staticmethod
    def _plan(F: Any, Window: Any, df: Any, types: dict[str, str], source: Source,
              request: AggregateRequest) -> Any:
        """The Spark DataFrame of the request's aggregates (lazy)."""
        for f in request.filters:
            df = df.filter(_expr(f))
        # CASE group keys under hidden names, computed once per row
        gexprs = request.group_exprs or (None,) * len(request.group_columns)
        gnames = []
        for i, (c, e) in enumerate(zip(request.group_columns, gexprs)):
            if e is None:
                gnames.append(c)
            else:
                name = f"{_HIDDEN_PREFIX}g{i}"
                df = df.withColumn(name, _expr(e))
                gnames.append(name)
        b = request.bounding
        if b is not None and source.ordinals:
            from .base import fitting_ordinals
            from .sparkcopy import ordinal_filters

            ords = fitting_ordinals(source, request)
            if ords is not None:  # a stored copy's ordinals: a bit test per row, no window
                for f in ordinal_filters(ords, b):
                    df = df.filter(f)
                b = None
        if b is not None:
            # rows outside the public keys must not use up a person's contribution bound
            for g, keys in zip(gnames, request.group_keys):
                if keys:
                    df = df.filter(_col(g).isin(*[F.lit(k) for k in keys]))
            unit = _col(b.unit)
            df = df.filter(unit.isNotNull())
            seed = int(b.seed)
            gcols = [_col(g) for g in gnames]
            # a person's groups ranked by a keyed hash of (person, group): a fresh,
            # independent choice per person and release; rows within a group in a random
            # order. One partition and sort per person: in the order (hash, group, rand) a
            # row's group rank is dense_rank() and its place in its group
            # row_number() − rank() + 1, as in the DuckDB engine.
            h = F.xxhash64(unit, *(gcols or [F.lit(0)]), F.lit(seed))
            df = df.withColumn(f"{_HIDDEN_PREFIX}h", h).withColumn(
                f"{_HIDDEN_PREFIX}rand", F.rand(seed % (2**63)))
            order_g = [F.col(f"{_HIDDEN_PREFIX}h")] + gcols
            wg = Window.partitionBy(unit).orderBy(*order_g)
            wr = Window.partitionBy(unit).orderBy(*order_g, F.col(f"{_HIDDEN_PREFIX}rand"))
            df = df.withColumn(f"{_HIDDEN_PREFIX}rn", F.row_number().over(wr) - F.rank().over(wg) + 1)
            df = df.withColumn(f"{_HIDDEN_PREFIX}gr", F.dense_rank().over(wg))
            df = df.filter((F.col(f"{_HIDDEN_PREFIX}rn") <= int(b.max_rows_per_group))
                           & (F.col(f"{_HIDDEN_PREFIX}gr") <= int(b.max_groups)))
        aggs = [_measure(m, types, source.encoded).alias(f"{_HIDDEN_PREFIX}m{i}")
                for i, m in enumerate(request.measures)]
        if not aggs:
            aggs = [F.count(F.lit(1)).alias(f"{_HIDDEN_PREFIX}n")]
        if gnames:
            return df.groupBy(*[_col(g).alias(c) for g, c in zip(gnames, request.group_columns)]).agg(*aggs)
        return df.agg(*aggs)


# -- expressions -------------------------------------------------------------------------


def _q(name: str) -> str:
    """A column name as Spark's col() parses it (backticks: dots and spaces are names)."""
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(_q(name))


def _lit(v: Any) -> Any:
    from pyspark.sql import functions as F

    if v is None:
        return F.lit(None)
    if isinstance(v, float):
        return F.lit(float(v)).cast("double")
    return F.lit(v)


def _dbl(c: Any) -> Any:
    return c.cast("double")


def _clamp(x: Any, lower: float, upper: float) -> Any:
    """clamp(x, lower, upper) in DOUBLE; NULL stays NULL."""
    from pyspark.sql import functions as F

    x = _dbl(x)
    lo, hi = F.lit(float(lower)), F.lit(float(upper))
    return F.when(x > hi, hi).when(x < lo, lo).otherwise(x)


def _encode(x: Any, lower: float, upper: float, factor: int, int_column: bool) -> Any:
    """``round(clamp(x, lower, upper) * factor)`` as a 64-bit integer, ties to even (as
    DuckDB's cast)."""
    from pyspark.sql import functions as F

    if int_column and factor == 1 and float(lower).is_integer() and float(upper).is_integer():
        lo, hi = F.lit(int(lower)), F.lit(int(upper))
        xl = x.cast("long")
        return F.when(xl > hi, hi).when(xl < lo, lo).otherwise(xl).cast("long")
    return _round_half_even(_clamp(x, lower, upper) * F.lit(int(factor)).cast("double"))


def _round_half_even(v: Any) -> Any:
    """A DOUBLE rounded to the nearest BIGINT, ties to even, as DuckDB's DOUBLE → BIGINT
    cast does (``0.5 → 0``, ``1.5 → 2``, ``2.5 → 2``): Java's ``Math.rint``, exact.
    (Spark's ``round`` rounds ties away from zero, and goes through BigDecimal.)"""
    from pyspark.sql import functions as F

    return F.rint(v).cast("long")


def _measure(m: Measure, types: dict[str, str], encoded: tuple[tuple[str, float, float, int], ...]) -> Any:
    from pyspark.sql import functions as F

    if m.kind == "rows":
        return F.count(F.lit(1))
    int_column = False
    if m.expr is not None:
        c = _expr(m.expr, {n: (lo, hi) for n, lo, hi in m.clamps})
    else:
        assert m.column is not None
        c = _col(m.column)
        int_column = types.get(m.column) == "int"
    if m.kind == "present":
        return F.count(c)
    if m.kind == "distinct":
        return F.count_distinct(c)
    if m.kind in ("range", "range_closed"):  # raw values: outside every bin → no bin
        x = _dbl(c)
        upper = (x < F.lit(float(m.upper))) if m.kind == "range" else (x <= F.lit(float(m.upper)))
        return F.count(F.when((x >= F.lit(float(m.lower))) & upper, F.lit(1)))
    if m.kind in ("lt", "le"):
        x = _clamp(c, m.lower, m.upper)
        t = F.lit(float(m.threshold))
        return F.count(F.when(x < t if m.kind == "lt" else x <= t, F.lit(1)))
    if m.kind == "sum" and not m.center and m.column is not None and \
            (m.column, m.lower, m.upper, m.factor) in encoded:
        return F.coalesce(F.sum(_col(_ENCODED_PREFIX + m.column)).cast("long"), F.lit(0).cast("long"))
    v = _encode(c, m.lower, m.upper, m.factor, int_column)
    if m.center:
        v = v - F.lit(int(m.center)).cast("long")
    if m.kind == "sum":
        return F.coalesce(F.sum(v).cast("long"), F.lit(0).cast("long"))
    if m.kind == "sumsq":
        return F.coalesce(F.sum(v * v).cast("long"), F.lit(0).cast("long"))
    raise QueryError(f"unknown measure kind {m.kind!r}")


def _expr(e: P.Expr, clamps: dict[str, tuple[float, float]] | None = None) -> Any:
    """A Spark Column for a plan expression. Arithmetic is in DOUBLE (no integer
    overflow), as in the DuckDB engine; ``clamps`` clamps those columns where they give
    a value (not inside a CASE condition)."""
    from pyspark.sql import functions as F

    if isinstance(e, P.Col):
        if clamps and e.name in clamps:
            return _clamp(_col(e.name), *clamps[e.name])
        return _col(e.name)
    if isinstance(e, P.Lit):
        return _lit(e.value)
    if isinstance(e, P.Arith):
        left, right = _dbl(_expr(e.left, clamps)), _dbl(_expr(e.right, clamps))
        if e.op == "+":
            return left + right
        if e.op == "-":
            return left - right
        if e.op == "*":
            return left * right
        if e.op == "/":  # the plan divides only by a nonzero literal
            return left / right
        raise QueryError(f"unsupported arithmetic {e.op!r}")
    if isinstance(e, P.Neg):
        return -_dbl(_expr(e.operand, clamps))
    if isinstance(e, P.Case):
        out = None
        for cond, value in e.whens:
            c, v = _expr(cond), _expr(value, clamps)
            out = F.when(c, v) if out is None else out.when(c, v)
        assert out is not None
        return out.otherwise(_expr(e.default, clamps)) if e.default is not None else out
    if isinstance(e, P.Compare):
        if isinstance(e.right, P.Lit) and e.right.value is None and e.op in ("==", "!="):
            left = _expr(e.left)
            return left.isNotNull() if e.op == "!=" else left.isNull()
        left, right = _expr(e.left), _expr(e.right)
        if e.op == "==":
            return left == right
        if e.op == "!=":
            return left != right
        if e.op == "<":
            return left < right
        if e.op == "<=":
            return left <= right
        if e.op == ">":
            return left > right
        if e.op == ">=":
            return left >= right
        raise QueryError(f"unsupported comparison {e.op!r}")
    if isinstance(e, P.And):
        return _expr(e.left) & _expr(e.right)
    if isinstance(e, P.Or):
        return _expr(e.left) | _expr(e.right)
    if isinstance(e, P.Not):
        return ~_expr(e.operand)
    if isinstance(e, P.IsIn):
        return _expr(e.operand).isin(*[_lit(v) for v in e.values])
    if isinstance(e, P.IsNull):
        return _expr(e.operand).isNull()
    raise QueryError(f"unsupported expression {type(e).__name__}")
