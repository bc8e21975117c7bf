"""Group commit (db/batch_writer.py): units of work from concurrent requests share one
transaction, yet each keeps exactly the outcome it would have had on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any, cast

import asyncpg
import pytest

from kassa.db import ops, units
from kassa.db.batch_writer import BatchWriter
from kassa.db.pool import create_pool
from kassa.domain.errors import ConcurrentModification
from kassa.ledger.verify import verify
from kassa.services import payments
from kassa.services.context import Kassa
from kassa.services.uow import UnitOfWork
from tests.support.pg_proxy import LosingProxy


def claim(mid: str, key: str) -> list[ops.Op]:
    return [ops.ClaimIdempotency(merchant_id=mid, key=key, fingerprint=b"\x01" * 32,
                                      method="POST", path="/v1/test")]


@dataclasses.dataclass(frozen=True)
class RawOp:
    """An op as JSON, for what the typed ops refuse to build (an unbalanced posting)."""

    json: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.json


def cas_miss() -> list[ops.Op]:
    return [ops.UpdatePayment({"id": "pi_" + secrets.token_hex(8), "version": 0,
                               "status": "succeeded"})]


def unbalanced(mid: str) -> list[ops.Op]:
    return [cast(ops.Op, RawOp({"op": "post_ledger", "row": {
        "kind": "capture", "merchant_id": mid, "source_id": "pi_" + secrets.token_hex(8),
        "hold_ref": None, "entries": [
            {"account": "psp:simulator:receivable", "currency": "usd", "layer": "posted",
             "amount": 100},
            {"account": f"merchant:{mid}:pending", "currency": "usd", "layer": "posted",
             "amount": -99}]}}))]


async def claimed_keys(k: Kassa, mid: str) -> set[str]:
    rows = await k.pool.fetch("SELECT key FROM idempotency_keys WHERE merchant_id = $1", mid)
    return {r["key"] for r in rows}


async def run_together(w: BatchWriter, units: list[list[ops.Op]]) -> list[BaseException | None]:
    """Submit all units before the writer's flush task runs: one batch (max_inflight=1)."""
    return list(await asyncio.gather(*(w.apply(u) for u in units), return_exceptions=True))


async def test_concurrent_units_share_a_transaction_and_all_apply(kassa):
    mid = "acct_bw_" + secrets.token_hex(6)
    w = BatchWriter(kassa.pool, max_inflight=1)
    out = await run_together(w, [claim(mid, f"k{i}") for i in range(20)])
    assert out == [None] * 20
    assert w.stats() == {"batches": 1, "units": 20, "units_per_batch": 20.0}
    assert await claimed_keys(kassa, mid) == {f"k{i}" for i in range(20)}


async def test_refused_units_fail_alone_with_their_own_error(kassa):
    mid = "acct_bw_" + secrets.token_hex(6)
    w = BatchWriter(kassa.pool, max_inflight=1)
    out = await run_together(w, [claim(mid, "a"), cas_miss(), claim(mid, "a"),
                                 claim(mid, "b")])
    assert out[0] is None and out[3] is None
    assert isinstance(out[1], ConcurrentModification)
    assert isinstance(out[2], units.IdempotencyKeyTaken)  # saw the first unit's insert
    assert w.batches == 1
    assert await claimed_keys(kassa, mid) == {"a", "b"}


async def test_a_unit_failing_at_commit_does_not_take_the_others_down(kassa):
    """The deferred ledger check fails the whole batch at COMMIT; every unit is then
    applied on its own, so only the unbalanced one is refused."""
    mid = "acct_bw_" + secrets.token_hex(6)
    w = BatchWriter(kassa.pool, max_inflight=1)
    out = await run_together(w, [claim(mid, "x"), unbalanced(mid), claim(mid, "y")])
    assert out[0] is None and out[2] is None
    assert isinstance(out[1], asyncpg.CheckViolationError)
    assert "unbalanced" in str(out[1])
    assert await claimed_keys(kassa, mid) == {"x", "y"}
    assert (await verify(kassa.pool)).ok


async def test_other_unit_errors_are_the_exact_errors_of_a_lone_unit(kassa):
    mid = "acct_bw_" + secrets.token_hex(6)
    event = {"id": "evt_" + secrets.token_hex(8), "merchant_id": mid, "type": "t",
             "object_id": "pi_x", "data": {}, "created": 0}
    await units.apply(kassa.pool, [ops.InsertEvents([event])])
    w = BatchWriter(kassa.pool, max_inflight=1)
    out = await run_together(w, [claim(mid, "p"), [ops.InsertEvents([event])]])
    assert out[0] is None
    assert isinstance(out[1], asyncpg.UniqueViolationError)
    assert out[1].constraint_name == "events_pkey"


async def test_a_unit_cancelled_while_queued_is_never_applied(kassa):
    mid = "acct_bw_" + secrets.token_hex(6)
    w = BatchWriter(kassa.pool, max_inflight=1)
    first = asyncio.create_task(w.apply(claim(mid, "first")))
    await asyncio.sleep(0)  # "first" is queued and has started the flush task
    queued = asyncio.create_task(w.apply(claim(mid, "queued")))
    await asyncio.sleep(0)  # the flush task took "first" alone; "queued" waits behind it
    assert w.batches == 1 and not queued.done()
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    await first
    await w.close()
    assert await claimed_keys(kassa, mid) == {"first"}


