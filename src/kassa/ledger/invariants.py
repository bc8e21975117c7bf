"""The ledger's invariants as SQL: what `kassa ledger verify` (ledger/verify.py) checks.
Each query returns the rows that break one (empty: it holds)."""

from __future__ import annotations

import asyncpg

from kassa.db.pool import Conn
from kassa.domain.fx import FX_GAIN_LOSS


async def unbalanced_transactions(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT transaction_id, currency, layer, sum(amount)::bigint AS total"
        " FROM ledger_entries GROUP BY transaction_id, currency, layer"
        " HAVING sum(amount) <> 0 ORDER BY transaction_id LIMIT $1", limit)
    return rows


async def transactions_with_too_few_entries(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT t.id, count(e.id) AS n FROM ledger_transactions t"
        " LEFT JOIN ledger_entries e ON e.transaction_id = t.id"
        " GROUP BY t.id HAVING count(e.id) < 2 ORDER BY t.id LIMIT $1", limit)
    return rows


async def trial_balance(conn: Conn) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT currency, layer, sum(amount)::bigint AS total FROM ledger_entries"
        " GROUP BY currency, layer ORDER BY currency, layer")
    return rows


async def payment_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Payments whose captured amount differs from what the ledger debited the PSP (net of
    captures the scheme rejected: a reversal, and a capture after it, are sourced by the
    rejected or new capture's attempt)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH captured AS ("
        " SELECT coalesce(a.payment_intent_id, t.source_id) AS id,"
        " sum(e.amount)::bigint AS captured"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " LEFT JOIN attempts a ON a.id = t.source_id"
        " WHERE t.kind IN ('capture', 'capture_reversal') AND e.layer = 'posted'"
        " AND e.account LIKE 'psp:%'"
        " GROUP BY 1)"
        " SELECT p.id, p.amount_received, coalesce(c.captured, 0) AS captured"
        " FROM payment_intents p LEFT JOIN captured c ON c.id = p.id"
        " WHERE p.amount_received <> coalesce(c.captured, 0) LIMIT $1", limit)
    return rows


async def refund_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH posted AS ("
        " SELECT r.payment_intent_id AS id, sum(-e.amount)::bigint AS ledger_refunded"
        " FROM refunds r JOIN ledger_transactions t ON t.source_id = r.id"
        " AND t.kind IN ('refund', 'refund_reversal')"
        " JOIN ledger_entries e ON e.transaction_id = t.id AND e.account LIKE 'psp:%'"
        " GROUP BY r.payment_intent_id),"
        " succeeded AS (SELECT payment_intent_id AS id, sum(amount)::bigint AS refunded"
        " FROM refunds WHERE status = 'succeeded' GROUP BY payment_intent_id)"
        " SELECT coalesce(s.id, p.id) AS id, coalesce(s.refunded, 0) AS refunded,"
        " coalesce(p.ledger_refunded, 0) AS ledger_refunded"
        " FROM succeeded s FULL JOIN posted p ON p.id = s.id"
        " WHERE coalesce(s.refunded, 0) <> coalesce(p.ledger_refunded, 0) LIMIT $1", limit)
    return rows


async def merchant_balance_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Sum of balance transactions' net must equal the merchant's posted liabilities."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH bt AS (SELECT merchant_id, currency, sum(net)::bigint AS bt_net"
        " FROM balance_transactions GROUP BY 1, 2),"
        " led AS (SELECT split_part(account, ':', 2) AS merchant_id, currency,"
        " -sum(amount)::bigint AS ledger FROM ledger_entries"
        " WHERE account LIKE 'merchant:%' AND layer = 'posted'"
        # a payout on its way is no longer in the balance (payout_ledger_mismatches checks it)
        " AND account NOT LIKE 'merchant:%:payouts_in_transit' GROUP BY 1, 2)"
        " SELECT coalesce(bt.merchant_id, led.merchant_id) AS merchant_id,"
        " coalesce(bt.currency, led.currency) AS currency, coalesce(bt_net, 0) AS bt_net,"
        " coalesce(ledger, 0) AS ledger FROM bt FULL JOIN led"
        " ON bt.merchant_id = led.merchant_id AND bt.currency = led.currency"
        " WHERE coalesce(bt_net, 0) <> coalesce(ledger, 0) LIMIT $1", limit)
    return rows


