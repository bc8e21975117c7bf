"""kassa's ASGI app served by uvicorn on loopback, on the test's own event loop (so it shares
kassa's pool): for tests where something outside the test (the PSP simulator's webhooks)
must reach kassa over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns signals
        yield


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL."""
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                    log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the API server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
