"""A TCP proxy in front of PostgreSQL that can lose a reply: it forwards the next query
to the server (which runs and commits it) and then cuts the connection without passing
the answer on — the "did my COMMIT happen?" failure every database client must handle."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

DELIVERY_WAIT_S = 0.5  # long enough for the server to execute and commit the query


class LosingProxy:
    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self._dsn = dsn
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server: asyncio.Server | None = None
        self.armed = False  # lose the reply to the next query sent through the proxy
        self.lost = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen on loopback; returns the DSN to connect through the proxy."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self._dsn)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(
            netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in self._writers:
            with contextlib.suppress(OSError, ConnectionError):
                await w.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(client_w)
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers.append(server_w)
        dropping = False

        async def upstream() -> None:
            nonlocal dropping
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()
                # asyncpg sends Bind/Execute/Sync for a prepared query: cut after it
                if self.armed and data[:1] == b"B":
                    self.armed = False
                    dropping = True
                    await asyncio.sleep(DELIVERY_WAIT_S)
                    client_w.transport.abort()
                    server_w.transport.abort()
                    self.lost.set()
                    return

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if not dropping:
                    client_w.write(data)
                    await client_w.drain()

        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await asyncio.gather(upstream(), downstream())
