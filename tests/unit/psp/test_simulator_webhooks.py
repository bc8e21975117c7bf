"""The simulator's asynchronous outcomes and webhooks, in-process: pending captures and
refunds, bouncing refunds, disputes, signing, holding, reordering, duplicating, retrying.
The receiver is an httpx.MockTransport that records what arrives."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from kassa.psp.simulator import SimulatorConfig, create_app, signature

SECRET = "whsec_unit"
VISA = "4242424242424242"
DISPUTED = "4000000000000259"
INQUIRY = "4000000000001976"
REFUND_FAILS = "4000000000005126"


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.received.append((dict(request.headers), request.content))
        if self.fail_next:
            self.fail_next -= 1
            return httpx.Response(500)
        return httpx.Response(200, json={"received": True})

    @property
    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, body in self.received]

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SimulatorConfig(webhook_url="http://kassa.test/psp/simulator/webhooks",
                                     webhook_secret=SECRET, webhook_hold=True,
                                     async_delay_ms=None),
                     webhook_transport=httpx.MockTransport(receiver.handler))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim.test") as c:
        yield c
        await c.post("/_sim/reset")  # cancels whatever is still scheduled


def key() -> str:
    return f"att_{uuid.uuid4().hex}"


async def authorize(sim: httpx.AsyncClient, number: str = VISA, *, capture: bool = True,
                    amount: int = 1000) -> dict[str, Any]:
    r = await sim.post("/v1/authorizations", json={
        "idempotency_key": key(), "amount": amount, "currency": "usd",
        "card": {"number": number, "exp_month": 12, "exp_year": 2034}, "capture": capture,
        "merchant_id": "acct_1"})
    assert r.status_code == 200, r.text
    return r.json()


async def op(sim: httpx.AsyncClient, auth_id: str, kind: str, k: str | None = None,
             **body: Any) -> dict[str, Any]:
    r = await sim.post(f"/v1/authorizations/{auth_id}/{kind}",
                       json={"idempotency_key": k or key(), **body})
    assert r.status_code == 200, r.text
    return r.json()


async def flush(sim: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    r = await sim.post("/_sim/webhooks/flush", json=body)
    assert r.status_code == 200, r.text
    return list(r.json()["delivered"])


async def settle(sim: httpx.AsyncClient, k: str, outcome: str) -> httpx.Response:
    return await sim.post(f"/_sim/operations/{k}/settle", json={"outcome": outcome})


async def test_deliveries_are_signed_over_the_raw_body(sim, receiver):
    auth = await authorize(sim, DISPUTED)
    assert [d["status_code"] for d in await flush(sim)] == [200]
    headers, body = receiver.received[0]
    assert headers["content-type"] == "application/json"
    t = signature.verify(headers["sim-signature"], body, secrets=[SECRET],
                         now=int(time.time()))
    assert abs(t - time.time()) < 5
    event = orjson.loads(body)
    assert (event["type"], event["sequence"], event["object"]) == ("dispute.created", 1,
                                                                   "event")
    dispute = event["data"]["object"]
    assert (dispute["authorization"], dispute["status"], dispute["reason"]) == (
        auth["id"], "needs_response", "fraudulent")
    assert dispute["authorization_idempotency_key"] == auth["idempotency_key"]
    with pytest.raises(signature.SignatureError):
        signature.verify(headers["sim-signature"], body + b" ", secrets=[SECRET],
                         now=int(time.time()))


async def test_pending_capture_settles_by_webhook(sim, receiver):
    await sim.post("/_sim/config", json={"capture_mode": "pending"})
    auth = await authorize(sim, capture=False)
    k = key()
    result = await op(sim, auth["id"], "capture", k, amount=600)
    assert (result["status"], result["amount"]) == ("pending", 600)
    # a second capture or a void while pending is refused
    assert (await op(sim, auth["id"], "capture"))["failure_code"] == "capture_pending"
    assert (await op(sim, auth["id"], "void"))["failure_code"] == "capture_pending"
    assert (await sim.get(f"/v1/operations/{k}")).json()["status"] == "pending"
    settled = await settle(sim, k, "succeeded")
    assert settled.json()["status"] == "captured"
    assert (await settle(sim, k, "succeeded")).status_code == 409
    assert (await sim.get(f"/v1/operations/{k}")).json()["status"] == "captured"
    assert (await op(sim, auth["id"], "capture", k, amount=600))["status"] == "pending"  # replay
    assert (await sim.get(f"/v1/authorizations/{auth['id']}")).json()["amount_captured"] == 600
    await flush(sim)
    assert receiver.types == ["capture.succeeded"]
    assert receiver.events[0]["data"]["object"]["idempotency_key"] == k


async def test_pending_capture_can_fail(sim, receiver):
    await sim.post("/_sim/config", json={"capture_mode": "pending"})
    auth = await authorize(sim, capture=False)
    k = key()
    await op(sim, auth["id"], "capture", k)
    assert (await settle(sim, k, "failed")).json()["failure_code"] == "capture_failed"
    assert (await sim.get(f"/v1/authorizations/{auth['id']}")).json()["status"] == "authorized"
    await flush(sim)
    assert receiver.types == ["capture.failed"]


async def test_pending_refund_then_later_failure_are_sequenced(sim, receiver):
    await sim.post("/_sim/config", json={"refund_mode": "pending"})
    auth = await authorize(sim, amount=1000)
    k = key()
    assert (await op(sim, auth["id"], "refunds", k, amount=400))["status"] == "pending"
    assert (await settle(sim, k, "succeeded")).json()["status"] == "refunded"
    assert (await settle(sim, k, "failed")).json()["status"] == "failed"  # bounced later
    listed = (await sim.get("/_sim/webhooks")).json()
    assert [(e["type"], e["sequence"]) for e in listed] == [("refund.succeeded", 1),
                                                            ("refund.failed", 2)]
    assert (await sim.get(f"/v1/authorizations/{auth['id']}")).json()["amount_refunded"] == 0
    delivered = await flush(sim, order="reverse")
    assert [d["type"] for d in delivered] == ["refund.failed", "refund.succeeded"]


async def test_refund_fails_card_bounces_after_the_delay(sim, receiver):
    await sim.post("/_sim/config", json={"async_delay_ms": 10})
    auth = await authorize(sim, REFUND_FAILS, amount=900)
    k = key()
    assert (await op(sim, auth["id"], "refunds", k))["status"] == "refunded"
    for _ in range(100):
        if (await sim.get(f"/v1/operations/{k}")).json()["status"] == "failed":
            break
        await asyncio.sleep(0.01)
    await flush(sim)
    assert receiver.types == ["refund.succeeded", "refund.failed"]


async def test_auto_settle_uses_the_configured_outcome(sim, receiver):
    await sim.post("/_sim/config", json={"refund_mode": "pending", "async_delay_ms": 0,
                                         "async_outcome": "failed", "webhook_hold": False})
    auth = await authorize(sim)
    await op(sim, auth["id"], "refunds")
    for _ in range(100):
        if receiver.types:
            break
        await asyncio.sleep(0.01)
    assert receiver.types == ["refund.failed"]


async def test_dispute_lifecycle_and_stripe_test_evidence(sim, receiver):
    auth = await authorize(sim, DISPUTED)
    (dispute,) = (await sim.get("/_sim/disputes")).json()
    # a charged-back authorization cannot be refunded too
    assert (await op(sim, auth["id"], "refunds"))["failure_code"] == "charge_disputed"
    r = await sim.post(f"/v1/disputes/{dispute['id']}/evidence",
                       json={"evidence": {"uncategorized_text": "draft"}})
    assert r.json()["status"] == "needs_response"
    evidence = {"uncategorized_text": "winning_evidence"}
    r = await sim.post(f"/v1/disputes/{dispute['id']}/evidence",
                       json={"evidence": evidence, "submit": True})
    assert r.json()["status"] == "won"
    # repeating the same submission is a no-op; another one is refused
    r = await sim.post(f"/v1/disputes/{dispute['id']}/evidence",
                       json={"evidence": evidence, "submit": True})
    assert r.status_code == 200
    r = await sim.post(f"/v1/disputes/{dispute['id']}/evidence",
                       json={"evidence": {"uncategorized_text": "other"}, "submit": True})
    assert r.status_code == 409
    assert (await sim.post(f"/v1/disputes/{dispute['id']}/accept")).status_code == 409
    await flush(sim)
    assert [(e["type"], e["sequence"], e["data"]["object"]["status"])
            for e in receiver.events] == [("dispute.created", 1, "needs_response"),
                                          ("dispute.updated", 2, "under_review"),
                                          ("dispute.closed", 3, "won")]


async def test_dispute_controls(sim, receiver):
    auth = await authorize(sim, INQUIRY)
    assert (await sim.get("/_sim/disputes")).json()[0]["status"] == "warning_needs_response"
    r = await sim.post(f"/_sim/disputes/{auth['id']}/close", json={"outcome": "won"})
    assert r.json()["status"] == "won"
    assert (await sim.post(f"/_sim/disputes/{auth['id']}/close",
                           json={"outcome": "lost"})).status_code == 409
    other = await authorize(sim)
    r = await sim.post(f"/_sim/disputes/{other['id']}/open",
                       json={"reason": "duplicate", "amount": 300, "inquiry": True})
    assert (r.json()["amount"], r.json()["reason"]) == (300, "duplicate")
    assert (await sim.post(f"/_sim/disputes/{other['id']}/open")).status_code == 409
    r = await sim.post(f"/_sim/disputes/{other['id']}/escalate")
    assert r.json()["status"] == "needs_response"
    r = await sim.post(f"/v1/disputes/{r.json()['id']}/accept")
    assert r.json()["status"] == "lost"
    held = await sim.post(f"/_sim/disputes/{(await authorize(sim, capture=False))['id']}/open")
    assert held.status_code == 409  # nothing captured, nothing to dispute
    assert (await sim.post("/_sim/disputes/sim_nope/open")).status_code == 404
    assert (await sim.post(f"/_sim/disputes/{other['id']}/close",
                           json={"outcome": "maybe"})).status_code == 400
    assert (await sim.get("/_sim/stats")).json()["disputes"] == 2


async def test_hold_flush_orders_and_duplicates(sim, receiver):
    auth = await authorize(sim, DISPUTED)
    await sim.post(f"/_sim/disputes/{auth['id']}/close", json={"outcome": "lost"})
    assert receiver.received == []  # held
    delivered = await flush(sim, order="reverse", duplicate=True)
    assert [d["type"] for d in delivered] == ["dispute.closed", "dispute.closed",
                                              "dispute.created", "dispute.created"]
    ids = [e["id"] for e in receiver.events]
    assert ids[0] == ids[1] and ids[2] == ids[3]  # a duplicate is the same event
    assert await flush(sim) == []  # all delivered
    r = await sim.post(f"/_sim/webhooks/{ids[0]}/resend")
    assert r.json()["status_code"] == 200 and len(receiver.received) == 5
    assert (await sim.post("/_sim/webhooks/simevt_nope/resend")).status_code == 404
    assert (await sim.post("/_sim/webhooks/flush", json={"order": "sideways"})).status_code \
        == 400


async def test_live_delivery_retries_until_accepted(sim, receiver):
    receiver.fail_next = 2
    await sim.post("/_sim/config", json={"webhook_hold": False})
    await authorize(sim, DISPUTED)
    for _ in range(300):
        listed = (await sim.get("/_sim/webhooks")).json()
        if listed[0]["state"] == "delivered":
            break
        await asyncio.sleep(0.01)
    assert [d["status_code"] for d in listed[0]["deliveries"]] == [500, 500, 200]


async def test_duplicate_rate_and_jitter(sim, receiver):
    await sim.post("/_sim/config", json={"webhook_hold": False, "webhook_duplicate_rate": 1,
                                         "webhook_jitter_ms": 5, "seed": 3})
    await authorize(sim, DISPUTED)
    for _ in range(300):
        if len(receiver.received) >= 2:
            break
        await asyncio.sleep(0.01)
    assert receiver.types == ["dispute.created", "dispute.created"]


async def test_config_validation_and_secret_is_masked(sim):
    got = (await sim.get("/_sim/config")).json()
    assert got["webhook_secret"] == "********" and got["webhook_hold"] is True
    for bad in ({"capture_mode": "later"}, {"async_outcome": "maybe"},
                {"webhook_duplicate_rate": 2}, {"webhook_max_attempts": 0},
                {"async_delay_ms": -1}, {"webhook_url": ""}, {"webhook_hold": "yes"}):
        assert (await sim.post("/_sim/config", json=bad)).status_code == 400, bad


async def test_without_a_url_events_are_recorded_not_sent(receiver):
    app = create_app(SimulatorConfig(), webhook_transport=httpx.MockTransport(receiver.handler))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim.test") as sim:
        await authorize(sim, DISPUTED)
        listed = (await sim.get("/_sim/webhooks")).json()
        assert [(e["type"], e["state"]) for e in listed] == [("dispute.created", "pending")]
        delivered = await flush(sim)
        assert delivered[0]["error"] == "no webhook_url configured"
        assert "sim-signature" not in receiver.received  # nothing was sent
        assert receiver.received == []


def test_signature_header_and_rotation():
    body = b'{"a":1}'
    header = signature.header(["new", "old"], 1000, body)
    assert header.startswith("t=1000,v1=") and header.count("v1=") == 2
    assert signature.verify(header, body, secrets=["old"], now=1000) == 1000
    assert signature.verify(signature.header("new", 1000, body), body,
                            secrets=["new", "old"], now=1200) == 1000
    for value, secrets, now in ((None, ["new"], 1000), ("", ["new"], 1000),
                                ("v1=abc", ["new"], 1000), ("t=1000", ["new"], 1000),
                                (header, ["other"], 1000), (header, ["new"], 1301),
                                (header, ["new"], 699), (header, [], 1000),
                                ("t=1000,v1=é", ["new"], 1000), ("t=1e3,v1=aa", ["new"], 1000)):
        with pytest.raises(signature.SignatureError):
            signature.verify(value, body, secrets=secrets, now=now)
