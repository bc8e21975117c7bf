"""Payout schedules as pure functions of time: the period a moment falls in, and every
period due between two instants, so a scheduler that was down catches up on each missed
period, and each period has a key the database can hold unique per merchant and currency.

A period runs from one payout date (00:00 UTC) to the next, exclusive: ``daily`` every day,
``weekly`` on the anchor weekday, ``monthly`` on the anchor day of the month (29–31 mean the
month's last day in shorter months, as Stripe's ``monthly_anchor``). ``manual`` has no
periods: payouts are only created through the API. A period's key is its payout date, so a
schedule changed mid-period can still never make two automatic payouts on one date.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from kassa.domain.errors import InvalidRequest
from kassa.domain.settlement import DEFAULT_DELAY_DAYS, MAX_DELAY_DAYS, available_on


class Interval(StrEnum):
    MANUAL = "manual"  # no automatic payouts
    DAILY = "daily"
    WEEKLY = "weekly"  # on weekly_anchor
    MONTHLY = "monthly"  # on monthly_anchor (29-31: the last day of shorter months)


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Period:
    """One payout period: ``[start, end)`` in UTC days; the payout is made on ``start``."""

    start: date
    end: date

    @property
    def key(self) -> str:
        """Unique per merchant and currency for automatic payouts (the payout date)."""
        return self.start.isoformat()

    @property
    def starts_at(self) -> datetime:
        """The instant the period's payout falls due; it pays what is available by then."""
        return datetime.combine(self.start, time(), UTC)


def _utc_day(moment: datetime) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("payout schedules need timezone-aware datetimes")
    return moment.astimezone(UTC).date()


def _anchor_in(year: int, month: int, anchor: int) -> date:
    return date(year, month, min(anchor, calendar.monthrange(year, month)[1]))


def _month_after(day: date) -> tuple[int, int]:
    return (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)


def _month_before(day: date) -> tuple[int, int]:
    return (day.year - 1, 12) if day.month == 1 else (day.year, day.month - 1)


@dataclass(frozen=True, slots=True)
class PayoutSchedule:
    """A merchant's payout schedule, in Stripe's terms (``settings.payouts.schedule``)."""

    interval: Interval = Interval.DAILY
    delay_days: int = DEFAULT_DELAY_DAYS  # captured funds become available this many days on
    weekly_anchor: str | None = None  # weekly only; default monday
    monthly_anchor: int | None = None  # monthly only, 1-31; default 1

    def __post_init__(self) -> None:
        if not isinstance(self.interval, Interval):
            try:
                object.__setattr__(self, "interval", Interval(self.interval))
            except ValueError:
                raise InvalidRequest(
                    f"Invalid interval: must be one of {', '.join(Interval)}.",
                    param="interval") from None
        if (isinstance(self.delay_days, bool) or not isinstance(self.delay_days, int)
                or not 0 <= self.delay_days <= MAX_DELAY_DAYS):
            raise InvalidRequest(f"delay_days must be an integer from 0 to {MAX_DELAY_DAYS}.",
                                 param="delay_days")
        weekly = self.interval is Interval.WEEKLY
        monthly = self.interval is Interval.MONTHLY
        if self.weekly_anchor is not None and not weekly:
            raise InvalidRequest("weekly_anchor applies only to a weekly interval.",
                                 param="weekly_anchor")
        if self.monthly_anchor is not None and not monthly:
            raise InvalidRequest("monthly_anchor applies only to a monthly interval.",
                                 param="monthly_anchor")
        if weekly:
            anchor = (self.weekly_anchor or "monday").lower()
            if anchor not in WEEKDAYS:
                raise InvalidRequest(f"weekly_anchor must be one of {', '.join(WEEKDAYS)}.",
                                     param="weekly_anchor")
            object.__setattr__(self, "weekly_anchor", anchor)
        if monthly:
            anchor_day = 1 if self.monthly_anchor is None else self.monthly_anchor
            if (isinstance(anchor_day, bool) or not isinstance(anchor_day, int)
                    or not 1 <= anchor_day <= 31):
                raise InvalidRequest("monthly_anchor must be an integer from 1 to 31.",
                                     param="monthly_anchor")
            object.__setattr__(self, "monthly_anchor", anchor_day)

    @property
    def automatic(self) -> bool:
        return self.interval is not Interval.MANUAL

    def available_on(self, captured_at: datetime) -> datetime:
        return available_on(captured_at, self.delay_days)

    # -- periods ---------------------------------------------------------------------------

    def _start_on_or_before(self, day: date) -> date:
        if self.interval is Interval.DAILY:
            return day
        if self.interval is Interval.WEEKLY:
            anchor = WEEKDAYS.index(self.weekly_anchor or "monday")
            return day - timedelta(days=(day.weekday() - anchor) % 7)
        assert self.monthly_anchor is not None
        here = _anchor_in(day.year, day.month, self.monthly_anchor)
        return here if here <= day else _anchor_in(*_month_before(day), self.monthly_anchor)

    def _next_start(self, start: date) -> date:
        if self.interval is Interval.DAILY:
            return start + timedelta(days=1)
        if self.interval is Interval.WEEKLY:
            return start + timedelta(days=7)
        assert self.monthly_anchor is not None
        return _anchor_in(*_month_after(start), self.monthly_anchor)

    def period_containing(self, moment: datetime) -> Period | None:
        """The period ``moment`` falls in; None for a manual schedule."""
        day = _utc_day(moment)
        if not self.automatic:
            return None
        start = self._start_on_or_before(day)
        return Period(start, self._next_start(start))

    def periods_due(self, *, after: datetime, until: datetime) -> list[Period]:
        """Every period whose payout falls due in ``(after, until]``, oldest first.

        Consecutive windows ``(t0, t1]``, ``(t1, t2]`` together give exactly the periods of
        ``(t0, t2]``, each once: a scheduler that remembers the end of its last run misses
        none after downtime, and one that runs twice over a window doubles none (the key is
        unique in the database as well)."""
        return list(self._iter_due(after, until))

    def catch_up(self, *, scheduled_through: datetime | None,
                 now: datetime) -> list[Period]:
        """The periods a scheduler makes now: those due since its watermark; on its first
        run (no watermark) only the current period's, never the merchant's whole past."""
        if scheduled_through is None:
            current = self.period_containing(now)
            return [] if current is None else [current]
        return self.periods_due(after=scheduled_through, until=now)

    def _iter_due(self, after: datetime, until: datetime) -> Iterator[Period]:
        _utc_day(until)
        first = self.period_containing(after)
        if first is None or until <= after:
            return
        start = first.start if first.starts_at > after else first.end
        while datetime.combine(start, time(), UTC) <= until:
            end = self._next_start(start)
            yield Period(start, end)
            start = end
