"""Property: money in and money out together, through the real services, PostgreSQL, the PSP
simulator and the bank simulator on loopback (the domain-level twin is
tests/unit/domain/test_money_out_conservation.py).

Hypothesis generates histories over two merchants and usd and eur (US and German accounts): card
payments, partial refunds, availability moves, and payouts of a share of the available
balance (more than all of it, sometimes) whose fate is paid, failed, paid then returned, or
canceled while pending, with the bank's clock moving between them. A payout is accepted
exactly when the balance the API showed covers it. After every example, with every payout
settled: each currency balances, ``verify`` passes, the in-transit account holds nothing,
bank cash is exactly what the bank's own records say it paid and kept, no merchant was paid
out more than became available to it, and each merchant's available balance is what
became available minus what left and stayed out."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.domain import ledger
from kassa.domain.bank_accounts import bank_account
from kassa.ledger import invariants
from kassa.ledger.verify import verify
from kassa.payouts.bank_simulator import BankConfig, BankSimulatorAdapter
from kassa.services import balances, merchants, payout_destinations
from kassa.services.payout_rail import RailPolicy, advance_due_payouts
from tests.support.bank_server import running_bank
from tests.support.databases import migrated_database
from tests.support.properties import MAX_EXAMPLES, Pay, Refund, async_property, examples_guard

DAY = 86_400
CURRENCIES = ("usd", "eur")
MERCHANTS = 2
# the bank decides a transfer's fate by the last four of the destination's account (bank.py)
FATES = {"paid": "6789", "failed": "1113", "returned": "5556", "canceled": "6789"}
NOW_POLICY = RailPolicy(poll_s=0.0, backoff_cap_s=0.0)  # every pass looks again at once
EXAMPLES_RUN: list[int] = []


@dataclass(frozen=True)
class Release:
    pass


@dataclass(frozen=True)
class PayOut:
    merchant: int
    currency: str
    percent: int  # of the available balance; over 100: more than there is
    fate: str


@dataclass(frozen=True)
class Advance:
    seconds: int


Op = Pay | Refund | Release | PayOut | Advance

pay = st.builds(Pay, merchant=st.integers(0, MERCHANTS - 1),
                currency=st.sampled_from(CURRENCIES), amount=st.integers(100, 50_000))
pay_out = st.builds(PayOut, merchant=st.integers(0, MERCHANTS - 1),
                    currency=st.sampled_from(CURRENCIES), percent=st.integers(1, 120),
                    fate=st.sampled_from(sorted(FATES)))
# funded first (payments, then their money available), so most payouts can be made
history = st.builds(lambda first, rest: [*first, Release(), *rest],
                    st.lists(pay, min_size=2, max_size=6), st.lists(st.one_of(
                        pay, pay_out, pay_out, pay_out,
                        st.builds(Refund, payment=st.integers(0, 9), percent=st.integers(1, 100)),
                        st.just(Release()),
                        st.builds(Advance, seconds=st.sampled_from([60, DAY, 3 * DAY]))),
                        min_size=6, max_size=20))


@dataclass
class World:
    kassa: Any
    client: httpx.AsyncClient
    bank: httpx.AsyncClient
    bank_url: str
    shops: list[dict[str, str]]
    payments: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (shop, pi)
    payouts: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)

    def auth(self, shop: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.shops[shop]['secret_key']}"}

    async def available(self, shop: int, currency: str) -> int:
        r = await self.client.get("/v1/balance", headers=self.auth(shop))
        return next((b["amount"] for b in r.json()["available"]
                     if b["currency"] == currency), 0)

    async def step(self) -> None:
        await advance_due_payouts(self.kassa, rail=BankSimulatorAdapter(self.bank, self.bank_url),
                                  policy=NOW_POLICY)


async def apply(w: World, op: Op) -> None:
    if isinstance(op, Pay):
        r = await w.client.post("/v1/payment_intents", headers=w.auth(op.merchant), data={
            "amount": str(op.amount), "currency": op.currency, "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert r.json()["status"] == "succeeded", r.text
        w.payments.append((op.merchant, r.json()["id"]))
    elif isinstance(op, Refund):
        if op.payment >= len(w.payments):
            return
        shop, pi = w.payments[op.payment]
        left = (await w.client.get(f"/v1/payment_intents/{pi}", headers=w.auth(shop))).json()
        charge = (await w.client.get(f"/v1/charges/{left['latest_charge']}",
                                     headers=w.auth(shop))).json()
        refundable = charge["amount_captured"] - charge["amount_refunded"]
        if refundable <= 0:
            return
        amount = max(1, refundable * op.percent // 100)
        r = await w.client.post("/v1/refunds", headers=w.auth(shop),
                                data={"payment_intent": pi, "amount": str(amount)})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    elif isinstance(op, Release):
        later = dataclasses.replace(w.kassa, clock=lambda: w.kassa.clock() + 10 * DAY)
        while await balances.release_available_funds(later):
            pass
    elif isinstance(op, PayOut):
        await make_payout(w, op)
    else:
        await w.bank.post("/_bank/clock", json={"advance_s": op.seconds})
        await w.step()


def destination(currency: str, last4: str) -> Any:
    if currency == "usd":
        return bank_account(account_holder_name="Jenny Rosen", country="US", currency="usd",
                            routing_number="110000000", account_number="00012345" + last4)
    bban = "37040044" + "053201" + last4  # a German bank code and account number
    check = 98 - int("".join(str(int(ch, 36)) for ch in bban + "DE00")) % 97
    return bank_account(account_holder_name="Jenny Rosen", country="DE", currency="eur",
                        iban=f"DE{check:02d}{bban}")


async def make_payout(w: World, op: PayOut) -> None:
    shop = w.shops[op.merchant]
    if await w.available(op.merchant, op.currency) <= 0:  # the currency that has money
        op = dataclasses.replace(op, currency=next(c for c in CURRENCIES if c != op.currency))
    async with w.kassa.pool.acquire() as conn:  # the fate's account becomes the default
        await payout_destinations.save_destination(
            w.kassa, conn, destination_id=w.kassa.ids("bank_account"),
            merchant_id=shop["merchant_id"],
            account=destination(op.currency, FATES[op.fate]), created=0)
    available = await w.available(op.merchant, op.currency)
    amount = max(1, available * op.percent // 100)
    r = await w.client.post("/v1/payouts", headers=w.auth(op.merchant),
                            data={"amount": str(amount), "currency": op.currency})
    event("payout refused" if amount > available else f"payout {op.fate}")
    if amount > available:  # refused, and nothing moved
        assert (r.status_code, r.json()["error"]["code"]) == (400, "balance_insufficient"), r.text
        assert await w.available(op.merchant, op.currency) == available
        return
    assert r.status_code == 200, r.text
    po = r.json()["id"]
    w.payouts[po] = (op.merchant, op.fate)
    assert await w.available(op.merchant, op.currency) == available - amount
    if op.fate == "canceled":
        r = await w.client.post(f"/v1/payouts/{po}/cancel", headers=w.auth(op.merchant))
        assert r.status_code == 200 and r.json()["status"] == "canceled", r.text


async def settle(w: World) -> None:
    """Every payout to its end: handed to the bank, paid or failed, returns come back."""
    await w.step()
    for seconds in (60, DAY, 3 * DAY, 3 * DAY):
        await w.bank.post("/_bank/clock", json={"advance_s": seconds})
        await w.step()


async def check(w: World, bank_cash_before: dict[str, int]) -> None:
    k = w.kassa
    assert (await verify(k.pool)).ok
    async with k.pool.acquire() as conn:
        assert all(r["total"] == 0 for r in await invariants.trial_balance(conn))
    transfers = {t["reference"]: t for t in (await w.bank.get("/_bank/transfers")).json()["data"]
                 if t["reference"] in w.payouts}
    kept_by_bank: dict[str, int] = defaultdict(int)
    for po, (shop, fate) in w.payouts.items():
        got = (await w.client.get(f"/v1/payouts/{po}", headers=w.auth(shop))).json()
        want = {"paid": "paid", "canceled": "canceled"}.get(fate, "failed")
        assert got["status"] == want, (fate, got)
        if fate == "canceled":
            assert po not in transfers  # the bank never saw it
            continue
        t = transfers[po]  # the bank's own record of it
        assert (t["amount"], t["currency"], t["status"]) == (got["amount"], got["currency"], want)
        if want == "paid":
            kept_by_bank[got["currency"]] += t["amount"]
    for shop_no, shop in enumerate(w.shops):
        mid = shop["merchant_id"]
        for ccy in CURRENCIES:
            row = await k.pool.fetchrow(
                "SELECT coalesce(sum(net) FILTER (WHERE type NOT IN ('payout', 'payout_failure',"
                " 'payout_cancel') AND status = 'available'), 0)::bigint AS became,"
                " coalesce(sum(net) FILTER (WHERE type IN ('charge', 'payment')"
                " AND status = 'available'), 0)::bigint AS charges_available"
                " FROM balance_transactions WHERE merchant_id = $1 AND currency = $2", mid, ccy)
            out = sum(p["amount"] for p in await k.pool.fetch(
                "SELECT amount FROM payouts WHERE merchant_id = $1 AND currency = $2"
                " AND status = 'paid'", mid, ccy))
            assert out <= row["charges_available"]  # never paid out more than became available
            assert await w.available(shop_no, ccy) == row["became"] - out
            assert await ledger_sum(k, ledger.merchant_payouts_in_transit(mid), ccy) == 0
    for ccy in CURRENCIES:  # bank cash: exactly what the bank says it paid and kept
        moved = await ledger_sum(k, ledger.BANK_CASH, ccy) - bank_cash_before[ccy]
        assert -moved == kept_by_bank[ccy], ccy


async def ledger_sum(k: Any, account: str, currency: str) -> int:
    return int(await k.pool.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entries WHERE account = $1"
        " AND currency = $2 AND layer = 'posted'", account, currency))


@pytest.fixture(scope="module")
def bank_url() -> Iterator[str]:
    with running_bank(BankConfig(paid_after_s=DAY, fail_after_s=60,
                                 return_after_s=3 * DAY)) as url:
        yield url


@pytest.fixture(scope="module")
async def own(server_url: str, settings: Settings, bank_url: str
              ) -> AsyncIterator[tuple[Any, httpx.AsyncClient, httpx.AsyncClient]]:
    """kassa on a database of its own: bank cash and the trial balance are global sums."""
    with migrated_database(server_url, "kassa_property_payouts") as url:
        k, close = await bootstrap.build(settings, url, pool_size=6)
        app = create_app(kassa=k, key_cache_seconds=0.0)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://kassa.test") as client, \
                    httpx.AsyncClient(base_url=bank_url, timeout=5.0) as bank:
                yield k, client, bank
        finally:
            await close()


@pytest.fixture(scope="module")
def examples_run() -> Iterator[list[int]]:
    yield from examples_guard(EXAMPLES_RUN, MAX_EXAMPLES)


@pytest.mark.slow
@async_property(MAX_EXAMPLES)
@given(ops=history)
async def test_money_out_is_conserved(own, bank_url: str, examples_run: list[int],
                                      ops: list[Op]) -> None:
    examples_run.append(len(ops))
    k, client, bank = own
    shops = [await merchants.create_merchant(k, name=f"payout property {n}")
             for n in range(MERCHANTS)]
    w = World(kassa=k, client=client, bank=bank, bank_url=bank_url, shops=shops)
    bank_cash = {ccy: await ledger_sum(k, ledger.BANK_CASH, ccy) for ccy in CURRENCIES}
    for op in ops:
        await apply(w, op)
    await settle(w)
    await check(w, bank_cash)
