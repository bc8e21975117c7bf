"""PSP timeouts and errors leave payments `processing`; recovery finishes them exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kassa import bootstrap
from kassa.ledger.verify import verify
from kassa.services import payments, recovery, refunds
from kassa.services.context import Kassa


@pytest.fixture
async def impatient(settings, dsn) -> AsyncIterator[Kassa]:
    """kassa with a 0.3 s PSP timeout and recovery allowed at once."""
    k, close = await bootstrap.build(settings.model_copy(update={"psp_timeout_seconds": 0.3}),
                                     dsn, pool_size=4)
    k.recovery_after_seconds = 0.0
    try:
        yield k
    finally:
        await close()


async def sim_count(sim, merchant_id: str) -> int:
    rows = (await sim.get("/_sim/authorizations")).json()
    rows = rows["data"] if isinstance(rows, dict) else rows
    return len([a for a in rows if a["merchant_id"] == merchant_id])


async def fault(sim, *names: str, hang: float = 1.0) -> None:
    await sim.post("/_sim/config", json={"timeout_hang_s": hang})
    await sim.post("/_sim/faults", json={"faults": list(names)})


async def new_payment(k: Kassa, merchant_id: str, **kw) -> dict:
    return await payments.create(k, merchant_id=merchant_id, amount=5000, currency="usd",
                                 payment_method="pm_card_visa", **kw)


async def test_timeout_after_charge_is_recovered_as_success(impatient, merchant, sim):
    mid = merchant["merchant_id"]
    pi = await new_payment(impatient, mid)
    await fault(sim, "timeout_after_charge")
    got = await payments.confirm(impatient, merchant_id=mid, payment_id=pi["id"])
    assert got["status"] == "processing"  # not guessed: the PSP did not answer
    assert await recovery.recover_open_attempts(impatient) >= 1
    done = await payments.retrieve(impatient, merchant_id=mid, payment_id=pi["id"])
    assert done["status"] == "succeeded" and done["amount_received"] == 5000
    assert await sim_count(sim, mid) == 1
    # a second pass finds nothing left to do
    await recovery.recover_open_attempts(impatient)
    async with impatient.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions"
                                   " WHERE source_id = $1", pi["id"]) == 1
        assert await conn.fetchval("SELECT count(*) FROM events WHERE object_id = $1"
                                   " AND type = 'payment_intent.succeeded'", pi["id"]) == 1
    assert (await verify(impatient.pool)).ok


async def test_call_that_never_reached_the_psp_is_repeated_with_its_key(impatient, merchant,
                                                                       sim):
    mid = merchant["merchant_id"]
    pi = await new_payment(impatient, mid)
    await fault(sim, "timeout_before_charge")
    got = await payments.confirm(impatient, merchant_id=mid, payment_id=pi["id"])
    assert got["status"] == "processing"
    assert await sim_count(sim, mid) == 0
    await recovery.recover_open_attempts(impatient)
    done = await payments.retrieve(impatient, merchant_id=mid, payment_id=pi["id"])
    assert done["status"] == "succeeded" and await sim_count(sim, mid) == 1


async def test_repeated_decline_is_recorded(impatient, merchant, sim):
    mid = merchant["merchant_id"]
    pi = await payments.create(impatient, merchant_id=mid, amount=700, currency="usd",
                               payment_method="pm_card_chargeDeclined")
    await fault(sim, "timeout_before_charge")
    assert (await payments.confirm(impatient, merchant_id=mid,
                                   payment_id=pi["id"]))["status"] == "processing"
    await recovery.recover_open_attempts(impatient)
    done = await payments.retrieve(impatient, merchant_id=mid, payment_id=pi["id"])
    assert done["status"] == "requires_payment_method"
    assert done["last_payment_error"]["decline_code"] == "generic_decline"


async def test_psp_503_then_recovery(impatient, merchant, sim):
    mid = merchant["merchant_id"]
    pi = await new_payment(impatient, mid)
    await fault(sim, "error")
    assert (await payments.confirm(impatient, merchant_id=mid,
                                   payment_id=pi["id"]))["status"] == "processing"
    await recovery.recover_open_attempts(impatient)
    done = await payments.retrieve(impatient, merchant_id=mid, payment_id=pi["id"])
    assert done["status"] == "succeeded" and await sim_count(sim, mid) == 1


async def test_capture_timeout_is_recovered(impatient, merchant, sim):
    mid = merchant["merchant_id"]
    pi = await new_payment(impatient, mid, capture_method="manual", confirm=True)
    assert pi["status"] == "requires_capture"
    await fault(sim, "timeout_before_charge")  # the capture never reached the PSP
    got = await payments.capture(impatient, merchant_id=mid, payment_id=pi["id"],
                                 amount_to_capture=3000)
    assert got["status"] == "processing"
    await recovery.recover_open_attempts(impatient)  # repeats the capture with its key
    done = await payments.retrieve(impatient, merchant_id=mid, payment_id=pi["id"])
    assert (done["status"], done["amount_received"]) == ("succeeded", 3000)
    assert (await verify(impatient.pool)).ok


async def test_void_and_refund_timeouts_are_recovered(impatient, merchant, sim):
    mid = merchant["merchant_id"]
    held = await new_payment(impatient, mid, capture_method="manual", confirm=True)
    await fault(sim, "timeout_after_charge")
    assert (await payments.cancel(impatient, merchant_id=mid,
                                  payment_id=held["id"]))["status"] == "processing"
    paid = await new_payment(impatient, mid, confirm=True)
    await fault(sim, "timeout_after_charge")
    refund = await refunds.create(impatient, merchant_id=mid, payment_intent=paid["id"],
                                  amount=1200)
    assert refund["status"] == "pending"
    assert await recovery.recover_open_attempts(impatient) == 2
    assert (await payments.retrieve(impatient, merchant_id=mid,
                                    payment_id=held["id"]))["status"] == "canceled"
    assert (await refunds.retrieve(impatient, merchant_id=mid,
                                   refund_id=refund["id"]))["status"] == "succeeded"
    assert (await verify(impatient.pool)).ok


async def test_recovery_racing_the_request_records_once(impatient, merchant, sim):
    """The request path and a recovery pass both try to finish the same attempt."""
    import asyncio

    mid = merchant["merchant_id"]
    pi = await new_payment(impatient, mid)
    await sim.post("/_sim/config", json={"latency_ms": 150})
    confirm = asyncio.create_task(payments.confirm(impatient, merchant_id=mid,
                                                   payment_id=pi["id"]))
    await asyncio.sleep(0.05)
    await recovery.recover_open_attempts(impatient)
    await confirm
    await recovery.recover_open_attempts(impatient)
    done = await payments.retrieve(impatient, merchant_id=mid, payment_id=pi["id"])
    assert done["status"] == "succeeded"
    async with impatient.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions"
                                   " WHERE source_id = $1", pi["id"]) == 1
    assert await sim_count(sim, mid) == 1


async def test_outcome_is_recorded_when_the_payment_row_moved_during_the_psp_call(
        impatient, merchant, sim):
    """A CAS miss on the payment (not the attempt) must not drop the PSP's answer."""
    import asyncio

    mid = merchant["merchant_id"]
    pi = await new_payment(impatient, mid)
    await sim.post("/_sim/config", json={"latency_ms": 200})
    confirm = asyncio.create_task(payments.confirm(impatient, merchant_id=mid,
                                                   payment_id=pi["id"]))
    await asyncio.sleep(0.1)
    async with impatient.pool.acquire() as conn:
        await conn.execute("UPDATE payment_intents SET version = version + 1 WHERE id = $1",
                           pi["id"])
    done = await confirm
    assert done["status"] == "succeeded"
    async with impatient.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM attempts WHERE payment_intent_id = $1",
                                   pi["id"]) == "succeeded"
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions"
                                   " WHERE source_id = $1", pi["id"]) == 1
    assert await sim_count(sim, mid) == 1
    assert (await verify(impatient.pool)).ok
