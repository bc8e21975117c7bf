"""Test helpers for recovery: make the attempts it watches due now."""

from __future__ import annotations

from kassa.services.context import Kassa


async def make_due(kassa: Kassa, payment_id: str | None = None) -> int:
    """Every watched attempt (of ``payment_id``) is due for a look now, as if its wait
    (backoff, poll interval, deadline) had passed. Returns how many."""
    result = await kassa.pool.execute(
        "UPDATE attempts SET next_check_at = now() - interval '1 second'"
        " WHERE next_check_at IS NOT NULL AND ($1::text IS NULL OR payment_intent_id = $1)",
        payment_id)
    return int(result.split()[-1])
