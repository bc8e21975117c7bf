"""Issue 7 item 9: what a request answers when it loses a race, or the PSP disagrees."""

from __future__ import annotations

import uuid
from dataclasses import replace

from kassa.domain.errors import ConcurrentModification
from kassa.domain.money import Money
from kassa.domain.payments import Operation
from kassa.ledger.verify import verify
from kassa.services import flows

PAY = {"amount": "2500", "currency": "usd", "payment_method": "pm_card_visa"}


async def test_a_retryable_409_is_not_the_keys_answer(client, auth, kassa, monkeypatch):
    pi = (await client.post("/v1/payment_intents", headers=auth,
                            data={**PAY, "capture_method": "manual", "confirm": "true"})).json()
    real = flows.FINISHERS[Operation.CAPTURE]

    async def always_loses(*args, **kwargs):
        raise ConcurrentModification("lost every compare-and-swap")

    monkeypatch.setitem(flows.FINISHERS, Operation.CAPTURE, always_loses)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers={**auth, **key})
    assert r.status_code == 409, r.text
    monkeypatch.setitem(flows.FINISHERS, Operation.CAPTURE, real)
    # the retry is not answered 409 again: it takes the key over and finishes the capture
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers={**auth, **key})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    again = await client.post(f"/v1/payment_intents/{pi['id']}/capture",
                              headers={**auth, **key})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()
    assert (await verify(kassa.pool)).ok


async def test_losing_step_3_to_a_decline_answers_402_like_the_winner(client, auth, kassa,
                                                                     monkeypatch):
    real = flows.FINISHERS[Operation.AUTHORIZE]

    async def recovery_wins_first(kassa_, attempt, result, **kwargs):
        # recovery records the same outcome just before this request's step 3
        await real(kassa_, replace(attempt), result, payment=None, idempotency=None)
        return await real(kassa_, attempt, result, **kwargs)

    monkeypatch.setitem(flows.FINISHERS, Operation.AUTHORIZE, recovery_wins_first)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    data = {**PAY, "payment_method": "pm_card_chargeDeclined", "confirm": "true"}
    r = await client.post("/v1/payment_intents", headers={**auth, **key}, data=data)
    monkeypatch.setitem(flows.FINISHERS, Operation.AUTHORIZE, real)
    assert r.status_code == 402, r.text
    assert r.json()["error"]["type"] == "card_error"
    again = await client.post("/v1/payment_intents", headers={**auth, **key}, data=data)
    assert again.status_code == 402 and again.headers.get("Idempotent-Replayed") == "true"


async def test_the_psps_captured_amount_is_recorded_and_flagged(client, auth, kassa, sim,
                                                               monkeypatch):
    pi = (await client.post("/v1/payment_intents", headers=auth,
                            data={**PAY, "capture_method": "manual", "confirm": "true"})).json()
    psp = kassa.psp("simulator")
    real_capture = psp.capture

    async def psp_captures_less(*, idempotency_key, psp_reference, amount):
        return await real_capture(idempotency_key=idempotency_key, psp_reference=psp_reference,
                                  amount=Money(amount.minor - 500, amount.currency))

    monkeypatch.setattr(psp, "capture", psp_captures_less)
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["amount_received"]) == ("succeeded", 2000)
    rows = (await sim.get("/_sim/authorizations")).json()
    at_psp = next(a for a in rows if a["idempotency_key"] == pi["latest_charge"])
    assert at_psp["amount_captured"] == 2000  # both ends agree
    flag = await kassa.pool.fetchval(
        "SELECT error->>'code' FROM attempts WHERE payment_intent_id = $1"
        " AND operation = 'capture'", pi["id"])
    assert flag == "psp_amount_mismatch"
    gross = await kassa.pool.fetchval(
        "SELECT amount FROM balance_transactions WHERE source = $1", pi["latest_charge"])
    assert gross == 2000
    assert (await verify(kassa.pool)).ok
