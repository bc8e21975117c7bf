"""Merchant webhooks end to end: real payments write events, the fan-out trigger makes
deliveries, a WebhookSender POSTs them to real receivers on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from kassa.webhooks import SignatureVerificationError, construct_event
from kassa.webhooks.backoff import RetrySchedule
from kassa.webhooks.signing import parse_header
from tests.support.webhook_receiver import (
    PAYMENT_EVENTS,
    WebhookReceiver,
    create_endpoint,
    deliveries,
    eventually,
    pay,
    running_sender,
)


@pytest.fixture
async def cleanup(client, auth) -> AsyncIterator[None]:
    """Delete the merchant's endpoints afterwards so no later sender retries them."""
    yield
    r = await client.get("/v1/webhook_endpoints", headers=auth, params={"limit": 100})
    for e in r.json()["data"]:
        await client.delete(f"/v1/webhook_endpoints/{e['id']}", headers=auth)


pytestmark = pytest.mark.usefixtures("cleanup")


async def stored_event(kassa, event_id: str) -> bytes:
    async with kassa.pool.acquire() as conn:
        return (await conn.fetchval("SELECT data::text FROM events WHERE id = $1",
                                    event_id)).encode()


async def test_signed_delivery_verifies_with_the_package_verifier(client, auth, kassa):
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        secret = ep["secret"]
        pi = await pay(client, auth)
        async with running_sender(kassa.pool):
            await eventually(lambda: _has(rx, 1), what="one delivery")
        await asyncio.sleep(0.1)
    [req] = rx.received  # only the subscribed type was delivered
    event = construct_event(req.body, req.headers["Kassa-Signature"], secret)
    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["id"] == pi["id"]
    assert req.body == await stored_event(kassa, event["id"])  # the event as stored
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"].startswith("kassa-webhooks/")
    assert req.headers["Kassa-Event-Id"] == event["id"]
    parsed = parse_header(req.headers["Kassa-Signature"])
    assert abs(parsed.timestamp - time.time()) < 30 and len(parsed.signatures) == 1
    with pytest.raises(SignatureVerificationError):
        construct_event(req.body, req.headers["Kassa-Signature"], "whsec_wrong")
    with pytest.raises(SignatureVerificationError):
        construct_event(req.body.replace(b"succeeded", b"canceled"),
                        req.headers["Kassa-Signature"], secret)
    [d] = await deliveries(client, auth, ep["id"])
    assert (d["status"], d["attempt_count"], d["event"]) == ("delivered", 1, event["id"])
    assert d["attempts"][0]["succeeded"] and d["attempts"][0]["status_code"] == 200
    got = (await client.get(f"/v1/events/{event['id']}", headers=auth)).json()
    assert got["pending_webhooks"] == 0


async def _has(rx: WebhookReceiver, n: int, status_range: range = range(200, 300)) -> bool:
    return len(rx.answered(status_range)) >= n


