"""Balance checkpoints (ledger/checkpoints.py) on real PostgreSQL: a checkpoint plus the
entries after it equals the full sum of entries, now and at any past moment (a property);
a checkpoint never covers a position an open transaction can still commit below (two and
many connections racing); and `verify` recomputes every checkpoint from the journal.

The module has a database of its own: checkpoint runs cover every entry of the database,
and two tests here break a checkpoint on purpose (each in a throw-away database).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from kassa.db.pool import create_pool
from kassa.ledger import checkpoints
from kassa.ledger.verify import verify
from tests.support.databases import migrated_database

ENTRY_SQL = ("INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)"
             " VALUES ($1, $2, $3, $4, $5) RETURNING id")
Key = tuple[str, str, str]


@pytest.fixture(scope="module")
async def pool(server_url: str) -> AsyncIterator[asyncpg.Pool]:
    with migrated_database(server_url, "kassa_checkpoints") as url:
        p = await create_pool(url, min_size=2, max_size=12)
        try:
            yield p
        finally:
            await p.close()


@pytest.fixture
async def own_pool(server_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A throw-away database for a test that breaks a checkpoint on purpose."""
    with migrated_database(server_url, "kassa_checkpoints_broken") as url:
        p = await create_pool(url, min_size=1, max_size=4)
        try:
            yield p
        finally:
            await p.close()


async def header(conn: asyncpg.Connection, posted: datetime | None = None) -> int:
    """A ledger transaction's header: the database transaction has its id from here on."""
    tx_id: int = await conn.fetchval(
        "INSERT INTO ledger_transactions (kind, merchant_id, source_id, created_at)"
        " VALUES ('capture', 'acct_checkpoints', $1, coalesce($2, now())) RETURNING id",
        f"src_{uuid.uuid4().hex}", posted)
    return tx_id


async def post(conn: asyncpg.Connection, *, debit: str, credit: str, amount: int,
               currency: str = "usd", posted: datetime | None = None,
               tx_id: int | None = None, pause: float = 0.0) -> list[int]:
    """One balanced ledger transaction (posted at ``posted``, default now; under the header
    ``tx_id`` when given), ``pause`` seconds between its header and its entries; its entry
    ids. Inside a transaction the caller holds open it is a savepoint of it."""
    async with conn.transaction():
        if tx_id is None:
            tx_id = await header(conn, posted)
        await asyncio.sleep(pause)
        return [await conn.fetchval(ENTRY_SQL, tx_id, debit, currency, "posted", amount),
                await conn.fetchval(ENTRY_SQL, tx_id, credit, currency, "posted", -amount)]


async def journal_sums(conn: asyncpg.Pool | asyncpg.Connection, accounts: list[str],
                       before: datetime | None = None) -> dict[Key, int]:
    """The oracle: every entry summed, no checkpoint involved."""
    rows = await conn.fetch(
        "SELECT e.account, e.currency, e.layer, sum(e.amount)::bigint AS total"
        " FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id"
        " WHERE e.account = ANY($1::text[]) AND ($2::timestamptz IS NULL OR t.created_at < $2)"
        " GROUP BY 1, 2, 3", accounts, before)
    return {(r["account"], r["currency"], r["layer"]): r["total"] for r in rows if r["total"]}


async def read(conn: asyncpg.Pool | asyncpg.Connection, accounts: list[str],
               before: datetime | None = None) -> dict[Key, int]:
    rows = await checkpoints.balances(conn, accounts, before=before)
    return {(r["account"], r["currency"], r["layer"]): r["total"] for r in rows if r["total"]}


async def roll_all(pool: asyncpg.Pool, **kw: float) -> int:
    # the horizon is the cluster's: a long transaction in another database on a shared
    # server holds it back too, so wait generously
    kw.setdefault("wait_seconds", 60.0)
    runs = 0
    while await checkpoints.roll_forward(pool, **kw) is not None:
        runs += 1
    return runs


# --------------------------------------------------------------------- basics


async def test_a_read_is_the_checkpoint_plus_the_entries_after_it(pool):
    accounts = [f"cp:{uuid.uuid4().hex[:8]}:{n}" for n in range(3)]
    async with pool.acquire() as conn:
        for n in range(10):
            await post(conn, debit=accounts[n % 2], credit=accounts[2], amount=100 + n,
                       currency=("usd", "jpy")[n % 2])
    assert await roll_all(pool) >= 1
    run = await pool.fetchrow(
        "SELECT * FROM ledger_checkpoint_runs ORDER BY position DESC LIMIT 1")
    rows = await pool.fetch("SELECT * FROM ledger_checkpoints WHERE account = ANY($1)"
                            " AND position = $2", accounts, run["position"])
    assert len(rows) == 4  # two debit accounts, one currency each; the credit in two
    async with pool.acquire() as conn:
        await post(conn, debit=accounts[0], credit=accounts[2], amount=7)  # the tail
    assert await read(pool, accounts) == await journal_sums(pool, accounts)
    assert (await read(pool, accounts))[(accounts[0], "usd", "posted")] == 100 + 102 + 104 + \
        106 + 108 + 7
    assert (await verify(pool)).ok


