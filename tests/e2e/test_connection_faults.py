"""Faults between kassa and its neighbours (issue 8, items 11 and 12), over a real uvicorn
on loopback: an error answer leaves the kept-alive connection usable, and a database outage
is answered 503 with Retry-After, promptly, until the pool reconnects by itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.services import merchants
from tests.support.api_server import serving


class ClientPorts:
    """ASGI wrapper that records the client port of every request: one port means one
    kept-alive connection."""

    def __init__(self, app) -> None:
        self.app = app
        self.ports: list[int] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.ports.append(scope["client"][1])
        await self.app(scope, receive, send)


def one_connection(base_url: str, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=1),
                             **kwargs)


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_500_leaves_the_connection_usable(kassa, auth, http):
    app = create_app(kassa=kassa, key_cache_seconds=0.0)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/_broken", broken)  # any handler bug
    ports = ClientPorts(app)
    async with serving(ports, http=http) as url, one_connection(url, headers=auth) as c:
        for _ in range(3):
            r = await c.get("/v1/_broken")
            assert r.status_code == 500
            assert r.json()["error"]["type"] == "api_error"
            r = await c.get("/v1/payment_intents")  # the next request, same connection
            assert r.status_code == 200, r.text
        assert len(set(ports.ports)) == 1, f"the server dropped the connection: {ports.ports}"
        # other error answers too
        assert (await c.get("/v1/payment_intents/pi_%00")).status_code == 400
        assert (await c.get("/v1/payment_intents/pi_nope")).status_code == 404
        assert (await c.post("/v1/payment_intents", data={"amount": "x"})).status_code == 400
        assert (await c.delete("/v1/balance")).status_code == 405
        assert (await c.get("/v1/balance")).status_code == 200
    assert len(set(ports.ports)) == 1, ports.ports


class CuttableProxy:
    """A TCP proxy in front of PostgreSQL that can be cut (every open connection reset, new
    ones closed at once, as while the server is down), stalled (bytes held, as behind a
    dead network path) and restored."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self._dsn = dsn
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server: asyncio.Server | None = None
        self.down = False
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self._dsn)
        user = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(netloc=f"{user[0]}@{host}" if len(user) == 2
                                         else host))

    def cut(self) -> None:
        self.down = True
        for w in list(self._writers):
            w.transport.abort()

    def stall(self) -> None:
        self.flowing.clear()

    def restore(self) -> None:
        self.down = False
        self.flowing.set()

    async def close(self) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        if self.down:
            client_w.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                await self.flowing.wait()
                w.write(data)
                await w.drain()
            w.transport.abort()

        try:
            with contextlib.suppress(OSError, ConnectionError):
                await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        finally:
            self._writers -= {client_w, server_w}
            self._tasks.discard(task)


@pytest.fixture
async def proxied(settings, dsn
                  ) -> AsyncIterator[tuple[CuttableProxy, str, dict[str, str], ClientPorts]]:
    """kassa (pool and group commit) reaching PostgreSQL through a cuttable proxy, served
    by uvicorn; yields the proxy, the API's URL, a merchant's auth header and the ports
    its requests came from."""
    proxy = CuttableProxy(dsn)
    through = await proxy.start()
    k, close = await bootstrap.build(settings, through, pool_size=4)
    try:
        m = await merchants.create_merchant(k, name="Outage merchant")
        auth = {"Authorization": f"Bearer {m['secret_key']}"}
        app = create_app(kassa=k, key_cache_seconds=0.0, answer_within_seconds=ANSWER_WITHIN)
        ports = ClientPorts(app)
        async with serving(ports) as url:
            try:
                yield proxy, url, auth, ports
            finally:
                proxy.restore()  # so that the server's shutdown waits on nothing stalled
    finally:
        proxy.restore()
        await close()
        await proxy.close()


ANSWER_WITHIN = 4.0  # above /healthz's own bound (2 s), with room for a loaded machine's loop
PAY = {"amount": "700", "currency": "usd", "payment_method": "pm_card_visa",
       "confirm": "true"}


async def test_a_database_outage_is_503_with_retry_after_then_recovers(proxied):
    proxy, url, auth, ports = proxied
    async with one_connection(url, headers=auth, timeout=30.0) as c:
        assert (await c.post("/v1/payment_intents", data=PAY)).status_code == 200
        proxy.cut()
        for method, path, data in [("GET", "/v1/payment_intents", None),
                                   ("POST", "/v1/payment_intents", PAY),
                                   ("GET", "/v1/balance", None),
                                   ("POST", "/v1/refunds", {"payment_intent": "pi_x"}),
                                   ("GET", "/v1/events", None)] * 3:
            started = time.monotonic()
            r = await c.request(method, path, data=data)
            elapsed = time.monotonic() - started
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["retry-after"].isdigit()
            err = r.json()["error"]
            assert err["type"] == "api_error", err
            assert elapsed < 5.0, (path, elapsed)  # answered, not hung
        health = await c.get("/healthz")
        assert health.status_code == 503 and health.headers["retry-after"].isdigit()
        proxy.restore()
        # the pool reconnects by itself: no restart, same client connection
        deadline = time.monotonic() + 10
        while (r := await c.post("/v1/payment_intents", data=PAY)).status_code != 200:
            assert r.status_code == 503, r.text
            assert time.monotonic() < deadline, "kassa did not reconnect to the database"
            await asyncio.sleep(0.2)
        assert r.json()["status"] == "succeeded"
        assert (await c.get("/healthz")).status_code == 200
    assert len(set(ports.ports)) == 1, "a 503 dropped the client's connection"


async def test_a_stalled_database_is_answered_503_within_the_deadline(proxied):
    proxy, url, auth, ports = proxied
    async with one_connection(url, headers=auth, timeout=30.0) as c:
        assert (await c.get("/v1/payment_intents")).status_code == 200
        proxy.stall()
        started = time.monotonic()
        r = await c.get("/healthz")  # its own, shorter bound
        assert r.status_code == 503 and r.json()["checks"]["database"] is False
        assert time.monotonic() - started < ANSWER_WITHIN
        for method, path, data in [("GET", "/v1/payment_intents", None),
                                   ("POST", "/v1/payment_intents", PAY)]:
            started = time.monotonic()
            r = await c.request(method, path, data=data)
            elapsed = time.monotonic() - started
            assert r.status_code == 503, (path, r.text)
            assert r.json()["error"]["type"] == "api_error"
            assert r.headers["retry-after"].isdigit()
            assert ANSWER_WITHIN - 0.1 < elapsed < ANSWER_WITHIN + 2, (path, elapsed)
        keyed = {"Idempotency-Key": "stalled-payment-1"}
        r = await c.post("/v1/payment_intents", data={**PAY, "amount": "4321"}, headers=keyed)
        assert r.status_code == 503 and "may still complete" in r.json()["error"]["message"]
        proxy.restore()
        # the requests answered late run on to their end; the connection serves new ones,
        # and the retry with the same key learns the one outcome (never a second payment)
        deadline = time.monotonic() + 10
        while (r := await c.post("/v1/payment_intents", data={**PAY, "amount": "4321"},
                                 headers=keyed)).status_code != 200:
            assert r.status_code in (409, 503), r.text  # still running, or reconnecting
            assert time.monotonic() < deadline, r.text
            await asyncio.sleep(0.2)
        assert r.json()["status"] == "succeeded"
        listed = (await c.get("/v1/payment_intents", params={"limit": 100})).json()["data"]
        assert [p["id"] for p in listed if p["amount"] == 4321] == [r.json()["id"]]
    assert len(set(ports.ports)) == 1, "a late answer dropped the client's connection"
