"""On a freshly migrated database (empty tables, statistics that say so) the write path
must still look rows up by key: PL/pgSQL caches the plans it makes in the first minutes
for the life of each connection, and a sequential-scan plan made on an empty table would
read the whole, growing table on every payment afterwards (migration 0006)."""

from __future__ import annotations

import asyncpg

from kassa import bootstrap
from kassa.services import merchants, payments
from tests.support.databases import migrated_database

HOT_TABLES = ("payment_intents", "attempts", "idempotency_keys", "ledger_transactions",
              "refunds")


async def seq_scans(conn: asyncpg.Connection) -> dict[str, int]:
    await conn.execute("SELECT pg_stat_force_next_flush()")  # this backend's counters
    rows = await conn.fetch("SELECT relname, seq_scan FROM pg_stat_user_tables"
                            " WHERE relname = ANY($1::text[])", list(HOT_TABLES))
    return {r["relname"]: r["seq_scan"] for r in rows}


async def test_saga_steps_never_scan_a_whole_table_on_a_fresh_deploy(server_url, settings):
    with migrated_database(server_url, "kassa_fresh") as url:
        admin = await asyncpg.connect(url)
        try:
            await admin.execute("ANALYZE")  # what a deploy does: statistics of empty tables
        finally:
            await admin.close()
        # one connection, so every plan is made (and cached) in the same session
        k, close = await bootstrap.build(settings, url, pool_size=1)
        try:
            mid = (await merchants.create_merchant(k, name="fresh"))["merchant_id"]
            async with k.pool.acquire() as conn:
                before = await seq_scans(conn)
            for i in range(30):
                pi = await payments.create(
                    k, merchant_id=mid, amount=1000 + i, currency="usd",
                    payment_method="pm_card_visa", confirm=True,
                    capture_method="manual" if i % 3 == 0 else "automatic")
                if pi["status"] == "requires_capture":
                    await payments.capture(k, merchant_id=mid, payment_id=pi["id"],
                                           amount_to_capture=500)
            async with k.pool.acquire() as conn:
                after = await seq_scans(conn)
        finally:
            await close()
    grown = {t: after[t] - before[t] for t in HOT_TABLES if after[t] != before[t]}
    assert grown == {}, f"sequential scans on the write path: {grown}"
