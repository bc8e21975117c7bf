"""Balance reads against history: one merchant with N ledger entries in its accounts (default
10,000,000), its balance read as the full sum of its entries (what kassa did before
checkpoints) and as the latest checkpoint plus the entries after it, beside a merchant with
1,000 entries; and a point-in-time read from the middle of the history.

    python -m bench.balances [N]

The history is written server-side in bulk (generate_series, chunks of one transaction each):
each payment is a capture (Dr psp receivable / Cr merchant pending) and its availability move
(Dr merchant pending / Cr merchant available), so 3 of its 4 entries are the merchant's, one
posting second apart. Chunks run with ``session_replication_role = replica`` (superuser; skips
the per-row triggers) and are proven balanced with one query each instead. Then the
checkpoints are rolled forward (timed), 1,000 postings are added after them (the tail a worker
leaves between passes), and each read shape is timed 200 times (p50/p99, milliseconds).
The checkpoint invariants of `kassa ledger verify` run at the end, timed (the synthetic
history has no balance transactions, so the rest of verify does not apply).
Uses KASSA_BENCH_DATABASE_URL's server, or a durable embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psycopg

from bench.stack import analyze, log, migrated_database, start_server
from kassa.db.pool import create_pool
from kassa.domain import ledger
from kassa.ledger import balances, checkpoints, invariants

BIG, SMALL = "acct_bench_big", "acct_bench_small"
CHUNK = 250_000  # payments per transaction
START = 1_600_000_000  # the first posting's unix second
RUN_ENTRIES = 20_000

LOAD = """
WITH tx AS (
  INSERT INTO ledger_transactions (kind, merchant_id, source_id, created_at)
  SELECT k.kind, %(m)s, k.kind || ':' || g || ':' || %(m)s, to_timestamp(%(start)s + g)
    FROM generate_series(%(lo)s::bigint, %(hi)s - 1) AS g
   CROSS JOIN (VALUES (1, 'capture'), (2, 'availability')) AS k(n, kind)
   -- ids in posting order, as the API writes them (within a second or so)
   ORDER BY g, k.n
  RETURNING id, kind, split_part(source_id, ':', 2)::bigint AS g)
INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)
SELECT tx.id, e.account, 'usd', 'posted', e.amount
  FROM tx, LATERAL (SELECT 100 + (tx.g * 7919) %% 99900 AS amount) AS a,
  LATERAL (VALUES
    (CASE tx.kind WHEN 'capture' THEN 'psp:simulator:receivable'
                  ELSE 'merchant:' || %(m)s || ':pending' END, a.amount),
    (CASE tx.kind WHEN 'capture' THEN 'merchant:' || %(m)s || ':pending'
                  ELSE 'merchant:' || %(m)s || ':available' END, -a.amount)) AS e(account, amount)
 ORDER BY tx.id
"""

BALANCED = """
SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries WHERE id > %(after)s
  GROUP BY transaction_id HAVING sum(amount) <> 0 OR count(*) <> 2) AS bad
