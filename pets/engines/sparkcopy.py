"""A stored copy for the Spark engine: bounded releases without a window per release.

``holder.register(name, path, policy, engine="spark", copy=True)`` has Spark write a
Parquet copy of the source into the holder's home, with the bounded columns
pre-encoded and, when the policy has a privacy unit, the per-person ordinals of
:class:`pets.engines.base.Ordinals` and their 16 precomputed choices of kept rows (one
boolean column each), computed once with window functions in Spark (one shuffle by
person). A release whose bounding the ordinals fit then keeps a row by one column's
value, as the DuckDB engine does by a bit test on its copy
(:func:`pets.engines.duckdb._ordinal_predicates`, whose guarantee this shares: every
ordinal is computed from one person's rows and from randomness drawn independently of
the data, so a person keeps at most ``max_groups × max_rows_per_group`` rows whichever
choice a release picks). The randomness of *which* rows are kept (Spark's ``rand`` for
the order of a person's rows; keyed hashes under CSPRNG seeds for the order of their
groups and the per-person offsets; the mask's offsets from the CSPRNG) bears on which
rows feed a release, never on how many.
"""

from __future__ import annotations

import secrets
from typing import Any

from .base import Ordinals, Source
from .duckdb import BOUND_PREFIX, ENCODED_PREFIX, MASK_CHOICES, _OFFSET_BITS

__all__ = ["materialize", "ordinal_filters", "KEEP_SUFFIX"]

#: The stored choices of kept rows are the boolean columns ``<ordinals' mask><k>``, k <
#: MASK_CHOICES, where the mask's name ends so (else it is one integer of MASK_CHOICES bits).
KEEP_SUFFIX = "_keep"


