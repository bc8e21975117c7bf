"""Two of Stripe's card rules, with Stripe's Python SDK pointed at kassa and the vault:

- an off-session charge of a card that asks for 3-D Secure is declined
  ``authentication_required`` (the customer is not there to authenticate), not left waiting in
  ``requires_action``; a card that was set up (4000002500003155) is charged without 3DS;
- a card attached to no customer serves one payment intent only: another intent, two intents
  racing for it, or attaching it afterwards are refused; the intent that used it may retry.

Money is counted at the simulator's own books and in the ledger."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe

from kassa.api.app import create_app
from kassa.services import merchants
from tests.support.api_server import serving
from tests.support.vault import kassa_through, running_vault

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def _books(sim: Any, merchant_id: str) -> list[dict[str, Any]]:
    return [a for a in (await sim.get("/_sim/authorizations")).json()
            if a["merchant_id"] == merchant_id]


async def _captured(k: Any, merchant_id: str) -> int:
    return int(await k.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
        " AND e.account LIKE 'psp:%:receivable'", merchant_id))


@contextlib.asynccontextmanager
async def _world(settings: Any, dsn: str, name: str) -> AsyncIterator[tuple[Any, ...]]:
    """kassa and its vault, a merchant, and the SDK as its server (secret key, kassa) and
    its customers' browsers (publishable key, the vault where card numbers go)."""
    async with running_vault(settings, dsn) as vault, kassa_through(vault, dsn) as k:
        shop = await merchants.create_merchant(k, name=name)
        async with serving(create_app(kassa=k, key_cache_seconds=0.0)) as url:
            http = stripe.HTTPXClient()
            server = stripe.StripeClient(shop["secret_key"], http_client=http,
                                         base_addresses={"api": url})
            browser = stripe.StripeClient(shop["publishable_key"], http_client=http,
                                          base_addresses={"api": vault.url})
            try:
                yield k, shop, server, browser
            finally:
                await http.close_async()


def _card(number: str) -> dict[str, Any]:
    return {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034,
                                     "cvc": "123"}}


async def test_off_session_charge_of_a_card_asking_for_3ds_is_declined(settings, dsn, sim):
    async with _world(settings, dsn, "Off-session 3DS") as (k, shop, server, browser):
        cus = await server.v1.customers.create_async(params={"email": "a@example.com"})
        always = await browser.v1.payment_methods.create_async(
            params=_card("4000002760003184"))  # authenticates every charge
        set_up = await browser.v1.payment_methods.create_async(
            params=_card("4000002500003155"))  # authenticates unless set up
        for pm in (always, set_up):
            await server.v1.payment_methods.attach_async(
                pm.id, params={"customer": cus.id})
            # on-session: the customer takes the challenge
            on = await server.v1.payment_intents.create_async(params={
                "amount": 700, "currency": "usd", "customer": cus.id,
                "payment_method": pm.id, "confirm": True,
                "return_url": "https://shop.example/back"})
            assert on.status == "requires_action"

        with pytest.raises(stripe.CardError) as declined:
            await server.v1.payment_intents.create_async(params={
                "amount": 1500, "currency": "usd", "customer": cus.id,
                "payment_method": always.id, "off_session": True, "confirm": True})
        err = declined.value
        assert err.http_status == 402
        assert err.code == "authentication_required"
        assert err.error.decline_code == "authentication_required"
        pi = err.error.payment_intent
        assert pi.status == "requires_payment_method"
        assert pi.next_action is None
        assert pi.last_payment_error.code == "authentication_required"
        assert pi.last_payment_error.payment_method.id == always.id

        ok = await server.v1.payment_intents.create_async(params={
            "amount": 2500, "currency": "usd", "customer": cus.id,
            "payment_method": set_up.id, "off_session": True, "confirm": True})
        assert ok.status == "succeeded" and ok.amount_received == 2500

        # the declined intent can be brought back on-session with the same card
        back = await server.v1.payment_intents.confirm_async(pi.id, params={
            "payment_method": always.id, "return_url": "https://shop.example/back"})
        assert back.status == "requires_action"

        books = await _books(sim, shop["merchant_id"])
        captured = sorted(a["amount_captured"] for a in books if a.get("amount_captured"))
        assert captured == [2500]  # the simulator charged the set-up card only
        declines = [a for a in books if a["status"] == "declined"]
        assert [a["decline_code"] for a in declines] == ["authentication_required"]
        assert await _captured(k, shop["merchant_id"]) == 2500
        attempt = await k.pool.fetchrow(
            "SELECT off_session, status FROM attempts WHERE payment_intent_id = $1"
            " ORDER BY created_at LIMIT 1", pi.id)
        assert attempt["off_session"] is True and attempt["status"] == "failed"


