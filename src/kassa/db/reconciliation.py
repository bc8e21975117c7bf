"""Named SQL for reconciliation runs (migration money_reconciliation): the report's rows are
COPYed into a temporary table, then matched to kassa's payments, refunds and disputes into a
second one (``reconciliation_matched``), each row classified, discrepancies recorded and the
settlement posted from it, and only then the rows written into ``reconciliation_items`` in
one INSERT — all set-based, in the one transaction of the import, so a run is all there or
not there at all (a file refused for a repeated movement never writes an item). An item's run
is checked once per statement (migration reconfast_item_writes), not once per row.

Matching: by the PSP's reference first (``payment_intents.psp_reference``,
``refunds.psp_reference``, ``disputes.psp_dispute_id``), then by kassa's own reference echoed
in the report (the attempt id kassa sent as the PSP's idempotency key). A row kassa settled in
an earlier run (another file with the same movement) is matched but not posted again
— recognised by the kassa object it matched in the same category, whatever the PSP's
reference reads in either file (``reconciliation_settled_object`` is unique on what was
posted; ``reconciliation_settled`` on a posted PSP reference). A fee row matches no kassa
object: one without a PSP reference is recognised by its fingerprint (category, currency,
gross, fee, created) — two such identical rows in one file are both posted (two fees the
PSP charged), the same fingerprint in a later file is not posted again.

A row the PSP converted (migration fxrecon_psp_conversions) is matched like any other on its
presentment side (``gross``, ``currency``: kassa's receivable), and carries what the PSP paid
for it (``settlement_currency``, ``settlement_gross``, its ``fee``) and the PSP's rate into
its settlement posting (post_settlement).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import asyncpg

from kassa.db.pool import Conn
from kassa.domain import ledger
from kassa.domain.fx import FX_PREFIX, convert
from kassa.domain.ledger import psp_receivable
from kassa.domain.money import Money

PLATFORM = "platform"  # ledger_transactions.merchant_id of postings no merchant owns

STAGE_COLUMNS = ("row_number", "category", "psp_reference", "kassa_reference", "gross", "fee",
                 "currency", "psp_status", "created", "settlement_currency",
                 "settlement_gross", "exchange_rate", "expected_settled", "expected_fee")

RUN_COLUMNS = ("id, psp, format, source_name, file_sha256, status, rows_read, rows_matched,"
               " discrepancies, failure, covers_from, covers_to, created, completed_at")


async def lock_psp(conn: asyncpg.Connection, psp: str) -> None:
    """One import per PSP at a time: two files with the same movements cannot both post.
    The import's statements are a few set-based ones over the whole file: its transaction
    gets the planner settings of a batch job, not the serving pool's (bootstrap turns
    sequential scans off for the services' index lookups; with it, the match sorted a
    million rows on disk instead of hashing them: 12,000 rows/s)."""
    await conn.execute("SET LOCAL enable_seqscan = on")
    await conn.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
    await conn.execute("SET LOCAL work_mem = '256MB'")  # the match's hash tables, in memory
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"reconcile:{psp}")


async def find_run(conn: Conn, *, psp: str, sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM reconciliation_runs"
                               " WHERE psp = $1 AND file_sha256 = $2", psp, sha256)


async def get_run(conn: Conn, run_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE id = $1",
                               run_id)


async def insert_run(conn: asyncpg.Connection, *, run_id: str, psp: str, format: str,
                     source_name: str, sha256: str, created: int) -> None:
    await conn.execute(
        "INSERT INTO reconciliation_runs (id, psp, format, source_name, file_sha256, status,"
        " created) VALUES ($1, $2, $3, $4, $5, 'running', $6)",
        run_id, psp, format, source_name, sha256, created)


async def stage_rows(conn: asyncpg.Connection, records: AsyncIterable[tuple[Any, ...]]) -> None:
    """COPY the parsed rows into this transaction's staging table (streamed)."""
    await conn.execute(
        "CREATE TEMPORARY TABLE reconciliation_stage (row_number bigint, category text,"
        " psp_reference text, kassa_reference text, gross bigint, fee bigint, currency text,"
        " psp_status text, created bigint, settlement_currency text, settlement_gross bigint,"
        " exchange_rate numeric, expected_settled bigint, expected_fee bigint) ON COMMIT DROP")
    await conn.copy_records_to_table("reconciliation_stage", records=records,
                                     columns=STAGE_COLUMNS)
    await conn.execute("ANALYZE reconciliation_stage")


