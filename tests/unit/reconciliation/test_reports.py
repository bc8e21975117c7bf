"""Settlement report parsers, from fixtures built from each format's documented columns
(/work/shared/reference/psp-payouts-recon.md §1.3 and §2.4): Stripe's itemized reports in
major units, Adyen's settlement details by header name in any column order with its batch
control, the simulator's CSV; and bad files refused with the line that is wrong."""

from __future__ import annotations

import random

import pytest

from kassa.domain.money import Money
from kassa.domain.reconciliation import Category
from kassa.psp.simulator.settlement_report import PRICING, chargeback_fee
from kassa.reconciliation.contracts import CONTRACTS
from kassa.reconciliation.reports import PARSERS, ReportError

STRIPE = """automatic_payout_id,automatic_payout_effective_at_utc,available_on_utc,\
balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,\
description,charge_id,payment_intent_id,payment_metadata[kassa_attempt]
po_1,2026-12-03 00:00:00,2026-12-03 00:00:00,txn_1,2026-12-01 10:00:00,usd,10.00,0.59,9.41,\
charge,ch_1,,ch_1,pi_1,att_1
po_1,2026-12-03 00:00:00,2026-12-03 00:00:00,txn_2,2026-12-01 11:00:00,jpy,1500,0,1500,\
charge,ch_2,,ch_2,,att_2
po_1,2026-12-03 00:00:00,2026-12-03 00:00:00,txn_3,2026-12-01 12:00:00,usd,-2.50,0.00,-2.50,\
refund,re_1,,ch_1,pi_1,
po_1,2026-12-03 00:00:00,2026-12-03 00:00:00,txn_4,2026-12-01 13:00:00,kwd,-1.234,15.000,\
-16.234,dispute,du_1,,ch_9,pi_9,
po_1,2026-12-03 00:00:00,2026-12-03 00:00:00,txn_5,2026-12-01 14:00:00,usd,-0.50,0.00,-0.50,\
fee,,Radar fee,,,
po_1,2026-12-03 00:00:00,2026-12-03 00:00:00,txn_6,2026-12-01 15:00:00,usd,-100.00,0.00,\
-100.00,payout,po_0,,,,
"""

ADYEN_HEADER = ["Company Account", "Merchant Account", "Psp Reference", "Merchant Reference",
                "Payment Method", "Creation Date", "TimeZone", "Type",
                "Modification Reference", "Gross Currency", "Gross Debit (GC)",
                "Gross Credit (GC)", "Exchange Rate", "Net Currency", "Net Debit (NC)",
                "Net Credit (NC)", "Commission (NC)", "Markup (NC)", "Scheme Fees (NC)",
                "Interchange (NC)", "Payment Method Variant", "Batch Number"]
ADYEN_ROWS = [
    # the sample's card row: 31.45 gross, IC++ 0.16 + 0.05 + 0.09, net 31.15
    {"Psp Reference": "8815000000000001", "Merchant Reference": "att_a", "Type": "Settled",
     "Creation Date": "2026-12-01 09:00:00", "Gross Currency": "EUR",
     "Gross Credit (GC)": "31.45", "Net Currency": "EUR", "Net Credit (NC)": "31.15",
     "Markup (NC)": "0.16", "Scheme Fees (NC)": "0.05", "Interchange (NC)": "0.09",
     "Batch Number": "380"},
    {"Psp Reference": "8815000000000002", "Merchant Reference": "att_b", "Type": "Refunded",
     "Creation Date": "2026-12-01 10:00:00", "Gross Currency": "EUR",
     "Gross Debit (GC)": "5.00", "Net Currency": "EUR", "Net Debit (NC)": "5.00",
     "Batch Number": "380"},
    {"Type": "Fee", "Creation Date": "2026-12-01 23:00:00", "Gross Currency": "EUR",
     "Net Currency": "EUR", "Net Debit (NC)": "1.00", "Batch Number": "380"},
    {"Type": "MerchantPayout", "Creation Date": "2026-12-02 00:00:00",
     "Gross Currency": "EUR", "Net Currency": "EUR", "Net Debit (NC)": "25.15",
     "Batch Number": "380"},
]


def adyen_lines(order: list[str], rows: list[dict[str, str]]) -> list[str]:
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(order)
    for r in rows:
        w.writerow([r.get(c, "") for c in order])
    return out.getvalue().splitlines()


