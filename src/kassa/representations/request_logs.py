"""kassa's request_log object: one merchant request answered with an error (Stripe shows
these in its dashboard's logs, where an error's ``request_log_url`` points)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def request_log(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "request_log",
        "created": row["created"],
        "error": row["error"],
        "idempotency_key": row["idempotency_key"],
        "livemode": False,
        "method": row["method"],
        "path": row["path"],
        "status": row["status"],
    }
