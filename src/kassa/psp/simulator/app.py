"""A fake acquirer served over HTTP, so kassa's PSP failures in tests are real network
failures. Its manual — every endpoint, field, card, fault and webhook — is README.md
beside this file; the handlers are in routes_payments, routes_3ds, routes_disputes,
routes_control and (Adyen's dialect) routes_adyen, sharing one ``Simulator``
(runtime.py) on ``app.state.simulator``."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette

from kassa.psp.simulator import (
    routes_3ds,
    routes_adyen,
    routes_control,
    routes_disputes,
    routes_payments,
)
from kassa.psp.simulator.adyen_dialect import AdyenDialect
from kassa.psp.simulator.books import Acquirer
from kassa.psp.simulator.chaos import Chaos, SimulatorConfig
from kassa.psp.simulator.runtime import Simulator
from kassa.psp.simulator.store import SqliteStore
from kassa.psp.simulator.tokens import TokenBook
from kassa.psp.simulator.webhooks import WebhookSender

__all__ = ["SimulatorConfig", "create_app"]


def create_app(config: SimulatorConfig | None = None, *,
               webhook_transport: httpx.AsyncBaseTransport | None = None,
               state_path: Path | None = None) -> Starlette:
    """A simulator with its own state (``app.state.acquirer``): in memory, or kept in the
    SQLite file ``state_path`` across restarts (``kassa dev``, ``kassa simulator``).

    ``webhook_transport`` replaces the network for outbound webhooks (tests)."""
    acquirer = Acquirer.open(SqliteStore(state_path) if state_path is not None else None)
    chaos = Chaos(config or SimulatorConfig())
    simulator = Simulator(acquirer, chaos, WebhookSender(chaos, webhook_transport),
                          tokens=TokenBook.open(acquirer.store))
    adyen = AdyenDialect(acquirer, chaos, simulator.webhooks)
    adyen.install()  # after Simulator wired the books' events to its sender
    app = Starlette(routes=[
        *routes_payments.ROUTES,
        *routes_disputes.ROUTES,
        *routes_3ds.ROUTES,
        *routes_control.ROUTES,
        *routes_adyen.ROUTES,
        *routes_disputes.CONTROL_ROUTES,
    ])
    app.state.simulator = simulator
    app.state.acquirer = acquirer
    app.state.chaos = chaos
    app.state.webhooks = simulator.webhooks
    app.state.adyen = adyen
    return app