async def unresolved_or_double_holds(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Holds must be resolved at most once, and holds of finished payments must be resolved."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT h.source_id AS hold_ref,"
        " CASE WHEN count(r.id) > 1 THEN 'resolved ' || count(r.id) || ' times'"
        " ELSE 'never resolved although the payment is ' || max(p.status) END AS problem"
        " FROM ledger_transactions h"
        " JOIN attempts a ON a.id = h.source_id"
        " JOIN payment_intents p ON p.id = a.payment_intent_id"
        " LEFT JOIN ledger_transactions r ON r.hold_ref = h.source_id"
        " AND r.kind IN ('capture', 'authorization_release')"
        " WHERE h.kind = 'authorization_hold'"
        " GROUP BY h.source_id"
        " HAVING count(r.id) > 1 OR (count(r.id) = 0"
        " AND max(p.status) IN ('succeeded', 'canceled')) LIMIT $1", limit)
    return rows


async def ledger_counts(conn: Conn) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM ledger_transactions) AS transactions,"
        " (SELECT count(*) FROM ledger_entries) AS entries,"
        " (SELECT count(*) FROM payment_intents) AS payments,"
        " (SELECT count(*) FROM ledger_checkpoint_runs) AS checkpoint_runs")
    return dict(row) if row else {}


async def dispute_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Disputes whose status and ledger disagree: a chargeback must have taken what it
    withdrew (``amount_withdrawn``, at most the amount) plus the fee from the merchant and
    the withdrawn amount from the PSP receivable exactly once, a won dispute must
    have returned both, and no other dispute posting may exist."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH led AS ("
        " SELECT t.source_id AS id,"
        "  coalesce(sum(e.amount) FILTER (WHERE t.kind = 'dispute'"
        "   AND e.account LIKE 'merchant:%'), 0)::bigint AS withdrawn,"
        "  coalesce(-sum(e.amount) FILTER (WHERE t.kind = 'dispute'"
        "   AND e.account LIKE 'psp:%'), 0)::bigint AS psp_withdrawn,"
        "  coalesce(-sum(e.amount) FILTER (WHERE t.kind = 'dispute_reversal'"
        "   AND e.account LIKE 'merchant:%'), 0)::bigint AS reinstated,"
        "  coalesce(sum(e.amount) FILTER (WHERE t.kind = 'dispute_reversal'"
        "   AND e.account LIKE 'psp:%'), 0)::bigint AS psp_reinstated"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.kind IN ('dispute', 'dispute_reversal') GROUP BY t.source_id),"
        " expected AS ("
        " SELECT id, status,"
        "  CASE WHEN status IN ('needs_response', 'under_review', 'won', 'lost')"
        "   THEN amount_withdrawn + fee ELSE 0 END AS withdrawn,"
        "  CASE WHEN status IN ('needs_response', 'under_review', 'won', 'lost')"
        "   THEN amount_withdrawn ELSE 0 END AS psp_withdrawn,"
        "  CASE WHEN status = 'won' THEN amount_withdrawn + fee"
        "   ELSE 0 END AS reinstated,"
        "  CASE WHEN status = 'won' THEN amount_withdrawn ELSE 0 END"
        "   AS psp_reinstated,"
        # a converted payment's merchant side is in its settlement currency: checked by
        # converted_dispute_ledger (ledger/verify.py) at the payment's rate
        "  EXISTS (SELECT 1 FROM payment_intents p WHERE p.id = payment_intent_id"
        "   AND p.exchange_rate IS NOT NULL) AS converted"
        " FROM disputes)"
        " SELECT coalesce(x.id, led.id) AS id, x.status,"
        "  coalesce(x.withdrawn, 0) AS expected_withdrawn, coalesce(led.withdrawn, 0) AS withdrawn,"
        "  coalesce(x.reinstated, 0) AS expected_reinstated,"
        "  coalesce(led.reinstated, 0) AS reinstated"
        " FROM expected x FULL JOIN led ON led.id = x.id"
        " WHERE (NOT coalesce(x.converted, false)"
        "  AND coalesce(x.withdrawn, 0) <> coalesce(led.withdrawn, 0))"
        "  OR coalesce(x.psp_withdrawn, 0) <> coalesce(led.psp_withdrawn, 0)"
        "  OR (NOT coalesce(x.converted, false)"
        "  AND coalesce(x.reinstated, 0) <> coalesce(led.reinstated, 0))"
        "  OR coalesce(x.psp_reinstated, 0) <> coalesce(led.psp_reinstated, 0)"
        " LIMIT $1", limit)
    return rows


