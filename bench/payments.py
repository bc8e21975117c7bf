"""Card payments per second through kassa's HTTP API, against pgbench's limit for the
same SQL on the same server, in one run (ARCHITECTURE §12). ``make bench`` runs this.

    python -m bench.payments [--duration 20] [--merchants 200] [--concurrency 64]
                             [--rate R] [--hot] [--api-workers 1] [--prefill 1000000]
                             [--psps 2] [--cards vault]

Setup is automatic and loopback only: a durable (fsync on) embedded PostgreSQL in a temp
dir under /tmp, or the server of KASSA_BENCH_DATABASE_URL; a fresh migrated database; the
PSP simulator (zero latency) and ``kassa api`` as subprocesses (with ``--psps 2`` a second
simulator and a priority [A, B] routing configuration per merchant); N merchants; optionally
``--prefill`` history; a few seconds of priming payments, then (VACUUM) ANALYZE.
Scenarios, each with a warm-up that is not counted:

1. closed loop, create+confirm in one call (``confirm=true``), random merchant; then
   idempotent replays of completed requests with their original keys;
2. with ``--cards vault``: scenario 1 as a checkout with a real card number does it — the
   number tokenised at the card vault (``kassa vault``, started too), then paid with the
   ``pm_…``, the card data forwarded through the vault to the PSP (bench/load.py); and
   paid with a saved card (a vault card attached to a customer: the forwarding path alone);
   with ``--hot``: scenario 1 with every request on one merchant;
3. closed loop, create then ``/confirm`` (two calls per payment);
4. open loop at ``--rate`` payments/s (default: half of scenario 1's throughput),
   latency measured from each payment's scheduled start;
5. pgbench, last and in the same database: one payment's database work as one
   hand-written transaction (bench/pgbench.py), -M prepared -c 16 -j 2.

Finally ``kassa ledger verify`` checks what the run wrote. The load generator is its own
process (bench/load.py). With psutil installed, CPU per
process group (API, PostgreSQL, simulator, load generator) is printed per scenario.
Output: a table, then one JSON line (the last line). Ctrl-C stops and removes everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
from typing import Any

from bench import pgbench, prefill, probe, report, stack
from bench.load import client_name
from bench.stack import REPO, Stack, log


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured per scenario")
    p.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop clients")
    p.add_argument("--merchants", type=int, default=200)
    p.add_argument("--rate", type=float, default=None,
                   help="open-loop payments/s (default: half the closed-loop throughput)")
    p.add_argument("--hot", action="store_true", help="add a one-merchant scenario")
    p.add_argument("--replay", type=int, default=1000, help="idempotent replays to time")
    p.add_argument("--replay-concurrency", type=int, default=16)
    p.add_argument("--psps", type=int, choices=(1, 2), default=1,
                   help="2: a second simulator PSP and a priority [A, B] routing "
                        "configuration per merchant (compare with 1)")
    p.add_argument("--api-workers", type=int, default=1)
    p.add_argument("--pool-size", type=int, default=None,
                   help="API database pool per worker (default: kassa's)")
    p.add_argument("--write-batch", type=int, default=None,
                   help="KASSA_DB_WRITE_BATCH for the API (1: no group commit)")
    p.add_argument("--write-flushes", type=int, default=None,
                   help="KASSA_DB_WRITE_FLUSHES for the API")
    p.add_argument("--prefill", type=int, default=0,
                   help="historical payments bulk-inserted before the run")
    p.add_argument("--pgbench-clients", type=int, default=16)
    p.add_argument("--pgbench-jobs", type=int, default=2)
    p.add_argument("--cards", choices=("test", "vault"), default="test",
                   help="vault: also start the card vault and add a scenario whose payments "
                        "tokenise a card number there first and are forwarded through it")
    p.add_argument("--no-pgbench", action="store_true")
    p.add_argument("--no-verify", action="store_true", help="skip the final ledger verify")
    p.add_argument("--no-prime", action="store_true",
                   help="measure on freshly migrated, empty-analyzed tables (see prime())")
    return p.parse_args(argv)


# ------------------------------------------------------------------------ load runs


def cpu_roles(st: Stack, postmaster: int | None) -> probe.Roles:
    roles: probe.Roles = {}
    if st.api is not None:
        roles["api"] = lambda pid=st.api.proc.pid: probe.tree(pid)
    if postmaster is not None:
        roles["postgres"] = lambda: probe.tree(postmaster)
    if st.simulator is not None:
        roles["simulator"] = lambda pid=st.simulator.proc.pid: probe.tree(pid)
    if st.second_simulator is not None:  # --psps 2: idle while A answers
        roles["simulator_b"] = lambda pid=st.second_simulator.proc.pid: probe.tree(pid)
    if st.vault is not None:
        roles["vault"] = lambda pid=st.vault.proc.pid: probe.tree(pid)
    return roles


def run_load(spec: dict[str, Any], roles: probe.Roles) -> dict[str, Any]:
    """One scenario in a fresh load-generator process; CPU is sampled over its measured
    window only (after the warm-up, until the last scheduled second)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.load"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=stack.python_env(), start_new_session=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        if proc.stdout.readline().strip() != "started":
            raise RuntimeError("the load generator did not start")
        sampler = probe.CpuSampler({**roles, "load": lambda: probe.tree(proc.pid)})
        time.sleep(spec["warmup"])
        sampler.start()
        time.sleep(spec["duration"])
        cpu = sampler.stop()
        out = proc.stdout.read()
        if proc.wait() != 0 or not out.strip():
            raise RuntimeError(f"the load generator failed (exit {proc.returncode})")
        return json.loads(out) | {"cpu": cpu}
    finally:
        stack.stop_process(proc)


