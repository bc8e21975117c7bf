"""Run the simulator under uvicorn: in this process (``serve``), a thread/task
(``build_server``) or from the shell (``python -m kassa.psp.simulator.server --port 8001``).

Started from the shell it prints ``kassa simulator listening on http://HOST:PORT`` once
it accepts connections (useful with ``--port 0``).
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import sys
from pathlib import Path

import uvicorn

from kassa.psp.simulator.app import create_app
from kassa.psp.simulator.chaos import OPERATION_MODES, SimulatorConfig

ANNOUNCEMENT = "kassa simulator listening on "


def build_server(host: str = "127.0.0.1", port: int = 8001,
                 config: SimulatorConfig | None = None, *,
                 timeout_graceful_shutdown: int = 1,
                 state_path: Path | None = None) -> uvicorn.Server:
    """A uvicorn server for a fresh simulator; ``server.config.app.state`` holds its state.

    A short graceful-shutdown timeout keeps a request hanging in a simulated timeout from
    holding up shutdown.
    """
    return uvicorn.Server(_uvicorn_config(host, port, config, timeout_graceful_shutdown,
                                          state_path))


def _uvicorn_config(host: str, port: int, config: SimulatorConfig | None,
                    timeout_graceful_shutdown: int,
                    state_path: Path | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config, state_path=state_path),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
    )


class _AnnouncingServer(uvicorn.Server):
    """Prints where it listens once it accepts connections, for whoever started it."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"{ANNOUNCEMENT}http://{self.config.host}:{bound_port(self)}", flush=True)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (the real one when asked for port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


def serve(host: str = "127.0.0.1", port: int = 8001,
          config: SimulatorConfig | None = None, *, state_path: Path | None = None) -> None:
    """Serve the simulator until interrupted (its books kept in ``state_path`` if given)."""
    build_server(host, port, config, state_path=state_path).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kassa.psp.simulator.server",
                                     description="kassa's simulated acquirer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--timeout-hang-s", type=float, default=SimulatorConfig().timeout_hang_s)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--webhook-url", default=os.environ.get("KASSA_SIMULATOR_WEBHOOK_URL"),
                        help="where to POST webhooks (e.g. kassa's /psp/simulator/webhooks)")
    parser.add_argument("--adyen-webhook-url",
                        default=os.environ.get("KASSA_SIMULATOR_ADYEN_WEBHOOK_URL"),
                        help="where the Adyen dialect POSTs its notifications (e.g. kassa's "
                             "/psp/adyen/webhooks)")
    parser.add_argument("--adyen-merchant-account",
                        default=os.environ.get("KASSA_ADYEN_MERCHANT_ACCOUNT"))
    parser.add_argument("--capture-mode", choices=OPERATION_MODES, default="immediate")
    parser.add_argument("--refund-mode", choices=OPERATION_MODES, default="immediate")
    parser.add_argument("--state", type=Path, default=None,
                        help="SQLite file that keeps the books across restarts")
    parser.add_argument("--settlement-currency", default=None,
                        help="the currency this account pays out in (settlement_report.py)")
    parser.add_argument("--settlement-rate", action="append", default=[],
                        metavar="CCY=RATE", help="converts CCY at RATE into the settlement "
                        "currency (decimal; repeat per currency)")
    args = parser.parse_args(argv)
    rates: dict[str, str] = {}
    for pair in args.settlement_rate:
        ccy, sep, rate = pair.partition("=")
        if not sep:
            parser.error(f"--settlement-rate {pair!r}: give CCY=RATE, e.g. eur=1.0842")
        rates[ccy.strip().lower()] = rate.strip()
    # the signing secret comes from the environment only, never the command line
    secret = os.environ.get("KASSA_SIMULATOR_WEBHOOK_SECRET", "").split(",")[0].strip()
    # the Adyen dialect's API key and HMAC key: the ones kassa's Adyen account is given
    adyen_key = os.environ.get("KASSA_ADYEN_API_KEY") or None
    adyen_hmac = os.environ.get("KASSA_ADYEN_HMAC_KEYS", "").split(",")[0].strip() or None
    try:
        config = SimulatorConfig(latency_ms=args.latency_ms, error_rate=args.error_rate,
                                 timeout_rate=args.timeout_rate,
                                 timeout_hang_s=args.timeout_hang_s, seed=args.seed,
                                 webhook_url=args.webhook_url, webhook_secret=secret or None,
                                 capture_mode=args.capture_mode, refund_mode=args.refund_mode,
                                 adyen_api_key=adyen_key, adyen_hmac_key=adyen_hmac,
                                 adyen_merchant_account=args.adyen_merchant_account,
                                 adyen_webhook_url=args.adyen_webhook_url,
                                 settlement_currency=args.settlement_currency,
                                 settlement_rates=rates or None)
    except ValueError as exc:
        parser.error(str(exc))
    server = _AnnouncingServer(_uvicorn_config(args.host, args.port, config, 1, args.state))
    # it keeps every authorisation in memory: full collections would otherwise pause it
    # for longer and longer (see kassa.bootstrap.tune_gc)
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    server.run()
    if not server.started:
        sys.exit(1)


if __name__ == "__main__":
    main()
