"""A card detached from its customer (by detach, or when the customer is deleted) is never
used again, as Stripe refuses it: it cannot be attached to another customer, nor charged
(off-session or not), nor saved by setup_future_usage — so A's card never pays for B."""

from __future__ import annotations

from kassa.db import ops, units
from tests.support.vault import tokenise

DETACHED = ("This PaymentMethod was previously used without being attached to a Customer or "
            "was detached from a Customer, and may not be used again.")  # Stripe's words


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


async def _customer(api, shop):
    r = await api.post("/v1/customers", headers=_auth(shop), data={})
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def _attached_card(api, vault, shop, customer):
    r = await tokenise(vault.url, shop["publishable_key"], "4242424242424242")
    assert r.status_code == 200, r.text
    pm = r.json()["id"]
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=_auth(shop),
                       data={"customer": customer})
    assert r.status_code == 200, r.text
    return pm


def _refused(r, param):
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "payment_method_unexpected_state", error
    assert error["message"] == DETACHED and error["param"] == param


async def _assert_never_used_again(api, shop, sim, pm, other):
    h = _auth(shop)
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=h, data={"customer": other})
    _refused(r, "id")
    r = await api.get(f"/v1/payment_methods/{pm}", headers=h)
    assert r.json()["customer"] is None
    before = len((await sim.get("/_sim/authorizations")).json())
    for data in ({"customer": other, "off_session": "true"}, {"customer": other}, {}):
        r = await api.post("/v1/payment_intents", headers=h, data={
            "amount": "700", "currency": "usd", "payment_method": pm, "confirm": "true",
            **data})
        _refused(r, "payment_method")
    # an intent created first and confirmed with the card afterwards: refused too
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "700", "currency": "usd", "customer": other})
    pi = r.json()["id"]
    r = await api.post(f"/v1/payment_intents/{pi}/confirm", headers=h,
                       data={"payment_method": pm})
    _refused(r, "payment_method")
    # both ends: the PSP saw no authorisation, kassa's ledger holds none for this merchant
    assert len((await sim.get("/_sim/authorizations")).json()) == before
    posted = await api.kassa.pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE merchant_id = $1", shop["merchant_id"])
    assert posted == 0


async def test_a_detached_card_is_never_attached_nor_charged_again(api, vault, shop, sim):
    a, b = await _customer(api, shop), await _customer(api, shop)
    pm = await _attached_card(api, vault, shop, a)
    r = await api.post(f"/v1/payment_methods/{pm}/detach", headers=_auth(shop))
    assert r.status_code == 200, r.text
    await _assert_never_used_again(api, shop, sim, pm, b)
    # not even by the customer it was detached from
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=_auth(shop),
                       data={"customer": a})
    _refused(r, "id")


async def test_a_deleted_customers_card_is_never_attached_nor_charged_again(api, vault, shop,
                                                                           sim):
    a, b = await _customer(api, shop), await _customer(api, shop)
    pm = await _attached_card(api, vault, shop, a)
    r = await api.delete(f"/v1/customers/{a}", headers=_auth(shop))
    assert r.status_code == 200, r.text
    await _assert_never_used_again(api, shop, sim, pm, b)


async def test_save_payment_method_op_leaves_a_detached_card_alone(api, vault, shop):
    a, b = await _customer(api, shop), await _customer(api, shop)
    pm = await _attached_card(api, vault, shop, a)
    await api.post(f"/v1/payment_methods/{pm}/detach", headers=_auth(shop))
    async with api.kassa.pool.acquire() as conn:
        await units.apply(conn, [ops.SavePaymentMethod(
            payment_method_id=pm, merchant_id=shop["merchant_id"], customer=b)])
    owner = await api.kassa.pool.fetchval(
        "SELECT customer FROM kassa_vault.payment_methods WHERE id = $1", pm)
    assert owner is None


async def test_a_never_attached_card_still_attaches(api, vault, shop):
    cus = await _customer(api, shop)
    pm = await _attached_card(api, vault, shop, cus)
    detached = await api.kassa.pool.fetchval(
        "SELECT detached FROM kassa_vault.payment_methods WHERE id = $1", pm)
    assert detached is False


async def test_no_attached_event_when_the_save_changed_nothing(api, vault, shop, sim,
                                                               monkeypatch):
    """setup_future_usage: the customer is deleted between the finisher's look at the card
    and its commit. The card stays unattached, and no payment_method.attached says
    otherwise; the payment itself is counted at both ends."""
    from kassa.db import customers as customers_db
    from kassa.services import saved_cards

    h = _auth(shop)
    cus = await _customer(api, shop)
    r = await tokenise(vault.url, shop["publishable_key"], "4242424242424242")
    pm = r.json()["id"]
    looked = saved_cards.save_after_success

    async def customer_deleted_meanwhile(kassa, p):
        decided = await looked(kassa, p)
        async with kassa.pool.acquire() as conn, conn.transaction():
            await customers_db.delete_customer(conn, merchant_id=p.merchant_id,
                                               customer_id=cus)
        return decided

    monkeypatch.setattr(saved_cards, "save_after_success", customer_deleted_meanwhile)
    r = await api.post("/v1/payment_intents", headers=h, data={
        "amount": "1300", "currency": "usd", "customer": cus, "payment_method": pm,
        "setup_future_usage": "off_session", "confirm": "true"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    row = await api.kassa.pool.fetchrow(
        "SELECT customer, detached FROM kassa_vault.payment_methods WHERE id = $1", pm)
    assert row["customer"] is None
    r = await api.get("/v1/events", headers=h, params={"type": "payment_method.attached"})
    assert r.json()["data"] == []
    books = [a for a in (await sim.get("/_sim/authorizations")).json()
             if a["merchant_id"] == shop["merchant_id"]]
    assert [a["amount_captured"] for a in books] == [1300]
    captured = await api.kassa.pool.fetchval(
        "SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
        " AND e.account LIKE 'psp:%:receivable'", shop["merchant_id"])
    assert captured == 1300
