"""Sliding windows of authorisation outcomes per PSP account (and per currency × brand),
the measurements success-rate routing ranks accounts by.

Each window keeps the last ``size`` outcomes no older than ``max_age_seconds``, with running
counts, so a routing decision reads three integers per account. An outcome is one of:

- ``approved``: authorised (or sent to 3-D Secure: the PSP did its job);
- ``declined``: the issuer said no — counted apart, it is the card's doing, but an account
  whose issuers decline more is still the worse route;
- ``failed``: the PSP itself failed (unavailable, outcome unknown, refused the request).

State is per process, documented in the README: ranking only needs a recent sample, each
replica sees a fair share of the traffic, and nothing about money depends on it. Putting
it in PostgreSQL would add a write per authorisation to the hot path for a number that is
an estimate anyway.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kassa.domain.routing import Score

OUTCOMES = ("approved", "declined", "failed")


@dataclass(frozen=True, slots=True)
class WindowCounts:
    approved: int
    declined: int
    failed: int

    @property
    def total(self) -> int:
        return self.approved + self.declined + self.failed

    def score(self) -> Score:
        return Score(approved=self.approved, attempts=self.total)


class OutcomeWindow:
    def __init__(self, size: int, max_age_seconds: float) -> None:
        self._size = size
        self._max_age = max_age_seconds
        self._entries: deque[tuple[float, str]] = deque()
        self._counts = dict.fromkeys(OUTCOMES, 0)

    def add(self, outcome: str, now: float) -> None:
        self._entries.append((now, outcome))
        self._counts[outcome] += 1
        if len(self._entries) > self._size:
            self._drop()
        self._expire(now)

    def counts(self, now: float) -> WindowCounts:
        self._expire(now)
        return WindowCounts(**self._counts)

    def _expire(self, now: float) -> None:
        while self._entries and now - self._entries[0][0] > self._max_age:
            self._drop()

    def _drop(self) -> None:
        _, outcome = self._entries.popleft()
        self._counts[outcome] -= 1


class Scoreboard:
    def __init__(self, *, size: int = 500, max_age_seconds: float = 900.0,
                 min_segment_samples: int = 50,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._size = size
        self._max_age = max_age_seconds
        self.min_segment_samples = min_segment_samples
        self._clock = clock
        self._windows: dict[tuple[str, ...], OutcomeWindow] = {}

    def _window(self, key: tuple[str, ...]) -> OutcomeWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = OutcomeWindow(self._size, self._max_age)
        return window

    def record(self, psp: str, outcome: str, *, currency: str, brand: str | None) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown authorisation outcome {outcome!r}")
        now = self._clock()
        self._window((psp,)).add(outcome, now)
        self._window((psp, currency, brand or "unknown")).add(outcome, now)

    def counts(self, psp: str, *, currency: str | None = None,
               brand: str | None = None) -> WindowCounts:
        key = (psp,) if currency is None else (psp, currency, brand or "unknown")
        window = self._windows.get(key)
        return WindowCounts(0, 0, 0) if window is None else window.counts(self._clock())

    def scores(self, psps: Iterable[str], *, currency: str, brand: str | None
               ) -> dict[str, Score]:
        """Per account: its currency × brand window when every account has enough data
        there (so like is compared with like), else its whole window."""
        names = list(psps)
        segment = {p: self.counts(p, currency=currency, brand=brand) for p in names}
        if all(c.total >= self.min_segment_samples for c in segment.values()):
            return {p: c.score() for p, c in segment.items()}
        return {p: self.counts(p).score() for p in names}

    def accounts(self) -> list[str]:
        return sorted({key[0] for key in self._windows})
