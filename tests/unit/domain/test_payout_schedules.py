"""Payout schedules: periods tile time with no gap and no overlap, so a scheduler over any
split of a time range (downtime included) finds each period exactly once; monthly anchors
29-31 fall on the last day of shorter months; and available_on follows the delay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.errors import InvalidRequest
from kassa.domain.payout_schedules import WEEKDAYS, Interval, PayoutSchedule, Period
from kassa.domain.settlement import DEFAULT_DELAY_DAYS, available_on


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def test_defaults_are_stripes():
    s = PayoutSchedule()
    assert (s.interval, s.delay_days) == (Interval.DAILY, DEFAULT_DELAY_DAYS) == ("daily", 2)
    assert PayoutSchedule(interval=Interval.WEEKLY).weekly_anchor == "monday"
    assert PayoutSchedule(interval=Interval.MONTHLY).monthly_anchor == 1


@pytest.mark.parametrize("kwargs", [
    {"interval": "hourly"},
    {"delay_days": -1}, {"delay_days": 366}, {"delay_days": True},
    {"interval": "daily", "weekly_anchor": "monday"},
    {"interval": "weekly", "monthly_anchor": 3},
    {"interval": "weekly", "weekly_anchor": "someday"},
    {"interval": "monthly", "monthly_anchor": 0},
    {"interval": "monthly", "monthly_anchor": 32},
])
def test_bad_schedules_are_refused(kwargs):
    with pytest.raises(InvalidRequest):
        PayoutSchedule(**kwargs)


def test_manual_has_no_periods():
    s = PayoutSchedule(interval="manual")  # type: ignore[arg-type]
    assert s.period_containing(at(2026, 12, 2)) is None
    assert s.periods_due(after=at(2026, 1, 1), until=at(2027, 1, 1)) == []


def test_daily_weekly_monthly_periods():
    moment = at(2026, 12, 2, 15, 30)  # a Wednesday
    assert PayoutSchedule().period_containing(moment) == Period(date(2026, 12, 2),
                                                                date(2026, 12, 3))
    weekly = PayoutSchedule(interval=Interval.WEEKLY, weekly_anchor="friday")
    assert weekly.period_containing(moment) == Period(date(2026, 11, 27), date(2026, 12, 4))
    monthly = PayoutSchedule(interval=Interval.MONTHLY, monthly_anchor=15)
    assert monthly.period_containing(moment) == Period(date(2026, 11, 15), date(2026, 12, 15))


def test_monthly_anchor_31_is_the_last_day_of_shorter_months():
    s = PayoutSchedule(interval=Interval.MONTHLY, monthly_anchor=31)
    starts = [p.start for p in s.periods_due(after=at(2027, 12, 31), until=at(2028, 6, 1))]
    assert starts == [date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31),
                      date(2028, 4, 30), date(2028, 5, 31)]
    assert s.period_containing(at(2027, 2, 28)) == Period(date(2027, 2, 28), date(2027, 3, 31))
    assert s.period_containing(at(2027, 2, 27)) == Period(date(2027, 1, 31), date(2027, 2, 28))


def test_due_window_is_half_open_and_keys_are_payout_dates():
    s = PayoutSchedule()
    due = s.periods_due(after=at(2026, 12, 1), until=at(2026, 12, 3))
    assert [p.key for p in due] == ["2026-12-02", "2026-12-03"]
    assert s.periods_due(after=at(2026, 12, 3), until=at(2026, 12, 3)) == []
    assert s.periods_due(after=at(2026, 12, 3), until=at(2026, 12, 1)) == []


def test_any_timezone_counts_in_utc_and_naive_times_are_refused():
    tokyo = timezone(timedelta(hours=9))
    assert PayoutSchedule().period_containing(
        datetime(2026, 12, 3, 8, 0, tzinfo=tokyo)).key == "2026-12-02"
    with pytest.raises(ValueError):
        PayoutSchedule().period_containing(datetime(2026, 12, 3))


def test_available_on_is_midnight_utc_after_the_delay():
    assert available_on(at(2026, 12, 2, 23, 59)) == at(2026, 12, 4)
    assert available_on(at(2026, 12, 2, 0, 0), 0) == at(2026, 12, 2)
    assert PayoutSchedule(delay_days=7).available_on(at(2026, 12, 31, 12)) == at(2027, 1, 7)
    with pytest.raises(ValueError):
        available_on(datetime(2026, 12, 2))


schedules = st.one_of(
    st.just(PayoutSchedule()),
    st.builds(PayoutSchedule, interval=st.just(Interval.WEEKLY),
              weekly_anchor=st.sampled_from(WEEKDAYS)),
    st.builds(PayoutSchedule, interval=st.just(Interval.MONTHLY),
              monthly_anchor=st.integers(1, 31)),
)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2032, 12, 31),
                        timezones=st.just(UTC))


@given(schedules, instants)
def test_a_moment_falls_in_exactly_its_period(schedule, moment):
    period = schedule.period_containing(moment)
    assert period is not None
    assert period.starts_at <= moment < datetime.combine(period.end, datetime.min.time(), UTC)
    assert schedule.period_containing(period.starts_at) == period
    following = schedule.period_containing(
        datetime.combine(period.end, datetime.min.time(), UTC))
    assert following is not None and following.start == period.end  # no gap, no overlap


@given(schedules, st.lists(instants, min_size=2, max_size=8))
def test_runs_over_any_split_of_time_find_each_period_once(schedule, cuts):
    """However a scheduler's runs (and its downtime) cut a range, the runs together make
    each automatic payout due in it exactly once, in order."""
    cuts = sorted(cuts)
    pieces = [p for a, b in zip(cuts, cuts[1:], strict=False)
              for p in schedule.periods_due(after=a, until=b)]
    whole = schedule.periods_due(after=cuts[0], until=cuts[-1])
    assert pieces == whole
    keys = [p.key for p in whole]
    assert len(keys) == len(set(keys))  # no two payouts for one period
    for p, q in zip(whole, whole[1:], strict=False):
        assert p.end == q.start  # none skipped
    if whole:
        assert schedule.period_containing(cuts[0]).end == whole[0].start  # type: ignore[union-attr]
        assert whole[-1].starts_at <= cuts[-1] < datetime.combine(
            whole[-1].end, datetime.min.time(), UTC)


def test_catch_up_starts_at_the_current_period_then_follows_the_watermark():
    s = PayoutSchedule()
    assert [p.key for p in s.catch_up(scheduled_through=None, now=at(2026, 12, 2, 9))] == [
        "2026-12-02"]
    assert [p.key for p in s.catch_up(scheduled_through=at(2026, 12, 2, 9),
                                      now=at(2026, 12, 5, 1))] == [
        "2026-12-03", "2026-12-04", "2026-12-05"]
    assert PayoutSchedule(interval=Interval.MANUAL).catch_up(scheduled_through=None,
                                                             now=at(2026, 12, 2)) == []
