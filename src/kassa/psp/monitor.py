"""What kassa measures of every PSP call: its outcome and latency (for /metrics), the
circuit breaker of the account it went to, and the success-rate windows.

``MonitoredAdapter`` wraps each configured adapter (bootstrap.py), so the request path,
recovery and webhooks' lookups are all counted the same way without knowing about it; it
changes no call and no answer. All of it is per process (see breaker.py, scoreboard.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kassa.domain.money import Money
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    Outcome,
    PSPAdapter,
    PSPError,
    PSPEvent,
    PSPOutcomeUnknown,
    PSPRefused,
    PSPResult,
    PSPUnavailable,
    UnknownOperation,
)
from kassa.psp.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from kassa.psp.scoreboard import Scoreboard

T = TypeVar("T")
log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
APPROVED = (Outcome.AUTHORIZED, Outcome.CAPTURED, Outcome.REQUIRES_ACTION)


def outcome_of(result: PSPResult | None, exc: BaseException | None) -> str:
    """The ``outcome`` label of one call."""
    if exc is None:
        return "ok" if result is None else result.outcome.value
    if isinstance(exc, PSPUnavailable):
        return "unavailable"
    if isinstance(exc, PSPOutcomeUnknown):
        return "unknown"
    if isinstance(exc, PSPRefused):
        return "refused"
    if isinstance(exc, UnknownOperation):
        return "not_found"
    return "error"


def is_failure(exc: BaseException | None) -> bool:
    """Does this call count against the account's breaker? The PSP not answering or not
    knowing what it did does; a decline, a refusal of a bad request or "no such
    operation" are the PSP working."""
    return exc is not None and not isinstance(exc, PSPRefused | UnknownOperation) and (
        isinstance(exc, PSPUnavailable | PSPOutcomeUnknown) or not isinstance(exc, PSPError))