def base_spec(args: argparse.Namespace, st: Stack) -> dict[str, Any]:
    return {"base_url": st.api_url, "keys": st.keys, "publishable": st.publishable,
            "vault_url": st.vault_url, "duration": args.duration,
            "warmup": args.warmup, "concurrency": args.concurrency,
            "replay_concurrency": args.replay_concurrency}


HOT = "closed c={c}, 1 call, ONE hot merchant"
VAULT = "closed c={c}, vault card: tokenise, then create+confirm"
SAVED = "closed c={c}, saved vault card: create+confirm"


def run_scenarios(args: argparse.Namespace, st: Stack, roles: probe.Roles
                  ) -> dict[str, dict[str, Any]]:
    spec = base_spec(args, st)
    c = args.concurrency
    plan: list[tuple[str, dict[str, Any]]] = [
        (f"closed c={c}, create+confirm in 1 call", {"flow": "confirm", "replay": args.replay})]
    if args.cards == "vault":
        plan.append((SAVED.format(c=c), {"flow": "confirm", "cards": "saved",
                                         "saved": st.saved}))
        plan.append((VAULT.format(c=c), {"flow": "confirm", "cards": "vault"}))
    if args.hot:
        plan.append((HOT.format(c=c), {"flow": "confirm", "keys": st.keys[:1]}))
    plan.append((f"closed c={c}, create, then confirm (2 calls)", {"flow": "two_call"}))
    results: dict[str, dict[str, Any]] = {}
    for name, overrides in plan:
        results[name] = measure(name, spec | overrides, roles, st.dsn)
    first = next(iter(results.values()))
    rate = args.rate or max(1.0, round(first["payments_per_s"] / 2))
    name = f"open loop {rate:.0f}/s, 1 call"
    results[name] = measure(name, spec | {"flow": "confirm", "mode": "open", "rate": rate},
                            roles, st.dsn)
    return results


def measure(name: str, spec: dict[str, Any], roles: probe.Roles, dsn: str
            ) -> dict[str, Any]:
    log(f"running: {name}")
    commits = stack.commits(dsn)
    res = run_load(spec, roles)
    succeeded = res.get("outcomes", {}).get("succeeded", 0)
    if succeeded:  # everything the load did, warm-up included, over all its payments
        res["commits_per_payment"] = round((stack.commits(dsn) - commits) / succeeded, 3)
    log(f"  {res['payments_per_s']} payments/s, p50 {res['latency']['p50_ms']} ms, "
        f"p99 {res['latency']['p99_ms']} ms, cpu {res.get('cpu')}")
    return res


# ------------------------------------------------------------------------ pgbench


def run_pgbench(args: argparse.Namespace, st: Stack, postmaster: int | None) -> dict[str, Any]:
    """pgbench last, in kassa's own database: same server, same tables at the same size
    (so --prefill applies to it too). Its rows are balanced and use their own ids."""
    from kassa.db.embedded import pgbench_path

    c, j, t = args.pgbench_clients, args.pgbench_jobs, max(1, round(args.duration))
    log(f"running: pgbench -M prepared -c {c} -j {j} -T {t}")
    proc = pgbench.start(pgbench_path(), st.dsn, st.workdir, clients=c, threads=j, duration=t,
                         merchants=args.merchants)
    roles: probe.Roles = {"pgbench": lambda: probe.tree(proc.pid)}
    if postmaster is not None:
        roles["postgres"] = lambda: probe.tree(postmaster)
    sampler = probe.CpuSampler(roles)
    try:
        sampler.start()
        time.sleep(max(0.5, t - 0.5))  # stop sampling while pgbench and its backends live
        cpu = sampler.stop()
        result = pgbench.finish(proc) | {"cpu": cpu}
    finally:
        stack.stop_process(proc)
    result["label"] = f"pgbench 1 txn/payment, -M prepared -c {c} -j {j}"
    result |= pgbench.json_sizes()
    log(f"  pgbench {result['tps']} tps")
    return result


