"""The FastAPI application: routers, error mapping, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kassa.api import browsers, errors, openapi, responses
from kassa.api.browsers import BrowserDoor
from kassa.api.deps import respond
from kassa.api.door import Door
from kassa.api.request_ids import RequestIds
from kassa.api.routers import (
    account,
    balance,
    charges,
    checkout,
    customers,
    disputes,
    events,
    exchange_rates,
    metrics,
    payment_intents,
    payment_methods,
    payouts,
    psp_accounts,
    psp_returns,
    psp_webhooks,
    receipts,
    reconciliation,
    refunds,
    request_logs,
    routing_configs,
    webhook_endpoints,
)
from kassa.domain.errors import KassaError
from kassa.services.context import Kassa
from kassa.services.merchants import KeyCache

HEALTH_TIMEOUT_SECONDS = 2.0
ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


async def _database_answers(k: Kassa) -> bool:
    """SELECT 1 within HEALTH_TIMEOUT_SECONDS. Not cancelled past it, only left to finish:
    a cancelled query's clean-up (asyncpg's cancel request, the pool's release) would wait
    on the same stalled database."""
    probe = asyncio.ensure_future(k.pool.fetchval("SELECT 1"))
    done, _ = await asyncio.wait({probe}, timeout=HEALTH_TIMEOUT_SECONDS)
    if not done:
        probe.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        return False
    return probe.exception() is None and probe.result() == 1


def create_app(*, kassa: Kassa | None = None,
               lifespan_kassa: Callable[[], Awaitable[tuple[Kassa, Callable[[], Awaitable[None]]]]]
               | None = None,
               readiness: ReadinessCheck | None = None,
               dependencies: ReadinessCheck | None = None, key_cache_seconds: float = 5.0,
               max_body_bytes: int | None = None, answer_within_seconds: float | None = None
               ) -> FastAPI:
    """Either pass a ready ``kassa`` (tests) or ``lifespan_kassa`` that builds one at start-up
    and returns it with its closer (production, so the pool lives on the server's loop).
    ``max_body_bytes`` and ``answer_within_seconds`` default to their KASSA_API_* settings."""
    if max_body_bytes is None or answer_within_seconds is None:
        from kassa.config import Settings

        configured = Settings()
        max_body_bytes = max_body_bytes or configured.api_max_body_bytes
        answer_within_seconds = answer_within_seconds or configured.api_answer_within_seconds

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        closer = None
        if lifespan_kassa is not None:
            app.state.kassa, closer = await lifespan_kassa()
        try:
            yield
        finally:
            if closer is not None:
                await closer()

    # /docs (Swagger UI) from assets in the installed fastapi-offline package: no CDN, so
    # the docs work inside a closed network. No /redoc: ReDoc's page fetches its logo from
    # its CDN whatever the options.
    app = FastAPIOffline(title="kassa", version="0.1.0", lifespan=lifespan,
                         static_url="/docs/assets", redoc_url=None,
                         description="Stripe-shaped payments API with a double-entry ledger.")
    if kassa is not None:
        app.state.kassa = kassa
    app.state.keys = KeyCache(key_cache_seconds)

    for module in (payment_intents, charges, refunds, balance, events, webhook_endpoints,
                   disputes, payouts, psp_webhooks, psp_returns, receipts, request_logs,
                   payment_methods, customers, checkout, account,
                   reconciliation, routing_configs, psp_accounts, exchange_rates, metrics):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"],
             responses={200: {"model": responses.Health, "description": "Ready."},
                        503: {"model": responses.Health, "description": "Not ready.",
                              "headers": openapi.errors(503)[503]["headers"]}})
    async def healthz(request: Request) -> Response:
        k: Kassa | None = getattr(request.app.state, "kassa", None)
        checks = {"database": k is not None and await _database_answers(k)}
        if readiness is not None:
            checks.update(await readiness())
        ok = all(checks.values())
        body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
        if dependencies is not None:
            # shown, never a reason to be unready: every replica shares the PSPs, and a
            # probe that took them all out during a PSP's outage would stop the failover
            # to the others (and the refunds, captures and lookups that need no PSP A)
            body["dependencies"] = await dependencies()
        return Response(orjson.dumps(body),
                        status_code=200 if ok else 503, media_type="application/json",
                        headers=None if ok else
                        {"Retry-After": str(errors.RETRY_AFTER_SECONDS)})

    @app.exception_handler(KassaError)
    async def kassa_error(request: Request, exc: KassaError) -> Response:
        return respond(exc)

    @app.exception_handler(ValidationError)
    async def validation_error(request: Request, exc: ValidationError) -> Response:
        return respond(exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation_error(request: Request, exc: RequestValidationError
                                       ) -> Response:
        return Response(orjson.dumps(errors.validation_body(exc.errors())), status_code=400,
                        media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            body = errors.error_body(
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.url.path}).")
        elif exc.status_code == 405:
            body = errors.error_body(
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.url.path}). "
                "This method is not allowed on this resource.")
        else:
            body = errors.error_body("invalid_request_error", str(exc.detail))
        return Response(orjson.dumps(body), status_code=exc.status_code,
                        media_type="application/json")

    openapi.install(app)
    # any other error is answered by the door, which keeps the connection open
    app.add_middleware(Door, max_body_bytes=max_body_bytes,
                       answer_within=answer_within_seconds)
    # kassa.js on a merchant's own origin retrieves and confirms with the publishable key
    # and client_secret, as Stripe.js does: CORS there only; a secret key from a page is
    # refused everywhere (api/browsers.py)
    app.add_middleware(BrowserDoor, routes=browsers.API_ROUTES,
                       allow_headers=["Authorization", "Content-Type", "Idempotency-Key",
                                      "Stripe-Version"],
                       expose_headers=["Request-Id", "Idempotent-Replayed"])
    # outermost (added last): every answer, the door's too, carries its Request-Id
    app.add_middleware(RequestIds, kassa=lambda: getattr(app.state, "kassa", None))
    return app
