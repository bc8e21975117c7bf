"""A circuit breaker per PSP account: failure rate over a sliding window, cool-down, probes.

Written here rather than taken from ``purgatory`` (checked, 3.x): purgatory opens after N
*consecutive* failures and has no notion of a failure *rate* over a time window with a
minimum volume, nor of a slow answer counting as a failure; its shared state needs Redis.
ARCHITECTURE §5 asks for "> 50 % failures over a window with a minimum volume", which is
this module's whole job in ~100 lines.

State is per process (each API replica and worker keeps its own): a breaker only steers
traffic away from an account and never decides whether money moved, so replicas that
disagree for a few seconds cost some extra failovers, never a wrong record.

- closed: calls go through; each outcome lands in a bucket of ``bucket_seconds``; when
  the buckets of the last ``window_seconds`` hold ≥ ``min_volume`` calls of which more
  than ``failure_ratio`` failed, it opens.
- open: ``allow()`` is False (the router does not send there) for ``cooldown_seconds``.
- half_open: up to ``probes`` calls at a time are let through; ``probes`` successes in a
  row close it (window cleared), one failure opens it again for another cool-down.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # normal: calls go through, outcomes are counted
    OPEN = "open"  # too many failures: nothing is sent until the cool-down ends
    HALF_OPEN = "half_open"  # cool-down over: a few probe calls decide

    @property
    def gauge(self) -> int:
        """The number /metrics shows: 0 closed, 1 half-open, 2 open."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window_seconds: float = 30.0
    bucket_seconds: float = 1.0
    min_volume: int = 20  # calls in the window before the rate means anything
    failure_ratio: float = 0.5  # opens when failures / calls exceeds this
    cooldown_seconds: float = 15.0
    probes: int = 3  # concurrent half-open probes, and successes needed to close
    slow_call_seconds: float = 5.0  # a call slower than this counts as a failure


class CircuitBreaker:
    def __init__(self, policy: BreakerPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._buckets: deque[list[float]] = deque()  # [start, calls, failures]
        self._probing = 0
        self._probe_successes = 0
        self._last_probe = 0.0
        self.opened_count = 0  # times it opened, for /metrics

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and \
                self._clock() - self._opened_at >= self.policy.cooldown_seconds:
            self._state = BreakerState.HALF_OPEN
            self._probing = 0
            self._probe_successes = 0
        return self._state

    def allow(self) -> bool:
        """May a call be sent now? In half-open this takes one of the probe slots, given
        back by ``record`` (every allowed call must be recorded)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            if self._probing >= self.policy.probes and \
                    self._clock() - self._last_probe >= self.policy.cooldown_seconds:
                self._probing = 0  # probes allowed but never recorded: give the slots back
            if self._probing < self.policy.probes:
                self._probing += 1
                self._last_probe = self._clock()
                return True
        return False

    def would_allow(self) -> bool:
        """``allow`` without taking a probe slot (to rank candidates)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and self._probing < self.policy.probes)

    def record(self, *, failed: bool, seconds: float = 0.0) -> None:
        failed = failed or seconds > self.policy.slow_call_seconds
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._probing = max(0, self._probing - 1)
            if failed:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self.policy.probes:
                self._state = BreakerState.CLOSED
                self._buckets.clear()
            return
        if state is BreakerState.OPEN:
            return  # a call sent before it opened: the window is already decided
        now = self._clock()
        if not self._buckets or now - self._buckets[-1][0] >= self.policy.bucket_seconds:
            self._buckets.append([now, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        while self._buckets and now - self._buckets[0][0] >= self.policy.window_seconds:
            self._buckets.popleft()
        calls, failures = self.counts()
        if calls >= self.policy.min_volume and failures / calls > self.policy.failure_ratio:
            self._open()

    def counts(self) -> tuple[int, int]:
        """(calls, failures) in the window as it stands."""
        return (int(sum(b[1] for b in self._buckets)), int(sum(b[2] for b in self._buckets)))

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._buckets.clear()
        self._probing = 0
        self._probe_successes = 0
        self.opened_count += 1
