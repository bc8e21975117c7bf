"""The request log: merchant requests answered with an error, kept for RETENTION_SECONDS
and read back under their Request-Id (an error's ``request_log_url``)."""

from __future__ import annotations

import logging
from typing import Any

from kassa.db import request_logs as request_logs_db
from kassa.domain.errors import NotFound
from kassa.representations.request_logs import request_log
from kassa.services.context import Kassa

log = logging.getLogger(__name__)
RETENTION_SECONDS = 30 * 24 * 3600


async def record(kassa: Kassa, *, request_id: str, merchant_id: str, method: str, path: str,
                 status: int, idempotency_key: str | None, error: dict[str, Any] | None
                 ) -> None:
    """Best effort, after the answer went out: a log that cannot be written (the database
    is down: that is why the answer was an error) costs the link, never the request."""
    try:
        await request_logs_db.insert(kassa.pool, request_id=request_id, merchant_id=merchant_id,
                          method=method, path=path, status=status,
                          idempotency_key=idempotency_key, error=error, created=kassa.clock())
    except Exception as exc:  # noqa: BLE001 - diagnostics must not fail the request
        log.warning("request log %s not written: %r", request_id, exc)


async def retrieve(kassa: Kassa, *, merchant_id: str, request_id: str) -> dict[str, Any]:
    row = await request_logs_db.get(kassa.pool, merchant_id=merchant_id, request_id=request_id)
    if row is None:
        raise NotFound(f"No such request log: '{request_id}'", param="id")
    return request_log(row)


async def expire(kassa: Kassa) -> int:
    return await request_logs_db.expire(kassa.pool, older_than=kassa.clock() - RETENTION_SECONDS)
