"""Named SQL for exchange rates (fx_rates) and merchants' settlement currencies."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from kassa.db.pool import Conn
from kassa.domain.fx import Rate

_RATE_COLUMNS = "id, base, quote, rate, source, as_of, loaded_at"


def rate_from_row(row: asyncpg.Record) -> Rate:
    return Rate(row["base"], row["quote"], row["rate"], row["source"], row["as_of"],
                row["id"])


async def insert_rates(conn: Conn, rates: Sequence[Rate], *, loaded_at: int,
                       new_id: Callable[[], str]) -> int:
    """Store ``rates`` (one statement); a rate already stored (same pair, source and
    as_of) is kept as it was. Returns how many rows are new."""
    if not rates:
        return 0
    stored: int = await conn.fetchval(
        "WITH new AS (INSERT INTO fx_rates (id, base, quote, rate, source, as_of, loaded_at)"
        " SELECT u.*, $7::bigint FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::numeric[], $5::text[], $6::bigint[]) AS u(id, base, quote, rate, source, as_of)"
        " ON CONFLICT (base, quote, source, as_of) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM new",
        [new_id() for _ in rates], [r.base for r in rates], [r.quote for r in rates],
        [r.rate for r in rates], [r.source for r in rates], [r.as_of for r in rates],
        loaded_at)
    return stored


async def latest_rate(conn: Conn, *, base: str, quote: str, not_before: int, now: int
                      ) -> Rate | None:
    """The newest rate base -> quote with ``not_before <= as_of <= now``."""
    row = await conn.fetchrow(
        f"SELECT {_RATE_COLUMNS} FROM fx_rates WHERE base = $1 AND quote = $2"
        " AND as_of BETWEEN $3 AND $4 ORDER BY as_of DESC, loaded_at DESC, id LIMIT 1",
        base, quote, not_before, now)
    return None if row is None else rate_from_row(row)


async def list_rates(conn: Conn, *, base: str | None = None, limit: int = 100
                     ) -> list[asyncpg.Record]:
    """The newest rate of each pair (from ``base`` when given)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT DISTINCT ON (base, quote) {_RATE_COLUMNS} FROM fx_rates"
        " WHERE $1::text IS NULL OR base = $1"
        " ORDER BY base, quote, as_of DESC, loaded_at DESC, id LIMIT $2", base, limit)
    return rows


async def get_settlement_currency(conn: Conn, merchant_id: str) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT settlement_currency FROM merchants WHERE id = $1", merchant_id)
    return value


async def set_settlement_currency(conn: Conn, merchant_id: str, currency: str | None
                                  ) -> None:
    await conn.execute("UPDATE merchants SET settlement_currency = $2 WHERE id = $1",
                       merchant_id, currency)


async def conversions(conn: Conn, *, after: int = 0, limit: int = 10_000
                      ) -> list[asyncpg.Record]:
    """Converted ledger transactions with id > ``after`` (the next ``limit`` of them, by
    id): each one's trading entries per layer, with its rate (`kassa ledger verify` pages
    through them all)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH page AS (SELECT id, kind, exchange_rate FROM ledger_transactions"
        " WHERE exchange_rate IS NOT NULL AND id > $1 ORDER BY id LIMIT $2)"
        # (a LEFT JOIN: a converted transaction without trading entries is a row too)
        " SELECT t.id, t.kind, t.exchange_rate, e.layer,"
        " jsonb_object_agg(e.account, e.amount) FILTER (WHERE e.account IS NOT NULL)"
        " AS legs FROM page t LEFT JOIN ledger_entries e ON e.transaction_id = t.id"
        " AND e.account LIKE 'fx:%'"
        " GROUP BY t.id, t.kind, t.exchange_rate, e.layer ORDER BY t.id", after, limit)
    return rows


async def untraded_trading_entries(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Trading entries of a transaction that records no rate: nothing can check them."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT DISTINCT t.id, t.kind FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id AND e.account LIKE 'fx:%'"
        " WHERE t.exchange_rate IS NULL LIMIT $1", limit)
    return rows


async def refunded_so_far(conn: Conn, *, payment_id: str, merchant_account: str,
                          receivable: str, presentment: str) -> tuple[int, int]:
    """What the posted refunds of a converted payment (net of refund failures) gave back
    at the PSP (presentment minor units) and took from the merchant (settlement minor
    units): the next refund converts the running total (domain/fx.py)."""
    row = await conn.fetchrow(
        "SELECT coalesce(-sum(e.amount) FILTER (WHERE e.account = $3 AND e.currency = $4),"
        "   0)::bigint AS presented,"
        " coalesce(sum(e.amount) FILTER (WHERE e.account = $2), 0)::bigint AS taken"
        " FROM refunds r JOIN ledger_transactions t ON t.source_id = r.id"
        "  AND t.kind IN ('refund', 'refund_reversal')"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE r.payment_intent_id = $1", payment_id, merchant_account, receivable,
        presentment)
    return int(row["presented"]), int(row["taken"])


async def refund_taken(conn: Conn, *, refund_id: str, merchant_account: str) -> int | None:
    """What a refund's posting took from the merchant (None: it posted nothing)."""
    value = await conn.fetchval(
        "SELECT sum(e.amount)::bigint FROM ledger_transactions t JOIN ledger_entries e"
        " ON e.transaction_id = t.id WHERE t.kind = 'refund' AND t.source_id = $1"
        " AND e.account = $2", refund_id, merchant_account)
    return None if value is None else int(value)
