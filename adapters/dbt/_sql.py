"""SQL text helpers: normalization for code versions and the warehouse queries insync runs.

Only DuckDB and PostgreSQL get checksum/observation queries; both dialects accept the same
`information_schema` and `string_agg(... order by ...)` forms, so the differences stay small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from insync.core import ConfigError

__all__ = [
    "SUPPORTED_WAREHOUSES",
    "batch_query",
    "checksum_expression",
    "existing_relations_query",
    "max_expression",
    "normalize_sql",
    "observe_expression",
    "quote_literal",
    "windows_query",
]

SUPPORTED_WAREHOUSES: Final = ("duckdb", "postgres")

# One token: a quoted string/identifier, a comment, a word/number, or one other character.
_TOKEN = re.compile(
    r"""
    (?P<str>'(?:[^']|'')*'?)            # 'string', '' escapes a quote
    |(?P<ident>"(?:[^"]|"")*"?)         # "quoted identifier"
    |(?P<btick>`[^`]*`?)                # `backtick identifier`
    |(?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)  # PostgreSQL $tag$ ... $tag$
    |(?P<line>--[^\n]*)                 # -- comment
    |(?P<block>/\*.*?(?:\*/|\Z))        # /* comment */
    |(?P<word>[A-Za-z0-9_.$]+)          # keywords, names, numbers
    |(?P<space>\s+)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def normalize_sql(sql: str) -> str:
    """Rendered SQL with comments removed and whitespace canonical, strings kept verbatim.

    Tokens are joined by one space, so `a+b`, `a + b` and `a\\n  +  b` are the same code;
    keywords are lower-cased (SQL keywords are case-insensitive), quoted text is not.
    """
    tokens: list[str] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        if kind in ("line", "block", "space"):
            continue
        text = match.group()
        if kind == "word":
            text = text.lower()
        tokens.append(text)
    # A trailing semicolon is not part of the model's logic.
    while tokens and tokens[-1] == ";":
        tokens.pop()
    return " ".join(tokens)


def quote_literal(text: str) -> str:
    """A SQL string literal, valid in DuckDB and PostgreSQL."""
    return "'" + text.replace("'", "''") + "'"


def _text_type(warehouse: str) -> str:
    return "varchar" if warehouse == "duckdb" else "text"


def _columns_signature(warehouse: str, database: str | None, schema: str, name: str) -> str:
    """Column names and types in order: a rename or type change is a content change too."""
    where = [f"lower(table_schema) = lower({quote_literal(schema)})",
             f"lower(table_name) = lower({quote_literal(name)})"]
    if database and warehouse == "duckdb":
        where.append(f"lower(table_catalog) = lower({quote_literal(database)})")
    return (
        "(select string_agg(column_name || ' ' || data_type, ',' order by ordinal_position)"
        f" from information_schema.columns where {' and '.join(where)})"
    )


def checksum_expression(
    warehouse: str, relation: str, database: str | None, schema: str, name: str
) -> str:
    """A scalar subquery giving an order-independent checksum of a relation's rows and columns.

    Rows are hashed one by one and the hashes summed (not xor-ed, so duplicate rows count),
    together with the row count and the column signature.
    """
    text = _text_type(warehouse)
    if warehouse == "duckdb":
        rows = (
            f"(select count(*)::varchar || ':' || coalesce(sum(hash(t)::hugeint), 0)::varchar"
            f" || ':' || coalesce(bit_xor(hash(t)), 0)::varchar from {relation} as t)"
        )
    elif warehouse == "postgres":
        rows = (
            "(select count(*)::text"
            " || ':' || coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text"
            " || ':' || coalesce(sum(('x' || substr(md5(t::text), 16, 15))::bit(60)::bigint), 0)::text"
            f" from {relation} as t)"
        )
    else:
        raise _unsupported(warehouse)
    columns = _columns_signature(warehouse, database, schema, name)
    return f"(cast({rows} as {text}) || '|' || coalesce({columns}, ''))"


def observe_expression(warehouse: str, query: str) -> str:
    """A scalar subquery turning any query's result rows into one canonical text."""
    text = _text_type(warehouse)
    inner = query.strip().rstrip(";")
    return (
        f"(select count(*)::{text} || ':' || coalesce(string_agg(cast(t as {text}), chr(31)"
        f" order by cast(t as {text})), '') from ({inner}) as t)"
    )


def max_expression(warehouse: str, relation: str, column: str) -> str:
    """Latest value of a `loaded_at_field` (an expression, as dbt allows), as text."""
    text = _text_type(warehouse)
    return f"(select cast(max({column}) as {text}) from {relation})"


def batch_query(expressions: Sequence[tuple[str, str]]) -> str:
    """One query answering many scalar expressions: rows of (name, value)."""
    return " union all ".join(
        f"select {quote_literal(name)} as insync_name, {expr} as insync_value"
        for name, expr in expressions
    )


def existing_relations_query(schemas: Iterable[str]) -> str:
    """Every table and view in the given schemas, as (name, 'schema.table') rows, lower-cased."""
    wanted = ", ".join(sorted({quote_literal(s.lower()) for s in schemas}))
    return (
        "select 'relation' as insync_name,"
        " lower(table_schema) || '.' || lower(table_name) as insync_value"
        f" from information_schema.tables where lower(table_schema) in ({wanted})"
    )


_TRUNC: Final = {"hourly": "hour", "daily": "day", "monthly": "month"}
_KEY_FORMAT: Final = {
    "duckdb": {"hourly": "%Y-%m-%d-%H:00", "daily": "%Y-%m-%d", "monthly": "%Y-%m-%d"},
    "postgres": {"hourly": "YYYY-MM-DD-HH24:00", "daily": "YYYY-MM-DD", "monthly": "YYYY-MM-DD"},
}


def windows_query(warehouse: str, name: str, relation: str, column: str, cadence: str,
                  since: str, until: str) -> str:
    """Rows (`name|window key`, checksum) for each window of `column` in [since, until) holding
    rows: the per-batch versions of a source read by microbatch models.

    Keys are formatted as insync's time partitions name them (UTC, as dbt cuts batches); the
    checksum is the whole-table one restricted to the window's rows.
    """
    if warehouse not in SUPPORTED_WAREHOUSES:
        raise _unsupported(warehouse)
    trunc = f"date_trunc('{_TRUNC[cadence]}', {column})"
    fmt = quote_literal(_KEY_FORMAT[warehouse][cadence])
    key = f"strftime({trunc}, {fmt})" if warehouse == "duckdb" else f"to_char({trunc}, {fmt})"
    if warehouse == "duckdb":
        rows = ("count(*)::varchar || ':' || coalesce(sum(hash(t)::hugeint), 0)::varchar"
                " || ':' || coalesce(bit_xor(hash(t)), 0)::varchar")
    elif warehouse == "postgres":
        rows = ("count(*)::text"
                " || ':' || coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text"
                " || ':' || coalesce(sum(('x' || substr(md5(t::text), 16, 15))::bit(60)::bigint), 0)::text")
    else:
        raise _unsupported(warehouse)
    return (
        f"select {quote_literal(name + '|')} || {key} as insync_name, {rows} as insync_value"
        f" from {relation} as t where {column} >= {quote_literal(since)}"
        f" and {column} < {quote_literal(until)} group by {key}"
    )


def _unsupported(warehouse: str) -> ConfigError:
    return ConfigError(
        f"insync has no checksum query for the {warehouse or 'unknown'} warehouse (it has for "
        f"{', '.join(SUPPORTED_WAREHOUSES)}); remove meta.insync.data_version: content, or "
        "declare meta.insync.observe with a query of your own"
    )
