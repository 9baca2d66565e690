"""SQL text → plan, with sqlglot.

Supported: one ``SELECT`` over one table with ``COUNT(*)``, ``COUNT(x)``,
``COUNT(DISTINCT col)`` (distinct persons when ``col`` is the privacy unit), ``SUM(x)``,
``AVG(x)``, ``VAR_POP(x)`` / ``VARIANCE(x)``, ``MEDIAN(x)`` / percentiles, column
aliases, ``WHERE`` with comparisons, ``AND`` / ``OR`` / ``NOT``, ``IN (...)``,
``BETWEEN``, ``IS [NOT] NULL``, and ``GROUP BY`` columns — where ``x`` is a column or an
expression: ``+ - *``, unary minus, ``/`` by a nonzero number, numeric literals and
``CASE`` (searched or simple), which may also appear in ``WHERE`` comparisons. A
``CASE`` whose results are all literals can be a group key: name it in SELECT
(``CASE ... END AS band``) and ``GROUP BY band``; its keys are those literals. Bounds
and public keys come from the policy (an expression's bounds follow from its columns'
bounds). Anything else is refused with a :class:`QueryError` that names the construct
and where it is.

>>> parse_sql("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex").group_by[0].column
'sex'
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable, Mapping

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


#: Longest SQL text accepted.
MAX_SQL_LENGTH = 100_000
#: Deepest nesting of parentheses, brackets, CASE … END and runs of prefix operators
#: (NOT, unary minus) accepted: sqlglot's parser recurses about 20 frames per level.
MAX_SQL_NESTING = 32
#: Deepest parsed expression tree accepted (a long AND / OR chain counts one level;
#: other operators one level per term).
MAX_SQL_DEPTH = 2 * P.MAX_DEPTH

_OPEN = {"L_PAREN", "L_BRACKET", "L_BRACE", "CASE"}
_CLOSE = {"R_PAREN", "R_BRACKET", "R_BRACE", "END"}
_PREFIX = {"NOT", "DASH", "PLUS", "TILDA", "TILDE"}


def _check_nesting(text: str) -> None:
    """Refuse SQL nested deeper than :data:`MAX_SQL_NESTING` before the parser sees it,
    from sqlglot's tokens (strings, quoted names and comments are single tokens)."""
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except sqlglot.errors.SqlglotError as e:
        raise QueryError(f"SQL syntax error: {str(e).splitlines()[0][:200]}") from None
    level = run = 0
    for tok in tokens:
        kind = tok.token_type.name
        if kind in _PREFIX:
            run += 1
        else:
            run = 0
        if kind in _OPEN:
            level += 1
        elif kind in _CLOSE:
            level = max(0, level - 1)
        if level + run > MAX_SQL_NESTING:
            raise QueryError(
                f"SQL nested too deeply at line {tok.line}, column {tok.col}: at most "
                f"{MAX_SQL_NESTING} levels of parentheses, CASE and NOT are supported"
            )


def _check_depth(statement: exp.Expression) -> None:
    """Refuse a parsed statement deeper than :data:`MAX_SQL_DEPTH`, walking it without
    recursion; an AND (OR) directly under an AND (OR) adds no level — such chains are
    converted without recursion and balanced (see :func:`_chain`)."""
    stack: list[tuple[exp.Expression, int]] = [(statement, 1)]
    while stack:
        node, d = stack.pop()
        if d > MAX_SQL_DEPTH:
            raise QueryError(
                f"SQL expression nested too deeply{_where_shallow(node)}: at most {P.MAX_DEPTH} "
                "levels are supported (each operator over another's result adds one; long "
                "AND / OR chains are fine); write it flatter, e.g. IN (...) for many values"
            )
        for child in node.iter_expressions():
            same = isinstance(node, (exp.And, exp.Or)) and type(child) is type(node)
            stack.append((child, d if same else d + 1))


def _where_shallow(node: exp.Expression) -> str:
    meta = getattr(node, "meta", None)
    start = meta.get("start") if isinstance(meta, dict) else None
    if start is None:
        return ""
    text = _TEXT.get()
    line = text.count("\n", 0, start) + 1
    return f" at line {line}, column {start - (text.rfind(chr(10), 0, start) + 1) + 1}"


