"""Reading the event stream (the outbox rows written by every state change)."""

from __future__ import annotations

from typing import Any

from kassa.db import repositories as repo
from kassa.domain.errors import NotFound
from kassa.services.context import Kassa


async def retrieve(kassa: Kassa, *, merchant_id: str, event_id: str) -> dict[str, Any]:
    event = await repo.get_event(kassa.pool, merchant_id=merchant_id, event_id=event_id)
    if event is None:
        raise NotFound(f"No such event: '{event_id}'", param="id")
    return event


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, type: str | None
                ) -> tuple[list[dict[str, Any]], bool]:
    return await repo.list_events(kassa.pool, merchant_id=merchant_id, limit=limit,
                                  starting_after=starting_after, ending_before=ending_before,
                                  type=type)
