"""SQL text → plan, with sqlglot.

Supported: one ``SELECT`` over one table with ``COUNT(*)``, ``COUNT(col)``,
``COUNT(DISTINCT col)`` (distinct persons when ``col`` is the privacy unit), ``SUM(col)``,
``AVG(col)``, ``VAR_POP(col)`` / ``VARIANCE(col)``, column aliases, ``WHERE`` with
comparisons, ``AND`` / ``OR`` / ``NOT``, ``IN (...)``, ``BETWEEN``, ``IS [NOT] NULL``, and
``GROUP BY`` columns. Bounds and public keys come from the policy. Anything else is
refused with a :class:`QueryError` that names the construct and where it is.

>>> parse_sql("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex").group_by[0].column
'sex'
"""

from __future__ import annotations

import contextvars
from typing import Any

import sqlglot
from sqlglot import exp

from . import plan as P
from .errors import QueryError

__all__ = ["parse_sql"]

_CMP = {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_AGG = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "mean", exp.VariancePop: "variance"}
_CLAUSES = {
    "with": "WITH", "with_": "WITH", "joins": "JOIN", "having": "HAVING", "order": "ORDER BY",
    "limit": "LIMIT", "offset": "OFFSET", "distinct": "SELECT DISTINCT", "qualify": "QUALIFY",
    "windows": "WINDOW", "laterals": "LATERAL", "pivots": "PIVOT", "into": "INTO",
}
_DEFAULT_PREFIX = {"count": "count", "sum": "sum", "mean": "avg", "variance": "var",
                   "quantile": "quantile", "count_distinct": "count_distinct"}


_TEXT: contextvars.ContextVar[str] = contextvars.ContextVar("pets_sql_text", default="")


def _where(node: exp.Expression) -> str:
    """' at line L, column C' of where ``node`` starts in the SQL text (1-based)."""
    starts = [
        n.meta["start"] for n in node.walk() if isinstance(getattr(n, "meta", None), dict)
        and "start" in n.meta
    ]
    if not starts:
        return ""
    start = min(starts)
    text = _TEXT.get()
    if isinstance(node, exp.Func):
        # sqlglot marks the argument, not the function name: step back over "NAME ("
        i = start - 1
        while i >= 0 and text[i].isspace():
            i -= 1
        if i >= 0 and text[i] == "(":
            i -= 1
            while i >= 0 and text[i].isspace():
                i -= 1
            while i >= 0 and (text[i].isalnum() or text[i] == "_"):
                i -= 1
            start = i + 1
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return f" at line {line}, column {col}"


def _refuse(node: exp.Expression, what: str | None = None) -> QueryError:
    text = node.sql(dialect="duckdb")
    if len(text) > 60:
        text = text[:57] + "..."
    name = what or type(node).__name__.upper()
    return QueryError(f"unsupported SQL: {name} ({text}){_where(node)}")


