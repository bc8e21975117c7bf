"""The delivery queue against real PostgreSQL: racing claims take disjoint rows, a lease
hands a delivery on only when it ends, a late outcome cannot overwrite a newer lease,
and two senders never have one delivery in flight at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from kassa import representations
from kassa.db import ops, units
from kassa.db import webhook_deliveries as deliveries_db
from kassa.services import merchants, webhooks
from kassa.services.context import Kassa
from tests.support.webhook_receiver import WebhookReceiver, eventually, running_sender

POLICY = webhooks.WebhookPolicy()


@pytest.fixture
async def merchant_id(kassa: Kassa) -> str:
    return (await merchants.create_merchant(kassa, name="Queue merchant"))["merchant_id"]


@pytest.fixture
async def endpoints(kassa: Kassa, merchant_id: str) -> AsyncIterator[list[str]]:
    """Created per test (URL set by the test), deleted afterwards with their deliveries."""
    made: list[str] = []
    yield made
    for endpoint_id in made:
        await webhooks.delete_endpoint(kassa, merchant_id=merchant_id, endpoint_id=endpoint_id)


async def add_endpoint(kassa: Kassa, merchant_id: str, made: list[str], url: str) -> str:
    ep = await webhooks.create_endpoint(kassa, policy=POLICY, merchant_id=merchant_id, url=url,
                                        enabled_events=["*"])
    made.append(ep["id"])
    return str(ep["id"])


async def write_events(kassa: Kassa, merchant_id: str, n: int) -> list[str]:
    """n outbox events in one statement (as a unit of work writes them)."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        event_id = kassa.ids("event")
        obj = {"id": f"pi_queue_{event_id}", "object": "payment_intent", "amount": i + 1}
        rows.append({"id": event_id, "merchant_id": merchant_id,
                     "type": "payment_intent.created", "object_id": obj["id"],
                     "data": representations.event(id=event_id, type="payment_intent.created",
                                                   created=kassa.clock(), obj=obj),
                     "created": kassa.clock()})
    await units.apply(kassa.pool, [ops.InsertEvents(rows)])
    return [r["id"] for r in rows]


async def claim(conn, n: int = 1000, lease: float = 30.0) -> list[deliveries_db.ClaimedDelivery]:
    claimed, _ = await deliveries_db.claim_due(conn, limit=n, lease_seconds=lease, per_endpoint=n,
                                               busy={}, window=n * 4)
    return claimed


async def test_racing_claims_take_disjoint_rows(kassa, merchant_id, endpoints):
    ep = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/a")
    await write_events(kassa, merchant_id, 60)
    a = await kassa.pool.acquire()
    b = await kassa.pool.acquire()
    try:
        # A holds its claim uncommitted: B must skip A's locked rows, not wait for them
        tx = a.transaction()
        await tx.start()
        first = [d for d in await claim(a, 25) if d.endpoint_id == ep]
        second = [d for d in await asyncio.wait_for(claim(b, 1000), 5) if d.endpoint_id == ep]
        await tx.commit()
        # after A committed its lease, nothing of A's is due for anybody
        third = [d for d in await claim(b, 1000) if d.endpoint_id == ep]
    finally:
        await kassa.pool.release(a)
        await kassa.pool.release(b)
    ids = [d.id for d in first], [d.id for d in second], [d.id for d in third]
    assert len(ids[0]) == 25 and len(ids[1]) == 35 and ids[2] == []
    assert not set(ids[0]) & set(ids[1])


async def test_many_concurrent_claimers_never_share_a_delivery(kassa, merchant_id, endpoints):
    ep = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/b")
    await write_events(kassa, merchant_id, 300)
    got: list[int] = []
    for _ in range(20):  # rounds of 12 racing claimers (SKIP LOCKED may leave some behind)
        claims = await asyncio.gather(*(claim(kassa.pool, 40) for _ in range(12)))
        got += [d.id for batch in claims for d in batch if d.endpoint_id == ep]
        if len(got) >= 300:
            break
    assert len(got) == len(set(got)) == 300