async def test_a_card_attached_to_no_customer_serves_one_intent(settings, dsn, sim):
    async with _world(settings, dsn, "Single-use cards") as (k, shop, server, browser):
        pm = await browser.v1.payment_methods.create_async(
            params=_card("4000000000009995"))  # insufficient funds: declined first
        first = await server.v1.payment_intents.create_async(params={
            "amount": 900, "currency": "usd", "payment_method": pm.id})
        with pytest.raises(stripe.CardError):
            await server.v1.payment_intents.confirm_async(first.id)
        # the intent that used it may try it again
        with pytest.raises(stripe.CardError):
            await server.v1.payment_intents.confirm_async(
                first.id, params={"payment_method": pm.id})
        # any other intent may not, at create or at confirm
        with pytest.raises(stripe.InvalidRequestError) as used:
            await server.v1.payment_intents.create_async(params={
                "amount": 900, "currency": "usd", "payment_method": pm.id,
                "confirm": True})
        assert used.value.code == "payment_method_unexpected_state"
        assert "may not be used again" in str(used.value.user_message)
        other = await server.v1.payment_intents.create_async(params={
            "amount": 900, "currency": "usd"})
        with pytest.raises(stripe.InvalidRequestError):
            await server.v1.payment_intents.confirm_async(
                other.id, params={"payment_method": pm.id})
        # nor attached to a customer afterwards
        cus = await server.v1.customers.create_async(params={"email": "b@example.com"})
        with pytest.raises(stripe.InvalidRequestError) as attach:
            await server.v1.payment_methods.attach_async(
                pm.id, params={"customer": cus.id})
        assert attach.value.code == "payment_method_unexpected_state"

        # a card saved by its first intent (setup_future_usage) is reusable
        saved = await browser.v1.payment_methods.create_async(
            params=_card("4242424242424242"))
        await server.v1.payment_intents.create_async(params={
            "amount": 300, "currency": "usd", "customer": cus.id,
            "payment_method": saved.id, "setup_future_usage": "off_session",
            "confirm": True})
        reuse = await server.v1.payment_intents.create_async(params={
            "amount": 400, "currency": "usd", "customer": cus.id,
            "payment_method": saved.id, "off_session": True, "confirm": True})
        assert reuse.status == "succeeded"

        # ten intents racing for one fresh card: one charge
        fresh = await browser.v1.payment_methods.create_async(
            params=_card("5555555555554444"))
        intents = [await server.v1.payment_intents.create_async(params={
            "amount": 1000 + i, "currency": "usd"}) for i in range(10)]
        results = await asyncio.gather(*(
            server.v1.payment_intents.confirm_async(
                p.id, params={"payment_method": fresh.id}) for p in intents),
            return_exceptions=True)
        won = [r for r in results if not isinstance(r, Exception)]
        lost = [r for r in results if isinstance(r, Exception)]
        assert len(won) == 1 and won[0].status == "succeeded"
        assert all(isinstance(e, stripe.InvalidRequestError) for e in lost), lost
        winner = won[0]

        books = await _books(sim, shop["merchant_id"])
        charged = sorted(a["amount_captured"] for a in books if a.get("amount_captured"))
        assert charged == sorted([300, 400, winner.amount])
        assert await _captured(k, shop["merchant_id"]) == 700 + winner.amount
        # the fresh card is claimed by the one intent that won the race
        assert await k.pool.fetchval(
            "SELECT used_by FROM kassa_vault.payment_methods WHERE id = $1", fresh.id
        ) == winner.id
