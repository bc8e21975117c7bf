"""A merchant's own PSP account keeps its PSP's hold validity, not the platform's 7-day
default: Stripe's 7 days, Adyen's 28 (major card networks), or the account's own
``hold_validity_days`` (validated per PSP, changeable). The validity is what sets a
manual-capture payment's hold deadline when it is authorised at that account, and what
recovery voids it at (counted in the account's own simulator books and kassa's ledger)."""

from __future__ import annotations

from typing import Any

from kassa.db import payments as payments_db
from kassa.services import hold_validity, recovery
from tests.e2e import test_psp_accounts as base
from tests.e2e.test_psp_accounts import World, create_account

module_dsn, sims, world = base.module_dsn, base.sims, base.world
DAY = 24 * 3600


async def wait_of(w: World, pi: dict[str, Any]) -> int:
    """Seconds from the authorisation's start to its hold deadline (recovery's watch)."""
    return int(await w.kassa.pool.fetchval(
        "SELECT extract(epoch FROM next_check_at - created_at)::int FROM attempts"
        " WHERE id = $1", pi["latest_charge"]))


async def test_an_accounts_validity_sets_its_holds_deadline(world: World) -> None:
    w = world
    account = await create_account(w, hold_validity_days=3)
    assert account["hold_validity_days"] == 3
    assert (await w.route_single(account["id"])).status_code == 200
    pi = await w.pay(5200, capture_method="manual")
    assert pi["status"] == "requires_capture"
    assert abs(await wait_of(w, pi) - 3 * DAY) <= 60

    # changed: later authorisations take the new validity (the account's identity stays)
    r = await w.post(f"/v1/psp_accounts/{account['id']}", hold_validity_days="5")
    assert r.status_code == 200 and r.json()["hold_validity_days"] == 5, r.text
    later = await w.pay(1300, capture_method="manual")
    assert abs(await wait_of(w, later) - 5 * DAY) <= 60

    # at the deadline recovery voids it at the account's own PSP and releases the hold
    await w.kassa.pool.execute(
        "UPDATE attempts SET created_at = created_at - interval '5 days',"
        " next_check_at = now() WHERE id = $1", later["latest_charge"])
    charge = await payments_db.get_attempt(w.kassa.pool, later["latest_charge"])
    assert charge is not None
    assert await recovery.look(w.kassa, charge) == "expired"
    r = await w.api.get(f"/v1/payment_intents/{later['id']}", headers=w.auth)
    assert (r.json()["status"], r.json()["cancellation_reason"]) == ("canceled", "automatic")
    [at_psp] = [a for a in await w.books(w.own_sim) if a["amount"] == 1300]
    assert (at_psp["status"], at_psp["amount_captured"]) == ("voided", 0)
    held = await w.kassa.pool.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
        " JOIN ledger_transactions t ON t.id = e.transaction_id"
        " WHERE t.source_id = $1 AND e.layer = 'pending' AND e.account = $2",
        later["latest_charge"], f"psp:{account['id']}:receivable")
    assert held == 0  # held, then released


async def test_each_psp_keeps_its_documented_validity_and_bounds(world: World) -> None:
    w = world

    async def stripe_account_of(api_key: str, base_url: str) -> str:
        return "acct_hold_validity"  # the key's Stripe account (no Stripe on loopback)

    w.kassa.stripe_account_of = stripe_account_of
    stripe = {"psp": "stripe", "currencies": ["usd"],
              "credentials": {"api_key": "sk_test_hold_validity"}}
    adyen = {"psp": "adyen", "currencies": ["eur"], "merchant_account": "Shop",
             "credentials": {"api_key": "AQE_hold_validity", "hmac_keys": ["00ff"]}}
    for body, days in ((stripe, 7), (adyen, 28)):
        r = await w.post("/v1/psp_accounts", **body)
        assert r.status_code == 200 and r.json()["hold_validity_days"] is None, r.text
        assert await hold_validity.seconds(w.kassa, r.json()["id"]) == days * DAY
    r = await w.post("/v1/psp_accounts", **adyen, hold_validity_days=12)  # Cartes Bancaires
    assert r.status_code == 200, r.text
    assert await hold_validity.seconds(w.kassa, r.json()["id"]) == 12 * DAY
    # the platform's own accounts keep their settings
    assert await hold_validity.seconds(w.kassa, "simulator") == \
        w.kassa.watch.hold_validity("simulator")

    for body, bad in ((stripe, 8), (stripe, 0), (adyen, 29), (adyen, -1), (adyen, "x"),
                      (adyen, True), (adyen, 2.5)):
        r = await w.post("/v1/psp_accounts", **body, hold_validity_days=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["param"] == "hold_validity_days", r.text
    account = await create_account(w)
    r = await w.post(f"/v1/psp_accounts/{account['id']}", hold_validity_days=31)
    assert r.status_code == 400 and r.json()["error"]["param"] == "hold_validity_days"
    r = await w.api.get(f"/v1/psp_accounts/{account['id']}", headers=w.auth)
    assert r.json()["hold_validity_days"] is None  # a refused update changed nothing
