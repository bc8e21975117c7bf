"""domain/fx.py: exact conversion (half-even to the settlement currency's minor unit, every
zero- and three-decimal currency of the table), reading rate files and provider answers,
the fx:<ccy> trading entries and their check against the rate; and the cross-currency
postings of domain/ledger.py and ledger/journal.py built with them."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain import fx, ledger
from kassa.domain.currencies import CURRENCIES
from kassa.domain.errors import InvalidRequest
from kassa.domain.fx import Conversion, convert, trading_mismatch
from kassa.domain.money import Money
from kassa.domain.payments import Refund, RefundStatus
from kassa.ledger import journal

ZERO = sorted(c for c, row in CURRENCIES.items() if row.exponent == 0)
THREE = sorted(c for c, row in CURRENCIES.items() if row.exponent == 3)


def D(s: str) -> Decimal:
    return Decimal(s)


def test_the_table_has_the_iso_zero_and_three_decimal_currencies():
    assert {"jpy", "krw", "vnd", "clp"} <= set(ZERO)
    assert set(THREE) == {"bhd", "jod", "kwd", "omr", "tnd"}


@pytest.mark.parametrize(("minor", "rate", "expected"), [
    (10_000, "1.0842", 10_842),     # 100.00 eur -> 108.42 usd
    (1, "1.5", 2),                  # 0.015 -> 0.02: half to even (2)
    (1, "2.5", 2),                  # 0.025 -> 0.02: half to even (2), not up
    (3, "0.5", 2),                  # 0.015 -> 0.02
    (5, "0.5", 2),                  # 0.025 -> 0.02
    (7, "0.5", 4),                  # 0.035 -> 0.04
    (-5, "0.5", -2),                # negative: symmetric
    (12_345, "1", 12_345),
])
def test_half_even_to_two_decimals(minor, rate, expected):
    assert convert(Money(minor, "eur"), D(rate), "usd") == Money(expected, "usd")


@pytest.mark.parametrize("ccy", ZERO)
def test_into_every_zero_decimal_currency(ccy):
    # 1.25 usd at 1 unit per usd = 1.25 units -> 1; 1.50 -> 2 (even); 2.50 -> 2 (even)
    assert convert(Money(125, "usd"), D("1"), ccy) == Money(1, ccy)
    assert convert(Money(150, "usd"), D("1"), ccy) == Money(2, ccy)
    assert convert(Money(250, "usd"), D("1"), ccy) == Money(2, ccy)
    assert convert(Money(10_000, "usd"), D("151.37"), ccy) == Money(15_137, ccy)
    # and out of it: 1,000 units at 0.0066 usd each = 6.60 usd
    assert convert(Money(1000, ccy), D("0.0066"), "usd") == Money(660, "usd")


@pytest.mark.parametrize("ccy", THREE)
def test_into_and_out_of_every_three_decimal_currency(ccy):
    # 10.00 usd at 0.30745 = 3.0745 -> 3.074 (half to even); at 0.30755 -> 3.076
    assert convert(Money(1000, "usd"), D("0.30745"), ccy) == Money(3074, ccy)
    assert convert(Money(1000, "usd"), D("0.30755"), ccy) == Money(3076, ccy)
    # 1.000 unit at 3.2525 usd = 3.2525 -> 3.25 (half to even); 3.2535 -> 3.25
    assert convert(Money(1000, ccy), D("3.2525"), "usd") == Money(325, "usd")
    assert convert(Money(1000, ccy), D("3.2535"), "usd") == Money(325, "usd")
    assert convert(Money(1000, ccy), D("3.2536"), "usd") == Money(325, "usd")
    assert convert(Money(1000, ccy), D("3.2551"), "usd") == Money(326, "usd")


def test_zero_decimal_to_three_decimal_and_back():
    # 1,000 jpy at 0.002053 kwd = 2.053 kwd; 2.053 kwd at 487.1 jpy = 1000.0163 -> 1000
    assert convert(Money(1000, "jpy"), D("0.002053"), "kwd") == Money(2053, "kwd")
    assert convert(Money(2053, "kwd"), D("487.1"), "jpy") == Money(1000, "jpy")
    # 1 jpy at 0.0025 kwd = 0.0025 -> 0.002 (half to even), 3 jpy = 0.0075 -> 0.008
    assert convert(Money(1, "jpy"), D("0.0025"), "kwd") == Money(2, "kwd")
    assert convert(Money(3, "jpy"), D("0.0025"), "kwd") == Money(8, "kwd")


@given(st.integers(-99_999_999, 99_999_999),
       st.decimals(min_value=D("0.000001"), max_value=D("100000"), places=6))
def test_conversion_is_within_half_a_minor_unit_of_the_exact_value(minor, rate):
    got = convert(Money(minor, "eur"), rate, "jpy")
    exact = Decimal(minor) / 100 * rate
    assert abs(Decimal(got.minor) - exact) <= D("0.5")


@pytest.mark.parametrize("bad", ["0", "-1.2", "abc", "NaN", "Infinity", "", "1e400000", "1e-20"])
def test_bad_rates_are_refused(bad):
    with pytest.raises(InvalidRequest):
        fx.parse_rate(bad)


def test_a_float_rate_is_refused_and_a_decimal_string_kept_exactly():
    with pytest.raises(InvalidRequest):
        fx.parse_rate(1.1)
    assert fx.parse_rate(" 1.08420 ") == D("1.08420")
    with pytest.raises(InvalidRequest):
        fx.parse_rate("1." + "1" * 30)


def test_csv_rates_with_iso_or_unix_times_and_a_source_column_or_default():
    text = ("quote,base,rate,as_of,source\n"
            "USD,EUR,1.0842,2026-12-03T12:00:00Z,ecb\n"
            "jpy,usd,151.37,1796400000,\n")
    a, b = fx.read_csv(text, default_source="file.csv")
    assert (a.base, a.quote, a.rate, a.source, a.as_of) == (
        "eur", "usd", D("1.0842"), "ecb", 1796299200)
    assert (b.base, b.quote, b.source, b.as_of) == ("usd", "jpy", "file.csv", 1796400000)


@pytest.mark.parametrize(("text", "fragment"), [
    ("base,quote,rate\neur,usd,1.1\n", "as_of"),
    ("base,quote,rate,as_of\neur,usd,1.1,1\neur,xxx,1.1,1\n", "line 3"),
    ("base,quote,rate,as_of\neur,eur,1.1,1\n", "itself"),
    ("base,quote,rate,as_of\neur,usd,1.1,yesterday\n", "time"),
    ("base,quote,rate,as_of\neur,usd,-1,1\n", "positive"),
])
def test_bad_csv_is_refused_with_the_line(text, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        list(fx.read_csv(text, default_source="f"))


def test_provider_json_reads_numbers_without_floats():
    body = '{"base": "EUR", "as_of": 1796400000, "source": "ecb", ' \
           '"rates": {"usd": 1.08420000000000000001, "jpy": "163.11"}}'
    rates = fx.read_provider(body, content_type="application/json", default_source="u")
    assert {(r.quote, r.rate) for r in rates} == {
        ("usd", D("1.08420000000000000001")), ("jpy", D("163.11"))}
    assert {r.source for r in rates} == {"ecb"}
    with pytest.raises(InvalidRequest):
        fx.read_provider('{"base": "eur"}', content_type="application/json",
                         default_source="u")


def test_usable_means_not_in_the_future_and_not_older_than_the_max_age():
    rate = fx.Rate("eur", "usd", D("1.1"), "s", as_of=1000)
    assert rate.usable(now=1000, max_age=10) and rate.usable(now=1010, max_age=10)
    assert not rate.usable(now=1011, max_age=10) and not rate.usable(now=999, max_age=10)


def _sums(posting: ledger.Posting) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for e in posting.entries:
        out[(e.amount.currency, e.layer.value)] += e.amount.minor
    return dict(out)


def _legs(posting: ledger.Posting, layer: str) -> dict[str, int]:
    return {e.account: e.amount.minor for e in posting.entries
            if e.account.startswith("fx:") and e.layer.value == layer}


EUR_USD = Conversion("eur", "usd", D("1.0842"), "fxr_1")


def test_a_converted_capture_keeps_each_currency_balanced_through_trading_accounts():
    gross = Money(10_000, "eur")
    settled = EUR_USD.settle(gross)
    fee = Money(344, "usd")
    p = ledger.capture(merchant_id="m", psp="sim", gross=gross, fee=fee, settled=settled,
                       held=gross, held_settled=settled)
    entries = {(e.account, e.layer.value): e.amount for e in p.entries}
    assert entries[("psp:sim:receivable", "posted")] == Money(10_000, "eur")
    assert entries[("fx:eur", "posted")] == Money(-10_000, "eur")
    assert entries[("fx:usd", "posted")] == Money(10_842, "usd")
    assert entries[("merchant:m:pending", "posted")] == Money(-(10_842 - 344), "usd")
    assert entries[("revenue:fees", "posted")] == Money(-344, "usd")
    assert entries[("fx:eur", "pending")] == Money(10_000, "eur")
    assert entries[("fx:usd", "pending")] == Money(-10_842, "usd")
    assert set(_sums(p).values()) == {0}
    for layer in ("posted", "pending"):
        assert trading_mismatch(_legs(p, layer), EUR_USD.rate) is None
    assert trading_mismatch(_legs(p, "posted"), D("1.0843")) is not None


def test_one_currency_postings_are_unchanged():
    p = ledger.capture(merchant_id="m", psp="sim", gross=Money(1000, "usd"),
                       fee=Money(59, "usd"))
    assert not any(e.account.startswith("fx:") for e in p.entries)
    assert len(p.entries) == 3


def _refund(amount: int) -> Refund:
    return Refund(id="re_1", merchant_id="m", payment_intent_id="pi_1",
                  amount=Money(amount, "eur"), status=RefundStatus.SUCCEEDED, created=1)


def test_a_full_refund_takes_back_exactly_what_the_capture_credited_gross():
    op = journal.refund(_refund(10_000), psp="sim", bt_id="txn_1", now=1,
                        conversion=EUR_USD, current=None)
    merchant = [e for e in op.posting.entries if e.account == "merchant:m:available"]
    assert merchant == [ledger.Entry("merchant:m:available", Money(10_842, "usd"))]
    assert not any(e.account == fx.FX_GAIN_LOSS for e in op.posting.entries)
    bt = op.balance_transaction
    assert bt is not None and (bt.amount, bt.currency, bt.exchange_rate) == (
        -10_842, "usd", D("1.0842"))
    assert op.exchange_rate == D("1.0842")


def test_a_refund_at_another_current_rate_posts_the_difference_as_fx_gain_or_loss():
    # the euro got dearer: buying 100 eur back costs 110.00 usd, the merchant gives 108.42
    op = journal.refund(_refund(10_000), psp="sim", bt_id="txn_1", now=1,
                        conversion=EUR_USD, current=D("1.10"))
    by = {e.account: e.amount for e in op.posting.entries}
    assert by["merchant:m:available"] == Money(10_842, "usd")
    assert by[fx.FX_GAIN_LOSS] == Money(158, "usd")  # debit: the operator's loss
    assert by["fx:usd"] == Money(-11_000, "usd") and by["fx:eur"] == Money(10_000, "eur")
    assert op.exchange_rate == D("1.10")
    assert trading_mismatch(_legs(op.posting, "posted"), D("1.10")) is None
    # cheaper euro: a gain (credit)
    op = journal.refund(_refund(10_000), psp="sim", bt_id="txn_1", now=1,
                        conversion=EUR_USD, current=D("1.05"))
    assert {e.account: e.amount for e in op.posting.entries}[fx.FX_GAIN_LOSS] == \
        Money(-342, "usd")


def test_a_refund_failure_gives_back_what_the_refund_took():
    took = journal.refund(_refund(2_500), psp="sim", bt_id="a", now=1, conversion=EUR_USD,
                          current=D("1.2"))
    back = journal.refund_failure(_refund(2_500), psp="sim", bt_id="b", now=2,
                                  conversion=EUR_USD, current=D("1.0"))
    assert took.balance_transaction is not None and back.balance_transaction is not None
    assert took.balance_transaction.amount == -back.balance_transaction.amount == -2_710
    for op in (took, back):
        assert set(_sums(op.posting).values()) == {0}


def test_converted_dispute_balances_and_trades_at_its_rate():
    p = ledger.dispute(merchant_id="m", psp="sim", amount=Money(5000, "eur"),
                       fee=Money(1626, "usd"), settled=Money(5421, "usd"),
                       gain_loss=Money(79, "usd"))
    assert set(_sums(p).values()) == {0}
    assert trading_mismatch(_legs(p, "posted"), D("1.10")) is None


def test_the_trading_check_wants_two_currencies():
    assert trading_mismatch({"fx:eur": -100}, D("1")) is not None
    assert trading_mismatch({"fx:eur": -100, "fx:usd": 100, "fx:jpy": 1}, D("1")) \
        is not None


def test_the_wire_of_a_same_currency_posting_carries_no_rate():
    op = journal.capture(merchant_id="m", psp="sim", gross=Money(1000, "usd"),
                         fee=Money(59, "usd"), held=None, payment_id="pi", charge_id="ch",
                         bt_id="txn", now=1, available_on=None, description=None)
    assert "exchange_rate" not in op.to_json()["row"]
    assert op.balance_transaction is not None
    assert "exchange_rate" not in op.balance_transaction.to_json()["row"]
    conv = journal.capture(merchant_id="m", psp="sim", gross=Money(1000, "eur"),
                           fee=Money(62, "usd"), held=None, payment_id="pi",
                           charge_id="ch", bt_id="txn", now=1, available_on=None,
                           description=None, conversion=EUR_USD)
    assert conv.to_json()["row"]["exchange_rate"] == "1.0842"
    assert conv.balance_transaction is not None
    assert conv.balance_transaction.to_json()["row"]["amount"] == 1084
