"""The fluent query builder and column expressions.

>>> from pets import col, count, mean
>>> q = Query("adult").filter(col("age") >= 18).group_by("sex", keys=["Female", "Male"])
>>> q = q.agg(n=count(), hours=mean("hours-per-week", bounds=(1, 99)))
>>> q.plan.columns()
['age', 'sex', 'hours-per-week']

A :class:`Query` is immutable: every method returns a new one. It only describes the
question; a session's ``explain`` / ``release`` answers it under a protection.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from . import plan as P
from .errors import QueryError

__all__ = ["Expression", "col", "lit", "case", "Query", "AggSpec", "count", "sum", "mean",
           "variance", "stddev", "quantile", "histogram", "count_distinct"]


class Expression:
    """A column expression. Build with :func:`col`; combine with comparisons,
    ``&``, ``|``, ``~``, :meth:`isin` and :meth:`is_null`; compute with ``+ - *``,
    unary ``-`` and ``/`` by a nonzero number; choose with :func:`case`."""

    __slots__ = ("node",)

    def __init__(self, node: P.Expr) -> None:
        self.node = node

    # comparisons -------------------------------------------------------------------
    def _cmp(self, op: str, other: Any) -> "Expression":
        return Expression(P.Compare(op, self.node, _to_node(other)))

    def __eq__(self, other: Any) -> "Expression":  # type: ignore[override]
        return self._cmp("==", other)

    def __ne__(self, other: Any) -> "Expression":  # type: ignore[override]
        return self._cmp("!=", other)

    def __lt__(self, other: Any) -> "Expression":
        return self._cmp("<", other)

    def __le__(self, other: Any) -> "Expression":
        return self._cmp("<=", other)

    def __gt__(self, other: Any) -> "Expression":
        return self._cmp(">", other)

    def __ge__(self, other: Any) -> "Expression":
        return self._cmp(">=", other)

    # boolean -----------------------------------------------------------------------
    def __and__(self, other: "Expression") -> "Expression":
        # a long chain a & b & c & … becomes a balanced tree (see pets.plan.connect)
        return Expression(P.connect(P.And, self.node, _to_node(other, boolean=True)))

    def __or__(self, other: "Expression") -> "Expression":
        return Expression(P.connect(P.Or, self.node, _to_node(other, boolean=True)))

    def __invert__(self) -> "Expression":
        return Expression(P.Not(self.node))

    def __bool__(self) -> bool:
        raise QueryError(
            "a column expression has no truth value; combine conditions with & | ~ "
            "(not 'and', 'or', 'not') and put each comparison in parentheses"
        )

    __hash__ = None  # type: ignore[assignment]

    # arithmetic ----------------------------------------------------------------------
    def _arith(self, op: str, left: Any, right: Any) -> "Expression":
        return Expression(P.Arith(op, _to_node(left), _to_node(right)))

    def __add__(self, other: Any) -> "Expression":
        return self._arith("+", self, other)

    def __radd__(self, other: Any) -> "Expression":
        return self._arith("+", other, self)

    def __sub__(self, other: Any) -> "Expression":
        return self._arith("-", self, other)

    def __rsub__(self, other: Any) -> "Expression":
        return self._arith("-", other, self)

    def __mul__(self, other: Any) -> "Expression":
        return self._arith("*", self, other)

    def __rmul__(self, other: Any) -> "Expression":
        return self._arith("*", other, self)

    def __truediv__(self, other: Any) -> "Expression":
        return self._arith("/", self, other)

    def __rtruediv__(self, other: Any) -> "Expression":
        return self._arith("/", other, self)  # refused by the plan: a divisor must be a number

    def __neg__(self) -> "Expression":
        return Expression(P.Neg(self.node))

    def _unsupported(self, *_: Any) -> "Expression":
        raise QueryError(
            "only + - * and / by a nonzero number are supported on column expressions "
            "(no %, // or **)"
        )

    __mod__ = __rmod__ = __floordiv__ = __rfloordiv__ = __pow__ = __rpow__ = _unsupported

    def isin(self, values: Iterable[Any]) -> "Expression":
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
            raise QueryError("isin() takes a list of values, e.g. col('sex').isin(['Female'])")
        return Expression(P.IsIn(self.node, tuple(values)))

    def is_null(self) -> "Expression":
        return Expression(P.IsNull(self.node))

    def __repr__(self) -> str:
        return f"Expression({self.node!r})"


def _to_node(x: Any, boolean: bool = False) -> P.Expr:
    if isinstance(x, Expression):
        return x.node
    if boolean:
        raise QueryError(f"& and | combine column conditions, got {type(x).__name__}")
    return P.Lit(x)


def col(name: str) -> Expression:
    """A reference to a column: ``col("age") >= 18``."""
    return Expression(P.Col(name))


def lit(value: Any) -> Expression:
    """A literal value (rarely needed: plain Python values are taken as literals)."""
    return Expression(P.Lit(value))


def case(*branches: tuple[Expression, Any], default: Any = None) -> Expression:
    """``CASE WHEN … THEN … ELSE … END``: the value of the first branch whose condition
    holds, else ``default`` (``None``: missing, e.g. left out of a count)::

        band = pets.case((col("age") < 30, "young"), (col("age") < 60, "middle"),
                         default="old")
        q.group_by(band=band)                                  # a group key, named band
        q.agg(men=pets.sum(pets.case((col("sex") == "Male", 1), default=0)))

    Values are plain Python values or expressions (``col("hours") * 52``). As a group
    key (``group_by(name=pets.case(...))``) every value must be a literal: those are
    the public keys.
    """
    if not branches:
        raise QueryError("case() needs at least one (condition, value) pair, e.g. "
                         "pets.case((col('age') < 30, 'young'), default='old')")
    whens = []
    for b in branches:
        if not isinstance(b, tuple) or len(b) != 2:
            raise QueryError(
                f"case() takes (condition, value) pairs, e.g. (col('age') < 30, 'young'); got {b!r}"
            )
        cond, value = b
        if not isinstance(cond, Expression):
            raise QueryError(
                "a case() condition must be a column condition such as col('age') < 30, "
                f"got {type(cond).__name__}"
            )
        whens.append((cond.node, _to_node(value)))
    return Expression(P.Case(tuple(whens), _to_node(default) if default is not None else None))


class AggSpec:
    """An aggregation before it gets its output name in :meth:`Query.agg`."""

    __slots__ = ("kind", "column", "bounds", "q", "bins", "expr")

    def __init__(self, kind: str, column: "str | Expression | None", bounds: Sequence[float] | None,
                 q: float | None = None, bins: Sequence[float] | int | None = None) -> None:
        self.expr: P.Expr | None = None
        if isinstance(column, Expression):
            if isinstance(column.node, P.Col):
                column = column.node.name
            else:
                self.expr, column = column.node, None
        if column is not None and not isinstance(column, str):
            raise QueryError(
                f"{kind}() takes a column name (a string), got {type(column).__name__}; "
                "or an expression such as col('a') - col('b')"
            )
        if bounds is not None and (
            isinstance(bounds, (str, bytes, dict)) or not hasattr(bounds, "__iter__")
        ):
            raise QueryError(
                f"bounds for {kind}({column!r}) must be a pair (lower, upper), got {bounds!r}"
            )
        self.kind = kind
        self.column = column
        self.bounds = tuple(bounds) if bounds is not None else None
        self.q = q
        # validate now so the error points at the call that made it (and keep the
        # normalised bins: a tuple of edges or an int)
        self.bins = P.Aggregation("_", kind, column, self.bounds, q, bins,  # type: ignore[arg-type]
                                  expr=self.expr).bins

    def named(self, name: str) -> P.Aggregation:
        return P.Aggregation(name, self.kind, self.column, self.bounds, self.q,  # type: ignore[arg-type]
                             self.bins, expr=self.expr)

    def __repr__(self) -> str:
        args = [repr(self.column)] if self.column else []
        if self.expr is not None:
            args = [P.expr_text(self.expr)]
        if self.bins is not None:
            args.append(f"bins={list(self.bins) if isinstance(self.bins, tuple) else self.bins}")
        if self.bounds:
            args.append(f"bounds={self.bounds}")
        return f"{self.kind}({', '.join(args)})"


def count(column: "str | Expression | None" = None) -> AggSpec:
    """Number of rows; with a column (or an expression), number of rows where it is
    present (``count(pets.case((cond, 1)))`` counts the rows where ``cond`` holds)."""
    return AggSpec("count", column, None)


def sum(column: "str | Expression", bounds: Sequence[float] | None = None) -> AggSpec:  # noqa: A001
    """Sum of a numeric column, each value clamped to ``bounds`` (default: the policy's).

    An expression (``col("capital-gain") - col("capital-loss")``) works too: without
    ``bounds`` each column it takes its value from is clamped to its policy bounds and
    the expression's bounds follow by interval arithmetic; with ``bounds`` the
    expression's value is clamped to them."""
    return AggSpec("sum", column, bounds)


def mean(column: "str | Expression", bounds: Sequence[float] | None = None) -> AggSpec:
    """Mean of a numeric column over the rows where it is present, values clamped to ``bounds``."""
    return AggSpec("mean", column, bounds)


def variance(column: "str | Expression", bounds: Sequence[float] | None = None) -> AggSpec:
    """Population variance of a numeric column over present values clamped to ``bounds``."""
    return AggSpec("variance", column, bounds)


def stddev(column: "str | Expression", bounds: Sequence[float] | None = None) -> AggSpec:
    """Population standard deviation: the square root of :func:`variance`, released from
    the same noisy measurements (its interval is the square root of the variance's)."""
    return AggSpec("stddev", column, bounds)


def quantile(column: "str | Expression", q: float, bounds: Sequence[float] | None = None) -> AggSpec:
    """The ``q``-quantile (0.5: the median) of a numeric column within ``bounds``, chosen
    among 65 evenly spaced candidates by the exponential mechanism (report noisy max)."""
    return AggSpec("quantile", column, bounds, q)


def histogram(column: str, bins: Sequence[float] | int,
              bounds: Sequence[float] | None = None) -> AggSpec:
    """DP counts of a numeric column's values per bin, in every cell: one row per
    (cell, bin) in the result.

    ``bins`` is a list of strictly increasing edges ``[e0, e1, ..., eB]`` — bins
    ``[e0, e1)``, ``[e1, e2)``, …, the last one closed ``[eB-1, eB]`` — or a number of
    equal-width bins over ``bounds`` (default: the policy's bounds of the column). Values
    outside every bin and missing values are not counted. A histogram is the only
    aggregation of its query; it costs one share of ε, whatever the number of bins.
    """
    if hasattr(bins, "__iter__") and not isinstance(bins, (str, bytes, dict)):
        bins = tuple(bins)  # type: ignore[arg-type]
    return AggSpec("histogram", column, bounds, None, bins)


def count_distinct(column: str | None = None) -> AggSpec:
    """Number of distinct persons (the policy's privacy unit; without one every row is
    a person, so it equals ``count()``); with a column, number of distinct present
    values of that column."""
    return AggSpec("count_distinct", column, None)


class Query:
    """An immutable description of a question about one dataset."""

    __slots__ = ("_dataset", "_filters", "_select", "_group_by", "_aggs", "_post")

    def __init__(
        self,
        dataset: str,
        _filters: tuple[P.Expr, ...] = (),
        _select: tuple[str, ...] | None = None,
        _group_by: tuple[P.GroupKey, ...] = (),
        _aggs: tuple[P.Aggregation, ...] = (),
        _post: Any = None,
    ) -> None:
        if not isinstance(dataset, str) or not dataset:
            raise QueryError("a dataset name must be a non-empty string")
        self._dataset = dataset
        self._filters = _filters
        self._select = _select
        self._group_by = _group_by
        self._aggs = _aggs
        self._post = _post

    def _with(self, **kw: Any) -> "Query":
        args: dict[str, Any] = dict(
            _filters=self._filters, _select=self._select, _group_by=self._group_by, _aggs=self._aggs,
            _post=self._post,
        )
        args.update(kw)
        return Query(self._dataset, **args)

    def filter(self, condition: Expression) -> "Query":
        """Keep rows where ``condition`` holds (several filters are AND-ed)."""
        if not isinstance(condition, Expression):
            raise QueryError(
                "filter() takes a column condition such as col('age') >= 18, "
                f"got {type(condition).__name__}"
            )
        return self._with(_filters=self._filters + (condition.node,))

    def select(self, *columns: str) -> "Query":
        """Choose columns for a record-level release (e.g. a k-anonymous extract)."""
        cols = _names(columns, "select")
        return self._with(_select=cols)

    def group_by(
        self, *columns: str, keys: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
        **named: Expression,
    ) -> "Query":
        """Group by public keys.

        ``keys`` lists the public keys of a single column, or maps each column to its
        keys; columns without keys here take them from the policy. Every key gets a row
        in the result, present in the data or not.

        A named CASE groups by its value: ``group_by(band=pets.case((col("age") < 30,
        "young"), default="old"))`` — the output column is ``band`` and the keys are the
        CASE's literal results (so it needs no ``keys``). Named groups follow the column
        names in the output; call ``group_by`` again to put one first.
        """
        for name, e in named.items():
            if not isinstance(e, Expression):
                raise QueryError(
                    f"group_by({name}=...) takes a pets.case(...) with literal results, "
                    f"got {type(e).__name__}"
                )
        if not columns and named:
            if keys is not None:
                raise QueryError(
                    "keys= gives the keys of group_by columns; a CASE group's keys are its "
                    "THEN / ELSE values"
                )
            exprs = tuple(P.GroupKey(n, None, e.node) for n, e in named.items())
            q = self._with(_group_by=self._group_by + exprs)
            _ = q.plan
            return q
        cols = _names(columns, "group_by")
        if keys is None:
            per: dict[str, Any] = {}
        elif isinstance(keys, Mapping):
            unknown = [k for k in keys if k not in cols]
            if unknown:
                raise QueryError(f"keys given for {unknown[0]!r}, which is not a group_by column")
            per = dict(keys)
        else:
            if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
                raise QueryError(
                    f"keys must be a list of values, e.g. keys=['Female', 'Male'], got {keys!r}"
                )
            if len(cols) != 1:
                raise QueryError(
                    "with several group_by columns, give keys as a dict: "
                    "keys={'sex': [...], 'race': [...]}"
                )
            per = {cols[0]: keys}
        for c, k in per.items():
            if k is not None and (isinstance(k, (str, bytes, dict)) or not hasattr(k, "__iter__")):
                raise QueryError(f"keys for {c!r} must be a list of values, got {k!r}")
        groups = tuple(
            P.GroupKey(c, tuple(per[c]) if per.get(c) is not None else None) for c in cols
        ) + tuple(P.GroupKey(n, None, e.node) for n, e in named.items())
        q = self._with(_group_by=self._group_by + groups)
        _ = q.plan  # validates: a group-by column may not reuse an output name
        return q

    def agg(self, **aggregations: AggSpec) -> "Query":
        """Named aggregations: ``agg(n=pets.count(), avg=pets.mean("x", bounds=(0, 1)))``."""
        if not aggregations:
            raise QueryError("agg() needs at least one named aggregation, e.g. agg(n=pets.count())")
        new = []
        taken = {a.name for a in self._aggs} | {g.column for g in self._group_by}
        for name, spec in aggregations.items():
            if not isinstance(spec, AggSpec):
                raise QueryError(
                    f"agg({name}=...) takes pets.count(), pets.sum(), pets.mean(), "
                    f"pets.variance(), pets.quantile(), pets.histogram() or "
                    f"pets.count_distinct(), got {type(spec).__name__}"
                )
            if name in taken:
                raise QueryError(f"output name {name!r} is used twice; choose another name")
            taken.add(name)
            new.append(spec.named(name))
        q = self._with(_aggs=self._aggs + tuple(new))
        _ = q.plan  # validates: a histogram is the only aggregation of its query
        return q

    @property
    def dataset(self) -> str:
        return self._dataset

    @property
    def plan(self) -> P.Plan:
        """The plan (IR) this query compiles to."""
        return P.Plan(
            dataset=self._dataset,
            filters=self._filters,
            select=self._select,
            group_by=self._group_by,
            aggs=self._aggs,
            post=self._post,
        )

    @classmethod
    def from_plan(cls, plan: P.Plan) -> "Query":
        return cls(plan.dataset, plan.filters, plan.select, plan.group_by, plan.aggs, plan.post)

    # -- post-processing of the released table (pets.post): after the noise, no cost ---
    def _post_with(self, **kw: Any) -> "Query":
        import dataclasses

        from .post import Post

        base = self._post if self._post is not None else Post()
        return self._with(_post=dataclasses.replace(base, **kw))

    def having(self, condition: Any) -> "Query":
        """Keep the released cells where ``condition`` holds, computed on the **noisy**
        values: ``having(pets.out("n") > 100)`` (``col("n")`` names the output too).
        Several calls are AND-ed. Costs nothing; a cell whose exact value passes may be
        dropped and one whose exact value fails may be kept."""
        from .post import Call, to_post

        cond = to_post(condition)
        old = self._post.having if self._post is not None else None
        q = self._post_with(having=Call("and", (old, cond)) if old is not None else cond)
        return q._checked()

    def order_by(self, *keys: Any, descending: bool | Sequence[bool] = False,
                 nulls_first: bool = False) -> "Query":
        """Sort the released cells by output names or expressions over them, on the
        noisy values (ties keep the key order; suppressed cells last unless
        ``nulls_first``): ``order_by("n", descending=True)``."""
        from .post import Ref, to_post

        if not keys:
            raise QueryError("order_by() needs at least one output name or expression")
        desc = [descending] * len(keys) if isinstance(descending, bool) else list(descending)
        if len(desc) != len(keys) or not all(isinstance(d, bool) for d in desc):
            raise QueryError("descending= is True/False, or one True/False per key")
        if not isinstance(nulls_first, bool):
            raise QueryError("nulls_first= is True or False")
        items = tuple((Ref(k) if isinstance(k, str) else to_post(k), d, nulls_first)
                      for k, d in zip(keys, desc))
        return self._post_with(order_by=items)._checked()

    def limit(self, n: int, offset: int = 0) -> "Query":
        """Keep ``n`` released cells (after ``offset``), in the order of :meth:`order_by`."""
        return self._post_with(limit=n, offset=offset)._checked()

    def compute(self, **outputs: Any) -> "Query":
        """Add outputs computed from the released ones, after the noise, at no cost:
        ``compute(avg=pets.out("total") / pets.out("n"))``. Their intervals are
        propagated where well defined (``Release.ci``), NaN where not."""
        from .post import Ref, to_post

        if not outputs:
            raise QueryError("compute() needs at least one named output, e.g. "
                             "compute(avg=pets.out('total') / pets.out('n'))")
        base = self._post.outputs if self._post is not None and self._post.outputs else tuple(
            (n, Ref(n)) for n in [g.column for g in self._group_by] + [a.name for a in self._aggs])
        new = tuple((name, to_post(e)) for name, e in outputs.items())
        return self._post_with(outputs=base + new)._checked()

    def _checked(self) -> "Query":
        if self._aggs:
            _ = self.plan  # validates the references against the outputs
        return self

    def __repr__(self) -> str:
        return f"Query({self.plan.to_json()})"


def _names(columns: tuple[Any, ...], method: str) -> tuple[str, ...]:
    if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
        columns = tuple(columns[0])
    if not columns:
        raise QueryError(f"{method}() needs at least one column name")
    for c in columns:
        if not isinstance(c, str) or not c:
            raise QueryError(f"{method}() takes column names (strings), got {c!r}")
    if len(set(columns)) != len(columns):
        raise QueryError(f"{method}() lists a column twice")
    return tuple(columns)
