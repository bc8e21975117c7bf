"""The webhook sender: works the delivery queue (webhook_deliveries) and POSTs each event,
signed, to its endpoint; any number of senders may run side by side.

One pass: claim due deliveries in one short statement that leases them (SKIP LOCKED, then
``next_attempt_at`` moved to now + timeout + margin), send them concurrently without any
transaction open, and record the outcomes in batches. The lease is the crash story: a
sender killed mid-request leaves its deliveries leased, and they are due again, for any
sender, when the lease ends. A request is only started while its whole timeout fits in
the lease, so two senders never have one delivery in flight at the same time.

Fairness: this sender keeps at most ``per_endpoint`` requests open to one endpoint and
claims no more for an endpoint at that cap, so a hanging endpoint holds a few slots for
one timeout each while every other endpoint's deliveries keep flowing. A claim looks at
a bounded window of the earliest due deliveries. The backlog of a slow endpoint (at its
cap, its requests taking ``slow_seconds`` or more) is moved, unattempted, to when the
endpoint can plausibly take it at its measured pace, so it cannot fill every window of
every sender and hold back the others; nor is it retried faster than the endpoint
answers (no retry storm). A move is at most ten request times ahead (and at most
``max_deferral_seconds``): an endpoint that only looked slow, because this sender was
starved of CPU, costs its deliveries seconds, not minutes.

Written by hand rather than on a job-queue library: the claim, lease, per-endpoint cap
and batched recording each had to stay one round trip (PERFORMANCE.md), which the
Postgres-backed queue libraries do not offer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import asyncpg
import httpx

from kassa import representations
from kassa.db import webhook_deliveries as deliveries_db
from kassa.db.webhook_deliveries import ClaimedDelivery
from kassa.webhooks import endpoints as rules
from kassa.webhooks.backoff import RetrySchedule
from kassa.webhooks.resolver import PublicOnlyResolver
from kassa.webhooks.signing import HEADER, STRIPE_HEADER, signature_header

__all__ = ["DeliveryConfig", "PublicOnlyResolver", "SenderStats", "WebhookSender"]

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("kassa")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0"


USER_AGENT = f"kassa-webhooks/{_version()}"
EVENT_ID_HEADER = "Kassa-Event-Id"
DELIVERY_HEADER = "Kassa-Delivery-Id"
ATTEMPT_HEADER = "Kassa-Delivery-Attempt"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    timeout_seconds: float = 10.0  # a 2xx must arrive within this (whole request)
    lease_margin_seconds: float = 5.0  # lease = timeout + margin
    max_in_flight: int = 256  # open requests per sender
    per_endpoint: int = 8  # open requests per sender and endpoint
    batch_size: int = 256  # deliveries claimed per statement
    claim_window: int = 1024  # earliest due deliveries one claim looks at
    slow_seconds: float = 0.25  # an endpoint answering this slowly gets its backlog paced
    max_deferral_seconds: float = 60.0  # a paced delivery is looked at again by then
    poll_interval_seconds: float = 0.2  # when the queue is empty
    sweep_interval_seconds: float = 30.0  # repair parked deliveries (enable/delete races)
    retention_days: float = 30.0  # finished deliveries and their attempts kept this long
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    production: bool = False  # never connect to non-public IP literals
    response_excerpt_bytes: int = 1024  # kept per attempt
    max_response_bytes: int = 64 * 1024  # read at most this much of an answer

    @property
    def lease_seconds(self) -> float:
        return self.timeout_seconds + self.lease_margin_seconds


@dataclass(slots=True)
class SenderStats:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    lost_leases: int = 0  # outcomes that arrived after another sender took over
    parked: int = 0
    deferred: int = 0  # due deliveries of slow endpoints moved to their expected turn


class WebhookSender:
    def __init__(self, pool: asyncpg.Pool, transport: httpx.AsyncBaseTransport,
                 config: DeliveryConfig,
                 *, clock: Callable[[], float] = time.time,
                 draw: Callable[[], float] = random.random) -> None:
        self.pool = pool
        # An httpx transport rather than an AsyncClient: the client's layers (URL merging,
        # auth and redirect flows, a cookie jar that would carry one endpoint's cookies to
        # the next) doubled the CPU per delivery here; none of them is wanted for a signed
        # POST that must not follow redirects. Tests inject httpx.MockTransport or this.
        self.transport = transport
        timeout = config.timeout_seconds
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout,
                          "pool": timeout}
        self.config = config
        self.clock = clock
        self.draw = draw
        self.stats = SenderStats()
        self._open: dict[str, dict[int, float]] = {}  # endpoint -> delivery -> started
        self._slow: dict[str, float] = {}  # endpoints reported slow (for the log)
        self._latency: dict[str, float] = {}  # endpoint -> moving average request seconds
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[dict[str, Any]] = []
        self._outcome_ready = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._refused_hosts: dict[str, str | None] = {}

    # ------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop``; then finish open requests and record them."""
        recorder = asyncio.create_task(self._record_forever())
        next_sweep = time.monotonic()
        try:
            while not stop.is_set():
                if time.monotonic() >= next_sweep:
                    await self._sweep()
                    next_sweep = time.monotonic() + self.config.sweep_interval_seconds
                self._slot_freed.clear()
                try:
                    claimed, limit = await self.claim_and_send()
                except Exception:  # the database went away, or a bug: log, wait, go on
                    log.exception("webhook claim failed")
                    claimed, limit = 0, 1
                    await asyncio.sleep(1.0)
                if claimed and claimed >= limit and self._in_flight < self.config.max_in_flight:
                    continue  # a full batch: there is probably more
                await self._idle(stop, woken_by_slots=claimed > 0 or self._in_flight > 0)
        finally:
            await self.drain()
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            await self.flush()

    async def _idle(self, stop: asyncio.Event, *, woken_by_slots: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if woken_by_slots:
            waits.append(asyncio.ensure_future(self._slot_freed.wait()))
        try:
            await asyncio.wait(waits, timeout=self.config.poll_interval_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if woken_by_slots and self._slot_freed.is_set() and not stop.is_set():
            await asyncio.sleep(0.002)  # let a few more requests finish: fewer, fuller claims

    async def drain(self) -> None:
        """Wait for every open request (each ends within the timeout)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def claim_and_send(self) -> tuple[int, int]:
        """One claim; starts a request per claimed delivery. Returns (claimed, limit)."""
        cfg = self.config
        free = cfg.max_in_flight - self._in_flight
        if free <= 0:
            return 0, 0
        limit = min(cfg.batch_size, free)
        started = time.monotonic()
        claimed, deferred = await deliveries_db.claim_due(
            self.pool, limit=limit, lease_seconds=cfg.lease_seconds,
            per_endpoint=cfg.per_endpoint, busy=self._busy(started),
            window=max(cfg.claim_window, limit))
        # the database set the lease after `started`: this deadline is never later than it
        deadline = started + cfg.lease_seconds
        self.stats.claimed += len(claimed)
        self.stats.deferred += deferred
        orphans: list[int] = []
        parked: list[tuple[int, Any]] = []
        for d in claimed:
            if d.url is None:
                orphans.append(d.id)
            elif not d.endpoint_enabled:
                parked.append((d.id, d.lease))
            elif not d.body:  # the event itself is gone (pruned): nothing to send, ever
                self._outcomes.append(self._outcome(
                    d, status="dead", status_code=None, error="the event is no longer stored",
                    attempted_at=self.clock(), duration_ms=0, excerpt=None, retry_in=None))
                self._outcome_ready.set()
            else:
                self._start(d, deadline)
        if orphans:
            await deliveries_db.delete_deliveries(self.pool, orphans)
        if parked:
            await deliveries_db.park(self.pool, parked)
            self.stats.parked += len(parked)
        return len(claimed), limit

    def _busy(self, now: float) -> dict[str, deliveries_db.Busy]:
        """Per endpoint with open requests: the slots left and, when it is at its cap and
        slow, the seconds per delivery it manages and how far ahead to move the rest."""
        cfg = self.config
        busy: dict[str, deliveries_db.Busy] = {}
        for endpoint_id, requests in self._open.items():
            free = max(cfg.per_endpoint - len(requests), 0)
            # a request still open counts as slow as it has been so far (a hanging endpoint)
            latency = max(self._latency.get(endpoint_id, 0.0), now - min(requests.values()))
            if free == 0 and latency >= cfg.slow_seconds:
                busy[endpoint_id] = deliveries_db.Busy(
                    free=0, pace=latency / cfg.per_endpoint,
                    max_defer=min(cfg.max_deferral_seconds, 10 * latency))
            else:
                busy[endpoint_id] = deliveries_db.Busy(free=free)
        return busy

    def _observe(self, endpoint_id: str, seconds: float) -> None:
        """Moving average of an endpoint's request time (timeouts count in full)."""
        previous = self._latency.get(endpoint_id)
        latency = seconds if previous is None else 0.7 * previous + 0.3 * seconds
        if len(self._latency) > 10_000 and previous is None:
            self._latency.clear()
            self._slow.clear()
        self._latency[endpoint_id] = latency
        if latency >= self.config.slow_seconds:
            if endpoint_id not in self._slow:
                log.info("webhook endpoint %s answers slowly (%.2f s on average): its "
                         "backlog is paced", endpoint_id, latency)
            self._slow[endpoint_id] = latency
        elif self._slow.pop(endpoint_id, None) is not None:
            log.info("webhook endpoint %s answers in %.2f s again", endpoint_id, latency)

    def _start(self, d: ClaimedDelivery, deadline: float) -> None:
        self._open.setdefault(d.endpoint_id, {})[d.id] = time.monotonic()
        self._in_flight += 1
        task = asyncio.create_task(self._deliver(d, deadline))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, d: ClaimedDelivery, deadline: float) -> None:
        try:
            if time.monotonic() + self.config.timeout_seconds >= deadline:
                # the request could outlive the lease and overlap a second sender's:
                # leave it to whoever claims it next
                log.warning("webhook delivery %s not sent: lease too short", d.id)
                return
            outcome = await self.attempt(d)
            self._observe(d.endpoint_id, outcome["duration_ms"] / 1000)
            self._outcomes.append(outcome)
            self._outcome_ready.set()
        except Exception:  # a bug must not kill the sender; the lease hands it on
            log.exception("webhook delivery %s failed unexpectedly", d.id)
        finally:
            requests = self._open.get(d.endpoint_id, {})
            requests.pop(d.id, None)
            if not requests:
                self._open.pop(d.endpoint_id, None)
            self._in_flight -= 1
            self._slot_freed.set()

    # ------------------------------------------------------------ one HTTP attempt

    def headers(self, d: ClaimedDelivery, timestamp: int) -> dict[str, str]:
        signature = signature_header(d.body, d.secrets, timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER: signature,
            EVENT_ID_HEADER: d.event_id,
            DELIVERY_HEADER: representations.delivery_public_id(d.id),
            ATTEMPT_HEADER: str(d.attempt_count + 1),
        }
        if d.stripe_signature:  # the same t=…,v1=… value: Stripe's SDK verifiers accept it
            headers[STRIPE_HEADER] = signature
        return headers

    async def attempt(self, d: ClaimedDelivery) -> dict[str, Any]:
        """POST the event once; the outcome row for record_attempts (never raises)."""
        assert d.url is not None
        cfg = self.config
        attempted_at = self.clock()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        excerpt: str | None = None
        refused = self._refused(d.url) if cfg.production else None
        if refused is not None:
            error = refused
        else:
            try:
                request = httpx.Request("POST", d.url, content=d.body,
                                        headers=self.headers(d, int(attempted_at)),
                                        extensions={"timeout": self._timeouts})
                async with asyncio.timeout(cfg.timeout_seconds):  # the whole request
                    response = await self.transport.handle_async_request(request)
                    try:
                        status_code = response.status_code
                        excerpt = await self._read_excerpt(response)
                    finally:
                        await response.aclose()
            except TimeoutError:
                error = f"timed out after {cfg.timeout_seconds:g} s"
            except Exception as exc:  # httpx errors, refused DNS, protocol errors: a failure
                error = _describe(exc)
        duration_ms = int((time.perf_counter() - started) * 1000)
        succeeded = status_code is not None and 200 <= status_code < 300
        retry_in: float | None = None
        if succeeded:
            status = "delivered"
            self.stats.delivered += 1
        else:
            if error is None:
                error = f"HTTP {status_code}"
            age = d.age_seconds + (time.perf_counter() - started)
            retry_in = cfg.schedule.next_retry_in(failures=d.failures + 1, age_seconds=age,
                                                  draw=self.draw())
            status = "retrying" if retry_in is not None else "dead"
            self.stats.failed += 1
            if retry_in is None:
                self.stats.dead += 1
                log.warning("webhook delivery %s of %s to %s is dead after %d attempts: %s",
                            d.id, d.event_id, d.url, d.attempt_count + 1, error)
        return self._outcome(d, status=status, status_code=status_code, error=error,
                             attempted_at=attempted_at, duration_ms=duration_ms,
                             excerpt=excerpt, retry_in=retry_in)

    @staticmethod
    def _outcome(d: ClaimedDelivery, *, status: str, status_code: int | None,
                 error: str | None, attempted_at: float, duration_ms: int,
                 excerpt: str | None, retry_in: float | None) -> dict[str, Any]:
        """A row for deliveries_db.record_attempts."""
        return {"id": d.id, "lease": d.lease.isoformat(), "status": status,
                "retry_in": retry_in, "succeeded": status == "delivered",
                "status_code": status_code, "duration_ms": duration_ms, "error": error,
                "response": excerpt, "attempted_at": attempted_at}

    async def _read_excerpt(self, response: httpx.Response) -> str | None:
        """The start of the answer for the attempt log; reads no more than the limit."""
        cfg = self.config
        kept = bytearray()
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if len(kept) < cfg.response_excerpt_bytes:
                kept += chunk[:cfg.response_excerpt_bytes - len(kept)]
            if read >= cfg.max_response_bytes:
                break
        if not kept:
            return None
        return kept.decode("utf-8", "replace").replace("\x00", "")

    def _refused(self, url: str) -> str | None:
        """Production: an IP-literal URL must be public (names are checked by the resolver)."""
        if url not in self._refused_hosts:
            if len(self._refused_hosts) > 10_000:
                self._refused_hosts.clear()
            verdict: str | None
            try:
                literal = rules.parse_url(url, production=False).ip_literal()
            except rules.EndpointRuleError as exc:
                verdict = f"refused: {exc.message}"
            else:
                verdict = None
                if literal is not None and not rules.is_public_address(literal):
                    verdict = f"refused to connect to non-public address {literal}"
            self._refused_hosts[url] = verdict
        return self._refused_hosts[url]

    # ------------------------------------------------------------ recording

    async def _record_forever(self) -> None:
        while True:
            await self._outcome_ready.wait()
            await asyncio.sleep(0.005)  # gather the outcomes that finish together
            self._outcome_ready.clear()
            try:
                await self.flush()
            except Exception:  # kept queued; until recorded, the leases protect them
                log.exception("recording webhook attempts failed; retrying")
                self._outcome_ready.set()
                await asyncio.sleep(0.5)

    async def flush(self) -> None:
        """Record the finished attempts (one statement); on failure they stay queued."""
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        try:
            kept = await deliveries_db.record_attempts(self.pool, batch)
        except BaseException:
            self._outcomes[:0] = batch
            raise
        self.stats.lost_leases += len(batch) - len(kept)

    async def _sweep(self) -> None:
        try:
            await deliveries_db.sweep_parked(self.pool)
            if self.config.retention_days:
                await deliveries_db.expire_finished(self.pool,
                                                    older_than_days=self.config.retention_days)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("webhook sweep failed")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
