"""Named SQL for routing configurations (migration 0014): versioned, one active per merchant."""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds

_COLUMNS = ("id, merchant_id, version, name, rules, default_route, active, activated_at,"
            " created")


def _row(r: asyncpg.Record) -> dict[str, Any]:
    return dict(r)  # the pool's jsonb codec gives rules and default_route as Python


async def insert_config(conn: asyncpg.Connection, *, config_id: str, merchant_id: str,
                        name: str | None, rules: list[dict[str, Any]],
                        default_route: dict[str, Any], created: int) -> dict[str, Any]:
    """The next version of the merchant's configuration, inactive. The merchant's row is
    locked while the version is picked, so two creations queue instead of colliding on
    UNIQUE (merchant_id, version)."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE", merchant_id)
        row = await conn.fetchrow(
            "INSERT INTO routing_configs (id, merchant_id, version, name, rules, default_route,"
            " created)"
            " SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4::jsonb, $5::jsonb, $6"
            " FROM routing_configs WHERE merchant_id = $2"
            f" RETURNING {_COLUMNS}",
            config_id, merchant_id, name, rules, default_route, created)
    return _row(row)


async def get_config(conn: Conn, *, merchant_id: str, config_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM routing_configs WHERE id = $1 AND merchant_id = $2",
        config_id, merchant_id)
    return None if row is None else _row(row)


async def get_active(conn: Conn, merchant_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM routing_configs WHERE merchant_id = $1 AND active",
        merchant_id)
    return None if row is None else _row(row)


async def active_configs(conn: Conn) -> list[dict[str, Any]]:
    """Every merchant's active configuration (one per merchant): the router's snapshot."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM routing_configs WHERE active")
    return [_row(r) for r in rows]


async def activate(conn: asyncpg.Connection, *, merchant_id: str, config_id: str,
                   now: int) -> dict[str, Any] | None:
    """Make ``config_id`` the merchant's active configuration (the previous one stops
    being active in the same transaction). None: no such configuration. Activating the
    active one again changes nothing. The merchant's row is locked first: two activations
    racing queue (else both could clear the old one and collide on the one-active index)."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE", merchant_id)
        target = await conn.fetchrow(
            "SELECT active FROM routing_configs WHERE id = $1 AND merchant_id = $2 FOR UPDATE",
            config_id, merchant_id)
        if target is None:
            return None
        if not target["active"]:
            await conn.execute(
                "UPDATE routing_configs SET active = false"
                " WHERE merchant_id = $1 AND active", merchant_id)
            await conn.execute(
                "UPDATE routing_configs SET active = true, activated_at = $2 WHERE id = $1",
                config_id, now)
    return await get_config(conn, merchant_id=merchant_id, config_id=config_id)


async def list_configs(conn: Conn, *, merchant_id: str, limit: int,
                       starting_after: str | None, ending_before: str | None,
                       created: Bounds | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, cursor-paginated by id like Stripe; returns (rows, has_more)."""
    rows, more = await fetch_page(conn, select=f"SELECT {_COLUMNS} FROM routing_configs",
                                  table="routing_configs", merchant_id=merchant_id,
                                  limit=limit, starting_after=starting_after,
                                  ending_before=ending_before, bounds=[("created", created)])
    return [_row(r) for r in rows], more


async def recorded_authorizations(conn: Conn, *, merchant_id: str, since: int,
                                  limit: int) -> list[asyncpg.Record]:
    """The merchant's authorisation attempts since ``since`` (unix seconds), oldest first,
    with what routing looks at (the read side of `kassa routing backtest`)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT a.payment_intent_id, a.psp, a.status, a.error, a.amount, a.currency,"
        " p.capture_method, p.metadata, c.card"
        " FROM attempts a JOIN payment_intents p ON p.id = a.payment_intent_id"
        " LEFT JOIN charges c ON c.id = a.id"
        " WHERE a.merchant_id = $1 AND a.operation = 'authorize'"
        " AND a.created_at >= to_timestamp($2)"
        " ORDER BY a.created_at, a.id LIMIT $3", merchant_id, since, limit)
    return rows