"""

# The synthetic history has no balance transactions (merchant_balance_mismatches would say
# so): the bench checks and times the checkpoint invariants only.
CHECKPOINT_INVARIANTS = ("checkpoint_mismatches", "checkpoint_run_mismatches")

# What GET /v1/balance read before checkpoints: every entry of the merchant's accounts.
FULL_SUM = ("SELECT account, currency, layer, sum(amount)::bigint AS total FROM ledger_entries"
            " WHERE account = ANY($1::text[]) GROUP BY account, currency, layer")


def load(dsn: str, merchant: str, payments: int, *, first: int = 0) -> None:
    with psycopg.connect(dsn) as conn:
        for lo in range(first, first + payments, CHUNK):
            hi = min(lo + CHUNK, first + payments)
            with conn.transaction():
                after = conn.execute("SELECT coalesce(max(id), 0) FROM ledger_entries"
                                     ).fetchone()[0]  # type: ignore[index]
                with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                    with conn.transaction():
                        conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(LOAD, {"m": merchant, "lo": lo, "hi": hi, "start": START})
                bad = conn.execute(BALANCED, {"after": after}).fetchone()[0]  # type: ignore[index]
                assert bad == 0, f"{bad} unbalanced transactions"
            if (hi - first) % (4 * CHUNK) == 0 or hi == first + payments:
                log(f"{merchant}: {hi - first:,} payments ({3 * (hi - first):,} merchant entries)")


def accounts(merchant: str) -> list[str]:
    return [ledger.merchant_available(merchant), ledger.merchant_pending(merchant)]


async def timed(label: str, read, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    await read()  # warm the plan and the cache
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await read()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    out = {"p50_ms": round(statistics.median(samples), 3),
           "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 3), "reads": n}
    log(f"{label}: {out}")
    return out


async def measure(dsn: str, payments: int) -> dict[str, object]:
    pool = await create_pool(dsn, min_size=1, max_size=2)  # kassa's pool settings
    try:
        big, small = accounts(BIG), accounts(SMALL)
        expected = {(r["account"], r["layer"]): r["total"]
                    for r in await pool.fetch(FULL_SUM, big)}
        results: dict[str, object] = {}
        results["full_sum"] = await timed(
            "full sum (before checkpoints)", lambda: pool.fetch(FULL_SUM, big), 10)
        t0 = time.perf_counter()
        runs = 0
        # runs of 20,000 entries: the interval a worker's pass covers under load, and the
        # granularity of a point-in-time read (it sums within one run's interval)
        while await checkpoints.roll_forward(pool, max_entries=RUN_ENTRIES) is not None:
            runs += 1
        results["checkpoint_roll_forward_s"] = round(time.perf_counter() - t0, 2)
        results["checkpoint_runs"] = runs
        log(f"checkpoints: {runs} runs in {results['checkpoint_roll_forward_s']} s")
        got = {(r["account"], r["layer"]): r["total"]
               for r in await checkpoints.balances(pool, big)}
        assert got == expected, (got, expected)
        # the tail a worker leaves between passes: 1,000 postings after the checkpoint
        await asyncio.to_thread(load, dsn, BIG, 334, first=payments + 1000)
        await asyncio.to_thread(load, dsn, SMALL, 334, first=payments + 1000)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE ledger_entries")
        results["checkpoint_plus_tail"] = await timed(
            "checkpoint + 1,000-entry tail", lambda: balances.merchant_balance(pool, BIG), 200)
        results["small_merchant_checkpoint_plus_tail"] = await timed(
            "1,000-entry merchant", lambda: balances.merchant_balance(pool, SMALL), 200)
        middle = START + payments // 2
        results["as_of_middle"] = await timed(
            "as_of the middle of the history",
            lambda: balances.merchant_balance(pool, BIG, as_of=middle), 20)
        results["small_merchant_full_sum"] = await timed(
            "1,000-entry merchant, full sum", lambda: pool.fetch(FULL_SUM, small), 200)
        oracle = await pool.fetch(
            "SELECT e.account, sum(e.amount)::bigint AS total FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " WHERE e.account = ANY($1::text[]) AND t.created_at < to_timestamp($2)"
            " GROUP BY 1", big, middle + 1)
        available, pending = await balances.merchant_balance(pool, BIG, as_of=middle)
        assert {r["account"]: -r["total"] for r in oracle} == {
            big[0]: available["usd"], big[1]: pending["usd"]}
        return results
    finally:
        await pool.close()


async def verify_checkpoints(dsn: str) -> dict[str, object]:
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, object] = {}
        for name in CHECKPOINT_INVARIANTS:
            t0 = time.perf_counter()
            bad = await getattr(invariants, name)(conn)
            out[f"verify_{name}"] = "ok" if not bad else [dict(r) for r in bad[:3]]
            out[f"verify_{name}_s"] = round(time.perf_counter() - t0, 1)
            log(f"verify {name}: {out[f'verify_{name}']} in {out[f'verify_{name}_s']} s")
        return out
    finally:
        await conn.close()


def main() -> None:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    payments = entries // 3
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kassa-bal-")))
        server = start_server(stack, workdir)
        dsn = migrated_database(stack, server, "bench_balances")
        t0 = time.perf_counter()
        load(dsn, BIG, payments)
        load(dsn, SMALL, 1000 // 3)
        loaded = time.perf_counter() - t0
        log(f"loaded {3 * payments:,} merchant entries in {loaded:.0f} s")
        analyze(dsn, vacuum=True)
        results: dict[str, object] = {"merchant_entries": 3 * payments,
                                      "ledger_entries": 4 * (payments + 333),
                                      "load_s": round(loaded, 1)}
        results.update(asyncio.run(measure(dsn, payments)))
        results.update(asyncio.run(verify_checkpoints(dsn)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
