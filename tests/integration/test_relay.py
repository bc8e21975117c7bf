"""The outbox relay against real PostgreSQL with an in-memory publisher: commit-safe cursor
(a long transaction is waited for, not skipped), per-payment order under concurrent writers,
at-least-once across a crash between publish and position update, one leader per name."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Sequence

import asyncpg
import pytest

from kassa.db import events as events_db
from kassa.db import ops, units
from kassa.db import relay as relay_db
from kassa.events.publisher import InMemoryPublisher, OutboxEvent
from kassa.events.relay import Relay
from kassa.services.context import Kassa
from kassa.workers import loops


def relay_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def event_row(merchant_id: str, type: str, obj: dict[str, object]) -> dict[str, object]:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = {"id": event_id, "object": "event", "type": type, "created": 1,
            "data": {"object": obj}, "livemode": False, "pending_webhooks": 0}
    return {"id": event_id, "merchant_id": merchant_id, "type": type, "object_id": obj["id"],
            "data": body, "created": 1}


def pi_event(merchant_id: str, payment: str, type: str = "payment_intent.created"
             ) -> dict[str, object]:
    return event_row(merchant_id, type, {"id": payment, "object": "payment_intent"})


async def write(conn: asyncpg.Connection | asyncpg.Pool, *rows: dict[str, object]) -> list[str]:
    """Insert events the way a unit of work does (kassa_apply), in one transaction."""
    await units.apply(conn, [ops.InsertEvents(list(rows))])
    return [str(r["id"]) for r in rows]


def mine(events: Sequence[OutboxEvent], merchant_id: str) -> list[OutboxEvent]:
    return [e for e in events if e.merchant_id == merchant_id]


def first_copies(ids: Sequence[str]) -> list[str]:
    """What a consumer that deduplicates on event id keeps, in arrival order."""
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


async def test_publishes_each_event_keyed_by_payment_with_its_stored_body(kassa: Kassa):
    mid = f"acct_{uuid.uuid4().hex[:12]}"
    await write(kassa.pool, pi_event(mid, "pi_a"), pi_event(mid, "pi_b"))
    refund = event_row(mid, "refund.created",
                       {"id": "re_1", "object": "refund", "payment_intent": "pi_a"})
    charge = event_row(mid, "charge.refunded",
                       {"id": "ch_1", "object": "charge", "payment_intent": "pi_a"})
    await write(kassa.pool, refund, charge)
    publisher = InMemoryPublisher()
    relay = Relay(pool=kassa.pool, publisher=publisher, name=relay_name(), batch_size=7)
    try:
        await relay.drain()
    finally:
        await relay.close()
    out = mine(publisher.events, mid)
    assert [e.key for e in out] == ["pi_a", "pi_b", "pi_a", "pi_a"]
    assert [e.type for e in out] == ["payment_intent.created", "payment_intent.created",
                                     "refund.created", "charge.refunded"]
    stored = {e.id: await events_db.get_event(kassa.pool, merchant_id=mid, event_id=e.id)
              for e in out}
    for e in out:
        assert json.loads(e.body) == stored[e.id]
        assert dict(e.headers()) == {"event-id": e.id.encode(), "event-type": e.type.encode(),
                                     "merchant-id": mid.encode()}
    assert len({e.id for e in publisher.events}) == len(publisher.events)  # no duplicates


async def test_a_long_transaction_that_commits_late_is_not_skipped(kassa: Kassa):
    """Events committed after a still-open transaction's event wait for it; once it commits
    the relay publishes it first (it was written first) and the payment's order holds."""
    mid = f"acct_{uuid.uuid4().hex[:12]}"
    publisher = InMemoryPublisher()
    relay = Relay(pool=kassa.pool, publisher=publisher, name=relay_name())
    held = await kassa.pool.acquire()
    try:
        await relay.drain()  # catch up with everything before this test
        tx = held.transaction()
        await tx.start()
        [first] = await write(held, pi_event(mid, "pi_held"))  # seq lower than what follows
        later = []
        for i in range(5):  # committed while the first is still open
            later += await write(kassa.pool, pi_event(mid, f"pi_other_{i}"))
        committed = {r["id"] for r in await kassa.pool.fetch(
            "SELECT id FROM events WHERE merchant_id = $1", mid)}
        assert committed == set(later)  # they are visible, the held one is not
        await relay.drain()
        assert mine(publisher.events, mid) == []  # ... yet not published: the relay waits
        await tx.commit()
        [second] = await write(kassa.pool, pi_event(mid, "pi_held", "payment_intent.succeeded"))
        await relay.drain()
    finally:
        await kassa.pool.release(held)
        await relay.close()
    ids = [e.id for e in mine(publisher.events, mid)]
    assert ids == [first, *later, second]
    assert publisher.by_key()["pi_held"] == [first, second]


