"""Stripe's official Node SDK (npm ``stripe`` 23.x, pinned) against a live kassa over HTTP:
a merchant's integration changed only in its host. The scripts are in tests/e2e/node; they
print what they saw and this test checks it, and checks the PSP simulator's records and
kassa's ledger agree with what the SDK was told."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kassa.api.app import create_app
from tests.support import node_sdk
from tests.support.api_server import serving
from tests.support.webhook_receiver import WebhookReceiver, eventually, running_sender


@pytest.fixture(scope="session")
def node_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    node = node_sdk.node_binary()
    modules = node_sdk.installed_modules()
    return node, node_sdk.workspace(modules, tmp_path_factory.mktemp("node-sdk"))


@pytest.fixture
async def kassa_url(kassa) -> AsyncIterator[str]:
    async with serving(create_app(kassa=kassa, key_cache_seconds=0.0)) as url:
        yield url


async def test_the_node_sdk_runs_a_merchants_integration(node_workspace, kassa_url, merchant,
                                                         auth, sim):
    node, directory = node_workspace
    out = await node_sdk.run_script(node, directory, "flow.mjs", env={
        "KASSA_URL": kassa_url, "KASSA_KEY": merchant["secret_key"]})
    pi = out["created"]["id"]
    assert out["created"]["status"] == "requires_payment_method"
    assert out["created"]["metadata"] == {"order": "node-1"}
    assert out["created"]["requestId"].startswith("req_")
    assert out["created"]["idempotencyKey"] == "node-create-1"
    assert out["replayed"] == {"id": pi, "requestId": out["replayed"]["requestId"],
                               "replayed": "true",
                               "originalRequest": out["created"]["requestId"]}
    assert out["confirmed"] == {"status": "requires_capture", "amount_capturable": 2000}
    assert out["captured"] == {"status": "succeeded", "amount_received": 1500}
    assert out["refund"]["status"] == "succeeded" and out["refund"]["amount"] == 500
    assert out["refund"]["payment_intent"] == pi
    # auto-pagination walked every page, newest first, each id once
    newest_first = [*reversed(out["more"]), pi]
    assert out["autoPagingEach"] == newest_first
    assert out["autoPagingToArray"] == newest_first
    assert out["firstPage"] == {"ids": newest_first[:2], "has_more": True}
    assert out["retrieved"] == {"id": pi, "status": "succeeded", "amount": 2000,
                                "amount_received": 1500, "metadata": {"order": "node-1"}}

    decline = out["decline"]
    assert decline["class"] == "StripeCardError" and decline["isCardError"]
    assert (decline["type"], decline["code"], decline["decline_code"], decline["statusCode"]) \
        == ("StripeCardError", "card_declined", "generic_decline", 402)
    assert decline["doc_url"] == "https://stripe.com/docs/error-codes/card-declined"
    assert decline["request_log_url"] == \
        f"{kassa_url}/v1/request_logs/{decline['requestId']}"
    assert decline["payment_intent"].startswith("pi_")
    missing = out["missing"]
    assert missing["isInvalidRequest"] and (missing["code"], missing["statusCode"]) == (
        "resource_missing", 404)
    bad = out["badInteger"]
    assert bad["isInvalidRequest"] and (bad["code"], bad["param"]) == (
        "parameter_invalid_integer", "amount")
    assert bad["message"] == "Invalid integer: ten"
    cursor = out["badCursor"]
    assert (cursor["code"], cursor["param"], cursor["statusCode"]) == (
        "resource_missing", "starting_after", 400)
    reuse = out["keyReuse"]
    assert reuse["isIdempotency"] and reuse["class"] == "StripeIdempotencyError"
    assert reuse["message"].startswith("Keys for idempotent requests can only be used with "
                                       "the same parameters they were first used with.")

    # the log the decline links to is there, and says what the SDK was told
    async with httpx.AsyncClient() as c:
        logged = (await c.get(decline["request_log_url"], headers=auth)).json()
    assert (logged["status"], logged["error"]["code"]) == (402, "card_declined")

    # the acquirer's own records and kassa's ledger agree with the SDK's answers
    auths = [a for a in (await sim.get("/_sim/authorizations")).json()
             if a["merchant_id"] == merchant["merchant_id"]]
    captured = [a for a in auths if a["amount_captured"]]
    assert [(a["amount"], a["amount_captured"], a["amount_refunded"]) for a in captured] == [
        (2000, 1500, 500)]
    async with httpx.AsyncClient(base_url=kassa_url) as c:
        txns = (await c.get("/v1/balance_transactions", headers=auth,
                            params={"limit": 100})).json()["data"]
    assert sorted((t["type"], t["amount"]) for t in txns) == [("charge", 1500),
                                                              ("refund", -500)]


async def test_the_node_sdk_verifies_a_real_delivery(node_workspace, kassa_url, kassa, auth):
    node, directory = node_workspace
    async with httpx.AsyncClient(base_url=kassa_url) as c, WebhookReceiver() as rx:
        ep = (await c.post("/v1/webhook_endpoints", headers=auth, data={
            "url": rx.url, "enabled_events[]": "payment_intent.succeeded"})).json()
        try:
            paid = await c.post("/v1/payment_intents", headers={**auth,
                                                                "Idempotency-Key": "node-wh"},
                                data={"amount": "900", "currency": "usd", "confirm": "true",
                                      "payment_method": "pm_card_visa"})
            async with running_sender(kassa.pool):
                await eventually(lambda: _delivered(rx), what="a delivery")
        finally:
            await c.delete(f"/v1/webhook_endpoints/{ep['id']}", headers=auth)
    [req] = rx.received
    out = await node_sdk.run_script(node, directory, "verify_webhook.mjs", env={},
                                    stdin=json.dumps({
                                        "body_base64": base64.b64encode(req.body).decode(),
                                        "header": req.headers["Stripe-Signature"],
                                        "secret": ep["secret"]}).encode())
    assert out["right"] == {"ok": True, "id": out["right"]["id"],
                            "type": "payment_intent.succeeded",
                            "object_id": paid.json()["id"],
                            "request": {"id": paid.headers["Request-Id"],
                                        "idempotency_key": "node-wh"}}
    assert out["wrong"]["ok"] is False
    assert out["wrong"]["class"] == "StripeSignatureVerificationError"
    assert out["tampered"] == {"ok": False, "class": "StripeSignatureVerificationError"}


async def _delivered(rx: WebhookReceiver) -> bool:
    return len(rx.answered()) >= 1
