"""Work per payment, for comparing two commits on a busy machine where throughput is noise:
SQL statements and round trips (pg_stat_statements), commits, WAL bytes / records / full-page
images, tuples written per table, and CPU µs per payment of the API, PostgreSQL and the
simulator.

    python -m bench.work [--payments 3000] [--concurrency 32] [--flow confirm|two_call]
                         [--cards test|saved|vault]

Counts (statements, tuples, WAL records and bytes outside full-page images) do not depend on
the machine's load; CPU µs do, so compare those A/B interleaved, several runs each. Round
trips = statements the API sent (top-level, not counting the ledger's constraint-trigger
queries, which pg_stat_statements also lists as top level); with group commit they shrink as
concurrency grows, since one transaction carries many payments' units.

Setup: a durable embedded PostgreSQL in a temp dir with ``pg_stat_statements`` preloaded (or
the server of KASSA_BENCH_DATABASE_URL, which must preload it and must be otherwise idle: WAL
is counted server-wide), a fresh migrated database, the simulator and ``kassa api`` as in
bench.payments; two rounds of warm-up payments with ANALYZE between them. Needs psutil for
the CPU figures. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from bench import load, probe, stack

# idle backends report their table and transaction counters within 10 s (PGSTAT_IDLE_INTERVAL)
STATS_SETTLE_S = 11.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.work", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--payments", type=int, default=3000, help="payments measured")
    p.add_argument("--warmup", type=int, default=600, help="payments per warm-up round")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--flow", choices=("confirm", "two_call"), default="confirm")
    p.add_argument("--merchants", type=int, default=50)
    p.add_argument("--cards", choices=("test", "saved", "vault"), default="test",
                   help="saved: each merchant's saved vault card (the forwarding path); "
                        "vault: a card number tokenised at the vault per payment")
    return p.parse_args(argv)


def start_server(es: contextlib.ExitStack, workdir: Path) -> str:
    url = os.environ.get("KASSA_BENCH_DATABASE_URL")
    if url:
        return url
    from kassa.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(workdir / "pgdata", database="postgres", fast=False)
    es.callback(pg.stop)
    with psycopg.connect(pg.start(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
    pg.stop()
    url = pg.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return url


async def pay(spec: load.Spec, n: int) -> dict[str, int]:
    """``n`` payments, ``spec.concurrency`` at a time, round-robin over the merchants."""
    client = load.make_client(spec.concurrency)
    outcomes: dict[str, int] = {}
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < n:
            i = issued % len(spec.keys)
            issued += 1
            outcome = (await load.attempt(spec, client, i)).outcome
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    try:
        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    finally:
        await client.close()
    return outcomes


def cpu_seconds(pid: int | None) -> float:
    if pid is None or probe.psutil is None:
        return 0.0
    total = 0.0
    for proc in probe.tree(pid):
        with contextlib.suppress(probe.psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def snapshot(server_url: str, dsn: str, pids: dict[str, int | None], simulator_url: str
             ) -> dict[str, Any]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        wal = conn.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
    with psycopg.connect(dsn, autocommit=True) as conn:
        commits = conn.execute("SELECT xact_commit FROM pg_stat_database"
                               " WHERE datname = current_database()").fetchone()
        tables = {r[0]: r[1:] for r in conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del"
            " FROM pg_stat_user_tables")}
    with urllib.request.urlopen(simulator_url + "/_sim/stats", timeout=10) as r:
        psp_calls = json.loads(r.read())["operations"]
    assert wal is not None and commits is not None
    return {"wal": [int(x) for x in wal], "commits": int(commits[0]), "tables": tables,
            "cpu": {role: cpu_seconds(pid) for role, pid in pids.items()},
            "psp_operations": int(psp_calls)}


def statements(server_url: str, database: str, n: int) -> dict[str, Any]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT toplevel, calls, query FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s"
            " AND query NOT LIKE '%%pg_stat%%'", (database,)).fetchall()  # not ours
    trigger = [r for r in rows if r[0] and "NEW." in r[2]]
    sent = [r for r in rows if r[0] and "NEW." not in r[2]]
    return {
        "round_trips": round(sum(r[1] for r in sent) / n, 3),
        "trigger_queries": round(sum(r[1] for r in trigger) / n, 3),
        "nested_statements": round(sum(r[1] for r in rows if not r[0]) / n, 3),
        "sent": {" ".join(r[2].split())[:80]: round(r[1] / n, 3)
                 for r in sorted(sent, key=lambda r: -r[1])},
    }


def per_payment(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    records, fpi, wal_bytes = (a - b for a, b in zip(after["wal"], before["wal"], strict=True))
    return {
        "commits": round((after["commits"] - before["commits"]) / n, 3),
        "wal_bytes": round(wal_bytes / n), "wal_records": round(records / n, 2),
        "wal_full_page_images": round(fpi / n, 3),
        "psp_operations": round((after["psp_operations"] - before["psp_operations"]) / n, 3),
        "cpu_us": {role: round((after["cpu"][role] - before["cpu"][role]) / n * 1e6)
                   for role in after["cpu"]},
        "tuples_ins_upd_hot_del": {
            table: [round((a - b) / n, 3) for a, b in zip(counts, before["tables"].get(
                table, (0, 0, 0, 0)), strict=True)]
            for table, counts in sorted(after["tables"].items())
            if counts != before["tables"].get(table)},
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with contextlib.ExitStack() as es:
        workdir = stack.workdir(es)
        server_url = start_server(es, workdir)
        dsn = stack.migrated_database(es, server_url, "kassa_work")
        simulator, simulator_url = stack.start_simulator(es, workdir)
        made = stack.create_merchants(dsn, simulator_url, args.merchants)
        st = stack.Stack(workdir, server_url, dsn, simulator_url,
                         keys=[m["secret_key"] for m in made],
                         publishable=[m["publishable_key"] for m in made])
        reach: dict[str, str] = {}
        if args.cards != "test":
            st.vault, st.vault_url, reach = stack.start_vault(es, workdir, dsn=dsn,
                                                              simulator_url=simulator_url)
        api, st.api_url = stack.start_api(es, workdir, dsn=dsn, simulator_url=simulator_url,
                                          workers=1, pool_size=None, extra_env=reach)
        if args.cards == "saved":
            st.saved = stack.save_cards(st)
        spec = load.Spec(base_url=st.api_url, keys=st.keys, publishable=st.publishable,
                         cards=args.cards, vault_url=st.vault_url, saved=st.saved,
                         flow=args.flow, concurrency=args.concurrency)
        asyncio.run(pay(spec, args.warmup))
        stack.analyze(dsn)
        asyncio.run(pay(spec, args.warmup))
        with psycopg.connect(server_url, autocommit=True) as conn:
            backend = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        pids = {"api": api.proc.pid, "postgres": probe.postmaster_of(backend),
                "simulator": simulator.proc.pid,
                "vault": st.vault.proc.pid if st.vault is not None else None}
        time.sleep(STATS_SETTLE_S)
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        before = snapshot(server_url, dsn, pids, simulator_url)
        started = time.perf_counter()
        outcomes = asyncio.run(pay(spec, args.payments))
        elapsed = time.perf_counter() - started
        time.sleep(STATS_SETTLE_S)
        after = snapshot(server_url, dsn, pids, simulator_url)
        n = outcomes.get("succeeded", 0) or 1
        print(json.dumps({
            "code": probe.code_version(stack.REPO), "flow": args.flow, "cards": args.cards,
            "concurrency": args.concurrency, "outcomes": outcomes,
            "payments_per_s (noise on a shared machine)": round(n / elapsed, 1),
            "per_payment": per_payment(before, after, n)
            | statements(server_url, dsn.rsplit("/", 1)[1], n),
            "machine": probe.machine_facts()}, indent=1))


if __name__ == "__main__":
    main()
