"""SIGKILL a `kassa worker --role webhooks` while its requests are open: the deliveries it
held are leased, not lost; when the lease ends another sender delivers every event."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import kassa_process
from tests.support.webhook_receiver import (
    PAYMENT_EVENTS,
    WebhookReceiver,
    create_endpoint,
    eventually,
    pay,
)

pytestmark = pytest.mark.slow


@contextmanager
def webhook_worker(dsn: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {"KASSA_DATABASE_URL": dsn, "KASSA_ENV": "test",
           "KASSA_WEBHOOK_TIMEOUT_SECONDS": "3", "KASSA_WEBHOOK_LEASE_MARGIN_SECONDS": "1",
           "KASSA_WEBHOOK_POLL_INTERVAL_SECONDS": "0.05",
           "KASSA_WEBHOOK_RETRY_BASE_SECONDS": "0.1", "KASSA_WEBHOOK_RETRY_CAP_SECONDS": "0.5",
           "KASSA_WEBHOOK_PER_ENDPOINT_CONCURRENCY": "6"}
    with kassa_process(["worker", "--role", "webhooks"], env, log=log,
                       stop_timeout=15) as proc:
        yield proc


async def test_sigkill_mid_delivery_loses_nothing(client, auth, kassa, dsn, tmp_path):
    log = tmp_path / "worker.log"
    async with WebhookReceiver(hang=True) as rx:
        ep = await create_endpoint(client, auth, rx.url, PAYMENT_EVENTS)
        for _ in range(10):
            await pay(client, auth)  # 20 events
        async with kassa.pool.acquire() as conn:
            events = {r["event_id"] for r in await conn.fetch(
                "SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1", ep["id"])}
        assert len(events) == 20

        with webhook_worker(dsn, log) as worker:
            async def requests_open() -> bool:
                assert worker.poll() is None, log.read_text()
                return len(rx.received) >= 6

            await eventually(requests_open, within=30, what="the worker's requests")
            worker.send_signal(signal.SIGKILL)  # mid-request: nothing was answered
            worker.wait()
        in_flight = {r.event_id for r in rx.received}
        assert len(in_flight) == 6 and all(r.status is None for r in rx.received)
        async with kassa.pool.acquire() as conn:
            leased = await conn.fetch(
                "SELECT event_id, status, attempt_count, next_attempt_at > now() AS leased"
                " FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = ANY($2)",
                ep["id"], list(in_flight))
        assert {(r["status"], r["attempt_count"], r["leased"]) for r in leased} == {
            ("pending", 0, True)}

        rx.hang = False  # the receiver recovers; a new sender takes over after the lease
        killed_at = time.monotonic()
        with webhook_worker(dsn, log) as worker:
            async def all_delivered() -> bool:
                assert worker.poll() is None, log.read_text()
                return rx.delivered_event_ids() >= events

            await eventually(all_delivered, within=60, what="every event delivered")
            async def recorded() -> bool:
                async with kassa.pool.acquire() as conn:
                    return set(await conn.fetchval(
                        "SELECT array_agg(DISTINCT status) FROM webhook_deliveries"
                        " WHERE endpoint_id = $1", ep["id"])) == {"delivered"}
            await eventually(recorded, within=10, what="every delivery recorded")
        rx.release()
        await asyncio.sleep(0.1)
    # the killed sender's deliveries came back only once their lease (3 s timeout + 1 s
    # margin) had ended, not at once: no retry storm, no overlap with a live request
    first = {r.event_id: r.at for r in reversed(rx.received)}
    resent = [r for r in rx.answered() if r.event_id in in_flight]
    assert {r.event_id for r in resent} == in_flight
    assert all(r.at - first[r.event_id] >= 3.5 for r in resent)
    assert all(r.at >= killed_at - 4 for r in resent)
    await client.delete(f"/v1/webhook_endpoints/{ep['id']}", headers=auth)
