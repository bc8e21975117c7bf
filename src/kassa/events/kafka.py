"""Publishes outbox events to Kafka with aiokafka (the optional `kafka` extra).

One topic (``KASSA_KAFKA_TOPIC``, default ``kassa.events``) carries every event family: a
payment's ``payment_intent.*``, ``charge.*`` and ``refund.*`` events share its key, so they
land in one partition in commit order, which per-family topics could not promise. The
message key is the payment id, the value the event JSON, and the headers ``event-id``,
``event-type`` and ``merchant-id`` let consumers route and deduplicate without parsing.

The producer is idempotent (``acks=all``; the broker drops a retried batch it already has
and refuses a gap in a partition's sequence), so a retry inside the client neither
duplicates nor reorders; duplicates can still come from the relay re-sending a batch after
a crash, and consumers deduplicate on ``event-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kassa.events.publisher import OutboxEvent

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """Where and how to connect; built from settings by bootstrap.py."""

    bootstrap: str
    topic: str = "kassa.events"
    client_id: str = "kassa-relay"
    idempotence: bool = True
    create_topic: bool = True  # create the topic at start-up if it is missing
    partitions: int = 12
    replication_factor: int = 1
    linger_ms: int = 5
    request_timeout_ms: int = 30_000
    security_protocol: str = "PLAINTEXT"  # SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def connection_kwargs(self) -> dict[str, Any]:
        """Connection settings shared by the producer, admin and consumer clients."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap,
                                  "client_id": self.client_id,
                                  "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            kwargs["ssl_context"] = context
        if self.sasl_mechanism:
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password)
        return kwargs


class KafkaPublisher:
    """An EventPublisher over one idempotent aiokafka producer."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._producer: Any = None
        self._topic_ready = False

    async def start(self) -> None:
        await self._ensure_topic()
        await self._ensure_producer()

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        producer = await self._ensure_producer()
        topic = self.options.topic
        futures: list[asyncio.Future[Any]] = []
        try:
            for e in events:
                futures.append(await producer.send(topic, value=e.body, key=e.key.encode(),
                                                   headers=e.headers()))
            results = await asyncio.gather(*futures, return_exceptions=True)
        except BaseException:
            await self._discard_producer()
            for f in futures:  # consume their outcomes: the whole batch is sent again
                if f.done() and not f.cancelled():
                    f.exception()
            raise
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # A fresh producer (new producer id) starts clean; the relay re-sends the batch.
            await self._discard_producer()
            raise failed[0]

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()  # flushes what is buffered

    async def _ensure_producer(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            o = self.options
            producer = AIOKafkaProducer(
                **o.connection_kwargs(), acks="all", enable_idempotence=o.idempotence,
                linger_ms=o.linger_ms, max_batch_size=1 << 20,
                request_timeout_ms=o.request_timeout_ms)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=10)

    async def _ensure_topic(self) -> None:
        if self._topic_ready or not self.options.create_topic:
            return
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        o = self.options
        admin = AIOKafkaAdminClient(**o.connection_kwargs())
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(
                o.topic, num_partitions=o.partitions, replication_factor=o.replication_factor)])
        finally:
            await admin.close()
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create Kafka topic {name!r}: {code} {message}")
            if code == 0:
                log.info("created Kafka topic %s (%d partitions)", name, o.partitions)
        self._topic_ready = True
