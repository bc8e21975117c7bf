"""Reconciliation throughput: a simulator settlement report of N rows (default 1,000,000)
matched against N captured payments and posted, in rows/s, with the importing process's peak
memory for a file a tenth the size and for the full one (flat: the file is streamed, never
loaded whole). Each size imports ``--imports`` days (default 3) one after the other, each its
own file of N new payments, so the later imports run against the history of the earlier
ones (posted-before checks over N, then 2N rows of items): the rate must hold as it grows.
The time is the whole import: hashing, parsing, COPY, matching, posting and the commit.

    python -m bench.reconcile [--rows 1000000] [--imports 3]

The payments are written straight into the tables in bulk (generate_series: captures with
their ledger postings and balance transactions), since making a million payments through the
API is the payments bench's job. Every 1,000th report row carries an amount mismatch, so the
discrepancy path is measured too. `kassa ledger verify` runs at the end.
Uses KASSA_BENCH_DATABASE_URL's server, or a durable embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.stack import analyze, log, migrated_database, python_env, start_server

MERCHANT = "acct_bench_recon"
DAY = 86_400

MERCHANT_SEED = "INSERT INTO merchants (id, name, created) VALUES ('{m}', 'recon bench', 0)"

# payments lo..hi, all created on `day` (one day's batch; its ledger rows are told apart by it)
SEED = """
INSERT INTO payment_intents (id, merchant_id, amount, currency, status, capture_method,
    amount_received, psp, psp_reference, created)
SELECT 'pi_bench' || i, '{m}', 1000 + i % 5000, 'usd', 'succeeded', 'automatic',
    1000 + i % 5000, 'simulator', 'sim_bench' || i, {day}
FROM generate_series({lo}, {hi}) i;
INSERT INTO ledger_transactions (kind, merchant_id, source_id, created_at)
SELECT 'capture', '{m}', 'pi_bench' || i, to_timestamp({day} + i % 80000)
FROM generate_series({lo}, {hi}) i;
INSERT INTO ledger_entries (transaction_id, account, currency, layer, amount)
SELECT t.id, a.account, 'usd', 'posted', CASE a.k WHEN 0 THEN p.amount
    WHEN 1 THEN -(p.amount - 59) ELSE -59 END
FROM ledger_transactions t JOIN payment_intents p ON p.id = t.source_id
CROSS JOIN (VALUES (0, 'psp:simulator:receivable'), (1, 'merchant:{m}:pending'),
                   (2, 'revenue:fees')) a(k, account)
WHERE t.kind = 'capture' AND t.merchant_id = '{m}' AND p.created = {day};
INSERT INTO balance_transactions (id, merchant_id, amount, fee, net, currency, type, source,
    status, available_on, created, ledger_transaction_id)
SELECT 'txn_bench' || p.id, '{m}', p.amount, 59, p.amount - 59, 'usd', 'charge', p.id,
    'pending', {day} + 2 * 86400, {day}, t.id
FROM payment_intents p JOIN ledger_transactions t ON t.source_id = p.id
WHERE p.merchant_id = '{m}' AND p.created = {day};
"""


def seed(dsn: str, lo: int, hi: int, day: int) -> None:
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        if lo == 1:
            conn.execute(MERCHANT_SEED.format(m=MERCHANT))
        conn.execute(SEED.format(m=MERCHANT, lo=lo, hi=hi, day=day))
    log(f"seeded {hi - lo + 1:,} captured payments with their ledger in "
        f"{time.perf_counter() - t0:.1f} s")


def write_report(path: Path, lo: int, hi: int, day: int) -> None:
    from kassa.domain.money import Money
    from kassa.psp.simulator.settlement_report import PRICING

    fees = {a: PRICING.fee_for(Money(a, "usd")).minor for a in range(1000, 6000)}
    with path.open("w") as f:
        f.write("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n")
        for i in range(lo, hi + 1):
            amount = 1000 + i % 5000
            gross = amount + (1 if i % 1000 == 0 else 0)  # an amount mismatch per 1,000
            fee = fees[amount]
            f.write(f"charge,sim_bench{i},att_{i},usd,{gross},{fee},{gross - fee},captured,"
                    f"{day + i % 80000}\n")


def child(dsn: str, report: str) -> None:
    """One import in this process; prints its rate and this process's peak memory."""
    from kassa import bootstrap
    from kassa.config import Settings
    from kassa.services import reconciliation

    async def go() -> dict[str, object]:
        kassa, close = await bootstrap.build(Settings(), dsn, pool_size=2)
        try:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.perf_counter()
            run = await reconciliation.import_report(kassa, psp="simulator", path=Path(report))
            elapsed = time.perf_counter() - t0
        finally:
            await close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"rows": run["rows_read"], "matched": run["rows_matched"],
                "discrepancies": run["discrepancies"], "seconds": round(elapsed, 2),
                "rows_per_s": round(int(run["rows_read"]) / elapsed),
                "peak_rss_mb": round(peak / 1024), "rss_before_import_mb": round(before / 1024)}

    print(json.dumps(asyncio.run(go())))


def imported(dsn: str, report: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "bench.reconcile", "--child", dsn, str(report)],
                         capture_output=True, text=True, env=python_env(), check=True)
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--imports", type=int, default=3,
                        help="days imported one after the other (history grows)")
    parser.add_argument("--child", nargs=2, metavar=("DSN", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    today = int(time.time()) // DAY * DAY
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kassa-recon-")))
        server = start_server(stack, workdir)
        results: dict[str, list[dict[str, object]]] = {}
        for label, rows in (("tenth", args.rows // 10), ("full", args.rows)):
            dsn = migrated_database(stack, server, f"bench_recon_{label}")
            results[label] = []
            for k in range(args.imports):
                day = today - (args.imports - k) * DAY
                lo, hi = k * rows + 1, (k + 1) * rows
                seed(dsn, lo, hi, day)
                analyze(dsn, vacuum=True)
                report = workdir / f"report_{label}_{k}.csv"
                write_report(report, lo, hi, day)
                log(f"{label} #{k + 1}: {rows:,} rows, {report.stat().st_size / 1e6:.0f} MB,"
                    f" {k * rows:,} rows of history")
                result = imported(dsn, report)
                report.unlink()
                result["history_rows"] = k * rows
                log(f"{label} #{k + 1}: {result}")
                results[label].append(result)
            verify = subprocess.run([sys.executable, "-m", "kassa.cli", "ledger", "verify"],
                                    capture_output=True, text=True,
                                    env={**python_env(), "KASSA_DATABASE_URL": dsn})
            results[label][-1]["ledger_verify"] = ("ok" if verify.returncode == 0
                                                   else verify.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
