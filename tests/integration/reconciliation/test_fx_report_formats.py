"""Adyen's and Stripe's converted rows through the database: the simulator's payments in eur,
jpy and kwd (its own database and simulator), reported as Adyen's Settlement details (Gross
Currency ≠ Net Currency, Exchange Rate) and as Stripe's itemized report (customer_facing_*
≠ currency/gross), both paying out in usd — fixtures written from the documented columns —
imported with that format: every row matched on its presentment side, the receivable zero in
every currency, the bank exactly what each file says was paid, verify clean. A row whose
presentment currency is not kassa's is a currency_mismatch and posts nothing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from kassa.domain.currencies import to_major
from kassa.domain.fx import convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.psp.simulator.settlement_report import PRICING
from kassa.reconciliation import exports
from kassa.services import merchants
from kassa.services import reconciliation as recon
from kassa.services import reconciliation_reports as reports
from tests.unit.reconciliation.test_reports import ADYEN_HEADER

RATES = {"eur": Decimal("1.0850"), "jpy": Decimal("0.0067"), "kwd": Decimal("3.2541")}


async def pay(client, auth, payments) -> list[dict]:
    out = []
    for ccy, amount in payments:
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(amount), "currency": ccy, "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded", r.text
        out.append(r.json())
    return out


async def sim_refs(k, paid: list[dict]) -> list[tuple[str, str, str, int]]:
    """(psp reference, currency, attempt id, amount) per payment, as the PSP knows it."""
    rows = await k.pool.fetch(
        "SELECT p.id, p.psp_reference, p.currency, p.amount_received, a.id AS attempt"
        " FROM payment_intents p JOIN attempts a ON a.payment_intent_id = p.id"
        " AND a.operation = 'authorize' WHERE p.id = ANY($1::text[])", [p["id"] for p in paid])
    by = {r["id"]: r for r in rows}
    return [(by[p["id"]]["psp_reference"], by[p["id"]]["currency"], by[p["id"]]["attempt"],
             by[p["id"]]["amount_received"]) for p in paid]


def major(minor: int, ccy: str) -> str:
    return str(to_major(Money(minor, ccy)))


async def receivable(k) -> dict[str, int]:
    rows = await k.pool.fetch("SELECT currency, sum(amount)::bigint AS total FROM ledger_entries"
                              " WHERE account = 'psp:simulator:receivable' GROUP BY currency")
    return {r["currency"]: r["total"] for r in rows if r["total"]}


async def bank(k) -> dict[str, int]:
    rows = await k.pool.fetch("SELECT currency, sum(amount)::bigint AS total FROM ledger_entries"
                              " WHERE account = 'bank:cash' GROUP BY currency")
    return {r["currency"]: r["total"] for r in rows if r["total"]}


async def test_adyen_then_stripe_converted_reports(world, tmp_path):
    k, client, _ = world
    shop = await merchants.create_merchant(k, name="formats")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}

    # Adyen: charged in eur/jpy/kwd, paid out in usd; one row names the wrong currency
    adyen = await sim_refs(k, await pay(client, auth, [("eur", 1999), ("jpy", 1500),
                                                       ("kwd", 1234), ("eur", 700)]))
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(ADYEN_HEADER)
    paid_usd = 0
    for i, (ref, ccy, attempt, amount) in enumerate(adyen):
        settled = convert(Money(amount, ccy), RATES[ccy], "usd").minor
        fee = PRICING.fee_for(Money(settled, "usd")).minor
        gross_ccy = "GBP" if i == 3 else ccy.upper()  # kassa has it in eur
        row = {"Psp Reference": ref, "Merchant Reference": attempt, "Type": "Settled",
               "Creation Date": "2026-12-01 09:00:00", "Gross Currency": gross_ccy,
               "Gross Credit (GC)": major(amount, ccy), "Exchange Rate": str(RATES[ccy]),
               "Net Currency": "USD", "Net Credit (NC)": major(settled - fee, "usd"),
               "Commission (NC)": major(fee, "usd"), "Batch Number": "7"}
        w.writerow([row.get(c, "") for c in ADYEN_HEADER])
        paid_usd += settled - fee
    payout = {"Type": "MerchantPayout", "Net Currency": "USD",
              "Net Debit (NC)": major(paid_usd, "usd"), "Batch Number": "7"}
    w.writerow([payout.get(c, "") for c in ADYEN_HEADER])
    path = tmp_path / "settlement_detail_report_batch_7.csv"
    path.write_text(out.getvalue())
    run = await recon.import_report(k, psp="simulator", path=path, report_format="adyen")
    found, _ = await recon.list_discrepancies(k, run_id=run["id"], limit=10,
                                              starting_after=None)
    assert [(d["kind"], d["kassa_value"], d["psp_value"]) for d in found] == [
        ("currency_mismatch", "eur", "gbp")]
    wrong = adyen[3]
    assert await receivable(k) == {"eur": wrong[3]}  # only the mismatched row is left
    assert await bank(k) == {"usd": paid_usd - (
        convert(Money(wrong[3], "eur"), RATES["eur"], "usd").minor
        - PRICING.fee_for(Money(convert(Money(wrong[3], "eur"), RATES["eur"], "usd").minor,
                                "usd")).minor)}
    report = await verify(k.pool)
    assert report.ok, report.problems

    # Stripe: the wrong row again, right this time, and new payments; a refund too
    more = await pay(client, auth, [("jpy", 777), ("kwd", 10_001)])
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": more[0]["id"],
                                                             "amount": "700"})
    assert r.json()["status"] == "succeeded"
    refund_ref = await k.pool.fetchval("SELECT psp_reference FROM refunds WHERE id = $1",
                                       r.json()["id"])
    stripe_rows = [*[(ref, ccy, amount, "charge") for ref, ccy, _, amount in
                     [wrong, *await sim_refs(k, more)]], (refund_ref, "jpy", -700, "refund")]
    lines = ["balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
             "source_id,payment_intent_id,customer_facing_amount,customer_facing_currency"]
    before = (await bank(k))["usd"]
    stripe_usd = 0
    for n, (ref, ccy, amount, category) in enumerate(stripe_rows):
        settled = convert(Money(amount, ccy), RATES[ccy], "usd").minor
        fee = PRICING.fee_for(Money(settled, "usd")).minor if category == "charge" else 0
        lines.append(f"txn_{n},2026-12-02 10:00:00,usd,{major(settled, 'usd')},"
                     f"{major(fee, 'usd')},{major(settled - fee, 'usd')},{category},"
                     f"{ref if category == 'refund' else 'ch_' + str(n)},"
                     f"{ref if category == 'charge' else ''},{major(abs(amount), ccy)},{ccy}")
        stripe_usd += settled - fee
    path = tmp_path / "stripe.csv"
    path.write_text("\n".join(lines) + "\n")
    run = await recon.import_report(k, psp="simulator", path=path, report_format="stripe")
    assert run["discrepancies"] == 0 and run["rows_matched"] == len(stripe_rows)
    assert await receivable(k) == {}  # zero in every currency
    assert await bank(k) == {"usd": before + stripe_usd}
    rates = await k.pool.fetch("SELECT currency, exchange_rate FROM reconciliation_items"
                               " WHERE run_id = $1 ORDER BY row_number", run["id"])
    # the rate Stripe's amounts imply (it reports none), within the rounding of the amounts
    for x, (_, ccy, _amount, _) in zip(rates, stripe_rows, strict=True):
        assert abs(x["exchange_rate"] - RATES[ccy]) / RATES[ccy] < Decimal("0.01"), x
    report = await verify(k.pool)
    assert report.ok, report.problems


async def test_a_converted_day_that_nets_to_less_than_a_minor_unit_verifies(world, tmp_path):
    """1,000 JPY charged and 999 refunded, paid out at 0.004 as 4.00 and -4.00 USD: the 1 JPY
    left is worth nothing at the rate, so there is no trade to prove — it goes to FX gain or
    loss in yen, the receivable is zero and verify passes."""
    k, client, _ = world
    shop = await merchants.create_merchant(k, name="nets to nothing")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    (pi,) = await pay(client, auth, [("jpy", 1000)])
    r = await client.post("/v1/refunds", headers=auth, data={"payment_intent": pi["id"],
                                                             "amount": "999"})
    assert r.json()["status"] == "succeeded"
    ((ref, _, attempt, _),) = await sim_refs(k, [pi])
    refund_ref = await k.pool.fetchval("SELECT psp_reference FROM refunds WHERE id = $1",
                                       r.json()["id"])
    fee = PRICING.fee_for(Money(400, "usd")).minor
    path = tmp_path / "tiny.csv"
    path.write_text(
        "type,psp_reference,merchant_reference,currency,gross,fee,net,status,created,"
        "settlement_currency,settlement_gross,exchange_rate\n"
        f"charge,{ref},{attempt},jpy,1000,{fee},{400 - fee},captured,1796169600,usd,400,0.004\n"
        f"refund,{refund_ref},,jpy,-999,0,-400,refunded,1796169600,usd,-400,0.004\n")
    before = await bank(k)
    run = await recon.import_report(k, psp="simulator", path=path)
    assert run["discrepancies"] == 0 and run["rows_matched"] == 2
    assert "jpy" not in await receivable(k)
    after = await bank(k)
    assert after.get("usd", 0) - before.get("usd", 0) == -fee
    report = await verify(k.pool)
    assert report.ok, report.problems
    # the day's summary still says what was converted, though no rate could be proven
    day = await reports.daily_summary(k, day=datetime.fromtimestamp(1796169600, UTC).date())
    (sim_day,) = [p for p in day["psps"] if p["psp"] == "simulator"]
    tiny = [c for c in sim_day["conversions_posted"] if c["exchange_rate"] == "0.004"]
    assert [(c["currency"], c["gross"], c["settlement_currency"], c["settled"])
            for c in tiny] == [("jpy", 1, "usd", 0)]
    assert "1 JPY paid as 0.00 USD" in exports.daily_text(day)
