"""Cursor pagination of a merchant's objects, newest first, by id like Stripe."""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa.db.filters import bounds_sql
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds


async def list_objects(conn: Conn, *, table: str, columns: str, merchant_id: str, limit: int,
                       starting_after: str | None, ending_before: str | None,
                       where: str = "", args: tuple[Any, ...] = (),
                       created: Bounds | None = None) -> tuple[list[asyncpg.Record], bool]:
    """Newest first, cursor-paginated by id like Stripe; returns (rows, has_more)."""
    assert table in {"payment_intents", "refunds", "events", "balance_transactions"}
    params: list[Any] = [merchant_id, limit + 1, *args]
    cond = "merchant_id = $1" + (f" AND {where}" if where else "")
    cond += bounds_sql("created", created, params)
    order = "DESC"
    if starting_after is not None:
        params.append(starting_after)
        cond += (f" AND seq < (SELECT seq FROM {table} WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
    elif ending_before is not None:
        params.append(ending_before)
        cond += (f" AND seq > (SELECT seq FROM {table} WHERE id = ${len(params)}"
                 " AND merchant_id = $1)")
        order = "ASC"
    rows = await conn.fetch(
        f"SELECT {columns} FROM {table} WHERE {cond} ORDER BY seq {order} LIMIT $2", *params)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if order == "ASC":
        rows.reverse()
    return rows, has_more
