"""Merchant onboarding and API key issue/verification (keys are stored as sha256 only)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from kassa.db import merchants as merchants_db
from kassa.domain import ids
from kassa.services import fx
from kassa.services.context import Kassa


@dataclass(frozen=True, slots=True)
class Caller:
    merchant_id: str
    key_id: str
    kind: str  # secret | publishable


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _random_key(prefix: str) -> str:
    return ids.encode(prefix, os.urandom(18)) + ids.encode("", os.urandom(18))[1:]


async def create_merchant(kassa: Kassa, *, name: str) -> dict[str, str]:
    """Create a merchant with one test secret key and one publishable key (shown once)."""
    merchant_id = kassa.ids("merchant")
    secret = _random_key("sk_test")
    publishable = _random_key("pk_test")
    now = kassa.clock()
    async with kassa.pool.acquire() as conn, conn.transaction():
        await merchants_db.insert_merchant(conn, merchant_id=merchant_id, name=name, created=now)
        for kind, key in (("secret", secret), ("publishable", publishable)):
            await merchants_db.insert_api_key(conn, key_id=kassa.ids("key"),
                                              merchant_id=merchant_id,
                                              kind=kind, key_hash=hash_key(key), last4=key[-4:],
                                              created=now)
    return {"merchant_id": merchant_id, "name": name, "secret_key": secret,
            "publishable_key": publishable}


class KeyCache:
    """Caches key → caller for a few seconds: auth would otherwise cost a round trip on
    every request. Revocation therefore takes effect within ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[bytes, tuple[float, Caller | None]] = {}

    async def authenticate(self, kassa: Kassa, key: str) -> Caller | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await merchants_db.find_api_key(kassa.pool, digest)
        caller = None if row is None else Caller(row["merchant_id"], row["id"], row["kind"])
        if row is not None:
            fx.remember_settlement(kassa, row["merchant_id"], row["settlement_currency"])
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (now + self.ttl, caller)
        return caller
