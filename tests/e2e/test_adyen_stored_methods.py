"""An Adyen stored payment method as a PSP-own token (``adyen:<shopperReference>/
<storedPaymentMethodId>``) against the simulator's Adyen dialect over HTTP: kassa sends
``storedPaymentMethodId`` with the ``shopperReference`` it was stored for and a recurring
model (the dialect refuses it without them), never a card; a token stored for another
shopper is refused by Adyen ("Contract not found") and recorded as failed. Counted at both
ends: the dialect's books against kassa's ledger."""

from __future__ import annotations

import httpx
import orjson

from kassa.domain.money import Money
from kassa.psp.adyen import AdyenAdapter, AdyenSettings
from kassa.psp.base import AuthorizeRequest, Outcome
from kassa.vault.psp_tokens import TOKEN_CARD
from tests.e2e import test_adyen_payments as base
from tests.e2e.test_adyen_payments import ACCOUNT, API_KEY, World, with_psp_reference

# the Adyen world's fixtures (simulator, kassa, API server), shared with its module
adyen_sim_url, adyen_kassa, adyen_api, world = (
    base.adyen_sim_url, base.adyen_kassa, base.adyen_api, base.world)


async def stored(world: World, shopper: str) -> str:
    r = await world.sim.post("/_sim/tokens", json={
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2034,
        "shopper_reference": shopper})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_a_stored_payment_method_is_charged_captured_and_refunded(world: World) -> None:
    token = await stored(world, "shopper-42")
    pi = await with_psp_reference(world, await world.pay(
        payment_method=f"adyen:shopper-42/{token}", amount=3100))
    assert pi["status"] == "requires_capture", pi
    at_adyen = await world.at_adyen(pi)
    assert (at_adyen["status"], at_adyen["amount"]) == ("authorized", 3100)
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    await world.deliver()
    refund = await world.post("/v1/refunds", payment_intent=pi["id"], amount="1000")
    await world.deliver()
    assert (await world.api.get(f"/v1/refunds/{refund['id']}")).json()["status"] == \
        "succeeded"
    at_adyen = await world.at_adyen(pi)
    assert (at_adyen["status"], at_adyen["amount_captured"], at_adyen["amount_refunded"]) == \
        ("captured", 3100, 1000)
    assert await world.receivable(pi["id"], refund["id"]) == 2100


async def test_a_token_of_another_shopper_is_refused_by_adyen(world: World) -> None:
    token = await stored(world, "shopper-42")
    r = await world.api.post("/v1/payment_intents", data={
        "amount": "900", "currency": "eur", "confirm": "true",
        "payment_method": f"adyen:someone-else/{token}"})
    assert r.status_code == 402, r.text
    pi = r.json()["error"]["payment_intent"]
    status = await world.kassa.pool.fetchval(
        "SELECT status FROM attempts WHERE payment_intent_id = $1", pi["id"])
    assert status == "failed"
    # a bare storedPaymentMethodId: kassa cannot send the shopperReference Adyen needs
    r = await world.api.post("/v1/payment_intents", data={
        "amount": "900", "currency": "eur", "confirm": "true",
        "payment_method": f"adyen:{token}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_psp_token"


async def test_a_shared_platform_accounts_tokens_are_refused_unless_allowed(
        world: World) -> None:
    """Without KASSA_PSP_TOKENS_ON_PLATFORM_ACCOUNTS a token of the platform's Adyen account
    (any merchant's shopper's) is a 400 and nothing reaches Adyen."""
    token = await stored(world, "shopper-42")
    before = len((await world.sim.get("/_sim/authorizations")).json())
    world.kassa.platform_psp_tokens = False
    try:
        r = await world.api.post("/v1/payment_intents", data={
            "amount": "900", "currency": "eur", "confirm": "true",
            "payment_method": f"adyen:shopper-42/{token}"})
    finally:
        world.kassa.platform_psp_tokens = True
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (
        "psp_token_shared_account", "payment_method")
    assert len((await world.sim.get("/_sim/authorizations")).json()) == before


async def test_the_wire_request_names_the_stored_method_and_no_card(adyen_sim_url) -> None:
    """What the adapter sends, read at the dialect's door: the stored method with its
    shopper and recurring model, nothing of a card; off-session adds ContAuth."""
    seen: list[dict[str, object]] = []

    async def record(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        async with httpx.AsyncClient() as real:
            forwarded = await real.post(str(request.url), content=request.content,
                                        headers=dict(request.headers))
        return httpx.Response(forwarded.status_code, content=forwarded.content,
                              headers={"content-type": "application/json"})

    settings = AdyenSettings(api_key=API_KEY, merchant_account=ACCOUNT,
                             checkout_url=f"{adyen_sim_url}/v71")
    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        adapter = AdyenAdapter(client, settings)
        for off_session in (False, True):
            result = await adapter.authorize(AuthorizeRequest(
                idempotency_key=f"ch_wire_{off_session}", amount=Money(1200, "eur"),
                card=TOKEN_CARD, capture=True, merchant_id="m_wire",
                payment_method="adyen:shopper-7/tok_visa",
                psp_token="shopper-7/tok_visa", off_session=off_session))
            assert result.outcome is Outcome.CAPTURED
    first, second = seen
    assert first["paymentMethod"] == {"type": "scheme", "storedPaymentMethodId": "tok_visa"}
    assert (first["shopperReference"], first["recurringProcessingModel"],
            first["shopperInteraction"]) == ("shopper-7", "CardOnFile", "Ecommerce")
    assert (second["recurringProcessingModel"], second["shopperInteraction"]) == \
        ("UnscheduledCardOnFile", "ContAuth")
    assert "number" not in orjson.dumps(first).decode()
