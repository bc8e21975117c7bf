"""Property: money across currencies, through the real API, services, PostgreSQL and the PSP
simulator (domain/fx.py). Hypothesis generates histories for two merchants — one settling
in usd, one in jpy — of card payments in usd, eur, jpy and kwd (so zero- and three-decimal
currencies convert both ways), partial and full refunds, and rate moves between them.
After every example: each currency balances on its own and `verify` passes (trading legs
against their rates included); each merchant's books are entirely in its settlement
currency and hold exactly what its payments' fixed rates say (settled gross − fee −
refunds at the original rate); the PSP receivable of each presentment currency is what was
captured minus refunded in it; and every FX difference went to fx gain/loss.
(Disputes across currencies: tests/integration/psp/test_dispute_fx.py.)"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kassa.domain.fx import Rate, convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import fx, merchants
from tests.support.properties import MAX_EXAMPLES, Pay, Refund, async_property, examples_guard

PRESENTMENT = ("usd", "eur", "jpy", "kwd")
SETTLEMENT = ("usd", "jpy")
# central rates per usd; each example moves them by up to ±20 %
PER_USD = {"usd": Decimal(1), "eur": Decimal("0.92"), "jpy": Decimal("151.3"),
           "kwd": Decimal("0.3075")}
EXAMPLES_RUN: list[int] = []


@dataclass(frozen=True)
class Move:
    bump_pct: int  # every rate moves by this many percent


Op = Pay | Refund | Move

history = st.lists(st.one_of(
    st.builds(Pay, merchant=st.integers(0, 1), currency=st.sampled_from(PRESENTMENT),
              amount=st.integers(100, 500_000)),
    st.builds(Pay, merchant=st.integers(0, 1), currency=st.sampled_from(PRESENTMENT),
              amount=st.integers(100, 500_000)),
    st.builds(Refund, payment=st.integers(0, 7), percent=st.integers(1, 100)),
    st.builds(Move, bump_pct=st.integers(-20, 20))), min_size=3, max_size=14)


@pytest.fixture(scope="module")
def ran() -> Iterator[list[int]]:
    yield from examples_guard(EXAMPLES_RUN, min(MAX_EXAMPLES, 5))


def _amount(currency: str, amount: int) -> int:
    if currency == "kwd":
        return max(10, amount - amount % 10)  # three-decimal charges are multiples of 10
    return amount


async def _rates(kassa, factor: Decimal, tag: str) -> None:
    """Every pair's rate (both directions between presentment and settlement)."""
    now = kassa.clock()
    rates = []
    for base in PRESENTMENT:
        for quote in SETTLEMENT:
            if base != quote:
                value = (PER_USD[quote] / PER_USD[base] * factor).quantize(Decimal("1e-8"))
                rates.append(Rate(base, quote, value, f"prop-{tag}", now))
    await fx.store(kassa, rates)


@given(ops=history)
@async_property(MAX_EXAMPLES)
async def test_money_across_currencies_is_conserved(kassa, client, ran, ops: list[Op]):
    ran.append(1)
    shops = [await merchants.create_merchant(kassa, name=f"FX {ccy}") for ccy in SETTLEMENT]
    auths = [{"Authorization": f"Bearer {s['secret_key']}"} for s in shops]
    for auth, ccy in zip(auths, SETTLEMENT, strict=True):
        r = await client.post("/v1/account", headers=auth, data={"default_currency": ccy})
        assert r.status_code == 200, r.text
    tag = kassa.ids("fx_rate")  # this example's rates are the newest
    await _rates(kassa, Decimal(1), tag)
    factor = Decimal(1)
    payments: list[tuple[int, str]] = []
    for n, op in enumerate(ops):
        if isinstance(op, Pay):
            amount = _amount(op.currency, op.amount)
            r = await client.post("/v1/payment_intents", headers=auths[op.merchant], data={
                "amount": str(amount), "currency": op.currency,
                "payment_method": "pm_card_visa", "confirm": "true"})
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            payments.append((op.merchant, r.json()["id"]))
            event("converted" if op.currency != SETTLEMENT[op.merchant] else "same currency")
        elif isinstance(op, Refund):
            if op.payment >= len(payments):
                continue
            shop, pi = payments[op.payment]
            got = (await client.get(f"/v1/payment_intents/{pi}", headers=auths[shop])).json()
            left = got["amount_received"] - (await kassa.pool.fetchval(
                "SELECT amount_refunded FROM payment_intents WHERE id = $1", pi))
            amount = left if op.percent == 100 else left * op.percent // 100
            if got["currency"] == "kwd":
                amount -= amount % 10
            if amount <= 0:
                continue
            r = await client.post("/v1/refunds", headers=auths[shop],
                                  data={"payment_intent": pi, "amount": str(amount)})
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        else:
            factor = factor * (100 + op.bump_pct) / 100
            await _rates(kassa, factor, f"{tag}-{n}")
    await _check(kassa, shops, payments)


