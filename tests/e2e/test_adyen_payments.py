"""A kassa whose payments go to Adyen (its adapter pointed at the simulator's Adyen
dialect) takes payments over HTTP: capture, cancel and refunds are ``received`` by Adyen
and stay pending until Adyen's signed notifications, POSTed to /psp/adyen/webhooks, settle
them. Money is counted at both ends: the simulator's own books against kassa's ledger.
Forged, unsigned, one-bad-item and replayed notifications are refused or dropped and
change nothing; both HMAC keys are accepted during a rotation."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.ledger.verify import verify
from kassa.psp.adyen import AdyenSettings
from kassa.psp.adyen.webhooks import signature
from kassa.psp.simulator import SimulatorConfig
from kassa.services import confirm, merchants, recovery
from kassa.services.context import Kassa
from kassa.webhooks import inbound as psp_webhooks
from tests.support.api_server import serving
from tests.support.recovery import make_due
from tests.support.simulator_server import running_simulator

API_KEY = "AQE_e2e_adyen"
ACCOUNT = "KassaE2EECOM"
OLD_KEY = "11" * 32
NEW_KEY = "22" * 32  # the simulator signs with the new key; kassa accepts both


@pytest.fixture(scope="module")
def adyen_sim_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(
            webhook_hold=True, async_delay_ms=None, adyen_api_key=API_KEY,
            adyen_merchant_account=ACCOUNT, adyen_hmac_key=NEW_KEY)) as url:
        yield url


@pytest.fixture(scope="module")
async def adyen_kassa(settings, dsn, adyen_sim_url) -> AsyncIterator[Kassa]:
    adyen = AdyenSettings(api_key=API_KEY, merchant_account=ACCOUNT,
                          checkout_url=f"{adyen_sim_url}/v71",
                          disputes_url=f"{adyen_sim_url}/ca/services/DisputeService/v30",
                          hmac_keys=f"{NEW_KEY},{OLD_KEY}")
    k, close = await bootstrap.build(
        # the stored-method tests charge tokens of this (platform) account
        settings.model_copy(update={"default_psp": "adyen", "simulator_url": adyen_sim_url,
                                    "psp_tokens_on_platform_accounts": True}),
        dsn, pool_size=6, adyen=adyen)
    try:
        yield k
    finally:
        await close()


@pytest.fixture(scope="module")
async def adyen_api(adyen_kassa) -> AsyncIterator[str]:
    async with serving(create_app(kassa=adyen_kassa, key_cache_seconds=0.0)) as url:
        yield url


class World:
    def __init__(self, kassa: Kassa, api: httpx.AsyncClient, sim: httpx.AsyncClient,
                 api_url: str) -> None:
        self.kassa, self.api, self.sim, self.api_url = kassa, api, sim, api_url

    async def post(self, path: str, **data: str) -> dict[str, Any]:
        r = await self.api.post(path, data=data)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def pay(self, *, capture_method: str = "manual", amount: int = 2500,
                  payment_method: str = "pm_card_visa") -> dict[str, Any]:
        return await self.post("/v1/payment_intents", amount=str(amount), currency="eur",
                               payment_method=payment_method, confirm="true",
                               capture_method=capture_method)

    async def held(self) -> list[bytes]:
        """The notifications the simulator holds (not delivered yet), as it would POST them."""
        events = (await self.sim.get("/_sim/webhooks")).json()
        return [orjson.dumps({"live": e["live"], "notificationItems": e["notificationItems"]})
                for e in events if "notificationItems" in e and e["state"] == "pending"]

    async def deliver(self) -> None:
        """The simulator POSTs what it holds to kassa; the psp-webhooks worker applies it."""
        r = await self.sim.post("/_sim/webhooks/flush", json={})
        assert r.status_code == 200 and all(d["status_code"] == 200
                                            for d in r.json()["delivered"]), r.text
        while await psp_webhooks.apply_pending(self.kassa):
            pass

    async def send(self, body: bytes) -> httpx.Response:
        return await self.api.post(f"{self.api_url}/psp/adyen/webhooks", content=body,
                                   headers={"content-type": "application/json"})

    async def at_adyen(self, pi: dict[str, Any]) -> dict[str, Any]:
        r = await self.sim.get(f"/_sim/adyen/payments/{pi['psp_reference']}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def inbox(self) -> int:
        return int(await self.kassa.pool.fetchval(
            "SELECT count(*) FROM psp_events WHERE psp = 'adyen'"))

    async def receivable(self, *sources: str) -> int:
        return int(await self.kassa.pool.fetchval(
            "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
            " JOIN ledger_entries e ON e.transaction_id = t.id"
            " WHERE t.source_id = ANY($1::text[]) AND e.account = 'psp:adyen:receivable'"
            " AND e.layer = 'posted'", list(sources)))

    async def retrieve(self, pi: dict[str, Any]) -> dict[str, Any]:
        r = await self.api.get(f"/v1/payment_intents/{pi['id']}")
        return dict(r.json())


@pytest.fixture
async def world(adyen_kassa, adyen_api, adyen_sim_url) -> AsyncIterator[World]:
    merchant = await merchants.create_merchant(adyen_kassa, name="Adyen merchant")
    async with httpx.AsyncClient(base_url=adyen_api, headers={
            "Authorization": f"Bearer {merchant['secret_key']}"}) as api, \
            httpx.AsyncClient(base_url=adyen_sim_url) as sim:
        await sim.post("/_sim/reset")
        r = await sim.post("/_sim/config", json={
            "adyen_webhook_url": f"{adyen_api}/psp/adyen/webhooks"})
        assert r.status_code == 200, r.text
        yield World(adyen_kassa, api, sim, adyen_api)
        await sim.post("/_sim/webhooks/flush", json={})
        while await psp_webhooks.apply_pending(adyen_kassa):
            pass


async def with_psp_reference(world: World, pi: dict[str, Any]) -> dict[str, Any]:
    row = await world.kassa.pool.fetchrow(
        "SELECT psp_reference FROM payment_intents WHERE id = $1", pi["id"])
    return {**pi, "psp_reference": row["psp_reference"]}


async def test_capture_and_refunds_are_pending_until_adyen_notifies(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    assert pi["status"] == "requires_capture"

    captured = await world.post(f"/v1/payment_intents/{pi['id']}/capture",
                                amount_to_capture="2000")
    assert captured["status"] == "processing"  # Adyen answered `received`
    assert await world.receivable(pi["id"]) == 0  # nothing captured on the ledger yet
    await world.deliver()  # AUTHORISATION (already known) and CAPTURE
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2000)

    refunds = [await world.post("/v1/refunds", payment_intent=pi["id"], amount=str(a))
               for a in (500, 300)]
    assert [r["status"] for r in refunds] == ["pending", "pending"]
    await world.deliver()
    for r in refunds:
        got = (await world.api.get(f"/v1/refunds/{r['id']}")).json()
        assert got["status"] == "succeeded", got

    # both ends: Adyen's books (the simulator's) and kassa's ledger
    at_adyen = await world.at_adyen(pi)
    assert (at_adyen["status"], at_adyen["amount_captured"], at_adyen["amount_refunded"]) == (
        "captured", 2000, 800)
    assert await world.receivable(pi["id"], *(r["id"] for r in refunds)) == \
        at_adyen["amount_captured"] - at_adyen["amount_refunded"]
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


async def test_automatic_capture_is_settled_at_once(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    assert (pi["status"], pi["amount_received"]) == ("succeeded", 2500)
    await world.deliver()  # the AUTHORISATION notification changes nothing
    at_adyen = await world.at_adyen(pi)
    assert (at_adyen["status"], at_adyen["amount_captured"]) == ("captured", 2500)
    assert await world.receivable(pi["id"]) == 2500


async def test_cancel_is_pending_until_the_cancellation_notification(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    canceled = await world.post(f"/v1/payment_intents/{pi['id']}/cancel")
    assert canceled["status"] == "processing"
    await world.deliver()
    assert (await world.retrieve(pi))["status"] == "canceled"
    assert (await world.at_adyen(pi))["status"] == "voided"
    held = await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.source_id = ANY($1::text[]) AND e.account = 'psp:adyen:receivable'",
        [pi["id"], pi["latest_charge"]])
    assert held == 0  # the hold was released, once


async def test_3ds_payment_is_settled_by_the_authorisation_notification(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(
        capture_method="automatic", payment_method="pm_card_authenticationRequired"))
    assert pi["status"] == "requires_action"
    url = pi["next_action"]["redirect_to_url"]["url"]
    # the shopper authenticates on the PSP's page (kassa's return is not followed here)
    page = await world.sim.get(httpx.URL(url).path)
    assert page.status_code == 200
    r = await world.sim.post(f"{httpx.URL(url).path}/complete", data={"result": "succeed"})
    assert r.status_code == 303
    await world.deliver()
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    assert (await world.at_adyen(pi))["amount_captured"] == 2500


async def test_forged_unsigned_and_one_bad_item_batches_change_nothing(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    genuine = [b for b in await world.held() if b"CAPTURE" in b]
    assert len(genuine) == 1
    item = orjson.loads(genuine[0])["notificationItems"][0]["NotificationRequestItem"]
    before = await world.inbox()

    forged = copy.deepcopy(item)
    forged["additionalData"]["hmacSignature"] = signature(forged, bytes.fromhex("33" * 32))
    unsigned = copy.deepcopy(item)
    del unsigned["additionalData"]["hmacSignature"]
    altered = copy.deepcopy(item)
    altered["amount"]["value"] = 1  # signed for 2500
    other = copy.deepcopy(item)  # a genuine-looking item about another capture, unsigned
    other.update(pspReference="9999999999999999", merchantReference="att_forged")
    del other["additionalData"]["hmacSignature"]
    for items in ([forged], [unsigned], [altered], [item, other], [other, item]):
        r = await world.send(orjson.dumps({"live": "false", "notificationItems": [
            {"NotificationRequestItem": i} for i in items]}))
        assert r.status_code == 400, r.text
    assert await world.inbox() == before  # not even the genuine item of the bad batch
    while await psp_webhooks.apply_pending(world.kassa):
        pass
    assert (await world.retrieve(pi))["status"] == "processing"
    assert await world.receivable(pi["id"]) == 0

    r = await world.send(genuine[0])  # the genuine delivery
    assert (r.status_code, r.text) == (200, "[accepted]")
    while await psp_webhooks.apply_pending(world.kassa):
        pass
    assert (await world.retrieve(pi))["status"] == "succeeded"
    assert await world.receivable(pi["id"]) == 2500

    inbox = await world.inbox()
    r = await world.send(genuine[0])  # replayed: acknowledged, a duplicate, nothing moves
    assert (r.status_code, r.text) == (200, "[accepted]")
    assert await world.inbox() == inbox
    while await psp_webhooks.apply_pending(world.kassa):
        pass
    assert await world.receivable(pi["id"]) == 2500
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


async def test_rotation_accepts_old_and_new_keys_and_batches(world: World) -> None:
    first = await with_psp_reference(world, await world.pay())
    second = await with_psp_reference(world, await world.pay())
    for pi in (first, second):
        await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    items = [orjson.loads(b)["notificationItems"][0]["NotificationRequestItem"]
             for b in await world.held() if b"CAPTURE" in b]
    assert len(items) == 2
    # the first item re-signed with the old key (queued before the rotation)
    items[0]["additionalData"]["hmacSignature"] = signature(items[0], bytes.fromhex(OLD_KEY))
    r = await world.send(orjson.dumps({"live": "false", "notificationItems": [
        {"NotificationRequestItem": i} for i in items]}))
    assert (r.status_code, r.text) == (200, "[accepted]")
    while await psp_webhooks.apply_pending(world.kassa):
        pass
    for pi in (first, second):
        assert (await world.retrieve(pi))["status"] == "succeeded"
    assert await world.receivable(first["id"], second["id"]) == 5000


async def test_the_simulator_delivers_a_batch_of_several_items(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    for amount in (400, 600):
        await world.post("/v1/refunds", payment_intent=pi["id"], amount=str(amount))
    r = await world.sim.post("/_sim/adyen/notifications/batch")
    assert r.status_code == 200 and r.json()["status_code"] == 200, r.text
    assert r.json()["delivered"] == 3  # AUTHORISATION and two REFUNDs, one POST
    while await psp_webhooks.apply_pending(world.kassa):
        pass
    refunds = (await world.api.get("/v1/refunds", params={"payment_intent": pi["id"]})
               ).json()["data"]
    assert sorted((r["amount"], r["status"]) for r in refunds) == [
        (400, "succeeded"), (600, "succeeded")]
    assert await world.receivable(pi["id"], *(r["id"] for r in refunds)) == 1500


async def test_a_lost_answer_is_resolved_by_repeating_with_the_same_key(world: World) -> None:
    """Adyen acted, then answered 500: recovery repeats /payments with the attempt's
    Idempotency-Key and Adyen answers from its store — one authorisation, never two."""
    r = await world.sim.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    assert r.status_code == 200, r.text
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    assert pi["status"] == "processing"  # Adyen charged; kassa did not hear it
    await make_due(world.kassa, pi["id"])
    assert await recovery.recover_open_attempts(world.kassa) >= 1
    done = await with_psp_reference(world, await world.retrieve(pi))
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    rows = (await world.sim.get("/_sim/authorizations")).json()
    assert [a["idempotency_key"] for a in rows] == [f"adyen:{ACCOUNT}:{pi['latest_charge']}"]
    at_adyen = await world.at_adyen(done)
    assert at_adyen["amount_captured"] == await world.receivable(pi["id"]) == 2500
    stats = (await world.sim.get("/_sim/stats")).json()
    assert stats["replays"] >= 1


async def test_a_lost_capture_notification_keeps_it_pending_until_it_comes(
        world: World) -> None:
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    replays = (await world.sim.get("/_sim/stats")).json()["replays"]
    await make_due(world.kassa, pi["id"])
    await recovery.recover_open_attempts(world.kassa)  # repeats the capture: `received`
    assert (await world.sim.get("/_sim/stats")).json()["replays"] == replays + 1
    assert (await world.retrieve(pi))["status"] == "processing"
    assert await world.receivable(pi["id"]) == 0
    assert (await world.at_adyen(pi))["amount_captured"] == 2500  # captured once at Adyen
    await world.deliver()  # Adyen retries the notification until it is accepted
    assert (await world.retrieve(pi))["status"] == "succeeded"
    assert await world.receivable(pi["id"]) == 2500


async def test_3ds_return_asks_adyen_with_the_redirect_result(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shopper comes back to kassa's return endpoint with Adyen's redirectResult:
    kassa asks /payments/details and records the outcome before any notification; a
    tampered or foreign redirectResult records nothing."""
    # each return here is asked (the pause after a vain ask is tested on its own)
    monkeypatch.setattr(confirm, "RETURN_RETRY_S", 0.0)
    pi = await with_psp_reference(world, await world.pay(
        capture_method="automatic", payment_method="pm_card_authenticationRequired"))
    path = httpx.URL(pi["next_action"]["redirect_to_url"]["url"]).path
    other = await with_psp_reference(world, await world.pay(
        capture_method="automatic", payment_method="pm_card_authenticationRequired"))
    other_path = httpx.URL(other["next_action"]["redirect_to_url"]["url"]).path
    r = await world.sim.post(f"{other_path}/complete", data={"result": "succeed"})
    foreign = httpx.URL(r.headers["location"]).params["redirectResult"]
    r = await world.sim.post(f"{path}/complete", data={"result": "succeed"})
    back = httpx.URL(r.headers["location"])
    assert back.path == f"/psp/adyen/return/{pi['latest_charge']}"

    for tampered in ("not-a-result", foreign):
        r = await world.api.get(back.path, params={"redirectResult": tampered})
        assert r.status_code in (200, 303), r.text
        assert (await world.retrieve(pi))["status"] == "requires_action"
    r = await world.api.get(back.path, params=dict(back.params))
    assert r.status_code in (200, 303), r.text
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    assert await world.receivable(pi["id"]) == 2500
    await world.deliver()  # the AUTHORISATION notifications come later and change nothing
    assert await world.receivable(pi["id"]) == 2500
    assert (await world.retrieve(other))["status"] == "succeeded"  # by its notification


