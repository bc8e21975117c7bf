"""Where the CPU goes: per-role process CPU during a measurement (psutil, when installed),
and the machine facts printed with every run."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import psutil
except ImportError:  # the benchmark still runs; it just cannot say where the CPU went
    psutil = None


def machine_facts() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    facts: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    if psutil is not None:
        facts["mem_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    return facts


def code_version(repo: Path) -> dict[str, Any]:
    """The commit under test, and whether src/ has uncommitted edits (others edit it)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "src_dirty": bool(git("status", "--porcelain", "--", "src"))}


def tree(pid: int) -> list[Any]:
    """A process and all its descendants (psutil.Process objects); [] if it is gone."""
    if psutil is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def postmaster_of(backend_pid: int) -> int | None:
    """The postmaster that forked a backend, if that server runs on this machine."""
    if psutil is None:
        return None
    try:
        parent = psutil.Process(backend_pid).parent()
    except psutil.Error:
        return None
    return parent.pid if parent is not None else None


Roles = dict[str, Callable[[], list[Any]]]


def _cpu_seconds(proc: Any) -> float:
    """CPU of a live process plus that of its children it has reaped, so a backend that
    exits during the window still counts (in its postmaster's total)."""
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system + t.children_user + t.children_system)


@dataclass
class CpuSampler:
    """CPU used per role between start() and stop(), in % of one core (200 % = both cores
    of a 2-core machine), plus how the whole machine's time split (user/system/iowait/idle).

    Each role is a callable returning its current processes, re-evaluated at stop() so that
    processes born during the window (new backends, the load generator) are included. The
    role's total is compared, not each pid's: a process that dies in the window moves its
    time into its parent's reaped-children counters. Call stop() while the role's root
    process is still alive."""

    roles: Roles
    _before: dict[str, float] = field(default_factory=dict)
    _system_before: Any = None
    _wall: float = 0.0

    def start(self) -> None:
        if psutil is None:
            return
        self._before = {role: self._total(fn) for role, fn in self.roles.items()}
        self._system_before = psutil.cpu_times()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, Any]:
        if psutil is None or self._system_before is None:
            return {}
        wall = time.monotonic() - self._wall
        out: dict[str, Any] = {}
        for role, fn in self.roles.items():
            used = self._total(fn) - self._before.get(role, 0.0)
            out[role] = round(100 * used / wall)
        machine = self._machine_split()
        busy = 100 - machine.get("idle", 0) - machine.get("iowait", 0) - machine.get("steal", 0)
        # whatever ran outside our process trees: other users' jobs, the kernel's softirqs
        out["others"] = max(0, round(busy * (os.cpu_count() or 1) - sum(out.values())))
        out["machine"] = machine
        return out

    @staticmethod
    def _total(fn: Callable[[], list[Any]]) -> float:
        return sum(_cpu_seconds(proc) for proc in fn())

    def _machine_split(self) -> dict[str, float]:
        now = psutil.cpu_times()
        deltas = {k: getattr(now, k) - getattr(self._system_before, k) for k in now._fields
                  if not k.startswith("guest")}  # guest time is already counted in user
        total = sum(deltas.values()) or 1.0
        shown = ("user", "system", "softirq", "iowait", "steal", "idle")
        return {k: round(100 * deltas[k] / total, 1) for k in shown if k in deltas}

