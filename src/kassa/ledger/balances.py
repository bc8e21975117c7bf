"""Balances from the ledger: the sum of an account's entries per currency and layer (read as a
checkpoint plus the entries after it, ledger/checkpoints.py), and the merchant's balance
(available and pending) read from them, now or at a past moment."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import asyncpg

from kassa.db.pool import Conn
from kassa.domain import ledger
from kassa.domain.money import Money
from kassa.ledger import checkpoints


async def account_balances(conn: Conn, accounts: list[str], *, as_of: int | None = None
                           ) -> list[asyncpg.Record]:
    """Balance per (account, currency, layer) = sum of its entries: all of them, or those
    posted at or before the unix second ``as_of`` (the whole second counts)."""
    before = None if as_of is None else datetime.fromtimestamp(as_of + 1, UTC)
    return await checkpoints.balances(conn, accounts, before=before)


async def merchant_balance(conn: Conn, merchant_id: str, *, as_of: int | None = None
                           ) -> tuple[dict[str, int], dict[str, int]]:
    """The merchant's (available, pending) money per currency, as Stripe's balance shows it:
    posted entries only (authorisation holds are not money yet), and the sign flipped
    (the merchant's accounts are liabilities, credit-normal); at the unix second ``as_of``
    when given."""
    rows = await account_balances(
        conn, [ledger.merchant_available(merchant_id), ledger.merchant_pending(merchant_id)],
        as_of=as_of)
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
