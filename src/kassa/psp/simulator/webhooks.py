"""The simulator's outbound webhooks: signed events POSTed to the configured URL, with the
misbehaviour a real PSP shows — delays, duplicates, reordering — on demand.

Every event carries a per-object ``sequence`` (1, 2, … for each dispute, capture or
refund) so a receiver can tell an old event from a new one whatever order they arrive in.
Deliveries run as tasks on the simulator's loop; a non-2xx answer or a transport error is
retried with backoff up to ``webhook_max_attempts``. With ``webhook_hold`` events queue
until ``flush`` sends them in the order a test asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from kassa.psp.simulator import signature
from kassa.psp.simulator.chaos import Chaos

Body = dict[str, Any]

ORDERS = ("fifo", "reverse", "shuffle")


@dataclass(slots=True)
class Delivery:
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def view(self) -> Body:
        return {"at": self.at, "status_code": self.status_code, "error": self.error,
                "duration_ms": round(self.duration_ms, 2)}


@dataclass(slots=True)
class SimEvent:
    id: str
    type: str
    created: int
    sequence: int
    data: Body  # the object (dispute, capture or refund result) as it was at that moment
    deliveries: list[Delivery] = field(default_factory=list)
    state: str = "pending"  # pending | scheduled | delivered | failed
    # an Adyen notification (routes_adyen.py): ``data`` is its whole body, signed inside
    # and POSTed to ``adyen_webhook_url`` with no Sim-Signature
    adyen: bool = False

    def payload(self) -> Body:
        if self.adyen:
            return self.data
        return {"id": self.id, "object": "event", "type": self.type, "created": self.created,
                "sequence": self.sequence, "data": {"object": self.data}}

    def view(self) -> Body:
        return {**self.payload(), "state": self.state,
                "deliveries": [d.view() for d in self.deliveries]}


class WebhookSender:
    """Records events and delivers them according to the chaos configuration."""

    def __init__(self, chaos: Chaos, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._chaos = chaos
        self._transport = transport  # tests pass httpx.MockTransport; None: the network
        self.events: list[SimEvent] = []
        self._sequences: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- recording ------------------------------------------------------------------

    def record(self, type: str, obj: Body, sequence: int | None = None) -> SimEvent:
        """Record an event about ``obj`` (a snapshot) and schedule it unless held.
        ``sequence``: its place in the object's history, when the books keep it (they do
        across restarts); else counted here."""
        object_id = str(obj["id"])
        if sequence is None:
            self._sequences[object_id] += 1
            sequence = self._sequences[object_id]
        event = SimEvent(id=f"simevt_{secrets.token_hex(12)}", type=type,
                         created=int(time.time()), sequence=sequence, data=dict(obj))
        return self._schedule(event)

    def record_adyen(self, event_code: str, notification: Body) -> SimEvent:
        """Record an Adyen notification (one or more signed items) and schedule it."""
        event = SimEvent(id=f"simevt_{secrets.token_hex(12)}", type=f"adyen.{event_code}",
                         created=int(time.time()), sequence=1, data=notification, adyen=True)
        return self._schedule(event)

    def _schedule(self, event: SimEvent) -> SimEvent:
        self.events.append(event)
        config = self._chaos.config
        url = config.adyen_webhook_url if event.adyen else config.webhook_url
        if not config.webhook_hold and url is not None:
            delay = (config.webhook_delay_ms + self._chaos.uniform(config.webhook_jitter_ms))
            event.state = "scheduled"
            self.spawn(self._deliver_later(event, delay / 1000))
        return event

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_later(self, event: SimEvent, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        attempts = self._chaos.config.webhook_max_attempts
        for attempt in range(attempts):
            delivery = await self.deliver(event)
            if delivery.ok:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(min(0.25 * 2 ** attempt, 5.0))
        if event.state == "delivered" and self._chaos.draw(
                self._chaos.config.webhook_duplicate_rate):
            await self.deliver(event)  # the same event (same id) once more

    # -- delivery -------------------------------------------------------------------

    async def deliver(self, event: SimEvent) -> Delivery:
        """POST the event once, signed now; records and returns the delivery."""
        config = self._chaos.config
        started = time.monotonic()
        url = config.adyen_webhook_url if event.adyen else config.webhook_url
        if url is None:
            delivery = Delivery(time.time(), None, "no webhook_url configured", 0.0)
        else:
            body = orjson.dumps(event.payload())
            headers = {"content-type": "application/json", "user-agent": "kassa-simulator"}
            if config.webhook_secret is not None and not event.adyen:
                headers[signature.HEADER] = signature.header(config.webhook_secret,
                                                             int(time.time()), body)
            try:
                async with httpx.AsyncClient(transport=self._transport,
                                             timeout=config.webhook_timeout_s) as client:
                    response = await client.post(url, content=body, headers=headers)
                delivery = Delivery(time.time(), response.status_code, None,
                                    (time.monotonic() - started) * 1000)
            except httpx.HTTPError as exc:
                delivery = Delivery(time.time(), None, f"{type(exc).__name__}: {exc}",
                                    (time.monotonic() - started) * 1000)
        event.deliveries.append(delivery)
        if delivery.ok:
            event.state = "delivered"
        elif event.state != "delivered":
            event.state = "failed"
        return delivery

    async def flush(self, *, order: str = "fifo", duplicate: bool = False,
                    seed: int | None = None) -> list[Body]:
        """Deliver every event not yet delivered or scheduled, once each (twice with
        ``duplicate``), one after another in ``order``; returns what happened."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        due = [e for e in self.events if e.state in ("pending", "failed")]
        if order == "reverse":
            due.reverse()
        elif order == "shuffle":
            random.Random(seed).shuffle(due)
        results = []
        for event in due:
            for _ in range(2 if duplicate else 1):
                delivery = await self.deliver(event)
                results.append({"event": event.id, "type": event.type,
                                "sequence": event.sequence, **delivery.view()})
        return results

    def find(self, event_id: str) -> SimEvent | None:
        return next((e for e in self.events if e.id == event_id), None)

    def listing(self) -> list[Body]:
        return [e.view() for e in self.events]

    async def reset(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.events.clear()
        self._sequences.clear()

    @property
    def busy(self) -> int:
        return len(self._tasks)
