"""Named SQL for merchants and their API keys."""

from __future__ import annotations

import asyncpg

from kassa.db.pool import Conn


async def insert_merchant(conn: Conn, *, merchant_id: str, name: str, created: int) -> None:
    await conn.execute("INSERT INTO merchants (id, name, created) VALUES ($1, $2, $3)",
                       merchant_id, name, created)


async def insert_api_key(conn: Conn, *, key_id: str, merchant_id: str, kind: str,
                         key_hash: bytes, last4: str, created: int) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, merchant_id, kind, key_hash, last4, created)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        key_id, merchant_id, kind, key_hash, last4, created)


async def find_api_key(conn: Conn, key_hash: bytes) -> asyncpg.Record | None:
    # the merchant's settlement currency rides along (services/fx.py caches it): a
    # payment needs it, and reading it here costs no round trip of its own
    return await conn.fetchrow(
        "SELECT k.id, k.merchant_id, k.kind, k.livemode, m.settlement_currency"
        " FROM api_keys k JOIN merchants m ON m.id = k.merchant_id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL", key_hash)


async def get_merchant(conn: Conn, merchant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, name, created, settlement_currency FROM merchants WHERE id = $1",
        merchant_id)
