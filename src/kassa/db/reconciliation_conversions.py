"""Named SQL for the rows a PSP converted, after the import's MATCH (db/reconciliation.py):
a conversion that is not what the PSP's rate, or kassa's own, says is an amount_mismatch on
the settled side and is not posted (reconciliation/reports.py stages ``expected_settled``
for a settled gross off the PSP's rate beyond its rounding; the band against kassa's rate
needs kassa's fx_rates, so it is checked here)."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from kassa.domain.money import EXPONENTS

FLAG_CONVERSIONS = """
UPDATE reconciliation_matched i SET problem = 'amount_mismatch', posted = false,
    expected_settled = f.expected
FROM (
    -- at kassa's rate: rounded half away from zero (PostgreSQL's round), the value the
    -- discrepancy shows; nothing is posted from it
    SELECT s.row_number, coalesce(s.expected_settled, round(s.gross * k.rate
        * 10::numeric ^ (coalesce(eq.e, 2) - coalesce(eb.e, 2)))::bigint) AS expected
    FROM reconciliation_stage s
    LEFT JOIN unnest($1::text[], $2::int[]) AS eb(c, e) ON eb.c = s.currency
    LEFT JOIN unnest($1::text[], $2::int[]) AS eq(c, e) ON eq.c = s.settlement_currency
    -- kassa's own rate for the pair: the latest not after the row's time and not older than
    -- fx_max_age_seconds (as a payment's conversion picks it), the inverse pair's if kassa
    -- has only that; none: no band check. Each a LIMIT 1 on fx_rates_latest
    LEFT JOIN LATERAL (SELECT coalesce(
        (SELECT f.rate FROM fx_rates f WHERE f.base = s.currency
            AND f.quote = s.settlement_currency AND f.as_of <= s.created
            AND f.as_of >= s.created - $4 ORDER BY f.as_of DESC LIMIT 1),
        (SELECT 1 / f.rate FROM fx_rates f WHERE f.base = s.settlement_currency
            AND f.quote = s.currency AND f.as_of <= s.created
            AND f.as_of >= s.created - $4 ORDER BY f.as_of DESC LIMIT 1)) AS rate
    ) k ON s.created IS NOT NULL
    -- the band compares amounts, not rates: a rate Stripe's rounded amounts imply is only as
    -- precise as they are (a 1-cent refund settled as 1 cent "is" rate 1.00), so one minor
    -- unit is allowed beyond the band
    WHERE s.settlement_currency IS NOT NULL AND (s.expected_settled IS NOT NULL
        OR abs(s.settlement_gross - round(s.gross * k.rate
               * 10::numeric ^ (coalesce(eq.e, 2) - coalesce(eb.e, 2))))
           > $3 * abs(round(s.gross * k.rate
               * 10::numeric ^ (coalesce(eq.e, 2) - coalesce(eb.e, 2)))) + 1)
) f
-- only a row that would be posted: one an earlier run posted (or with another problem) is
-- not posted anyway, and keeps what it is
WHERE i.row_number = f.row_number AND i.posted
"""


async def flag_conversions(conn: asyncpg.Connection, *, band: Decimal, max_age: int) -> None:
    """A converted row whose settled gross is not its gross at the PSP's rate (the parser's
    ``expected_settled``), or whose rate is more than ``band`` (a fraction) off kassa's own
    rate for the pair at the row's time, is an ``amount_mismatch`` on the settled side
    (``expected_settled``: the gross at the PSP's rate, or at kassa's) and is not posted:
    nothing is booked to FX gain/loss on the PSP's word. Runs after MATCH, over the rows it
    matched, in this transaction's reconciliation_matched before its rows are written (a row
    with another problem keeps it: it is not posted anyway)."""
    await conn.execute(FLAG_CONVERSIONS, list(EXPONENTS), list(EXPONENTS.values()),
                       band, max_age)