def test_stripe_itemized_in_major_units():
    rows = list(PARSERS["stripe"].parse(STRIPE.splitlines()))
    assert [(r.category, r.psp_reference, r.kassa_reference, r.gross, r.fee) for r in rows] == [
        (Category.CHARGE, "pi_1", "att_1", Money(1000, "usd"), Money(59, "usd")),
        (Category.CHARGE, "ch_2", "att_2", Money(1500, "jpy"), Money(0, "jpy")),
        (Category.REFUND, "re_1", None, Money(-250, "usd"), Money(0, "usd")),
        (Category.CHARGEBACK, "du_1", None, Money(-1234, "kwd"), Money(15000, "kwd")),
        (Category.FEE, "txn_5", None, Money(0, "usd"), Money(50, "usd")),
    ]  # the payout row is not a movement of a payment's money
    assert rows[0].net == Money(941, "usd") and rows[0].created == 1796119200


def test_stripe_refuses_more_decimals_than_the_currency_has():
    bad = STRIPE.replace("10.00,0.59,9.41", "10.001,0.59,9.41")
    with pytest.raises(ReportError, match="line 2"):
        list(PARSERS["stripe"].parse(bad.splitlines()))


@pytest.mark.parametrize("seed", range(5))
def test_adyen_by_header_name_in_any_order_with_the_batch_control(seed):
    order = ADYEN_HEADER[:]
    random.Random(seed).shuffle(order)
    rows = list(PARSERS["adyen"].parse(adyen_lines(order, ADYEN_ROWS)))
    assert [(r.category, r.psp_reference, r.gross.minor, r.fee.minor) for r in rows] == [
        (Category.CHARGE, "8815000000000001", 3145, 30),
        (Category.REFUND, "8815000000000002", -500, 0),
        (Category.FEE, None, 0, 100),
    ]
    assert sum(r.net.minor for r in rows) == 2515  # the MerchantPayout row


def test_adyen_batch_that_does_not_add_up_is_refused():
    rows = [dict(r) for r in ADYEN_ROWS]
    rows[-1]["Net Debit (NC)"] = "25.14"
    with pytest.raises(ReportError, match="batch 380 does not add up"):
        list(PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, rows)))


def test_adyen_net_must_be_gross_less_the_listed_fees():
    rows = [dict(r) for r in ADYEN_ROWS]
    rows[0]["Markup (NC)"] = "0.20"
    with pytest.raises(ReportError, match="line 2"):
        list(PARSERS["adyen"].parse(adyen_lines(ADYEN_HEADER, rows)))


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("type,psp_reference\n", "missing column"),
    ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
     "charge,sim_1,a,usd,12.5,0,12,captured,1\n", "line 2: gross is not an integer"),
    ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
     "charge,sim_1,a,xxx,1,0,1,captured,1\n", "unknown currency"),
    ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
     "refund,sim_1,a,usd,100,0,100,refunded,1\n", "negative gross"),
    ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
     "payout,sim_1,a,usd,100,0,100,paid,1\n", "unknown type"),
    ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
     "charge,sim_1\n", "2 cells"),
])
@pytest.mark.parametrize("method", ["parse", "staged"])
def test_bad_simulator_files_say_where(text, message, method):
    with pytest.raises(ReportError, match=message):
        list(getattr(PARSERS["simulator"], method)(text.splitlines()))


def test_the_simulators_fast_path_stages_what_parse_reads():
    from kassa.reconciliation.reports import staged_from_rows

    header = "created,status,net,fee,gross,currency,merchant_reference,psp_reference,type"
    lines = [header, "5,captured,975,25,1000,USD,att_1,sim_1,charge",
             "6,refunded,-300,0,-300,jpy,att_2,simop_1,refund",
             "7,charged_back,-3500,1500,-2000,kwd,att_3,dp_1,chargeback",
             "8,,-50,50,0,eur,,,fee"]
    parser = PARSERS["simulator"]
    assert list(parser.staged(lines)) == list(staged_from_rows(parser.parse(lines)))
    assert list(parser.staged(lines))[0] == (2, "charge", "sim_1", "att_1", 1000, 25, "usd",
                                             "captured", 5)


def test_kassas_contract_with_the_simulator_is_the_simulators_pricing():
    contract = CONTRACTS["simulator"]
    for amount, ccy in ((1000, "usd"), (123_456, "jpy"), (5_000, "kwd")):
        assert contract.expected_fee(Category.CHARGE, Money(amount, ccy)) == \
            PRICING.fee_for(Money(amount, ccy)).minor
        assert contract.expected_fee(Category.CHARGEBACK, Money(-amount, ccy)) == \
            chargeback_fee(ccy)
        assert contract.expected_fee(Category.REFUND, Money(-amount, ccy)) == 0
