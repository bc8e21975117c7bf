"""Payments kassa converted (presentment ≠ the merchant's settlement currency, domain/fx.py)
through reconciliation end to end, counted at both ends: usd, eur, jpy (zero decimals) and
kwd (three) paid to a merchant settling in usd, some refunded; the simulator (its own
database and simulator) reports what it charged in each presentment currency — it converts
nothing — and the run matches every row, posts the settlement per presentment currency,
leaves the PSP receivable at zero in every currency, and verifies. The run's report, the
per-day summary and the merchant's settlement say which currency each figure is in."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from kassa.db import reconciliation as rdb
from kassa.domain.fx import Rate, convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.psp.simulator.settlement_report import PRICING
from kassa.reconciliation import exports
from kassa.services import fx, merchants
from kassa.services import reconciliation as recon
from kassa.services import reconciliation_reports as reports

RATES = {"eur": "1.0842", "jpy": "0.0067", "kwd": "3.2541"}
PAYMENTS = [("usd", 1000), ("eur", 1999), ("eur", 505), ("jpy", 1500), ("jpy", 777),
            ("kwd", 1234), ("kwd", 10_001)]
REFUNDS = {1: 999, 3: 1500, 6: 5}  # payment index -> amount refunded


async def test_kassa_converted_payments_reconcile_to_zero_in_every_currency(world, tmp_path):
    k, client, sim = world
    await fx.store(k, [Rate(c, "usd", Decimal(v), "test", k.clock())
                       for c, v in RATES.items()])
    shop = await merchants.create_merchant(k, name="fx shop")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    r = await client.post("/v1/account", headers=auth, data={"default_currency": "usd"})
    assert r.status_code == 200, r.text
    paid = []
    for ccy, amount in PAYMENTS:
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(amount), "currency": ccy, "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded", r.text
        paid.append(r.json())
    for i, amount in REFUNDS.items():
        r = await client.post("/v1/refunds", headers=auth, data={
            "payment_intent": paid[i]["id"], "amount": str(amount)})
        assert r.json()["status"] == "succeeded", r.text

    # the PSP's end: what the simulator itself says it charged and refunded, per currency
    sim_auths = (await sim.get("/_sim/authorizations")).json()
    charged: dict[str, int] = defaultdict(int)
    refunded: dict[str, int] = defaultdict(int)
    fees: dict[str, int] = defaultdict(int)
    for a in sim_auths:
        charged[a["currency"]] += a["amount_captured"]
        refunded[a["currency"]] += a["amount_refunded"]
        fees[a["currency"]] += PRICING.fee_for(Money(a["amount_captured"], a["currency"])).minor
    expected_charged: dict[str, int] = defaultdict(int)
    for ccy, amount in PAYMENTS:
        expected_charged[ccy] += amount
    assert dict(charged) == dict(expected_charged)  # the PSP charged presentment amounts

    r = await sim.post("/_sim/settlement_report", json={})
    path = tmp_path / "fx_day.csv"
    path.write_text(r.json()["csv"])
    assert "settlement_currency" not in path.read_text().splitlines()[0]  # no PSP conversion
    run = await recon.import_report(k, psp="simulator", path=path)
    assert run["discrepancies"] == 0 and run["rows_matched"] == run["rows_read"] == \
        len(PAYMENTS) + len(REFUNDS)
    # the receivable of a fully reconciled day is zero in every currency
    left = {x["currency"]: x["total"] for x in await rdb.receivable(k.pool, psp="simulator")}
    assert set(left) == {"usd", "eur", "jpy", "kwd"} and not any(left.values())
    # the bank got, per presentment currency, what the PSP charged less refunds and fees
    bank = {x["currency"]: x["total"] for x in await k.pool.fetch(
        "SELECT currency, sum(amount)::bigint AS total FROM ledger_entries"
        " WHERE account = 'bank:cash' GROUP BY currency")}
    assert bank == {c: charged[c] - refunded[c] - fees[c] for c in charged}
    report = await verify(k.pool)
    assert report.ok, report.problems

    # the run's report: every figure in the presentment currency, settled in it
    summary = (await reports.run_report(k, run_id=run["id"]))["summary"]
    assert [(s["currency"], s["gross"], s["settlement_currency"], s["settlement_gross"],
             s["fee"], s["net"], s["exchange_rates"]) for s in summary["settled"]] == [
        (c, charged[c] - refunded[c], c, charged[c] - refunded[c], fees[c],
         charged[c] - refunded[c] - fees[c], []) for c in sorted(charged)]
    # the day: settlement per currency, nothing left, no PSP conversion
    today = datetime.now(UTC).date()
    day = await reports.daily_summary(k, day=today)
    (sim_day,) = [p for p in day["psps"] if p["psp"] == "simulator"]
    assert sim_day["settlement_posted"] == [
        {"currency": c, "gross": charged[c] - refunded[c], "fee": fees[c],
         "net": charged[c] - refunded[c] - fees[c]} for c in sorted(charged)]
    assert sim_day["receivable_left"] == [] and sim_day["conversions_posted"] == []
    text = exports.daily_text(day)
    assert "gross 777 JPY" in text and "gross 11.230 KWD" in text
    assert "converted by the PSP" not in text

    # the merchant's settlement: in usd only, each converted capture at its rate
    settlement = await reports.merchant_settlement(k, merchant_id=shop["merchant_id"],
                                                   start=today, end=today)
    (usd,) = settlement["currencies"]
    settled = {c: sum(convert(Money(a, c), Decimal(RATES[c]), "usd").minor
                      for cc, a in PAYMENTS if cc == c) for c in RATES}
    assert usd["currency"] == "usd" and usd["charges"] == len(PAYMENTS)
    assert usd["gross"] == 1000 + sum(settled.values())
    assert [(v["presentment_currency"], v["charges"], v["presentment_gross"], v["gross"],
             v["exchange_rates"]) for v in settlement["conversions"]] == [
        (c, sum(1 for cc, _ in PAYMENTS if cc == c), expected_charged[c], settled[c],
         [RATES[c]]) for c in sorted(RATES)]
    row = exports.to_csv(exports.SETTLEMENT_COLUMNS,
                         exports.settlement_rows(settlement)).splitlines()[1].split(",")
    assert row[-2:] == ["eur jpy kwd", " ".join(sorted(RATES.values()))]