async def test_lease_expiry_hands_over_and_a_late_outcome_is_ignored(kassa, merchant_id,
                                                                     endpoints):
    ep = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/c")
    await write_events(kassa, merchant_id, 1)
    [old] = [d for d in await claim(kassa.pool, lease=0.3) if d.endpoint_id == ep]
    assert [d for d in await claim(kassa.pool) if d.endpoint_id == ep] == []  # leased
    await asyncio.sleep(0.4)  # the first sender died or stalled: its lease ends
    [new] = [d for d in await claim(kassa.pool) if d.endpoint_id == ep]
    assert new.id == old.id and new.lease > old.lease

    def outcome(d: deliveries_db.ClaimedDelivery, status: str) -> dict[str, Any]:
        return {"id": d.id, "lease": d.lease.isoformat(), "status": status, "retry_in": None,
                "succeeded": status == "delivered", "status_code": 200, "duration_ms": 5,
                "error": None, "response": None, "attempted_at": 1700000000.0}

    assert await deliveries_db.record_attempts(kassa.pool, [outcome(old, "delivered")]) == set()
    assert await deliveries_db.record_attempts(kassa.pool, [outcome(new, "delivered")]) == {new.id}
    async with kassa.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempt_count, next_attempt_at"
                                  " FROM webhook_deliveries WHERE id = $1", new.id)
        attempts = await conn.fetchval("SELECT count(*) FROM webhook_attempts"
                                       " WHERE delivery_id = $1", new.id)
    assert (row["status"], row["attempt_count"], row["next_attempt_at"]) == ("delivered", 1,
                                                                             None)
    assert attempts == 2  # both requests happened; only the live lease moved the delivery


async def test_per_endpoint_cap_and_slow_endpoints(kassa, merchant_id, endpoints):
    slow = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/slow")
    await write_events(kassa, merchant_id, 10)
    fast = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/fast")
    await write_events(kassa, merchant_id, 10)
    got, deferred = await deliveries_db.claim_due(
        kassa.pool, limit=100, lease_seconds=30, per_endpoint=3,
        busy={slow: deliveries_db.Busy(0)}, window=400)
    mine = [d.endpoint_id for d in got if d.endpoint_id in (slow, fast)]
    assert mine == [fast] * 3  # slow is at its cap in this sender; fast gets per_endpoint
    assert deferred == 0  # a fast endpoint at its cap: its other rows stay due

    # once this sender knows slow answers slowly (2 s a request, 3 at a time), its due
    # rows move, unattempted, to when it can take them: 2/3 s apart, at most 10 s ahead
    got, deferred = await deliveries_db.claim_due(
        kassa.pool, limit=100, lease_seconds=30, per_endpoint=3,
        busy={slow: deliveries_db.Busy(0, 2 / 3, 10)}, window=400)
    assert [d.endpoint_id for d in got if d.endpoint_id in (slow, fast)] == [fast] * 3
    assert deferred == 20  # both batches of events reached slow (it takes "*")
    async with kassa.pool.acquire() as conn:
        waits = [r["wait"] for r in await conn.fetch(
            "SELECT extract(epoch FROM next_attempt_at - now())::float8 AS wait"
            " FROM webhook_deliveries WHERE endpoint_id = $1 AND attempt_count = 0"
            " ORDER BY next_attempt_at", slow)]
    assert len(waits) == 20 and waits[0] == pytest.approx(2 / 3, abs=0.2)
    assert waits[14] == pytest.approx(10, abs=0.2) and waits[-1] == pytest.approx(10, abs=0.2)
    assert all(a <= b for a, b in zip(waits, waits[1:], strict=False))