def parse_sql(text: str) -> P.Plan:
    """Parse one SELECT statement into a :class:`pets.plan.Plan`."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("SQL text must be a non-empty string")
    token = _TEXT.set(text)
    try:
        return _parse(text)
    finally:
        _TEXT.reset(token)


def _parse(text: str) -> P.Plan:
    try:
        statements = sqlglot.parse(text, read="duckdb")
    except sqlglot.errors.ParseError as e:
        errs = getattr(e, "errors", None) or []
        if errs:
            first = errs[0]
            raise QueryError(
                f"SQL syntax error at line {first.get('line')}, column {first.get('col')}: "
                f"{first.get('description')}"
            ) from None
        raise QueryError(f"SQL syntax error: {e}") from None
    found = [s for s in statements if s is not None]
    if len(found) != 1:
        raise QueryError(f"give exactly one SQL statement, got {len(found)}")
    sel = found[0]
    if not isinstance(sel, exp.Select):
        raise _refuse(sel, "statement other than SELECT (only SELECT is supported)")  # type: ignore[arg-type]
    for key, label in _CLAUSES.items():
        v = sel.args.get(key)
        if v:
            node = v[0] if isinstance(v, list) else v
            if isinstance(node, exp.Expression):
                raise _refuse(node, label)
            raise QueryError(f"unsupported SQL: {label}")
    frm = sel.args.get("from_") or sel.args.get("from")
    if frm is None:
        raise QueryError("the query needs FROM <dataset>")
    table = frm.this
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        raise _refuse(table, "FROM other than one dataset name")
    dataset = table.name

    group_cols: list[str] = []
    group = sel.args.get("group")
    if group:
        for g in group.expressions:
            if not isinstance(g, exp.Column):
                raise _refuse(g, "GROUP BY on an expression (group by columns)")
            group_cols.append(g.name)

    aggs: list[P.Aggregation] = []
    names: set[str] = set(group_cols)
    for item in sel.expressions:
        alias = None
        node = item
        if isinstance(item, exp.Alias):
            alias, node = item.alias, item.this
        if isinstance(node, exp.Column):
            if node.name not in group_cols:
                raise QueryError(
                    f"column {node.name!r} is selected but not in GROUP BY{_where(node)}; "
                    "a DP release returns aggregates per group"
                )
            if alias and alias != node.name:
                raise _refuse(item, "renaming a GROUP BY column")
            continue
        if isinstance(node, exp.Star):
            raise QueryError("SELECT * returns rows; ask for aggregates such as COUNT(*)")
        q: float | None = None
        column: str | None
        if isinstance(node, (exp.Median, exp.PercentileCont, exp.WithinGroup)):
            column, q = _quantile_of(node)
            kind = "quantile"
        elif isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
            column, kind = _distinct_column(node), "count_distinct"
        else:
            kind = _agg_kind(node)
            column = _agg_column(node, kind)
        name = alias or (
            _DEFAULT_PREFIX[kind] if column is None else f"{_DEFAULT_PREFIX[kind]}_{column}"
        )
        if name in names:
            raise QueryError(f"output name {name!r} is used twice; add AS <name>{_where(item)}")
        names.add(name)
        aggs.append(P.Aggregation(name, kind, column, None, q))
    if not aggs:
        raise QueryError("select at least one aggregate, e.g. COUNT(*)")

    filters: tuple[P.Expr, ...] = ()
    where = sel.args.get("where")
    if where is not None:
        filters = (_expr(where.this),)
    return P.Plan(
        dataset=dataset,
        filters=filters,
        group_by=tuple(P.GroupKey(c) for c in group_cols),
        aggs=tuple(aggs),
    )


def _quantile_of(node: exp.Expression) -> tuple[str, float]:
    """MEDIAN(x), QUANTILE_CONT(x, q) / PERCENTILE_CONT(x, q), and
    PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x) → (column, q)."""
    if isinstance(node, exp.Median):
        col, q_node = node.this, None
        q: Any = 0.5
    elif isinstance(node, exp.WithinGroup):
        inner, order = node.this, node.expression
        if not isinstance(inner, exp.PercentileCont) or not isinstance(order, exp.Order) \
                or len(order.expressions) != 1:
            raise _refuse(node, "WITHIN GROUP other than PERCENTILE_CONT(q) … ORDER BY column")
        col, q_node = order.expressions[0].this, inner.this
    else:
        col, q_node = node.this, node.expression
    if q_node is not None:
        q = _literal(q_node)
    if not isinstance(col, exp.Column):
        raise _refuse(node, "a quantile of an expression (use a column)")
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        raise _refuse(node, "a quantile whose fraction is not a number")
    return col.name, float(q)


def _agg_kind(node: exp.Expression) -> str:
    for cls, kind in _AGG.items():
        if type(node) is cls:
            return kind
    if isinstance(node, exp.Variance):  # VARIANCE / VAR_SAMP: released as population variance
        return "variance"
    if isinstance(node, exp.AggFunc):
        raise _refuse(node, f"aggregate {node.key.upper()}")
    raise _refuse(node, "expression in SELECT (select GROUP BY columns and aggregates)")


def _distinct_column(node: exp.Expression) -> str:
    """COUNT(DISTINCT col) → col."""
    inner = node.this.expressions
    if len(inner) != 1 or not isinstance(inner[0], exp.Column):
        raise _refuse(node, "COUNT(DISTINCT ...) other than of one column")
    if inner[0].table:
        raise _refuse(inner[0], "qualified column name")
    return inner[0].name


def _agg_column(node: exp.Expression, kind: str) -> str | None:
    arg = node.this
    if isinstance(arg, exp.Distinct):
        raise _refuse(node, "DISTINCT inside an aggregate")
    if kind == "count" and (arg is None or isinstance(arg, exp.Star)):
        return None
    if not isinstance(arg, exp.Column):
        raise _refuse(node, f"{kind.upper()} of an expression (aggregate a column)")
    return arg.name


def _literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Neg):
        v = _literal(node.this)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v
        raise _refuse(node, "negation of a non-number")
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        s = node.this
        try:
            return int(s)
        except ValueError:
            return float(s)
    raise _refuse(node, "value (use a number, a 'string', TRUE/FALSE or NULL)")


def _operand(node: exp.Expression) -> P.Expr:
    if isinstance(node, exp.Paren):
        return _operand(node.this)
    if isinstance(node, exp.Column):
        if node.table:
            raise _refuse(node, "qualified column name")
        return P.Col(node.name)
    if isinstance(node, exp.Binary) and not isinstance(node, exp.Condition):
        raise _refuse(node, "arithmetic")
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)):
        raise _refuse(node, "arithmetic")
    if isinstance(node, exp.Func):
        raise _refuse(node, f"function {node.key.upper()}")
    return P.Lit(_literal(node))


def _expr(node: exp.Expression) -> P.Expr:
    if isinstance(node, exp.Paren):
        return _expr(node.this)
    if isinstance(node, exp.And):
        return P.And(_expr(node.this), _expr(node.expression))
    if isinstance(node, exp.Or):
        return P.Or(_expr(node.this), _expr(node.expression))
    if isinstance(node, exp.Not):
        inner = node.this
        return P.Not(_expr(inner))
    for cls, op in _CMP.items():
        if type(node) is cls:
            if isinstance(node.this, exp.Null) or isinstance(node.expression, exp.Null):
                raise QueryError(
                    f"comparison with NULL is never true{_where(node)}; write IS NULL or IS NOT NULL"
                )
            return P.Compare(op, _operand(node.this), _operand(node.expression))
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise _refuse(node, "IN with a sub-query")
        return P.IsIn(_operand(node.this), tuple(_literal(v) for v in node.expressions))
    if isinstance(node, exp.Between):
        x = _operand(node.this)
        return P.And(
            P.Compare(">=", x, P.Lit(_literal(node.args["low"]))),
            P.Compare("<=", x, P.Lit(_literal(node.args["high"]))),
        )
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return P.IsNull(_operand(node.this))
    raise _refuse(node, f"{type(node).__name__.upper()} in WHERE")
