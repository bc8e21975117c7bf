"""The world outside kassa for routing tests, as an httpx transport in front of the real
one (kassa's PSP client takes it by injection, rule 8):

- ``down``: connections to a PSP's port fail (after ``connect_delay`` seconds, like a
  firewall dropping SYNs or a slow DNS failure) — provably never sent;
- ``first_call_fails``: a passing network fault — the first authorisation under each key
  cannot connect, a repeat of it (recovery's) goes through and charges;
- ``decline_share``: the issuers behind an account decline that share of its
  authorisations (the card number becomes Stripe's generic-decline test card,
  deterministically per attempt, so a repeated call is the same call). The simulator
  itself then declines and books it: its records stay the truth to count against.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field

import httpx
import orjson

DECLINE_CARD = "4000000000000002"


@dataclass
class AccountWeather:
    down: bool = False
    connect_delay: float = 0.0
    connect_jitter: float = 0.0  # plus up to this much, at random
    decline_share: float = 0.0
    first_call_fails: bool = False
    connects_refused: int = 0  # how many calls were turned away while down
    seen_keys: set[str] = field(default_factory=set)


@dataclass
class RoutingWorld(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    weather: dict[int, AccountWeather] = field(default_factory=dict)  # by port

    def of(self, url: str) -> AccountWeather:
        port = httpx.URL(url).port
        assert port is not None
        return self.weather.setdefault(port, AccountWeather())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        weather = self.weather.get(request.url.port or 0)
        if weather is not None and weather.first_call_fails and request.method == "POST" \
                and request.url.path == "/v1/authorizations":
            key = orjson.loads(await request.aread())["idempotency_key"]
            if key not in weather.seen_keys:
                weather.seen_keys.add(key)
                return await self._refuse(weather, request)
        if weather is not None and weather.down:
            return await self._refuse(weather, request)
        if weather is not None and weather.decline_share and request.method == "POST" \
                and request.url.path == "/v1/authorizations":
            body = orjson.loads(await request.aread())
            draw = hashlib.sha256(body["idempotency_key"].encode()).digest()
            if int.from_bytes(draw[:4], "big") / 2**32 < weather.decline_share:
                body["card"]["number"] = DECLINE_CARD
            request = httpx.Request(request.method, request.url, headers={
                k: v for k, v in request.headers.items() if k.lower() != "content-length"},
                content=orjson.dumps(body))
        return await self.inner.handle_async_request(request)

    async def _refuse(self, weather: AccountWeather, request: httpx.Request) -> httpx.Response:
        weather.connects_refused += 1
        if weather.connect_delay or weather.connect_jitter:
            await asyncio.sleep(weather.connect_delay + random.uniform(0, weather.connect_jitter))
        raise httpx.ConnectError("connection refused (test world)", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