def ratios(args: argparse.Namespace, scenarios: dict[str, dict[str, Any]],
           pg: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if pg and pg.get("tps"):
        out |= {f"kassa payments/s ÷ pgbench tps [{name}]": res["payments_per_s"] / pg["tps"]
                for name, res in scenarios.items() if name.startswith("closed")}
    spread, hot = list(scenarios.values())[0], scenarios.get(HOT.format(c=args.concurrency))
    if hot and spread["payments_per_s"]:
        out["hot merchant ÷ spread payments/s"] = hot["payments_per_s"] / spread["payments_per_s"]
    for label, name in (("saved vault card", SAVED), ("tokenised vault card", VAULT)):
        if (vault := scenarios.get(name.format(c=args.concurrency))) and spread["payments_per_s"]:
            out[f"{label} ÷ test-id payments/s"] = (vault["payments_per_s"]
                                                    / spread["payments_per_s"])
            # the same comparison in kassa's own CPU per payment (API, PostgreSQL, simulator,
            # vault): what other jobs on the machine take moves it far less than throughput
            if (mine := cpu_ms_per_payment(spread)) and (theirs := cpu_ms_per_payment(vault)):
                out[f"test-id ÷ {label} CPU ms/payment"] = mine / theirs
    return out


def cpu_ms_per_payment(res: dict[str, Any]) -> float | None:
    """kassa's processes' CPU (percent of a core over the window) per payment, in ms."""
    cpu, rate = res.get("cpu") or {}, res.get("payments_per_s")
    used = sum(cpu.get(role, 0) for role in ("api", "postgres", "simulator", "vault"))
    return used * 10 / rate if rate and used else None


# ------------------------------------------------------------------------ main


PRIME_SECONDS = 3.0


def prime(args: argparse.Namespace, st: Stack) -> None:
    """A few seconds of payments before ANALYZE. ANALYZE on empty tables records 0 rows,
    and the plans then cached for the FK checks and the ledger balance trigger are
    sequential scans that get slower with every payment (until autovacuum analyzes, up
    to a minute later). A deployed kassa has rows; this also warms up the API."""
    log(f"priming: {PRIME_SECONDS:.0f}s of payments, then ANALYZE")
    run_load(base_spec(args, st) | {"flow": "confirm", "duration": PRIME_SECONDS,
                                    "warmup": 0.0, "concurrency": 16}, {})


def setup(args: argparse.Namespace, es: contextlib.ExitStack) -> tuple[Stack, dict[str, Any]]:
    env = {name: str(value) for name, value in (("KASSA_DB_WRITE_BATCH", args.write_batch),
                                                ("KASSA_DB_WRITE_FLUSHES", args.write_flushes))
           if value is not None}
    st = stack.build(es, merchants=args.merchants, api_workers=args.api_workers,
                     pool_size=args.pool_size, api_env=env, psps=args.psps,
                     vault=args.cards == "vault")
    if args.prefill:
        took = prefill.prefill(st.dsn, args.prefill, log)
        log(f"prefill took {took:.0f}s")
    if not args.no_prime:
        prime(args, st)
    stack.analyze(st.dsn, vacuum=bool(args.prefill))
    return st, stack.server_facts(st.dsn)


def benchmark(args: argparse.Namespace, es: contextlib.ExitStack) -> dict[str, Any]:
    machine = probe.machine_facts()
    st, facts = setup(args, es)
    postmaster = probe.postmaster_of(int(facts.pop("backend_pid") or 0))
    summary: dict[str, Any] = {
        "bench": "payments", "kassa": probe.code_version(REPO), "args": vars(args),
        "machine": machine, "postgres": facts,
        "client": client_name(), "loadavg_before_load": probe.machine_facts()["loadavg"]}
    summary["scenarios"] = run_scenarios(args, st, cpu_roles(st, postmaster))
    if not args.no_pgbench:
        summary["pgbench"] = run_pgbench(args, st, postmaster)
    summary["ratios"] = ratios(args, summary["scenarios"], summary.get("pgbench"))
    if not args.no_verify:
        log("running: kassa ledger verify")
        summary["ledger_verify"] = stack.verify_ledger(st.dsn)
    if st.api is not None and (tail := st.api.log_tail(20)):
        log(f"API log (last lines):\n{tail}")
    return summary


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    es = contextlib.ExitStack()
    try:
        summary = benchmark(args, es)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # let the clean-up finish
            signal.signal(sig, signal.SIG_IGN)
        es.close()
    print(report.render(summary))
    print(report.json_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