async def test_three_failures_then_success_records_every_attempt(client, auth, kassa):
    async with WebhookReceiver(statuses=[500, 503, 404]) as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.created"])
        await pay(client, auth)
        [d] = await deliveries(client, auth, ep["id"])
        event_id = d["event"]
        got = (await client.get(f"/v1/events/{event_id}", headers=auth)).json()
        assert got["pending_webhooks"] == 1  # the real count, not the stored 0
        async with running_sender(kassa.pool):
            await eventually(lambda: _has(rx, 1), what="the successful delivery")
            await asyncio.sleep(0.3)  # any extra (wrong) attempt would show up now
    assert [r.status for r in rx.received] == [500, 503, 404, 200]
    assert {r.event_id for r in rx.received} == {event_id}
    assert [r.headers["Kassa-Delivery-Attempt"] for r in rx.received] == ["1", "2", "3", "4"]
    [d] = await deliveries(client, auth, ep["id"])
    assert (d["status"], d["attempt_count"], d["last_status_code"]) == ("delivered", 4, 200)
    assert [(a["succeeded"], a["status_code"]) for a in d["attempts"]] == [
        (False, 500), (False, 503), (False, 404), (True, 200)]
    assert all(a["duration_ms"] >= 0 for a in d["attempts"])
    assert d["attempts"][0]["response"] == "answered 500"
    got = (await client.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert got["pending_webhooks"] == 0


async def test_dead_endpoint_then_redelivery_by_api_and_cli(client, auth, kassa, dsn,
                                                           merchant):
    window = RetrySchedule(base_seconds=0.05, cap_seconds=0.1, window_seconds=0.6)
    async with WebhookReceiver(default_status=500) as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        pi = await pay(client, auth)
        async with running_sender(kassa.pool, schedule=window):
            async def dead() -> bool:
                return [d["status"] for d in await deliveries(client, auth, ep["id"])] == ["dead"]
            await eventually(dead, what="the delivery to die")
        [d] = await deliveries(client, auth, ep["id"])
        assert d["attempt_count"] >= 2 and d["next_attempt_at"] is None
        assert all(not a["succeeded"] for a in d["attempts"])
        event_id = d["event"]
        got = (await client.get(f"/v1/events/{event_id}", headers=auth)).json()
        assert got["pending_webhooks"] == 1 and got["data"]["object"]["id"] == pi["id"]

        # the CLI lists it
        listed = [json.loads(line) for line in _cli(
            dsn, "webhooks", "list-dead", "--json", "--merchant",
            merchant["merchant_id"]).splitlines()]
        assert [(x["event"], x["url"], x["status"]) for x in listed] == [
            (event_id, rx.url, "dead")]

        # the receiver is fixed; redeliver through the API
        rx.default_status = 200
        r = await client.post(f"/v1/events/{event_id}/redeliver", headers=auth)
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["data"]] == ["pending"]
        async with running_sender(kassa.pool):
            await eventually(lambda: _has(rx, 1), what="the redelivery")
        [d] = await deliveries(client, auth, ep["id"])
        assert d["status"] == "delivered" and d["attempts"][-1]["succeeded"]
        n_attempts = d["attempt_count"]

        # a delivered event can be sent again too, from the CLI this time
        out = _cli(dsn, "webhooks", "redeliver", event_id)
        assert "1 delivery(ies) scheduled" in out
        async with running_sender(kassa.pool):
            await eventually(lambda: _has(rx, 2), what="the CLI redelivery")
        [d] = await deliveries(client, auth, ep["id"])
        assert d["status"] == "delivered" and d["attempt_count"] == n_attempts + 1
        # redelivery of an unknown event is a 404, of a pending one changes nothing
        r = await client.post("/v1/events/evt_nope/redeliver", headers=auth)
        assert r.status_code == 404


def _cli(dsn: str, *args: str) -> str:
    env = {**os.environ, "KASSA_DATABASE_URL": dsn, "KASSA_ENV": "test"}
    done = subprocess.run([sys.executable, "-m", "kassa.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_rotation_sends_both_signatures_during_the_grace_period(client, auth, kassa):
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        old = ep["secret"]
        r = await client.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", headers=auth,
                              data={"expires_in": "2"})
        assert r.status_code == 200, r.text
        new = r.json()["secret"]
        assert new.startswith("whsec_") and new != old
        await pay(client, auth)
        async with running_sender(kassa.pool):
            await eventually(lambda: _has(rx, 1), what="a delivery during the grace period")
            during = rx.received[-1]
            assert len(parse_header(during.headers["Kassa-Signature"]).signatures) == 2
            for secret in (old, new):  # a receiver holding either secret accepts it
                construct_event(during.body, during.headers["Kassa-Signature"], secret)
            await asyncio.sleep(2.1)  # the grace period ends
            await pay(client, auth)
            await eventually(lambda: _has(rx, 2), what="a delivery after the grace period")
        after = rx.received[-1]
        assert len(parse_header(after.headers["Kassa-Signature"]).signatures) == 1
        construct_event(after.body, after.headers["Kassa-Signature"], new)
        with pytest.raises(SignatureVerificationError):
            construct_event(after.body, after.headers["Kassa-Signature"], old)


async def test_disabled_endpoint_waits_and_resumes_when_enabled(client, auth, kassa):
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        await pay(client, auth)  # delivery queued while enabled
        r = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                              data={"disabled": "true"})
        assert r.json()["status"] == "disabled"
        await pay(client, auth)  # disabled: no delivery for this one
        async with running_sender(kassa.pool):
            await asyncio.sleep(0.5)
            assert rx.received == []  # the queued one is parked, not sent
            [d] = await deliveries(client, auth, ep["id"])
            assert d["status"] == "pending" and d["next_attempt_at"] is None
            r = await client.post(f"/v1/webhook_endpoints/{ep['id']}", headers=auth,
                                  data={"disabled": "false"})
            assert r.json()["status"] == "enabled"
            await eventually(lambda: _has(rx, 1), what="the parked delivery")
        assert len(rx.received) == 1


