"""Run the bank simulator under uvicorn: in a thread or task (``build_server``) or from the
shell (``python -m kassa.payouts.bank_simulator.server --port 8003``), which prints
``kassa bank simulator listening on http://HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import uvicorn

from kassa.domain.errors import InvalidRequest
from kassa.payouts.bank_simulator.app import create_app
from kassa.payouts.bank_simulator.bank import BankConfig

ANNOUNCEMENT = "kassa bank simulator listening on "


def _config(host: str, port: int, config: BankConfig | None,
            state_path: Path | None) -> uvicorn.Config:
    # a short graceful shutdown: a request hanging in a simulated timeout must not hold it up
    return uvicorn.Config(create_app(config, state_path=state_path), host=host, port=port,
                          lifespan="off", log_level="warning", access_log=False,
                          timeout_graceful_shutdown=1)


def build_server(host: str = "127.0.0.1", port: int = 8003, config: BankConfig | None = None,
                 *, state_path: Path | None = None) -> uvicorn.Server:
    """A uvicorn server for a fresh bank; ``server.config.app.state.bank`` is its books."""
    return uvicorn.Server(_config(host, port, config, state_path))


def bound_port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"{ANNOUNCEMENT}http://{self.config.host}:{bound_port(self)}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kassa.payouts.bank_simulator.server",
                                     description="kassa's simulated bank for payouts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003, help="0 picks a free port")
    parser.add_argument("--paid-after-s", type=float, default=BankConfig().paid_after_s)
    parser.add_argument("--fail-after-s", type=float, default=BankConfig().fail_after_s)
    parser.add_argument("--return-after-s", type=float, default=BankConfig().return_after_s)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--return-rate", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--state", type=Path, default=None,
                        help="JSON file that keeps the books across restarts")
    args = parser.parse_args(argv)
    try:
        config = BankConfig(paid_after_s=args.paid_after_s, fail_after_s=args.fail_after_s,
                            return_after_s=args.return_after_s,
                            failure_rate=args.failure_rate, return_rate=args.return_rate,
                            error_rate=args.error_rate, seed=args.seed)
    except InvalidRequest as exc:
        parser.error(exc.message)
    server = _AnnouncingServer(_config(args.host, args.port, config, args.state))
    server.run()
    if not server.started:
        sys.exit(1)


if __name__ == "__main__":
    main()