async def test_a_cancel_adyen_refuses_leaves_the_hold(world: World) -> None:
    """CANCELLATION success=false (here: the payment was captured at Adyen meanwhile, by
    another channel): the void failed, the payment is back to requires_capture with its
    hold still on the ledger."""
    pi = await with_psp_reference(world, await world.pay())
    auth = (await world.at_adyen(pi))["id"]
    r = await world.sim.post(f"/v1/authorizations/{auth}/capture",
                             json={"idempotency_key": "elsewhere"})
    assert r.status_code == 200, r.text
    canceled = await world.post(f"/v1/payment_intents/{pi['id']}/cancel")
    assert canceled["status"] == "processing"
    await world.deliver()
    assert (await world.retrieve(pi))["status"] == "requires_capture"
    held = await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.source_id = $1 AND e.account = 'psp:adyen:receivable'",
        pi["latest_charge"])
    assert held == 2500  # the authorisation's hold was not released
    void = await world.kassa.pool.fetchrow(
        "SELECT status, error FROM attempts WHERE payment_intent_id = $1"
        " AND operation = 'void'", pi["id"])
    assert void["status"] == "failed"


async def disputed(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    pi = await with_psp_reference(world, await world.pay(
        capture_method="automatic", payment_method="pm_card_createDispute"))
    await world.deliver()  # AUTHORISATION and CHARGEBACK
    r = await world.api.get("/v1/disputes", params={"payment_intent": pi["id"]})
    (d,) = r.json()["data"]
    assert (d["status"], d["amount"], d["reason"]) == ("needs_response", 2500, "fraudulent")
    return pi, d


async def test_a_defended_chargeback_is_won_through_adyens_dispute_service(
        world: World) -> None:
    pi, d = await disputed(world)
    assert await world.receivable(pi["id"], d["id"]) == 0  # withdrawn with the chargeback
    r = await world.api.post(f"/v1/disputes/{d['id']}", json={
        "evidence": {"uncategorized_text": "winning_evidence"}, "submit": True})
    assert r.status_code == 200 and r.json()["status"] == "under_review", r.text
    await world.deliver()  # CHARGEBACK_REVERSED
    won = (await world.api.get(f"/v1/disputes/{d['id']}")).json()
    assert won["status"] == "won"
    assert await world.receivable(pi["id"], d["id"]) == 2500
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems


async def test_accepting_a_chargeback_concedes_it_at_adyen(world: World) -> None:
    pi, d = await disputed(world)
    r = await world.api.post(f"/v1/disputes/{d['id']}/close")
    assert r.status_code == 200 and r.json()["status"] == "lost", r.text
    auth = (await world.at_adyen(pi))["id"]
    (at_adyen,) = [row for row in (await world.sim.get("/_sim/disputes")).json()
                   if row["authorization"] == auth]
    assert at_adyen["status"] == "lost"  # conceded at Adyen (acceptDispute)
    await world.deliver()
    assert (await world.api.get(f"/v1/disputes/{d['id']}")).json()["status"] == "lost"
    assert await world.receivable(pi["id"], d["id"]) == 0


async def test_a_notification_settles_a_capture_recovery_gave_up_on(world: World) -> None:
    """Recovery can only repeat Adyen's `received`; after its last try the attempt needs
    attention — Adyen's CAPTURE, retried for days, still records it (needs_attention is
    an open status for the webhook's finisher)."""
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.kassa.pool.execute(
        "UPDATE attempts SET status = 'needs_attention' WHERE payment_intent_id = $1"
        " AND operation = 'capture'", pi["id"])
    await world.deliver()

    assert (await world.retrieve(pi))["status"] == "succeeded"
    assert await world.receivable(pi["id"]) == 2500
