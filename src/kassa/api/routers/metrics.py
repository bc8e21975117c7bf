"""GET /metrics: Prometheus text of this process's PSP calls, breakers and routing.

Not behind the merchant API's keys (it is the operator's): with KASSA_METRICS_TOKEN set it
wants ``Authorization: Bearer <token>``; unset, it is open, so bind the API to a private
network or let the reverse proxy refuse /metrics from outside. Its numbers hold no
merchant data: PSP account names, operations, outcomes, rule names.
"""

from __future__ import annotations

import functools
import hmac

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kassa.api import deps, errors

router = APIRouter(tags=["metrics"])


@functools.cache
def _configured_token() -> str | None:
    from kassa.config import Settings

    return Settings().metrics_bearer()


def token(request: Request) -> str | None:
    """app.state.metrics_token when set (tests: "" means open), else the setting."""
    configured: str | None = getattr(request.app.state, "metrics_token", None)
    if configured is not None:
        return configured or None
    return _configured_token()


@router.get("/metrics", include_in_schema=False)  # Prometheus's format, not the API's
async def metrics(request: Request) -> Response:
    wanted = token(request)
    if wanted is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {wanted}".encode()):
            return Response(orjson.dumps(errors.error_body(
                "invalid_request_error", "GET /metrics wants Authorization: Bearer "
                "<KASSA_METRICS_TOKEN>.")), status_code=401, media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    monitor = getattr(deps.kassa(request).router, "monitor", None)
    body = b"" if monitor is None else generate_latest(monitor.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
