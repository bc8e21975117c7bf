"""A chargeback of a converted payment (domain/fx.py): the merchant loses the disputed
amount and the dispute fee converted at the payment's original rate, in its settlement
currency; the trading legs are at the current rate (difference to fx gain/loss); a won
dispute gives back exactly what was taken; `verify` checks both at the rates."""

from __future__ import annotations

from decimal import Decimal

from kassa.domain.fx import Rate, convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import fx
from tests.integration.psp.conftest import World


async def test_a_converted_chargeback_and_its_reversal(world: World):
    r = await world.api.post("/v1/account", headers=world.auth,
                             data={"default_currency": "gbp"})
    assert r.status_code == 200
    now = world.kassa.clock()
    await fx.store(world.kassa, [Rate("aud", "gbp", Decimal("0.5173"), "test", now - 5)])
    pi = await world.pay("pm_card_createDispute", amount=8_000, currency="aud")
    assert pi["status"] == "succeeded"
    # the rate moves before the chargeback arrives
    await fx.store(world.kassa, [Rate("aud", "gbp", Decimal("0.5300"), "test", now)])
    await world.flush()
    await world.apply()
    (d,) = (await world.api.get("/v1/disputes", headers=world.auth,
                                params={"payment_intent": pi["id"]})).json()["data"]
    amount = convert(Money(8_000, "aud"), Decimal("0.5173"), "gbp").minor
    fee = convert(Money(1_500, "aud"), Decimal("0.5173"), "gbp").minor
    (bt,) = d["balance_transactions"]
    assert (bt["amount"], bt["fee"], bt["currency"], bt["exchange_rate"]) == (
        -amount, fee, "gbp", 0.5173)
    rows = await world.kassa.pool.fetch(
        "SELECT t.exchange_rate, e.account, e.currency, e.amount FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id WHERE t.source_id = $1",
        d["id"])
    assert {r["exchange_rate"] for r in rows} == {Decimal("0.5300")}
    by = {r["account"]: r["amount"] for r in rows}
    assert by["fx:aud"] == 8_000 and by["fx:gbp"] == -4_240  # 80.00 aud at 0.53
    assert by["revenue:fx_gain_loss"] == 4_240 - amount
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
    r = await world.api.post(f"/v1/disputes/{d['id']}", headers=world.auth, json={
        "evidence": {"uncategorized_text": "winning_evidence"}, "submit": True})
    assert r.status_code == 200, r.text
    await world.flush()
    await world.apply()
    won = (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)).json()
    assert won["status"] == "won"
    assert [(b["amount"], b["fee"]) for b in won["balance_transactions"]] == [
        (-amount, fee), (amount, -fee)]
    bal = (await world.api.get("/v1/balance", headers=world.auth)).json()
    assert [(b["currency"], b["amount"]) for b in bal["available"]] == [("gbp", 0)]
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
