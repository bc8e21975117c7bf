"""Merchant webhook deliveries per second, and what one hanging endpoint costs the others
(ARCHITECTURE §12, issue 3). A benchmark, not a test:

    python -m bench.webhooks [--events 10000] [--endpoints 20] [--senders 1]
                             [--rate R] [--skip-fanout]

Setup is automatic and loopback only: a durable embedded PostgreSQL (or the server of
KASSA_BENCH_DATABASE_URL), a fresh migrated database, one merchant with ``--endpoints``
endpoints subscribed to every event, each a receiver on loopback in this process (aiohttp;
answers 200 at once), except endpoint 0, which accepts the connection and never answers.
The senders are ``kassa worker --role webhooks`` subprocesses with kassa's default
configuration (timeout 10 s, 8 open requests per endpoint).

1. fan-out cost on the payment path, for merchants without endpoints: pgbench with the
   trigger disabled and enabled, alternating ``--fanout-rounds`` times
   ``--fanout-seconds`` each, on the outbox write alone (a kassa_apply call with a
   payment's two events, as kassa issues it) and on the one-transaction card payment of
   bench/pgbench.py; throughput and PostgreSQL CPU per transaction;
2. backlog: ``--events`` events written at once (× endpoints deliveries), then drained:
   deliveries/s to the healthy endpoints while the hanging one holds its slots;
3. stream: ``--events`` more at a steady ``--rate`` events/s (default: half of what the
   backlog phase sustained), with the hanging endpoint's backlog from phase 2 still due:
   latency from commit to arrival at each healthy receiver, against the timeout.

Prints a table, then one JSON line. Ctrl-C stops and removes everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from bench import probe, stack
from bench.stack import log
from bench.stats import summarize_ms

TRIGGER = "events_fan_out_webhooks"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000, help="events per phase")
    p.add_argument("--endpoints", type=int, default=20, help="endpoint 0 hangs")
    p.add_argument("--senders", type=int, default=1, help="webhook worker processes")
    p.add_argument("--rate", type=float, default=None,
                   help="stream phase events/s (default: half the backlog throughput)")
    p.add_argument("--fanout-rounds", type=int, default=5)
    p.add_argument("--fanout-seconds", type=int, default=6)
    p.add_argument("--pgbench-clients", type=int, default=8)
    p.add_argument("--skip-fanout", action="store_true")
    p.add_argument("--timeout", type=float, default=10.0, help="KASSA_WEBHOOK_TIMEOUT_SECONDS")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy the senders' logs here")
    return p.parse_args(argv)


# ------------------------------------------------------------------ receivers


@dataclass
class Receivers:
    """``n`` HTTP servers on loopback; server 0 never answers."""

    n: int
    arrivals: list[tuple[int, str, float]] = field(default_factory=list)  # (idx, evt, unix)
    hung: int = 0
    urls: list[str] = field(default_factory=list)
    _servers: list[asyncio.AbstractServer] = field(default_factory=list)
    _never: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for idx in range(self.n):
            handler = web.Server(self._handler(idx), access_log=None)
            server = await loop.create_server(handler, "127.0.0.1", 0, backlog=1024)
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
            self.urls.append(f"http://127.0.0.1:{port}/e{idx}")

    def _handler(self, idx: int) -> Any:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            await request.read()
            if idx == 0:
                self.hung += 1
                await self._never.wait()  # hang until the bench ends
            self.arrivals.append((idx, request.headers.get("Kassa-Event-Id", ""),
                                  time.time()))
            return web.Response(text="ok")
        return handle

    async def stop(self) -> None:
        self._never.set()
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def healthy_count(self) -> int:
        return len(self.arrivals)


# ------------------------------------------------------------------ events


def event_rows(merchant_id: str, n: int, seq: int) -> list[dict[str, Any]]:
    """n payment_intent.succeeded events shaped like kassa's (≈ 0.7 KB each)."""
    from kassa import representations

    now = int(time.time())
    rows = []
    for i in range(n):
        event_id = f"evt_bench{seq:06d}x{i:05d}"
        obj = {"id": f"pi_bench{seq:06d}x{i:05d}", "object": "payment_intent",
               "amount": 2000 + i, "amount_capturable": 0, "amount_received": 2000 + i,
               "amount_refunded": 0, "canceled_at": None, "cancellation_reason": None,
               "capture_method": "automatic", "created": now, "currency": "usd",
               "description": None, "last_payment_error": None,
               "latest_charge": f"ch_bench{seq:06d}x{i:05d}", "livemode": False,
               "metadata": {}, "next_action": None, "payment_method": "pm_card_visa",
               "payment_method_types": ["card"], "status": "succeeded"}
        rows.append({"id": event_id, "merchant_id": merchant_id,
                     "type": "payment_intent.succeeded", "object_id": obj["id"],
                     "data": representations.event(id=event_id, type="payment_intent.succeeded",
                                                   created=now, obj=obj), "created": now})
    return rows


