"""Run the bank simulator on loopback for tests: in a background thread, or as its own
process (so it outlives the kassa processes a test kills)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kassa.payouts.bank_simulator.bank import BankConfig
from kassa.payouts.bank_simulator.server import ANNOUNCEMENT, bound_port, build_server
from tests.support.uvicorn_servers import announced_process, serving_in_thread

HOST = "127.0.0.1"


@contextmanager
def running_bank(config: BankConfig | None = None, *,
                 state_path: Path | None = None) -> Iterator[str]:
    """Serve a fresh bank on a free loopback port in a thread; yields its base URL."""
    server = build_server(HOST, 0, config, state_path=state_path)
    with serving_in_thread(server, "kassa-bank"):
        yield f"http://{HOST}:{bound_port(server)}"


@contextmanager
def running_bank_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m kassa.payouts.bank_simulator.server --port 0 *args``; yields its base
    URL and the process."""
    with announced_process("kassa.payouts.bank_simulator.server",
                           ["--host", HOST, "--port", "0", *args], ANNOUNCEMENT) as running:
        yield running