async def test_a_hanging_endpoint_does_not_hold_back_the_others(client, auth, kassa):
    async with WebhookReceiver(hang=True) as stuck, WebhookReceiver() as fine:
        await create_endpoint(client, auth, stuck.url, ["*"])
        await create_endpoint(client, auth, fine.url, ["*"])
        for _ in range(20):
            await pay(client, auth)  # 60 events for each endpoint
        started = time.monotonic()
        async with running_sender(kassa.pool, per_endpoint=4, timeout_seconds=5.0):
            await eventually(lambda: _has(fine, 60), what="the healthy endpoint's deliveries")
            elapsed = time.monotonic() - started
            assert elapsed < 5.0, elapsed  # well within one timeout of the hanging endpoint
            assert len(stuck.received) <= 4  # the per-endpoint cap
            stuck.release()


async def test_a_slow_endpoints_backlog_does_not_hold_back_later_deliveries(client, auth,
                                                                           kassa):
    """The slow endpoint's backlog is ahead in due order and would fill every claim's
    window; its measured pace moves it out of the way, unattempted."""
    async with WebhookReceiver(delay=0.5) as slow, WebhookReceiver() as fine:
        slow_ep = await create_endpoint(client, auth, slow.url, PAYMENT_EVENTS)
        for _ in range(30):
            await pay(client, auth)  # 60 deliveries queued for the slow endpoint only
        await create_endpoint(client, auth, fine.url, PAYMENT_EVENTS)
        for _ in range(5):
            await pay(client, auth)  # 10 more for each
        started = time.monotonic()
        async with running_sender(kassa.pool, per_endpoint=4, claim_window=16,
                                  batch_size=16) as sender:
            await eventually(lambda: _has(fine, 10), within=20, what="the later deliveries")
            elapsed = time.monotonic() - started
            # at 4 × 2/s the slow endpoint needs 8.75 s for its 70; the others wait < 3 s
            assert elapsed < 3.0, elapsed
            assert len(slow.received) < 40 and sender.stats.deferred > 0
            await eventually(lambda: _has(slow, 70), within=30, what="the slow backlog")
        assert slow.max_overlap == 1 and len(slow.received) == 70  # each sent once
        [*_, oldest] = await deliveries(client, auth, slow_ep["id"])
        assert oldest["attempt_count"] == 1


async def test_deleting_an_endpoint_stops_its_deliveries(client, auth, kassa):
    async with WebhookReceiver() as rx:
        ep = await create_endpoint(client, auth, rx.url, PAYMENT_EVENTS)
        await pay(client, auth)
        assert len(await deliveries(client, auth, ep["id"])) == 2
        r = await client.delete(f"/v1/webhook_endpoints/{ep['id']}", headers=auth)
        assert r.json() == {"id": ep["id"], "object": "webhook_endpoint", "deleted": True}
        async with running_sender(kassa.pool):
            await asyncio.sleep(0.3)
        assert rx.received == []
        async with kassa.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries"
                                       " WHERE endpoint_id = $1", ep["id"]) == 0


async def test_production_sender_refuses_non_public_addresses_at_connect_time(client, auth,
                                                                              kassa):
    """An endpoint registered while allowed (or whose DNS later points inside) is refused
    by a production sender: IP literals by the sender, names by its resolver."""
    async with WebhookReceiver() as rx:
        port = rx.url.split(":")[2].split("/")[0]
        literal = await create_endpoint(client, auth, rx.url, ["payment_intent.succeeded"])
        named = await create_endpoint(client, auth, f"http://localhost:{port}/hooks",
                                      ["payment_intent.succeeded"])
        await pay(client, auth)
        async with running_sender(kassa.pool, production=True):
            async def both_failed() -> bool:
                ds = [*await deliveries(client, auth, literal["id"]),
                      *await deliveries(client, auth, named["id"])]
                return len(ds) == 2 and all(d["attempt_count"] >= 1 for d in ds)
            await eventually(both_failed, what="both attempts")
    assert rx.received == []
    [d] = await deliveries(client, auth, literal["id"])
    assert d["status"] == "retrying" and "non-public address 127.0.0.1" in d["last_error"]
    [d] = await deliveries(client, auth, named["id"])
    assert d["status"] == "retrying" and d["attempts"][0]["status_code"] is None
    assert "non-public" in d["last_error"], d["last_error"]
