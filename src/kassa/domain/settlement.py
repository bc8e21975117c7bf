"""When captured funds become available to the merchant: the settlement delay in days
(per merchant, default 2) and the ``available_on`` instant it gives."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

DEFAULT_DELAY_DAYS = 2
MAX_DELAY_DAYS = 365


def available_on(captured_at: datetime, delay_days: int = DEFAULT_DELAY_DAYS) -> datetime:
    """00:00 UTC of the day ``delay_days`` after the (UTC) day of capture, as Stripe's
    ``available_on``: funds captured at any time on one day become available together."""
    if captured_at.tzinfo is None or captured_at.utcoffset() is None:
        raise ValueError("available_on needs a timezone-aware datetime")
    if isinstance(delay_days, bool) or not 0 <= delay_days <= MAX_DELAY_DAYS:
        raise ValueError(f"delay_days must be from 0 to {MAX_DELAY_DAYS}")
    day = captured_at.astimezone(UTC).date() + timedelta(days=delay_days)
    return datetime.combine(day, time(), UTC)
