"""`kassa ledger verify` bounds a converted settlement's FX gain/loss (fxfix): what a PSP
settled off its own rate may be its rounding (one minor unit, plus one per fee part it rounds
on its own: ledger/invariants.py SETTLED_ROUNDING_PER_ROW per row), never more — a posting
that booked a PSP's short payment as an FX loss (as the 1 % tolerance once let through) is
reported. The rows are written as the import would have posted them, without its checks."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from kassa.db import reconciliation as rdb
from kassa.ledger.verify import verify


async def post_converted_row(k, run_id: str, settled: int) -> None:
    """One charge row of 10,000.00 EUR the PSP says it settled as ``settled`` USD cents at
    1.0850, posted (its settlement transaction written by post_settlement)."""
    async with k.pool.acquire() as conn, conn.transaction():
        await rdb.insert_run(conn, run_id=run_id, psp="fxfix", format="simulator",
                             source_name=f"{run_id}.csv",
                             sha256=hashlib.sha256(run_id.encode()).hexdigest(), created=1)
        await conn.execute(rdb.CREATE_MATCHED)  # the import's matched rows, as MATCH leaves them
        await conn.execute(
            "INSERT INTO reconciliation_matched (row_number, category, psp_reference,"
            " gross, fee, currency, posted, settlement_currency, settlement_gross,"
            " exchange_rate) VALUES (2, 'charge', $1, 1000000, 0, 'eur', true, 'usd', $2,"
            " $3)", run_id, settled, Decimal("1.0850"))
        await rdb.post_settlement(conn, run_id=run_id, psp="fxfix")
        await rdb.write_items(conn, run_id=run_id)


async def test_fx_gain_loss_within_rounding_verifies_beyond_it_is_reported(world):
    k, _, _ = world
    await post_converted_row(k, "recon_fxfix_ok", 1_085_000 + 5)  # at the bound
    report = await verify(k.pool)
    assert report.ok, report.problems

    await post_converted_row(k, "recon_fxfix_short", 1_075_000)  # 100.00 USD short
    report = await verify(k.pool)
    assert not report.ok
    assert report.problems == [
        "settlement recon_fxfix_short:eur>usd@1.0850: FX gain/loss 10000 usd for 1"
        " converted row(s), more than the PSP's rounding (5 per row)"]
