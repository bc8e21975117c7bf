"""A PSP's conversion that is not what its rate (or kassa's) says, through the database
(fxfix): nothing posted for the row — not the receivable, not the bank, not a cent to FX
gain/loss — and an open amount_mismatch on the settled side (settlement currency,
kassa_value the expected settled gross, psp_value the PSP's); within the rounding it posts
as before. Adyen without a fee breakdown books what it kept as its fee. A converted row's
fee_mismatch is in the settlement currency. Each end counted: what the file says was paid
against kassa's bank, fee and FX accounts; verify clean throughout."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from kassa.domain.errors import InvalidRequest
from kassa.domain.fx import convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.psp.simulator.settlement_report import PRICING
from kassa.services import merchants
from kassa.services import reconciliation as recon
from tests.integration.reconciliation.test_fx_report_formats import major, pay, sim_refs
from tests.unit.reconciliation.test_reports import ADYEN_HEADER

SIM_HEAD = ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created,"
            "settlement_currency,settlement_gross,exchange_rate\n")
STRIPE_HEAD = ("balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
               "source_id,payment_intent_id,customer_facing_amount,customer_facing_currency\n")
DEC_2 = 1796169600  # 2026-12-02 00:00 UTC


async def balances(k) -> dict[tuple[str, str], int]:
    rows = await k.pool.fetch("SELECT account, currency, sum(amount)::bigint AS t"
                              " FROM ledger_entries WHERE account IN ('bank:cash',"
                              " 'expense:psp_fees', 'revenue:fx_gain_loss',"
                              " 'psp:simulator:receivable') GROUP BY account, currency")
    return {(r["account"], r["currency"]): r["t"] for r in rows}


def delta(before: dict, after: dict) -> dict:
    return {key: after.get(key, 0) - before.get(key, 0) for key in {*before, *after}
            if after.get(key, 0) != before.get(key, 0)}


async def kassas_eur_usd_rate(k) -> None:
    """kassa's own eur→usd rate, 1.09, as of the reports' day."""
    await k.pool.execute("INSERT INTO fx_rates (id, base, quote, rate, source, as_of,"
                         " loaded_at) VALUES ('fxr_fxfix_1', 'eur', 'usd', 1.09, 'test', $1,"
                         " $1) ON CONFLICT DO NOTHING", DEC_2)


async def one_payment(k, client, name: str, ccy: str, amount: int):
    shop = await merchants.create_merchant(k, name=name)
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    ((ref, _, attempt, paid),) = await sim_refs(k, await pay(client, auth, [(ccy, amount)]))
    return ref, attempt, paid


async def discrepancies(k, run) -> list[tuple]:
    found, _ = await recon.list_discrepancies(k, run_id=run["id"], limit=10,
                                              starting_after=None)
    return [(d["kind"], d["currency"], d["kassa_amount"], d["psp_amount"], d["kassa_value"],
             d["psp_value"], d["resolution"]["status"]) for d in found]


@pytest.mark.parametrize(("off", "flagged"), [(0, False), (1, False), (-1, False),
                                              (2, True), (-5_425, True), (-10_000, True)])
async def test_simulator_settled_gross_off_the_rate(world, tmp_path, off, flagged):
    """10,000.00 EUR at the PSP's 1.0850 is 10,850.00 USD: settled 1 cent either side posts
    (the cent is the FX difference); 2 cents, 0.5 % or 100.00 USD off posts nothing and is an
    open amount_mismatch in USD (before: up to 1 % went silently to FX loss)."""
    k, client, _ = world
    ref, attempt, amount = await one_payment(k, client, f"off{off}", "eur", 1_000_000)
    settled = 1_085_000 + off
    fee = PRICING.fee_for(Money(settled, "usd")).minor
    path = tmp_path / f"off{off}.csv"
    path.write_text(SIM_HEAD + f"charge,{ref},{attempt},eur,{amount},{fee},{settled - fee},"
                    f"captured,{DEC_2},usd,{settled},1.0850\n")
    before = await balances(k)
    run = await recon.import_report(k, psp="simulator", path=path)
    moved = delta(before, await balances(k))
    if not flagged:
        assert run["discrepancies"] == 0 and run["rows_matched"] == 1
        assert moved == {k_: v for k_, v in {
            ("psp:simulator:receivable", "eur"): -amount,
            ("bank:cash", "usd"): settled - fee, ("expense:psp_fees", "usd"): fee,
            ("revenue:fx_gain_loss", "usd"): -off}.items() if v}
    else:
        assert run["rows_matched"] == 0
        assert await discrepancies(k, run) == [
            ("amount_mismatch", "usd", 1_085_000, settled, "1085000", str(settled), "open")]
        assert moved == {}  # nothing posted: not the receivable, the bank or FX loss
        posted = await k.pool.fetchval("SELECT posted FROM reconciliation_items"
                                       " WHERE run_id = $1", run["id"])
        assert posted is False
    report = await verify(k.pool)
    assert report.ok, report.problems


async def test_stripe_implied_rate_far_from_kassas_rate_posts_nothing(world, tmp_path):
    """customer_facing 10.00 EUR, gross 100,000.00 USD: the implied 10000 is 9,000 × kassa's
    own eur→usd rate (1.09): an open amount_mismatch, kassa_value the gross at kassa's rate;
    the bank is not debited 100,000 USD (before: posted)."""
    k, client, _ = world
    await kassas_eur_usd_rate(k)
    ref, _, amount = await one_payment(k, client, "absurd", "eur", 1000)
    path = tmp_path / "stripe_absurd.csv"
    path.write_text(STRIPE_HEAD + f"txn_x,2026-12-02 10:00:00,usd,100000.00,0.25,99999.75,"
                    f"charge,ch_x,{ref},10.00,eur\n")
    before = await balances(k)
    run = await recon.import_report(k, psp="simulator", path=path, report_format="stripe")
    assert await discrepancies(k, run) == [
        ("amount_mismatch", "usd", 1090, 10_000_000, "1090", "10000000", "open")]
    assert delta(before, await balances(k)) == {}
    # within 5 % of kassa's rate (1.12 vs 1.09: 2.8 %) it posts
    ref2, _, _ = await one_payment(k, client, "near", "eur", 1000)
    fee = PRICING.fee_for(Money(1120, "usd")).minor
    path = tmp_path / "stripe_near.csv"
    path.write_text(STRIPE_HEAD + f"txn_n,2026-12-02 11:00:00,usd,11.20,{major(fee, 'usd')},"
                    f"{major(1120 - fee, 'usd')},charge,ch_n,{ref2},10.00,eur\n")
    before = await balances(k)
    run = await recon.import_report(k, psp="simulator", path=path, report_format="stripe")
    assert await discrepancies(k, run) == []
    assert run["rows_matched"] == 1
    assert delta(before, await balances(k)) == {
        ("psp:simulator:receivable", "eur"): -1000, ("bank:cash", "usd"): 1120 - fee,
        ("expense:psp_fees", "usd"): fee}
    report = await verify(k.pool)
    assert report.ok, report.problems


@pytest.mark.parametrize(("rate", "flagged"), [("1.1446", False), ("1.1447", True),
                                               ("1.0354", False), ("1.0353", True)])
async def test_a_stated_rate_beyond_the_band_of_kassas_posts_nothing(world, tmp_path, rate,
                                                                    flagged):
    """The simulator's (as Adyen's) own rate, its settled gross consistent with it: within
    5 % of the gross at kassa's 1.09 (109.00 USD ± 5.45, plus the minor unit an amount
    implying a rate may be off) it posts; beyond, an open amount_mismatch whose kassa_value
    is the gross at kassa's rate."""
    k, client, _ = world
    await kassas_eur_usd_rate(k)
    ref, attempt, amount = await one_payment(k, client, f"band{rate}", "eur", 10_000)
    settled = convert(Money(amount, "eur"), Decimal(rate), "usd").minor
    fee = PRICING.fee_for(Money(settled, "usd")).minor
    path = tmp_path / f"band{rate}.csv"
    path.write_text(SIM_HEAD + f"charge,{ref},{attempt},eur,{amount},{fee},{settled - fee},"
                    f"captured,{DEC_2 + 3600},usd,{settled},{rate}\n")
    before = await balances(k)
    run = await recon.import_report(k, psp="simulator", path=path)
    if flagged:
        assert await discrepancies(k, run) == [
            ("amount_mismatch", "usd", 10_900, settled, "10900", str(settled), "open")]
        assert delta(before, await balances(k)) == {}
    else:
        assert await discrepancies(k, run) == []
        assert delta(before, await balances(k))[("bank:cash", "usd")] == settled - fee
    report = await verify(k.pool)
    assert report.ok, report.problems


