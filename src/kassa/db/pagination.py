"""Cursor pagination of a merchant's objects, newest first, by id like Stripe: the one query
shape every list endpoint runs (``fetch_page``).

A page is the rows of one merchant (``$1``) that pass the list's filters and ``created`` (or
other) bounds (db/filters.py), ordered by insertion (``seq``), at most ``limit`` of them plus
one to tell whether there are more (``$2``). ``starting_after`` pages towards older objects,
``ending_before`` towards newer ones (given both, ``starting_after`` wins); the cursor is an
object id, looked up in the same table for the same merchant (an unknown cursor is refused
before this runs: db/cursors.py). Values travel only as bind parameters; every SQL fragment
here is kassa's, never the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from kassa.db.cursors import TABLES
from kassa.db.filters import bounds_sql
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds

# a filter: a condition with one ``{}`` where its value's placeholder goes, and the value
Filter = tuple[str, Any]


async def fetch_page(conn: Conn, *, select: str, table: str, merchant_id: str, limit: int,
                     starting_after: Any, ending_before: Any,
                     filters: Sequence[Filter] = (),
                     bounds: Sequence[tuple[str, Bounds | None]] = (),
                     alias: str = "", cursor_is_key: bool = False, key: str = "seq"
                     ) -> tuple[list[asyncpg.Record], bool]:
    """One page of ``select`` (``SELECT … FROM table [alias] [joins]``), newest first;
    returns (rows, has_more).

    ``filters``: ``("status = {}", value)``, each ANDed (``None`` values are the caller's to
    leave out). ``bounds``: (column or expression, Bounds) pairs. ``alias``: the table's alias
    in ``select`` (``"c"``). ``key``: the column the page is ordered by; with
    ``cursor_is_key`` the cursors are values of ``key`` itself (webhook deliveries' ids)
    rather than object ids looked up in ``table``."""
    if table not in TABLES and not cursor_is_key:
        raise ValueError(f"not a paged table: {table}")
    a = f"{alias}." if alias else ""
    params: list[Any] = [merchant_id, limit + 1]
    cond = f"{a}merchant_id = $1"
    for sql, value in filters:
        params.append(value)
        cond += " AND " + sql.format(f"${len(params)}")
    for column, bound in bounds:
        cond += bounds_sql(column, bound, params)
    descending = starting_after is not None or ending_before is None  # both: starting_after
    cursor = starting_after if descending else ending_before
    if cursor is not None:
        params.append(cursor)
        side = "<" if descending else ">"
        if cursor_is_key:
            cond += f" AND {a}{key} {side} ${len(params)}"
        else:
            cond += (f" AND {a}{key} {side} (SELECT {key} FROM {table}"
                     f" WHERE id = ${len(params)} AND merchant_id = $1)")
    rows = await conn.fetch(
        f"{select} WHERE {cond} ORDER BY {a}{key} {'DESC' if descending else 'ASC'} LIMIT $2",
        *params)
    page = rows[:limit]
    if not descending:
        page.reverse()
    return page, len(rows) > limit
