"""The simulator's Adyen dialect on its own: X-API-Key and merchant account, Idempotency-Key
(same body → the stored answer, another body → 422 704, kept across a restart), Adyen's
error bodies under the fault model, and the notifications it signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx

from kassa.psp.simulator import SimulatorConfig, create_app

KEY = "AQE_sim"
HMAC_KEY = "ab" * 32
CONFIG = SimulatorConfig(adyen_api_key=KEY, adyen_merchant_account="SimECOM",
                         adyen_hmac_key=HMAC_KEY, webhook_hold=True, async_delay_ms=None)
PAYMENT = {"amount": {"value": 1000, "currency": "EUR"}, "reference": "att_1",
           "merchantAccount": "SimECOM", "returnUrl": "https://shop.example/back",
           "paymentMethod": {"type": "scheme", "number": "4242424242424242",
                             "expiryMonth": "12", "expiryYear": "2040", "cvc": "737"},
           "additionalData": {"manualCapture": "true"}}


def client(path: Path | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
        CONFIG, state_path=path)), base_url="http://sim")


def headers(idempotency_key: str | None = None, api_key: str = KEY) -> dict[str, str]:
    out = {"X-API-Key": api_key}
    if idempotency_key is not None:
        out["Idempotency-Key"] = idempotency_key
    return out


async def test_api_key_and_merchant_account_are_checked() -> None:
    async with client() as sim:
        for given in ({}, headers(api_key="wrong")):
            r = await sim.post("/v71/payments", json=PAYMENT, headers=given)
            assert (r.status_code, r.json()["errorType"]) == (401, "security")
        r = await sim.post("/v71/payments", json={**PAYMENT, "merchantAccount": "Other"},
                           headers=headers())
        assert r.status_code == 403
        assert (await sim.get("/_sim/authorizations")).json() == []


async def test_idempotency_key_replays_and_refuses_another_body(tmp_path: Path) -> None:
    path = tmp_path / "sim.sqlite3"
    async with client(path) as sim:
        first = await sim.post("/v71/payments", json=PAYMENT, headers=headers("k1"))
        assert (first.status_code, first.json()["resultCode"]) == (200, "Authorised")
        again = await sim.post("/v71/payments", json=PAYMENT, headers=headers("k1"))
        assert again.json() == first.json()
        other = await sim.post("/v71/payments", json={**PAYMENT, "amount": {
            "value": 999, "currency": "EUR"}}, headers=headers("k1"))
        assert (other.status_code, other.json()["errorCode"]) == (422, "704")
        psp = first.json()["pspReference"]
        capture = {"merchantAccount": "SimECOM", "amount": {"value": 600, "currency": "EUR"},
                   "reference": "att_c"}
        c1 = await sim.post(f"/v71/payments/{psp}/captures", json=capture,
                            headers=headers("c1"))
        assert (c1.status_code, c1.json()["status"]) == (201, "received")
    async with client(path) as sim:  # restarted: the keys are still Adyen's
        assert (await sim.post("/v71/payments", json=PAYMENT,
                               headers=headers("k1"))).json() == first.json()
        c2 = await sim.post(f"/v71/payments/{psp}/captures", json=capture,
                            headers=headers("c1"))
        assert (c2.status_code, c2.json()) == (201, c1.json())
        assert len((await sim.get("/_sim/authorizations")).json()) == 1
        record = (await sim.get(f"/_sim/adyen/payments/{psp}")).json()
        assert (record["status"], record["amount_captured"]) == ("captured", 600)


async def test_faults_answer_adyen_errors_and_store_nothing() -> None:
    async with client() as sim:
        await sim.post("/_sim/faults", json={"faults": ["error"]})
        r = await sim.post("/v71/payments", json=PAYMENT, headers=headers("k2"))
        assert (r.status_code, r.json()["errorType"]) == (500, "internal")
        r = await sim.post("/v71/payments", json=PAYMENT, headers=headers("k2"))
        assert r.json()["resultCode"] == "Authorised"  # processed now, once
        assert len((await sim.get("/_sim/authorizations")).json()) == 1
        r = await sim.post("/v71/payments/0000000000000000/captures", headers=headers(),
                           json={"merchantAccount": "SimECOM",
                                 "amount": {"value": 1, "currency": "EUR"}})
        assert (r.status_code, r.json()["errorCode"]) == (422, "167")


def expected_signature(item: dict[str, Any]) -> str:
    amount = item.get("amount") or {}
    text = ":".join(str(item.get(k) or "") for k in (
        "pspReference", "originalReference", "merchantAccountCode", "merchantReference")) \
        + f":{amount.get('value', '')}:{amount.get('currency', '')}:{item['eventCode']}:" \
        + item["success"]
    return base64.b64encode(hmac.new(bytes.fromhex(HMAC_KEY), text.encode(),
                                     hashlib.sha256).digest()).decode()


async def test_notifications_are_signed_items() -> None:
    async with client() as sim:
        declined = {**PAYMENT, "reference": "att_d", "paymentMethod": {
            "type": "scheme", "encryptedCardNumber": "test_4000000000009995",
            "encryptedExpiryMonth": "test_12", "encryptedExpiryYear": "test_2040"}}
        r = await sim.post("/v71/payments", json=declined, headers=headers())
        assert (r.json()["resultCode"], r.json()["refusalReasonCode"]) == ("Refused", "12")
        r = await sim.post("/v71/payments", json=PAYMENT, headers=headers())
        psp = r.json()["pspReference"]
        await sim.post(f"/v71/payments/{psp}/cancels", headers=headers(),
                       json={"merchantAccount": "SimECOM", "reference": "att_v"})
        events = [e for e in (await sim.get("/_sim/webhooks")).json()
                  if "notificationItems" in e]
        items = [e["notificationItems"][0]["NotificationRequestItem"] for e in events]
        assert [(i["eventCode"], i["success"]) for i in items] == [
            ("AUTHORISATION", "false"), ("AUTHORISATION", "true"), ("CANCELLATION", "true")]
        assert items[2]["originalReference"] == psp
        assert items[2]["merchantReference"] == "att_v"
        for item in items:
            assert item["additionalData"]["hmacSignature"] == expected_signature(item)
