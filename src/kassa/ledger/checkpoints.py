"""Balance checkpoints: per account, the sum of its entries up to an entry position, rolled
forward off the hot path, so that a balance read is a checkpoint plus the few entries after
it (ARCHITECTURE §2) and a balance at a past moment comes from the same rows.

**Which positions are final.** Entry ids come from a sequence when a row is inserted, but
transactions commit in their own order: a transaction that took id 100 may commit after
one that took id 101. A checkpoint at position P must only be written once no transaction
can still commit an entry with id <= P, or that entry would be missed forever (every
later read starts after P). ``final_position`` finds such a P without any lock a posting
would wait on:

1. In one statement: read V, the highest entry id visible in its snapshot S, and then take
   a fresh transaction id X (``pg_current_xact_id()``; the statement commits at once).
   Transaction ids are handed out in increasing order, so X is above every id handed out
   before S. (Not ``pg_snapshot_xmax(S)``: that is only "latest completed + 1", and a
   transaction that got its id earlier but is still running can be above it.)
2. Every entry with id <= V got its id before the transaction that wrote V committed, so
   before S. Its transaction already had a transaction id then: an entry can only join a
   ledger transaction whose header the same database transaction inserted earlier
   (``kassa_check_same_transaction``), and inserting the header assigns the id (its
   ``created_xid`` is ``pg_current_xact_id()``). So that transaction's id is < X.
3. Wait until ``pg_snapshot_xmin`` of a new snapshot is > X: every transaction with an id
   up to X has then committed or rolled back, and a snapshot taken after that sees every
   entry with id <= V that will ever exist.

A transaction left open holds the horizon back (the pass waits, then gives up and tries
again later) instead of being skipped, as the outbox relay does (db/relay.py). Transaction
ids are the cluster's: a long transaction in another database on the server holds it too.

**Time.** An entry's posting time is its ledger transaction's ``created_at``. Each run
records ``as_of``, the latest posting time it covers (so a checkpoint whose ``as_of`` is
before a moment T holds nothing posted after T), and ``earliest_posted`` of its own
interval (so a read at T knows which later intervals still hold postings at or before T:
a posting's id can be later than another's posted after it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kassa.db.pool import Conn

# one checkpoint writer at a time (pg_try_advisory_xact_lock(class, key)); "kchk"
CHECKPOINT_LOCK = (0x6B63686B, 0)
# entries one run may cover: a long catch-up is many short transactions, not one long one
MAX_RUN_ENTRIES = 1_000_000
END_OF_LEDGER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Run:
    """One checkpoint pass: it covers every entry with id <= ``position`` and summed those in
    ``(previous, position]``."""

    position: int
    previous: int
    entries: int
    accounts: int
    as_of: datetime | None


async def final_position(pool: asyncpg.Pool, *, wait_seconds: float = 5.0,
                         poll_seconds: float = 0.01) -> int | None:
    """The highest entry position no transaction can still commit below (see the module's
    docstring), or None when a transaction stays open longer than ``wait_seconds``."""
    # max(id) is read in the statement's snapshot; the new transaction id is taken after it
    row = await pool.fetchrow(
        "SELECT coalesce(max(id), 0) AS position, pg_current_xact_id()::text AS xid"
        " FROM ledger_entries")
    assert row is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    # a fresh snapshot per poll (autocommit statements on the pool): it must see commits
    while not await pool.fetchval(
            "SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::text::xid8", row["xid"]):
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(poll_seconds)
    position: int = row["position"]
    return position


async def roll_forward(pool: asyncpg.Pool, *, max_entries: int = MAX_RUN_ENTRIES,
                       wait_seconds: float = 5.0) -> Run | None:
    """Write the next checkpoint run up to the final position (at most ``max_entries`` ids
    past the last run); None when there is nothing new, another writer holds the lock, or
    an open transaction holds the horizon back."""
    horizon = await final_position(pool, wait_seconds=wait_seconds)
    if horizon is None:
        return None
    async with pool.acquire() as conn, conn.transaction():
        # The snapshot of this transaction is taken after the wait: it sees every entry
        # with id <= horizon that will ever commit.
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)",
                                   *CHECKPOINT_LOCK):
            return None
        last = await conn.fetchrow(
            "SELECT position, as_of FROM ledger_checkpoint_runs ORDER BY position DESC LIMIT 1")
        previous = last["position"] if last else 0
        position = min(horizon, previous + max_entries)
        if position <= previous:
            return None
        deltas = await conn.fetch(
            "SELECT e.account, e.currency, e.layer, sum(e.amount)::bigint AS amount,"
            " count(*) AS entries, min(t.created_at) AS earliest, max(t.created_at) AS latest"
            " FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id"
            " WHERE e.id > $1 AND e.id <= $2 GROUP BY 1, 2, 3", previous, position)
        entries = sum(d["entries"] for d in deltas)
        earliest = min((d["earliest"] for d in deltas), default=None)
        latest = max((d["latest"] for d in deltas), default=None)
        as_of = max((t for t in (last["as_of"] if last else None, latest) if t is not None),
                    default=None)
        await conn.execute(
            "INSERT INTO ledger_checkpoint_runs (position, previous, as_of, earliest_posted,"
            " entries) VALUES ($1, $2, $3, $4, $5)", position, previous, as_of, earliest,
            entries)
        # Only the accounts this run changed get a row; each adds its delta to its own latest
        # row (one index probe per account).
        await conn.execute(
            "INSERT INTO ledger_checkpoints (account, currency, layer, position, balance)"
            " SELECT d.account, d.currency, d.layer, $1, d.amount + coalesce(("
            "  SELECT c.balance FROM ledger_checkpoints c WHERE c.account = d.account"
            "  AND c.currency = d.currency AND c.layer = d.layer"
            "  ORDER BY c.position DESC LIMIT 1), 0)"
            " FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])"
            "  AS d(account, currency, layer, amount)",
            position, [d["account"] for d in deltas], [d["currency"] for d in deltas],
            [d["layer"] for d in deltas], [d["amount"] for d in deltas])
        return Run(position=position, previous=previous, entries=entries,
                   accounts=len(deltas), as_of=as_of)


# The accounts' (currency, layer) pairs that have checkpoints, found by skipping through the
# primary key (one probe per pair, not one row per run), and each pair's latest checkpoint
# at or before the cut.
_BASE = """
combos AS (
  SELECT f.account, f.currency, f.layer FROM unnest($1::text[]) AS a(account),
   LATERAL (SELECT c.account, c.currency, c.layer FROM ledger_checkpoints c
            WHERE c.account = a.account ORDER BY c.currency, c.layer LIMIT 1) f
  UNION ALL
  SELECT n.account, n.currency, n.layer FROM combos k,
   LATERAL (SELECT c.account, c.currency, c.layer FROM ledger_checkpoints c
            WHERE c.account = k.account AND (c.currency, c.layer) > (k.currency, k.layer)
            ORDER BY c.currency, c.layer LIMIT 1) n),
