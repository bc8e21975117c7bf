"""The PSP converted (it charged in one currency and paid out in another at its own rate),
end to end with the simulator (its own database and simulator), counted at both ends: a
simulator account paying out in usd converts eur, jpy (zero decimals) and kwd (three) at
the rates it reports; kassa matches each row on the presentment side (its receivable),
records the PSP's rate, and posts the settlement through the trading accounts — the PSP
receivable goes to zero in every currency, the bank gets exactly what the simulator's own
books and rates say it paid, and verify passes. A row whose presentment currency disagrees
with kassa's stays a currency_mismatch (nothing posted) until a correct report comes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from kassa.domain.fx import Rate, convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.psp.simulator.settlement_report import PRICING
from kassa.reconciliation import exports
from kassa.services import fx, merchants
from kassa.services import reconciliation as recon
from kassa.services import reconciliation_reports as reports

SIM_RATES = {"eur": "1.0850", "jpy": "0.0067", "kwd": "3.2541"}  # the PSP's, not kassa's
KASSA_EUR_USD = "1.0842"  # kassa's own rate for the merchant that settles in usd
PAYMENTS = [("usd", 1000), ("eur", 1999), ("eur", 505), ("eur", 333), ("jpy", 1500),
            ("jpy", 777), ("kwd", 1234), ("kwd", 10_001)]
REFUNDS = {1: 999, 4: 1500, 7: 5}
CONVERTING_SHOP = [("eur", 2500), ("eur", 1)]  # kassa converts these into usd too


async def balances(k, account: str) -> dict[str, int]:
    rows = await k.pool.fetch("SELECT currency, sum(amount)::bigint AS total FROM ledger_entries"
                              " WHERE account = $1 AND layer = 'posted' GROUP BY currency",
                              account)
    return {r["currency"]: r["total"] for r in rows if r["total"]}


async def test_a_psp_that_settles_in_usd_reconciles_at_its_own_rates(world, tmp_path):
    k, client, sim = world
    r = await sim.post("/_sim/config", json={"settlement_currency": "usd",
                                             "settlement_rates": SIM_RATES})
    assert r.status_code == 200 and r.json()["settlement_rates"] == SIM_RATES, r.text
    bad = await sim.post("/_sim/config", json={"settlement_rates": {"eur": 1.08}})
    assert bad.status_code == 400  # a rate is a decimal string, never a float
    await fx.store(k, [Rate("eur", "usd", Decimal(KASSA_EUR_USD), "test", k.clock())])
    shop = await merchants.create_merchant(k, name="psp fx shop")
    usd_shop = await merchants.create_merchant(k, name="kassa fx shop")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    usd_auth = {"Authorization": f"Bearer {usd_shop['secret_key']}"}
    r = await client.post("/v1/account", headers=usd_auth, data={"default_currency": "usd"})
    assert r.status_code == 200, r.text
    paid = []
    for who, payments in ((auth, PAYMENTS), (usd_auth, CONVERTING_SHOP)):
        for ccy, amount in payments:
            r = await client.post("/v1/payment_intents", headers=who, data={
                "amount": str(amount), "currency": ccy, "payment_method": "pm_card_visa",
                "confirm": "true"})
            assert r.json()["status"] == "succeeded", r.text
            paid.append(r.json())
    for i, amount in REFUNDS.items():
        r = await client.post("/v1/refunds", headers=auth, data={
            "payment_intent": paid[i]["id"], "amount": str(amount)})
        assert r.json()["status"] == "succeeded", r.text

    # the PSP's end, from the simulator's own books and its own rates: per movement what it
    # charged (presentment) and what it paid out for it (usd), fees on the usd side
    rates = {c: Decimal(v) for c, v in SIM_RATES.items()}

    def paid_out(amount: int, ccy: str) -> int:
        return amount if ccy == "usd" else convert(Money(amount, ccy), rates[ccy], "usd").minor

    bank_usd = fees_usd = 0
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # ccy -> [gross, settled]
    for a in (await sim.get("/_sim/authorizations")).json():
        settled = paid_out(a["amount_captured"], a["currency"])
        fee = PRICING.fee_for(Money(settled, "usd")).minor
        refund = paid_out(-a["amount_refunded"], a["currency"]) if a["amount_refunded"] else 0
        bank_usd += settled - fee + refund
        fees_usd += fee
        if a["currency"] != "usd":
            groups[a["currency"]][0] += a["amount_captured"] - a["amount_refunded"]
            groups[a["currency"]][1] += settled + refund

    # a report where one converted row names another presentment currency than kassa's
    r = await sim.post("/_sim/settlement_report", json={"inject": {"currency_mismatch": 1},
                                                         "seed": 11})
    assert r.status_code == 200, r.text
    (victim,) = r.json()["injected"]
    path = tmp_path / "mismatch.csv"
    path.write_text(r.json()["csv"])
    assert path.read_text().splitlines()[0].endswith(
        "settlement_currency,settlement_gross,exchange_rate")
    run = await recon.import_report(k, psp="simulator", path=path)
    found, _ = await recon.list_discrepancies(k, run_id=run["id"], limit=10,
                                              starting_after=None)
    assert [(d["kind"], d["psp_reference"]) for d in found] == [
        ("currency_mismatch", victim["psp_reference"])]
    pi = await k.pool.fetchrow("SELECT currency, amount_received FROM payment_intents"
                               " WHERE psp_reference = $1", victim["psp_reference"])
    assert await balances(k, "psp:simulator:receivable") == {pi["currency"]:
                                                             pi["amount_received"]}
    report = await verify(k.pool)
    assert report.ok, report.problems

    # the correct report: the mismatched row settles, nothing is posted twice
    r = await sim.post("/_sim/settlement_report", json={})
    clean = tmp_path / "clean.csv"
    clean.write_text(r.json()["csv"])
    second = await recon.import_report(k, psp="simulator", path=clean)
    assert second["discrepancies"] == 0
    assert await balances(k, "psp:simulator:receivable") == {}  # zero in every currency
    assert await balances(k, "bank:cash") == {"usd": bank_usd}  # what the PSP paid out
    assert await balances(k, "expense:psp_fees") == {"usd": fees_usd}
    report = await verify(k.pool)
    assert report.ok, report.problems

    # the PSP's rate is kept on each converted row and on its settlement transaction
    kept = await k.pool.fetch(
        "SELECT DISTINCT currency, settlement_currency, exchange_rate::text AS rate"
        " FROM reconciliation_items WHERE settlement_currency IS NOT NULL AND posted"
        " ORDER BY 1")
    assert [(x["currency"], x["settlement_currency"], x["rate"]) for x in kept] == [
        (c, "usd", SIM_RATES[c]) for c in sorted(SIM_RATES)]
    txs = await k.pool.fetch(
        "SELECT t.source_id, t.exchange_rate::text AS rate, e.account, e.currency, e.amount"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.kind = 'settlement' AND t.exchange_rate IS NOT NULL")
    for x in txs:
        assert x["source_id"].endswith(f">usd@{x['rate']}")
        assert x["rate"] == SIM_RATES[x["source_id"].split(":")[1].split(">")[0]]
    per_currency: dict[str, int] = defaultdict(int)
    for x in txs:
        per_currency[x["currency"]] += x["amount"]
    assert not any(per_currency.values())  # each currency balances on its own

    # the reports say which side each figure is on
    both = [*(await reports.run_report(k, run_id=run["id"]))["summary"]["settled"],
            *(await reports.run_report(k, run_id=second["id"]))["summary"]["settled"]]
    eur = [s for s in both if s["currency"] == "eur" and s["posted_rows"]]
    assert eur and all(s["settlement_currency"] == "usd"
                       and s["exchange_rates"] == [SIM_RATES["eur"]]
                       and s["net"] == s["settlement_gross"] - s["fee"] for s in eur)
    assert sum(s["gross"] for s in eur) == groups["eur"][0]
    assert sum(s["settlement_gross"] for s in eur) == groups["eur"][1]
    day = await reports.daily_summary(k, day=datetime.now(UTC).date())
    (sim_day,) = [p for p in day["psps"] if p["psp"] == "simulator"]
    assert sim_day["receivable_left"] == []
    conversions: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in sim_day["conversions_posted"]:
        assert c["settlement_currency"] == "usd"
        assert c["exchange_rate"] == SIM_RATES[c["currency"]]
        # the gain is what the PSP paid beyond its rate applied to the total
        assert c["fx_gain"] == c["settled"] - convert(
            Money(c["gross"], c["currency"]), rates[c["currency"]], "usd").minor
        for i, v in enumerate((c["gross"], c["settled"], c["fx_gain"])):
            conversions[c["currency"]][i] += v
    assert {c: v[:2] for c, v in conversions.items()} == {c: v for c, v in groups.items()}
    assert {p["currency"]: (p["fee"], p["net"]) for p in sim_day["settlement_posted"]
            if p["currency"] == "usd"} == {"usd": (fees_usd, bank_usd)}
    daily = list(exports.daily_rows(day))
    for row in daily:  # each currency's settlement adds up, conversions included
        if row["psp"] == "simulator" and row["currency"]:
            assert row["settled_gross"] == (row["settled_fee"] + row["settled_net"]
                                            + row["converted"]), row
    assert {r["currency"]: r["converted"] for r in daily if r["psp"] == "simulator"} == {
        "usd": -sum(v[1] for v in groups.values()), **{c: v[0] for c, v in groups.items()}}
    text = exports.daily_text(day)
    assert "converted by the PSP:" in text and "at 1.0850" in text
    run_csv = exports.to_csv(exports.RUN_COLUMNS, exports.run_rows(
        await reports.run_report(k, run_id=run["id"]))).splitlines()
    ccy = next(c for c in ("jpy", "kwd") if c != pi["currency"])  # all its rows in run 1
    assert any(line.startswith("summary,") and f",{ccy}," in line
               and line.endswith(f",usd,{groups[ccy][1]},{SIM_RATES[ccy]}")
               for line in run_csv[1:]), run_csv
