"""The run filter language, parsed by a grammar and compiled to SQL expressions.

    metrics.auc > 0.8 and params.model = 'rf' and not tags.stage = 'dev'
    (metrics.loss < 0.2 or metrics.`val/loss` < 0.3) and status != 'FAILED'
    params.model in ('rf', 'gbm') and start_time >= '2026-11-01' and tags.note is null

Fields are ``metrics.<key>`` (latest value, numbers), ``params.<key>`` (compared as
numbers when the literal is a number, else as text), ``tags.<key>`` (text) and run
attributes (``status``, ``run_name``, ``run_id``, ``user``, ``start_time``, ...).
Keys with other characters go in backticks. Values are bound parameters: nothing the
user types is ever pasted into SQL.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput, VisitError
from sqlalchemy import Select, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from loopml.errors import ValidationError
from loopml.store.models import ExperimentRow, LatestMetricRow, ParamRow, RunRow, TagRow

__all__ = [
    "Field",
    "compile_search",
    "count_matches",
    "parse_filter",
    "parse_order_by",
    "run_search",
]

_GRAMMAR = r"""
?start: expr
?expr: or_
?or_: and_ (OR and_)*
?and_: not_ (AND not_)*
?not_: NOT not_          -> negate
     | atom
?atom: field OP value                                  -> compare
     | field NOT? LIKE value                           -> like
     | field NOT? ILIKE value                          -> ilike
     | field NOT? IN "(" value ("," value)* ")"        -> member
     | field IS NOT? NULL                              -> nullness
     | "(" expr ")"
field: FIELD
value: NUMBER | STRING
order: field DIRECTION?