async def converted_disputes(conn: Conn, *, after: str = "", limit: int = 10_000
                             ) -> list[asyncpg.Record]:
    """Disputes of converted payments (id > ``after``, the next ``limit`` by id) with what the
    ledger took from and gave back to the merchant (settlement currency) and the payment's
    captured amount, and whether its withdrawal was posted before the share rule
    (``legacy``); verify.py pages through them all and checks them at the payment's rate
    (domain/fx.dispute_share)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT d.id, d.status, d.amount_withdrawn, d.fee, p.currency,"
        " p.settlement_currency, p.exchange_rate, p.amount_received,"
        " coalesce((SELECT sum(e.amount) FROM ledger_transactions t JOIN ledger_entries e"
        "  ON e.transaction_id = t.id AND e.account LIKE 'merchant:%'"
        "  WHERE t.source_id = d.id AND t.kind = 'dispute'), 0)::bigint AS withdrawn,"
        " coalesce((SELECT -sum(e.amount) FROM ledger_transactions t JOIN ledger_entries e"
        "  ON e.transaction_id = t.id AND e.account LIKE 'merchant:%'"
        "  WHERE t.source_id = d.id AND t.kind = 'dispute_reversal'), 0)::bigint"
        "  AS reinstated,"
        # posted before the share rule (migration payoutfix_dispute_share_cutover)
        " EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.source_id = d.id"
        "  AND t.kind = 'dispute' AND t.id <= (SELECT last_legacy_transaction"
        "  FROM ledger_rule_cutovers WHERE rule = 'dispute_share')) AS legacy"
        " FROM disputes d JOIN payment_intents p ON p.id = d.payment_intent_id"
        " WHERE p.exchange_rate IS NOT NULL AND d.id > $1 ORDER BY d.id LIMIT $2",
        after, limit)
    return rows


async def converted_refunds(conn: Conn, *, after: str = "", limit: int = 10_000
                            ) -> list[asyncpg.Record]:
    """Converted payments with posted refunds (id > ``after``, the next ``limit`` by id):
    what their refunds, net of refund failures, gave back at the PSP (presentment) and
    took from the merchant (settlement currency); verify.py checks the merchant's side is
    the net presentment total at the payment's rate (the fx gain/loss leg would balance
    any other amount, so the trading legs alone cannot show it)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT p.id, p.currency, p.settlement_currency, p.exchange_rate,"
        " coalesce(-sum(e.amount) FILTER (WHERE e.account LIKE 'psp:%'), 0)::bigint"
        "  AS presented,"
        " coalesce(sum(e.amount) FILTER (WHERE e.account = 'merchant:' || p.merchant_id"
        "  || ':available'), 0)::bigint AS taken"
        " FROM payment_intents p JOIN refunds r ON r.payment_intent_id = p.id"
        " JOIN ledger_transactions t ON t.source_id = r.id"
        "  AND t.kind IN ('refund', 'refund_reversal')"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE p.exchange_rate IS NOT NULL AND p.id > $1"
        " GROUP BY p.id ORDER BY p.id LIMIT $2", after, limit)
    return rows