# the matched rows, this transaction's own (a temporary table: no WAL, no index, no foreign
# key per row); every later step of the import reads them here, and write_items() copies
# them into reconciliation_items in one statement once the file is known to be accepted
MATCHED_COLUMNS = ("row_number, category, psp_reference, kassa_reference, gross, fee,"
                   " currency, psp_status, created, expected_fee, merchant_id, matched,"
                   " kassa_amount, kassa_currency, kassa_status, problem, posted,"
                   " settlement_currency, settlement_gross, exchange_rate, expected_settled")

CREATE_MATCHED = """
CREATE TEMPORARY TABLE reconciliation_matched (row_number bigint, category text,
    psp_reference text, kassa_reference text, gross bigint, fee bigint, currency text,
    psp_status text, created bigint, expected_fee bigint, merchant_id text, matched text,
    kassa_amount bigint, kassa_currency text, kassa_status text, problem text,
    posted boolean, settlement_currency text, settlement_gross bigint,
    exchange_rate numeric, expected_settled bigint, nth_object bigint,
    nth_reference bigint) ON COMMIT DROP
"""

MATCH = f"""
INSERT INTO reconciliation_matched ({MATCHED_COLUMNS}, nth_object, nth_reference)
SELECT x.row_number, x.category, x.psp_reference, x.kassa_reference, x.gross, x.fee,
    x.currency, x.psp_status, x.created, x.expected_fee, x.merchant_id, x.matched,
    x.kassa_amount, x.kassa_currency, x.kassa_status, x.problem,
    (x.problem IS NULL OR x.problem = 'fee_mismatch' OR x.resolvable)
        AND x.settled_before IS NULL
        -- a movement repeated in this file is posted at most once; duplicate_rows() then
        -- refuses the file
        AND (x.matched IS NULL OR x.nth_object = 1)
        AND (x.psp_reference IS NULL OR x.nth_reference = 1),
    -- the PSP converted it (fxrecon): matched on the presentment side above, settled here
    x.settlement_currency, x.settlement_gross, x.exchange_rate,
    -- set by flag_conversions (db/reconciliation_conversions.py) for a conversion it refuses
    NULL::bigint, x.nth_object, x.nth_reference
FROM (
    SELECT m.*, coalesce(d1.run_id, d2.run_id, d3.run_id) AS settled_before,
    row_number() OVER (PARTITION BY m.category, m.matched ORDER BY m.row_number)
        AS nth_object,
    row_number() OVER (PARTITION BY m.category, m.psp_reference ORDER BY m.row_number)
        AS nth_reference, CASE
        WHEN m.category = 'fee' THEN NULL
        WHEN m.matched IS NULL THEN 'missing_in_kassa'
        WHEN m.kassa_currency <> m.currency THEN 'currency_mismatch'
        -- a payment kassa still has as processing: the PSP's gross must be what kassa asked
        -- for, or nothing is posted on trust
        WHEN m.category = 'charge' AND m.kassa_status = 'processing'
             AND m.kassa_amount <> abs(m.gross) THEN 'amount_mismatch'
        WHEN m.kassa_status IS DISTINCT FROM m.psp_status THEN 'status_mismatch'
        WHEN m.kassa_amount <> abs(m.gross) THEN 'amount_mismatch'
        WHEN m.expected_fee IS NOT NULL AND m.expected_fee <> m.fee THEN 'fee_mismatch'
    END AS problem,
    -- the PSP captured what kassa still has as processing (recovery will record it), for
    -- exactly the intent's amount: the money is at the PSP as reported, so its settlement
    -- is posted now
    coalesce(m.category = 'charge' AND m.kassa_status = 'processing'
             AND m.psp_status = 'captured' AND m.kassa_currency = m.currency
             AND m.kassa_amount = m.gross, false)
        AS resolvable
    FROM (
        SELECT s.*, coalesce(p1.merchant_id, p2.merchant_id, r1.merchant_id, r2.merchant_id,
                d.merchant_id) AS merchant_id,
            coalesce(p1.id, p2.id, r1.id, r2.id, d.id) AS matched,
            -- a payment still processing has received nothing yet: what kassa asked for
            CASE WHEN coalesce(p1.status, p2.status) = 'processing'
                 THEN coalesce(p1.amount, p2.amount)
                 ELSE coalesce(p1.amount_received, p2.amount_received, r1.amount, r2.amount,
                               d.amount) END AS kassa_amount,
            coalesce(p1.currency, p2.currency, r1.currency, r2.currency, d.currency)
                AS kassa_currency,
            CASE WHEN coalesce(p1.id, p2.id) IS NOT NULL THEN CASE coalesce(p1.status, p2.status)
                     WHEN 'succeeded' THEN 'captured' ELSE coalesce(p1.status, p2.status) END
                 WHEN coalesce(r1.id, r2.id) IS NOT NULL THEN CASE coalesce(r1.status, r2.status)
                     WHEN 'succeeded' THEN 'refunded' ELSE coalesce(r1.status, r2.status) END
                 -- a won dispute was charged back, then reversed: a row of each
                 WHEN d.id IS NOT NULL AND s.category = 'chargeback_reversal'
                     THEN CASE d.status WHEN 'won' THEN 'reversed' ELSE d.status END
                 WHEN d.id IS NOT NULL THEN CASE WHEN d.status IN ('needs_response',
                     'under_review', 'lost', 'won') THEN 'charged_back' ELSE d.status END
            END AS kassa_status
        FROM reconciliation_stage s
        -- by the PSP's reference (hash joins: one pass over each table, no index needed)
        LEFT JOIN payment_intents p1 ON s.category = 'charge' AND p1.psp = $1
            AND p1.psp_reference = s.psp_reference
        LEFT JOIN refunds r1 ON s.category = 'refund' AND r1.psp_reference = s.psp_reference
        LEFT JOIN disputes d ON s.category IN ('chargeback', 'chargeback_reversal')
            AND d.psp = $1
            AND d.psp_dispute_id = s.psp_reference
        -- else by kassa's reference: the attempt id kassa sent as the PSP's idempotency key
        LEFT JOIN attempts pa ON p1.id IS NULL AND s.category = 'charge'
            AND pa.id = s.kassa_reference AND pa.operation = 'authorize' AND pa.psp = $1
        LEFT JOIN payment_intents p2 ON p2.id = pa.payment_intent_id
        LEFT JOIN attempts ra ON r1.id IS NULL AND s.category = 'refund'
            AND ra.id = s.kassa_reference AND ra.operation = 'refund' AND ra.psp = $1
        LEFT JOIN refunds r2 ON r2.id = ra.refund_id
    ) m
    -- posted by an earlier run (another file with the same movement): not again. Looked up
    -- after matching: the same kassa object in the same category, however the PSP's
    -- reference reads in each file (blank in one, another in the other); or the same posted
    -- PSP reference; or, for a fee row without one, the same fingerprint. One index lookup
    -- per row (reconciliation_settled_object, reconciliation_settled: unique, so LIMIT 1
    -- drops nothing), not a hash over all history: the cost stays as the history grows
    LEFT JOIN LATERAL (SELECT d1.run_id FROM reconciliation_items d1 WHERE d1.posted
        AND d1.matched IS NOT NULL AND d1.category = m.category AND d1.matched = m.matched
        LIMIT 1) d1 ON true
    LEFT JOIN LATERAL (SELECT d2.run_id FROM reconciliation_items d2 WHERE d2.posted
        AND d2.category = m.category AND d2.psp_reference = m.psp_reference LIMIT 1) d2
        ON true
    LEFT JOIN (SELECT min(f.run_id) AS run_id, f.currency, f.gross, f.fee, f.created
               FROM reconciliation_items f WHERE f.posted AND f.category = 'fee'
               AND f.matched IS NULL AND f.psp_reference IS NULL
               GROUP BY f.currency, f.gross, f.fee, f.created) d3
        ON m.category = 'fee' AND m.psp_reference IS NULL AND d3.currency = m.currency
        AND d3.gross = m.gross AND d3.fee = m.fee
        AND d3.created IS NOT DISTINCT FROM m.created
) x
"""