async def test_a_balance_at_a_moment_uses_the_checkpoint_before_it(pool):
    a, b = f"cp:{uuid.uuid4().hex[:8]}:a", f"cp:{uuid.uuid4().hex[:8]}:b"
    t0 = datetime(2003, 5, 1, tzinfo=UTC)
    async with pool.acquire() as conn:
        await post(conn, debit=a, credit=b, amount=10, posted=t0)
        await post(conn, debit=a, credit=b, amount=20, posted=t0 + timedelta(seconds=10))
        await roll_all(pool)
        # posted at an earlier time but with a later id: a read at t0+5 must still find it
        await post(conn, debit=a, credit=b, amount=40, posted=t0 + timedelta(seconds=5))
        await roll_all(pool)
        await post(conn, debit=a, credit=b, amount=80, posted=t0 + timedelta(seconds=20))
    at = {s: (await read(pool, [a], t0 + timedelta(seconds=s))).get((a, "usd", "posted"), 0)
          for s in (0, 1, 6, 11, 21)}
    assert at == {0: 0, 1: 10, 6: 50, 11: 70, 21: 150}


# --------------------------------------------------------------------- property

post_op = st.tuples(st.just("post"), st.integers(0, 3), st.integers(0, 3),
                    st.integers(1, 10_000), st.sampled_from(["usd", "jpy"]),
                    st.integers(0, 1000))
checkpoint_op = st.tuples(st.just("checkpoint"), st.integers(1, 6))
history = st.lists(st.one_of(post_op, post_op, checkpoint_op), min_size=1, max_size=30)
EXAMPLE = [0]