async def payout_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Per merchant and currency, the payouts-in-transit account must hold exactly the
    payouts that are pending or in transit (`kassa ledger verify`)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH open AS (SELECT merchant_id, currency, sum(amount)::bigint AS open"
        " FROM payouts WHERE status IN ('pending', 'in_transit') GROUP BY 1, 2),"
        " led AS (SELECT split_part(account, ':', 2) AS merchant_id, currency,"
        " -sum(amount)::bigint AS ledger FROM ledger_entries"
        " WHERE account LIKE 'merchant:%:payouts_in_transit' AND layer = 'posted'"
        " GROUP BY 1, 2)"
        " SELECT coalesce(open.merchant_id, led.merchant_id) AS merchant_id,"
        " coalesce(open.currency, led.currency) AS currency, coalesce(open, 0) AS open,"
        " coalesce(ledger, 0) AS ledger FROM open FULL JOIN led"
        " ON open.merchant_id = led.merchant_id AND open.currency = led.currency"
        " WHERE coalesce(open, 0) <> coalesce(ledger, 0) LIMIT $1", limit)
    return rows


async def settlement_ledger_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Per run and currency (and, for rows the PSP converted, settlement currency and rate:
    db/reconciliation.py's settlement_source), the settlement posting must credit the PSP
    receivable exactly the gross of the rows the run posted, and debit the bank and fees
    exactly what the PSP paid for them (`kassa ledger verify`)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH posted AS (SELECT run_id || ':' || currency || CASE WHEN settlement_currency"
        "   IS NULL THEN '' ELSE '>' || settlement_currency || '@' || exchange_rate::text END"
        "   AS source, sum(gross)::bigint AS gross,"
        "   sum(coalesce(settlement_gross, gross))::bigint AS received"
        " FROM reconciliation_items WHERE posted"
        " GROUP BY run_id, currency, settlement_currency, exchange_rate),"
        " led AS (SELECT t.source_id AS source,"
        " coalesce(-sum(e.amount) FILTER (WHERE e.account LIKE 'psp:%:receivable'), 0)::bigint"
        "   AS gross,"
        " coalesce(sum(e.amount) FILTER (WHERE e.account IN ('bank:cash', 'expense:psp_fees')),"
        "   0)::bigint AS received"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.kind = 'settlement' GROUP BY t.source_id)"
        " SELECT coalesce(posted.source, led.source) AS source,"
        " coalesce(posted.gross, 0) AS items, coalesce(led.gross, 0) AS ledger,"
        " coalesce(posted.received, 0) AS items_received,"
        " coalesce(led.received, 0) AS ledger_received"
        " FROM posted FULL JOIN led ON led.source = posted.source"
        " WHERE coalesce(posted.gross, 0) <> coalesce(led.gross, 0)"
        " OR coalesce(posted.received, 0) <> coalesce(led.received, 0) LIMIT $1", limit)
    return rows


# what a PSP may settle off its own rate per converted row: one minor unit of rounding plus
# one per fee part it rounds on its own (Adyen lists four) — reconciliation/reports.py
# stages a row beyond it as an amount_mismatch, never posted
SETTLED_ROUNDING_PER_ROW = 5


async def settlement_fx_beyond_rounding(conn: Conn, limit: int = 100
                                        ) -> list[asyncpg.Record]:
    """A settlement of converted rows whose FX gain/loss (in the settlement currency) is
    more than the PSP's rounding of its rows: money booked as an FX difference that is a
    PSP's short or over payment (`kassa ledger verify`)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH posted AS (SELECT run_id || ':' || currency || '>' || settlement_currency || '@'"
        "   || exchange_rate::text AS source, settlement_currency, count(*) AS n"
        " FROM reconciliation_items WHERE posted AND settlement_currency IS NOT NULL"
        " GROUP BY run_id, currency, settlement_currency, exchange_rate)"
        " SELECT p.source, p.settlement_currency AS currency, p.n,"
        " sum(e.amount)::bigint AS gain_loss FROM posted p"
        " JOIN ledger_transactions t ON t.kind = 'settlement' AND t.source_id = p.source"
        " JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = $2"
        "   AND e.currency = p.settlement_currency"
        " GROUP BY p.source, p.settlement_currency, p.n"
        # each row off by its rounding, plus the group's own re-rounding of the converted
        # total (up to half a unit per row)
        " HAVING abs(sum(e.amount)) > p.n * $3 + ceil(p.n / 2.0) + 1 LIMIT $1",
        limit, FX_GAIN_LOSS, SETTLED_ROUNDING_PER_ROW)
    return rows


async def objects_settled_twice(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """A kassa object's movement (one category) settled by more than one posted report row:
    the same money counted twice (`reconciliation_settled_object` should make it
    impossible; verify says so if a database lacks it)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT category, matched, count(*) AS n, array_agg(run_id || '#' || row_number"
        " ORDER BY run_id, row_number) AS items FROM reconciliation_items"
        " WHERE posted AND matched IS NOT NULL GROUP BY category, matched"
        " HAVING count(*) > 1 ORDER BY matched LIMIT $1", limit)
    return rows


