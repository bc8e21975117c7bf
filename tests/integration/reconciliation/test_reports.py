"""The reconciliation exports against known inputs: a simulated day with known payments,
refunds and fees (kassa's and the PSP's), and a settlement report with one amount and one
fee discrepancy injected. The run's report, the merchant's settlement and the day's summary
must show exactly the figures the inputs make, from the ledger and the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kassa.domain.money import Money
from kassa.psp.simulator.settlement_report import PRICING
from kassa.reconciliation import exports
from kassa.services import merchants
from kassa.services import reconciliation as recon
from kassa.services import reconciliation_reports as reports

PAYMENTS, AMOUNT, REFUNDS, REFUND = 10, 2000, 2, 500


async def test_reports_show_the_known_day(world, tmp_path):
    k, client, sim = world
    shop = await merchants.create_merchant(k, name="reported day")
    other = await merchants.create_merchant(k, name="someone else")
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    paid = []
    for _ in range(PAYMENTS):
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": str(AMOUNT), "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded", r.text
        paid.append(r.json()["id"])
    for pi in paid[:REFUNDS]:
        r = await client.post("/v1/refunds", headers=auth, data={
            "payment_intent": pi, "amount": str(REFUND)})
        assert r.json()["status"] == "succeeded"
    # someone else's payment is in the PSP's day, not in this merchant's settlement
    r = await client.post("/v1/payment_intents", data={
        "amount": "999", "currency": "eur", "payment_method": "pm_card_visa",
        "confirm": "true"}, headers={"Authorization": f"Bearer {other['secret_key']}"})
    assert r.json()["status"] == "succeeded"
    today = datetime.now(UTC).date()

    # the merchant's settlement, from the ledger: kassa's fee is its own schedule's
    kassa_fee = k.fees.fee_for(Money(AMOUNT, "usd")).minor
    settlement = await reports.merchant_settlement(k, merchant_id=shop["merchant_id"],
                                                   start=today, end=today)
    (usd,) = settlement["currencies"]
    assert usd == {"currency": "usd", "charges": PAYMENTS, "capture_reversals": 0,
                   "gross": PAYMENTS * AMOUNT,
                   "fees": PAYMENTS * kassa_fee, "refund_count": REFUNDS,
                   "refunds": REFUNDS * REFUND, "dispute_count": 0, "disputes": 0,
                   "dispute_fees": 0, "payout_count": 0, "payouts": 0,
                   "net": PAYMENTS * AMOUNT - PAYMENTS * kassa_fee - REFUNDS * REFUND}
    yesterday = await reports.merchant_settlement(
        k, merchant_id=shop["merchant_id"], start=today - timedelta(days=1),
        end=today - timedelta(days=1))
    assert yesterday["currencies"] == []
    rows = exports.to_csv(exports.SETTLEMENT_COLUMNS, exports.settlement_rows(settlement))
    assert rows.splitlines()[1].split(",")[3:8] == [
        "usd", str(PAYMENTS), "0", str(PAYMENTS * AMOUNT), str(PAYMENTS * kassa_fee)]

    # the PSP's report of the day, with one amount and one fee discrepancy injected
    r = await sim.post("/_sim/settlement_report", json={
        "inject": {"amount_mismatch": 1, "fee_mismatch": 1}, "seed": 3})
    body = r.json()
    path = tmp_path / "day.csv"
    path.write_text(body["csv"])
    run = await recon.import_report(k, psp="simulator", path=path)
    bad_amount = next(i for i in body["injected"] if i["kind"] == "amount_mismatch")
    bad_victim_eur = await k.pool.fetchval(
        "SELECT currency FROM payment_intents WHERE psp_reference = $1",
        bad_amount["psp_reference"])
    psp_fee = {c: PRICING.fee_for(Money(a, c)).minor for c, a in (("usd", AMOUNT),
                                                                  ("eur", 999))}
    # what the run posted per currency: every charge and refund row but the mismatched
    # amount's; the PSP's fees as reported (the mismatched fee is 7 more, still posted)
    gross = {"usd": PAYMENTS * AMOUNT - REFUNDS * REFUND, "eur": 999}
    fee = {"usd": PAYMENTS * psp_fee["usd"], "eur": psp_fee["eur"]}
    victim = "eur" if bad_victim_eur == "eur" else "usd"
    gross[victim] -= 999 if victim == "eur" else AMOUNT
    fee[victim] -= psp_fee[victim]
    fee_victim = await k.pool.fetchval(
        "SELECT currency FROM payment_intents WHERE psp_reference = $1",
        next(i for i in body["injected"] if i["kind"] == "fee_mismatch")["psp_reference"])
    fee[fee_victim] += 7
    expected_settled = [{"currency": c, "gross": gross[c], "fee": fee[c],
                         "net": gross[c] - fee[c]} for c in sorted(gross) if gross[c]]

    report = await reports.run_report(k, run_id=run["id"])
    summary = report["summary"]
    assert summary["rows_read"] == PAYMENTS + REFUNDS + 1
    assert summary["rows_matched"] == PAYMENTS + REFUNDS
    assert summary["by_kind"] == {"missing_in_kassa": 0, "missing_at_psp": 0,
                                  "amount_mismatch": 1, "fee_mismatch": 1,
                                  "currency_mismatch": 0, "status_mismatch": 0}
    assert summary["by_resolution"] == {"open": 2, "auto_resolved": 0, "resolved": 0}
    assert [{k_: s[k_] for k_ in ("currency", "gross", "fee", "net")}
            for s in summary["settled"] if s["gross"]] == expected_settled
    csv_rows = exports.to_csv(exports.RUN_COLUMNS, exports.run_rows(report)).splitlines()
    assert sum(1 for line in csv_rows if line.startswith("discrepancy,")) == 2
    assert sum(1 for line in csv_rows if line.startswith("summary,")) == len(summary["settled"])

    # the day's summary: the run's figures, the settlement posted, the receivable left
    day = await reports.daily_summary(k, day=today)
    (sim_day,) = [p for p in day["psps"] if p["psp"] == "simulator"]
    assert sim_day["runs"] == [run["id"]] and sim_day["pull"] is None
    assert (sim_day["rows_read"], sim_day["rows_matched"]) == (PAYMENTS + REFUNDS + 1,
                                                              PAYMENTS + REFUNDS)
    assert sim_day["discrepancies"]["amount_mismatch"] == 1 and sim_day["open"] == 2
    assert sim_day["settlement_posted"] == expected_settled
    # left at the PSP: exactly the unsettled row, at kassa's amount
    assert sim_day["receivable_left"] == [
        {"currency": victim, "amount": 999 if victim == "eur" else AMOUNT}]
    text = exports.daily_text(day)
    assert "amount mismatch 1, fee mismatch 1; still open 2" in text
    assert "PSP receivable left at the day's end: " + (
        "9.99 EUR" if victim == "eur" else "20.00 USD") in text
    daily_csv = exports.to_csv(exports.DAILY_COLUMNS, exports.daily_rows(day)).splitlines()
    assert len(daily_csv) == 1 + len({s["currency"] for s in expected_settled} | {victim})
    # the day before: nothing happened
    before = await reports.daily_summary(k, day=today - timedelta(days=1))
    (sim_before,) = [p for p in before["psps"] if p["psp"] == "simulator"]
    assert sim_before["runs"] == [] and sim_before["receivable_left"] == []


async def test_bad_requests_are_refused(world):
    k, _, _ = world
    import pytest

    from kassa.domain.errors import InvalidRequest, NotFound

    today = datetime.now(UTC).date()
    with pytest.raises(NotFound):
        await reports.run_report(k, run_id="recon_nope")
    with pytest.raises(NotFound):
        await reports.merchant_settlement(k, merchant_id="acct_nope", start=today, end=today)
    shop = await merchants.create_merchant(k, name="periods")
    with pytest.raises(InvalidRequest):
        await reports.merchant_settlement(k, merchant_id=shop["merchant_id"], start=today,
                                          end=today - timedelta(days=1))
