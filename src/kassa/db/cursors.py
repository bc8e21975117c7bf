"""Named SQL for list cursors: does the object a ``starting_after``/``ending_before`` names
exist for this merchant (an unknown cursor is a 400, as at Stripe, not an empty page)."""

from __future__ import annotations

from kassa.db.pool import Conn

# the tables whose lists page by object id (each has id and merchant_id)
TABLES = frozenset({"payment_intents", "charges", "refunds", "events",
                    "balance_transactions", "disputes", "webhook_endpoints", "payouts",
                    "customers", "routing_configs", "psp_accounts"})


async def object_exists(conn: Conn, *, table: str, merchant_id: str, object_id: str) -> bool:
    if table not in TABLES:
        raise ValueError(f"not a paged table: {table}")
    return bool(await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND merchant_id = $2)",
        object_id, merchant_id))


async def delivery_exists(conn: Conn, *, merchant_id: str, endpoint_id: str,
                          delivery_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries"
        " WHERE id = $1 AND endpoint_id = $2 AND merchant_id = $3)",
        delivery_id, endpoint_id, merchant_id))
