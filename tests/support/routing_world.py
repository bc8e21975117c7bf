"""The world outside kassa for routing tests, as an httpx transport in front of the real
one (kassa's PSP client takes it by injection, rule 8):

- ``down``: connections to a PSP's port fail (after ``connect_delay`` seconds, like a
  firewall dropping SYNs or a slow DNS failure) — provably never sent;
- ``decline_share``: the issuers behind an account decline that share of its
  authorisations (the card number becomes Stripe's generic-decline test card,
  deterministically per attempt, so a repeated call is the same call). The simulator
  itself then declines and books it: its records stay the truth to count against.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

import httpx
import orjson

DECLINE_CARD = "4000000000000002"


@dataclass
class AccountWeather:
    down: bool = False
    connect_delay: float = 0.0
    decline_share: float = 0.0
    connects_refused: int = 0  # how many calls were turned away while down


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
        if weather is not None and weather.down:
            weather.connects_refused += 1
            if weather.connect_delay:
                await asyncio.sleep(weather.connect_delay)
            raise httpx.ConnectError("connection refused (test world)", request=request)
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

    async def aclose(self) -> None:
        await self.inner.aclose()
