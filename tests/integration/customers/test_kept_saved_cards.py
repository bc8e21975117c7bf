"""A card saved to a customer is read once per API process and then kept (vault/resolver.py
SavedCards): its next payments send no read before their first commit, whose claim proves
the row unchanged (db/sql/apply.sql use_payment_method, KS4PC). A kept row that went stale
— as another replica's would when this one updates or detaches the card — is never charged:
a changed expiry is the one sent, a detached card or a deleted customer is refused at once,
with nothing sent to the PSP nor written — counted at the simulator and in the ledger."""

from __future__ import annotations

import pytest

from kassa.db import ops, units
from tests.support.vault import tokenise

DETACHED = ("This PaymentMethod was previously used without being attached to a Customer or "
            "was detached from a Customer, and may not be used again.")  # Stripe's words


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


async def _saved_card(api, vault, shop):
    r = await api.post("/v1/customers", headers=_auth(shop), data={})
    assert r.status_code == 200, r.text
    cus = r.json()["id"]
    r = await tokenise(vault.url, shop["publishable_key"], "4242424242424242")
    assert r.status_code == 200, r.text
    pm = r.json()["id"]
    r = await api.post(f"/v1/payment_methods/{pm}/attach", headers=_auth(shop),
                       data={"customer": cus})
    assert r.status_code == 200, r.text
    return cus, pm


async def _pay(api, shop, pm, cus, amount="900"):
    return await api.post("/v1/payment_intents", headers=_auth(shop), data={
        "amount": amount, "currency": "usd", "payment_method": pm, "customer": cus,
        "confirm": "true"})


async def _kept(api, shop, pm, cus):
    return await api.kassa.payment_methods.lookup(  # type: ignore[attr-defined]
        merchant_id=shop["merchant_id"], payment_method=pm, customer=cus, kept=True)


async def _authorizations(sim, shop):
    return [a for a in (await sim.get("/_sim/authorizations")).json()
            if a["merchant_id"] == shop["merchant_id"]]


async def test_a_saved_card_is_kept_after_its_first_payment(api, vault, shop, sim):
    cus, pm = await _saved_card(api, vault, shop)
    first = await _pay(api, shop, pm, cus)
    assert first.status_code == 200 and first.json()["status"] == "succeeded", first.text
    kept = await _kept(api, shop, pm, cus)
    assert kept.kept_version is not None and kept.row["id"] == pm
    assert kept.live_customer == cus
    # another customer's intent never gets this customer's kept row
    other = (await api.post("/v1/customers", headers=_auth(shop), data={})).json()["id"]
    assert (await _kept(api, shop, pm, other)).kept_version is None
    second = await _pay(api, shop, pm, cus, "1100")
    assert second.status_code == 200 and second.json()["status"] == "succeeded", second.text
    r = await _pay(api, shop, pm, other)
    assert r.status_code == 400 and r.json()["error"]["param"] == "payment_method", r.text
    # both ends: the PSP captured the two, the ledger holds the two
    books = await _authorizations(sim, shop)
    assert sorted(a["amount_captured"] for a in books) == [900, 1100]
    captured = await api.kassa.pool.fetchval(
        "SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
        " AND e.account LIKE 'psp:%:receivable'", shop["merchant_id"])
    assert captured == 2000


async def test_an_expiry_updated_since_is_the_one_charged(api, vault, shop, sim):
    cus, pm = await _saved_card(api, vault, shop)
    assert (await _pay(api, shop, pm, cus)).status_code == 200
    was = (await _kept(api, shop, pm, cus)).row
    r = await api.post(f"/v1/payment_methods/{pm}", headers=_auth(shop),
                       data={"card[exp_month]": "7", "card[exp_year]": "2041"})
    assert r.status_code == 200, r.text
    stale = await _kept(api, shop, pm, cus)  # as another replica would still hold it
    assert (stale.row["exp_month"], stale.row["exp_year"]) == (was["exp_month"],
                                                              was["exp_year"]) != (7, 2041)
    r = await _pay(api, shop, pm, cus, "1300")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    charge = (await api.get(f"/v1/charges/{r.json()['latest_charge']}",
                            headers=_auth(shop))).json()
    card = charge["payment_method_details"]["card"]
    assert (card["exp_month"], card["exp_year"]) == (7, 2041)
    # the PSP call was built from the same row as the charge's facts: read again, now kept
    fresh = await _kept(api, shop, pm, cus)
    assert (fresh.card.exp_month, fresh.card.exp_year) == (7, 2041)
    assert fresh.kept_version not in (None, stale.kept_version)
    assert sorted(a["amount_captured"] for a in await _authorizations(sim, shop)) == [900, 1300]


@pytest.mark.parametrize("how", ["detach", "delete_customer"])
async def test_a_card_detached_since_is_refused_at_once(api, vault, shop, sim, how):
    cus, pm = await _saved_card(api, vault, shop)
    assert (await _pay(api, shop, pm, cus)).status_code == 200
    if how == "detach":
        r = await api.post(f"/v1/payment_methods/{pm}/detach", headers=_auth(shop))
    else:
        r = await api.delete(f"/v1/customers/{cus}", headers=_auth(shop))
    assert r.status_code == 200, r.text
    assert (await _kept(api, shop, pm, cus)).kept_version is not None  # stale, still kept
    intents = await api.kassa.pool.fetchval(
        "SELECT count(*) FROM payment_intents WHERE merchant_id = $1", shop["merchant_id"])
    r = await _pay(api, shop, pm, cus, "1700")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    if how == "detach":
        assert (error["code"], error["message"], error["param"]) == (
            "payment_method_unexpected_state", DETACHED, "payment_method")
    else:
        assert (error["code"], error["param"]) == ("resource_missing", "customer")
    # both ends: nothing reached the PSP, nothing was written (no intent, no ledger entry)
    assert [a["amount_captured"] for a in await _authorizations(sim, shop)] == [900]
    assert await api.kassa.pool.fetchval(
        "SELECT count(*) FROM payment_intents WHERE merchant_id = $1",
        shop["merchant_id"]) == intents
    assert await api.kassa.pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE merchant_id = $1 AND kind = 'capture'",
        shop["merchant_id"]) == 1
    assert (await _kept(api, shop, pm, cus)).kept_version is None  # read again: not kept


