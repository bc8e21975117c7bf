"""The webhook_delivery object (kassa's own; Stripe shows deliveries only in its dashboard)
with its attempts, and the public id a delivery is known by (API cursors, the delivery
header)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PREFIX = "whdel_"


def delivery_public_id(delivery_id: int) -> str:
    return f"{PREFIX}{delivery_id}"


def parse_delivery_id(public_id: str) -> int | None:
    """The row id behind ``whdel_<digits>``; None for anything else."""
    if not public_id.startswith(PREFIX):
        return None
    digits = public_id[len(PREFIX):]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        return None
    return int(digits)


def delivery_attempt(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "attempted_at": row["attempted_at"],
        "succeeded": row["succeeded"],
        "status_code": row["status_code"],
        "duration_ms": row["duration_ms"],
        "error": row["error"],
        "response": row["response_excerpt"],
    }


def webhook_delivery(row: Mapping[str, Any],
                     attempts: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One event's delivery to one endpoint. ``next_attempt_at`` is when it is due: the
    scheduled retry, or the end of a sender's lease while a request is in flight."""
    obj: dict[str, Any] = {
        "id": delivery_public_id(row["id"]),
        "object": "webhook_delivery",
        "webhook_endpoint": row["endpoint_id"],
        "event": row["event_id"],
        "event_type": row["event_type"],
        "status": row["status"],
        "attempt_count": row["attempt_count"],
        "next_attempt_at": row["next_attempt_at"],
        "last_attempt_at": row["last_attempt_at"],
        "last_status_code": row["last_status_code"],
        "last_duration_ms": row["last_duration_ms"],
        "last_error": row["last_error"],
        "created": row["created"],
        "completed_at": row["completed_at"],
    }
    if attempts is not None:
        obj["attempts"] = [delivery_attempt(a) for a in attempts]
    return obj
