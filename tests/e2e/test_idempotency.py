"""Idempotency-Key semantics over HTTP (ARCHITECTURE §4) against real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

PAY = {"amount": "2500", "currency": "eur", "payment_method": "pm_card_visa"}


def key() -> str:
    return str(uuid.uuid4())


async def sim_authorizations(sim: httpx.AsyncClient, merchant_id: str) -> list[dict]:
    rows = (await sim.get("/_sim/authorizations")).json()
    rows = rows["data"] if isinstance(rows, dict) else rows
    return [a for a in rows if a["merchant_id"] == merchant_id]


async def test_replay_returns_stored_response(client, auth, merchant, sim):
    k = key()
    first = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                              data={**PAY, "confirm": "true"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                              data={**PAY, "confirm": "true"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    listed = (await client.get("/v1/payment_intents", headers=auth)).json()["data"]
    assert len(listed) == 1
    assert len(await sim_authorizations(sim, merchant["merchant_id"])) == 1


async def test_declines_are_replayed_too(client, auth):
    k = key()
    params = {**PAY, "payment_method": "pm_card_chargeDeclined", "confirm": "true"}
    first = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                              data=params)
    again = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                              data=params)
    assert first.status_code == again.status_code == 402
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"


async def test_same_key_different_parameters_is_refused(client, auth):
    k = key()
    await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k}, data=PAY)
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data={**PAY, "amount": "2501"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "idempotency_error"
    # a different endpoint with the same key is a different request too
    r = await client.post("/v1/refunds", headers={**auth, "Idempotency-Key": k},
                          data={"payment_intent": "pi_x"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "idempotency_error"


async def test_keys_are_scoped_per_merchant(client, auth, kassa):
    from kassa.services import merchants

    other = await merchants.create_merchant(kassa, name="Other")
    k = key()
    a = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data=PAY)
    b = await client.post("/v1/payment_intents", headers={
        "Authorization": f"Bearer {other['secret_key']}", "Idempotency-Key": k}, data=PAY)
    assert a.status_code == b.status_code == 200 and a.json()["id"] != b.json()["id"]


async def test_validation_errors_are_not_stored(client, auth):
    k = key()
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data={**PAY, "amount": "0"})
    assert r.status_code == 400
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data={**PAY, "amount": "0"})
    assert "Idempotent-Replayed" not in r.headers
    # an illegal transition changed nothing, so the key is free for the same retry
    pi = (await client.post("/v1/payment_intents", headers=auth, data=PAY)).json()
    k2 = key()
    await client.post(f"/v1/payment_intents/{pi['id']}/cancel", headers=auth)
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture",
                          headers={**auth, "Idempotency-Key": k2})
    assert r.status_code == 400 and "Idempotent-Replayed" not in r.headers


async def test_key_too_long(client, auth):
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": "k" * 256},
                          data=PAY)
    assert r.status_code == 400 and r.json()["error"]["param"] == "Idempotency-Key"


async def test_in_flight_request_gets_409(client, auth, sim):
    pi = (await client.post("/v1/payment_intents", headers=auth, data=PAY)).json()
    k = key()
    await sim.post("/_sim/config", json={"latency_ms": 300})
    first = asyncio.create_task(client.post(f"/v1/payment_intents/{pi['id']}/confirm",
                                            headers={**auth, "Idempotency-Key": k}))
    await asyncio.sleep(0.1)
    second = await client.post(f"/v1/payment_intents/{pi['id']}/confirm",
                               headers={**auth, "Idempotency-Key": k})
    assert second.status_code == 409 and second.json()["error"]["type"] == "idempotency_error"
    assert (await first).json()["status"] == "succeeded"


async def test_50_concurrent_confirms_one_key_charge_once(client, auth, merchant, sim, kassa):
    pi = (await client.post("/v1/payment_intents", headers=auth, data=PAY)).json()
    k = key()
    await sim.post("/_sim/config", json={"latency_ms": 50})
    responses = await asyncio.gather(*[
        client.post(f"/v1/payment_intents/{pi['id']}/confirm",
                    headers={**auth, "Idempotency-Key": k}) for _ in range(50)])
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 409} and codes.count(200) >= 1, codes
    for r in responses:
        if r.status_code == 200:
            assert r.json()["status"] == "succeeded"
    assert len(await sim_authorizations(sim, merchant["merchant_id"])) == 1
    async with kassa.pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM attempts WHERE payment_intent_id = $1", pi["id"]) == 1
        assert await conn.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE source_id = $1", pi["id"]) == 1
    # and once it finished, every retry replays the success
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm",
                          headers={**auth, "Idempotency-Key": k})
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"


async def test_50_concurrent_confirms_without_key_charge_once(client, auth, merchant, sim,
                                                              kassa):
    pi = (await client.post("/v1/payment_intents", headers=auth, data=PAY)).json()
    await sim.post("/_sim/config", json={"latency_ms": 20})
    responses = await asyncio.gather(*[
        client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth)
        for _ in range(50)])
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 1 and set(codes) <= {200, 400, 409}, codes
    assert len(await sim_authorizations(sim, merchant["merchant_id"])) == 1


async def test_concurrent_refunds_never_exceed_captured(client, auth, kassa):
    pi = (await client.post("/v1/payment_intents", headers=auth,
                            data={**PAY, "confirm": "true"})).json()
    responses = await asyncio.gather(*[
        client.post("/v1/refunds", headers=auth,
                    data={"payment_intent": pi["id"], "amount": "1000"}) for _ in range(6)])
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 2, [r.text for r in responses]
    assert {r.status_code for r in responses} <= {200, 400, 409}
    assert await kassa.pool.fetchval(
        "SELECT amount_refunded FROM payment_intents WHERE id = $1", pi["id"]) == 2000


async def test_expiry_removes_old_completed_keys(client, auth, kassa, merchant):
    from kassa.services import idempotency

    k = key()
    await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k}, data=PAY)
    async with kassa.pool.acquire() as conn:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                           " WHERE merchant_id = $1 AND key = $2", merchant["merchant_id"], k)
    assert await idempotency.expire(kassa) >= 1
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data=PAY)
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers


async def test_stale_lock_is_taken_over_and_resumes(client, auth, kassa, merchant):
    """A request died after creating the intent: the retry finds it via the recovery point."""
    k = key()
    params = {**PAY, "confirm": "true"}
    first = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                              data=params)
    pi_id = first.json()["id"]
    # simulate the holder dying before it stored its answer, long ago
    conn: asyncpg.Connection
    async with kassa.pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL,"
            " completed_at = NULL, locked_at = now() - interval '1 hour'"
            " WHERE merchant_id = $1 AND key = $2", merchant["merchant_id"], k)
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data=params)
    assert r.status_code == 200 and r.json()["id"] == pi_id and r.json()["status"] == "succeeded"
    listed = (await client.get("/v1/payment_intents", headers=auth)).json()["data"]
    assert [p["id"] for p in listed] == [pi_id]


async def test_a_create_and_confirm_records_its_intent_with_the_keys_claim(client, auth, kassa):
    """The key's claim carries the intent the same unit creates (the recovery point a
    takeover resumes from), so the row is inserted with it rather than updated to it."""
    k = key()
    r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": k},
                          data={**PAY, "confirm": "true"})
    assert r.status_code == 200
    row = await kassa.pool.fetchrow(
        "SELECT merchant_id, resource_id, response_status, completed_at FROM idempotency_keys"
        " WHERE key = $1", k)
    assert row["resource_id"] == r.json()["id"]
    assert row["response_status"] == 200 and row["completed_at"] is not None
    other = key()
    claim = {"op": "claim_idempotency", "row": {
        "merchant_id": row["merchant_id"], "key": other, "fingerprint": "00", "method": "POST",
        "path": "/v1/x", "request_id": None, "resource_id": "pi_claimed_with_it"}}
    await kassa.pool.execute("SELECT kassa_apply($1::jsonb)", [claim])
    assert await kassa.pool.fetchval(
        "SELECT resource_id FROM idempotency_keys WHERE key = $1", other) == "pi_claimed_with_it"