async def match_rows(conn: asyncpg.Connection, *, psp: str) -> None:
    """Match the staged rows into reconciliation_matched (the settings lock_psp made)."""
    await conn.execute(CREATE_MATCHED)
    await conn.execute(MATCH, psp)
    # missing_at_psp asks "has this file a row for this object" once per posting of the
    # covered day; the day's newest ledger rows are seldom analysed yet, so the planner
    # expects one and loops: without an index each loop scanned the whole table (quadratic:
    # 21 s at 20,000 rows, found by review), with it each is one lookup
    await conn.execute("CREATE INDEX ON reconciliation_matched (matched, category)")
    await conn.execute("ANALYZE reconciliation_matched")


async def duplicate_rows(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The first movement the file has more than once: the same kassa object, or the same
    PSP reference, in one category (None: none). MATCH numbered each row within its object
    and its reference; only such a repeated movement has a row whose number is not 1."""
    return await conn.fetchrow(
        "SELECT category, what, rows FROM ("
        " SELECT category, matched AS what, array_agg(row_number ORDER BY row_number) AS rows"
        " FROM reconciliation_matched WHERE matched IS NOT NULL AND (category, matched) IN"
        "  (SELECT category, matched FROM reconciliation_matched WHERE nth_object > 1)"
        " GROUP BY category, matched"
        " UNION ALL SELECT category, psp_reference,"
        " array_agg(row_number ORDER BY row_number) FROM reconciliation_matched"
        " WHERE psp_reference IS NOT NULL AND (category, psp_reference) IN"
        "  (SELECT category, psp_reference FROM reconciliation_matched"
        "   WHERE nth_reference > 1)"
        " GROUP BY category, psp_reference) d"
        " ORDER BY rows[1] LIMIT 1")


async def write_items(conn: asyncpg.Connection, *, run_id: str) -> None:
    """The run's rows, as matched, into reconciliation_items: one statement, in row order
    (the primary key's b-tree is appended to, not split at random)."""
    await conn.execute(f"INSERT INTO reconciliation_items (run_id, {MATCHED_COLUMNS})"
                       f" SELECT $1, {MATCHED_COLUMNS} FROM reconciliation_matched"
                       " ORDER BY row_number", run_id)


async def record_discrepancies(conn: asyncpg.Connection, *, run_id: str, created: int) -> None:
    """One discrepancy per problem row; ``status_mismatch`` of a payment kassa still has as
    ``processing`` while the PSP captured it is auto-resolved: recovery is asked to look at
    its open attempts now (it records the capture the PSP made)."""
    await conn.execute(
        "INSERT INTO reconciliation_discrepancies (id, run_id, row_number, kind, category,"
        " merchant_id, psp_reference, kassa_object, currency, kassa_amount, psp_amount,"
        " kassa_value, psp_value, resolution, resolution_how, resolved_at, created)"
        " SELECT 'rdsc_' || substr($1, 7) || '_' || i.row_number, $1, i.row_number, i.problem,"
        " i.category, i.merchant_id, i.psp_reference, i.matched,"
        # a converted row's fee and settled gross are in its settlement currency
        " CASE WHEN i.problem = 'fee_mismatch' OR i.expected_settled IS NOT NULL"
        "   THEN coalesce(i.settlement_currency, i.currency) ELSE i.currency END,"
        " CASE WHEN i.expected_settled IS NOT NULL THEN abs(i.expected_settled)"
        "   ELSE i.kassa_amount END,"
        " CASE WHEN i.expected_settled IS NOT NULL THEN abs(i.settlement_gross)"
        "   ELSE abs(i.gross) END,"
        " CASE WHEN i.expected_settled IS NOT NULL THEN i.expected_settled::text"
        "   ELSE CASE i.problem WHEN 'currency_mismatch' THEN i.kassa_currency"
        "   WHEN 'status_mismatch' THEN i.kassa_status"
        "   WHEN 'fee_mismatch' THEN i.expected_fee::text END END,"
        " CASE WHEN i.expected_settled IS NOT NULL THEN i.settlement_gross::text"
        "   ELSE CASE i.problem WHEN 'currency_mismatch' THEN i.currency"
        "   WHEN 'status_mismatch' THEN i.psp_status WHEN 'fee_mismatch' THEN i.fee::text END"
        " END,"
        " CASE WHEN auto THEN 'auto_resolved' ELSE 'open' END,"
        " CASE WHEN auto THEN 'settlement posted; recovery asked to resolve the payment''s"
        " open attempts at the PSP' END, CASE WHEN auto THEN $2::bigint END, $2"
        " FROM (SELECT i.*, (i.problem = 'status_mismatch' AND i.posted) AS auto"
        "   FROM reconciliation_matched i WHERE i.problem IS NOT NULL) i",
        run_id, created)
    await conn.execute(
        # whatever the row's problem (a refused conversion replaces status_mismatch)
        "UPDATE attempts a SET next_check_at = now() FROM reconciliation_matched i"
        " WHERE i.category = 'charge'"
        " AND i.kassa_status = 'processing' AND i.psp_status = 'captured'"
        " AND a.payment_intent_id = i.matched AND a.status IN ('started', 'unknown')")


async def record_missing_at_psp(conn: asyncpg.Connection, *, run_id: str, psp: str,
                                covers_from: int, covers_to: int, created: int) -> None:
    """Money kassa recorded at this PSP on the days the report covers that no run has a row
    for: captures, refunds and chargebacks (by their ledger posting's time). This run's rows
    are still only in reconciliation_matched: each day's posting is first checked against
    them (one hash anti-join on the posting's source, before the object is even read); the
    few left are looked up in the earlier runs' reconciliation_items (one index lookup each,
    a subplan: never a hash over all history)."""
    def here(category: str) -> str:  # a literal of this function's, not input
        return ("NOT EXISTS (SELECT 1 FROM reconciliation_matched m WHERE m.matched ="
                f" t.source_id AND m.category = '{category}')")
    await conn.execute(
        "INSERT INTO reconciliation_discrepancies (id, run_id, kind, category, merchant_id,"
        " kassa_object, currency, kassa_amount, resolution, created)"
        " SELECT 'rdsc_' || substr($1, 7) || '_k' || row_number() OVER (ORDER BY k.id), $1,"
        " 'missing_at_psp', k.category, k.merchant_id, k.id, k.currency, k.amount, 'open', $5"
        " FROM (SELECT 'charge' AS category, p.id, p.merchant_id, p.currency,"
        "   p.amount_received AS amount FROM ledger_transactions t"
        # the payment read by its key only for a capture this file does not have
        "   JOIN LATERAL (SELECT * FROM payment_intents p WHERE p.id = t.source_id"
        "     AND p.psp = $2 LIMIT 1) p ON true WHERE t.kind = 'capture'"
        "   AND t.created_at >= to_timestamp($3) AND t.created_at < to_timestamp($4)"
        f"   AND {here('charge')}"
        "  UNION ALL SELECT 'refund', r.id, r.merchant_id, r.currency, r.amount"
        "   FROM ledger_transactions t JOIN refunds r ON r.id = t.source_id"
        "   JOIN payment_intents p ON p.id = r.payment_intent_id WHERE t.kind = 'refund'"
        "   AND t.created_at >= to_timestamp($3) AND t.created_at < to_timestamp($4)"
        f"   AND p.psp = $2 AND {here('refund')}"
        "  UNION ALL SELECT 'chargeback', d.id, d.merchant_id, d.currency, d.amount"
        "   FROM ledger_transactions t JOIN disputes d ON d.id = t.source_id"
        "   WHERE t.kind = 'dispute' AND t.created_at >= to_timestamp($3)"
        f"   AND t.created_at < to_timestamp($4) AND d.psp = $2 AND {here('chargeback')}"
        "  UNION ALL SELECT 'chargeback_reversal', d.id, d.merchant_id, d.currency, d.amount"
        "   FROM ledger_transactions t JOIN disputes d ON d.id = t.source_id"
        "   WHERE t.kind = 'dispute_reversal' AND t.created_at >= to_timestamp($3)"
        "   AND t.created_at < to_timestamp($4) AND d.psp = $2"
        f"   AND {here('chargeback_reversal')}) k"
        # an earlier run's item of the object in the category: posted
        # (reconciliation_settled_object) or not (reconciliation_items_matched)
        " WHERE (SELECT 1 FROM reconciliation_items i WHERE i.posted"
        "   AND i.category = k.category AND i.matched = k.id LIMIT 1) IS NULL"
        " AND (SELECT 1 FROM reconciliation_items i WHERE NOT i.posted"
        "   AND i.matched = k.id AND i.category = k.category LIMIT 1) IS NULL",
        run_id, psp, covers_from, covers_to, created)


def settlement_source(run_id: str, currency: str, settlement_currency: str | None = None,
                      exchange_rate: str | None = None) -> str:
    """The settlement transaction's source: ``run:ccy`` for the rows settled in their own
    currency, ``run:ccy>settlement@rate`` for the rows the PSP converted at one rate (the
    rate as PostgreSQL prints the stored numeric; ledger/invariants.py builds the same)."""
    if settlement_currency is None:
        return f"{run_id}:{currency}"
    return f"{run_id}:{currency}>{settlement_currency}@{exchange_rate}"


async def post_settlement(conn: asyncpg.Connection, *, run_id: str, psp: str) -> None:
    """One ledger transaction per currency for the run's posted rows: Dr bank:cash net,
    Dr expense:psp_fees fee / Cr psp receivable gross (a refund's or chargeback's negative
    gross debits the receivable back); and one per presentment currency, settlement
    currency and rate for the rows the PSP converted, through the trading accounts at the
    PSP's rate (domain/ledger.py's settlement), the rate kept on the transaction."""
    sums = await conn.fetch(
        "SELECT currency, settlement_currency, exchange_rate, exchange_rate::text AS rate,"
        " sum(gross)::bigint AS gross, sum(fee)::bigint AS fee,"
        " sum(settlement_gross)::bigint AS settled"
        " FROM reconciliation_matched WHERE posted"
        " GROUP BY currency, settlement_currency, exchange_rate"
        " ORDER BY currency, settlement_currency NULLS FIRST, exchange_rate")
    for s in sums:
        gross = Money(s["gross"], s["currency"])
        converted = s["settlement_currency"] is not None
        if converted:
            settled = Money(s["settled"], s["settlement_currency"])
            fee = Money(s["fee"], settled.currency)
            traded = convert(gross, s["exchange_rate"], settled.currency)
            if not (gross.minor or settled.minor or fee.minor):
                continue
            posting = ledger.settlement(psp=psp, gross=gross, fee=fee, settled=settled,
                                        traded=traded)
            # the rate is the conversion's only if the trading legs carry one
            rate = s["exchange_rate"] if any(
                e.account.startswith(FX_PREFIX) for e in posting.entries) else None
        else:
            fee = Money(s["fee"], gross.currency)
            if not (gross.minor or fee.minor):
                continue
            posting = ledger.settlement(psp=psp, gross=gross, fee=fee)
            rate = None
        tx_id = await conn.fetchval(
            "INSERT INTO ledger_transactions (kind, merchant_id, source_id, exchange_rate)"
            " VALUES ($1, $2, $3, $4) RETURNING id", posting.kind.value, PLATFORM,
            settlement_source(run_id, s["currency"], s["settlement_currency"], s["rate"]),
            rate)
        await conn.executemany(
            "INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(tx_id, e.account, e.amount.currency, e.layer.value, e.amount.minor)
             for e in posting.entries])


async def finish_run(conn: asyncpg.Connection, *, run_id: str, covers_from: int | None,
                     covers_to: int | None, completed_at: int) -> None:
    await conn.execute(
        "UPDATE reconciliation_runs r SET status = 'completed', covers_from = $2,"
        " covers_to = $3, completed_at = $4,"
        " (rows_read, rows_matched) = (SELECT count(*), count(*) FILTER (WHERE matched"
        "   IS NOT NULL AND (posted OR problem IS NULL OR problem = 'fee_mismatch'))"
        "   FROM reconciliation_matched),"
        " discrepancies = (SELECT count(*) FROM reconciliation_discrepancies"
        "   WHERE run_id = $1) WHERE id = $1", run_id, covers_from, covers_to, completed_at)


async def receivable(conn: Conn, *, psp: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT currency, sum(amount)::bigint AS total FROM ledger_entries"
                            " WHERE account = $1 AND layer = 'posted' GROUP BY currency",
                            psp_receivable(psp))
