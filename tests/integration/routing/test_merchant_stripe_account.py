"""A merchant's own Stripe account (/v1/psp_accounts) end to end against localstripe over
kassa's HTTP API: the account is created with its credentials, a routing configuration
sends the merchant's payments there, they are captured (partially) and refunded; and a
PaymentMethod of that Stripe account (a PSP token ``<account>:pm_…``) is charged as it is,
with no PaymentMethod made from a card. Counted at both ends: localstripe's own records
(read with Stripe's SDK) against kassa's payments and ledger.

localstripe has no /v1/account, so this kassa runs with KASSA_PSP_ACCOUNTS_LOCALSTRIPE (no
binding; the binding is tests/integration/routing/test_stripe_binding.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kassa.ledger.verify import verify
from tests.integration.routing.conftest import routed_world
from tests.support.localstripe_records import sdk, stripe_payment
from tests.support.localstripe_server import API_KEY
from tests.support.simulator_server import running_simulator


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


async def test_a_merchant_s_stripe_account_end_to_end(dsn, sims, localstripe_url):
    async with routed_world(dsn, *sims, psp_accounts_localstripe=True) as w, \
            httpx.AsyncClient() as ls_http:
        stripe_v1 = sdk(localstripe_url, ls_http)
        r = await w.api.post("/v1/psp_accounts", headers=w.auth, json={
            "psp": "stripe", "base_url": localstripe_url, "currencies": ["eur"],
            "credentials": {"api_key": API_KEY}})
        assert r.status_code == 200, r.text
        account = r.json()["id"]
        assert r.json()["stripe_account"] is None  # localstripe: not bound
        await w.route({"strategy": "single", "psp": account})

        # a card payment routed there: manual capture of part, two refunds
        r = await w.pay(pm="pm_card_visa", amount=4000, currency="eur",
                        capture_method="manual")
        assert r.status_code == 200, r.text
        card_pi = r.json()
        assert card_pi["status"] == "requires_capture"
        r = await w.api.post(f"/v1/payment_intents/{card_pi['id']}/capture", headers=w.auth,
                             json={"amount_to_capture": 3000})
        assert r.status_code == 200 and r.json()["amount_received"] == 3000, r.text
        refunds = []
        for amount in (700, 300):
            r = await w.api.post("/v1/refunds", headers=w.auth,
                                 json={"payment_intent": card_pi["id"], "amount": amount})
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            refunds.append(r.json()["id"])

        # a PaymentMethod of that Stripe account, charged as the PSP's own token
        pm = await stripe_v1.payment_methods.create_async({"type": "card", "card": {
            "number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        r = await w.pay(pm=f"{account}:{pm.id}", amount=2500, currency="eur")
        assert r.status_code == 200, r.text
        token_pi = r.json()
        assert token_pi["status"] == "succeeded"
        assert token_pi["payment_method"] == f"{account}:{pm.id}"

        # both ends: localstripe's records of each payment against kassa's
        at_card = await stripe_payment(localstripe_url, card_pi["id"])
        assert len(at_card.intents) == 1
        assert (at_card.status, at_card.captured) == ("succeeded", 3000)
        assert sorted(at_card.refunds.values()) == [300, 700]
        kassa_refunds = await w.kassa.pool.fetch(
            "SELECT attempt_id, amount FROM refunds WHERE payment_intent_id = $1",
            card_pi["id"])
        assert {row["attempt_id"]: row["amount"] for row in kassa_refunds} == at_card.refunds
        at_token = await stripe_payment(localstripe_url, token_pi["id"])
        assert len(at_token.intents) == 1
        assert (at_token.status, at_token.captured) == ("succeeded", 2500)
        assert at_token.intents[0].payment_method == pm.id  # passed through, not remade
        attempts = await w.kassa.pool.fetch(
            "SELECT psp, status FROM attempts WHERE merchant_id = $1 AND operation ="
            " 'authorize'", w.merchant_id)
        assert {(a["psp"], a["status"]) for a in attempts} == {(account, "succeeded")}
        assert await w.kassa_succeeded() == {account: 2}
        assert await w.receivable(account) == \
            at_card.captured - sum(at_card.refunds.values()) + at_token.captured
        assert await w.books("simulator") == [] and await w.books("sim_b") == []
        assert (await verify(w.kassa.pool)).ok
