"""Named SQL for reading the outbox events (written by ops.InsertEvents)."""

from __future__ import annotations

from typing import Any

from kassa.db.pagination import Filter, fetch_page
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds


async def get_event(conn: Conn, *, merchant_id: str, event_id: str) -> dict[str, Any] | None:
    data: dict[str, Any] | None = await conn.fetchval(
        "SELECT data FROM events WHERE id = $1 AND merchant_id = $2", event_id, merchant_id)
    return data


async def list_events(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                      ending_before: str | None, type: str | None,
                      types: list[str] | None = None, created: Bounds | None = None
                      ) -> tuple[list[dict[str, Any]], bool]:
    filters: list[Filter] = []
    if type:
        if type.endswith(".*"):
            filters.append(("type LIKE {}", type[:-1] + "%"))
        else:
            filters.append(("type = {}", type))
    elif types:
        filters.append(("type = ANY({}::text[])", types))
    rows, more = await fetch_page(
        conn, select="SELECT data FROM events", table="events", merchant_id=merchant_id,
        limit=limit, starting_after=starting_after, ending_before=ending_before,
        filters=filters, bounds=[("created", created)])
    return [r["data"] for r in rows], more
