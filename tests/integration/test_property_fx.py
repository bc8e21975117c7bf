"""Property: money across currencies, through the real API, services, PostgreSQL and the PSP
simulator (domain/fx.py). Hypothesis generates histories for two merchants — one settling
in usd, one in jpy — of card payments in usd, eur, jpy and kwd (so zero- and three-decimal
currencies convert both ways), partial and full refunds, chargebacks (left open, won or
lost) and rate moves between them. After every example: each currency balances on its own
and `verify` passes (trading legs against their rates included); each merchant's books are
entirely in its settlement currency and hold exactly what its payments' fixed rates say
(settled gross − fee − refunds at the original rate − each open or lost chargeback's share
of the converted capture and its converted fee; refunds plus chargeback never more than
the capture credited); the PSP receivable of each presentment currency is what was
captured minus refunded and charged back in it; every FX difference went to fx gain/loss;
and the simulator's own books (captured, refunded, disputed) agree with kassa's. The
chargebacks come from the simulator's issuer (``/_sim/disputes``) as signed webhooks (the
world of tests/integration/psp/conftest.py).
(More disputes across currencies: tests/integration/psp/test_dispute_fx.py.)"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kassa.domain.fx import Conversion, Rate, convert, dispute_share
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import fx, merchants
from tests.integration.psp.conftest import (
    World,
    world,  # noqa: F401 (fixture)
)
from tests.integration.psp.conftest import hook_api as hook_api  # noqa: F401 (fixture)
from tests.integration.psp.conftest import hook_kassa as hook_kassa  # noqa: F401 (fixture)
from tests.integration.psp.conftest import hook_sim_url as hook_sim_url  # noqa: F401 (fixture)
from tests.support.properties import (
    DISPUTE_OUTCOMES,
    MAX_EXAMPLES,
    Dispute,
    Pay,
    Refund,
    async_property,
    examples_guard,
)

PRESENTMENT = ("usd", "eur", "jpy", "kwd")
SETTLEMENT = ("usd", "jpy")
# central rates per usd; each example moves them by up to ±20 %
PER_USD = {"usd": Decimal(1), "eur": Decimal("0.92"), "jpy": Decimal("151.3"),
           "kwd": Decimal("0.3075")}
EXAMPLES_RUN: list[int] = []


@dataclass(frozen=True)
class Move:
    bump_pct: int  # every rate moves by this many percent


Op = Pay | Refund | Dispute | Move

history = st.lists(st.one_of(
    st.builds(Pay, merchant=st.integers(0, 1), currency=st.sampled_from(PRESENTMENT),
              amount=st.integers(100, 500_000)),
    st.builds(Pay, merchant=st.integers(0, 1), currency=st.sampled_from(PRESENTMENT),
              amount=st.integers(100, 500_000)),
    st.builds(Refund, payment=st.integers(0, 7), percent=st.integers(1, 100)),
    # the first payments are refunded and charged back more often: a chargeback after
    # partial refunds is where converted rounding can overshoot (domain/fx.dispute_share)
    st.builds(Dispute, payment=st.integers(0, 1), outcome=st.sampled_from(DISPUTE_OUTCOMES),
              refunded_first=st.integers(1, 99)),
    st.builds(Dispute, payment=st.integers(0, 7), outcome=st.sampled_from(DISPUTE_OUTCOMES)),
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
async def test_money_across_currencies_is_conserved(world: World,  # noqa: F811
                                                    ran, ops: list[Op]):
    ran.append(1)
    kassa, client = world.kassa, world.api
    shops = [await merchants.create_merchant(kassa, name=f"FX {ccy}") for ccy in SETTLEMENT]
    auths = [{"Authorization": f"Bearer {s['secret_key']}"} for s in shops]
    for auth, ccy in zip(auths, SETTLEMENT, strict=True):
        r = await client.post("/v1/account", headers=auth, data={"default_currency": ccy})
        assert r.status_code == 200, r.text
    tag = kassa.ids("fx_rate")  # this example's rates are the newest
    await _rates(kassa, Decimal(1), tag)
    factor = Decimal(1)
    payments: list[tuple[int, str]] = []
    disputed: set[str] = set()
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
            if op.payment >= len(payments) or payments[op.payment][1] in disputed:
                continue  # (a charged-back card takes no refund)
            shop, pi = payments[op.payment]
            amount = await _left(client, kassa, auths[shop], pi, op.percent)
            if amount <= 0:
                continue
            r = await client.post("/v1/refunds", headers=auths[shop],
                                  data={"payment_intent": pi, "amount": str(amount)})
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        elif isinstance(op, Dispute):
            if op.payment >= len(payments) or payments[op.payment][1] in disputed:
                continue
            shop, pi = payments[op.payment]
            if await _left(client, kassa, auths[shop], pi, 100) <= 0:
                continue  # fully refunded: nothing to charge back
            first = await _left(client, kassa, auths[shop], pi, op.refunded_first)
            if op.refunded_first and first > 0:
                r = await client.post("/v1/refunds", headers=auths[shop],
                                      data={"payment_intent": pi, "amount": str(first)})
                assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            disputed.add(pi)
            refunded = await kassa.pool.fetchval(
                "SELECT amount_refunded > 0 FROM payment_intents WHERE id = $1", pi)
            await _charge_back(world, auths[shop], pi, op.outcome)
            event(f"dispute {op.outcome}" + (" after a refund" if refunded else ""))
        else:
            factor = factor * (100 + op.bump_pct) / 100
            await _rates(kassa, factor, f"{tag}-{n}")
    await _check(kassa, shops, payments)
    await _psp_agrees(world, payments)


async def _left(client, kassa, auth, pi: str, percent: int) -> int:
    """``percent`` of what payment ``pi`` still holds (three-decimal: a multiple of 10)."""
    got = (await client.get(f"/v1/payment_intents/{pi}", headers=auth)).json()
    left = got["amount_received"] - (await kassa.pool.fetchval(
        "SELECT amount_refunded FROM payment_intents WHERE id = $1", pi))
    amount = left if percent == 100 else left * percent // 100
    if got["currency"] == "kwd":
        amount -= amount % 10
    return int(amount)


async def _charge_back(w: World, auth, pi: str, outcome: str) -> None:
    """The issuer charges back the whole charge (kassa withdraws what is left of it), then
    maybe decides it; each step reaches kassa as the simulator's signed webhook."""
    got = (await w.api.get(f"/v1/payment_intents/{pi}", headers=auth)).json()
    auth_id = await w.authorization(got)
    r = await w.sim.post(f"/_sim/disputes/{auth_id}/open", json={})
    assert r.status_code == 200, r.text
    if outcome != "open":
        r = await w.sim.post(f"/_sim/disputes/{auth_id}/close",
                                 json={"outcome": outcome})
        assert r.status_code == 200, r.text
    await w.flush()
    await w.apply()
    (d,) = (await w.api.get("/v1/disputes", headers=auth,
                                params={"payment_intent": pi})).json()["data"]
    assert d["status"] == ("needs_response" if outcome == "open" else outcome), d