async def test_two_senders_racing_never_overlap_on_one_delivery(kassa, merchant_id,
                                                                endpoints):
    async with WebhookReceiver(delay=0.02) as rx:
        for i in range(3):
            await add_endpoint(kassa, merchant_id, endpoints, f"{rx.url}/{i}")
        events = await write_events(kassa, merchant_id, 100)  # 300 deliveries
        async with running_sender(kassa.pool, batch_size=16) as one, \
                running_sender(kassa.pool, batch_size=16) as two:
            async def done() -> bool:
                return len(rx.answered()) >= 300
            await eventually(done, within=60, what="300 deliveries")
            await asyncio.sleep(0.2)
        assert one.stats.delivered > 0 and two.stats.delivered > 0  # both worked
    assert rx.max_overlap == 1
    per_delivery = [r.delivery_id for r in rx.received]
    assert len(per_delivery) == len(set(per_delivery)) == 300  # each sent once
    assert {r.event_id for r in rx.received} == set(events)
    async with kassa.pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, attempt_count FROM webhook_deliveries"
                                " WHERE endpoint_id = ANY($1::text[])", endpoints)
    assert sorted({(r["status"], r["attempt_count"]) for r in rows}) == [("delivered", 1)]


async def test_fan_out_makes_one_delivery_per_subscribed_endpoint(kassa, merchant_id,
                                                                  endpoints):
    everything = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/all")
    only = await webhooks.create_endpoint(kassa, policy=POLICY, merchant_id=merchant_id,
                                          url="http://127.0.0.1:9/s",
                                          enabled_events=["payment_intent.succeeded"])
    endpoints.append(only["id"])
    await write_events(kassa, merchant_id, 5)
    async with kassa.pool.acquire() as conn:
        counts = dict(await conn.fetch(
            "SELECT endpoint_id, count(*) FROM webhook_deliveries"
            " WHERE endpoint_id = ANY($1::text[]) GROUP BY 1", endpoints))
        # a second delivery of one event to one endpoint is refused by the database
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, merchant_id, event_id, event_type)"
                " SELECT endpoint_id, merchant_id, event_id, event_type FROM webhook_deliveries"
                " WHERE endpoint_id = $1 LIMIT 1", everything)
    assert counts == {everything: 5}


async def test_retention_forgets_finished_deliveries_only(kassa, merchant_id, endpoints):
    ep = await add_endpoint(kassa, merchant_id, endpoints, "http://127.0.0.1:9/old")
    await write_events(kassa, merchant_id, 3)
    async with kassa.pool.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch(
            "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", ep)]
        await conn.execute(
            "UPDATE webhook_deliveries SET created_at = now() - interval '40 days',"
            " status = CASE WHEN id = $2 THEN 'pending' ELSE 'delivered' END,"
            " next_attempt_at = CASE WHEN id = $2 THEN now() + interval '1 hour' END,"
            " completed_at = CASE WHEN id = $2 THEN NULL ELSE now() END"
            " WHERE endpoint_id = $1", ep, ids[0])
        await conn.execute("INSERT INTO webhook_attempts (delivery_id, attempted_at, succeeded,"
                           " status_code, duration_ms) VALUES ($1, now(), true, 200, 3)", ids[1])
    assert await deliveries_db.expire_finished(kassa.pool, older_than_days=30) >= 2
    async with kassa.pool.acquire() as conn:
        left = [r["id"] for r in await conn.fetch(
            "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1", ep)]
        attempts = await conn.fetchval("SELECT count(*) FROM webhook_attempts"
                                       " WHERE delivery_id = $1", ids[1])
    assert left == [ids[0]] and attempts == 0  # the pending one stays


async def test_a_delivery_whose_event_is_gone_is_dead_without_a_request(kassa, merchant_id,
                                                                        endpoints):
    async with WebhookReceiver() as rx:
        ep = await add_endpoint(kassa, merchant_id, endpoints, rx.url)
        [event_id] = await write_events(kassa, merchant_id, 1)
        async with kassa.pool.acquire() as conn:
            await conn.execute("DELETE FROM events WHERE id = $1", event_id)
        async with running_sender(kassa.pool):
            async def dead() -> bool:
                async with kassa.pool.acquire() as conn:
                    return await conn.fetchval(
                        "SELECT status FROM webhook_deliveries WHERE endpoint_id = $1",
                        ep) == "dead"
            await eventually(dead, what="the delivery to be dead")
    assert rx.received == []
