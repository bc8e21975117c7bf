"""An update racing a confirm (two requests, two connections): whichever commits second is
refused, and the card is always charged exactly the amount the intent shows, in the
simulator's record and in the ledger."""

from __future__ import annotations

import asyncio

from kassa.ledger.verify import verify


async def test_update_and_confirm_race_never_charge_other_terms(client, auth, sim, kassa):
    outcomes = set()
    for _ in range(12):
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": "2000", "currency": "usd", "payment_method": "pm_card_visa"})
        pi = r.json()
        url = f"/v1/payment_intents/{pi['id']}"
        update, confirm = await asyncio.gather(
            client.post(url, headers=auth, data={"amount": "700"}),
            client.post(f"{url}/confirm", headers=auth))
        outcomes.add((update.status_code, confirm.status_code))
        assert update.status_code in (200, 400, 409), update.text
        assert confirm.status_code in (200, 409), confirm.text
        final = (await client.get(url, headers=auth)).json()
        if update.status_code == 200 and confirm.status_code == 200:
            # the update committed first: the confirm read it and charged the new amount
            assert final["amount"] == 700
        if update.status_code != 200:
            assert final["amount"] == 2000
        if confirm.status_code != 200:
            assert final["status"] == "requires_confirmation" and final["latest_charge"] is None
            continue
        assert final["status"] == "succeeded"
        assert final["amount_received"] == final["amount"]
        rows = (await sim.get("/_sim/authorizations")).json()
        record = next(a for a in rows if a["idempotency_key"] == final["latest_charge"])
        assert (record["amount"], record["amount_captured"]) == (final["amount"],) * 2
        gross = await kassa.pool.fetchval(
            "SELECT amount FROM balance_transactions WHERE source = $1", final["latest_charge"])
        assert gross == final["amount"]
    assert outcomes  # at least one interleaving ran; each was checked above
    assert (await verify(kassa.pool)).ok
