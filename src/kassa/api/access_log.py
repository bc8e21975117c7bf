"""One structured line per API request (method, path, status, duration), carrying its
``request_id``: the id a merchant quotes from a ``Request-Id`` header or an error's
``request_log_url`` finds the request in the logs.

structlog, wrapped around the stdlib logger ``kassa.api.requests`` rather than configured
globally: levels and handlers stay the host's (uvicorn, pytest's caplog), and importing
kassa changes no one else's logging.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from kassa import request_context


def _add_request(logger: Any, method_name: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
    """Every line logged while a request is served names it."""
    ctx = request_context.current()
    if ctx is not None:
        event.setdefault("request_id", ctx.id)
        if ctx.idempotency_key is not None:
            event.setdefault("idempotency_key", ctx.idempotency_key)
    return event


PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,  # nothing is rendered for a level that is off
    _add_request,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.JSONRenderer(sort_keys=True),
]


def get_logger(name: str) -> Any:
    # cached: the lazy proxy would otherwise build a new bound logger for every line
    return structlog.wrap_logger(logging.getLogger(name), processors=PROCESSORS,
                                 wrapper_class=structlog.stdlib.BoundLogger,
                                 cache_logger_on_first_use=True)


access_log = get_logger("kassa.api.requests")
_requests = logging.getLogger("kassa.api.requests")


def access_log_enabled() -> bool:
    """Whether the request line would be emitted: asked before its fields are gathered, the
    same question structlog's filter_by_level asks (~0.3 µs instead of ~6 µs per request
    when the level is off, as it is in production's default WARNING)."""
    return _requests.isEnabledFor(logging.INFO)