async def write_events(pool: asyncpg.Pool, merchant_id: str, n: int, *, per_statement: int,
                       seq0: int) -> None:
    from kassa.db import ops, units

    for k, start in enumerate(range(0, n, per_statement)):
        rows = event_rows(merchant_id, min(per_statement, n - start), seq0 + k)
        await units.apply(pool, [ops.InsertEvents(rows)])


# ------------------------------------------------------------------ phase 1: fan-out cost


def outbox_script() -> str:
    """A unit of work's outbox write as kassa issues it: one kassa_apply call inserting a
    payment's two events (payment_intent.created, .succeeded) for a merchant."""
    from bench import pgbench

    event = json.loads(pgbench.event_json("payment_intent.succeeded"))
    rows = [{"id": f"evt_{kind[0]}{pgbench.R}", "merchant_id": "acct_pgb_outbox",
             "type": f"payment_intent.{kind}", "object_id": f"pi_{pgbench.R}",
             "data": event, "created": 1700000000} for kind in ("created", "succeeded")]
    ops = json.dumps([{"op": "insert_events", "rows": rows}])
    return ("\\set r random(1, 9000000000000000000)\n"
            f"SELECT kassa_apply(({pgbench._literal(ops)})::jsonb);\n")


def fanout_cost(dsn: str, workdir: Any, *, rounds: int, seconds: int, clients: int
                ) -> dict[str, Any]:
    """pgbench with the fan-out trigger disabled and enabled (merchants without endpoints:
    the cost every payment pays), alternating, for two scripts: the outbox write alone as
    kassa issues it (one kassa_apply call with two events: isolates the trigger) and the
    whole one-transaction card payment of bench/pgbench.py (its two outbox INSERTs are
    plain statements, which pay more for a trigger than kassa_apply's). Throughput is
    noisy on a shared 2-core machine; PostgreSQL's CPU per transaction (its process tree,
    psutil) is the steadier measure."""
    import subprocess

    import psycopg

    from bench import pgbench
    from kassa.db.embedded import pgbench_path

    with psycopg.connect(dsn, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        postmaster = probe.postmaster_of(int(backend))
    outbox = workdir / "outbox.sql"
    outbox.write_text(outbox_script())

    def trigger(enabled: bool) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE events {'ENABLE' if enabled else 'DISABLE'}"
                         f" TRIGGER {TRIGGER}")

    def start(script: str) -> subprocess.Popen[str]:
        if script == "payment":
            return pgbench.start(pgbench_path(), dsn, workdir, clients=clients, threads=2,
                                 duration=seconds, merchants=1000)
        return subprocess.Popen(
            [str(pgbench_path()), "--no-vacuum", "--protocol=prepared", f"--file={outbox}",
             f"--client={clients}", "--jobs=2", f"--time={seconds}", dsn],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def run(script: str) -> tuple[float, float | None]:
        sampler = probe.CpuSampler({"postgres": lambda: probe.tree(postmaster)}
                                   if postmaster else {})
        proc = start(script)
        sampler.start()
        time.sleep(max(0.5, seconds - 0.5))  # sample while pgbench's backends live
        cpu = sampler.stop()
        tps = float(pgbench.finish(proc)["tps"] or 0.0)
        return tps, (cpu["postgres"] / 100 / tps * 1e6) if cpu and tps else None

    def median(v: list[float]) -> float | None:
        return sorted(v)[len(v) // 2] if v else None

    out: dict[str, Any] = {}
    try:
        for script in ("outbox", "payment"):
            tps: dict[str, list[float]] = {"disabled": [], "enabled": []}
            cpu_us: dict[str, list[float]] = {"disabled": [], "enabled": []}
            run(script)  # warm-up: caches, plans, the tables' first pages
            for _ in range(rounds):
                for state in ("disabled", "enabled"):
                    trigger(state == "enabled")
                    rate, per_txn = run(script)
                    tps[state].append(rate)
                    if per_txn is not None:
                        cpu_us[state].append(per_txn)
            res: dict[str, Any] = {
                "tps": {k: round(median(v) or 0) for k, v in tps.items()},
                "rounds_tps": {k: [round(x) for x in v] for k, v in tps.items()},
                "postgres_cpu_us": {k: round(m) for k, v in cpu_us.items()
                                    if (m := median(v)) is not None}}
            cpu = res["postgres_cpu_us"]
            if len(cpu) == 2:
                res["trigger_cpu_us"] = cpu["enabled"] - cpu["disabled"]
                res["trigger_cpu_percent"] = round(100 * (cpu["enabled"] / cpu["disabled"] - 1),
                                                   1)
            out[script] = res
    finally:
        trigger(True)
    return out


# ------------------------------------------------------------------ phases 2 and 3


async def created_at(pool: asyncpg.Pool, endpoint_ids: list[str]) -> dict[tuple[str, str], float]:
    rows = await pool.fetch(
        "SELECT endpoint_id, event_id, extract(epoch FROM created_at)::float8 AS t"
        " FROM webhook_deliveries WHERE endpoint_id = ANY($1::text[])", endpoint_ids)
    return {(r["endpoint_id"], r["event_id"]): r["t"] for r in rows}


async def wait_for_arrivals(rx: Receivers, target: int, senders: list[stack.Service],
                            limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while rx.healthy_count() < target:
        for s in senders:
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited:\n{s.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {rx.healthy_count()} of {target} deliveries arrived")
        await asyncio.sleep(0.05)


def latencies(rx: Receivers, since: int, created: dict[tuple[str, str], float],
              endpoint_ids: list[str]) -> tuple[list[float], int]:
    """Commit-to-arrival seconds of each first arrival after index ``since``; duplicates."""
    seen: set[tuple[int, str]] = set()
    out: list[float] = []
    dupes = 0
    for idx, event_id, at in rx.arrivals[since:]:
        key = (idx, event_id)
        if key in seen:
            dupes += 1
            continue
        seen.add(key)
        t0 = created.get((endpoint_ids[idx], event_id))
        if t0 is not None:
            out.append(at - t0)
    return out, dupes


async def hanging_state(pool: asyncpg.Pool, endpoint_id: str) -> dict[str, int]:
    row = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE next_attempt_at <= now()) AS due,"
        " count(*) FILTER (WHERE status = 'retrying') AS retrying,"
        " coalesce(sum(attempt_count), 0) AS attempts"
        " FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id)
    return {k: int(v) for k, v in dict(row).items()}


async def main_async(args: argparse.Namespace, st: contextlib.ExitStack) -> dict[str, Any]:
    from kassa import bootstrap
    from kassa.config import Settings
    from kassa.services import merchants, webhooks

    wd = stack.workdir(st)
    server_url = stack.start_server(st, wd)
    dsn = stack.migrated_database(st, server_url, "kassa_bench_webhooks")
    facts = stack.server_facts(dsn)
    settings = Settings(database_url=dsn, env="development")
    kassa, close = await bootstrap.build(settings, dsn, pool_size=12)
    rx = Receivers(args.endpoints)
    await rx.start()
    result: dict[str, Any] = {"args": vars(args), "postgres": facts,
                              "machine": probe.machine_facts()}
    try:
        policy = webhooks.WebhookPolicy(max_endpoints_per_merchant=max(args.endpoints, 32))
        merchant = (await merchants.create_merchant(kassa, name="Webhook bench"))["merchant_id"]
        endpoint_ids = []
        for url in rx.urls:
            ep = await webhooks.create_endpoint(kassa, policy=policy, merchant_id=merchant,
                                                url=url, enabled_events=["*"])
            endpoint_ids.append(ep["id"])
        hanging = endpoint_ids[0]
        healthy = args.endpoints - 1

        if not args.skip_fanout:
            log("phase 1: pgbench payments with the fan-out trigger disabled / enabled")
            stack.analyze(dsn)
            result["fanout"] = fanout_cost(dsn, wd, rounds=args.fanout_rounds,
                                           seconds=args.fanout_seconds,
                                           clients=args.pgbench_clients)
            stack.analyze(dsn, vacuum=True)

        log(f"phase 2: {args.events} events × {args.endpoints} endpoints written at once")
        started = time.perf_counter()
        await write_events(kassa.pool, merchant, args.events, per_statement=100, seq0=0)
        write_s = time.perf_counter() - started
        stack.analyze(dsn)
        env = stack.base_env(wd) | {
            "KASSA_DATABASE_URL": dsn, "KASSA_ENV": "development",
            "KASSA_WEBHOOK_TIMEOUT_SECONDS": str(args.timeout)}
        senders = []
        spawned = time.monotonic()
        for i in range(args.senders):
            senders.append(stack.spawn(st, f"sender{i}", [sys.executable, "-m", "kassa.cli",
                                                          "worker", "--role", "webhooks"],
                                       env, wd))
        roles = {f"sender{i}": (lambda s=s: probe.tree(s.proc.pid)) for i, s in
                 enumerate(senders)}
        postmaster = probe.postmaster_of(await kassa.pool.fetchval("SELECT pg_backend_pid()"))
        if postmaster:
            roles["postgres"] = lambda: probe.tree(postmaster)
        if probe.psutil is not None:  # this process alone: its children are the senders
            me = probe.psutil.Process()
            roles["bench (receivers)"] = lambda: [me]
        cpu = probe.CpuSampler(roles)
        target = args.events * healthy
        while rx.healthy_count() == 0:
            await asyncio.sleep(0.01)
            if time.monotonic() - spawned > 60:
                raise RuntimeError(f"no delivery arrived:\n{senders[0].log_tail()}")
        first = time.perf_counter()
        cpu.start()
        await wait_for_arrivals(rx, target, senders, limit_s=1800)
        drain_s = time.perf_counter() - first
        backlog_cpu = cpu.stop()
        created = await created_at(kassa.pool, endpoint_ids)
        _, dupes = latencies(rx, 0, created, endpoint_ids)
        result["backlog"] = {
            "events": args.events, "deliveries": target, "write_s": round(write_s, 2),
            "fanout_deliveries_per_s": round(args.events * args.endpoints / write_s),
            "drain_s": round(drain_s, 2),
            "deliveries_per_s": round(target / drain_s), "duplicates": dupes,
            "sender_cpu_us_per_delivery": _cpu_per_delivery(backlog_cpu, drain_s, target),
            "hanging": await hanging_state(kassa.pool, hanging), "hung_requests": rx.hung,
            "cpu": backlog_cpu}
        log(f"backlog drained: {target} deliveries in {drain_s:.1f}s "
            f"({target / drain_s:.0f}/s)")

        rate = args.rate or max(1.0, 0.5 * (target / drain_s) / healthy)
        log(f"phase 3: {args.events} events streamed at {rate:.0f} events/s")
        since = len(rx.arrivals)
        cpu = probe.CpuSampler(roles)
        cpu.start()
        started = time.monotonic()
        per_tick = 2  # a payment's unit of work writes two events
        for k in range(0, args.events, per_tick):
            due = started + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await write_events(kassa.pool, merchant, min(per_tick, args.events - k),
                               per_statement=per_tick, seq0=100_000 + k)
        await wait_for_arrivals(rx, since + args.events * healthy, senders, limit_s=600)
        stream_s = time.monotonic() - started
        stream_cpu = cpu.stop()
        created = await created_at(kassa.pool, endpoint_ids)
        lat, dupes = latencies(rx, since, created, endpoint_ids)
        summary = summarize_ms(lat)
        late = sum(1 for v in lat if v >= args.timeout)
        result["stream"] = {
            "events": args.events, "rate_events_per_s": round(rate, 1),
            "deliveries": args.events * healthy,
            "deliveries_per_s": round(args.events * healthy / stream_s),
            "latency": summary, "p95_ms": round(sorted(lat)[int(0.95 * len(lat))] * 1000, 2),
            "late_beyond_timeout": late, "duplicates": dupes,
            "sender_cpu_us_per_delivery": _cpu_per_delivery(stream_cpu, stream_s,
                                                            args.events * healthy),
            "hanging": await hanging_state(kassa.pool, hanging), "hung_requests": rx.hung,
            "cpu": stream_cpu}
    finally:
        await rx.stop()
        await close()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log_file in wd.glob("sender*.log"):
                shutil.copy(log_file, args.keep_logs / log_file.name)
    return result


def _cpu_per_delivery(cpu: dict[str, Any], seconds: float, deliveries: int) -> int | None:
    """Sender CPU (all sender processes) per delivery, in µs."""
    used = sum(v for k, v in cpu.items() if k.startswith("sender"))
    return round(used / 100 * seconds / deliveries * 1e6) if cpu and deliveries else None


def print_report(r: dict[str, Any]) -> None:
    a = r["args"]
    pg = r["postgres"]
    print(f"\nmachine: nproc {r['machine']['nproc']}, load {r['machine']['loadavg']}; "
          f"postgres {pg['version']} fsync={pg['fsync']} "
          f"synchronous_commit={pg['synchronous_commit']}")
    print(f"{a['endpoints']} endpoints (1 hanging), {a['senders']} sender process(es), "
          f"timeout {a['timeout']:g} s, kassa defaults otherwise\n")
    if "fanout" in r:
        print(f"fan-out trigger, merchants without endpoints (pgbench -M prepared "
              f"-c {a['pgbench_clients']}, trigger disabled / enabled alternating, medians of "
              f"{a['fanout_rounds']} × {a['fanout_seconds']} s):")
        for script, label in (("outbox", "outbox write (kassa_apply, 2 events)"),
                              ("payment", "pgbench payment (2 plain INSERTs)")):
            f = r["fanout"][script]
            line = (f"  {label:<34} {f['tps']['disabled']:>6} / {f['tps']['enabled']:>6} tps")
            if "trigger_cpu_us" in f:
                cpu = f["postgres_cpu_us"]
                line += (f"; PostgreSQL CPU {cpu['disabled']} / {cpu['enabled']} µs per "
                         f"transaction: {f['trigger_cpu_us']:+} µs "
                         f"({f['trigger_cpu_percent']:+} %)")
            print(line)
    b = r["backlog"]
    print(f"\nbacklog: {b['events']} events written in {b['write_s']} s "
          f"({b['fanout_deliveries_per_s']} deliveries/s created by the trigger)")
    print(f"  drained {b['deliveries']} deliveries to the {a['endpoints'] - 1} healthy "
          f"endpoints in {b['drain_s']} s = {b['deliveries_per_s']} deliveries/s"
          f"  (duplicates {b['duplicates']})")
    print(f"  hanging endpoint: {b['hung_requests']} requests held open, {b['hanging']}")
    print(f"  CPU % of one core: {b['cpu']}; sender CPU per delivery "
          f"{b['sender_cpu_us_per_delivery']} µs")
    s = r["stream"]
    lat = s["latency"]
    print(f"\nstream: {s['events']} events at {s['rate_events_per_s']}/s = "
          f"{s['deliveries_per_s']} deliveries/s to healthy endpoints")
    print(f"  commit → arrival: p50 {lat['p50_ms']} ms, p95 {s['p95_ms']} ms, "
          f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
          f"{s['late_beyond_timeout']} of {lat['count']} at or beyond the {a['timeout']:g} s "
          f"timeout (duplicates {s['duplicates']})")
    print(f"  hanging endpoint: {s['hung_requests']} requests held open in total, "
          f"{s['hanging']}")
    print(f"  CPU % of one core: {s['cpu']}; sender CPU per delivery "
          f"{s['sender_cpu_us_per_delivery']} µs")
    print(json.dumps(r, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as st:
        import uvloop

        result = uvloop.run(main_async(args, st))
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
