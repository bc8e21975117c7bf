"""The read side of the reconciliation exports (services/reconciliation_reports.py): plain
queries over the runs, their items and discrepancies, and the ledger's posted entries —
every figure is summed from the ledger or the runs, none is kept on its own."""

from __future__ import annotations

from datetime import date

import asyncpg

from kassa.db.pool import Conn
from kassa.db.reconciliation_queries import DISCREPANCY_COLUMNS


async def run_settled(conn: Conn, run_id: str) -> list[asyncpg.Record]:
    """Per currency and settlement currency (the same unless the PSP converted): the run's
    matched rows, how many it posted, and what it posted — gross in the currency, settled
    gross and fee in the settlement currency, and the PSP's rates."""
    return await conn.fetch(
        "SELECT currency, coalesce(settlement_currency, currency) AS settlement_currency,"
        " count(*) FILTER (WHERE matched IS NOT NULL) AS matched_rows,"
        " count(*) FILTER (WHERE posted) AS posted_rows,"
        " coalesce(sum(gross) FILTER (WHERE posted), 0)::bigint AS gross,"
        " coalesce(sum(coalesce(settlement_gross, gross)) FILTER (WHERE posted), 0)::bigint"
        "   AS settlement_gross,"
        " coalesce(sum(fee) FILTER (WHERE posted), 0)::bigint AS fee,"
        " coalesce(array_agg(DISTINCT exchange_rate::text ORDER BY exchange_rate::text)"
        "   FILTER (WHERE posted AND exchange_rate IS NOT NULL), '{}') AS exchange_rates"
        " FROM reconciliation_items WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 1, 2",
        run_id)


async def run_discrepancies(conn: Conn, run_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {DISCREPANCY_COLUMNS} FROM reconciliation_discrepancies"
                            " WHERE run_id = $1 ORDER BY seq", run_id)


# one row per currency of the merchant's books; each figure a sum of the merchant's posted
# entries of one kind on one account (domain/ledger.py's postings), over [from, to). Gross
# is the merchant-facing side of each capture (its net credit plus its fee): for a payment
# converted into the merchant's settlement currency (domain/fx.py) that is the settled
# amount, not the PSP receivable in the presentment currency; counts go by the merchant's
# (or fee) entries, so a converted transaction is counted once, in its settlement currency.
MERCHANT_SETTLEMENT = """
SELECT e.currency,
    count(DISTINCT t.id) FILTER (WHERE t.kind = 'capture' AND e.account IN ($5, 'revenue:fees'))
        AS charges,
    -- a capture the scheme rejected after it was booked is mirrored by its reversal: both
    -- count, so gross and fees are what was really collected
    count(DISTINCT t.id) FILTER (WHERE t.kind = 'capture_reversal'
        AND e.account IN ($5, 'revenue:fees')) AS capture_reversals,
    coalesce(-sum(e.amount) FILTER (WHERE t.kind IN ('capture', 'capture_reversal')
        AND e.account IN ($5, 'revenue:fees')), 0)::bigint AS gross,
    coalesce(-sum(e.amount) FILTER (WHERE t.kind IN ('capture', 'capture_reversal')
        AND e.account = 'revenue:fees'), 0)::bigint AS fees,
    count(DISTINCT t.id) FILTER (WHERE t.kind = 'refund' AND e.account = $4) AS refund_count,
    coalesce(sum(e.amount) FILTER (WHERE t.kind IN ('refund', 'refund_reversal')
        AND e.account = $4), 0)::bigint AS refunds,
    count(DISTINCT t.id) FILTER (WHERE t.kind = 'dispute' AND e.account = $4)
        AS dispute_count,
    coalesce(sum(e.amount) FILTER (WHERE t.kind IN ('dispute', 'dispute_reversal')
        AND e.account = $4), 0)::bigint AS disputes,
    coalesce(-sum(e.amount) FILTER (WHERE t.kind IN ('dispute', 'dispute_reversal')
        AND e.account = 'revenue:fees'), 0)::bigint AS dispute_fees,
    count(DISTINCT t.id) FILTER (WHERE t.kind = 'payout' AND e.account = $4) AS payout_count,
    coalesce(sum(e.amount) FILTER (WHERE t.kind IN ('payout', 'payout_failure',
        'payout_cancel') AND e.account = $4), 0)::bigint AS payouts
FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
WHERE t.merchant_id = $1 AND t.created_at >= to_timestamp($2) AND t.created_at < to_timestamp($3)
    AND e.layer = 'posted'
GROUP BY e.currency
HAVING count(*) FILTER (WHERE e.account LIKE 'merchant:%' OR e.account = 'revenue:fees') > 0
ORDER BY e.currency
"""


