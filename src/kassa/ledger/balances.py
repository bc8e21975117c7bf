"""Balances from the ledger: the sum of an account's entries per currency and layer."""

from __future__ import annotations

import asyncpg

from kassa.db.pool import Conn


async def account_balances(conn: Conn, accounts: list[str]) -> list[asyncpg.Record]:
    """Balance per (account, currency, layer) = sum of its entries (index-only scan)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT account, currency, layer, sum(amount)::bigint AS total FROM ledger_entries"
        " WHERE account = ANY($1::text[]) GROUP BY account, currency, layer", accounts)
    return rows
