"""Named SQL for the request log: the merchant requests that were answered with an error,
each under its Request-Id (what an error's ``request_log_url`` reads)."""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa.db.pool import Conn


async def insert(conn: Conn, *, request_id: str, merchant_id: str, method: str, path: str,
                 status: int, idempotency_key: str | None, error: dict[str, Any] | None,
                 created: int) -> None:
    await conn.execute(
        "INSERT INTO request_logs (id, merchant_id, method, path, status, idempotency_key,"
        " error, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        request_id, merchant_id, method, path, status, idempotency_key, error, created)


async def get(conn: Conn, *, merchant_id: str, request_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, method, path, status, idempotency_key, error, created FROM request_logs"
        " WHERE id = $1 AND merchant_id = $2", request_id, merchant_id)
    return row


async def expire(conn: Conn, *, older_than: int, limit: int = 5000) -> int:
    status = await conn.execute(
        "DELETE FROM request_logs WHERE id = ANY(ARRAY("
        " SELECT id FROM request_logs WHERE created < $1 LIMIT $2))", older_than, limit)
    return int(status.split()[-1])
