"""Partial refunds of a converted payment never take from the merchant more (or less) in
the settlement currency than the capture credited: each refund converts the running total
refunded and takes the difference, so rounding cannot accumulate (domain/fx.py). A
refund that fails later gives back exactly what it took, and the next refund still
telescopes to the converted total."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kassa.domain.fx import Rate, convert
from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.services import fx


async def _settle_in(client, auth, ccy):
    r = await client.post("/v1/account", headers=auth, data={"default_currency": ccy})
    assert r.status_code == 200, r.text


async def _bts(client, auth, type_):
    r = await client.get("/v1/balance_transactions", headers=auth,
                         params={"type": type_, "limit": "100"})
    return r.json()["data"]


async def test_partial_refunds_add_up_to_the_credited_amount(kassa, client, merchant, auth):
    # 1 euro cent is 1.503 yen: each 1-cent refund alone rounds to 2 yen, the 5-cent
    # capture to 8 yen; five 1-cent refunds must take back 8 yen, not 10
    await _settle_in(client, auth, "jpy")
    await fx.store(kassa, [Rate("eur", "jpy", Decimal("150.3"), "test", kassa.clock())])
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "5", "currency": "eur", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.status_code == 200, r.text
    pi = r.json()
    credited = convert(Money(5, "eur"), Decimal("150.3"), "jpy").minor
    assert credited == 8
    (charge,) = await _bts(client, auth, "charge")
    assert charge["amount"] == credited
    for _ in range(5):
        refund = await client.post("/v1/refunds", headers=auth,
                                   data={"payment_intent": pi["id"], "amount": "1"})
        assert refund.status_code == 200 and refund.json()["status"] == "succeeded"
    refunds = await _bts(client, auth, "refund")
    assert len(refunds) == 5
    assert -sum(b["amount"] for b in refunds) == credited
    bal = (await client.get("/v1/balance", headers=auth)).json()
    total = sum(b["amount"] for b in bal["pending"] + bal["available"])
    assert total == -charge["fee"]  # fully refunded: the merchant is down the fee only
    report = await verify(kassa.pool)
    assert report.ok, report.problems


async def test_partial_refunds_never_exceed_the_credited_amount_small_yen(kassa, client,
                                                                          merchant, auth):
    # 3 yen is 1.83 cents: alone each rounds up to 2 cents (20 for ten); 30 yen credited 18
    await _settle_in(client, auth, "usd")
    await fx.store(kassa, [Rate("jpy", "usd", Decimal("0.0061"), "test", kassa.clock())])
    pi = (await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "30", "currency": "jpy", "payment_method": "pm_card_visa",
        "confirm": "true"})).json()
    credited = convert(Money(30, "jpy"), Decimal("0.0061"), "usd").minor  # 18.3 -> 18
    for _ in range(10):
        refund = await client.post("/v1/refunds", headers=auth,
                                   data={"payment_intent": pi["id"], "amount": "3"})
        assert refund.status_code == 200, refund.text
    assert credited == 18
    refunds = await _bts(client, auth, "refund")
    assert -sum(b["amount"] for b in refunds) == credited
    report = await verify(kassa.pool)
    assert report.ok, report.problems


async def test_a_failed_refund_gives_back_its_own_share(kassa, client, merchant, auth):
    from kassa.db import refunds as refunds_db
    from kassa.services import refunds, saga
    from kassa.services.uow import UnitOfWork

    await _settle_in(client, auth, "jpy")
    await fx.store(kassa, [Rate("eur", "jpy", Decimal("150.3"), "test", kassa.clock())])
    pi = (await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "5", "currency": "eur", "payment_method": "pm_card_visa",
        "confirm": "true"})).json()
    ids = []
    for _ in range(2):  # 1 cent: 2 yen (1.503); 2 cents: 3 yen in all, so 1 more
        refund = await client.post("/v1/refunds", headers=auth,
                                   data={"payment_intent": pi["id"], "amount": "1"})
        assert refund.status_code == 200, refund.text
        ids.append(refund.json()["id"])
    assert sorted(b["amount"] for b in await _bts(client, auth, "refund")) == [-2, -1]
    # the first refund fails later at the PSP (its webhook's path): it gives back its 2 yen
    r = await refunds_db.get_refund(kassa.pool, merchant_id=None, refund_id=ids[0])
    p = await saga.reload(kassa, pi["id"])
    async with UnitOfWork(kassa, None) as uow:
        await refunds.bounce(kassa, uow, r, p, "expired_or_canceled_card")
        await uow.commit()
    (failure,) = await _bts(client, auth, "refund_failure")
    assert failure["amount"] == 2
    # 2 more cents are refunded (the PSP, which this test bypassed for the failure, has 2
    # refunded of 5): 3 cents net refunded take 4.509 -> 5 yen net, not 1 + 2 + 2 - 2 = 3
    more = await client.post("/v1/refunds", headers=auth,
                             data={"payment_intent": pi["id"], "amount": "2"})
    assert more.status_code == 200 and more.json()["status"] == "succeeded", more.text
    taken = -sum(b["amount"] for b in await _bts(client, auth, "refund")) - failure["amount"]
    assert taken == convert(Money(3, "eur"), Decimal("150.3"), "jpy").minor == 5
    report = await verify(kassa.pool)
    assert report.ok, report.problems


async def test_verify_catches_a_refund_that_takes_the_wrong_amount(kassa, client, merchant,
                                                                   auth):
    # the fx gain/loss leg balances whatever the merchant side is, and the trading legs
    # only prove the trading rate: verify must check the merchant's side at the payment's
    await _settle_in(client, auth, "jpy")
    await fx.store(kassa, [Rate("eur", "jpy", Decimal("150.3"), "test", kassa.clock())])
    pi = (await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "500", "currency": "eur", "payment_method": "pm_card_visa",
        "confirm": "true"})).json()
    refund = await client.post("/v1/refunds", headers=auth,
                               data={"payment_intent": pi["id"], "amount": "100"})
    assert refund.status_code == 200, refund.text
    report = await verify(kassa.pool)
    assert report.ok, report.problems
    mid = merchant["merchant_id"]
    with pytest.raises(_Rollback):
        async with kassa.pool.acquire() as conn, conn.transaction():
            # a second 1.00 eur refund that takes 152 yen (2.00 eur at 150.3 is 301 in all), the
            # extra yen "balanced" by an fx gain; its trading legs agree with the rate
            await conn.execute(
                "INSERT INTO refunds (id, merchant_id, payment_intent_id, amount, currency,"
                " status, created) VALUES ('re_forged', $1, $2, 100, 'eur', 'succeeded', 0)",
                mid, pi["id"])
            tx = await conn.fetchval(
                "INSERT INTO ledger_transactions (kind, merchant_id, source_id,"
                " exchange_rate) VALUES ('refund', $1, 're_forged', 150.3) RETURNING id", mid)
            await conn.executemany(
                "INSERT INTO ledger_entries (transaction_id, account, currency, layer,"
                " amount) VALUES ($1, $2, $3, 'posted', $4)",
                [(tx, f"merchant:{mid}:available", "jpy", 152),
                 (tx, "psp:simulator:receivable", "eur", -100), (tx, "fx:eur", "eur", 100),
                 (tx, "revenue:fx_gain_loss", "jpy", -2), (tx, "fx:jpy", "jpy", -150)])
            await conn.execute(  # and its balance transaction, as a refund writes one
                "INSERT INTO balance_transactions (id, merchant_id, amount, fee, net,"
                " currency, type, source, status, available_on, created,"
                " ledger_transaction_id, exchange_rate) VALUES ('txn_forged', $1, -152, 0,"
                " -152, 'jpy', 'refund', 're_forged', 'available', 0, 0, $2, 150.3)", mid, tx)
            report = await verify(conn)
            assert any(pi["id"] in p and "its refunds took 302 jpy" in p
                       for p in report.problems), report.problems
            raise _Rollback
    report = await verify(kassa.pool)
    assert report.ok, report.problems


class _Rollback(Exception):
    pass


async def test_concurrent_partial_refunds_still_add_up(kassa, client, merchant, auth):
    import asyncio

    await _settle_in(client, auth, "jpy")
    await fx.store(kassa, [Rate("eur", "jpy", Decimal("150.3"), "test", kassa.clock())])
    pi = (await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "5", "currency": "eur", "payment_method": "pm_card_visa",
        "confirm": "true"})).json()

    async def one_cent():
        return await client.post("/v1/refunds", headers=auth,
                                 data={"payment_intent": pi["id"], "amount": "1"})

    answers = await asyncio.gather(*(one_cent() for _ in range(5)))
    assert all(a.status_code == 200 and a.json()["status"] == "succeeded" for a in answers), \
        [a.text for a in answers]
    assert -sum(b["amount"] for b in await _bts(client, auth, "refund")) == 8
    report = await verify(kassa.pool)
    assert report.ok, report.problems
