"""Outbox relay throughput: events/s from the events table to an in-memory publisher (the
database side alone) and to a Kafka-protocol broker on loopback (noida-db), per batch size.

    python -m bench.relay [--events 100000] [--payments 5000]

Uses KASSA_BENCH_DATABASE_URL's server, or a durable embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path

from bench.stack import analyze, log, migrated_database, start_server
from kassa.db import ops, units
from kassa.db.pool import create_pool
from kassa.events.kafka import KafkaOptions, KafkaPublisher
from kassa.events.localbroker import running_broker
from kassa.events.publisher import EventPublisher, InMemoryPublisher
from kassa.events.relay import Relay


def event_row(i: int, payment: str) -> dict[str, object]:
    """An event the size of a real payment_intent.succeeded (about 900 bytes of JSON)."""
    event_id = f"evt_bench{i:012d}"
    obj = {"id": payment, "object": "payment_intent", "amount": 4242, "amount_capturable": 0,
           "amount_received": 4242, "amount_refunded": 0, "canceled_at": None,
           "cancellation_reason": None, "capture_method": "automatic", "created": 1700000000,
           "currency": "usd", "description": "order 1234", "last_payment_error": None,
           "latest_charge": f"ch_{payment[3:]}", "livemode": False, "metadata": {"order": i},
           "next_action": None, "payment_method": "pm_card_visa",
           "payment_method_types": ["card"], "status": "succeeded"}
    body = {"id": event_id, "object": "event", "api_version": "2024-06-20",
            "created": 1700000000, "data": {"object": obj}, "livemode": False,
            "pending_webhooks": 0, "type": "payment_intent.succeeded"}
    return {"id": event_id, "merchant_id": "acct_bench", "type": body["type"],
            "object_id": payment, "data": body, "created": 1700000000}


async def fill(dsn: str, events: int, payments: int) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        t0 = time.perf_counter()
        for start in range(0, events, 1000):
            rows = [event_row(i, f"pi_bench{i % payments:08d}")
                    for i in range(start, min(events, start + 1000))]
            await units.apply(pool, [ops.InsertEvents(rows)])
        log(f"wrote {events} events in {time.perf_counter() - t0:.1f} s")
    finally:
        await pool.close()


async def drain(dsn: str, name: str, publisher: EventPublisher, batch_size: int,
                events: int) -> float:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    relay = Relay(pool=pool, publisher=publisher, name=name, batch_size=batch_size)
    try:
        await publisher.start()  # connection and topic set-up are not part of the rate
        t0 = time.perf_counter()
        n = await relay.drain()
        elapsed = time.perf_counter() - t0
    finally:
        await relay.close()
        await pool.close()
    assert n == events, (n, events)
    return n / elapsed


async def run(dsn: str, events: int, kafka: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for batch in (100, 500, 2000):
        rate = await drain(dsn, f"bench-mem-{batch}", InMemoryPublisher(), batch, events)
        out[f"memory_batch{batch}_events_per_s"] = round(rate)
        log(f"in-memory publisher, batch {batch}: {rate:,.0f} events/s")
    for batch in (100, 500, 2000):
        publisher = KafkaPublisher(KafkaOptions(bootstrap=kafka, topic=f"bench.{batch}",
                                                partitions=12))
        rate = await drain(dsn, f"bench-kafka-{batch}", publisher, batch, events)
        out[f"kafka_batch{batch}_events_per_s"] = round(rate)
        log(f"Kafka (noida-db on loopback, idempotent, acks=all), batch {batch}: "
            f"{rate:,.0f} events/s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=5_000)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kassa-relay-")))
        dsn = migrated_database(stack, start_server(stack, workdir), "bench_relay")
        asyncio.run(fill(dsn, args.events, args.payments))
        analyze(dsn, vacuum=True)
        kafka = stack.enter_context(running_broker(workdir / "kafka"))
        result = asyncio.run(run(dsn, args.events, kafka))
    print(json.dumps({"events": args.events, "payments": args.payments, **result}, indent=2))


if __name__ == "__main__":
    main()
