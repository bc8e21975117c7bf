"""POST /v1/payment_methods under an Idempotency-Key: a retry gets the first card's token,
other parameters are an idempotency error, concurrent retries make one card — and what the
vault keeps of the request is a keyed MAC, never the card number."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

PAN = "4242424242424242"


def card(number: str = PAN) -> dict[str, str]:
    return {"type": "card", "card[number]": number, "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"}


async def test_a_retry_gets_the_same_payment_method(vault, shop, dsn):
    async with httpx.AsyncClient(base_url=vault.url, auth=(shop["publishable_key"], "")) as c:
        headers = {"Idempotency-Key": "checkout-1"}
        first = await c.post("/v1/payment_methods", data=card(), headers=headers)
        again = await c.post("/v1/payment_methods", data=card(), headers=headers)
        other = await c.post("/v1/payment_methods", data=card("5555555555554444"),
                             headers=headers)
        bad = await c.post("/v1/payment_methods", data=card("4242424242424241"),
                           headers={"Idempotency-Key": "checkout-2"})
        after_bad = await c.post("/v1/payment_methods", data=card(),
                                 headers={"Idempotency-Key": "checkout-2"})
    assert first.status_code == 200 and again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert bad.status_code == 402  # refused by validation: the key stays free
    assert after_bad.status_code == 200 and after_bad.json()["id"] != first.json()["id"]
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT row_to_json(k)::text AS j FROM"
                                " kassa_vault.idempotency_keys k WHERE merchant_id = $1",
                                shop["merchant_id"])
    finally:
        await conn.close()
    assert len(rows) == 2 and all(PAN not in r["j"] for r in rows)


async def test_concurrent_retries_make_one_card(vault, shop):
    async with httpx.AsyncClient(base_url=vault.url, auth=(shop["publishable_key"], "")) as c:
        answers = await asyncio.gather(*(
            c.post("/v1/payment_methods", data=card(), headers={"Idempotency-Key": "race"})
            for _ in range(6)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
