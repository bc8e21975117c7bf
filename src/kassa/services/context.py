"""What every use case needs, built once by bootstrap.py: pool, PSPs, clock, ids, policy."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from kassa.domain import ids
from kassa.domain.fees import FeeSchedule
from kassa.domain.payments import PaymentIntent
from kassa.psp.base import Card, PSPAdapter


class PaymentMethodResolver(Protocol):
    """Turns a payment method token into card data for the PSP call (the vault's seam)."""

    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None: ...


class Writer(Protocol):
    """Applies a unit of work's writes in a transaction of its own (db/batch_writer.py
    shares one transaction among concurrent units)."""

    async def apply(self, ops: list[dict[str, object]]) -> None: ...


class Router(Protocol):
    def choose(self, payment: PaymentIntent) -> PSPAdapter: ...


def new_id(kind: str) -> str:
    return ids.encode(ids.PREFIXES.get(kind, kind), os.urandom(18))


def unix_now() -> int:
    return int(time.time())


@dataclass(slots=True)
class Kassa:
    pool: asyncpg.Pool
    psps: Mapping[str, PSPAdapter]
    router: Router
    payment_methods: PaymentMethodResolver
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    settlement_delay_seconds: int = 2 * 24 * 3600
    idempotency_lock_timeout_seconds: float = 60.0
    idempotency_retention_hours: float = 24.0
    recovery_after_seconds: float = 30.0
    clock: Callable[[], int] = unix_now
    ids: Callable[[str], str] = new_id
    writer: Writer | None = None  # None: each unit of work is its own transaction

    def psp(self, name: str) -> PSPAdapter:
        return self.psps[name]
