"""Multi-currency through the API, the services and PostgreSQL (domain/fx.py): a payment
in another currency than its merchant's settlement currency is refused without a usable
rate (nothing written), and with one is converted at the rate fixed at confirmation —
capture, hold, refunds (original rate, FX gain/loss against the current one) — every
currency balancing on its own and ``verify`` proving the trading legs against the rates.
Each test uses its own currency pair: the rates table is shared by the session."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from kassa.domain.fx import Rate, convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import fx, reconciliation_reports
from kassa.services.context import Kassa


async def settle_in(client: httpx.AsyncClient, auth: dict[str, str], ccy: str) -> None:
    r = await client.post("/v1/account", headers=auth, data={"default_currency": ccy})
    assert r.status_code == 200, r.text
    assert r.json()["default_currency"] == ccy


async def rate(kassa: Kassa, base: str, quote: str, value: str, *, age: int = 0) -> None:
    await fx.store(kassa, [Rate(base, quote, Decimal(value), "test",
                                kassa.clock() - age)])


async def pay(client: httpx.AsyncClient, auth: dict[str, str], amount: int, ccy: str,
              **extra: str) -> httpx.Response:
    return await client.post("/v1/payment_intents", headers=auth, data={
        "amount": str(amount), "currency": ccy, "payment_method": "pm_card_visa",
        "confirm": "true", **extra})


async def entries(kassa: Kassa, source_ids: list[str]) -> list[dict]:
    rows = await kassa.pool.fetch(
        "SELECT t.kind, t.exchange_rate, e.account, e.currency, e.layer, e.amount"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.source_id = ANY($1::text[]) ORDER BY e.id", source_ids)
    return [dict(r) for r in rows]


def balanced_per_currency(rows: list[dict]) -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        sums[(r["currency"], r["layer"])] += r["amount"]
    return dict(sums)


async def assert_verified(kassa: Kassa) -> None:
    report = await verify(kassa.pool)
    assert report.ok, report.problems


async def test_no_usable_rate_is_a_400_and_nothing_is_written(kassa, client, merchant, auth):
    await settle_in(client, auth, "chf")
    r = await pay(client, auth, 5000, "gbp")
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error", "fx_rate_unavailable", "currency")
    # a rate too old is no better
    await rate(kassa, "gbp", "chf", "1.1200", age=kassa.fx.max_age_seconds + 60)
    r = await pay(client, auth, 5000, "gbp")
    assert r.status_code == 400 and r.json()["error"]["code"] == "fx_rate_unavailable"
    mid = merchant["merchant_id"]
    assert await kassa.pool.fetchval(
        "SELECT count(*) FROM payment_intents WHERE merchant_id = $1", mid) == 0
    assert await kassa.pool.fetchval(
        "SELECT count(*) FROM attempts WHERE merchant_id = $1", mid) == 0
    assert await kassa.pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE merchant_id = $1", mid) == 0
    # the merchant's own currency needs no rate
    assert (await pay(client, auth, 5000, "chf")).status_code == 200


async def test_a_converted_capture_and_its_balance_transaction(kassa, client, merchant, auth):
    await settle_in(client, auth, "usd")
    await rate(kassa, "eur", "usd", "1.0842")
    r = await pay(client, auth, 10_000, "eur")
    assert r.status_code == 200, r.text
    pi = r.json()
    assert pi["status"] == "succeeded" and pi["currency"] == "eur"
    row = await kassa.pool.fetchrow(
        "SELECT settlement_currency, exchange_rate, fx_rate_id FROM payment_intents"
        " WHERE id = $1", pi["id"])
    assert (row["settlement_currency"], row["exchange_rate"]) == ("usd", Decimal("1.0842"))
    assert row["fx_rate_id"].startswith("fxr_")
    (bt,) = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    fee = (10_842 * 290 + 5_000) // 10_000 + 30
    assert (bt["amount"], bt["currency"], bt["fee"], bt["net"], bt["exchange_rate"]) == (
        10_842, "usd", fee, 10_842 - fee, 1.0842)
    bal = (await client.get("/v1/balance", headers=auth)).json()
    assert [(b["currency"], b["amount"]) for b in bal["pending"]] == [("usd", 10_842 - fee)]
    rows = await entries(kassa, [pi["id"]])
    assert set(balanced_per_currency(rows).values()) == {0}
    by = {(r["account"], r["currency"]): r["amount"] for r in rows if r["layer"] == "posted"}
    assert by[("psp:simulator:receivable", "eur")] == 10_000
    assert by[("fx:eur", "eur")] == -10_000 and by[("fx:usd", "usd")] == 10_842
    assert by[(f"merchant:{merchant['merchant_id']}:pending", "usd")] == -(10_842 - fee)
    assert by[("revenue:fees", "usd")] == -fee
    await assert_verified(kassa)


async def test_refunds_at_the_original_rate_with_fx_gain_or_loss(kassa, client, merchant,
                                                                 auth):
    await settle_in(client, auth, "cad")
    await rate(kassa, "nzd", "cad", "0.8123", age=30)
    pi = (await pay(client, auth, 12_345, "nzd")).json()
    settled = convert(Money(12_345, "nzd"), Decimal("0.8123"), "cad").minor  # 10028
    first = await client.post("/v1/refunds", headers=auth,
                              data={"payment_intent": pi["id"], "amount": "2345"})
    assert first.status_code == 200 and first.json()["status"] == "succeeded"
    # the rate moves: the rest is refunded at the original rate, traded at the new one
    await rate(kassa, "nzd", "cad", "0.8500")
    rest = await client.post("/v1/refunds", headers=auth,
                             data={"payment_intent": pi["id"]})
    assert rest.status_code == 200 and rest.json()["amount"] == 10_000
    bts = (await client.get("/v1/balance_transactions", headers=auth,
                            params={"type": "refund"})).json()["data"]
    one = convert(Money(2345, "nzd"), Decimal("0.8123"), "cad").minor
    two = convert(Money(10_000, "nzd"), Decimal("0.8123"), "cad").minor
    assert sorted(b["amount"] for b in bts) == sorted([-one, -two])
    assert {b["exchange_rate"] for b in bts} == {0.8123} and one + two == settled
    rows = await entries(kassa, [first.json()["id"], rest.json()["id"]])
    assert set(balanced_per_currency(rows).values()) == {0}
    gain_loss = [r for r in rows if r["account"] == "revenue:fx_gain_loss"]
    # 100.00 nzd bought back at 0.85 costs 85.00 cad; the merchant gave 81.23: a loss
    assert [(r["currency"], r["amount"]) for r in gain_loss] == [("cad", 8500 - two)]
    assert {r["exchange_rate"] for r in rows if r["kind"] == "refund"} == {
        Decimal("0.8123"), Decimal("0.8500")}
    bal = (await client.get("/v1/balance", headers=auth)).json()
    fee = (settled * 290 + 5_000) // 10_000 + 30
    # pending holds the capture's net, available the refunds: the merchant is down the fee
    total = sum(b["amount"] for b in bal["pending"] + bal["available"])
    assert total == settled - fee - settled == -fee
    # the merchant's settlement report is in its settlement currency, each item once
    today = datetime.fromtimestamp(kassa.clock(), UTC).date()
    report = await reconciliation_reports.merchant_settlement(
        kassa, merchant_id=merchant["merchant_id"], start=today, end=today)
    (row,) = report["currencies"]
    assert (row["currency"], row["charges"], row["gross"], row["fees"], row["refund_count"],
            row["refunds"], row["net"]) == ("cad", 1, settled, fee, 2, settled, -fee)
    await assert_verified(kassa)


@pytest.mark.parametrize(("presentment", "settlement", "amount", "value", "expected"), [
    ("jpy", "kwd", 12_345, "0.002053", 25_344),  # 12,345 yen -> 25.344 kwd (25.34429)
    ("bhd", "jpy", 12_340, "397.75", 4_908),   # 12.340 bhd -> 4,908 yen (4908.235)
])
async def test_zero_and_three_decimal_settlement(kassa, client, merchant, auth,
                                                 presentment, settlement, amount, value,
                                                 expected):
    await settle_in(client, auth, settlement)
    await rate(kassa, presentment, settlement, value)
    pi = (await pay(client, auth, amount, presentment)).json()
    assert pi["status"] == "succeeded"
    (bt,) = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    assert (bt["amount"], bt["currency"], bt["exchange_rate"]) == (expected, settlement,
                                                                  float(value))
    refund = await client.post("/v1/refunds", headers=auth,
                               data={"payment_intent": pi["id"]})
    assert refund.status_code == 200
    rows = await entries(kassa, [pi["id"], refund.json()["id"]])
    assert set(balanced_per_currency(rows).values()) == {0}
    merchant_side = sum(r["amount"] for r in rows if r["account"].endswith(":available"))
    assert merchant_side == expected  # a full refund takes back exactly the credited gross
    await assert_verified(kassa)


async def test_a_manual_capture_converts_the_hold_and_its_release(kassa, client, merchant,
                                                                  auth):
    await settle_in(client, auth, "sek")
    await rate(kassa, "dkk", "sek", "1.4937")
    pi = (await pay(client, auth, 20_000, "dkk", capture_method="manual")).json()
    assert pi["status"] == "requires_capture"
    r = await client.post(f"/v1/payment_intents/{pi['id']}/capture", headers=auth,
                          data={"amount_to_capture": "15000"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    rows = await entries(kassa, [pi["id"], pi["latest_charge"]])
    assert set(balanced_per_currency(rows).values()) == {0}
    pending = [r for r in rows if r["layer"] == "pending" and r["account"].startswith("fx:")]
    assert sum(r["amount"] for r in pending if r["currency"] == "sek") == 0  # hold released
    (bt,) = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    assert (bt["amount"], bt["currency"]) == (22_406, "sek")  # 150.00 dkk * 1.4937
    await assert_verified(kassa)


async def test_verify_catches_trading_legs_that_disagree_with_the_rate(kassa, client,
                                                                       merchant, auth):
    await settle_in(client, auth, "nok")
    await rate(kassa, "pln", "nok", "2.6512")
    assert (await pay(client, auth, 4_000, "pln")).status_code == 200
    await assert_verified(kassa)
    mid = merchant["merchant_id"]
    with pytest.raises(_Rollback):
        async with kassa.pool.acquire() as conn, conn.transaction():
            # balanced per currency, but 40.00 pln at 2.6512 is 106.05 nok, not 107.00
            tx = await conn.fetchval(
                "INSERT INTO ledger_transactions (kind, merchant_id, source_id,"
                " exchange_rate) VALUES ('capture', $1, 'pi_forged', 2.6512) RETURNING id",
                mid)
            await conn.executemany(
                "INSERT INTO ledger_entries (transaction_id, account, currency, layer,"
                " amount) VALUES ($1, $2, $3, 'posted', $4)",
                [(tx, "psp:simulator:receivable", "pln", 4000), (tx, "fx:pln", "pln", -4000),
                 (tx, "fx:nok", "nok", 10_700), (tx, f"merchant:{mid}:pending", "nok",
                                                 -10_700)])
            report = await verify(conn)
            assert any("disagree with its exchange rate" in p for p in report.problems), \
                report.problems
            raise _Rollback
    await assert_verified(kassa)


class _Rollback(Exception):
    pass


async def test_settlement_currency_on_the_account_and_cleared(kassa, client, merchant, auth):
    assert (await client.get("/v1/account", headers=auth)).json()["default_currency"] is None
    await settle_in(client, auth, "usd")
    assert (await client.get("/v1/account", headers=auth)).json()["default_currency"] == "usd"
    r = await client.post("/v1/account", headers=auth, data={"default_currency": "xyz"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "default_currency"
    r = await client.post("/v1/account", headers=auth, data={"default_currency": ""})
    assert r.status_code == 200 and r.json()["default_currency"] is None


class _Provider(http.server.BaseHTTPRequestHandler):
    body = b""
    content_type = "application/json"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[tuple[str, type[_Provider]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rates", _Provider
    finally:
        server.shutdown()
        server.server_close()


async def test_pull_from_a_provider_on_loopback(kassa, client, merchant, auth, provider):
    url, handler = provider
    now = kassa.clock()
    handler.body = json.dumps({"base": "HUF", "as_of": now, "source": "loopback",
                               "rates": {"czk": "0.0634", "ron": "0.012345"}}).encode()
    async with httpx.AsyncClient() as http_client:
        assert await fx.pull(kassa, http_client, url) == {"read": 2, "stored": 2}
        assert await fx.pull(kassa, http_client, url) == {"read": 2, "stored": 0}
        handler.body, handler.content_type = (
            f"base,quote,rate,as_of\nhuf,czk,0.0635,{now + 0}\n".encode(), "text/csv")
        assert (await fx.pull(kassa, http_client, url))["read"] == 1
    r = await client.get("/v1/exchange_rates/huf", headers=auth)
    assert r.status_code == 200
    assert r.json()["object"] == "exchange_rate" and r.json()["rates"]["ron"] == 0.012345
    await asyncio.sleep(0)


async def test_a_decline_then_another_currency_converts_anew_or_not_at_all(kassa, client,
                                                                           merchant, auth):
    await settle_in(client, auth, "usd")
    await rate(kassa, "mxn", "usd", "0.0581")
    await rate(kassa, "brl", "usd", "0.2012")
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "50000", "currency": "mxn", "confirm": "true",
        "payment_method": "pm_card_chargeDeclinedInsufficientFunds"})
    assert r.status_code == 402
    pi = r.json()["error"]["payment_intent"]["id"]
    fixed = await kassa.pool.fetchrow(
        "SELECT settlement_currency, exchange_rate FROM payment_intents WHERE id = $1", pi)
    assert tuple(fixed) == ("usd", Decimal("0.0581"))
    # the intent now asks for brl: the next confirmation converts brl
    r = await client.post(f"/v1/payment_intents/{pi}", headers=auth, data={"currency": "brl"})
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/payment_intents/{pi}/confirm", headers=auth,
                          data={"payment_method": "pm_card_chargeDeclinedInsufficientFunds"})
    assert r.status_code == 402
    assert await kassa.pool.fetchval(
        "SELECT exchange_rate FROM payment_intents WHERE id = $1", pi) == Decimal("0.2012")
    # and in the merchant's own currency it converts nothing (the old conversion cleared)
    r = await client.post(f"/v1/payment_intents/{pi}", headers=auth, data={"currency": "usd"})
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/payment_intents/{pi}/confirm", headers=auth,
                          data={"payment_method": "pm_card_visa"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    row = await kassa.pool.fetchrow(
        "SELECT settlement_currency, exchange_rate, fx_rate_id FROM payment_intents"
        " WHERE id = $1", pi)
    assert tuple(row) == (None, None, None)
    (bt,) = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"]
    assert (bt["amount"], bt["currency"], bt["exchange_rate"]) == (50_000, "usd", None)
    await assert_verified(kassa)


async def test_verify_pages_through_conversions_by_id(kassa, client, merchant, auth):
    from kassa.db import fx as fx_db

    await settle_in(client, auth, "isk")
    await rate(kassa, "huf", "isk", "0.3712")
    for amount in (10_000, 20_000, 30_000):
        assert (await pay(client, auth, amount, "huf")).status_code == 200
    first = await fx_db.conversions(kassa.pool, after=0, limit=1)
    assert len({r["id"] for r in first}) == 1
    second = await fx_db.conversions(kassa.pool, after=first[-1]["id"], limit=1)
    assert second and second[0]["id"] > first[-1]["id"]
    await assert_verified(kassa)
