"""Run the PSP simulator on loopback for tests: in a background thread, or as its own process.

The process variant keeps the simulator's memory (its authorizations and idempotency
keys) alive while a test kills and restarts kassa's own processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kassa.psp.simulator import SimulatorConfig
from kassa.psp.simulator.server import ANNOUNCEMENT, bound_port, build_server
from tests.support.uvicorn_servers import announced_process, serving_in_thread

HOST = "127.0.0.1"


@contextmanager
def running_simulator(config: SimulatorConfig | None = None, *,
                      startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve a fresh simulator on a free loopback port in a thread; yields its base URL."""
    server = build_server(HOST, 0, config)
    with serving_in_thread(server, "kassa-simulator", startup_timeout=startup_timeout):
        yield f"http://{HOST}:{bound_port(server)}"


@contextmanager
def running_simulator_process(port: int = 0, config: SimulatorConfig | None = None, *,
                              startup_timeout: float = 20.0) -> Iterator[str]:
    """Run ``python -m kassa.psp.simulator.server`` as a subprocess; yields its base URL.

    ``port=0`` lets the OS pick; the child announces the port it bound on stdout.
    """
    config = config or SimulatorConfig()
    args = [
        "--host", HOST, "--port", str(port),
        "--latency-ms", str(config.latency_ms),
        "--error-rate", str(config.error_rate),
        "--timeout-rate", str(config.timeout_rate),
        "--timeout-hang-s", str(config.timeout_hang_s),
    ]
    if config.seed is not None:
        args += ["--seed", str(config.seed)]
    if config.settlement_currency is not None:
        args += ["--settlement-currency", config.settlement_currency]
    for ccy, rate in (config.settlement_rates or {}).items():
        args += ["--settlement-rate", f"{ccy}={rate}"]
    with announced_process("kassa.psp.simulator.server", args, ANNOUNCEMENT,
                           startup_timeout=startup_timeout) as (url, _):
        yield url
