"""Named SQL for merchants' webhook endpoints (migration 0003)."""

from __future__ import annotations

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds

_ENDPOINT_COLUMNS = ("id, merchant_id, url, description, metadata, enabled_events, status, created,"
                     " stripe_signature")  # stripe_signature: migration 0009_stripe_wire


async def lock_merchant(conn: asyncpg.Connection, merchant_id: str) -> bool:
    """Serialises endpoint creation per merchant (the per-merchant limit); inside a
    transaction. NO KEY UPDATE does not block the key-share locks of foreign keys."""
    return bool(await conn.fetchval(
        "SELECT true FROM merchants WHERE id = $1 FOR NO KEY UPDATE", merchant_id))


async def count_endpoints(conn: Conn, merchant_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1", merchant_id))


async def insert_endpoint(conn: Conn, *, endpoint_id: str, merchant_id: str, url: str,
                          description: str | None, metadata: dict[str, str],
                          enabled_events: list[str], secret: str, created: int,
                          stripe_signature: bool = True) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO webhook_endpoints (id, merchant_id, url, description, metadata,"
        " enabled_events, status, secret, created, stripe_signature)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'enabled', $7, $8, $9)"
        f" RETURNING {_ENDPOINT_COLUMNS}",
        endpoint_id, merchant_id, url, description, metadata, enabled_events, secret, created,
        stripe_signature)
    return row


async def get_endpoint(conn: Conn, *, merchant_id: str, endpoint_id: str,
                       for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
        f" WHERE id = $1 AND merchant_id = $2{lock}", endpoint_id, merchant_id)
    return row


async def list_endpoints(conn: Conn, *, merchant_id: str, limit: int,
                         starting_after: str | None, ending_before: str | None,
                         created: Bounds | None = None) -> tuple[list[asyncpg.Record], bool]:
    """Newest first, cursor-paginated by id like Stripe; returns (rows, has_more)."""
    return await fetch_page(
        conn, select=f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints",
        table="webhook_endpoints", merchant_id=merchant_id, limit=limit,
        starting_after=starting_after, ending_before=ending_before,
        bounds=[("created", created)])


async def update_endpoint(conn: Conn, *, merchant_id: str, endpoint_id: str, url: str,
                          description: str | None, metadata: dict[str, str],
                          enabled_events: list[str], status: str, stripe_signature: bool
                          ) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE webhook_endpoints SET url = $3, description = $4, metadata = $5,"
        " enabled_events = $6, status = $7, stripe_signature = $8"
        " WHERE id = $1 AND merchant_id = $2"
        f" RETURNING {_ENDPOINT_COLUMNS}",
        endpoint_id, merchant_id, url, description, metadata, enabled_events, status,
        stripe_signature)
    return row


async def delete_endpoint(conn: asyncpg.Connection, *, merchant_id: str, endpoint_id: str
                          ) -> bool:
    """The endpoint, its deliveries and their attempts (cascade); inside a transaction."""
    deleted = await conn.fetchval(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2 RETURNING true",
        endpoint_id, merchant_id)
    if not deleted:
        return False
    await conn.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id)
    return True


async def rotate_secret(conn: Conn, *, merchant_id: str, endpoint_id: str, secret: str,
                        grace_seconds: float) -> asyncpg.Record | None:
    """The current secret keeps signing for ``grace_seconds`` next to the new one (an older
    previous secret is dropped); no grace: it stops at once."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE webhook_endpoints SET"
        " previous_secret = CASE WHEN $4 > 0 THEN secret END,"
        " previous_secret_expires_at = CASE WHEN $4 > 0"
        "   THEN now() + make_interval(secs => $4) END,"
        " secret = $3"
        f" WHERE id = $1 AND merchant_id = $2 RETURNING {_ENDPOINT_COLUMNS}",
        endpoint_id, merchant_id, secret, float(grace_seconds))
    return row