async def _psp_agrees(w: World, payments: list[tuple[int, str]]) -> None:
    """The simulator's own books (captured, refunded, charged back) against kassa's."""
    sim = {a["idempotency_key"]: a for a in (await w.sim.get("/_sim/authorizations")).json()}
    disputes = {d["authorization"]: d for d in (await w.sim.get("/_sim/disputes")).json()}
    for _, pi in payments:
        p = await w.kassa.pool.fetchrow(
            "SELECT latest_charge, amount_received, amount_refunded FROM payment_intents"
            " WHERE id = $1", pi)
        a = sim[p["latest_charge"]]
        assert (a["amount_captured"], a["amount_refunded"]) == (
            p["amount_received"], p["amount_refunded"])
        d = await w.kassa.pool.fetchrow(
            "SELECT status FROM disputes WHERE payment_intent_id = $1", pi)
        assert (d is None) == (a["id"] not in disputes), pi


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
        "  AND r.status = 'succeeded') AS each_refund,"
        # an open or lost chargeback's withdrawal and fee (a won one gave them back)
        " (SELECT d.amount_withdrawn FROM disputes d WHERE d.payment_intent_id = p.id"
        "  AND d.status IN ('needs_response', 'under_review', 'lost')) AS charged_back,"
        " (SELECT d.fee FROM disputes d WHERE d.payment_intent_id = p.id"
        "  AND d.status IN ('needs_response', 'under_review', 'lost')) AS dispute_fee"
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
        # partial refunds take the converted running total (services/refunds.py)
        refunded = settle(Money(sum(r["each_refund"]), r["currency"])).minor
        charged_back = 0
        if r["charged_back"] is not None:
            withdrawn = Money(r["charged_back"], r["currency"])
            dispute_fee = settle(Money(r["dispute_fee"], r["currency"])).minor
            share = withdrawn.minor if r["exchange_rate"] is None else dispute_share(
                Conversion(r["currency"], settlement, r["exchange_rate"], ""),
                received=received, withdrawn=withdrawn).minor
            charged_back = share + dispute_fee
            # refunds and the chargeback never take more than the capture credited
            assert refunded + share <= gross.minor
        expected[r["merchant_id"]] += gross.minor - fee.minor - refunded - charged_back
        receivable[r["currency"]] += (r["amount_received"] - r["refunds"]
                                      - (r["charged_back"] or 0))
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
        " LEFT JOIN disputes d ON d.id = t.source_id"
        " WHERE e.account LIKE 'psp:%' AND e.layer = 'posted'"
        " AND coalesce(r.payment_intent_id, d.payment_intent_id, t.source_id)"
        "  = ANY($1::text[])"
        " GROUP BY e.currency", ids)
    assert {o["currency"]: o["total"] for o in owed if o["total"]} == {
        c: v for c, v in receivable.items() if v}
