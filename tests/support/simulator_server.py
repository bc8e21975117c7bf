"""Run the PSP simulator on loopback for tests: in a background thread, or as its own process.

The process variant keeps the simulator's memory (its authorizations and idempotency
keys) alive while a test kills and restarts kassa's own processes.
"""

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
from kassa.psp.simulator import SimulatorConfig
from kassa.psp.simulator.server import ANNOUNCEMENT, bound_port, build_server

HOST = "127.0.0.1"


@contextmanager
def running_simulator(config: SimulatorConfig | None = None, *,
                      startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve a fresh simulator on a free loopback port in a thread; yields its base URL."""
    server = build_server(HOST, 0, config)
    thread = threading.Thread(target=server.run, name="kassa-simulator", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator stopped during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start within {startup_timeout}s")
            time.sleep(0.005)
        yield f"http://{HOST}:{bound_port(server)}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_simulator_process(port: int = 0, config: SimulatorConfig | None = None, *,
                              startup_timeout: float = 20.0) -> Iterator[str]:
    """Run ``python -m kassa.psp.simulator.server`` as a subprocess; yields its base URL.

    ``port=0`` lets the OS pick; the child announces the port it bound on stdout.
    """
    config = config or SimulatorConfig()
    args = [
        sys.executable, "-m", "kassa.psp.simulator.server", "--host", HOST,
        "--port", str(port),
        "--latency-ms", str(config.latency_ms),
        "--error-rate", str(config.error_rate),
        "--timeout-rate", str(config.timeout_rate),
        "--timeout-hang-s", str(config.timeout_hang_s),
    ]
    if config.seed is not None:
        args += ["--seed", str(config.seed)]
    env = dict(os.environ)
    # The child must import this same kassa, whether it is installed or on PYTHONPATH.
    source_root = str(Path(kassa.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    try:
        yield _await_announcement(process, startup_timeout)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _await_announcement(process: subprocess.Popen[str], timeout: float) -> str:
    stdout = process.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"the simulator process did not start within {timeout}s")
        readable, _, _ = select.select([stdout], [], [], remaining)
        if not readable:
            continue
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process exited with {process.wait()}")
        if line.startswith(ANNOUNCEMENT):
            return line[len(ANNOUNCEMENT):].strip()