OR.2: /or(?![\w.`])/i
AND.2: /and(?![\w.`])/i
NOT.2: /not(?![\w.`])/i
IN.2: /in(?![\w.`])/i
IS.2: /is(?![\w.`])/i
NULL.2: /null(?![\w.`])/i
LIKE.2: /like(?![\w.`])/i
ILIKE.2: /ilike(?![\w.`])/i
DIRECTION.2: /(asc|desc)(?![\w.`])/i
OP: "==" | "!=" | "<>" | "<=" | ">=" | "=" | "<" | ">"
FIELD: /(metrics?|params?|tags?|attributes?|attr)\.(`[^`]+`|"[^"]+"|[A-Za-z_][\w\-\/.:]*)/i
     | /[A-Za-z_]\w*/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/ | /[+-]?inf(inity)?/i
STRING: /'([^'\\]|\\.)*'/ | /"([^"\\]|\\.)*"/
%ignore /\s+/
"""

_ATTRIBUTES = {
    "run_id": RunRow.run_id,
    "run_name": RunRow.name,
    "name": RunRow.name,
    "status": RunRow.status,
    "user": RunRow.user,
    "source": RunRow.source,
    "start_time": RunRow.start_time,
    "end_time": RunRow.end_time,
    "parent_run_id": RunRow.parent_run_id,
    "experiment_id": RunRow.experiment_id,
    "git_commit": RunRow.git_commit,
}
_TIME_ATTRIBUTES = {"start_time", "end_time"}
_KINDS = {
    "metric": "metrics", "metrics": "metrics", "param": "params", "params": "params",
    "tag": "tags", "tags": "tags", "attr": "attributes", "attribute": "attributes",
    "attributes": "attributes",
}  # fmt: skip
_EXAMPLE = "metrics.auc > 0.8 and params.model = 'rf'"


@dataclass(frozen=True)
class Field:
    """A filterable or sortable thing: ``kind`` is metrics, params, tags or attributes."""

    kind: str
    key: str

    def __str__(self) -> str:
        return self.key if self.kind == "attributes" else f"{self.kind}.{self.key}"


@functools.cache
def _parser(start: str) -> Lark:
    return Lark(_GRAMMAR, start=start, parser="lalr", maybe_placeholders=False)


def parse_filter(text: str) -> Any:
    """Parses a filter string into a small tree of tuples; raises ValidationError on errors."""
    try:
        tree = _parser("start").parse(text)
        return _ToAst().transform(tree)
    except UnexpectedInput as error:
        column = getattr(error, "column", "?")
        context = error.get_context(text).rstrip()
        raise ValidationError(
            f"Cannot read the filter at column {column}:\n{context}\n"
            f"Write comparisons joined by and/or, for example: {_EXAMPLE}"
        ) from None
    except VisitError as error:
        if isinstance(error.orig_exc, ValidationError):
            raise error.orig_exc from None
        raise
    except LarkError as error:
        raise ValidationError(f"Cannot read the filter: {error}. Example: {_EXAMPLE}") from None


def parse_order_by(items: list[str] | None) -> list[tuple[Field, bool]]:
    """Parses ``["metrics.auc desc", "start_time"]`` into (field, descending) pairs."""
    result = []
    for item in items or []:
        try:
            tree = _parser("order").parse(item)
        except LarkError:
            raise ValidationError(
                f"Cannot read order_by item {item!r}; write a field and an optional "
                "direction, for example 'metrics.auc desc'."
            ) from None
        field_node, *direction = tree.children
        field = _field(field_node.children[0])  # type: ignore[union-attr,arg-type]
        descending = bool(direction) and str(direction[0]).lower() == "desc"
        result.append((field, descending))
    return result


def _field(token: Token) -> Field:
    text = str(token)
    if "." in text:
        prefix, key = text.split(".", 1)
        kind = _KINDS.get(prefix.lower())
        if kind is not None:
            if key[:1] in '`"' and key[-1:] == key[:1]:
                key = key[1:-1]
            if kind == "attributes":
                return _attribute(key)
            return Field(kind, key)
    return _attribute(text)


def _attribute(name: str) -> Field:
    if name.lower() not in _ATTRIBUTES:
        raise ValidationError(
            f"Unknown field {name!r}. Use metrics.<key>, params.<key>, tags.<key> or one of "
            f"the run attributes: {', '.join(sorted(_ATTRIBUTES))}."
        )
    return Field("attributes", name.lower())


def _literal(token: Token) -> float | str:
    text = str(token)
    if token.type == "NUMBER":
        return float(text)
    body = text[1:-1]
    return body.replace("\\" + text[0], text[0]).replace("\\\\", "\\")


@v_args(inline=True)
class _ToAst(Transformer[Token, Any]):
    def field(self, token: Token) -> Field:
        return _field(token)

    def value(self, token: Token) -> float | str:
        return _literal(token)

    def compare(self, field: Field, op: Token, value: float | str) -> Any:
        symbol = {"==": "=", "<>": "!="}.get(str(op), str(op))
        return ("compare", field, symbol, value)

    def like(self, field: Field, *rest: Any) -> Any:
        return ("like", field, len(rest) == 3, rest[-1], False)

    def ilike(self, field: Field, *rest: Any) -> Any:
        return ("like", field, len(rest) == 3, rest[-1], True)

    def member(self, field: Field, *rest: Any) -> Any:
        negated = isinstance(rest[0], Token) and rest[0].type == "NOT"
        values = [item for item in rest if not isinstance(item, Token)]
        return ("member", field, negated, values)

    def nullness(self, field: Field, *rest: Token) -> Any:
        return ("null", field, any(t.type == "NOT" for t in rest))

    def negate(self, _not: Token, inner: Any) -> Any:
        return ("not", inner)

    def or_(self, *items: Any) -> Any:
        return ("or", [item for item in items if not isinstance(item, Token)])

    def and_(self, *items: Any) -> Any:
        return ("and", [item for item in items if not isinstance(item, Token)])


# -- compilation ---------------------------------------------------------------
def _to_sql(node: Any) -> Any:
    kind = node[0]
    if kind == "and":
        return and_(*(_to_sql(item) for item in node[1]))
    if kind == "or":
        return or_(*(_to_sql(item) for item in node[1]))
    if kind == "not":
        return not_(_to_sql(node[1]))
    field: Field = node[1]
    if field.kind == "attributes":
        return _condition(_ATTRIBUTES[field.key], node, field)
    table: Any
    column: Any
    table, column = {
        "metrics": (LatestMetricRow, LatestMetricRow.value),
        "params": (ParamRow, ParamRow.value),
        "tags": (TagRow, TagRow.value),
    }[field.kind]
    located = exists().where(table.run_id == RunRow.run_id, table.key == field.key)
    if kind == "null":
        return located if node[2] else ~located
    if field.kind == "params" and _numeric(node):
        column = ParamRow.value_number
    return located.where(_condition(column, node, field))


def _numeric(node: Any) -> bool:
    if node[0] == "compare":
        return isinstance(node[3], float)
    if node[0] == "member":
        return all(isinstance(v, float) for v in node[3])
    return False


def _condition(column: Any, node: Any, field: Field) -> Any:
    kind = node[0]
    if kind == "null":
        return column.is_not(None) if node[2] else column.is_(None)
    if kind == "like":
        _, _, negated, pattern, insensitive = node
        pattern = str(pattern)
        test = column.ilike(pattern) if insensitive else column.like(pattern)
        return ~test if negated else test
    if kind == "member":
        values = [_coerce(field, value) for value in node[3]]
        return column.not_in(values) if node[2] else column.in_(values)
    _, _, op, value = node
    value = _coerce(field, value)
    return {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }[op]()


def _coerce(field: Field, value: float | str) -> Any:
    if field.kind == "metrics" and not isinstance(value, float):
        raise ValidationError(f"{field} holds numbers; compare it with a number, not {value!r}.")
    if field.kind == "tags" and isinstance(value, float):
        return _number_text(value)
    if field.kind == "params" and isinstance(value, float):
        return value
    if field.kind == "attributes":
        if field.key in _TIME_ATTRIBUTES:
            return value if isinstance(value, float) else _parse_time(value)
        if field.key == "experiment_id":
            return int(value) if isinstance(value, float) else value
        if isinstance(value, float):
            return _number_text(value)
    return value


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _parse_time(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"Cannot read {text!r} as a time; use milliseconds since the epoch or an ISO "
            "date such as '2026-11-01' or '2026-11-01T12:00:00'."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _required_metrics(node: Any) -> set[str]:
    """Metric keys every matching run must have (comparisons in the top-level AND)."""
    items = node[1] if node and node[0] == "and" else [node] if node else []
    return {
        item[1].key
        for item in items
        if item[0] in ("compare", "member") and item[1].kind == "metrics"
    }


def compile_search(
    experiment_ids: list[int] | None,
    filter_tree: Any,
    order: list[tuple[Field, bool]],
    include_deleted: bool,
) -> list[Select[Any]]:
    """Builds the ``SELECT run_id ...`` queries whose results, one after the other, are
    the matching runs in the requested order (the caller pages through them).

    Sorting by a metric is split in two: runs that have the metric, joined so the
    database walks the ``(key, value)`` index in order and stops after one page, then
    the runs without it. One outer join would sort every matching run instead.
    """
    base = select(RunRow.run_id)
    if experiment_ids is not None:
        base = base.where(RunRow.experiment_id.in_(experiment_ids))
    if not include_deleted:
        live = select(ExperimentRow.experiment_id).where(ExperimentRow.deleted_at.is_(None))
        base = base.where(RunRow.deleted_at.is_(None), RunRow.experiment_id.in_(live))
    if filter_tree is not None:
        base = base.where(_to_sql(filter_tree))
    if not order or order[0][0].kind != "metrics":
        return [_ordered(base, order, inner=None)]
    first = order[0][0]
    having = _ordered(base, order, inner=first.key)
    if first.key in _required_metrics(filter_tree):
        return [having]
    located = exists().where(
        LatestMetricRow.run_id == RunRow.run_id, LatestMetricRow.key == first.key
    )
    return [having, _ordered(base.where(~located), order[1:], inner=None)]


def _ordered(query: Select[Any], order: list[tuple[Field, bool]], inner: str | None) -> Any:
    sort: list[Any] = []
    for position, (field, descending) in enumerate(order):
        if field.kind == "attributes":
            column: Any = _ATTRIBUTES[field.key]
        else:
            table: Any = {"metrics": LatestMetricRow, "params": ParamRow, "tags": TagRow}[
                field.kind
            ]
            alias: Any = aliased(table, name=f"order_{position}")
            on = and_(alias.run_id == RunRow.run_id, alias.key == field.key)
            joined = position == 0 and field.kind == "metrics" and field.key == inner
            query = query.join(alias, on) if joined else query.outerjoin(alias, on)
            column = alias.value
            if field.kind == "params":  # numbers in number order first, then text
                number = alias.value_number
                sort.append((number.desc() if descending else number.asc()).nulls_last())
        sort.append((column.desc() if descending else column.asc()).nulls_last())
    return query.order_by(*sort, RunRow.start_time.desc(), RunRow.run_id)


def count_matches(session: Session, queries: list[Select[Any]]) -> int:
    """How many runs the queries of ``compile_search`` hold together (they never overlap)."""
    return sum(
        int(session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0)
        for q in queries
    )


def run_search(session: Session, queries: list[Select[Any]], limit: int, offset: int) -> list[str]:
    """One page (``limit`` runs after skipping ``offset``) across the queries in turn."""
    found: list[str] = []
    for query in queries:
        if len(found) >= limit:
            break
        page = list(session.scalars(query.limit(limit - len(found)).offset(offset)))
        if not page and offset:
            # This part holds no more than `offset` runs: skip past all of them.
            total = session.scalar(
                select(func.count()).select_from(query.order_by(None).subquery())
            )
            offset = max(0, offset - int(total or 0))
        else:
            offset = 0
        found += [str(run_id) for run_id in page]
    return found
