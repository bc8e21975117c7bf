"""``/v1/account``: the payout schedule in Stripe's shape, read and updated with
``settings[payouts][schedule][…]``, validated with Stripe-shaped 400s; and the merchant's
``delay_days`` is what a capture's ``available_on`` uses (00:00 UTC, that many days after the
day of capture), not a global setting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kassa.domain.settlement import available_on
from kassa.services import merchants


def schedule_of(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()["settings"]["payouts"]["schedule"]


async def test_the_schedule_is_read_and_updated_like_stripes(client, auth, merchant):
    r = await client.get("/v1/account", headers=auth)
    assert (r.json()["id"], r.json()["object"]) == (merchant["merchant_id"], "account")
    assert schedule_of(r) == {"interval": "daily", "delay_days": 2}
    r = await client.post("/v1/account", headers=auth, data={
        "settings[payouts][schedule][interval]": "weekly",
        "settings[payouts][schedule][weekly_anchor]": "Friday",
        "settings[payouts][schedule][delay_days]": "7"})
    assert schedule_of(r) == {"interval": "weekly", "weekly_anchor": "friday",
                              "delay_days": 7}
    assert schedule_of(await client.get("/v1/account", headers=auth))["weekly_anchor"] == "friday"
    # only what is given changes; an anchor of another interval is dropped
    r = await client.post("/v1/account", headers=auth, data={
        "settings[payouts][schedule][interval]": "monthly",
        "settings[payouts][schedule][monthly_anchor]": "31"})
    assert schedule_of(r) == {"interval": "monthly", "monthly_anchor": 31, "delay_days": 7}
    r = await client.post("/v1/account", headers=auth, json={
        "settings": {"payouts": {"schedule": {"interval": "manual",
                                              "delay_days": "minimum"}}}})
    assert schedule_of(r) == {"interval": "manual", "delay_days": 2}
    events = await client.get("/v1/events", headers=auth, params={"type": "account.updated"})
    assert len(events.json()["data"]) == 3


@pytest.mark.parametrize(("data", "param"), [
    ({"settings[payouts][schedule][interval]": "hourly"}, "settings[payouts][schedule][interval]"),
    ({"settings[payouts][schedule][delay_days]": "366"},
     "settings[payouts][schedule][delay_days]"),
    ({"settings[payouts][schedule][delay_days]": "two"},
     "settings[payouts][schedule][delay_days]"),
    ({"settings[payouts][schedule][monthly_anchor]": "3"},  # the interval is daily
     "settings[payouts][schedule][monthly_anchor]"),
    ({"settings[payouts][schedule][interval]": "monthly",
      "settings[payouts][schedule][monthly_anchor]": "32"},
     "settings[payouts][schedule][monthly_anchor]"),
    ({"settings[payouts][schedule][interval]": "weekly",
      "settings[payouts][schedule][weekly_anchor]": "someday"},
     "settings[payouts][schedule][weekly_anchor]"),
    ({"settings[payouts][schedule][speed]": "fast"}, "settings[payouts][schedule][speed]"),
    ({"settings[payouts][statement]": "x"}, "settings[payouts][statement]"),
])
async def test_bad_schedules_are_stripe_shaped_400s(client, auth, data, param):
    before = schedule_of(await client.get("/v1/account", headers=auth))
    r = await client.post("/v1/account", headers=auth, data=data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert schedule_of(await client.get("/v1/account", headers=auth)) == before


async def test_the_account_needs_a_secret_key(client, merchant):
    r = await client.get("/v1/account")
    assert r.status_code == 401
    r = await client.get("/v1/account",
                         headers={"Authorization": f"Bearer {merchant['publishable_key']}"})
    assert r.status_code == 403


@pytest.mark.parametrize("delay_days", [0, 2, 7, 30])
async def test_a_capture_becomes_available_after_the_merchants_delay(kassa, client,
                                                                     delay_days):
    m = await merchants.create_merchant(kassa, name=f"delay {delay_days}")
    auth = {"Authorization": f"Bearer {m['secret_key']}"}
    if delay_days != 2:  # 2: no settings at all, the default
        r = await client.post("/v1/account", headers=auth, data={
            "settings[payouts][schedule][delay_days]": str(delay_days)})
        assert r.status_code == 200, r.text
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "2000", "currency": "jpy", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text
    txns = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    assert len(txns) == 1
    captured = datetime.fromtimestamp(txns[0]["created"], UTC)
    assert txns[0]["available_on"] == int(available_on(captured, delay_days).timestamp())
    assert txns[0]["status"] == "pending"