_TEXT: contextvars.ContextVar[str] = contextvars.ContextVar("pets_sql_text", default="")
# the dataset's column types, when the caller knows them: refuses arithmetic on text
# columns with a position
_SCHEMA: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "pets_sql_schema", default=None)
_ARITH = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}
_OTHER_OPS = {exp.Mod: "modulo (%)", exp.IntDiv: "integer division (//)", exp.Pow: "power",
              exp.DPipe: "string concatenation (||)", exp.BitwiseAnd: "bitwise AND",
              exp.BitwiseOr: "bitwise OR", exp.BitwiseXor: "bitwise XOR"}
_KIND_WORD = {"str": "text", "bool": "boolean", "date": "date", "other": "non-numeric"}


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
    own = node.meta.get("start") if isinstance(getattr(node, "meta", None), dict) else None
    if isinstance(node, exp.Func) and own is None:
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


def _refuse(node: exp.Expression, what: str | None = None,
            at: exp.Expression | None = None) -> QueryError:
    text = node.sql(dialect="duckdb")
    if len(text) > 60:
        text = text[:57] + "..."
    name = what or type(node).__name__.upper()
    return QueryError(f"unsupported SQL: {name} ({text}){_where(at if at is not None else node)}")


def parse_sql(text: str,
              schema: Callable[[str], Mapping[str, str] | None] | None = None) -> P.Plan:
    """Parse one SELECT statement into a :class:`pets.plan.Plan`.

    ``schema``, when given, maps the dataset name to its column types (or None): then
    arithmetic on a non-numeric column is refused here, with its position."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("SQL text must be a non-empty string")
    if len(text) > MAX_SQL_LENGTH:
        raise QueryError(f"SQL text is {len(text):,} characters long; at most {MAX_SQL_LENGTH:,} are supported")
    token = _TEXT.set(text)
    stoken = _SCHEMA.set(None)
    try:
        return _parse(text, schema)
    finally:
        _SCHEMA.reset(stoken)
        _TEXT.reset(token)


def _parse(text: str, schema: Callable[[str], Mapping[str, str] | None] | None) -> P.Plan:
    _check_nesting(text)
    try:
        statements = sqlglot.parse(text, read="duckdb")
    except RecursionError:  # deeper than the nesting check foresaw (a deep caller stack)
        raise QueryError(
            f"SQL nested too deeply: at most {MAX_SQL_NESTING} levels of parentheses, CASE "
            "and NOT are supported"
        ) from None
    except sqlglot.errors.TokenError as e:
        raise QueryError(f"SQL syntax error: {str(e).splitlines()[0][:200]}") from None
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
    _check_depth(found[0])
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
    if schema is not None:
        _SCHEMA.set(schema(dataset))

    # SELECT aliases of expressions, for GROUP BY <alias>
    aliased: dict[str, exp.Expression] = {}
    for item in sel.expressions:
        if isinstance(item, exp.Alias):
            aliased.setdefault(item.alias, item.this)
    group_cols: list[str] = []
    group_keys: list[P.GroupKey] = []
    case_groups: dict[str, exp.Expression] = {}
    group = sel.args.get("group")
    if group:
        for g in group.expressions:
            target, name = g, None
            if isinstance(g, exp.Column) and not g.table and g.name in aliased and not \
                    isinstance(aliased[g.name], (exp.Column, exp.AggFunc)):
                target, name = aliased[g.name], g.name
            elif isinstance(g, exp.Case):
                names_of = [a for a, n in aliased.items() if n == g]
                if not names_of:
                    raise _refuse(g, "GROUP BY on a CASE without a name (write CASE ... END "
                                     "AS <name> in SELECT, then GROUP BY <name>)")
                name = names_of[0]
            if isinstance(target, exp.Column):
                group_cols.append(target.name)
                group_keys.append(P.GroupKey(target.name))
            elif isinstance(target, exp.Case):
                assert name is not None
                case_groups[name] = target
                group_cols.append(name)
                group_keys.append(P.GroupKey(name, None, _group_case(target)))
            else:
                raise _refuse(target, "GROUP BY on an expression other than a column or a "
                                      "CASE with literal results")

    aggs: list[P.Aggregation] = []
    names: set[str] = set(group_cols)
    for item in sel.expressions:
        alias = None
        node = item
        if isinstance(item, exp.Alias):
            alias, node = item.alias, item.this
        if alias in case_groups and case_groups[alias] == node:
            continue  # the CASE group key itself
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
        value: P.Expr | None = None
        if isinstance(node, (exp.Median, exp.PercentileCont, exp.WithinGroup)):
            column, q, value = _quantile_of(node)
            kind = "quantile"
        elif isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
            column, kind = _distinct_column(node), "count_distinct"
        else:
            kind = _agg_kind(node)
            column, value = _agg_column(node, kind)
        prefix = _DEFAULT_PREFIX[kind]
        name = alias or (
            f"{prefix}_expr" if value is not None else
            prefix if column is None else f"{prefix}_{column}"
        )
        if name in names:
            raise QueryError(f"output name {name!r} is used twice; add AS <name>{_where(item)}")
        names.add(name)
        aggs.append(P.Aggregation(name, kind, column, None, q, expr=value))
    if not aggs:
        raise QueryError("select at least one aggregate, e.g. COUNT(*)")

    filters: tuple[P.Expr, ...] = ()
    where = sel.args.get("where")
    if where is not None:
        filters = (_expr(where.this),)
    return P.Plan(
        dataset=dataset,
        filters=filters,
        group_by=tuple(group_keys),
        aggs=tuple(aggs),
    )


def _group_case(node: exp.Expression) -> P.Case:
    """A CASE as a group key: every THEN / ELSE a literal (the public keys)."""
    ifs = node.args.get("ifs") or []
    kinds: dict[str, exp.Expression] = {}
    for v in [i.args.get("true") for i in ifs] + [node.args.get("default")]:
        if v is None:
            continue
        inner = v
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if not isinstance(inner, (exp.Literal, exp.Null, exp.Boolean)) and not (
            isinstance(inner, exp.Neg) and isinstance(inner.this, exp.Literal)
        ):
            raise _refuse(v, "CASE in GROUP BY whose result is not a literal (each THEN and "
                             "ELSE must be a literal value: they are the public group keys)")
        if not isinstance(inner, exp.Null):
            kind = ("text" if isinstance(inner, exp.Literal) and inner.is_string else
                    "boolean" if isinstance(inner, exp.Boolean) else "number")
            kinds.setdefault(kind, v)
            if len(kinds) > 1:
                raise _refuse(v, f"CASE in GROUP BY whose results mix {' and '.join(kinds)} "
                                 "values (use one kind)")
    return _case(node)


def _quantile_of(node: exp.Expression) -> tuple[str | None, float, P.Expr | None]:
    """MEDIAN(x), QUANTILE_CONT(x, q) / PERCENTILE_CONT(x, q), and
    PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x) → (column, q, expression)."""
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
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        raise _refuse(node, "a quantile whose fraction is not a number")
    if col is None:
        raise _refuse(node, "a quantile of nothing")
    value = _operand(col)
    if isinstance(value, P.Col):
        return value.name, float(q), None
    return None, float(q), value


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


def _agg_column(node: exp.Expression, kind: str) -> tuple[str | None, P.Expr | None]:
    """What an aggregate takes: (column, None), (None, expression) or, for COUNT(*),
    (None, None)."""
    arg = node.this
    if isinstance(arg, exp.Distinct):
        raise _refuse(node, "DISTINCT inside an aggregate")
    if kind == "count" and (arg is None or isinstance(arg, exp.Star)):
        return None, None
    if arg is None:
        raise _refuse(node, f"{kind.upper()} without an argument")
    value = _operand(arg)
    if isinstance(value, P.Col):
        return value.name, None
    if isinstance(value, P.Lit) and kind == "count" and value.value is not None:
        return None, None  # COUNT(1): every row
    if not P.expr_columns(value):
        raise _refuse(node, f"{kind.upper()} of a constant")
    return None, value


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
    """A value: a column, a literal, arithmetic (+ - *, / by a nonzero number, unary
    minus) or a CASE."""
    if isinstance(node, exp.Paren):
        return _operand(node.this)
    if isinstance(node, exp.Column):
        if node.table:
            raise _refuse(node, "qualified column name")
        return P.Col(node.name)
    for cls, op in _ARITH.items():
        if type(node) is cls:
            left, right = _number(node.this, node), _number(node.expression, node)
            if op == "/" and not (
                isinstance(right, P.Lit) and isinstance(right.value, (int, float))
                and not isinstance(right.value, bool) and right.value != 0
            ):
                raise _refuse(node, "division by anything but a nonzero number (a divisor "
                                    "that can be zero or near it leaves the quotient unbounded)")
            return P.Arith(op, left, right)
    if isinstance(node, exp.Neg):
        inner = node.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if isinstance(inner, exp.Literal) and not inner.is_string:
            return P.Lit(_literal(node))
        return P.Neg(_number(node.this, node))
    if isinstance(node, exp.Case):
        return _case(node)
    if isinstance(node, (exp.Subquery, exp.Select, exp.Exists)):
        raise _refuse(node, "sub-query")
    for cls, what in _OTHER_OPS.items():
        if isinstance(node, cls):
            raise _refuse(node, what)
    if isinstance(node, exp.Binary) and not isinstance(node, exp.Condition):
        raise _refuse(node, "arithmetic")
    if isinstance(node, exp.Func):
        raise _refuse(node, f"function {node.key.upper()}")
    if isinstance(node, (exp.Predicate, exp.Connector, exp.Not)):
        raise _refuse(node, "a condition used as a value (write CASE WHEN ... THEN 1 "
                            "ELSE 0 END)")
    return P.Lit(_literal(node))


def _number(node: exp.Expression, parent: exp.Expression) -> P.Expr:
    """An operand of arithmetic: refuses text (literal, or a column the schema says
    holds text) where it is written."""
    inner = node
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Literal) and inner.is_string:
        raise _refuse(parent, "arithmetic on text")
    if isinstance(inner, exp.Boolean):
        raise _refuse(parent, "arithmetic on a boolean")
    if isinstance(inner, exp.Column) and not inner.table:
        types = _SCHEMA.get()
        t = types.get(inner.name) if types else None
        if t in _KIND_WORD:
            raise _refuse(parent, f"arithmetic on the {_KIND_WORD[t]} column {inner.name!r}")
    return _operand(node)


def _case(node: exp.Expression) -> P.Case:
    """CASE WHEN cond THEN v … [ELSE d] END, and CASE x WHEN a THEN v … (x = a)."""
    subject = node.args.get("this")
    whens = []
    for branch in node.args.get("ifs") or []:
        test, value = branch.this, branch.args.get("true")
        if subject is not None:
            if isinstance(test, exp.Null):
                raise _refuse(node, "CASE x WHEN NULL (it never matches; write "
                                    "CASE WHEN x IS NULL THEN ...)", at=subject)
            cond: P.Expr = P.Compare("==", _operand(subject), _operand(test))
        else:
            cond = _expr(test, "CASE WHEN")
        whens.append((cond, _operand(value)))
    default = node.args.get("default")
    return P.Case(tuple(whens), _operand(default) if default is not None else None)


def _expr(node: exp.Expression, ctx: str = "WHERE") -> P.Expr:
    if isinstance(node, exp.Paren):
        return _expr(node.this, ctx)
    if isinstance(node, (exp.And, exp.Or)):
        return _chain(node, ctx)
    if isinstance(node, exp.Not):
        inner = node.this
        return P.Not(_expr(inner, ctx))
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
    raise _refuse(node, f"{type(node).__name__.upper()} in {ctx}")


def _chain(node: exp.Expression, ctx: str) -> P.Expr:
    """``a AND b AND c …`` (or OR) without recursing along the chain: its terms in
    order, joined left to right with :func:`pets.plan.connect` (the shape a short chain
    always had; a long one comes out balanced)."""
    kind = type(node)
    terms: list[exp.Expression] = []
    stack = [node]
    while stack:
        x = stack.pop()
        if type(x) is kind:
            stack.append(x.expression)
            stack.append(x.this)
        else:
            terms.append(x)
    cls = P.And if kind is exp.And else P.Or
    out = _expr(terms[0], ctx)
    for t in terms[1:]:
        out = P.connect(cls, out, _expr(t, ctx))
    return out
