"""The benchmark's output: a compact table for people, then one JSON line for tools."""

from __future__ import annotations

import json
from typing import Any

CPU_ROLES = ("api", "postgres", "simulator", "load", "pgbench", "others")
HEADER = (f"{'scenario':<44} {'pay/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  "
          f"CPU % of one core (api pg sim load others)")


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


NOISY_OTHERS = 25  # % of a core used outside our processes that makes a row suspect


def _cpu(cpu: dict[str, Any]) -> str:
    if not cpu:
        return "(no psutil)"
    shown = " ".join(f"{cpu[r]}" for r in CPU_ROLES if r in cpu)
    m = cpu.get("machine", {})
    noisy = "  NOISY: other jobs used the CPU" if cpu.get("others", 0) > NOISY_OTHERS else ""
    return f"{shown}  [idle {m.get('idle', '?')}% iowait {m.get('iowait', '?')}%]{noisy}"


def row(label: str, rate: float | None, latency: dict[str, Any] | None,
        cpu: dict[str, Any] | None = None) -> str:
    lat = latency or {}
    shown_rate = "-" if rate is None else f"{rate:.1f}"
    text = (f"{label:<44} {shown_rate:>8} {_ms(lat.get('p50_ms')):>8} "
            f"{_ms(lat.get('p99_ms')):>8} {_ms(lat.get('max_ms')):>8}")
    return text if cpu is None else f"{text}  {_cpu(cpu)}"


def failures(outcomes: dict[str, int]) -> str:
    bad = {k: v for k, v in outcomes.items() if k not in ("succeeded", "replayed")}
    return ", ".join(f"{v}× {k}" for k, v in bad.items())


def scenario_lines(name: str, res: dict[str, Any]) -> list[str]:
    lines = [row(name, res.get("payments_per_s"), res.get("latency"), res.get("cpu", {}))]
    if res.get("confirm_latency"):
        lines.append(row("  └ the confirm call alone", None, res["confirm_latency"]))
    if res.get("commits_per_payment") is not None:
        lines.append(f"  └ ≈{res['commits_per_payment']:.2f} database transactions per payment, "
                     "reads included (the writes alone were 2 before group commit)")
    if "offered_rate" in res:
        lines.append(f"  └ offered {res['offered_rate']:.0f}/s, issued {res['issued']} in "
                     f"{res['window_s']:.0f}s + warm-up")
    if bad := failures(res.get("outcomes", {})):
        lines.append(f"  └ NOT succeeded: {bad}")
    if rep := res.get("replay"):
        n = rep["latency"]["count"]
        lines.append(row(f"  └ idempotent replay ({n} keys, c={rep['concurrency']})", None,
                         rep["latency"]))
        if bad := failures(rep.get("outcomes", {})):
            lines.append(f"    └ NOT replayed: {bad}")
    return lines


def pgbench_lines(pg: dict[str, Any], label: str) -> list[str]:
    cpu = pg.get("cpu", {})
    shown = " ".join(f"{r} {cpu[r]}" for r in ("postgres", "pgbench", "others") if r in cpu)
    return [f"{label:<44} {pg['tps']:>8.1f} tps, latency avg {pg['latency_avg_ms']} ms, "
            f"failed {pg['failed']:.0f}  CPU% {shown}"]


def machine_lines(summary: dict[str, Any]) -> list[str]:
    m, pg, code = summary["machine"], summary["postgres"], summary["kassa"]
    lines = [
        f"kassa {code['commit']}{' + uncommitted src/ edits' if code['src_dirty'] else ''}",
        f"machine: nproc {m['nproc']}, load average {m['loadavg']} at start, "
        f"{summary['loadavg_before_load']} before the load; python {m['python']}, "
        f"client {summary.get('client', '?')}",
        f"postgres {pg['version']}: fsync={pg['fsync']} synchronous_commit="
        f"{pg['synchronous_commit']} shared_buffers={pg['shared_buffers']} "
        f"full_page_writes={pg['full_page_writes']} wal_sync_method={pg['wal_sync_method']}",
    ]
    a = summary["args"]
    lines.append(f"run: {a['merchants']} merchants, api workers {a['api_workers']}, "
                 f"c={a['concurrency']}, {a['duration']}s per scenario (+{a['warmup']}s "
                 f"warm-up), prefilled {a['prefill']:,} payments, "
                 f"{'not primed' if a['no_prime'] else 'primed + ANALYZE'}, group commit "
                 f"batch {a.get('write_batch') or 'default'}, "
                 f"flushes {a.get('write_flushes') or 'default'}")
    return lines


def render(summary: dict[str, Any]) -> str:
    lines = [*machine_lines(summary), "", HEADER, "-" * len(HEADER)]
    for name, res in summary["scenarios"].items():
        lines += scenario_lines(name, res)
    if pg := summary.get("pgbench"):
        lines += pgbench_lines(pg, pg["label"])
    for name, ratio in summary.get("ratios", {}).items():
        lines.append(f"ratio {name}: {ratio:.3f}")
    if v := summary.get("ledger_verify"):
        state = "OK" if v["ok"] else "FAILED: " + "; ".join(v["problems"])
        lines.append(f"ledger verify: {state} {v['checked']}")
    return "\n".join(lines)


def json_line(summary: dict[str, Any]) -> str:
    return json.dumps(summary, separators=(",", ":"), sort_keys=False)