base AS (
  SELECT k.account, k.currency, k.layer, b.balance FROM combos k, cut,
   LATERAL (SELECT c.balance FROM ledger_checkpoints c WHERE c.account = k.account
            AND c.currency = k.currency AND c.layer = k.layer AND c.position <= cut.position
            ORDER BY c.position DESC LIMIT 1) b)
"""

_SUM = """
SELECT coalesce(b.account, t.account) AS account, coalesce(b.currency, t.currency) AS currency,
 coalesce(b.layer, t.layer) AS layer, (coalesce(b.balance, 0) + coalesce(t.amount, 0))::bigint
 AS total
FROM base b FULL JOIN tail t
 ON t.account = b.account AND t.currency = b.currency AND t.layer = b.layer
"""

# Now: the latest checkpoint plus every entry after it (a range scan of each account's
# newest entries on ledger_entries_account_position).
_CURRENT = f"""
WITH RECURSIVE
cut AS (SELECT coalesce(max(position), 0) AS position FROM ledger_checkpoint_runs),
{_BASE},
tail AS (
  SELECT a.account, e.currency, e.layer, sum(e.amount) AS amount
  FROM unnest($1::text[]) AS a(account), cut,
   LATERAL (SELECT e.currency, e.layer, e.amount FROM ledger_entries e
            WHERE e.account = a.account AND e.id > cut.position OFFSET 0) e
  GROUP BY 1, 2, 3)
{_SUM}"""

# At a moment ($2, exclusive): the latest checkpoint holding nothing posted at or after it,
# plus the entries posted before it in the intervals that can still hold such postings:
# later runs whose earliest posting is before it, and everything after the last run.
_AT = f"""
WITH RECURSIVE
cut AS (SELECT coalesce((SELECT position FROM ledger_checkpoint_runs WHERE as_of < $2
                         ORDER BY as_of DESC, position DESC LIMIT 1), 0) AS position),
ranges AS (
  SELECT r.previous AS lo, r.position AS hi FROM ledger_checkpoint_runs r, cut
  WHERE r.position > cut.position AND r.earliest_posted < $2
  UNION ALL
  SELECT coalesce(max(position), 0), {END_OF_LEDGER} FROM ledger_checkpoint_runs),
{_BASE},
tail AS (
  SELECT a.account, e.currency, e.layer, sum(e.amount) AS amount
  FROM unnest($1::text[]) AS a(account), ranges r,
   -- one range scan per account and interval (the bounds are only known at run time, so
   -- the planner must not be left to scan the account and filter: OFFSET 0 keeps it from
   -- flattening the subquery into such a join), and a primary-key
   -- probe per entry for its posting time, never a scan of all ledger transactions
   LATERAL (SELECT e.currency, e.layer, e.amount FROM ledger_entries e
            WHERE e.account = a.account AND e.id > r.lo AND e.id <= r.hi
            AND (SELECT t.created_at FROM ledger_transactions t
                 WHERE t.id = e.transaction_id) < $2
            OFFSET 0) e
  GROUP BY 1, 2, 3)
{_SUM}"""


async def balances(conn: Conn, accounts: list[str], *, before: datetime | None = None
                   ) -> list[asyncpg.Record]:
    """Balance per (account, currency, layer): of every entry now, or of the entries posted
    before ``before``."""
    if before is None:
        rows: list[asyncpg.Record] = await conn.fetch(_CURRENT, accounts)
    else:
        rows = await conn.fetch(_AT, accounts, before)
    return rows