async def merchant_settlement(conn: Conn, *, merchant_id: str, start: int, end: int
                              ) -> list[asyncpg.Record]:
    return await conn.fetch(MERCHANT_SETTLEMENT, merchant_id, start, end,
                            f"merchant:{merchant_id}:available",
                            f"merchant:{merchant_id}:pending")


# the merchant's captures kassa converted (domain/fx.py) over [from, to), per presentment
# and settlement currency: how many, what the PSP receivable got (presentment), what the
# merchant's side got (its net plus kassa's fee, settlement currency), at which rates
MERCHANT_CONVERSIONS = """
SELECT p.currency AS presentment_currency, s.currency, count(*) AS charges,
    sum(p.amount)::bigint AS presentment_gross, sum(s.amount)::bigint AS gross,
    array_agg(DISTINCT t.exchange_rate::text ORDER BY t.exchange_rate::text)
        AS exchange_rates
FROM ledger_transactions t
JOIN LATERAL (SELECT min(e.currency) AS currency, sum(e.amount)::bigint AS amount
    FROM ledger_entries e WHERE e.transaction_id = t.id AND e.layer = 'posted'
    AND e.account LIKE 'psp:%:receivable') p ON true
JOIN LATERAL (SELECT min(e.currency) AS currency, -sum(e.amount)::bigint AS amount
    FROM ledger_entries e WHERE e.transaction_id = t.id AND e.layer = 'posted'
    AND e.account IN ($4, 'revenue:fees')) s ON true
WHERE t.merchant_id = $1 AND t.kind = 'capture' AND t.exchange_rate IS NOT NULL
    AND t.created_at >= to_timestamp($2) AND t.created_at < to_timestamp($3)
GROUP BY p.currency, s.currency ORDER BY s.currency, p.currency
"""


async def merchant_conversions(conn: Conn, *, merchant_id: str, start: int, end: int
                               ) -> list[asyncpg.Record]:
    return await conn.fetch(MERCHANT_CONVERSIONS, merchant_id, start, end,
                            f"merchant:{merchant_id}:pending")


