"""Reading the event stream (the outbox rows written by every state change)."""

from __future__ import annotations

from typing import Any

from kassa.db import events as events_db
from kassa.domain.errors import NotFound
from kassa.domain.lists import Bounds
from kassa.services.context import Kassa
from kassa.services.webhooks import pending_webhooks


async def retrieve(kassa: Kassa, *, merchant_id: str, event_id: str) -> dict[str, Any]:
    event = await events_db.get_event(kassa.pool, merchant_id=merchant_id, event_id=event_id)
    if event is None:
        raise NotFound(f"No such event: '{event_id}'", param="id")
    await _with_pending_webhooks(kassa, merchant_id, [event])
    return event


async def _with_pending_webhooks(kassa: Kassa, merchant_id: str,
                                 events: list[dict[str, Any]]) -> None:
    """Stored events say 0; the live count is their deliveries not yet acknowledged."""
    counts = await pending_webhooks(kassa, merchant_id=merchant_id,
                                    event_ids=[e["id"] for e in events])
    for e in events:
        e["pending_webhooks"] = counts.get(e["id"], 0)


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, type: str | None, types: list[str] | None = None,
                created: Bounds | None = None) -> tuple[list[dict[str, Any]], bool]:
    items, more = await events_db.list_events(kassa.pool, merchant_id=merchant_id, limit=limit,
                                              starting_after=starting_after,
                                              ending_before=ending_before, type=type, types=types,
                                              created=created)
    await _with_pending_webhooks(kassa, merchant_id, items)
    return items, more
