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
bounds).

Over the released aggregates (post-processing, :mod:`pets.post`, on the noisy values
after the release, at no cost): ``HAVING``, ``ORDER BY`` (names, positions,
expressions), ``LIMIT`` / ``OFFSET`` / ``TOP n`` / ``FETCH FIRST``, and expressions in
the SELECT list (arithmetic, ``POWER``, ``SQRT``, ``ROUND``, ``ABS``, ``CASE``,
constants, ...). Also ``VAR`` / ``STD`` and their spellings, ``SELECT col … GROUP BY
col`` (a DP list of groups), ``SELECT DISTINCT col``, CASE groups not named in SELECT,
renamed group columns, qualifiers checked against the FROM alias, and literals coerced
to the column's type as PostgreSQL and DuckDB do. Anything else is refused with a
:class:`QueryError` that names the construct and where it is (docs/sql.md has the
table).

>>> parse_sql("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex").group_by[0].column
'sex'
"""

from __future__ import annotations

import contextvars
import math
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
                   "stddev": "stddev",
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
    if text.strip() == "-":
        raise QueryError("'-' is not SQL: give a SELECT statement (on the command line, "
                         "'-' reads it from standard input)")
    _check_nesting(text)
    text, top = _strip_top(text)
    try:
        statements = sqlglot.parse(text, read="duckdb")
    except RecursionError:  # deeper than the nesting check foresaw (a deep caller stack)
        raise QueryError(
            f"SQL nested too deeply: at most {MAX_SQL_NESTING} levels of parentheses, CASE "
            "and NOT are supported"
        ) from None
    except sqlglot.errors.TokenError as e:
        raise QueryError(f"SQL syntax error: {_clean_message(str(e))}") from None
    except sqlglot.errors.ParseError as e:
        errs = getattr(e, "errors", None) or []
        if errs:
            first = errs[0]
            raise QueryError(
                f"SQL syntax error at line {first.get('line')}, column {first.get('col')}: "
                f"{_clean_message(str(first.get('description')))}{_hint_at(text, first)}"
            ) from None
        raise QueryError(f"SQL syntax error: {_clean_message(str(e))}") from None
    found = [s for s in statements if s is not None]
    if len(found) != 1:
        raise QueryError(f"give exactly one SQL statement, got {len(found)}"
                         + (f"{_where(found[1])}" if len(found) > 1 else ""))
    _check_depth(found[0])
    sel = found[0]
    if not isinstance(sel, exp.Select):
        raise _refuse(sel, "statement other than SELECT (only SELECT is supported)")  # type: ignore[arg-type]
    for key, label in _CLAUSES.items():
        if key in ("having", "order", "limit", "offset", "distinct"):
            continue
        v = sel.args.get(key)
        if v:
            node = v[0] if isinstance(v, list) else v
            if isinstance(node, exp.Expression):
                raise _refuse(node, label)
            raise QueryError(f"unsupported SQL: {label}")
    # anything else the parser understood but pets does not: refused, never ignored
    for key, v in sel.args.items():
        if v and key not in _SELECT_ARGS and key not in _CLAUSES:
            node = v[0] if isinstance(v, list) else v
            raise QueryError(f"unsupported SQL: {key.rstrip('_').upper().replace('_', ' ')}"
                             f"{_where(node) if isinstance(node, exp.Expression) else ''}")
    group = sel.args.get("group")
    if group is not None:
        for key, v in group.args.items():
            if v and key != "expressions":
                raise QueryError(f"unsupported SQL: GROUP BY {key.upper().replace('_', ' ')}"
                                 f"{_where_word('GROUP')}")
    frm = sel.args.get("from_") or sel.args.get("from")
    if frm is None:
        raise QueryError(f"the query needs FROM <dataset>{_where(sel)}")
    table = frm.this
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        raise _refuse(table, "FROM other than one dataset name")
    for key, v in table.args.items():
        if v and key not in ("this", "alias"):
            raise QueryError(f"unsupported SQL: {key.upper()} in FROM{_where(table)}")
    dataset = table.name
    _QUALIFIER.set((table.alias or dataset, dataset if table.alias else None))
    types = schema(dataset) if schema is not None else None
    if types is not None:
        _SCHEMA.set(types)
        _check_names(sel, types)
    return _Select(sel, dataset, top).plan()


def _clean_message(msg: str) -> str:
    """A parser's message without its internals (terminal colour codes, the echo of
    the text)."""
    import re

    first = re.sub(r"\x1b\[[0-9;]*m", "", msg.splitlines()[0] if msg else "")
    first = re.sub(r"\s*Line \d+, Col: \d+\.?", "", first).strip()
    return (first or "unexpected text")[:200]


def _hint_at(text: str, err: dict[str, Any]) -> str:
    """What to do about the usual traps near a syntax error."""
    ctx = str(err.get("highlight") or "")
    if '"' in text and ctx and ctx.startswith('"'):
        return " (double quotes name a column; write text in single quotes: 'Male')"
    return ""


_SELECT_ARGS = {"expressions", "from", "from_", "where", "group", "having", "order", "limit",
                "offset", "distinct", "kind"}

_QUALIFIER: contextvars.ContextVar[tuple[str, str | None]] = contextvars.ContextVar(
    "pets_sql_qualifier", default=("", None))


def _strip_top(text: str) -> tuple[str, tuple[int, exp.Expression | None] | None]:
    """``SELECT TOP n`` (SQL Server's LIMIT): blank it out of the text (positions stay
    where they are) and return n."""
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return text, None
    for i, tok in enumerate(tokens[:-1]):
        if tok.token_type.name != "SELECT":
            continue
        j = i + 1
        if j < len(tokens) and tokens[j].token_type.name == "DISTINCT":
            j += 1
        if j + 1 < len(tokens) and tokens[j].text.upper() == "TOP":
            k, paren = j + 1, tokens[j + 1].token_type.name == "L_PAREN"
            if paren:
                k += 1
            if k < len(tokens) and tokens[k].token_type.name == "NUMBER":
                end = tokens[k + 1].end if paren and k + 1 < len(tokens) else tokens[k].end
                raw = tokens[k].text
                if not raw.isdigit():
                    raise QueryError(f"TOP takes a whole number of rows, got {raw} at line "
                                     f"{tokens[j].line}, column {tokens[j].col - 2}")
                start = tokens[j].start
                blank = "".join(c if c == "\n" else " " for c in text[start:end + 1])
                return text[:start] + blank + text[end + 1:], (int(raw), None)
        break
    return text, None


def _check_names(sel: exp.Expression, types: Mapping[str, str]) -> None:
    """The two classic traps, with what to do: an unquoted hyphenated name
    (``hours-per-week`` reads as hours − per − week) and a double-quoted string
    (``sex = "Male"`` names a column Male)."""
    aliases = {i.alias for i in sel.expressions if isinstance(i, exp.Alias)}
    for node in sel.walk():
        if isinstance(node, exp.Sub):
            parts: list[exp.Expression] = []
            x: exp.Expression = node
            while isinstance(x, exp.Sub):
                parts.append(x.expression)
                x = x.this
            parts.append(x)
            parts.reverse()
            if all(isinstance(p, exp.Column) and not p.table for p in parts):
                names = [p.name for p in parts]  # type: ignore[union-attr]
                for a in range(len(names)):
                    for b in range(len(names), a + 1, -1):
                        joined = "-".join(names[a:b])
                        if joined in types:
                            raise QueryError(
                                f"{'-'.join(names)}{_where(parts[a])} reads as a subtraction of "
                                f"columns; a column name with hyphens must be in double quotes: "
                                f'"{joined}"'
                            )
        elif isinstance(node, exp.Column) and node.name not in types and (
                node.table or node.name not in aliases) and isinstance(node.this, exp.Identifier):
            if node.this.quoted and not node.table:
                raise QueryError(
                    f'unknown column "{node.name}"{_where(node)}: double quotes name a column; '
                    f"write text in single quotes: '{node.name}'"
                )
            import difflib

            near = difflib.get_close_matches(node.name, list(types), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise QueryError(f"unknown column {node.name!r} in dataset {_QUALIFIER.get()[1] or _QUALIFIER.get()[0]!r}"
                             f"{_where(node)}{hint}")


_FUNC_POST = {exp.Sqrt: "sqrt", exp.Abs: "abs", exp.Floor: "floor", exp.Ceil: "ceil",
              exp.Exp: "exp", exp.Ln: "ln"}
_NUMERIC_CASTS = {"FLOAT", "DOUBLE", "DECIMAL", "NUMERIC", "REAL", "DOUBLE PRECISION",
                  "BIGDECIMAL", "FLOAT4", "FLOAT8"}
_INT_CASTS = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "INT4", "INT8",
              "INT2", "UBIGINT", "UINTEGER"}
_STD = {"STD", "STDDEV", "STDDEV_SAMP", "STDDEV_POP"}
_VAR = {"VAR", "VARIANCE", "VAR_SAMP", "VAR_POP"}


def _is_aggregate(node: exp.Expression) -> bool:
    if isinstance(node, (exp.AggFunc, exp.WithinGroup)):
        return True
    return isinstance(node, exp.Anonymous) and str(node.this).upper() in _STD | _VAR


def _bare(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


class _Select:
    """One SELECT → a plan: group keys and aggregations for the mechanism, and the
    post-processing (pets.post) of the released table."""

    def __init__(self, sel: exp.Select, dataset: str, top: tuple[int, Any] | None) -> None:
        self.sel, self.dataset, self.top = sel, dataset, top
        self.aggs: list[P.Aggregation] = []
        self.agg_by_text: dict[str, str] = {}
        self.group_keys: list[P.GroupKey] = []
        self.group_alias: dict[str, str] = {}  # output name → group column
        self.taken: set[str] = set()

    # -- names ----------------------------------------------------------------------
    def _fresh(self, base: str) -> str:
        name, i = base, 2
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name

    def aggregate(self, node: exp.Expression, name: str | None = None,
                  hidden: bool = True) -> str:
        """The name of the aggregation ``node`` computes, registering it once."""
        key = node.sql(dialect="duckdb")
        if key in self.agg_by_text:
            return self.agg_by_text[key]
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
        if name is None:
            prefix = _DEFAULT_PREFIX[kind]
            base = (f"{prefix}_expr" if value is not None else
                    prefix if column is None else f"{prefix}_{column}")
            if hidden:
                name = self._fresh(base)
            else:
                name = base
                if name in self.taken:
                    raise QueryError(f"output name {name!r} is used twice; add AS <name>"
                                     f"{_where(node)}")
                self.taken.add(name)
        self.aggs.append(P.Aggregation(name, kind, column, None, q, expr=value))
        self.agg_by_text[key] = name
        return name

    # -- GROUP BY --------------------------------------------------------------------
    def groups(self) -> None:
        sel = self.sel
        items = list(sel.expressions)
        aliased: dict[str, exp.Expression] = {}
        for item in items:
            if isinstance(item, exp.Alias):
                aliased.setdefault(item.alias, item.this)
        group = sel.args.get("group")
        self.group_exprs: dict[str, exp.Expression] = {}  # SQL text → group name
        if not group:
            return
        n_case = 0
        for g in group.expressions:
            target, name = _bare(g), None
            if isinstance(target, exp.Literal) and not target.is_string:
                pos = int(target.this) if target.this.isdigit() else 0
                if not 1 <= pos <= len(items):
                    raise _refuse(g, f"GROUP BY position (the SELECT list has {len(items)} items)")
                item = items[pos - 1]
                target = _bare(item.this if isinstance(item, exp.Alias) else item)
                name = item.alias if isinstance(item, exp.Alias) else None
            if isinstance(target, exp.Column) and not target.table and target.name in aliased \
                    and not _is_aggregate(aliased[target.name]):
                if not (isinstance(aliased[target.name], exp.Column)
                        and aliased[target.name].name == target.name):
                    name = target.name
                    target = _bare(aliased[target.name])
            if isinstance(target, exp.Column):
                col = _column_name(target)
                self.group_keys.append(P.GroupKey(col))
                self.group_exprs[target.sql(dialect="duckdb")] = col
                self.group_exprs[col] = col
                self.taken.add(col)
                if name and name != col:
                    self.group_alias[name] = col
            elif isinstance(target, exp.Case):
                if name is None:
                    names_of = [a for a, n in aliased.items() if _bare(n) == target]
                    if names_of:
                        name = names_of[0]
                    else:
                        n_case += 1
                        name = f"case_{n_case}"
                        while name in aliased:
                            n_case += 1
                            name = f"case_{n_case}"
                self.group_keys.append(P.GroupKey(name, None, _group_case(target)))
                self.group_exprs[target.sql(dialect="duckdb")] = name
                self.taken.add(name)
            else:
                raise _refuse(target, "GROUP BY on an expression other than a column or a "
                                      "CASE with literal results")

    # -- values over released columns --------------------------------------------------
    def post(self, node: exp.Expression, ctx: str, outputs: dict[str, str] | None = None) -> "Any":
        """A SELECT item, HAVING or ORDER BY expression over the released table."""
        from . import post as Q

        text = node.sql(dialect="duckdb")
        if text in self.group_exprs:
            return Q.Ref(self.group_exprs[text])
        if isinstance(node, exp.Paren):
            return self.post(node.this, ctx, outputs)
        if _is_aggregate(node):
            return Q.Ref(self.aggregate(node))
        if isinstance(node, exp.Column):
            name = node.name
            if not node.table and name in self.group_alias:
                return Q.Ref(self.group_alias[name])
            if not node.table and outputs is not None and name in outputs:
                return Q.Ref(outputs[name])
            col = _column_name(node)
            if col in {g.column for g in self.group_keys}:
                return Q.Ref(col)
            if ctx == "SELECT" and not self.group_keys and not self.sel.args.get("group"):
                raise QueryError(
                    f"column {col!r} is selected but not in GROUP BY{_where(node)}; "
                    "a DP release returns aggregates per group"
                )
            raise QueryError(
                f"column {col!r} in {ctx} is neither a GROUP BY column nor inside an "
                f"aggregate{_where(node)}; a DP release returns aggregates per group"
            )
        if isinstance(node, exp.Star):
            raise QueryError(f"SELECT * returns rows; ask for aggregates such as COUNT(*)"
                             f"{_where(node)}")
        if isinstance(node, (exp.Literal, exp.Boolean, exp.Null)):
            return Q.Const(_literal(node))
        if isinstance(node, exp.Neg):
            inner = _bare(node.this)
            if isinstance(inner, exp.Literal) and not inner.is_string:
                return Q.Const(_literal(node))
            return Q.Call("neg", (self.post(node.this, ctx, outputs),))
        for cls, op in _ARITH.items():
            if type(node) is cls:
                return Q.Call(op, (self.post(node.this, ctx, outputs),
                                   self.post(node.expression, ctx, outputs)))
        for cls, op in _CMP.items():
            if type(node) is cls:
                return Q.Call({"==": "="}.get(op, op), (self.post(node.this, ctx, outputs),
                                                         self.post(node.expression, ctx, outputs)))
        if isinstance(node, (exp.And, exp.Or)):
            return Q.Call("and" if isinstance(node, exp.And) else "or",
                          (self.post(node.this, ctx, outputs), self.post(node.expression, ctx, outputs)))
        if isinstance(node, exp.Not):
            return Q.Call("not", (self.post(node.this, ctx, outputs),))
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return Q.Call("is_null", (self.post(node.this, ctx, outputs),))
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise _refuse(node, "IN with a sub-query")
            return Q.Call("in", (self.post(node.this, ctx, outputs),)
                          + tuple(Q.Const(_literal(v)) for v in node.expressions))
        if isinstance(node, exp.Between):
            x = self.post(node.this, ctx, outputs)
            return Q.Call("and", (Q.Call(">=", (x, self.post(node.args["low"], ctx, outputs))),
                                  Q.Call("<=", (x, self.post(node.args["high"], ctx, outputs)))))
        if isinstance(node, exp.Case):
            subject = node.args.get("this")
            args: list[Any] = []
            for branch in node.args.get("ifs") or []:
                test = self.post(branch.this, ctx, outputs)
                if subject is not None:
                    test = Q.Call("=", (self.post(subject, ctx, outputs), test))
                args += [test, self.post(branch.args.get("true"), ctx, outputs)]
            default = node.args.get("default")
            args.append(self.post(default, ctx, outputs) if default is not None else Q.Const(None))
            return Q.Call("case", tuple(args))
        if isinstance(node, exp.If):
            args = [self.post(node.this, ctx, outputs),
                    self.post(node.args.get("true"), ctx, outputs)]
            f = node.args.get("false")
            args.append(self.post(f, ctx, outputs) if f is not None else Q.Const(None))
            return Q.Call("case", tuple(args))
        if isinstance(node, exp.Pow):
            return Q.Call("power", (self.post(node.this, ctx, outputs),
                                    self.post(node.expression, ctx, outputs)))
        for cls, fn in _FUNC_POST.items():
            if type(node) is cls:
                return Q.Call(fn, (self.post(node.this, ctx, outputs),))
        if isinstance(node, exp.Round):
            d = node.args.get("decimals")
            args = [self.post(node.this, ctx, outputs)]
            if d is not None:
                args.append(Q.Const(_literal(d)))
            return self._call(node, "round", args)
        if isinstance(node, exp.Log):
            if node.expression is None:  # LOG(x): base 10, as in PostgreSQL and DuckDB
                return Q.Call("log10", (self.post(node.this, ctx, outputs),))
            base = _bare(node.this)
            if isinstance(base, exp.Literal) and not base.is_string and float(base.this) == 10:
                return Q.Call("log10", (self.post(node.expression, ctx, outputs),))
            raise _refuse(node, "LOG with a base other than 10 (write LN(x) / LN(b))")
        if isinstance(node, exp.Pi):
            return Q.Const(math.pi)
        if isinstance(node, (exp.Least, exp.Greatest, exp.Coalesce)):
            fn = {exp.Least: "least", exp.Greatest: "greatest", exp.Coalesce: "coalesce"}[type(node)]
            args = [self.post(node.this, ctx, outputs)] + [
                self.post(x, ctx, outputs) for x in node.expressions]
            return self._call(node, fn, args)
        if isinstance(node, exp.Nullif):
            return Q.Call("nullif", (self.post(node.this, ctx, outputs),
                                     self.post(node.expression, ctx, outputs)))
        if isinstance(node, (exp.Cast, exp.TryCast)):
            to = node.args.get("to")
            t = to.sql(dialect="duckdb").upper().split("(")[0].strip() if to is not None else ""
            inner = self.post(node.this, ctx, outputs)
            if t in _NUMERIC_CASTS:
                return inner
            if t in _INT_CASTS:  # as DuckDB casts a number to an integer: rounded
                return Q.Call("round", (inner,))
            raise _refuse(node, f"CAST to {t or 'this type'} (only to numeric types)")
        if isinstance(node, (exp.Subquery, exp.Select, exp.Exists)):
            raise _refuse(node, "sub-query")
        if isinstance(node, exp.Window):
            raise _refuse(node, "window function (OVER)")
        for cls, what in _OTHER_OPS.items():
            if isinstance(node, cls):
                raise _refuse(node, what)
        if isinstance(node, exp.Func):
            raise _refuse(node, f"function {_func_name(node)}")
        raise _refuse(node, f"{type(node).__name__.upper()} in {ctx}")

    def _call(self, node: exp.Expression, fn: str, args: list[Any]) -> Any:
        from . import post as Q

        try:
            return Q.Call(fn, tuple(args))
        except QueryError as e:
            raise QueryError(f"{e}{_where(node)}") from None

    # -- the whole SELECT --------------------------------------------------------------
    def plan(self) -> P.Plan:
        from . import post as Q

        sel = self.sel
        self.groups()
        group_cols = [g.column for g in self.group_keys]
        items = list(sel.expressions)
        aliases = [i.alias if isinstance(i, exp.Alias) else None for i in items]
        nodes = [_bare(i.this) if isinstance(i, exp.Alias) else _bare(i) for i in items]
        distinct = sel.args.get("distinct")
        if distinct is not None:
            if sel.args.get("group") or any(_is_aggregate(n) or any(
                    _is_aggregate(x) for x in n.find_all(exp.Func)) for n in nodes):
                raise QueryError("unsupported SQL: SELECT DISTINCT with GROUP BY or aggregates"
                                 f"{_where_word('DISTINCT')}")
            if distinct.args.get("on"):
                raise QueryError(f"unsupported SQL: SELECT DISTINCT ON{_where_word('DISTINCT')}")
            for n in nodes:  # SELECT DISTINCT a, b = SELECT a, b … GROUP BY a, b
                if not isinstance(n, exp.Column):
                    raise _refuse(n, "SELECT DISTINCT of anything but columns")
                col = _column_name(n)
                if col not in group_cols:
                    self.group_keys.append(P.GroupKey(col))
                    group_cols.append(col)
                    self.group_exprs[n.sql(dialect="duckdb")] = col
                    self.group_exprs[col] = col
                    self.taken.add(col)
        for a in aliases:
            if a:
                self.taken.add(a)
        # bare aggregates first: they take their alias (or default name) as their name
        for item, alias, node in zip(items, aliases, nodes):
            if _is_aggregate(node):
                key = node.sql(dialect="duckdb")
                if key not in self.agg_by_text:
                    if alias is not None:
                        if alias in group_cols:
                            raise QueryError(f"output name {alias!r} is already used by a "
                                             f"group-by column; choose another name{_where(item)}")
                        self.taken.discard(alias)
                        if alias in self.taken:
                            raise QueryError(f"output name {alias!r} is used twice; choose "
                                             f"another name{_where(item)}")
                        self.taken.add(alias)
                    self.aggregate(node, alias, hidden=False)
        outputs: list[tuple[str, Any]] = []
        group_out: dict[str, str] = {}  # group column → its output name
        for item, alias, node in zip(items, aliases, nodes):
            if isinstance(node, exp.Star):
                raise QueryError(f"SELECT * returns rows; ask for aggregates such as COUNT(*)"
                                 f"{_where(item)}")
            e = self.post(node, "SELECT")
            name = alias or (e.name if isinstance(e, Q.Ref) and (
                e.name in group_cols or _is_aggregate(node)) else node.sql(dialect="duckdb"))
            if isinstance(e, Q.Ref) and e.name in group_cols:
                if e.name in group_out:
                    if group_out[e.name] != name:
                        outputs.append((name, e))
                    continue
                group_out[e.name] = name
                continue
            if any(n == name for n, _ in outputs) or name in group_out.values():
                raise QueryError(f"output name {name!r} is used twice; add AS <name>{_where(item)}")
            outputs.append((name, e))
        for name, _ in outputs:
            if name in group_cols and name not in group_out.values():
                raise QueryError(f"output name {name!r} is already used by a group-by column; "
                                 "choose another name")
        projection = [(group_out.get(c, c), Q.Ref(c)) for c in group_cols] + outputs
        out_names = {name: name for name, _ in projection}
        having = None
        h = sel.args.get("having")
        list_of_groups = False
        if not self.aggs and h is None:
            if not group_cols:
                if any(isinstance(e, Q.Const) or isinstance(e, Q.Call) for _, e in outputs):
                    raise QueryError(f"select at least one aggregate, e.g. COUNT(*){_where(sel)}")
                raise QueryError(f"select at least one aggregate, e.g. COUNT(*){_where(sel)}")
            # SELECT col … GROUP BY col: the DP list of the groups (a noisy count underneath)
            list_of_groups = True
            n = Q.Ref(self.aggregate(exp.Count(this=exp.Star())))
            having = Q.Call(">", (n, Q.Const(0)))
        if h is not None:
            having = self.post(h.this, "HAVING", out_names)
        order = []
        o = sel.args.get("order")
        if o is not None:
            for ordered in o.expressions:
                target = _bare(ordered.this)
                if isinstance(target, exp.Literal) and not target.is_string:
                    pos = int(target.this) if target.this.isdigit() else 0
                    if not 1 <= pos <= len(items):
                        raise _refuse(ordered, f"ORDER BY position (the SELECT list has "
                                               f"{len(items)} items)")
                    e = self.post(nodes[pos - 1], "ORDER BY")
                else:
                    e = self.post(target, "ORDER BY", out_names)
                # NULLs (suppressed cells) last unless NULLS FIRST, as DuckDB does
                order.append((e, bool(ordered.args.get("desc")),
                              bool(ordered.args.get("nulls_first"))))
        limit, offset = self._limit()
        if not self.aggs:
            raise QueryError(f"select at least one aggregate, e.g. COUNT(*){_where(sel)}")
        default = [(c, Q.Ref(c)) for c in group_cols] + [
            (a.name, Q.Ref(a.name)) for a in self.aggs]
        needs_projection = projection != default or list_of_groups
        post = None
        if needs_projection or having is not None or order or limit is not None or offset:
            post = Q.Post(outputs=tuple(projection) if needs_projection else None,
                          having=having, order_by=tuple(order), limit=limit,
                          offset=offset or 0)
        filters: tuple[P.Expr, ...] = ()
        where = sel.args.get("where")
        if where is not None:
            filters = (_expr(where.this),)
        return P.Plan(dataset=self.dataset, filters=filters, group_by=tuple(self.group_keys),
                      aggs=tuple(self.aggs), post=post)

    def _limit(self) -> tuple[int | None, int | None]:
        sel = self.sel
        limit: int | None = None
        offset: int | None = None
        node = sel.args.get("limit")
        fetch = sel.args.get("fetch")
        if isinstance(node, exp.Fetch):
            fetch, node = node, None
        if node is not None:
            limit = _count_of(node.expression, "LIMIT", node)
        elif fetch is not None:
            limit = _count_of(fetch.args.get("count"), "FETCH FIRST", fetch)
        if self.top is not None:
            if limit is not None:
                raise QueryError("give TOP or LIMIT, not both")
            limit = self.top[0]
        off = sel.args.get("offset")
        if off is not None:
            offset = _count_of(off.expression, "OFFSET", off)
        return limit, offset


def _count_of(node: exp.Expression | None, what: str, at: exp.Expression) -> int:
    from .post import MAX_LIMIT

    v = _bare(node) if node is not None else None
    if isinstance(v, exp.Literal) and not v.is_string and v.this.isdigit() \
            and int(v.this) <= MAX_LIMIT:
        return int(v.this)
    raise _refuse(at, f"{what} other than a whole number of rows")


def _where_word(word: str) -> str:
    """' at line L, column C' of the first ``word`` token of the SQL text."""
    text = _TEXT.get()
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return ""
    for tok in tokens:
        if (tok.text.upper().split() or [""])[0] == word:
            line = text.count("\n", 0, tok.start) + 1
            return f" at line {line}, column {tok.start - (text.rfind(chr(10), 0, tok.start) + 1) + 1}"
    return ""


def _func_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper()
    return node.key.upper()


def _column_name(node: exp.Column) -> str:
    """A column's name, its qualifier (if any) checked against the FROM clause."""
    if node.table:
        qual, table = _QUALIFIER.get()
        parts = node.parts
        if len(parts) > 2 or node.table != qual:
            named = f"{table} AS {qual}" if table else qual
            hint = (f"; after AS {qual}, refer to the table as {qual}" if table and node.table == table
                    else "")
            raise QueryError(
                f"unknown table {node.table!r} in {node.sql(dialect='duckdb')}{_where(node)}: "
                f"the query reads {named}{hint}"
            )
    return node.name


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
    if isinstance(node, (exp.Stddev, exp.StddevSamp, exp.StddevPop)):
        return "stddev"
    if isinstance(node, exp.Anonymous) and str(node.this).upper() in _STD | _VAR:
        return "stddev" if str(node.this).upper() in _STD else "variance"
    if isinstance(node, exp.AggFunc):
        raise _refuse(node, f"aggregate {node.key.upper()}")
    raise _refuse(node, "expression in SELECT (select GROUP BY columns and aggregates)")