async def test_stripe_implied_rate_outside_parse_rate_bounds_is_a_4xx(world, tmp_path):
    k, client, _ = world
    ref, _, _ = await one_payment(k, client, "bounds", "jpy", 1)
    path = tmp_path / "stripe_bounds.csv"
    path.write_text(STRIPE_HEAD + "txn_y,2026-12-02 10:00:00,kwd,10000000000000.000,0,"
                    f"10000000000000.000,charge,ch_y,{ref},1,jpy\n")
    before = await balances(k)
    with pytest.raises(InvalidRequest, match="line 2: .*outside"):
        await recon.import_report(k, psp="simulator", path=path, report_format="stripe")
    assert delta(before, await balances(k)) == {}
    assert await k.pool.fetchval("SELECT count(*) FROM reconciliation_items"
                                 " WHERE exchange_rate > 1e12") == 0


async def test_adyen_without_fee_breakdown_books_the_fee_not_an_fx_loss(world, tmp_path):
    k, client, _ = world
    ref, attempt, amount = await one_payment(k, client, "nofees", "eur", 100_000)
    settled = convert(Money(amount, "eur"), Decimal("1.0850"), "usd").minor  # 108500
    kept = 900
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(ADYEN_HEADER)
    row = {"Psp Reference": ref, "Merchant Reference": attempt, "Type": "Settled",
           "Creation Date": "2026-12-02 09:00:00", "Gross Currency": "EUR",
           "Gross Credit (GC)": major(amount, "eur"), "Exchange Rate": "1.0850",
           "Net Currency": "USD", "Net Credit (NC)": major(settled - kept, "usd"),
           "Batch Number": "9"}
    payout = {"Type": "MerchantPayout", "Net Currency": "USD",
              "Net Debit (NC)": major(settled - kept, "usd"), "Batch Number": "9"}
    for r in (row, payout):
        w.writerow([r.get(c, "") for c in ADYEN_HEADER])
    path = tmp_path / "adyen_nofees.csv"
    path.write_text(out.getvalue())
    before = await balances(k)
    run = await recon.import_report(k, psp="simulator", path=path, report_format="adyen")
    assert run["rows_matched"] == 1
    assert delta(before, await balances(k)) == {
        ("psp:simulator:receivable", "eur"): -amount,
        ("bank:cash", "usd"): settled - kept, ("expense:psp_fees", "usd"): kept}
    report = await verify(k.pool)
    assert report.ok, report.problems