async def test_concurrent_writers_each_payment_in_commit_order_nothing_lost(kassa: Kassa):
    """20 payments written concurrently, each a chain of transactions that stay open a
    random while (so xids commit out of order), while the relay runs: every event arrives
    once, and each payment's events arrive in the order they committed."""
    mid = f"acct_{uuid.uuid4().hex[:12]}"
    rng = random.Random(7)
    publisher = InMemoryPublisher()
    relay = Relay(pool=kassa.pool, publisher=publisher, name=relay_name(), batch_size=25)
    await relay.drain()
    written: dict[str, list[str]] = {}

    async def payment_chain(payment: str) -> None:
        for step in range(12):
            async with kassa.pool.acquire() as conn, conn.transaction():
                ids = await write(conn, pi_event(mid, payment, f"payment_intent.step{step}"))
                await asyncio.sleep(rng.random() * 0.02)
            written.setdefault(payment, []).extend(ids)  # committed

    done = asyncio.Event()

    async def relay_loop() -> None:
        while not done.is_set():
            if await relay.pass_once() == 0:
                await asyncio.sleep(0.005)

    runner = asyncio.create_task(relay_loop())
    try:
        await asyncio.gather(*(payment_chain(f"pi_c{i}") for i in range(20)))
    finally:
        done.set()
        await runner
    await relay.drain()
    await relay.close()
    positions = [(e.xid, e.seq) for e in publisher.events]
    assert positions == sorted(set(positions))  # strictly increasing cursor: no repeats
    got = publisher.by_key()
    for payment, ids in written.items():
        assert got[payment] == ids
    assert sum(len(v) for v in written.values()) == len(mine(publisher.events, mid)) == 240


class CrashAfterSend(InMemoryPublisher):
    """Delivers the batch to the 'broker' (the list), then dies before the relay can store
    its position: the worst moment for a crash."""

    def __init__(self, crash_on_batch: int) -> None:
        super().__init__()
        self.crash_on_batch = crash_on_batch

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        await super().publish(events)
        if self.batches == self.crash_on_batch:
            raise ConnectionResetError("relay died after the broker acknowledged")


async def test_crash_between_publish_and_position_update_loses_nothing(kassa: Kassa):
    mid = f"acct_{uuid.uuid4().hex[:12]}"
    name = relay_name()
    warmup = Relay(pool=kassa.pool, publisher=InMemoryPublisher(), name=name)
    await warmup.drain()  # position at the end of everything written before this test
    warm = await warmup.status()
    await warmup.close()
    written = []
    for i in range(35):
        written += await write(kassa.pool, pi_event(mid, f"pi_r{i % 4}", f"t.{i}"))

    crashing = CrashAfterSend(crash_on_batch=2)
    relay = Relay(pool=kassa.pool, publisher=crashing, name=name, batch_size=10)
    assert await relay.pass_once() == 10
    before = await relay.status()
    with pytest.raises(ConnectionResetError):
        await relay.pass_once()
    assert (await relay.status()).position == before.position  # not moved: not acknowledged
    await relay.close()  # the process is gone: its connection (and lock) with it

    restarted = InMemoryPublisher()
    relay = Relay(pool=kassa.pool, publisher=restarted, name=name, batch_size=10)
    try:
        await relay.drain()
        status = await relay.status()
    finally:
        await relay.close()
    log = [e.id for e in mine(crashing.events + restarted.events, mid)]  # the broker's log
    assert len(log) == 45  # batch 2 went out twice
    assert first_copies(log) == written
    # The batch whose acknowledgement was lost is counted once: when its re-send was stored.
    assert status.backlog == 0 and status.published - warm.published == 35


async def test_one_relay_per_name_leads_and_a_standby_takes_over(kassa: Kassa):
    mid = f"acct_{uuid.uuid4().hex[:12]}"
    name = relay_name()
    a_out, b_out = InMemoryPublisher(), InMemoryPublisher()
    a = Relay(pool=kassa.pool, publisher=a_out, name=name, batch_size=5)
    b = Relay(pool=kassa.pool, publisher=b_out, name=name, batch_size=5)
    try:
        await a.drain()
        written = await write(kassa.pool, *(pi_event(mid, "pi_lead", f"t.{i}") for i in range(8)))
        assert await b.pass_once() == 0 and not b.leading  # a holds the lock
        assert await a.pass_once() == 5
        await a.close()  # a stops (or dies): b resumes from the stored position
        await b.drain()
        assert b.leading
    finally:
        await a.close()
        await b.close()
    assert [e.id for e in mine(a_out.events, mid)] == written[:5]
    assert [e.id for e in mine(b_out.events, mid)] == written[5:]


async def test_position_never_moves_backwards(kassa: Kassa):
    name = relay_name()
    await relay_db.load_position(kassa.pool, name)
    ahead = relay_db.Position(10**6, 50)
    assert await relay_db.save_position(kassa.pool, name=name, position=ahead, published=1)
    assert not await relay_db.save_position(kassa.pool, name=name,
                                            position=relay_db.Position(10**6, 49), published=1)
    stored = await relay_db.load_position(kassa.pool, name)
    assert stored.position == ahead and stored.published == 1


async def test_relay_role_runs_in_the_worker_loop(kassa: Kassa):
    mid = f"acct_{uuid.uuid4().hex[:12]}"
    publisher = InMemoryPublisher()
    relay = Relay(pool=kassa.pool, publisher=publisher, name=relay_name())
    written = await write(kassa.pool, pi_event(mid, "pi_loop"))
    stop = asyncio.Event()
    worker = asyncio.create_task(loops.run(kassa, roles=("relay",), stop=stop, relay=relay,
                                           relay_interval=0.05))
    try:
        for _ in range(200):
            if mine(publisher.events, mid):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await worker
        await relay.close()
    assert [e.id for e in mine(publisher.events, mid)] == written