def _distinct_column(node: exp.Expression) -> str:
    """COUNT(DISTINCT col) → col."""
    inner = node.this.expressions
    if len(inner) != 1 or not isinstance(inner[0], exp.Column):
        raise _refuse(node, "COUNT(DISTINCT ...) other than of one column")
    return _column_name(inner[0])


def _agg_column(node: exp.Expression, kind: str) -> tuple[str | None, P.Expr | None]:
    """What an aggregate takes: (column, None), (None, expression) or, for COUNT(*),
    (None, None)."""
    arg = node.this
    if isinstance(node, exp.Anonymous):  # VAR(x), STD(x)
        if len(node.expressions) != 1:
            raise _refuse(node, f"{_func_name(node)} of other than one value")
        arg = node.expressions[0]
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
        return P.Col(_column_name(node))
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
    if isinstance(inner, exp.Column):
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
            cond: P.Expr = P.Compare("==", *_coerce_pair(_operand(subject), _operand(test),
                                                          subject, test))
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
            left, right = _operand(node.this), _operand(node.expression)
            return P.Compare(op, *_coerce_pair(left, right, node.this, node.expression))
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise _refuse(node, "IN with a sub-query")
        x = _operand(node.this)
        return P.IsIn(x, tuple(_coerce(x, _literal(v), v) for v in node.expressions))
    if isinstance(node, exp.Between):
        x = _operand(node.this)
        return P.And(
            P.Compare(">=", x, P.Lit(_coerce(x, _literal(node.args["low"]), node.args["low"]))),
            P.Compare("<=", x, P.Lit(_coerce(x, _literal(node.args["high"]), node.args["high"]))),
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


_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def _coerce_pair(left: P.Expr, right: P.Expr, at_left: exp.Expression,
                 at_right: exp.Expression) -> tuple[P.Expr, P.Expr]:
    """A column compared with a literal: the literal converted to the column's type."""
    if isinstance(right, P.Lit):
        right = P.Lit(_coerce(left, right.value, at_right))
    elif isinstance(left, P.Lit):
        left = P.Lit(_coerce(right, left.value, at_left))
    return left, right


def _coerce(target: P.Expr, value: Any, at: exp.Expression) -> Any:
    """``value`` as the type of the column ``target``, as PostgreSQL and DuckDB coerce a
    literal: '8' to 8 for a number column, 'true' to TRUE for a boolean one; refused
    where they refuse (a number or boolean compared with a text column, text that is no
    number). Without a schema (or for expressions), the literal is kept as written."""
    types = _SCHEMA.get()
    if not types or not isinstance(target, P.Col) or value is None:
        return value
    t = types.get(target.name)
    name = target.name
    if t in ("int", "float"):
        if isinstance(value, bool):
            raise QueryError(f"column {name!r} holds numbers; it cannot be compared with "
                             f"{'TRUE' if value else 'FALSE'}{_near(at)}")
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                pass
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            if math.isfinite(f):
                return f
            raise QueryError(f"{value!r} is not a number, and column {name!r} holds numbers"
                             f"{_near(at)}; write a number, e.g. {name} = 8")
        return value
    if t == "str":
        if isinstance(value, bool) or isinstance(value, (int, float)):
            shown = ("TRUE" if value else "FALSE") if isinstance(value, bool) else repr(value)
            raise QueryError(
                f"column {name!r} holds text; it cannot be compared with {shown}{_near(at)}: "
                f"write the value as text in single quotes, e.g. '{str(value).lower() if isinstance(value, bool) else value}'"
            )
        return value
    if t == "bool":
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise QueryError(f"{value!r} is not a boolean, and column {name!r} holds booleans"
                             f"{_near(at)}; write TRUE or FALSE")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value in (0, 1):
                return bool(value)
            raise QueryError(f"column {name!r} holds booleans; write TRUE or FALSE, not "
                             f"{value!r}{_near(at)}")
    return value


def _near(node: exp.Expression) -> str:
    """Where ``node`` is, or (TRUE / FALSE carry no position) where its parent is."""
    w = _where(node)
    while not w and node.parent is not None:
        node = node.parent
        w = _where(node)
    return w
