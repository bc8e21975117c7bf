"""A parsed search query (domain/search.py) as one SQL statement over a resource's table.

Each searchable field names its column; values only ever travel as bind parameters. Results
are newest first and paged by an opaque token holding the last row's ``seq`` (Stripe's
``next_page``): a page never repeats or skips a row that existed when the first page was read.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import asyncpg

from kassa.db.pool import Conn
from kassa.domain.errors import InvalidRequest
from kassa.domain.search import Clause, FieldKind, Query


@dataclass(frozen=True, slots=True)
class SearchField:
    kind: FieldKind
    column: str  # a column of the table (never user input); "metadata" for metadata['key']
    lower: bool = False  # compare case-insensitively (currencies are stored lower-case)


@dataclass(frozen=True, slots=True)
class Searchable:
    table: str
    columns: str  # what to select
    fields: dict[str, SearchField]
    scope: str = ""  # a fixed condition of kassa's (e.g. "NOT deleted"), never user input

    @property
    def kinds(self) -> dict[str, FieldKind]:
        return {name: f.kind for name, f in self.fields.items()}


def _condition(c: Clause, f: SearchField, params: list[Any]) -> str:
    def bind(v: Any) -> str:
        params.append(v)
        return f"${len(params)}"

    if c.field == "metadata":
        key = bind(c.key)
        if c.value is None:
            expr = f"NOT ({f.column} ? {key})"
        else:
            expr = f"({f.column} ->> {key}) = {bind(c.value)}"
    elif c.value is None:
        expr = f"{f.column} IS NULL"
    elif c.op == "~":
        expr = f"strpos(lower({f.column}), lower({bind(c.value)})) > 0"
    elif c.op == ":":
        value = c.value.lower() if f.lower and isinstance(c.value, str) else c.value
        expr = f"{f.column} = {bind(value)}"
    else:
        expr = f"{f.column} {c.op} {bind(c.value)}"
    # a negated clause also matches rows where the column is NULL, as "not equal" reads
    return f"NOT coalesce({expr}, false)" if c.negated else f"coalesce({expr}, false)"


def encode_page(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_page(page: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(page + "=" * (-len(page) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix != "seq" or not seq.isdigit():
            raise ValueError(page)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(f"Invalid page: {page!r} is not a page token this search "
                             "returned.", param="page") from None


async def search(conn: Conn, spec: Searchable, *, merchant_id: str, query: Query, limit: int,
                 page: str | None) -> tuple[list[asyncpg.Record], str | None]:
    """One page of rows matching ``query``, and the next page's token (None: the last)."""
    params: list[Any] = [merchant_id, limit + 1]
    conditions = [_condition(c, spec.fields[c.field], params) for c in query.clauses]
    joined = " OR ".join(conditions) if query.any_of else " AND ".join(conditions)
    where = f"merchant_id = $1 AND ({joined})" + (f" AND {spec.scope}" if spec.scope else "")
    if page is not None:
        params.append(decode_page(page))
        where += f" AND seq < ${len(params)}"
    rows = await conn.fetch(
        f"SELECT seq, {spec.columns} FROM {spec.table} WHERE {where} ORDER BY seq DESC LIMIT $2",
        *params)
    if len(rows) > limit:
        return rows[:limit], encode_page(rows[limit - 1]["seq"])
    return rows, None
