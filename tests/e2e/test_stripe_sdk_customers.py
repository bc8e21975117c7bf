"""Stripe's Python SDK, unmodified but for its base URLs, on customers and saved cards: the
card is tokenised at the vault (the SDK's payment_methods.create pointed at the vault), saved
to a customer by a payment with setup_future_usage, then charged off-session. The money is
counted at the simulator's own books and in the ledger."""

from __future__ import annotations

import pytest
import stripe

from kassa.api.app import create_app
from kassa.ledger.verify import verify
from kassa.services import merchants
from tests.support.api_server import serving
from tests.support.stripe_schema import assert_stripe_shape
from tests.support.vault import kassa_through, running_vault

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_customers_and_off_session_reuse_with_the_sdk(settings, dsn, sim):
    async with running_vault(settings, dsn) as vault, kassa_through(vault, dsn) as k:
        shop = await merchants.create_merchant(k, name="SDK customers")
        async with serving(create_app(kassa=k, key_cache_seconds=0.0)) as url:
            http = stripe.HTTPXClient()
            server = stripe.StripeClient(shop["secret_key"], http_client=http,
                                         base_addresses={"api": url})
            # the browser's side: the publishable key, and the vault where card numbers go
            browser = stripe.StripeClient(shop["publishable_key"], http_client=http,
                                          base_addresses={"api": vault.url})
            try:
                cus = await server.v1.customers.create_async(params={
                    "email": "ada@example.com", "name": "Ada", "metadata": {"crm": "42"}})
                assert_stripe_shape(cus.to_dict(), "Customer")
                pm = await browser.v1.payment_methods.create_async(params={
                    "type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                             "exp_year": 2034, "cvc": "123"}})
                first = await server.v1.payment_intents.create_async(params={
                    "amount": 3000, "currency": "eur", "customer": cus.id,
                    "payment_method": pm.id, "setup_future_usage": "off_session",
                    "confirm": True})
                assert first.status == "succeeded" and first.customer == cus.id
                saved = await server.v1.customers.payment_methods.list_async(cus.id)
                assert [p.id for p in saved.data] == [pm.id]
                cus = await server.v1.customers.update_async(cus.id, params={
                    "invoice_settings": {"default_payment_method": pm.id}})
                assert cus.invoice_settings.default_payment_method == pm.id

                again = await server.v1.payment_intents.create_async(params={
                    "amount": 1250, "currency": "eur", "customer": cus.id,
                    "payment_method": cus.invoice_settings.default_payment_method,
                    "off_session": True, "confirm": True})
                assert again.status == "succeeded" and again.amount_received == 1250

                updated = await server.v1.payment_methods.update_async(pm.id, params={
                    "billing_details": {"name": "Ada L."}, "card": {"exp_year": 2035}})
                assert updated.card.exp_year == 2035
                assert updated.billing_details.name == "Ada L."
                listed = await server.v1.customers.list_async(
                    params={"email": "ada@example.com"})
                assert [c.id for c in listed.data] == [cus.id]
                found = await server.v1.customers.search_async(
                    params={"query": "metadata['crm']:'42'"})
                assert [c.id for c in found.data] == [cus.id]
                detached = await server.v1.payment_methods.detach_async(pm.id)
                assert detached.customer is None
                gone = await server.v1.customers.delete_async(cus.id)
                assert gone.deleted is True
            finally:
                await http.close_async()

        # both ends: the simulator's books hold exactly these two captures for this merchant
        books = [a for a in (await sim.get("/_sim/authorizations")).json()
                 if a["merchant_id"] == shop["merchant_id"]]
        assert sorted(a["amount_captured"] for a in books) == [1250, 3000]
        captured = await k.pool.fetchval(
            "SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_transactions t"
            " ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
            " AND e.account LIKE 'psp:%:receivable'", shop["merchant_id"])
        assert captured == 4250
        assert (await verify(k.pool)).ok
