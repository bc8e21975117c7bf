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


async def test_a_chargeback_after_partial_refunds_takes_only_what_remains(world: World):
    # 1 euro cent is 1.507 yen: the 2-cent capture credits 3 yen (3.014), a 1-cent refund
    # takes 2 (1.507 rounds up) and leaves 1; converting the disputed cent alone would take
    # 2 more, 4 yen in all for a 3-yen capture
    r = await world.api.post("/v1/account", headers=world.auth,
                             data={"default_currency": "jpy"})
    assert r.status_code == 200
    await fx.store(world.kassa, [Rate("eur", "jpy", Decimal("150.7"), "test",
                                      world.kassa.clock())])
    pi = await world.pay(amount=2, currency="eur")
    assert pi["status"] == "succeeded"
    refund = await world.api.post("/v1/refunds", headers=world.auth,
                                  data={"payment_intent": pi["id"], "amount": "1"})
    assert refund.status_code == 200 and refund.json()["status"] == "succeeded", refund.text
    # the cardholder's bank charges back the whole 2 cents; kassa can withdraw the 1 left
    r = await world.sim.post(f"/_sim/disputes/{await world.authorization(pi)}/open",
                             json={})
    assert r.status_code == 200, r.text
    await world.flush()
    await world.apply()
    (d,) = (await world.api.get("/v1/disputes", headers=world.auth,
                                params={"payment_intent": pi["id"]})).json()["data"]
    credited = convert(Money(2, "eur"), Decimal("150.7"), "jpy").minor
    fee = convert(Money(1_500, "eur"), Decimal("150.7"), "jpy").minor
    assert credited == 3

    async def merchant_debits() -> int:
        bts = (await world.api.get("/v1/balance_transactions", headers=world.auth,
                                   params={"limit": "100"})).json()["data"]
        return -sum(b["amount"] for b in bts if b["type"] in ("refund", "adjustment"))
    (bt,) = d["balance_transactions"]
    assert (bt["amount"], bt["fee"], bt["currency"]) == (-1, fee, "jpy")
    # the refund and the chargeback took back exactly what the capture credited
    assert await merchant_debits() == credited
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
        (-1, fee), (1, -fee)]
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
    # posted under the share rule: verify would not take the legacy amount (2 + fee) for it;
    # a withdrawal at or before the recorded cutover is legacy
    from kassa.ledger import invariants
    from kassa.ledger.verify import _converted_dispute

    (row,) = [r for r in await invariants.converted_disputes(world.kassa.pool)
              if r["id"] == d["id"]]
    assert row["legacy"] is False
    overshoot = {**row, "withdrawn": 2 + fee, "reinstated": 2 + fee}
    assert "expected 2261 and 2261" in _converted_dispute(overshoot)
    await world.kassa.pool.execute(
        "UPDATE ledger_rule_cutovers SET last_legacy_transaction = (SELECT max(id)"
        " FROM ledger_transactions) WHERE rule = 'dispute_share'")
    (row,) = [r for r in await invariants.converted_disputes(world.kassa.pool)
              if r["id"] == d["id"]]
    assert row["legacy"] is True
    assert _converted_dispute({**row, "withdrawn": 2 + fee, "reinstated": 2 + fee}) is None


def test_verify_judges_a_converted_chargeback_by_its_share():
    from kassa.ledger.verify import _converted_dispute

    # 2 eur cents credited 3 yen; the chargeback of the 1 cent left takes 1 yen (the share)
    # plus the 2260-yen fee; 2 yen is what the pre-share rule took (passes, old data); a
    # reversal must give back exactly what was taken; anything else is reported
    row = {"id": "dp_x", "status": "lost", "amount_withdrawn": 1, "fee": 1500,
           "currency": "eur", "settlement_currency": "jpy", "exchange_rate": Decimal("150.7"),
           "amount_received": 2, "withdrawn": 2261, "reinstated": 0, "legacy": False}
    assert _converted_dispute(row) is None
    # the legacy amount: correct for a withdrawal posted before the rule, and only for one
    assert _converted_dispute({**row, "withdrawn": 2262, "legacy": True}) is None
    assert "expected 2261 and 0" in _converted_dispute({**row, "withdrawn": 2262})
    assert "expected 2261 and 0" in _converted_dispute({**row, "withdrawn": 2263})
    won = {**row, "status": "won", "reinstated": 2261}
    assert _converted_dispute(won) is None
    assert "expected 2261 and 2261" in _converted_dispute({**won, "reinstated": 2262})
    assert _converted_dispute({**row, "amount_withdrawn": 3}) is not None  # > captured
