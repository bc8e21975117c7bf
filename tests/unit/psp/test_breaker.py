"""The circuit breaker: opens above the failure ratio once the window has its minimum
volume (not before), counts slow answers as failures, forgets old buckets, half-opens after
the cool-down with a bounded number of probes that close or re-open it."""

from __future__ import annotations

from kassa.psp.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = BreakerPolicy(window_seconds=10, bucket_seconds=1, min_volume=10, failure_ratio=0.5,
                       cooldown_seconds=5, probes=2, slow_call_seconds=1.0)


def breaker() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(POLICY, clock), clock


def test_stays_closed_below_the_minimum_volume_even_if_everything_fails():
    b, _ = breaker()
    for _ in range(9):
        b.record(failed=True)
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record(failed=True)  # the 10th call: volume reached, 100 % failed
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.opened_count == 1


def test_opens_only_above_the_ratio():
    b, _ = breaker()
    for i in range(20):
        b.record(failed=i % 2 == 1)  # never above 50 %
    assert b.state is BreakerState.CLOSED
    b.record(failed=True)  # 11 of 21
    assert b.state is BreakerState.OPEN


def test_a_slow_answer_is_a_failure():
    b, _ = breaker()
    for _ in range(10):
        b.record(failed=False, seconds=1.5)
    assert b.state is BreakerState.OPEN


def test_old_failures_leave_the_window():
    b, clock = breaker()
    for _ in range(9):
        b.record(failed=True)
    clock.now += 11  # past the window
    for _ in range(9):
        b.record(failed=False)
    b.record(failed=True)
    assert b.state is BreakerState.CLOSED
    assert b.counts() == (10, 1)


def test_half_open_after_the_cooldown_probes_close_it():
    b, clock = breaker()
    for _ in range(10):
        b.record(failed=True)
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and b.allow()
    assert not b.allow()  # only two probes at a time
    b.record(failed=False)
    assert b.state is BreakerState.HALF_OPEN
    b.record(failed=False)
    assert b.state is BreakerState.CLOSED and b.counts() == (0, 0)


def test_a_failed_probe_opens_it_again():
    b, clock = breaker()
    for _ in range(10):
        b.record(failed=True)
    clock.now += 5
    assert b.allow()
    b.record(failed=True)
    assert b.state is BreakerState.OPEN and b.opened_count == 2
    clock.now += 5
    assert b.state is BreakerState.HALF_OPEN


def test_probe_slots_never_recorded_are_given_back_after_a_cooldown():
    b, clock = breaker()
    for _ in range(10):
        b.record(failed=True)
    clock.now += 5
    assert b.allow() and b.allow() and not b.allow()
    clock.now += 5
    assert b.allow()