async def _check(kassa, shops: list[dict[str, str]], payments: list[tuple[int, str]]
                 ) -> None:
    report = await verify(kassa.pool)
    assert report.ok, report.problems
    ids = [pi for _, pi in payments]
    rows = await kassa.pool.fetch(
        "SELECT id, merchant_id, amount_received, currency, settlement_currency,"
        " exchange_rate, (SELECT coalesce(sum(amount), 0) FROM refunds r"
        "  WHERE r.payment_intent_id = p.id AND r.status = 'succeeded') AS refunds,"
        " ARRAY(SELECT amount FROM refunds r WHERE r.payment_intent_id = p.id"
        "  AND r.status = 'succeeded') AS each_refund"
        " FROM payment_intents p WHERE id = ANY($1::text[])", ids)
    expected: dict[str, int] = defaultdict(int)
    receivable: dict[str, int] = defaultdict(int)
    for r in rows:
        settlement = r["settlement_currency"] or r["currency"]
        received = Money(r["amount_received"], r["currency"])

        def settle(m: Money, r=r, settlement=settlement) -> Money:
            return m if r["exchange_rate"] is None else convert(
                m, r["exchange_rate"], settlement)
        gross = settle(received)
        fee = kassa.fees.fee_for(gross)
        refunded = sum(settle(Money(a, r["currency"])).minor for a in r["each_refund"])
        expected[r["merchant_id"]] += gross.minor - fee.minor - refunded
        receivable[r["currency"]] += r["amount_received"] - r["refunds"]
        if r["exchange_rate"] is not None and r["refunds"] == r["amount_received"] and \
                len(r["each_refund"]) == 1:
            assert refunded == gross.minor  # a full refund takes back the credited gross
    for shop, settlement in zip(shops, SETTLEMENT, strict=True):
        books = await kassa.pool.fetch(
            "SELECT currency, sum(amount)::bigint AS total FROM ledger_entries"
            " WHERE account LIKE $1 AND layer = 'posted' GROUP BY currency",
            f"merchant:{shop['merchant_id']}:%")
        totals = {b["currency"]: -b["total"] for b in books}
        assert set(totals) <= {settlement}, totals  # nothing in another currency
        assert totals.get(settlement, 0) == expected[shop["merchant_id"]]
    # what the PSP owes, per presentment currency, for these payments
    owed = await kassa.pool.fetch(
        "SELECT e.currency, sum(e.amount)::bigint AS total FROM ledger_entries e"
        " JOIN ledger_transactions t ON t.id = e.transaction_id"
        " LEFT JOIN refunds r ON r.id = t.source_id"
        " WHERE e.account LIKE 'psp:%' AND e.layer = 'posted'"
        " AND coalesce(r.payment_intent_id, t.source_id) = ANY($1::text[])"
        " GROUP BY e.currency", ids)
    assert {o["currency"]: o["total"] for o in owed if o["total"]} == {
        c: v for c, v in receivable.items() if v}