async def test_the_claim_refuses_a_row_version_that_moved(api, vault, shop):
    """The database side alone: a kept row's claim at another version, for another
    customer, or for a deleted customer is refused (KS4PC) and writes nothing."""
    cus, pm = await _saved_card(api, vault, shop)
    version = await api.kassa.pool.fetchval(
        "SELECT xmin::text FROM kassa_vault.payment_methods WHERE id = $1", pm)
    mid = shop["merchant_id"]

    def claim(customer, row_version):
        return [ops.UsePaymentMethod(payment_method_id=pm, merchant_id=mid,
                                     payment_intent_id="pi_claim", customer=customer,
                                     row_version=row_version)]

    await units.apply(api.kassa.pool, claim(cus, version))  # unchanged: accepted
    for customer, row_version in ((cus, str(int(version) + 1)), ("cus_other", version)):
        with pytest.raises(units.CardChanged):
            await units.apply(api.kassa.pool, claim(customer, row_version))
    await api.kassa.pool.execute("UPDATE customers SET deleted = true WHERE id = $1", cus)
    with pytest.raises(units.CardChanged):
        await units.apply(api.kassa.pool, claim(cus, version))
    assert await api.kassa.pool.fetchval(
        "SELECT used_by FROM kassa_vault.payment_methods WHERE id = $1", pm) is None


async def test_a_card_gone_since_it_was_kept_is_refused_as_missing(api, vault, shop, sim):
    """The kept row's claim is refused (KS4PC: no such row now); the card read again is
    none, so the confirmation is the 400 a first read gives — not a charge written and
    declined for a card that is not there."""
    cus, pm = await _saved_card(api, vault, shop)
    assert (await _pay(api, shop, pm, cus)).status_code == 200
    assert (await _kept(api, shop, pm, cus)).kept_version is not None
    async with api.kassa.pool.acquire() as conn, conn.transaction():
        for table in ("idempotency_keys", "card_secrets"):
            await conn.execute(f"DELETE FROM kassa_vault.{table} WHERE payment_method_id = $1",
                               pm)
        await conn.execute("DELETE FROM kassa_vault.payment_methods WHERE id = $1", pm)
    intents = await api.kassa.pool.fetchval(
        "SELECT count(*) FROM payment_intents WHERE merchant_id = $1", shop["merchant_id"])
    r = await _pay(api, shop, pm, cus, "1900")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("resource_missing", "payment_method")
    assert error["message"] == f"No such PaymentMethod: '{pm}'"
    # both ends: nothing reached the PSP, nothing was written
    assert [a["amount_captured"] for a in await _authorizations(sim, shop)] == [900]
    assert await api.kassa.pool.fetchval(
        "SELECT count(*) FROM payment_intents WHERE merchant_id = $1",
        shop["merchant_id"]) == intents
    assert await api.kassa.pool.fetchval(
        "SELECT count(*) FROM charges WHERE merchant_id = $1", shop["merchant_id"]) == 1


async def test_a_kept_row_that_is_not_the_intents_card_is_never_claimed_unchecked(
        api, vault, shop):
    from types import SimpleNamespace

    from kassa.services import saved_cards

    cus, pm = await _saved_card(api, vault, shop)
    assert (await _pay(api, shop, pm, cus)).status_code == 200
    kept = await _kept(api, shop, pm, cus)
    mid = shop["merchant_id"]
    claim = saved_cards.use_op(SimpleNamespace(id="pi_1", merchant_id=mid, payment_method=pm,
                                               customer=cus), kept)
    assert claim is not None and claim.row_version == kept.kept_version
    for other_card, other_customer in (("pm_other", cus), (pm, "cus_other"), (pm, None)):
        with pytest.raises(RuntimeError):
            saved_cards.use_op(SimpleNamespace(id="pi_1", merchant_id=mid,
                                               payment_method=other_card,
                                               customer=other_customer), kept)


async def test_a_kept_row_holds_only_what_a_payment_reads(api, vault, shop):
    cus, pm = await _saved_card(api, vault, shop)
    big = {f"k{i}": "x" * 500 for i in range(50)}  # Stripe's most metadata: 50 × 500
    r = await api.post(f"/v1/payment_methods/{pm}", headers=_auth(shop), data={
        **{f"metadata[{k}]": v for k, v in big.items()},
        "billing_details[name]": "Ada Lovelace", "billing_details[address][line1]": "1 Road"})
    assert r.status_code == 200, r.text
    assert (await _pay(api, shop, pm, cus)).status_code == 200
    kept = await _kept(api, shop, pm, cus)
    assert kept.kept_version is not None
    assert "metadata" not in kept.row and "billing_details" not in kept.row
    assert (kept.row["last4"], kept.row["customer"]) == ("4242", cus)
    # what the payment read of it is whole: the charge's facts, the PSP's card
    r = await _pay(api, shop, pm, cus, "1200")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    charge = (await api.get(f"/v1/charges/{r.json()['latest_charge']}",
                            headers=_auth(shop))).json()
    assert charge["payment_method_details"]["card"]["last4"] == "4242"
