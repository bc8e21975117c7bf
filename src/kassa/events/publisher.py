"""The seam between the outbox relay and a message broker: what an event looks like on the
way out, the publisher protocol, and an in-memory publisher for tests and development."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One committed event row, ready to publish.

    ``key`` is the payment it belongs to (the partition key: one payment's events stay in
    one partition, in order); ``body`` is the Stripe-shaped event JSON as stored."""

    xid: int  # the writing transaction's id (xid8): with seq, the relay's cursor
    seq: int
    id: str  # evt_…: consumers deduplicate on it (delivery is at-least-once)
    type: str
    merchant_id: str
    key: str
    body: bytes

    def headers(self) -> list[tuple[str, bytes]]:
        """Message headers, so consumers can route and deduplicate without parsing the body."""
        return [("event-id", self.id.encode()), ("event-type", self.type.encode()),
                ("merchant-id", self.merchant_id.encode())]


class EventPublisher(Protocol):
    """Sends a batch of events to a broker.

    ``publish`` returns only when the broker has acknowledged every event of the batch
    (durably, as far as the broker can promise) and raises otherwise; the relay then keeps
    its position and sends the batch again, so a publisher may deliver an event twice but
    never acknowledges one it lost. Events of one key must be appended in the given order.
    """

    async def start(self) -> None: ...

    async def publish(self, events: Sequence[OutboxEvent]) -> None: ...

    async def close(self) -> None: ...


@dataclass
class InMemoryPublisher:
    """Keeps every published event in a list (tests, and a relay without a broker)."""

    events: list[OutboxEvent] = field(default_factory=list)
    batches: int = 0

    async def start(self) -> None:
        pass

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        self.events.extend(events)
        self.batches += 1

    async def close(self) -> None:
        pass

    def by_key(self) -> dict[str, list[str]]:
        """Event ids per key, in the order they were published (duplicates included)."""
        out: dict[str, list[str]] = {}
        for e in self.events:
            out.setdefault(e.key, []).append(e.id)
        return out
