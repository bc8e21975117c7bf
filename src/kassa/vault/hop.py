"""The forward's PSP hop (forward.py): send the filled request to the PSP, read its answer,
and on failure say how it failed — ``connect`` only when the request provably never left
(the line kassa.psp.transport_errors draws: may fail over, the CVC is given back), else
``timeout`` or ``transport`` (sent, outcome unknown: never a failover, never a double
charge)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx
import yarl

from kassa.psp.transport_errors import never_sent


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class HopFailed(Exception):
    """The PSP hop failed: ``kind`` is connect | connect_timeout (provably unsent), timeout
    or transport (may have been received)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Hop(Protocol):
    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
                   seconds: float) -> Answer: ...

    async def aclose(self) -> None: ...


@functools.lru_cache(maxsize=64)  # the few timeouts in use: one object each
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    # as httpx-aiohttp turned httpx.Timeout(seconds) into aiohttp's: no total deadline
    return aiohttp.ClientTimeout(sock_connect=seconds, sock_read=seconds, connect=seconds)


@functools.lru_cache(maxsize=1024)  # the few PSP endpoints: yarl.URL is immutable
def _url(url: str) -> yarl.URL:
    return yarl.URL(url)


class AiohttpHop:
    """aiohttp's pooled, kept-alive PSP connections, called directly: the httpx Request,
    Response and transport layers around each forward were about a fifth of the vault's
    own CPU per payment, and aiohttp's exceptions themselves say whether a request left
    (httpx-aiohttp folded a connection dropped after sending into ConnectTimeout). No cookie
    jar: a PSP's cookie must never travel with another merchant's request."""

    def __init__(self, *, max_connections: int = 200, keepalive_seconds: float = 5.0) -> None:
        self.max_connections = max_connections
        self.keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on the serving loop, at the first forward
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections,
                                               keepalive_timeout=self.keepalive_seconds,
                                               # the trust store the PSP calls had
                                               # with httpx (certifi's CAs, or
                                               # SSL_CERT_FILE / SSL_CERT_DIR), not
                                               # aiohttp's default (the system's)
                                               ssl=httpx.create_ssl_context()),
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
        return self._session

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
                   seconds: float) -> Answer:
        try:
            async with self._client().request(
                    method, _url(url), headers=headers, data=body or None, allow_redirects=False,
                    compress=None, timeout=_client_timeout(seconds)) as response:
                answer = await response.read()
                return Answer(response.status,
                              [(k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in response.raw_headers], answer)
        except aiohttp.ClientConnectorError:
            # refused, DNS, TLS handshake: raised before a byte of the request was written —
            # for a POST. aiohttp sends an idempotent method (PUT, DELETE, GET) again on a
            # new connection after a kept-alive one dropped it, and a refusal of that
            # reconnect is this same error although the PSP may have the first (the vault
            # forwards POST only: forward.py; this holds for any other caller of the hop)
            raise HopFailed("connect" if method == "POST" else "transport") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            # a connect timeout too: aiohttp cannot say the request had not left by then
            raise HopFailed("timeout") from None
        except aiohttp.ClientError:
            # e.g. ServerDisconnectedError: the request may have been read and acted on
            raise HopFailed("transport") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxHop:
    """Any httpx transport as the hop (tests give httpx.MockTransport)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
                   seconds: float) -> Answer:
        request = httpx.Request(method, url, headers=headers, content=body, extensions={
            "timeout": httpx.Timeout(seconds).as_dict()})
        try:
            response = await self.transport.handle_async_request(request)
            try:
                answer = await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            if never_sent(exc):
                raise HopFailed("connect_timeout" if isinstance(exc, httpx.ConnectTimeout)
                                else "connect") from None
            if isinstance(exc, httpx.TimeoutException):
                raise HopFailed("timeout") from None
            raise HopFailed("transport") from None
        return Answer(response.status_code, response.headers.multi_items(), answer)

    async def aclose(self) -> None:
        await self.transport.aclose()
