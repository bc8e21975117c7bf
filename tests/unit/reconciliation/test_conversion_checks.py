"""The parsers' checks of a PSP's conversion (fxfix): a settled gross off the gross at the
PSP's own rate by more than its rounding (one minor unit, plus one per fee part Adyen lists)
is read, not refused, and carries ``expected_settled`` (the import records it as an
amount_mismatch on the settled side and posts nothing); at or within the rounding it is a
plain converted row. Stripe's implied rate obeys parse_rate's bounds and its ``net`` column
must be gross less fee; Adyen without a fee breakdown books what it kept as its fee; the
simulator's conversion cells must agree with each other. The simulator's currency_mismatch
injection finds another currency for a zero-decimal row settled in a zero-decimal one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kassa.domain.fx import convert
from kassa.domain.money import Money
from kassa.domain.reconciliation import SettlementRow
from kassa.psp.simulator.settlement_report import ReportRow, with_discrepancies
from kassa.reconciliation.reports import PARSERS, ReportError
from tests.unit.reconciliation.test_reports import ADYEN_HEADER, adyen_lines

SIM_HEADER = ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created,"
              "settlement_currency,settlement_gross,exchange_rate")
EXPECTED = 1_085_000  # 10,000.00 EUR at 1.0850 in USD cents


def sim(settled: int, rate: str = "1.0850", gross: int = 1_000_000) -> list[str]:
    return [SIM_HEADER, f"charge,s,a,eur,{gross},0,{settled},captured,1,usd,{settled},{rate}"]


@pytest.mark.parametrize("method", ["parse", "staged"])
@pytest.mark.parametrize(("settled", "flagged"), [
    (EXPECTED, False), (EXPECTED + 1, False), (EXPECTED - 1, False),  # its rounding
    (EXPECTED + 2, True), (EXPECTED - 2, True),  # two minor units off
    (EXPECTED - EXPECTED // 200, True),  # 0.5 % short: what the 1 % tolerance let through
    (1_075_000, True),  # the reviewer's 100.00 USD short, booked as FX loss before
])
def test_simulator_settled_gross_beyond_one_minor_unit_is_an_amount_mismatch(
        settled, flagged, method):
    rows = list(getattr(PARSERS["simulator"], method)(sim(settled)))
    expected = rows[0].expected_settled if method == "parse" else rows[0][12]
    if method == "parse":
        assert expected == (Money(EXPECTED, "usd") if flagged else None)
        assert rows[0].settled == Money(settled, "usd")
    else:
        assert rows[0][9:12] == ("usd", settled, Decimal("1.0850"))
        assert expected == (EXPECTED if flagged else None)


def test_a_wrong_rate_is_an_amount_mismatch_of_the_gross_at_that_rate():
    (row,) = PARSERS["simulator"].parse(sim(1_200_000, "1.0842"))  # 1.2000 would be 12,000
    assert row.expected_settled == Money(1_084_200, "usd")


ADYEN_ROW = {"Psp Reference": "881", "Merchant Reference": "att", "Type": "Settled",
             "Creation Date": "2026-12-01 09:00:00", "Gross Currency": "EUR",
             "Gross Credit (GC)": "100.00", "Exchange Rate": "1.0842", "Net Currency": "USD",
             "Batch Number": "1"}


def adyen(net: str, **fees: str) -> list[SettlementRow]:
    row = {**ADYEN_ROW, "Net Credit (NC)": net, **fees}
    payout = {"Type": "MerchantPayout", "Net Currency": "USD", "Net Debit (NC)": net,
              "Batch Number": "1"}
    return list(PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, [row, payout])))


@pytest.mark.parametrize(("net", "flagged"), [
    ("106.92", False),  # 106.92 + 1.50 = 108.42: exact
    ("106.95", False),  # 3 cents over: one unit plus one per listed part (two)
    ("106.89", False),  # 3 cents short
    ("106.96", True),  # 4 cents over
    ("106.38", True),  # 0.5 % short
])
def test_adyen_tolerates_one_minor_unit_per_fee_part_and_no_more(net, flagged):
    (row,) = adyen(net, **{"Commission (NC)": "0.50", "Markup (NC)": "1.00"})
    assert row.fee == Money(150, "usd")
    assert row.expected_settled == (Money(10842, "usd") if flagged else None)


def test_adyen_without_a_fee_breakdown_books_what_it_kept_as_its_fee():
    """Blank fee columns: the settled gross is the gross at Adyen's rate and the fee what
    Adyen kept of it (before: fee 0, the settled gross the net, the rest an FX loss)."""
    (row,) = adyen("99.42")
    assert row.settled == Money(10842, "usd")
    assert row.fee == Money(900, "usd") and row.net == Money(9942, "usd")
    assert row.expected_settled is None
    # a breakdown that says zero is a breakdown: what Adyen kept is then a mismatch
    (zero,) = adyen("99.42", **{"Commission (NC)": "0.00"})
    assert zero.fee == Money(0, "usd") and zero.expected_settled == Money(10842, "usd")


def test_adyen_no_breakdown_rounds_the_settled_gross_half_even():
    row = {**ADYEN_ROW, "Gross Credit (GC)": "0.50", "Exchange Rate": "1.01",
           "Net Credit (NC)": "0.40"}  # 0.505 USD: half-even to 0.50
    payout = {"Type": "MerchantPayout", "Net Currency": "USD", "Net Debit (NC)": "0.40",
              "Batch Number": "1"}
    (r,) = PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, [row, payout]))
    assert r.settled == convert(Money(50, "eur"), Decimal("1.01"), "usd") == Money(50, "usd")
    assert r.fee == Money(10, "usd")


STRIPE_HEADER = ("balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
                 "source_id,payment_intent_id,customer_facing_amount,customer_facing_currency")


@pytest.mark.parametrize(("line", "message"), [
    # 1 JPY presented, 10,000,000,000,000 KWD settled: rate 1e13 > parse_rate's 1e12
    ("txn_y,2026-12-02 10:00:00,kwd,10000000000000.000,0,10000000000000.000,charge,ch_y,pi_y,"
     "1,jpy", "line 2: the rate .* implies.*outside"),
    ("txn_x,2026-12-02 10:00:00,usd,108.50,0.25,99999.75,charge,ch_x,pi_x,100.00,eur",
     "line 2: net 99999.75 is not gross 108.50 less fee 0.25"),
    ("txn_z,2026-12-02 10:00:00,usd,108.50,0.25,108.25,charge,ch_z,pi_z,-100.00,eur",
     "line 2: customer_facing_amount has another sign than gross"),
])
def test_stripe_conversion_cells_that_contradict_are_refused(line, message):
    with pytest.raises(ReportError, match=message):
        list(PARSERS["stripe"].parse([STRIPE_HEADER, line]))


def test_stripe_net_equal_to_gross_less_fee_is_read():
    (row,) = PARSERS["stripe"].parse([
        STRIPE_HEADER, "txn_x,2026-12-02 10:00:00,usd,108.50,0.25,108.25,charge,ch_x,pi_x,"
        "100.00,eur"])
    assert row.settled == Money(10850, "usd") and row.exchange_rate == Decimal("1.085")


@pytest.mark.parametrize("method", ["parse", "staged"])
@pytest.mark.parametrize(("line", "message"), [
    ("charge,s,a,eur,10000,0,10000,captured,1,eur,12000,", "line 2: settlement_gross 12000"
     " in the gross's own currency is not gross 10000"),
    ("charge,s,a,eur,10000,0,10000,captured,1,eur,10000,1.2", "line 2: exchange_rate 1.2"),
    ("charge,s,a,eur,10000,0,10000,captured,1,,10842,1.0842",
     "line 2: settlement_gross or exchange_rate without a settlement_currency"),
    ("charge,s,a,eur,10000,0,10000,captured,1,,,1.0842",
     "line 2: settlement_gross or exchange_rate without a settlement_currency"),
    ("refund,s,a,eur,-10000,0,-10842,refunded,1,usd,10842,1.0842", "line 2: .*sign"),
])
def test_simulator_conversion_cells_that_contradict_are_refused(line, message, method):
    with pytest.raises(ReportError, match=message):
        list(getattr(PARSERS["simulator"], method)([SIM_HEADER, line]))


@pytest.mark.parametrize("method", ["parse", "staged"])
def test_simulator_settled_in_its_own_currency_agreeing_is_a_plain_row(method):
    rows = list(getattr(PARSERS["simulator"], method)(
        [SIM_HEADER, "charge,s,a,eur,10000,0,10000,captured,1,eur,10000,1"]))
    plain = rows[0].settled if method == "parse" else len(rows[0]) == 9
    assert plain in (None, True)


def test_currency_mismatch_injection_on_a_jpy_row_settled_in_krw():
    rows = [ReportRow("charge", f"sim_{i}", f"att_{i}", "jpy", 1000, 0, "captured", 1,
                      settlement_currency="krw", settlement_gross=9000,
                      exchange_rate=Decimal("9")) for i in range(3)]
    out, manifest = with_discrepancies(rows, {"currency_mismatch": 1}, seed=1)
    (changed,) = [r for r in out if r.currency != "jpy"]
    assert changed.currency not in ("jpy", "krw")
    assert manifest == [{"kind": "currency_mismatch", "psp_reference": changed.psp_reference}]
