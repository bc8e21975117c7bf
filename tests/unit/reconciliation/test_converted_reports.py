"""Settlement rows the PSP converted (charged in one currency, settled in another at its
own rate), from fixtures built from the documented columns (/work/shared/reference/
psp-payouts-recon.md §1.3: Stripe's ``customer_facing_amount``/``customer_facing_currency``
beside ``currency``/``gross``; §2.4: Adyen's ``Gross Currency``/``Exchange Rate``/``Net
Currency``): each is read with its presentment side as ``gross`` (what kassa matches) and its
settlement side as ``settled`` with the PSP's rate, fee and net in the settlement currency;
zero- and three-decimal currencies; rows that do not add up are refused with their line.
And the settlement posting such rows get: each currency balanced through the trading
accounts at the PSP's rate, provable by verify's rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kassa.domain import ledger
from kassa.domain.fx import convert, trading_mismatch
from kassa.domain.money import Money
from kassa.domain.reconciliation import Category
from kassa.reconciliation.reports import PARSERS, ReportError, staged_from_rows
from tests.unit.reconciliation.test_reports import ADYEN_HEADER, adyen_lines

ADYEN_CONVERTED = [
    # charged 100.00 EUR, settled 108.42 USD at 1.0842, Adyen kept 1.50 USD
    {"Psp Reference": "8815000000000011", "Merchant Reference": "att_c", "Type": "Settled",
     "Creation Date": "2026-12-01 09:00:00", "Gross Currency": "EUR",
     "Gross Credit (GC)": "100.00", "Exchange Rate": "1.0842", "Net Currency": "USD",
     "Net Credit (NC)": "106.92", "Commission (NC)": "0.50", "Markup (NC)": "1.00",
     "Batch Number": "381"},
    # refunded 20.00 EUR: 21.684 rounds to 21.68 USD
    {"Psp Reference": "8815000000000012", "Merchant Reference": "att_d", "Type": "Refunded",
     "Creation Date": "2026-12-01 10:00:00", "Gross Currency": "EUR",
     "Gross Debit (GC)": "20.00", "Exchange Rate": "1.0842", "Net Currency": "USD",
     "Net Debit (NC)": "21.68", "Batch Number": "381"},
    # zero decimals into three: 15000 JPY at 0.00205 = 30.750 KWD
    {"Psp Reference": "8815000000000013", "Merchant Reference": "att_e", "Type": "Settled",
     "Creation Date": "2026-12-01 11:00:00", "Gross Currency": "JPY",
     "Gross Credit (GC)": "15000", "Exchange Rate": "0.00205", "Net Currency": "KWD",
     "Net Credit (NC)": "30.650", "Commission (NC)": "0.100", "Batch Number": "382"},
    {"Type": "MerchantPayout", "Creation Date": "2026-12-02 00:00:00",
     "Net Currency": "USD", "Net Debit (NC)": "85.24", "Batch Number": "381"},
    {"Type": "MerchantPayout", "Creation Date": "2026-12-02 00:00:00",
     "Net Currency": "KWD", "Net Debit (NC)": "30.650", "Batch Number": "382"},
]


def test_adyen_converted_rows_keep_both_sides_and_the_rate():
    rows = list(PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, ADYEN_CONVERTED)))
    assert [(r.category, r.psp_reference, r.gross, r.settled, r.fee, r.exchange_rate)
            for r in rows] == [
        (Category.CHARGE, "8815000000000011", Money(10000, "eur"), Money(10842, "usd"),
         Money(150, "usd"), Decimal("1.0842")),
        (Category.REFUND, "8815000000000012", Money(-2000, "eur"), Money(-2168, "usd"),
         Money(0, "usd"), Decimal("1.0842")),
        (Category.CHARGE, "8815000000000013", Money(15000, "jpy"), Money(30750, "kwd"),
         Money(100, "kwd"), Decimal("0.00205")),
    ]
    assert [r.net for r in rows] == [Money(10692, "usd"), Money(-2168, "usd"),
                                     Money(30650, "kwd")]  # the batches' payouts add up
    staged = list(PARSERS["adyen"].staged(adyen_lines(ADYEN_HEADER, ADYEN_CONVERTED)))
    assert staged[0][4:7] == (10000, 150, "eur") and staged[0][9:12] == ("usd", 10842,
                                                                      Decimal("1.0842"))


@pytest.mark.parametrize(("change", "message"), [
    ({"Exchange Rate": ""}, "has no Exchange Rate"),
    ({"Exchange Rate": "abc"}, "Exchange Rate"),
    ({"Net Currency": "XXX"}, "unknown currency"),
])
def test_adyen_converted_rows_that_do_not_add_up_are_refused(change, message):
    rows = [dict(r) for r in ADYEN_CONVERTED]
    rows[0].update(change)
    with pytest.raises(ReportError, match=f"line 2: .*{message}"):
        list(PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, rows)))


def test_adyen_refuses_a_converted_fee_row():
    rows = [{"Type": "Fee", "Creation Date": "2026-12-01 23:00:00", "Gross Currency": "EUR",
             "Exchange Rate": "1.0842", "Net Currency": "USD", "Net Debit (NC)": "1.00",
             "Batch Number": "383"}]
    with pytest.raises(ReportError, match="converted fee row"):
        list(PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, rows)))


STRIPE_HEADER = ("balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
                 "source_id,charge_id,payment_intent_id,customer_facing_amount,"
                 "customer_facing_currency,payment_metadata[kassa_attempt]")


@pytest.mark.parametrize("refund_facing", ["20.00", "-20.00"])
def test_stripe_rows_with_another_customer_facing_currency(refund_facing):
    lines = [STRIPE_HEADER,
             "txn_1,2026-12-01 10:00:00,usd,108.42,3.45,104.97,charge,ch_1,ch_1,pi_1,100.00,"
             "eur,att_1",
             f"txn_2,2026-12-01 11:00:00,usd,-21.68,0.00,-21.68,refund,re_1,ch_1,pi_1,"
             f"{refund_facing},eur,",
             "txn_3,2026-12-01 12:00:00,usd,10.05,0.45,9.60,charge,ch_2,ch_2,pi_2,1500,jpy,",
             "txn_4,2026-12-01 13:00:00,kwd,3.075,0.000,3.075,charge,ch_3,ch_3,pi_3,1500,"
             "jpy,",
             # the same currency on both sides: not converted
             "txn_5,2026-12-01 14:00:00,usd,5.00,0.45,4.55,charge,ch_4,ch_4,pi_4,5.00,usd,"]
    rows = list(PARSERS["stripe"].parse(lines))
    assert [(r.psp_reference, r.gross, r.settled, r.fee, r.exchange_rate) for r in rows] == [
        ("pi_1", Money(10000, "eur"), Money(10842, "usd"), Money(345, "usd"),
         Decimal("1.0842")),
        ("re_1", Money(-2000, "eur"), Money(-2168, "usd"), Money(0, "usd"),
         Decimal("1.084")),  # the rate the rounded amounts imply
        ("pi_2", Money(1500, "jpy"), Money(1005, "usd"), Money(45, "usd"),
         Decimal("0.0067")),
        ("pi_3", Money(1500, "jpy"), Money(3075, "kwd"), Money(0, "kwd"),
         Decimal("0.00205")),
        ("pi_4", Money(500, "usd"), None, Money(45, "usd"), None),
    ]
    assert rows[0].net == Money(10497, "usd")


def test_the_stripe_report_run_asks_for_the_customer_facing_columns():
    from kassa.psp.stripe.reports import COLUMNS

    # not among the report's defaults: without them every row Stripe converted would read
    # as a charge in the payout currency (a currency_mismatch)
    assert {"customer_facing_amount", "customer_facing_currency"} <= set(COLUMNS)


def test_stripe_converted_row_without_its_customer_facing_amount_is_refused():
    lines = [STRIPE_HEADER,
             "txn_1,2026-12-01 10:00:00,usd,108.42,3.45,104.97,charge,ch_1,ch_1,pi_1,,eur,"]
    with pytest.raises(ReportError, match="line 2: .*customer_facing_amount"):
        list(PARSERS["stripe"].parse(lines))


SIM_HEADER = ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created,"
              "settlement_currency,settlement_gross,exchange_rate")


def test_simulator_conversion_columns_staged_as_parsed():
    lines = [SIM_HEADER,
             "charge,sim_1,att_1,eur,10000,173,10669,captured,5,usd,10842,1.0842",
             "refund,simop_1,att_2,jpy,-1500,0,-308,refunded,6,kwd,-3075,0.00205",
             "charge,sim_2,att_3,usd,1000,25,975,captured,7,,,"]
    parser = PARSERS["simulator"]
    rows = list(parser.parse(lines))
    assert [(r.gross, r.settled, r.fee) for r in rows] == [
        (Money(10000, "eur"), Money(10842, "usd"), Money(173, "usd")),
        (Money(-1500, "jpy"), Money(-3075, "kwd"), Money(0, "kwd")),
        (Money(1000, "usd"), None, Money(25, "usd"))]
    assert list(parser.staged(lines)) == list(staged_from_rows(rows))
    assert list(parser.staged(lines))[2] == (4, "charge", "sim_2", "att_3", 1000, 25, "usd",
                                             "captured", 7)


@pytest.mark.parametrize(("lines", "message"), [
    (["type,psp_reference,merchant_reference,currency,gross,fee,net,status,created,"
      "settlement_currency", "charge,s,a,eur,1,0,1,captured,1,usd"], "all or none"),
    ([SIM_HEADER, "charge,s,a,eur,10000,0,10000,captured,1,usd,-10842,1.0842"],
     "line 2: .*sign"),
    ([SIM_HEADER, "fee,,,eur,0,50,-50,,1,usd,0,1.0842"], "line 2: a fee row"),
])
@pytest.mark.parametrize("method", ["parse", "staged"])
def test_bad_simulator_conversions_say_where(lines, message, method):
    with pytest.raises(ReportError, match=message):
        list(getattr(PARSERS["simulator"], method)(lines))


def test_a_converted_settlement_balances_each_currency_through_the_trading_accounts():
    gross, settled, fee = Money(10000, "eur"), Money(10843, "usd"), Money(150, "usd")
    rate = Decimal("1.0842")
    posting = ledger.settlement(psp="adyen", gross=gross, fee=fee, settled=settled,
                                traded=convert(gross, rate, "usd"))
    by = {(e.account, e.amount.currency): e.amount.minor for e in posting.entries}
    assert by == {("psp:adyen:receivable", "eur"): -10000, ("fx:eur", "eur"): 10000,
                  ("fx:usd", "usd"): -10842, ("bank:cash", "usd"): 10693,
                  ("expense:psp_fees", "usd"): 150,
                  # the PSP paid 0.01 USD more than its rate gives: the operator's gain
                  ("revenue:fx_gain_loss", "usd"): -1}
    legs = {a: v for (a, _), v in by.items() if a.startswith("fx:")}
    assert trading_mismatch(legs, rate) is None
    plain = ledger.settlement(psp="adyen", gross=Money(500, "eur"), fee=Money(20, "eur"))
    assert {e.account: e.amount.minor for e in plain.entries} == {
        "bank:cash": 480, "expense:psp_fees": 20, "psp:adyen:receivable": -500}


def test_a_converted_settlement_worth_less_than_a_minor_unit_has_no_trade_to_prove():
    # a day's 1,000 JPY charge and 999 JPY refund at 0.004: 4.00 and -4.00 USD paid, and
    # the 1 JPY left is 0.004 USD, nothing at the rate
    gross, rate = Money(1, "jpy"), Decimal("0.004")
    traded = convert(gross, rate, "usd")
    assert traded == Money(0, "usd")
    posting = ledger.settlement(psp="simulator", gross=gross, fee=Money(16, "usd"),
                                settled=Money(0, "usd"), traded=traded)
    by = {(e.account, e.amount.currency): e.amount.minor for e in posting.entries}
    assert by == {("psp:simulator:receivable", "jpy"): -1, ("bank:cash", "usd"): -16,
                  ("expense:psp_fees", "usd"): 16, ("revenue:fx_gain_loss", "jpy"): 1}
    assert not any(a.startswith("fx:") for a, _ in by)  # verify has no legs to check
