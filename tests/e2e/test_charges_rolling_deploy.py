"""A payment authorised by a release that kept no charges row (a rolling deploy: the old
replica's step 1 has no insert_charge) is still captured, refunded and canceled by the new
release — the money the PSP moved reaches the ledger, whatever the charge event can show."""

from __future__ import annotations


async def authorised_without_charge_row(client, auth, kassa) -> dict:
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "3000", "currency": "usd", "payment_method": "pm_card_visa",
        "capture_method": "manual", "confirm": "true"})
    assert r.status_code == 200, r.text
    pi = r.json()
    deleted = await kassa.pool.execute("DELETE FROM charges WHERE id = $1", pi["latest_charge"])
    assert deleted == "DELETE 1"
    return pi


async def test_capture_and_refund_reach_the_ledger(client, auth, kassa):
    pi = await authorised_without_charge_row(client, auth, kassa)
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth,
                          data={"amount_to_capture": "2000"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["amount_received"]) == ("succeeded", 2000)
    r = await client.post("/v1/refunds", headers=auth,
                          data={"payment_intent": pi["id"], "amount": "500"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    bts = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    assert sorted((b["type"], b["amount"]) for b in bts) == [("charge", 2000),
                                                             ("refund", -500)]


async def test_cancel_releases_the_hold(client, auth, kassa):
    pi = await authorised_without_charge_row(client, auth, kassa)
    r = await client.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled"
