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
    return structlog.wrap_logger(logging.getLogger(name), processors=PROCESSORS,
                                 wrapper_class=structlog.stdlib.BoundLogger)


access_log = get_logger("kassa.api.requests")
