"""Run the bank simulator on loopback for tests: in a background thread, or as its own
process (so it outlives the kassa processes a test kills)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kassa
from kassa.payouts.bank_simulator.bank import BankConfig
from kassa.payouts.bank_simulator.server import ANNOUNCEMENT, bound_port, build_server

HOST = "127.0.0.1"


@contextmanager
def running_bank(config: BankConfig | None = None, *, state_path: Path | None = None,
                 startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve a fresh bank on a free loopback port in a thread; yields its base URL."""
    server = build_server(HOST, 0, config, state_path=state_path)
    thread = threading.Thread(target=server.run, name="kassa-bank", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bank simulator did not start")
            time.sleep(0.005)
        yield f"http://{HOST}:{bound_port(server)}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_bank_process(*args: str, startup_timeout: float = 20.0
                         ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m kassa.payouts.bank_simulator.server --port 0 *args`` as a subprocess;
    yields its base URL (announced on stdout) and the process, terminated on exit."""
    env = dict(os.environ)
    source_root = str(Path(kassa.__file__).resolve().parents[1])  # this very kassa
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "kassa.payouts.bank_simulator.server", "--host", HOST,
         "--port", "0", *args], stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("the bank simulator process did not start")
            if not select.select([process.stdout], [], [], remaining)[0]:
                continue
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"the bank simulator exited with {process.wait()}")
            if line.startswith(ANNOUNCEMENT):
                break
        yield line[len(ANNOUNCEMENT):].strip(), process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
