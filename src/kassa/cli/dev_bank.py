"""The bank simulator in `kassa dev`: its own HTTP server on KASSA_BANK_PORT (a free port
when unset), its books kept beside the database (a restart forgets no payout, as a real
bank would not)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from kassa.cli.process import listen
from kassa.config import Settings

if TYPE_CHECKING:  # `kassa --help` loads no server code (tests/unit/test_cli_commands.py)
    import uvicorn


def bank_socket(settings: Settings) -> tuple[socket.socket, Settings]:
    """The bank's listening socket, and the settings naming the port it got."""
    sock = listen(settings.bank_host, settings.bank_port or 0, port_setting="KASSA_BANK_PORT",
                  host_setting="KASSA_BANK_HOST")
    return sock, settings.model_copy(update={"bank_port": int(sock.getsockname()[1])})


def bank_server(settings: Settings, server_class: type[uvicorn.Server]) -> uvicorn.Server:
    import uvicorn

    from kassa.payouts.bank_simulator.app import create_app

    app = create_app(state_path=settings.home / "bank.json")
    return server_class(uvicorn.Config(app, log_level="warning", access_log=False,
                                       lifespan="off"))