async def merchant_exists(conn: Conn, merchant_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM merchants WHERE id = $1", merchant_id))


async def runs_of_day(conn: Conn, *, day: date, start: int, end: int) -> list[asyncpg.Record]:
    """The runs about the day: the pulled day's run, and imported files whose rows fall on
    it (their covers overlap the day)."""
    return await conn.fetch(
        "SELECT r.id, r.psp, r.rows_read, r.rows_matched, r.discrepancies, r.source_name"
        " FROM reconciliation_runs r WHERE r.status = 'completed' AND (r.id IN (SELECT run_id"
        " FROM reconciliation_pulls WHERE report_date = $1 AND run_id IS NOT NULL)"
        " OR (r.covers_from < $3 AND r.covers_to > $2)) ORDER BY r.psp, r.seq", day, start, end)


async def discrepancy_counts(conn: Conn, run_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT r.psp, d.kind, count(*) AS n, count(*) FILTER (WHERE d.resolution = 'open')"
        " AS open FROM reconciliation_discrepancies d JOIN reconciliation_runs r"
        " ON r.id = d.run_id WHERE d.run_id = ANY($1::text[]) GROUP BY r.psp, d.kind"
        " ORDER BY r.psp, d.kind", run_ids)


# a run's settlement transactions: one per currency, and one per presentment currency,
# settlement currency and rate for the rows the PSP converted (db/reconciliation.py's
# settlement_source)
_RUN_SETTLEMENTS = (
    " FROM reconciliation_runs r JOIN LATERAL (SELECT DISTINCT i.currency || CASE WHEN"
    "   i.settlement_currency IS NULL THEN '' ELSE '>' || i.settlement_currency || '@'"
    "   || i.exchange_rate::text END AS suffix FROM reconciliation_items i"
    "   WHERE i.run_id = r.id AND i.posted) c ON true"
    " JOIN ledger_transactions t ON t.kind = 'settlement'"
    "   AND t.source_id = r.id || ':' || c.suffix"
    " JOIN ledger_entries e ON e.transaction_id = t.id"
    " WHERE r.id = ANY($1::text[])")


async def settlement_posted(conn: Conn, run_ids: list[str]) -> list[asyncpg.Record]:
    """What the runs posted per currency, from their ledger transactions: the receivable
    credited (gross), the PSP's fees, the bank's cash (conversions_posted says what the PSP
    converted between them)."""
    return await conn.fetch(
        "SELECT r.psp, e.currency,"
        " coalesce(-sum(e.amount) FILTER (WHERE e.account LIKE 'psp:%:receivable'), 0)::bigint"
        "   AS gross,"
        " coalesce(sum(e.amount) FILTER (WHERE e.account = 'expense:psp_fees'), 0)::bigint"
        "   AS fee,"
        " coalesce(sum(e.amount) FILTER (WHERE e.account = 'bank:cash'), 0)::bigint AS net"
        + _RUN_SETTLEMENTS + " GROUP BY r.psp, e.currency ORDER BY r.psp, e.currency",
        run_ids)


async def conversions_posted(conn: Conn, run_ids: list[str]) -> list[asyncpg.Record]:
    """The runs' settlements the PSP converted, per presentment currency, settlement
    currency and rate (the transaction's source says which): the gross credited to the
    receivable, what the PSP paid for it (bank and fees, settlement currency), and the FX
    difference against its rate in the settlement currency (credit = gain)."""
    return await conn.fetch(
        "SELECT r.psp, split_part(c.suffix, '@', 2) AS exchange_rate,"
        " split_part(c.suffix, '>', 1) AS currency,"
        " split_part(split_part(c.suffix, '>', 2), '@', 1) AS settlement_currency,"
        " coalesce(-sum(e.amount) FILTER (WHERE e.account LIKE 'psp:%:receivable'), 0)::bigint"
        "   AS gross,"
        " coalesce(sum(e.amount) FILTER (WHERE e.account IN ('bank:cash', 'expense:psp_fees')),"
        "   0)::bigint AS settled,"
        " coalesce(-sum(e.amount) FILTER (WHERE e.account = 'revenue:fx_gain_loss'"
        "   AND e.currency = split_part(split_part(c.suffix, '>', 2), '@', 1)), 0)::bigint"
        "   AS fx_gain"
        + _RUN_SETTLEMENTS + " AND c.suffix LIKE '%>%'"
        " GROUP BY r.psp, t.id, c.suffix ORDER BY r.psp, t.id", run_ids)


async def receivable_at(conn: Conn, *, psp: str, end: int) -> list[asyncpg.Record]:
    """The PSP receivable's posted balance per currency at ``end`` (entries before it)."""
    return await conn.fetch(
        "SELECT e.currency, sum(e.amount)::bigint AS total FROM ledger_entries e"
        " JOIN ledger_transactions t ON t.id = e.transaction_id"
        " WHERE e.account = $1 AND e.layer = 'posted' AND t.created_at < to_timestamp($2)"
        " GROUP BY e.currency ORDER BY e.currency", f"psp:{psp}:receivable", end)


async def day_psps(conn: Conn, *, day: date, start: int, end: int) -> list[str]:
    """The PSP accounts the day's pulls and runs name (the configured ones are added by the
    caller)."""
    rows = await conn.fetch(
        "SELECT psp FROM reconciliation_pulls WHERE report_date = $1"
        " UNION SELECT psp FROM reconciliation_runs WHERE covers_from < $3 AND covers_to > $2"
        " ORDER BY 1", day, start, end)
    return [r["psp"] for r in rows]
