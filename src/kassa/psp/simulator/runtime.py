"""What the simulator's handlers share, kept on ``app.state.simulator``: the books, the fault
model, the webhook sender, the settling of pending operations, and the run of one mutating
request through the fault model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from kassa.psp.simulator.books import (
    Acquirer,
    AuthorizationNotFound,
    Body,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
)
from kassa.psp.simulator.chaos import (
    ERROR,
    ERROR_AFTER_CHARGE,
    GARBAGE_AFTER_CHARGE,
    REFUSE,
    TIMEOUT_AFTER_CHARGE,
    TIMEOUT_BEFORE_CHARGE,
    Chaos,
)
from kassa.psp.simulator.responses import error_response, json_response
from kassa.psp.simulator.tokens import TokenBook
from kassa.psp.simulator.webhooks import WebhookSender


@dataclass(slots=True, eq=False)
class Simulator:
    """One simulator's parts; ``create_app`` builds it and wires the acquirer's callbacks."""

    acquirer: Acquirer
    chaos: Chaos
    webhooks: WebhookSender
    tokens: TokenBook = field(default_factory=TokenBook)  # the simulator's stored cards
    _resumed: bool = False

    def __post_init__(self) -> None:
        self.acquirer.notify = self.webhooks.record
        self.acquirer.on_pending = self.on_pending

    def on_pending(self, key: str, outcome: str) -> None:
        """Settle ``key`` after ``async_delay_ms`` (unless settling waits to be told)."""
        delay = self.chaos.config.async_delay_ms
        if delay is None:
            return
        settle_as = outcome or self.chaos.config.async_outcome

        async def later() -> None:
            await asyncio.sleep(delay / 1000)
            try:
                self.acquirer.settle(key, settle_as)
            except (NotFound, Conflict):
                pass  # settled by hand meanwhile, or forgotten by a reset

        self.webhooks.spawn(later())

    def resume_pending(self) -> None:
        """Operations still pending when the simulator last stopped settle as usual (run
        on the first request: the server runs without lifespan events)."""
        if self._resumed:
            return
        self._resumed = True
        for key, op in list(self.acquirer.operations.items()):
            if op.current is not None and op.current.get("status") == "pending":
                self.on_pending(key, "")

    async def latency(self) -> None:
        """The configured ``latency_ms``, waited before a ``/v1`` request is handled."""
        if self.chaos.config.latency_ms:
            await asyncio.sleep(self.chaos.config.latency_ms / 1000)

    async def mutate(self, perform: Callable[[], Body]) -> Response:
        """Run one validated mutating operation through the fault model."""
        self.resume_pending()
        await self.latency()
        chaos = self.chaos
        fault = chaos.next_fault()
        if fault == ERROR:
            return error_response(503, "simulated_error",
                                  "Simulated acquirer error; nothing was done.")
        if fault == TIMEOUT_BEFORE_CHARGE:
            await asyncio.sleep(chaos.config.timeout_hang_s)
            return error_response(504, "simulated_timeout",
                                  "Simulated timeout; nothing was done.")
        if fault == REFUSE:
            return error_response(400, "simulated_refusal",
                                  "Simulated refusal; nothing was done.")
        try:
            result = perform()  # synchronous: key check and write happen with no await between
        except AuthorizationNotFound as exc:
            return error_response(404, "not_found", f"No such authorization: {exc.args[0]!r}.")
        except NotFound as exc:
            return error_response(404, "not_found", f"No such object: {exc.args[0]!r}.")
        except IdempotencyConflict as exc:
            return error_response(409, "idempotency_error", str(exc))
        except Conflict as exc:
            return error_response(409, "invalid_state", str(exc))
        except InvalidRequest as exc:
            return error_response(400, "invalid_request_error", str(exc), exc.param)
        if fault == TIMEOUT_AFTER_CHARGE:
            await asyncio.sleep(chaos.config.timeout_hang_s)
        elif fault == ERROR_AFTER_CHARGE:
            return error_response(503, "simulated_error",
                                  "Simulated acquirer error after acting.")
        elif fault == GARBAGE_AFTER_CHARGE:
            return Response(b"<html>proxy error", status_code=200, media_type="text/html")
        return json_response(result)


def simulator_of(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator
