"""kassa's ASGI app served by a real uvicorn on loopback, on the test's own event loop (so it
shares kassa's pool): for tests where something outside the test (the PSP simulator's
webhooks, a browser, schemathesis) must reach kassa over real HTTP, or that are about
connections rather than handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns signals
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, http: Literal["httptools", "h11"] = "httptools"
                  ) -> AsyncIterator[str]:
    """Yields the base URL of ``app`` served on 127.0.0.1 (a free port)."""
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", http=http,
                                    log_level="critical", access_log=False,
                                    timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
