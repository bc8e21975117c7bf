"""The ledger's invariants as PostgreSQL enforces them, probed with raw SQL; the payment
row's compare-and-swap under two racing connections; and `kassa ledger verify`.

Rows committed into the shared session database (``dsn``) only touch accounts and sources
that no other check reads (``test:*`` accounts, ``src_*`` sources), so they cannot upset
anyone's verify(). Tests that must break an invariant on purpose get a database of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace

import asyncpg
import pytest

from kassa import bootstrap
from kassa.config import Settings
from kassa.db import ops, units
from kassa.db import payments as payments_db
from kassa.db.pool import create_pool
from kassa.domain.errors import ConcurrentModification
from kassa.domain.money import Money
from kassa.domain.payments import PaymentIntent, PaymentStatus
from kassa.ledger import balances as ledger_balances
from kassa.ledger.verify import verify
from kassa.services import merchants, payments, refunds
from tests.support.databases import migrated_database

ENTRY_SQL = ("INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)"
             " VALUES ($1, $2, $3, $4, $5)")


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


async def header(conn: asyncpg.Connection, *, kind: str = "capture", source: str | None = None,
                 hold_ref: str | None = None, merchant: str = "acct_ledger_test") -> int:
    tx_id: int = await conn.fetchval(
        "INSERT INTO ledger_transactions (kind, merchant_id, source_id, hold_ref)"
        " VALUES ($1, $2, $3, $4) RETURNING id",
        kind, merchant, source or uid("src"), hold_ref)
    return tx_id


async def balanced(conn: asyncpg.Connection, *, amount: int = 100, currency: str = "usd",
                   a: str = "test:a", b: str = "test:b", **kw: str | None) -> int:
    tx_id = await header(conn, **kw)
    await conn.execute(ENTRY_SQL, tx_id, a, currency, "posted", amount)
    await conn.execute(ENTRY_SQL, tx_id, b, currency, "posted", -amount)
    return tx_id


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(dsn)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def entry_tx(conn: asyncpg.Connection) -> int:
    """A committed, balanced ledger transaction on test accounts."""
    async with conn.transaction():
        return await balanced(conn)


# --------------------------------------------------------------------- append-only


async def test_update_of_a_ledger_entry_is_refused(conn, entry_tx):
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await conn.execute("UPDATE ledger_entries SET amount = amount * 2"
                           " WHERE transaction_id = $1", entry_tx)
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE ledger_entries SET account = 'test:c'"
                           " WHERE transaction_id = $1", entry_tx)
    amounts = await conn.fetch("SELECT amount FROM ledger_entries WHERE transaction_id = $1"
                               " ORDER BY amount", entry_tx)
    assert [r["amount"] for r in amounts] == [-100, 100]


async def test_delete_of_a_ledger_entry_is_refused(conn, entry_tx):
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await conn.execute("DELETE FROM ledger_entries WHERE transaction_id = $1", entry_tx)
    assert await conn.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE transaction_id = $1", entry_tx) == 2


@pytest.mark.parametrize("table", ["ledger_entries", "ledger_transactions"])
async def test_truncate_of_the_ledger_is_refused(conn, entry_tx, table):
    # inside a transaction that is always rolled back: if the guard were missing, the
    # shared session database must not lose its ledger
    tr = conn.transaction()
    await tr.start()
    try:
        with pytest.raises(asyncpg.RestrictViolationError, match="TRUNCATE"):
            await conn.execute(f"TRUNCATE {table} CASCADE")
    finally:
        await tr.rollback()
    assert await conn.fetchval("SELECT count(*) FROM ledger_entries WHERE transaction_id = $1",
                               entry_tx) == 2


async def test_update_and_delete_of_a_ledger_transaction_are_refused(conn, entry_tx):
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE ledger_transactions SET source_id = 'other' WHERE id = $1",
                           entry_tx)
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE ledger_transactions SET hold_ref = 'ch_x' WHERE id = $1",
                           entry_tx)
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("DELETE FROM ledger_transactions WHERE id = $1", entry_tx)
    assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE id = $1",
                               entry_tx) == 1


# --------------------------------------------------------------------- balance at COMMIT


async def test_a_balanced_transaction_commits(conn):
    async with conn.transaction():
        tx_id = await header(conn)
        await conn.execute(ENTRY_SQL, tx_id, "test:a", "usd", "posted", 250)
        await conn.execute(ENTRY_SQL, tx_id, "test:b", "usd", "posted", -200)
        await conn.execute(ENTRY_SQL, tx_id, "test:c", "usd", "posted", -50)
        await conn.execute(ENTRY_SQL, tx_id, "test:a", "jpy", "pending", 7)
        await conn.execute(ENTRY_SQL, tx_id, "test:b", "jpy", "pending", -7)
    assert await conn.fetchval("SELECT count(*) FROM ledger_entries WHERE transaction_id = $1",
                               tx_id) == 5


@pytest.mark.parametrize("entries", [
    [("test:a", "usd", "posted", 100), ("test:b", "usd", "posted", -99)],
    [("test:a", "usd", "posted", 100), ("test:b", "eur", "posted", -100)],  # per currency
    [("test:a", "usd", "posted", 100), ("test:b", "usd", "pending", -100)],  # per layer
    [("test:a", "usd", "posted", 100), ("test:b", "usd", "posted", -100),
     ("test:c", "kwd", "posted", 1), ("test:d", "kwd", "posted", 1)],
], ids=["amount", "currency", "layer", "second-currency"])
async def test_an_unbalanced_transaction_fails_at_commit(conn, entries):
    source = uid("src")
    tr = conn.transaction()
    await tr.start()
    tx_id = await header(conn, source=source)
    for account, currency, layer, amount in entries:
        # the check is deferred: every statement succeeds until COMMIT
        await conn.execute(ENTRY_SQL, tx_id, account, currency, layer, amount)
    with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
        await tr.commit()
    assert not conn.is_in_transaction()  # the server rolled it back
    assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE source_id = $1",
                               source) == 0


async def test_a_transaction_with_a_single_entry_fails_at_commit(conn):
    source = uid("src")
    tr = conn.transaction()
    await tr.start()
    tx_id = await header(conn, source=source)
    await conn.execute(ENTRY_SQL, tx_id, "test:a", "usd", "posted", 100)
    with pytest.raises(asyncpg.CheckViolationError, match="at least 2"):
        await tr.commit()
    assert not conn.is_in_transaction()
    assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE source_id = $1",
                               source) == 0


async def test_a_zero_amount_entry_is_refused(conn):
    tr = conn.transaction()
    await tr.start()
    try:
        tx_id = await header(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(ENTRY_SQL, tx_id, "test:a", "usd", "posted", 0)
    finally:
        await tr.rollback()


async def test_a_transaction_without_entries_fails_at_commit(server_url):
    # on a database of its own: if it commits it is exactly what verify() reports
    with migrated_database(server_url, "kassa_ledger") as url:
        c = await asyncpg.connect(url)
        try:
            tr = c.transaction()
            await tr.start()
            await header(c, kind="authorization_release", source="ch_x", hold_ref="ch_x")
            with pytest.raises(asyncpg.CheckViolationError):
                await tr.commit()
        finally:
            await c.close()


# --------------------------------------------------------------------- posting once


async def test_a_second_posting_for_the_same_source_is_refused(conn):
    source = uid("src_pi")
    async with conn.transaction():
        await balanced(conn, kind="capture", source=source)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with conn.transaction():
            await balanced(conn, kind="capture", source=source)
    # another kind of money event for the same source is a different posting
    async with conn.transaction():
        await balanced(conn, kind="refund", source=source)
    kinds = await conn.fetch("SELECT kind FROM ledger_transactions WHERE source_id = $1"
                             " ORDER BY kind", source)
    assert [r["kind"] for r in kinds] == ["capture", "refund"]


async def test_a_hold_is_resolved_once(conn):
    hold = uid("src_ch")
    async with conn.transaction():
        await balanced(conn, kind="authorization_hold", source=hold)
    async with conn.transaction():
        await balanced(conn, kind="capture", source=uid("src_pi"), hold_ref=hold)
    # a release (void) of the same hold after its capture
    with pytest.raises(asyncpg.UniqueViolationError, match="hold_resolved_once"):
        async with conn.transaction():
            await balanced(conn, kind="authorization_release", source=hold, hold_ref=hold)
    # nor a second capture from another source
    with pytest.raises(asyncpg.UniqueViolationError, match="hold_resolved_once"):
        async with conn.transaction():
            await balanced(conn, kind="capture", source=uid("src_pi"), hold_ref=hold)
    assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE hold_ref = $1",
                               hold) == 1


# --------------------------------------------------------------------- payment_intents CHECKs


def pi_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": uid("pi_check"), "merchant_id": "acct_check", "amount": 1000, "currency": "usd",
        "status": "requires_payment_method", "capture_method": "automatic",
        "amount_capturable": 0, "amount_received": 0, "amount_refunded": 0, "created": 1,
    }
    row.update(overrides)
    return row


async def insert_pi(conn: asyncpg.Connection, row: dict[str, object]) -> None:
    cols = list(row)
    await conn.execute(
        f"INSERT INTO payment_intents ({', '.join(cols)})"
        f" VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})", *row.values())


@pytest.mark.parametrize("overrides", [
    {"status": "succeeded", "amount_received": 1000, "amount_refunded": 1001},
    {"status": "succeeded", "amount_received": 400, "amount_refunded": 401},
    {"amount_refunded": 1},  # refunded without anything received
    {"status": "succeeded", "amount_received": 1001},
    {"amount_received": -1},
    {"status": "requires_capture", "amount_capturable": 1001},
    {"amount_capturable": -1},
    {"amount_refunded": -1},
    {"status": "succeeded", "amount_received": 0},
    {"amount": 0},
    {"amount": -5},
    {"amount": 100_000_000},
    {"currency": "USD"},
    {"currency": "us"},
    {"status": "paid"},
    {"capture_method": "later"},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
async def test_payment_intent_checks_refuse_bad_rows(conn, overrides):
    row = pi_row(**overrides)
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_pi(conn, row)
    assert await conn.fetchval("SELECT count(*) FROM payment_intents WHERE id = $1",
                               row["id"]) == 0


async def test_payment_intent_checks_also_refuse_bad_updates(conn):
    # rolled back at the end: a succeeded row without a capture posting is exactly what
    # verify() reports, and the session database is shared
    tr = conn.transaction()
    await tr.start()
    try:
        row = pi_row(status="succeeded", amount_received=600, amount_refunded=100)
        await insert_pi(conn, row)
        for sql in ("UPDATE payment_intents SET amount_refunded = 601 WHERE id = $1",
                    "UPDATE payment_intents SET amount_received = 99 WHERE id = $1",
                    "UPDATE payment_intents SET amount_received = 0 WHERE id = $1",
                    "UPDATE payment_intents SET amount_capturable = 1001 WHERE id = $1"):
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():  # a savepoint per refused statement
                    await conn.execute(sql, row["id"])
        # the boundary is fine
        await conn.execute("UPDATE payment_intents SET amount_refunded = 600 WHERE id = $1",
                           row["id"])
    finally:
        await tr.rollback()


# --------------------------------------------------------------------- balances


async def test_account_balances_equal_the_sum_of_entries(conn):
    accounts = [f"test:bal:{uuid.uuid4().hex[:8]}:{n}" for n in range(3)]
    a, b, c = accounts
    movements = [
        (a, b, "usd", "posted", 1000), (b, c, "usd", "posted", 250),
        (a, c, "jpy", "posted", 7), (c, a, "usd", "posted", 40),
        (a, b, "usd", "pending", 500), (b, a, "usd", "pending", 500), (a, b, "kwd", "posted", 3),
    ]
    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    async with conn.transaction():
        for dr, cr, currency, layer, amount in movements:
            tx_id = await header(conn)
            await conn.execute(ENTRY_SQL, tx_id, dr, currency, layer, amount)
            await conn.execute(ENTRY_SQL, tx_id, cr, currency, layer, -amount)
            expected[(dr, currency, layer)] += amount
            expected[(cr, currency, layer)] -= amount
    rows = await ledger_balances.account_balances(conn, accounts)
    got = {(r["account"], r["currency"], r["layer"]): r["total"] for r in rows}
    assert got == dict(expected)  # pending nets to 0 but is still reported
    raw = await conn.fetch(
        "SELECT account, currency, layer, sum(amount) AS s FROM ledger_entries"
        " WHERE account = ANY($1::text[]) GROUP BY 1, 2, 3", accounts)
    assert got == {(r["account"], r["currency"], r["layer"]): r["s"] for r in raw}
    assert sum(got.values()) == 0
    assert await ledger_balances.account_balances(conn, ["test:no-such-account"]) == []


# --------------------------------------------------------------------- CAS race


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=2, max_size=6)
    try:
        yield p
    finally:
        await p.close()


async def insert_payment(conn: asyncpg.Connection | asyncpg.Pool, p: PaymentIntent) -> None:
    await units.apply(conn, [ops.InsertPayment.of(p)])


async def update_payment(conn: asyncpg.Connection | asyncpg.Pool, p: PaymentIntent) -> None:
    """Compare-and-swap on version: the caller read version ``p.version``."""
    version = p.version
    try:
        await units.apply(conn, [ops.UpdatePayment.of(p)])
    except BaseException:
        p.version = version
        raise


async def new_payment(pool: asyncpg.Pool) -> PaymentIntent:
    p = PaymentIntent(id=uid("pi_race"), merchant_id="acct_race", amount=Money(1000, "usd"),
                      status=PaymentStatus.REQUIRES_PAYMENT_METHOD, capture_method="manual",
                      created=1)
    await insert_payment(pool, p)
    loaded = await payments_db.get_payment(pool, merchant_id="acct_race", payment_id=p.id)
    assert loaded is not None and loaded.version == 0
    return loaded


async def wait_until_blocked(observer: asyncpg.Pool, pid: int) -> None:
    for _ in range(500):
        if await observer.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never blocked on the row lock")


async def test_cas_second_writer_waits_then_loses(pool):
    p = await new_payment(pool)
    first, second = await pool.acquire(), await pool.acquire()
    try:
        a = await payments_db.get_payment(first, merchant_id=p.merchant_id, payment_id=p.id)
        b = await payments_db.get_payment(second, merchant_id=p.merchant_id, payment_id=p.id)
        assert a is not None and b is not None and a.version == b.version == 0
        a.attach_payment_method("pm_card_visa")
        b.cancel(reason="abandoned", now=2)
        tr_a, tr_b = first.transaction(), second.transaction()
        await tr_a.start()
        await tr_b.start()
        await update_payment(first, a)  # holds the row lock
        racer = asyncio.create_task(update_payment(second, b))
        await wait_until_blocked(pool, second.get_server_pid())
        assert not racer.done()
        await tr_a.commit()
        with pytest.raises(ConcurrentModification):
            await racer
        await tr_b.rollback()
    finally:
        await pool.release(first)
        await pool.release(second)
    final = await payments_db.get_payment(pool, merchant_id=p.merchant_id, payment_id=p.id)
    assert final is not None
    assert (final.status, final.version) == (PaymentStatus.REQUIRES_CONFIRMATION, 1)


async def test_cas_waiting_writer_wins_when_the_first_rolls_back(pool):
    p = await new_payment(pool)
    first, second = await pool.acquire(), await pool.acquire()
    try:
        a = await payments_db.get_payment(first, merchant_id=p.merchant_id, payment_id=p.id)
        b = await payments_db.get_payment(second, merchant_id=p.merchant_id, payment_id=p.id)
        assert a is not None and b is not None
        a.attach_payment_method("pm_card_visa")
        b.cancel(reason=None, now=2)
        tr_a, tr_b = first.transaction(), second.transaction()
        await tr_a.start()
        await tr_b.start()
        await update_payment(first, a)
        racer = asyncio.create_task(update_payment(second, b))
        await wait_until_blocked(pool, second.get_server_pid())
        await tr_a.rollback()
        await racer
        await tr_b.commit()
    finally:
        await pool.release(first)
        await pool.release(second)
    final = await payments_db.get_payment(pool, merchant_id=p.merchant_id, payment_id=p.id)
    assert final is not None and (final.status, final.version) == (PaymentStatus.CANCELED, 1)


async def test_cas_exactly_one_of_several_racers_wins(pool):
    for round_ in range(10):
        p = await new_payment(pool)
        racers = 2 if round_ % 2 else 4
        outcomes: list[str] = []

        async def attempt(n: int, p: PaymentIntent = p, outcomes: list[str] = outcomes) -> None:
            async with pool.acquire() as c, c.transaction():
                mine = await payments_db.get_payment(c, merchant_id=p.merchant_id, payment_id=p.id)
                assert mine is not None
                mine.version = 0  # every racer read version 0
                mine.description = f"racer {n}"
                try:
                    await update_payment(c, mine)
                    await asyncio.sleep(0.005)  # hold the lock so the others queue up
                    outcomes.append(f"won {n}")
                except ConcurrentModification:
                    outcomes.append("lost")

        await asyncio.gather(*(attempt(n) for n in range(racers)))
        winners = [o for o in outcomes if o.startswith("won")]
        assert len(winners) == 1 and outcomes.count("lost") == racers - 1, outcomes
        final = await payments_db.get_payment(pool, merchant_id=p.merchant_id, payment_id=p.id)
        assert final is not None and final.version == 1
        assert final.description == "racer " + winners[0].split()[1]


# --------------------------------------------------------------------- verify


@pytest.fixture
async def private_kassa(server_url: str, settings: Settings) -> AsyncIterator[SimpleNamespace]:
    """kassa on its own database, with a little real traffic: captures (automatic, partial
    manual), a void, a decline and refunds."""
    with migrated_database(server_url, "kassa_ledger") as url:
        k, close = await bootstrap.build(settings, url, pool_size=4)
        try:
            m = (await merchants.create_merchant(k, name="verify"))["merchant_id"]
            auto = await payments.create(k, merchant_id=m, amount=2000, currency="usd",
                                         payment_method="pm_card_visa", confirm=True)
            await refunds.create(k, merchant_id=m, payment_intent=auto["id"], amount=500)
            manual = await payments.create(k, merchant_id=m, amount=3000, currency="kwd",
                                           payment_method="pm_card_visa",
                                           capture_method="manual", confirm=True)
            await payments.capture(k, merchant_id=m, payment_id=manual["id"],
                                   amount_to_capture=1200)
            await refunds.create(k, merchant_id=m, payment_intent=manual["id"])
            voided = await payments.create(k, merchant_id=m, amount=900, currency="jpy",
                                           payment_method="pm_card_visa",
                                           capture_method="manual", confirm=True)
            await payments.cancel(k, merchant_id=m, payment_id=voided["id"])
            held = await payments.create(k, merchant_id=m, amount=700, currency="usd",
                                         payment_method="pm_card_visa",
                                         capture_method="manual", confirm=True)
            assert held["status"] == "requires_capture"
            yield SimpleNamespace(pool=k.pool, merchant=m, held=held["id"], auto=auto["id"])
        finally:
            await close()


async def test_verify_is_ok_on_a_clean_database(private_kassa):
    report = await verify(private_kassa.pool)
    assert report.ok, report.problems
    assert report.checked["payments"] == 4
    assert report.checked["transactions"] >= 8


async def test_verify_reports_received_money_without_a_capture_posting(private_kassa):
    k = private_kassa
    pi = uid("pi_ghost")
    await insert_pi(k.pool, pi_row(id=pi, merchant_id=k.merchant, status="succeeded",
                                   amount_received=1000))
    report = await verify(k.pool)
    assert not report.ok
    assert any(pi in p and "amount_received=1000" in p and "captured 0" in p
               for p in report.problems), report.problems


async def test_verify_reports_a_refund_without_a_ledger_posting(private_kassa):
    k = private_kassa
    await k.pool.execute(
        "INSERT INTO refunds (id, merchant_id, payment_intent_id, amount, currency, status,"
        " created) VALUES ($1, $2, $3, 100, 'usd', 'succeeded', 1)",
        uid("re_ghost"), k.merchant, k.auto)
    report = await verify(k.pool)
    assert any(k.auto in p and "succeeded refunds=600" in p and "ledger refunded 500" in p
               for p in report.problems), report.problems


async def test_verify_reports_balance_transactions_out_of_step_with_the_ledger(private_kassa):
    k = private_kassa
    tx_id = await k.pool.fetchval("SELECT min(id) FROM ledger_transactions")
    await k.pool.execute(
        "INSERT INTO balance_transactions (id, merchant_id, amount, fee, net, currency, type,"
        " source, status, available_on, created, ledger_transaction_id)"
        " VALUES ($1, $2, 50, 0, 50, 'usd', 'adjustment', 'x', 'available', 1, 1, $3)",
        uid("txn_ghost"), k.merchant, tx_id)
    report = await verify(k.pool)
    assert any(k.merchant in p and "balance transactions net" in p
               for p in report.problems), report.problems


async def test_verify_reports_a_hold_of_a_finished_payment_never_resolved(private_kassa):
    k = private_kassa
    # the row says canceled, but no void released the hold
    await k.pool.execute("UPDATE payment_intents SET status = 'canceled', amount_capturable = 0"
                         " WHERE id = $1", k.held)
    report = await verify(k.pool)
    assert any("never resolved although the payment is canceled" in p
               for p in report.problems), report.problems


async def test_entries_cannot_be_appended_to_a_committed_transaction(private_kassa):
    k = private_kassa
    # even a balanced pair is refused: a committed ledger transaction is closed
    tx_id = await k.pool.fetchval(
        "SELECT id FROM ledger_transactions WHERE kind = 'capture' AND source_id = $1",
        k.auto)
    with pytest.raises(asyncpg.RestrictViolationError):
        async with k.pool.acquire() as c, c.transaction():
            await c.execute(ENTRY_SQL, tx_id, "psp:simulator:receivable", "usd", "posted", 1)
            await c.execute(ENTRY_SQL, tx_id, "revenue:fees", "usd", "posted", -1)
    assert (await verify(k.pool)).ok