class PSPMonitor:
    def __init__(self, *, breaker: BreakerPolicy | None = None,
                 scoreboard: Scoreboard | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.breaker_policy = breaker or BreakerPolicy()
        self.scoreboard = scoreboard or Scoreboard(clock=clock)
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kassa_psp_requests", "PSP calls by account, operation and outcome",
            ("psp", "operation", "outcome"), registry=self.registry)
        self.latency = Histogram(
            "kassa_psp_request_duration_seconds", "PSP call latency",
            ("psp", "operation"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.failovers = Counter(
            "kassa_routing_failovers", "authorisations moved to the next PSP account after "
            "the first provably did not process them", ("from_psp", "to_psp", "reason"),
            registry=self.registry)
        self.decisions = Counter(
            "kassa_routing_decisions", "routing decisions by rule, strategy and account",
            ("rule", "strategy", "psp", "explored"), registry=self.registry)
        self.registry.register(_StateCollector(self))
        # labelled children, looked up once: .labels() costs a few µs per call
        self._children: dict[tuple[str, ...], Any] = {}

    def breaker(self, psp: str) -> CircuitBreaker:
        b = self._breakers.get(psp)
        if b is None:
            b = self._breakers[psp] = CircuitBreaker(self.breaker_policy, self._clock)
        return b

    def breakers(self) -> Mapping[str, CircuitBreaker]:
        return dict(self._breakers)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, psp: str, operation: str, *, result: PSPResult | None,
                exc: BaseException | None, seconds: float,
                currency: str | None = None, brand: str | None = None) -> None:
        outcome = outcome_of(result, exc)
        self._child(self.requests, psp, operation, outcome).inc()
        self._child(self.latency, psp, operation).observe(seconds)
        self.breaker(psp).record(failed=is_failure(exc), seconds=seconds)
        if operation == "authorize" and currency is not None:
            if exc is None:
                kind = "approved" if result is not None and result.outcome in APPROVED \
                    else "declined"
            else:
                kind = "failed"
            self.scoreboard.record(psp, kind, currency=currency, brand=brand)

    def count_decision(self, *, rule: str, strategy: str, psp: str, explored: bool) -> None:
        self._child(self.decisions, rule, strategy, psp, "true" if explored else "false").inc()

    def count_failover(self, from_psp: str, to_psp: str, reason: str) -> None:
        self._child(self.failovers, from_psp, to_psp, reason).inc()


class _StateCollector(Collector):
    """Gauges read at scrape time: breaker states and authorisation success rates."""

    def __init__(self, monitor: PSPMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[GaugeMetricFamily]:
        state = GaugeMetricFamily("kassa_psp_breaker_state",
                                  "circuit breaker per PSP account: 0 closed, 1 half-open, "
                                  "2 open", labels=("psp",))
        opened = GaugeMetricFamily("kassa_psp_breaker_opened",
                                   "times the account's breaker opened since start",
                                   labels=("psp",))
        window = GaugeMetricFamily("kassa_psp_breaker_window_calls",
                                   "calls and failures in the breaker's window",
                                   labels=("psp", "kind"))
        for psp, b in sorted(self._monitor.breakers().items()):
            state.add_metric([psp], b.state.gauge)
            opened.add_metric([psp], b.opened_count)
            calls, failures = b.counts()
            window.add_metric([psp, "calls"], calls)
            window.add_metric([psp, "failures"], failures)
        rate = GaugeMetricFamily("kassa_psp_authorization_success_ratio",
                                 "approved / authorisations in the success-rate window",
                                 labels=("psp",))
        counts = GaugeMetricFamily("kassa_psp_authorization_window",
                                   "authorisations in the success-rate window by outcome "
                                   "(issuer declines apart from PSP failures)",
                                   labels=("psp", "outcome"))
        board = self._monitor.scoreboard
        for psp in board.accounts():
            c = board.counts(psp)
            if c.total:
                rate.add_metric([psp], c.approved / c.total)
            for name in ("approved", "declined", "failed"):
                counts.add_metric([psp, name], getattr(c, name))
        return [state, opened, window, rate, counts]


class MonitoredAdapter:
    """An adapter with every call measured; everything else is the adapter's own."""

    def __init__(self, adapter: PSPAdapter, monitor: PSPMonitor) -> None:
        self._adapter = adapter
        self._monitor = monitor
        self.name = adapter.name

    @property
    def inner(self) -> PSPAdapter:
        return self._adapter

    def __getattr__(self, name: str) -> Any:  # what the protocol does not cover
        return getattr(self._adapter, name)

    async def _measured(self, operation: str, call: Callable[[], Awaitable[T]], *,
                        currency: str | None = None, brand: str | None = None) -> T:
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:
            self._observe(operation, None, exc, started, currency, brand)
            raise
        self._observe(operation, result if isinstance(result, PSPResult) else None, None,
                      started, currency, brand)
        return result

    def _observe(self, operation: str, result: PSPResult | None, exc: Exception | None,
                 started: float, currency: str | None, brand: str | None) -> None:
        """Never in the way of the call's own answer: what the PSP did matters more than
        counting it."""
        try:
            self._monitor.observe(self.name, operation, result=result, exc=exc,
                                  seconds=time.perf_counter() - started,
                                  currency=currency, brand=brand)
        except Exception:
            log.exception("measuring %s %s failed", self.name, operation)

    async def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return await self._measured("authorize", lambda: self._adapter.authorize(request),
                                    currency=request.amount.currency, brand=request.card.brand)

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult:
        return await self._measured("capture", lambda: self._adapter.capture(
            idempotency_key=idempotency_key, psp_reference=psp_reference, amount=amount))

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult:
        return await self._measured("void", lambda: self._adapter.void(
            idempotency_key=idempotency_key, psp_reference=psp_reference))

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult:
        return await self._measured("refund", lambda: self._adapter.refund(
            idempotency_key=idempotency_key, psp_reference=psp_reference, amount=amount))

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        return await self._measured("lookup", lambda: self._adapter.lookup(attempt))

    async def parse_webhook(self, *, headers: Mapping[str, str], body: bytes,
                            now: int) -> Sequence[PSPEvent]:
        return await self._adapter.parse_webhook(headers=headers, body=body, now=now)

    async def submit_dispute_evidence(self, *, psp_dispute_id: str,
                                      evidence: Mapping[str, str]) -> None:
        await self._measured("dispute_evidence", lambda: self._adapter.submit_dispute_evidence(
            psp_dispute_id=psp_dispute_id, evidence=evidence))

    async def accept_dispute(self, *, psp_dispute_id: str) -> None:
        await self._measured("dispute_accept", lambda: self._adapter.accept_dispute(
            psp_dispute_id=psp_dispute_id))


def breaker_states(monitor: PSPMonitor, accounts: Iterable[str]) -> dict[str, BreakerState]:
    return {name: monitor.breaker(name).state for name in accounts}
