"""Named SQL for balance transactions: the merchant-facing lines of the ledger (written
with their posting, ops.PostLedger), and their flip from pending to available."""

from __future__ import annotations

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.domain.lists import Bounds

_BT_COLUMNS = ("id, merchant_id, amount, fee, net, currency, type, source, status,"
               " available_on, created, description, exchange_rate")


async def list_balance_transactions(conn: Conn, *, merchant_id: str, limit: int,
                                    starting_after: str | None, ending_before: str | None,
                                    type: str | None, source: str | None = None,
                                    currency: str | None = None, created: Bounds | None = None,
                                    payout: str | None = None
                                    ) -> tuple[list[asyncpg.Record], bool]:
    filters = [(f"{column} = {{}}", value) for column, value in (
        ("type", type), ("source", source), ("currency", currency), ("payout", payout))
        if value is not None]
    return await fetch_page(
        conn, select=f"SELECT {_BT_COLUMNS} FROM balance_transactions",
        table="balance_transactions", merchant_id=merchant_id, limit=limit,
        starting_after=starting_after, ending_before=ending_before, filters=filters,
        bounds=[("created", created)])


async def get_balance_transaction(conn: Conn, *, merchant_id: str, bt_id: str
                                  ) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_BT_COLUMNS} FROM balance_transactions WHERE id = $1 AND merchant_id = $2",
        bt_id, merchant_id)


async def claim_due_balance_transactions(conn: asyncpg.Connection, *, now: int, limit: int
                                         ) -> list[asyncpg.Record]:
    """Pending balance transactions whose funds are due; locked for this transaction."""
    return await conn.fetch(
        "UPDATE balance_transactions SET status = 'available' WHERE id IN ("
        " SELECT id FROM balance_transactions WHERE status = 'pending' AND available_on <= $1"
        " ORDER BY available_on LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, merchant_id, currency, net", now, limit)
