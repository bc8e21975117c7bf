"""The answer after a crash is the answer the request would have had (issue 7, item 12).

A kassa API process is SIGKILLed while its requests are at the PSP (the simulator is given
latency, so each sits there for a while): a create+confirm and a confirm with a declined
card, a create+confirm with a good card and with a 3-D Secure card, a capture, a capture
the PSP refuses (the authorisation was voided at the PSP behind kassa's back), a cancel and
a refund. The client retries each with the same Idempotency-Key and must get exactly what
the request would have answered without the crash — the same requests, sent without a
crash to fresh payments in the same states, are the reference: 402 ``card_error`` for the
declines (before the fix a retry got 200 ``requires_payment_method`` or 400 "missing a
payment method"), 200 for the others, 400 for the refused capture, the refund object for
the refund.

Both orders are tried: recovery records the outcomes first and the retry replays the
answer recovery stored (``recovery_first``), or the retry comes first, takes the dead
request's key over and finishes its attempt itself (``retry_first``). Either way the PSP
acted once per request and the ledger verifies.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.ledger.verify import verify
from kassa.services import merchants, recovery
from kassa.services.context import Kassa
from tests.support.databases import migrated_database
from tests.support.processes import free_port, kassa_process, wait_healthy
from tests.support.recovery import make_due
from tests.support.simulator_server import running_simulator

pytestmark = pytest.mark.slow

LATENCY_MS = 4000  # how long each request sits at the PSP: the window for the kill




@dataclass
class Request:
    """One request of the set: its name, path and form, and the key it is sent with."""

    name: str
    path: str
    data: dict[str, str]
    key: str


@pytest.fixture(scope="module")
def crash_sim_url() -> Iterator[str]:
    with running_simulator() as url:
        yield url


@pytest.fixture
async def crash_world(server_url: str, settings: Settings, crash_sim_url: str
                      ) -> AsyncIterator[tuple[str, Kassa, httpx.AsyncClient, httpx.AsyncClient]]:
    """A database of its own (recovery looks at every due attempt in it), the module's
    simulator, and a kassa in the test process (recovery, the retries, the reference)."""
    with migrated_database(server_url, "kassa_crash") as dsn:
        k, close = await bootstrap.build(settings.model_copy(update={
            "simulator_url": crash_sim_url, "recovery_after_seconds": 1.0}), dsn, pool_size=6)
        k.idempotency_lock_timeout_seconds = 1.0  # a dead request's key is soon taken over
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(
                    app=create_app(kassa=k, key_cache_seconds=0.0)),
                    base_url="http://kassa.test") as api, \
                    httpx.AsyncClient(base_url=crash_sim_url) as sim:
                await sim.post("/_sim/config", json={"latency_ms": 0})
                yield dsn, k, api, sim
                await sim.post("/_sim/config", json={"latency_ms": 0})
        finally:
            await close()


async def requests_for(api: httpx.AsyncClient, sim: httpx.AsyncClient,
                       auth: dict[str, str]) -> list[Request]:
    """One of each request, on fresh payments in the states they need."""

    async def pi(**data: str) -> dict[str, Any]:
        r = await api.post("/v1/payment_intents", headers=auth,
                           data={"amount": "1000", "currency": "usd", **data})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    to_confirm = await pi()
    to_capture = await pi(payment_method="pm_card_visa", capture_method="manual",
                          confirm="true")
    to_refuse = await pi(payment_method="pm_card_visa", capture_method="manual",
                         confirm="true")
    # the PSP lets the authorisation go (kassa does not know): its capture will be refused
    auth_id = next(a["id"] for a in (await sim.get("/_sim/authorizations")).json()
                   if a["idempotency_key"] == to_refuse["latest_charge"])
    voided = await sim.post(f"/v1/authorizations/{auth_id}/void",
                            json={"idempotency_key": f"behind-kassas-back-{uuid.uuid4()}"})
    assert voided.json()["status"] == "voided", voided.text
    to_cancel = await pi(payment_method="pm_card_visa", capture_method="manual",
                         confirm="true")
    to_refund = await pi(payment_method="pm_card_visa", confirm="true")

    def req(name: str, path: str, **data: str) -> Request:
        return Request(name, path, data, f"crash-{name}-{uuid.uuid4()}")

    return [
        req("create_declined", "/v1/payment_intents", amount="1000", currency="usd",
            payment_method="pm_card_chargeDeclined", confirm="true"),
        req("confirm_declined", f"/v1/payment_intents/{to_confirm['id']}/confirm",
            payment_method="pm_card_chargeDeclined"),
        req("create_succeeded", "/v1/payment_intents", amount="1000", currency="usd",
            payment_method="pm_card_visa", confirm="true"),
        req("create_3ds", "/v1/payment_intents", amount="1000", currency="usd",
            payment_method="pm_card_authenticationRequired", confirm="true",
            return_url="https://shop.example/done"),
        req("capture", f"/v1/payment_intents/{to_capture['id']}/capture",
            amount_to_capture="600"),
        req("capture_refused", f"/v1/payment_intents/{to_refuse['id']}/capture"),
        req("cancel", f"/v1/payment_intents/{to_cancel['id']}/cancel"),
        req("refund", "/v1/refunds", payment_intent=to_refund["id"], amount="400"),
    ]


def answer(r: httpx.Response) -> tuple[Any, ...]:
    """What a client reads in an answer, without the ids and times of the objects."""
    body = r.json()
    if "error" in body:
        e = body["error"]
        pi = e.get("payment_intent") or {}
        return (r.status_code, e["type"], e.get("code"), e.get("decline_code"), e["message"],
                pi.get("status"), pi.get("amount_received"),
                (pi.get("last_payment_error") or {}).get("decline_code"))
    action = (body.get("next_action") or {}).get("redirect_to_url") or {}
    return (r.status_code, body["object"], body["status"], body.get("amount"),
            body.get("amount_received"), body.get("amount_capturable"),
            body.get("cancellation_reason"), action.get("return_url"), bool(action.get("url")))


async def send(c: httpx.AsyncClient, auth: dict[str, str], r: Request) -> httpx.Response:
    return await c.post(r.path, headers={**auth, "Idempotency-Key": r.key}, data=r.data)


@pytest.mark.parametrize("order", ["recovery_first", "retry_first"])
async def test_a_retry_after_a_crash_gets_the_answer_the_request_would_have_had(
        crash_world: tuple[str, Kassa, httpx.AsyncClient, httpx.AsyncClient],
        crash_sim_url: str, order: str) -> None:
    dsn, k, api, sim = crash_world
    m = await merchants.create_merchant(k, name="crash answers")
    auth = {"Authorization": f"Bearer {m['secret_key']}"}

    # the reference: the same requests, without a crash, on payments in the same states
    reference = {r.name: answer(await send(api, auth, r))
                 for r in await requests_for(api, sim, auth)}
    assert reference["create_declined"][:2] == (402, "card_error"), reference
    assert reference["confirm_declined"][:2] == (402, "card_error"), reference
    assert reference["capture_refused"][0] == 400, reference

    crashed = await requests_for(api, sim, auth)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"KASSA_DATABASE_URL": dsn, "KASSA_SIMULATOR_URL": crash_sim_url,
           "KASSA_PORT": str(port), "KASSA_PSP_TIMEOUT_SECONDS": "30", "KASSA_ENV": "test"}
    with kassa_process(["api"], env) as proc:
        await wait_healthy(base, proc)
        await sim.post("/_sim/config", json={"latency_ms": LATENCY_MS})
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            calls = [asyncio.create_task(send(c, auth, r)) for r in crashed]
            # every request committed its attempt and went to the PSP, which sits on it
            deadline = time.monotonic() + LATENCY_MS / 1000 - 0.5
            while await k.pool.fetchval(
                    "SELECT count(*) FROM attempts WHERE idempotency_key = ANY($1::text[])"
                    " AND status = 'started'", [r.key for r in crashed]) < len(crashed):
                assert time.monotonic() < deadline, "the requests did not reach the PSP in time"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # the last one's call is on the wire
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            for call in calls:
                with pytest.raises(httpx.HTTPError):
                    await call
    await sim.post("/_sim/config", json={"latency_ms": 0})
    # nothing was recorded: the kill came while every request was at the PSP
    statuses = dict(await k.pool.fetch(
        "SELECT idempotency_key, status FROM attempts WHERE idempotency_key = ANY($1::text[])",
        [r.key for r in crashed]))
    assert set(statuses.values()) == {"started"}, statuses

    if order == "recovery_first":
        assert await make_due(k) >= len(crashed)
        for _ in range(5):
            await recovery.recover_open_attempts(k)
            left = await k.pool.fetchval(
                "SELECT count(*) FROM attempts WHERE idempotency_key = ANY($1::text[])"
                " AND status IN ('started', 'unknown')", [r.key for r in crashed])
            if not left:
                break
            await asyncio.sleep(LATENCY_MS / 1000)  # the PSP is still sitting on one
        assert not left, "recovery did not record every outcome"
    else:
        await asyncio.sleep(k.idempotency_lock_timeout_seconds + 0.2)  # the key is stale

    for r in crashed:
        retry = await send(api, auth, r)
        assert answer(retry) == reference[r.name], (r.name, retry.text)
        again = await send(api, auth, r)  # and it stays the answer
        assert (again.status_code, again.json()) == (retry.status_code, retry.json()), r.name
        if order == "recovery_first":
            assert retry.headers.get("Idempotent-Replayed") == "true", r.name

    # the PSP acted once per request: one authorisation per create/confirm key …
    auths = [a for a in (await sim.get("/_sim/authorizations")).json()
             if a["merchant_id"] == m["merchant_id"]]
    stats = dict(await k.pool.fetch(
        "SELECT operation, count(*) FROM attempts WHERE idempotency_key = ANY($1::text[])"
        " GROUP BY 1", [r.key for r in crashed]))
    assert stats == {"authorize": 4, "capture": 2, "void": 1, "refund": 1}, stats
    charged = dict(await k.pool.fetch(
        "SELECT id, payment_intent_id FROM attempts WHERE operation = 'authorize'"
        " AND idempotency_key = ANY($1::text[])", [r.key for r in crashed]))
    assert sorted(a["idempotency_key"] for a in auths if a["idempotency_key"] in charged) \
        == sorted(charged), auths
    assert (await verify(k.pool)).ok
