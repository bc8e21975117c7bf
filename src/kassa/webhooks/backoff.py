"""The retry schedule of a failed delivery: exponential backoff with full jitter, within a
window (3 days by default), after which the delivery is dead.

Pure: the caller passes the random draw, so tests and the property suite control it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    base_seconds: float = 60.0  # the first retry waits up to this long
    cap_seconds: float = 6 * 3600.0  # no single wait is longer than this
    window_seconds: float = 3 * 24 * 3600.0  # no retry later than this after scheduling

    def __post_init__(self) -> None:
        if not (0 < self.base_seconds <= self.cap_seconds and self.window_seconds > 0):
            raise ValueError("need 0 < base_seconds <= cap_seconds and window_seconds > 0")

    def ceiling(self, failures: int) -> float:
        """The largest wait after the ``failures``-th consecutive failure (1-based)."""
        exponent = min(max(failures, 1) - 1, 62)  # 2**62 * base is past any cap
        return float(min(self.cap_seconds, self.base_seconds * 2.0 ** exponent))

    def next_retry_in(self, *, failures: int, age_seconds: float, draw: float) -> float | None:
        """Seconds until the next attempt after the ``failures``-th consecutive failure of a
        delivery scheduled ``age_seconds`` ago, or None when it would fall outside the window
        (the delivery is dead). ``draw`` is uniform in [0, 1): full jitter spreads the
        retries of many deliveries that failed together (an endpoint that was down)."""
        if not 0.0 <= draw < 1.0:
            raise ValueError("draw must be in [0, 1)")
        delay = draw * self.ceiling(failures)
        if age_seconds + delay > self.window_seconds:
            return None
        return delay