async def test_a_converted_rows_fee_mismatch_is_in_the_settlement_currency(world, tmp_path):
    k, client, _ = world
    ref, attempt, amount = await one_payment(k, client, "feeccy", "jpy", 10_000)
    settled = convert(Money(amount, "jpy"), Decimal("0.0067"), "usd").minor
    fee = PRICING.fee_for(Money(settled, "usd")).minor
    path = tmp_path / "feeccy.csv"
    path.write_text(SIM_HEAD + f"charge,{ref},{attempt},jpy,{amount},{fee + 7},"
                    f"{settled - fee - 7},captured,{DEC_2},usd,{settled},0.0067\n")
    run = await recon.import_report(k, psp="simulator", path=path)
    assert [(d[0], d[1], d[4], d[5]) for d in await discrepancies(k, run)] == [
        ("fee_mismatch", "usd", str(fee), str(fee + 7))]
    report = await verify(k.pool)
    assert report.ok, report.problems


async def test_a_movement_settled_before_is_not_flagged_again_by_a_later_file(world, tmp_path):
    """A second file with a movement an earlier run already posted does not post it again,
    and its conversion (here 100.00 USD short) is no new amount_mismatch: that money is
    settled (before: every overlapping file added an open discrepancy about it)."""
    k, client, _ = world
    ref, attempt, amount = await one_payment(k, client, "again", "eur", 1_000_000)
    fee = PRICING.fee_for(Money(1_085_000, "usd")).minor
    first = tmp_path / "first.csv"
    first.write_text(SIM_HEAD + f"charge,{ref},{attempt},eur,{amount},{fee},"
                     f"{1_085_000 - fee},captured,{DEC_2},usd,1085000,1.0850\n")
    run = await recon.import_report(k, psp="simulator", path=first)
    assert run["rows_matched"] == 1 and run["discrepancies"] == 0
    before = await balances(k)
    later = tmp_path / "later.csv"
    fee = PRICING.fee_for(Money(1_075_000, "usd")).minor
    later.write_text(SIM_HEAD + f"charge,{ref},{attempt},eur,{amount},{fee},"
                     f"{1_075_000 - fee},captured,{DEC_2},usd,1075000,1.0850\n")
    run = await recon.import_report(k, psp="simulator", path=later)
    assert await discrepancies(k, run) == []
    assert delta(before, await balances(k)) == {}
    report = await verify(k.pool)
    assert report.ok, report.problems
