"""Stripe's event object, as the outbox stores it and /v1/events and webhooks send it."""

from __future__ import annotations

from typing import Any


def event(*, id: str, type: str, created: int, obj: dict[str, Any],
          previous: dict[str, Any] | None = None,
          request: dict[str, str | None] | None = None) -> dict[str, Any]:
    """``request``: the API request that caused it (``id``, ``idempotency_key``); both
    null for automatic events (workers, recovery, PSP webhooks), as at Stripe."""
    data: dict[str, Any] = {"object": obj}
    if previous:
        data["previous_attributes"] = previous
    return {
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": request or {"id": None, "idempotency_key": None},
        "type": type,
    }
