"""Stripe's Python SDK, unmodified but for its base URL, on the calls issue 10 added: update,
the client_secret with a publishable key (retrieve, confirm), refund update and cancel, and
a decline's charge and card. The money is counted at the simulator and in the ledger."""

from __future__ import annotations

import httpx
import pytest
import stripe

from kassa.api.app import create_app
from kassa.ledger.verify import verify
from tests.support.api_server import serving
from tests.support.stripe_schema import assert_stripe_shape

# the SDK's httpx transport passes bytes as data=, which httpx deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_update_publishable_confirm_and_refund_changes(kassa, merchant, simulator_url):
    async with serving(create_app(kassa=kassa, key_cache_seconds=0.0)) as url:
        http = stripe.HTTPXClient()
        server = stripe.StripeClient(merchant["secret_key"], http_client=http,
                                     base_addresses={"api": url})
        browser = stripe.StripeClient(merchant["publishable_key"], http_client=http,
                                      base_addresses={"api": url})
        try:
            pi = await server.v1.payment_intents.create_async(params={
                "amount": 1200, "currency": "usd", "capture_method": "automatic_async",
                "automatic_payment_methods": {"enabled": True},
                "receipt_email": "ada@example.com", "metadata": {"cart": "c1"}})
            assert pi.capture_method == "automatic_async" and pi.customer is None
            assert pi.client_secret.startswith(f"{pi.id}_secret_")
            pi = await server.v1.payment_intents.update_async(pi.id, params={
                "amount": 1500, "statement_descriptor_suffix": "CART C1",
                "shipping": {"name": "Ada", "address": {"line1": "1 Main St",
                                                        "country": "US"}},
                "metadata": {"step": "checkout"}})
            assert (pi.amount, pi.statement_descriptor_suffix, pi.shipping.address.line1) == (
                1500, "CART C1", "1 Main St")
            assert pi.metadata.to_dict() == {"cart": "c1", "step": "checkout"}
            assert_stripe_shape(pi.to_dict(), "PaymentIntent")

            # the customer's browser: only the publishable key and the client_secret
            seen = await browser.v1.payment_intents.retrieve_async(
                pi.id, params={"client_secret": pi.client_secret})
            assert (seen.amount, seen.status) == (1500, "requires_payment_method")
            assert "metadata" not in seen
            with pytest.raises(stripe.InvalidRequestError) as wrong:
                await browser.v1.payment_intents.retrieve_async(
                    pi.id, params={"client_secret": f"{pi.id}_secret_guess"})
            assert wrong.value.param == "client_secret"
            with pytest.raises(stripe.PermissionError):
                await browser.v1.payment_intents.list_async()
            paid = await browser.v1.payment_intents.confirm_async(pi.id, params={
                "client_secret": pi.client_secret, "payment_method": "pm_card_visa"})
            assert paid.status == "succeeded"

            full = await server.v1.payment_intents.retrieve_async(pi.id)
            assert full.amount_received == 1500 and full.latest_charge.startswith("ch_")
            with pytest.raises(stripe.InvalidRequestError) as late:
                await server.v1.payment_intents.update_async(pi.id, params={"amount": 1})
            assert late.value.code == "payment_intent_unexpected_state"

            refund = await server.v1.refunds.create_async(params={
                "payment_intent": pi.id, "amount": 400, "reason": "duplicate"})
            refund = await server.v1.refunds.update_async(refund.id, params={
                "metadata": {"ticket": "T9"}})
            assert refund.metadata["ticket"] == "T9" and refund.reason == "duplicate"
            with pytest.raises(stripe.InvalidRequestError):
                await server.v1.refunds.cancel_async(refund.id)
            assert (await server.v1.refunds.retrieve_async(refund.id)).status == "succeeded"

            with pytest.raises(stripe.CardError) as declined:
                await server.v1.payment_intents.create_async(params={
                    "amount": 900, "currency": "usd", "confirm": True,
                    "payment_method": "pm_card_chargeDeclined"})
            body = declined.value.json_body["error"]
            assert body["charge"].startswith("ch_")
            assert body["payment_method"]["card"]["last4"] == "0002"
            error = declined.value.error
            assert error is not None and error.payment_intent.last_payment_error.charge == \
                body["charge"]
        finally:
            await http.close_async()

    async with httpx.AsyncClient(base_url=simulator_url) as sim:
        rows = {a["idempotency_key"]: a for a in (await sim.get("/_sim/authorizations")).json()}
    record = rows[full.latest_charge]
    assert (record["amount"], record["amount_captured"], record["amount_refunded"]) == (
        1500, 1500, 400)
    assert rows[body["charge"]]["amount_captured"] == 0
    owed = -int(await kassa.pool.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = ANY($1::text[])"
        " AND layer = 'posted'", [f"merchant:{merchant['merchant_id']}:pending",
                                  f"merchant:{merchant['merchant_id']}:available"]))
    fee = await kassa.pool.fetchval("SELECT fee FROM balance_transactions WHERE source = $1",
                                    full.latest_charge)
    assert owed == 1500 - fee - 400
    assert (await verify(kassa.pool)).ok
