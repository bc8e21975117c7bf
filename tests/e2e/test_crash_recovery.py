"""SIGKILL the API after the PSP charged but before kassa recorded it: recovery completes the
payment exactly once (one charge at the PSP, balanced ledger, events written)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import httpx
import pytest

from kassa.ledger.verify import verify
from tests.support.processes import free_port, kassa_process, wait_healthy

pytestmark = pytest.mark.slow




async def test_sigkill_between_psp_charge_and_record(dsn, simulator_url, merchant, kassa, sim):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"KASSA_DATABASE_URL": dsn, "KASSA_SIMULATOR_URL": simulator_url,
           "KASSA_PORT": str(port), "KASSA_PSP_TIMEOUT_SECONDS": "30",
           "KASSA_IDEMPOTENCY_LOCK_TIMEOUT_SECONDS": "1", "KASSA_RECOVERY_AFTER_SECONDS": "1",
           "KASSA_RECOVERY_INTERVAL_SECONDS": "0.2", "KASSA_ENV": "test"}
    auth = {"Authorization": f"Bearer {merchant['secret_key']}"}
    mid = merchant["merchant_id"]
    key = str(uuid.uuid4())

    async def charged_at_psp() -> int:
        rows = (await sim.get("/_sim/authorizations")).json()
        rows = rows["data"] if isinstance(rows, dict) else rows
        return len([a for a in rows if a["merchant_id"] == mid])

    with kassa_process(["api"], env) as api:
        await wait_healthy(base, api)
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            pi = (await c.post("/v1/payment_intents", headers=auth, data={
                "amount": "4200", "currency": "usd", "payment_method": "pm_card_visa"})).json()
            # the PSP charges, then holds its answer back long enough for us to kill kassa
            await sim.post("/_sim/config", json={"timeout_hang_s": 20})
            await sim.post("/_sim/faults", json={"faults": ["timeout_after_charge"]})
            confirm = asyncio.create_task(c.post(
                f"/v1/payment_intents/{pi['id']}/confirm",
                headers={**auth, "Idempotency-Key": key}))
            deadline = time.monotonic() + 10
            while await charged_at_psp() == 0:
                assert time.monotonic() < deadline, "the PSP never saw the authorisation"
                await asyncio.sleep(0.02)
            api.send_signal(signal.SIGKILL)
            api.wait()
            with pytest.raises(httpx.HTTPError):
                await confirm

    async with kassa.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM payment_intents WHERE id = $1",
                                   pi["id"]) == "processing"
        assert await conn.fetchval("SELECT status FROM attempts WHERE payment_intent_id = $1",
                                   pi["id"]) == "started"
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions"
                                   " WHERE source_id = $1", pi["id"]) == 0

    with kassa_process(["api"], env) as api, kassa_process(
            ["worker", "--role", "recovery"], env) as worker:
        await wait_healthy(base, api)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            deadline = time.monotonic() + 30
            while True:
                got = (await c.get(f"/v1/payment_intents/{pi['id']}", headers=auth)).json()
                if got["status"] == "succeeded":
                    break
                assert worker.poll() is None, worker.stderr.read().decode()
                assert time.monotonic() < deadline, got
                await asyncio.sleep(0.2)
            # the client's retry with the same key gets the outcome, not a second charge
            retry = await c.post(f"/v1/payment_intents/{pi['id']}/confirm",
                                 headers={**auth, "Idempotency-Key": key})
            assert retry.status_code == 200, retry.text
            assert retry.json()["status"] == "succeeded"

    assert await charged_at_psp() == 1
    async with kassa.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions"
                                   " WHERE source_id = $1", pi["id"]) == 1
        assert await conn.fetchval(
            "SELECT count(*) FROM events WHERE object_id = $1"
            " AND type = 'payment_intent.succeeded'", pi["id"]) == 1
        assert await conn.fetchval("SELECT amount_received FROM payment_intents WHERE id = $1",
                                   pi["id"]) == 4200
    assert (await verify(kassa.pool)).ok