@hypothesis.settings(max_examples=40, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(ops=history, moments=st.lists(st.integers(-1, 1001), min_size=1, max_size=8))
async def test_checkpoint_plus_tail_is_the_full_sum_at_any_moment(pool, ops, moments):
    """Random postings (posting times out of id order) and checkpoint runs (some covering
    only part of what is final): the balance now and at every moment equals the journal's
    sum of what was posted before it."""
    EXAMPLE[0] += 1
    prefix = f"p{EXAMPLE[0]}:{uuid.uuid4().hex[:6]}"
    accounts = [f"{prefix}:{n}" for n in range(4)]
    base = datetime(2010, 1, 1, tzinfo=UTC) + timedelta(seconds=EXAMPLE[0] * 10_000)
    async with pool.acquire() as conn:
        for op in ops:
            if op[0] == "post":
                _, debit, credit, amount, currency, offset = op
                if debit == credit:
                    credit = (credit + 1) % 4
                await post(conn, debit=accounts[debit], credit=accounts[credit], amount=amount,
                           currency=currency, posted=base + timedelta(seconds=offset))
            else:
                await checkpoints.roll_forward(pool, max_entries=op[1])
    assert await read(pool, accounts) == await journal_sums(pool, accounts)
    for m in moments:
        before = base + timedelta(seconds=m)
        assert await read(pool, accounts, before) == await journal_sums(pool, accounts,
                                                                         before), m


# --------------------------------------------------------------------- concurrency


async def test_an_open_transaction_below_the_horizon_holds_the_checkpoint_back(pool):
    await roll_all(pool)
    a, b = f"cp:{uuid.uuid4().hex[:8]}:a", f"cp:{uuid.uuid4().hex[:8]}:b"
    slow, fast = await pool.acquire(), await pool.acquire()
    try:
        tx = slow.transaction()
        await tx.start()
        low = await post(slow, debit=a, credit=b, amount=5)  # ids taken, not committed
        async with fast.transaction():
            high = await post(fast, debit=a, credit=b, amount=7)  # committed above them
        visible = await pool.fetchval("SELECT max(id) FROM ledger_entries")
        assert max(low) < min(high) <= visible  # a horizon of "the highest id" would skip low
        assert await checkpoints.roll_forward(pool, wait_seconds=0.3) is None
        await tx.commit()
    finally:
        await pool.release(slow)
        await pool.release(fast)
    run = await checkpoints.roll_forward(pool)
    assert run is not None and run.position >= max(high) and run.entries == 4
    assert await read(pool, [a, b]) == {(a, "usd", "posted"): 12, (b, "usd", "posted"): -12}
    assert (await verify(pool)).ok


async def test_an_older_transaction_committing_higher_ids_does_not_open_the_horizon(pool):
    """The trap of ``pg_snapshot_xmax``: it is "latest completed + 1". Here the transaction
    with the older id commits the higher entry ids while a younger one still holds lower
    ones: on a quiet server every transaction below xmax has then finished, yet the lower
    ids are not final. (xmax is cluster-wide: another database's commits can move it past
    the younger transaction, so the test does not insist on the trap, only on the outcome.)"""
    await roll_all(pool)
    a, b = f"cp:{uuid.uuid4().hex[:8]}:a", f"cp:{uuid.uuid4().hex[:8]}:b"
    older, younger = await pool.acquire(), await pool.acquire()
    try:
        old_tx, young_tx = older.transaction(), younger.transaction()
        await old_tx.start()
        await young_tx.start()
        old_header = await header(older)
        low = await post(younger, debit=a, credit=b, amount=5)
        high = await post(older, debit=a, credit=b, amount=7, tx_id=old_header)
        await old_tx.commit()
        assert max(low) < min(high)
        assert await checkpoints.roll_forward(pool, wait_seconds=0.3) is None
        await young_tx.commit()
    finally:
        await pool.release(older)
        await pool.release(younger)
    assert await checkpoints.roll_forward(pool) is not None
    assert await read(pool, [a, b]) == {(a, "usd", "posted"): 12, (b, "usd", "posted"): -12}
    report = await verify(pool)
    assert report.ok, report.problems


async def test_postings_racing_checkpoint_runs_are_never_missed(pool):
    """Posters on their own connections hold their ids open for random moments (some roll
    back) while checkpoint runs are written as fast as they can: no run covers a position
    below which an entry commits afterwards (verify recounts each run's interval), and the
    balances equal the journal."""
    accounts = [f"race:{uuid.uuid4().hex[:6]}:{n}" for n in range(4)]
    rng = random.Random(12)
    done = asyncio.Event()
    committed: dict[str, int] = defaultdict(int)

    async def poster(seed: int) -> None:
        r = random.Random(seed)
        async with pool.acquire() as conn:
            for _ in range(25):
                debit, credit = r.sample(accounts, 2)
                amount = r.randint(1, 1000)
                tx = conn.transaction()
                await tx.start()
                # transaction ids and entry ids in different orders; commits in a third
                await post(conn, debit=debit, credit=credit, amount=amount,
                           pause=r.random() * 0.01)
                await asyncio.sleep(r.random() * 0.02)
                if r.random() < 0.1:
                    await tx.rollback()
                    continue
                await tx.commit()
                committed[debit] += amount
                committed[credit] -= amount

    async def checkpointer() -> int:
        runs = 0
        while not done.is_set():
            if await checkpoints.roll_forward(pool, max_entries=rng.randint(1, 40),
                                              wait_seconds=2.0) is not None:
                runs += 1
            await asyncio.sleep(0)
        return runs

    writer = asyncio.create_task(checkpointer())
    await asyncio.gather(*(poster(n) for n in range(8)))
    done.set()
    runs_during = await writer
    await roll_all(pool)
    assert runs_during >= 5  # the runs really raced the postings
    report = await verify(pool)
    assert report.ok, report.problems
    expected = {(acct, "usd", "posted"): total for acct, total in committed.items() if total}
    assert await read(pool, accounts) == expected == await journal_sums(pool, accounts)


# --------------------------------------------------------------------- verify


async def test_verify_flags_a_checkpoint_that_disagrees_with_the_journal(own_pool):
    async with own_pool.acquire() as conn:
        await post(conn, debit="t:a", credit="t:b", amount=50)
    await roll_all(own_pool)
    assert (await verify(own_pool)).ok
    # the checkpoint tables are derived data the serving role may write: a bad write is
    # caught by verify, not by a trigger
    await own_pool.execute("UPDATE ledger_checkpoints SET balance = balance + 1"
                           " WHERE account = 't:a'")
    report = await verify(own_pool)
    assert [p for p in report.problems if p.startswith("checkpoint t:a usd posted")] == [
        p for p in report.problems if "checkpoint" in p]
    assert any("51 but the journal sums to 50" in p for p in report.problems)


async def test_verify_flags_a_run_that_missed_an_entry_committed_below_it(own_pool):
    """What a writer with an unsafe horizon would leave: a run whose position covers an
    entry that was not committed yet when the run summed its interval."""
    async with own_pool.acquire() as conn:
        missed = await post(conn, debit="t:a", credit="t:b", amount=30)
        seen = await post(conn, debit="t:a", credit="t:b", amount=5)
        await conn.execute(
            "INSERT INTO ledger_checkpoint_runs (position, previous, as_of, earliest_posted,"
            " entries) SELECT $1, 0, max(created_at), max(created_at), 2"
            " FROM ledger_transactions", max(seen))
        await conn.execute(
            "INSERT INTO ledger_checkpoints (account, currency, layer, position, balance)"
            " VALUES ('t:a', 'usd', 'posted', $1, 5), ('t:b', 'usd', 'posted', $1, -5)",
            max(seen))
    assert max(missed) < max(seen)
    report = await verify(own_pool)
    assert any(p.startswith(f"checkpoint run at entry {max(seen)}: 2 entries")
               and "the journal has 4" in p for p in report.problems), report.problems
    assert any("checkpoint t:a usd posted" in p and "5 but the journal sums to 35" in p
               for p in report.problems), report.problems
