"""Payouts end to end on real PostgreSQL with the bank simulator over loopback HTTP: the API
creates and cancels, the worker hands payouts to the bank and follows them to paid, failed
or paid-then-returned; every step's ledger posting, balance transaction and event commit
with it, and the bank's own records agree with kassa's ledger."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from kassa.db import payouts as payouts_db
from kassa.domain import ledger
from kassa.domain.payouts import PayoutStatus
from kassa.ledger.verify import verify
from kassa.payouts.bank_simulator import BankConfig, BankSimulatorAdapter
from kassa.payouts.base import PayoutRefused
from kassa.services import balances
from kassa.services.context import Kassa
from kassa.services.payout_rail import RailPolicy, advance_due_payouts
from kassa.services.payouts import record_moves
from tests.support.bank_server import running_bank

DAY = 86_400
NOW_POLICY = RailPolicy(poll_s=0.0, backoff_cap_s=0.0)  # every pass looks again at once


@pytest.fixture(scope="module")
def bank_url() -> Iterator[str]:
    with running_bank(BankConfig(paid_after_s=DAY, fail_after_s=60,
                                 return_after_s=3 * DAY)) as url:
        yield url


@pytest.fixture
async def bank(bank_url):
    async with httpx.AsyncClient(base_url=bank_url, timeout=5.0) as c:
        yield c


async def funded(client, auth, kassa: Kassa, amount: int = 10_000) -> None:
    """A captured payment whose funds became available (the availability job, run as if
    the settlement delay had passed)."""
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": str(amount), "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text
    later = dataclasses.replace(kassa, clock=lambda: kassa.clock() + 10 * DAY)
    while await balances.release_available_funds(later):
        pass


async def available(client, auth) -> int:
    r = await client.get("/v1/balance", headers=auth)
    return next((b["amount"] for b in r.json()["available"] if b["currency"] == "usd"), 0)


async def add_bank_account(client, auth, merchant_id: str, account_number: str) -> dict:
    r = await client.post(f"/v1/accounts/{merchant_id}/external_accounts", headers=auth, data={
        "external_account[object]": "bank_account", "external_account[country]": "US",
        "external_account[currency]": "usd",
        "external_account[account_holder_name]": "Jenny Rosen",
        "external_account[routing_number]": "110000000",
        "external_account[account_number]": account_number})
    assert r.status_code == 200, r.text
    return r.json()


async def step(kassa: Kassa, bank_url: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as c:
        await advance_due_payouts(kassa, rail=BankSimulatorAdapter(c, bank_url),
                                  policy=NOW_POLICY)


async def payout(client, auth, payout_id: str) -> dict:
    return (await client.get(f"/v1/payouts/{payout_id}", headers=auth)).json()


async def ledger_of(kassa: Kassa, payout_id: str) -> dict[str, int]:
    rows = await kassa.pool.fetch(
        "SELECT e.account, sum(e.amount)::bigint AS total FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id WHERE t.source_id = $1"
        " GROUP BY e.account", payout_id)
    return {r["account"]: r["total"] for r in rows if r["total"]}


async def events_of(kassa: Kassa, payout_id: str) -> list[str]:
    rows = await kassa.pool.fetch("SELECT type FROM events WHERE object_id = $1 ORDER BY seq",
                                  payout_id)
    return [r["type"] for r in rows]


async def test_paid_payout(client, auth, merchant, kassa, bank, bank_url):
    mid = merchant["merchant_id"]
    await funded(client, auth, kassa)
    before = await available(client, auth)
    r = await client.post("/v1/payouts", headers=auth, data={"amount": "1000",
                                                              "currency": "usd"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_external_account"
    account = await add_bank_account(client, auth, mid, "000123456789")
    assert account["last4"] == "6789" and "000123456789" not in str(account)
    r = await client.post("/v1/payouts", headers=auth, data={"amount": str(before + 1),
                                                              "currency": "usd"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "balance_insufficient"
    key = {"Idempotency-Key": f"po-{mid}"}
    r = await client.post("/v1/payouts", headers={**auth, **key}, data={
        "amount": "4000", "currency": "usd", "description": "weekly", "metadata[k]": "v"})
    assert r.status_code == 200, r.text
    po = r.json()
    assert (po["status"], po["destination"], po["metadata"]) == (
        "pending", account["id"], {"k": "v"})
    replay = await client.post("/v1/payouts", headers={**auth, **key}, data={
        "amount": "4000", "currency": "usd", "description": "weekly", "metadata[k]": "v"})
    assert replay.json()["id"] == po["id"] and replay.headers.get("Idempotent-Replayed")
    assert await available(client, auth) == before - 4000
    assert await ledger_of(kassa, po["id"]) == {ledger.merchant_available(mid): 4000,
                                                ledger.merchant_payouts_in_transit(mid): -4000}

    await step(kassa, bank_url)
    assert (await payout(client, auth, po["id"]))["status"] == "in_transit"
    transfers = (await bank.get("/_bank/transfers")).json()["data"]
    mine = [t for t in transfers if t["reference"] == po["id"]]
    assert [(t["amount"], t["currency"], t["status"]) for t in mine] == [
        (4000, "usd", "in_transit")]
    r = await client.post(f"/v1/payouts/{po['id']}/cancel", headers=auth)
    assert r.status_code == 400  # the bank has it: too late to cancel

    await bank.post("/_bank/clock", json={"advance_s": DAY})
    await step(kassa, bank_url)
    paid = await payout(client, auth, po["id"])
    assert (paid["status"], paid["trace_id"]["value"]) == ("paid", mine[0]["id"])
    assert await ledger_of(kassa, po["id"]) == {ledger.merchant_available(mid): 4000,
                                                ledger.BANK_CASH: -4000}
    assert await events_of(kassa, po["id"]) == ["payout.created", "payout.updated",
                                                "payout.paid"]
    assert (await verify(kassa.pool)).ok
    listed = (await client.get("/v1/payouts", headers=auth,
                               params={"status": "paid"})).json()["data"]
    assert [p["id"] for p in listed] == [po["id"]]
    bt = (await client.get(f"/v1/balance_transactions/{po['balance_transaction']}",
                           headers=auth)).json()
    assert (bt["type"], bt["amount"], bt["source"]) == ("payout", -4000, po["id"])
    r = await client.get("/v1/balance_transactions", headers=auth, params={"payout": po["id"]})
    assert r.status_code == 400  # a manual payout has no contents to list (as at Stripe)


async def test_cancel_while_pending_returns_the_money(client, auth, merchant, kassa):
    mid = merchant["merchant_id"]
    await funded(client, auth, kassa)
    await add_bank_account(client, auth, mid, "000123456789")
    before = await available(client, auth)
    po = (await client.post("/v1/payouts", headers=auth,
                            data={"amount": "2500", "currency": "usd"})).json()
    r = await client.post(f"/v1/payouts/{po['id']}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert await available(client, auth) == before
    assert await ledger_of(kassa, po["id"]) == {}
    again = await client.post(f"/v1/payouts/{po['id']}/cancel", headers=auth)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payout_unexpected_state"
    assert await events_of(kassa, po["id"]) == ["payout.created", "payout.canceled"]
    assert (await client.get("/v1/payouts/po_missing", headers=auth)).status_code == 404


@pytest.mark.parametrize(("account_number", "advance", "code", "events"), [
    ("000111111113", [60], "account_closed",
     ["payout.created", "payout.updated", "payout.failed"]),
    ("000555555556", [DAY, 3 * DAY], "account_closed",  # paid, then returned
     ["payout.created", "payout.updated", "payout.paid", "payout.failed"]),
])
async def test_failed_and_returned_payouts_give_the_money_back(
        client, auth, merchant, kassa, bank, bank_url, account_number, advance, code, events):
    mid = merchant["merchant_id"]
    await funded(client, auth, kassa)
    await add_bank_account(client, auth, mid, account_number)
    before = await available(client, auth)
    po = (await client.post("/v1/payouts", headers=auth,
                            data={"amount": "3000", "currency": "usd"})).json()
    await step(kassa, bank_url)
    for seconds in advance:
        await bank.post("/_bank/clock", json={"advance_s": seconds})
        await step(kassa, bank_url)
    failed = await payout(client, auth, po["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", code)
    assert await events_of(kassa, po["id"]) == events
    assert await available(client, auth) == before
    assert await ledger_of(kassa, po["id"]) == {}
    reversal = (await client.get(
        f"/v1/balance_transactions/{failed['failure_balance_transaction']}",
        headers=auth)).json()
    assert (reversal["type"], reversal["reporting_category"], reversal["amount"]) == (
        "payout_failure", "payout_reversal", 3000)
    async with kassa.pool.acquire() as conn:  # nothing left for the worker
        stored = await payouts_db.get_payout(conn, merchant_id=mid, payout_id=po["id"])
        assert stored is not None
        due = await conn.fetchval("SELECT next_check_at FROM payouts WHERE id = $1", po["id"])
    assert due is None
    assert (await verify(kassa.pool)).ok


async def test_a_worker_dying_or_a_failing_bank_never_pays_twice(client, auth, merchant, kassa,
                                                                 bank, bank_url):
    mid = merchant["merchant_id"]
    await funded(client, auth, kassa)
    await add_bank_account(client, auth, mid, "000123456789")
    dying = (await client.post("/v1/payouts", headers=auth,
                               data={"amount": "1500", "currency": "usd"})).json()
    # a worker that moved it to in_transit and died before the bank heard of it
    await record_moves(kassa, merchant_id=mid, payout_id=dying["id"],
                       decide=lambda p: [(PayoutStatus.IN_TRANSIT, None)],
                       next_check_in_s=lambda p: 0.0)
    flaky = (await client.post("/v1/payouts", headers=auth,
                               data={"amount": "700", "currency": "usd"})).json()
    await bank.post("/_bank/faults", json={"faults": ["error", "error_after_accept"]})
    for _ in range(4):  # 503 before receiving, received then 503, then asked, then asked
        await step(kassa, bank_url)
    await bank.post("/_bank/clock", json={"advance_s": DAY})
    await step(kassa, bank_url)
    transfers = (await bank.get("/_bank/transfers")).json()["data"]
    for po, amount in ((dying, 1500), (flaky, 700)):
        mine = [t for t in transfers if t["reference"] == po["id"]]
        assert [(t["amount"], t["status"]) for t in mine] == [(amount, "paid")]
        assert (await payout(client, auth, po["id"]))["status"] == "paid"
        assert await ledger_of(kassa, po["id"]) == {ledger.merchant_available(mid): amount,
                                                    ledger.BANK_CASH: -amount}
    assert (await verify(kassa.pool)).ok


class _SentElsewhere:
    """A rail whose send is refused for this worker after another worker's send of the same
    payout was accepted (a lease taken over mid-step, then a one-off refusal)."""

    def __init__(self, inner: BankSimulatorAdapter) -> None:
        self.inner = inner

    async def send(self, instruction):
        await self.inner.send(instruction)
        raise PayoutRefused("refused for this caller", failure_code=None)

    async def get(self, *, payout_id: str):
        return await self.inner.get(payout_id=payout_id)


async def test_a_refusal_after_another_worker_sent_it_follows_the_bank(
        client, auth, merchant, kassa, bank, bank_url):
    mid = merchant["merchant_id"]
    await funded(client, auth, kassa)
    await add_bank_account(client, auth, mid, "000123456789")
    po = (await client.post("/v1/payouts", headers=auth,
                            data={"amount": "900", "currency": "usd"})).json()
    async with httpx.AsyncClient(timeout=5.0) as c:
        await advance_due_payouts(kassa, rail=_SentElsewhere(BankSimulatorAdapter(c, bank_url)),
                                  policy=NOW_POLICY)
    assert (await payout(client, auth, po["id"]))["status"] == "in_transit"  # not failed
    await bank.post("/_bank/clock", json={"advance_s": DAY})
    await step(kassa, bank_url)
    assert (await payout(client, auth, po["id"]))["status"] == "paid"
    assert await ledger_of(kassa, po["id"]) == {ledger.merchant_available(mid): 900,
                                                ledger.BANK_CASH: -900}
    assert (await verify(kassa.pool)).ok


async def test_a_japanese_bank_account_is_paid_out_to(client, auth, merchant, kassa, bank,
                                                      bank_url):
    """A Zengin account (Stripe's JP fields) receives a jpy payout: shown masked, sent to
    the bank with its bank and branch codes and account type, paid, the ledger balanced."""
    mid = merchant["merchant_id"]
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "10000", "currency": "jpy", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text
    later = dataclasses.replace(kassa, clock=lambda: kassa.clock() + 10 * DAY)
    while await balances.release_available_funds(later):
        pass
    fields = {"external_account[object]": "bank_account", "external_account[country]": "JP",
              "external_account[currency]": "jpy",
              "external_account[account_holder_name]": "ヤマダ タロウ",
              "external_account[routing_number]": "1100000",
              "external_account[account_number]": "0001234"}
    path = f"/v1/accounts/{mid}/external_accounts"
    for bad, param in (({}, "account_type"),
                       ({"external_account[account_type]": "checking"}, "account_type"),
                       ({"external_account[account_type]": "futsu",
                         "external_account[routing_number]": "110000"}, "routing_number"),
                       ({"external_account[account_type]": "futsu",
                         "external_account[currency]": "usd"}, "currency"),
                       # kanji and small kana are not in the Zengin set a transfer carries
                       ({"external_account[account_type]": "futsu",
                         "external_account[account_holder_name]": "山田 太郎"},
                        "account_holder_name"),
                       ({"external_account[account_type]": "futsu",
                         "external_account[account_holder_name]": "ヤマダ シヨウジ・キュウ"},
                        "account_holder_name")):
        r = await client.post(path, headers=auth, data={**fields, **bad})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"].endswith(param), r.text
        assert r.json()["error"]["type"] == "invalid_request_error", r.text
    r = await client.post(path, headers=auth,
                          data={**fields, "external_account[account_type]": "futsu"})
    assert r.status_code == 200, r.text
    account = r.json()
    assert (account["country"], account["currency"], account["routing_number"],
            account["account_type"], account["last4"], account["account_holder_name"]) == (
        "JP", "jpy", "1100000", "futsu", "1234", "ﾔﾏﾀﾞ ﾀﾛｳ")  # stored half-width
    assert "0001234" not in str(account)
    listed = (await client.get(path, headers=auth)).json()["data"]
    assert [(a["id"], a["account_type"]) for a in listed if a["currency"] == "jpy"] == [
        (account["id"], "futsu")]

    po = (await client.post("/v1/payouts", headers=auth,
                            data={"amount": "4000", "currency": "jpy"})).json()
    assert (po["status"], po["destination"], po["currency"]) == (
        "pending", account["id"], "jpy")
    await step(kassa, bank_url)
    sent = [t for t in (await bank.get("/_bank/transfers")).json()["data"]
            if t["reference"] == po["id"]]
    assert [(t["amount"], t["currency"], t["destination"]) for t in sent] == [
        (4000, "jpy", {"account_holder_name": "ﾔﾏﾀﾞ ﾀﾛｳ", "country": "JP",
                       "currency": "jpy", "last4": "1234", "routing_number": "1100000",
                       "scheme": "zengin", "account_type": "futsu", "bank_code": "1100",
                       "branch_code": "000"})]
    await bank.post("/_bank/clock", json={"advance_s": DAY})
    await step(kassa, bank_url)
    assert (await payout(client, auth, po["id"]))["status"] == "paid"
    assert await ledger_of(kassa, po["id"]) == {ledger.merchant_available(mid): 4000,
                                                ledger.BANK_CASH: -4000}
    assert (await verify(kassa.pool)).ok
