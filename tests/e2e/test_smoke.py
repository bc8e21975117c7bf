async def test_create_confirm_capture_refund(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "metadata[order]": "7"})
    assert r.status_code == 200, r.text
    pi = r.json()
    assert pi["status"] == "succeeded", pi
    assert pi["metadata"] == {"order": "7"}
    r = await client.post("/v1/refunds", headers=auth, json={"payment_intent": pi["id"],
                                                              "amount": 500})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    r = await client.get("/v1/balance", headers=auth)
    assert r.status_code == 200, r.text
    print(r.json())