async def test_a_unit_whose_caller_went_away_in_flight_still_commits(kassa):
    mid = "acct_bw_" + secrets.token_hex(6)
    w = BatchWriter(kassa.pool, max_inflight=1)
    tasks = [asyncio.create_task(w.apply(claim(mid, k))) for k in ("a", "b")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # both are in the flush now
    assert w.batches == 1
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    await tasks[1]
    await w.close()
    assert await claimed_keys(kassa, mid) == {"a", "b"}  # the transaction was not undone


async def test_a_lost_reply_is_an_unknown_outcome_never_a_refusal(kassa, dsn):
    """The batch commits but its answer never arrives. Each caller must get the error a
    lone unit would get (connection lost: outcome unknown), not "key taken" or "modified
    concurrently" from blindly re-applying committed work: a caller that believes its
    write was refused does it again (a second refund, a second payment)."""
    proxy = LosingProxy(dsn)
    pool = await create_pool(await proxy.start(), min_size=1, max_size=1)
    try:
        w = BatchWriter(pool, max_inflight=1)
        mid = "acct_bw_" + secrets.token_hex(6)
        assert await run_together(w, [claim(mid, "w1"), claim(mid, "w2")]) == [None, None]
        proxy.armed = True
        out = await run_together(w, [claim(mid, f"k{i}") for i in range(3)])
        assert proxy.lost.is_set()
        for o in out:
            assert isinstance(o, asyncpg.PostgresConnectionError | OSError), repr(o)
            assert not isinstance(o, units.IdempotencyKeyTaken | ConcurrentModification)
        assert await claimed_keys(kassa, mid) == {"w1", "w2", "k0", "k1", "k2"}
    finally:
        await pool.close()
        await proxy.close()


async def test_a_unit_waiting_for_a_lock_does_not_hold_back_its_batch(kassa):
    """Another transaction holds the key one unit wants: that unit leaves the batch
    (lock_timeout) and waits on its own; the others commit at once."""
    mid = "acct_bw_" + secrets.token_hex(6)
    holder = await kassa.pool.acquire()
    tx = holder.transaction()
    await tx.start()
    try:
        await units.apply(holder, claim(mid, "held"))  # uncommitted: "held" is locked
        w = BatchWriter(kassa.pool, max_inflight=1)
        waiting = asyncio.create_task(w.apply(claim(mid, "held")))
        others = [asyncio.create_task(w.apply(claim(mid, k))) for k in ("p", "q")]
        await asyncio.wait_for(asyncio.gather(*others), timeout=5)
        assert await claimed_keys(kassa, mid) == {"p", "q"}
        assert not waiting.done()
    finally:
        await tx.rollback()  # the holder gives the key up
        await kassa.pool.release(holder)
    await asyncio.wait_for(waiting, timeout=5)
    assert await claimed_keys(kassa, mid) == {"held", "p", "q"}


async def test_units_with_their_own_transaction_bypass_the_writer(kassa):
    mid = "acct_bw_" + secrets.token_hex(6)
    w = BatchWriter(kassa.pool)
    k = dataclasses.replace(kassa, writer=w)
    async with UnitOfWork(k) as uow:
        await uow.connection()  # an explicit transaction: reads and locks come first
        uow.add(*claim(mid, "own"))
        await uow.commit()
    assert w.stats()["units"] == 0
    assert await claimed_keys(kassa, mid) == {"own"}


async def test_batches_form_under_load_and_the_books_balance(kassa, merchant):
    """Real payments through the services, 40 at once: fewer transactions than units, every
    payment succeeded once, and the ledger verifies."""
    mid = merchant["merchant_id"]
    assert isinstance(kassa.writer, BatchWriter)  # bootstrap turns group commit on
    before = kassa.writer.stats()

    async def pay() -> dict:
        return await payments.create(kassa, merchant_id=mid, amount=1234, currency="usd",
                                     payment_method="pm_card_visa", confirm=True)

    done = await asyncio.gather(*(pay() for _ in range(40)))
    assert {p["status"] for p in done} == {"succeeded"}
    after = kassa.writer.stats()
    units = after["units"] - before["units"]
    assert units >= 80  # two saga steps per payment
    assert after["batches"] - before["batches"] < units
    count = await kassa.pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE merchant_id = $1", mid)
    assert count == 40
    assert (await verify(kassa.pool)).ok


async def test_without_group_commit_each_unit_is_its_own_transaction(kassa, merchant):
    """KASSA_DB_WRITE_BATCH=1: no writer; the same saga commits unit by unit."""
    k = dataclasses.replace(kassa, writer=None)
    pi = await payments.create(k, merchant_id=merchant["merchant_id"], amount=777,
                               currency="usd", payment_method="pm_card_visa", confirm=True)
    assert pi["status"] == "succeeded" and pi["amount_received"] == 777
    assert (await verify(kassa.pool)).ok
