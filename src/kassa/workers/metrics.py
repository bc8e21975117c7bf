"""A worker process's own /metrics: the PSP calls its loops make (recovery's lookups and
repeated calls, inbound events' lookups), its breakers and routing, in the API's format.

Every process measures its own calls (psp/monitor.py) and the API's ``GET /metrics`` serves
only the API's, so a worker's calls were visible to no scrape. The body is
prometheus-client's own ASGI app over the process's registry; this module only gates it
with KASSA_METRICS_TOKEN (as the API's /metrics is) and serves it on
KASSA_WORKER_METRICS_HOST:KASSA_WORKER_METRICS_PORT (loopback unless told otherwise).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import make_asgi_app
from prometheus_client.registry import CollectorRegistry

if TYPE_CHECKING:  # `kassa --help` loads no server code (tests/unit/test_cli_commands.py)
    import uvicorn

Scope = dict[str, Any]

UNAUTHORIZED = orjson.dumps({"error": {
    "type": "invalid_request_error",
    "message": "GET /metrics wants Authorization: Bearer <KASSA_METRICS_TOKEN>."}})
NOT_FOUND = orjson.dumps({"error": {
    "type": "invalid_request_error", "message": "Only GET /metrics is served here."}})


def metrics_app(registry: CollectorRegistry, token: str | None) -> Any:
    """``GET /metrics`` of ``registry``; with ``token``, only for ``Bearer <token>``."""
    exposition = make_asgi_app(registry)
    wanted = f"Bearer {token}".encode() if token else None

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan: nothing to start or stop
            return
        if scope["path"] != "/metrics":
            await _answer(send, 404, NOT_FOUND)
            return
        if wanted is not None:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, wanted):
                await _answer(send, 401, UNAUTHORIZED,
                              [(b"www-authenticate", b'Bearer realm="metrics"')])
                return
        await exposition(scope, receive, send)

    return app


async def _answer(send: Any, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def metrics_server(registry: CollectorRegistry, token: str | None,
                   server_class: type[uvicorn.Server] | None = None) -> uvicorn.Server:
    """The uvicorn server of :func:`metrics_app`; ``server_class`` one that leaves the
    process's signals to its owner (the worker's loops stop on them, then this)."""
    import uvicorn

    cls = server_class or uvicorn.Server
    return cls(uvicorn.Config(metrics_app(registry, token), log_level="warning",
                              access_log=False, lifespan="off"))
