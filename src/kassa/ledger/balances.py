"""Balances from the ledger: the sum of an account's entries per currency and layer, and
the merchant's balance (available and pending) read from them."""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from kassa.db.pool import Conn
from kassa.domain import ledger
from kassa.domain.money import Money


async def account_balances(conn: Conn, accounts: list[str]) -> list[asyncpg.Record]:
    """Balance per (account, currency, layer) = sum of its entries (index-only scan)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT account, currency, layer, sum(amount)::bigint AS total FROM ledger_entries"
        " WHERE account = ANY($1::text[]) GROUP BY account, currency, layer", accounts)
    return rows


async def merchant_balance(conn: Conn, merchant_id: str
                           ) -> tuple[dict[str, int], dict[str, int]]:
    """The merchant's (available, pending) money per currency, as Stripe's balance shows it:
    posted entries only (authorisation holds are not money yet), and the sign flipped
    (the merchant's accounts are liabilities, credit-normal)."""
    rows = await account_balances(
        conn, [ledger.merchant_available(merchant_id), ledger.merchant_pending(merchant_id)])
    available: dict[str, int] = defaultdict(int)
    pending: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["layer"] != "posted":
            continue  # authorisation holds are not money yet
        target = available if row["account"].endswith(":available") else pending
        target[row["currency"]] += -row["total"]
    return available, pending


async def available_balance(conn: Conn, *, merchant_id: str, currency: str) -> Money:
    """The merchant's available balance in ``currency`` (a liability: credit-normal)."""
    rows = await account_balances(conn, [ledger.merchant_available(merchant_id)])
    total = sum(r["total"] for r in rows if r["currency"] == currency and r["layer"] == "posted")
    return Money(-total, currency)