def materialize(engine: Any, source: Source, dest: str,
                encode: tuple[tuple[str, float, float, int], ...],
                ordinals: tuple[Ordinals, ...]) -> Source:
    """Write ``source`` (missing markers applied, strings trimmed, as the engine reads it)
    to the Parquet folder ``dest`` with the ``encode`` columns pre-encoded and the
    ``ordinals`` stored; return the Source that reads the copy."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from .spark import _col, _encode

    df = engine._frame(source)
    types = engine.schema(source)
    for c, lo, hi, factor in encode:
        df = df.withColumn(ENCODED_PREFIX + c, _encode(_col(c), lo, hi, factor, types.get(c) == "int"))
    rnd = f"{BOUND_PREFIX}rand"
    hidden = [rnd]
    df = df.withColumn(rnd, F.rand(secrets.randbits(62)))
    seed_g, seed_p = secrets.randbits(62), secrets.randbits(62)
    units: dict[str, str] = {}
    stored = []
    for o in ordinals:
        if o.unit not in units:
            units[o.unit] = f"{BOUND_PREFIX}pr{len(units)}"
            u = _col(o.unit)
            df = df.withColumn(units[o.unit], F.when(
                u.isNotNull(), F.pmod(F.xxhash64(u, F.lit(seed_p)), F.lit(2**_OFFSET_BITS)).cast("int")))
    if len(units) == 1:
        # one shuffle by person for all the windows below: each is partitioned by the
        # person (and more), which this partitioning satisfies; each ordering needs at
        # most one sort within the partitions
        df = df.repartition(_col(next(iter(units))))
    for i, o in enumerate(ordinals):
        u = _col(o.unit)
        flag = f"{BOUND_PREFIX}in{i}"
        hidden.append(flag)
        if o.column is None:
            df = df.withColumn(flag, u.isNotNull())
        else:
            df = df.withColumn(flag, u.isNotNull() & _col(o.column).isin(*[F.lit(k) for k in o.keys]))
        on = F.col(flag)
        names = [f"{BOUND_PREFIX}{i}_{part}" for part in ("gi", "ng", "ri", "nr")]
        if o.column is None:
            part = [u, on]
            names[:2] = ["", ""]
        else:
            # the person's in-key groups in an order fixed now: a keyed hash of (person,
            # group), ties broken by the group; the hash is a function of (person, group),
            # so partitioning by it too changes nothing but lets one sort by (person, flag,
            # hash, group, rand) serve every window of this column
            hg = f"{BOUND_PREFIX}h{i}"
            hidden.append(hg)
            g = _col(o.column)
            df = df.withColumn(hg, F.xxhash64(u, g, F.lit(seed_g)))
            part = [u, on, F.col(hg), g]
        # the row's random place among the person's rows (in the group)
        wr = Window.partitionBy(*part).orderBy(F.col(rnd))
        df = df.withColumn(names[2], F.when(on, (F.row_number().over(wr) - 1).cast("int")))
        df = df.withColumn(names[3], F.when(on, F.count(F.lit(1)).over(Window.partitionBy(*part)).cast("int")))
        if o.column is not None:
            # the group's rank among the person's groups: ranks exactly 0 … ng − 1
            person = Window.partitionBy(u, on)
            wg = person.orderBy(F.col(hg), g)
            df = df.withColumn(names[0], F.when(on, (F.dense_rank().over(wg) - 1).cast("int")))
            df = df.withColumn(names[1], F.when(on, (F.max(F.col(names[0])).over(person) + 1).cast("int")))
        columns = tuple(names) + (units[o.unit],)
        mask = ""
        if o.mask_bounds is not None:
            mask = f"{BOUND_PREFIX}{i}{KEEP_SUFFIX}"
            df = df.withColumns({  # one projection, not 16 nested ones to analyse
                f"{mask}{k}": F.when(on, keep).otherwise(F.lit(False))
                for k, keep in enumerate(_choices(F, columns, o.column is not None, o.mask_bounds))})
        stored.append(Ordinals(o.unit, o.column, tuple(o.keys), columns, o.mask_bounds, mask))
    df.drop(*hidden).write.mode("errorifexists").parquet(dest)
    return Source("parquet", dest, (), trim=False, encoded=tuple(encode), ordinals=tuple(stored))


def _choices(F: Any, columns: tuple[str, ...], grouped: bool, bounds: tuple[int, int]) -> list[Any]:
    """The MASK_CHOICES conditions "kept under ``bounds`` by the k-th set of offsets
    (a₁, c₁, a₂, c₂)", drawn here from the CSPRNG and not kept (as DuckDB's ``_mask_sql``,
    which packs them into the bits of one integer)."""
    gi, ng, ri, nr, pr = (F.col(c) if c else None for c in columns)
    max_groups, max_rows = int(bounds[0]), int(bounds[1])
    out = []
    for _ in range(MASK_CHOICES):
        a1, c1, a2, c2 = (secrets.randbelow(2**_OFFSET_BITS) for _ in range(4))
        cond = F.pmod(ri + pr * F.lit(a2) + F.lit(c2), nr) < F.lit(max_rows)
        if grouped:
            cond = (F.pmod(gi + pr * F.lit(a1) + F.lit(c1), ng) < F.lit(max_groups)) & cond
        out.append(cond)
    return out


def ordinal_filters(o: Ordinals, b: Any) -> list[Any]:
    """Spark filters keeping, per person, at most ``b.max_groups`` groups and
    ``b.max_rows_per_group`` rows in each (see :func:`pets.engines.duckdb._ordinal_predicates`
    for the rule and its guarantee): one bit test where the stored mask was computed for
    these bounds, else the per-release offsets.

    A copy written by this module stores the choices as MASK_CHOICES boolean columns
    ``<mask>0`` … ``<mask>15`` and a release filters on one of them: the query Spark
    compiles is then the same whichever choice the release draws (a bit test against a
    literal compiles anew for each of the 16 values: ≈ 0.8 s of code generation per
    release at 10⁷ rows here, more than the scan). A copy written before stores one
    integer ``<mask>`` and keeps the bit test."""
    from pyspark.sql import functions as F

    if o.mask and o.mask_bounds is not None and int(o.mask_bounds[1]) == int(b.max_rows_per_group) and (
            o.column is None or int(o.mask_bounds[0]) == int(b.max_groups)):
        k = int(b.seed) % MASK_CHOICES
        if o.mask.endswith(KEEP_SUFFIX):
            return [F.col(f"{o.mask}{k}")]
        return [F.col(o.mask).bitwiseAND(F.lit(1 << k)) != 0]
    gi, ng, ri, nr, pr = (F.col(c) if c else None for c in o.columns)
    a1, c1, a2, c2 = ((int(b.seed) >> (_OFFSET_BITS * i)) & (2**_OFFSET_BITS - 1) for i in range(4))
    out = []
    if o.column is not None and int(b.max_groups) < len(o.keys):  # else ng <= max_groups
        out.append(F.pmod(gi + pr * F.lit(a1) + F.lit(c1), ng) < F.lit(int(b.max_groups)))
    out.append(F.pmod(ri + pr * F.lit(a2) + F.lit(c2), nr) < F.lit(int(b.max_rows_per_group)))
    return out