async def checkpoint_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Checkpoints (ledger/checkpoints.py) that disagree with the journal: each must equal
    the account's previous checkpoint plus the entries between the two positions. Checked
    row by row from the first, this proves every checkpoint equals the sum of the account's
    entries up to its position, reading each entry once."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH chained AS (SELECT account, currency, layer, position, balance,"
        "  lag(position, 1, 0::bigint) OVER w AS since,"
        "  lag(balance, 1, 0::bigint) OVER w AS before"
        " FROM ledger_checkpoints"
        " WINDOW w AS (PARTITION BY account, currency, layer ORDER BY position))"
        " SELECT c.account, c.currency, c.layer, c.position, c.balance,"
        "  (c.before + coalesce(d.amount, 0))::bigint AS journal"
        " FROM chained c LEFT JOIN LATERAL (SELECT sum(e.amount) AS amount"
        "  FROM ledger_entries e WHERE e.account = c.account AND e.id > c.since"
        "  AND e.id <= c.position AND e.currency = c.currency AND e.layer = c.layer) d ON true"
        " WHERE c.balance <> c.before + coalesce(d.amount, 0)"
        " ORDER BY c.account, c.currency, c.layer, c.position LIMIT $1", limit)
    return rows


async def checkpoint_run_mismatches(conn: Conn, limit: int = 100) -> list[asyncpg.Record]:
    """Checkpoint runs whose interval the journal now tells differently: an entry that
    committed below a run's position after the run was written (the run missed it: its
    count is short and an account may lack its row), a posting time outside the run's
    ``as_of``/``earliest_posted``, or a run that extends no run."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "WITH journal AS (SELECT r.position, count(e.id) AS entries,"
        "  min(t.created_at) AS earliest, max(t.created_at) AS latest,"
        "  count(DISTINCT (e.account, e.currency, e.layer)) FILTER (WHERE e.id IS NOT NULL)"
        "  AS accounts"
        " FROM ledger_checkpoint_runs r"
        " LEFT JOIN ledger_entries e ON e.id > r.previous AND e.id <= r.position"
        " LEFT JOIN ledger_transactions t ON t.id = e.transaction_id GROUP BY r.position),"
        " written AS (SELECT position, count(*) AS accounts FROM ledger_checkpoints"
        "  GROUP BY position)"
        " SELECT r.position, r.entries, j.entries AS journal_entries,"
        "  coalesce(w.accounts, 0) AS accounts, j.accounts AS journal_accounts,"
        "  r.as_of, j.latest, r.earliest_posted, j.earliest,"
        "  (r.previous = 0 OR p.position IS NOT NULL) AS chained"
        " FROM ledger_checkpoint_runs r JOIN journal j ON j.position = r.position"
        " LEFT JOIN written w ON w.position = r.position"
        " LEFT JOIN ledger_checkpoint_runs p ON p.position = r.previous"
        " WHERE r.entries <> j.entries OR coalesce(w.accounts, 0) <> j.accounts"
        "  OR r.as_of < j.latest OR (r.as_of IS NULL AND j.latest IS NOT NULL)"
        "  OR r.earliest_posted IS DISTINCT FROM j.earliest"
        "  OR NOT (r.previous = 0 OR p.position IS NOT NULL)"
        " ORDER BY r.position LIMIT $1", limit)
    return rows
