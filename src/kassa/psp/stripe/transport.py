"""The stripe SDK's HTTP seam over kassa's injected ``httpx.AsyncClient``.

The SDK's own HTTPXClient builds a client of its own and passes the form body as
``data=`` (deprecated by httpx for raw bytes); this one uses the shared connection pool
(aiohttp's, as every PSP call) and keeps the transport exception as the cause of the
SDK's APIConnectionError, so the adapter can tell "never sent" from "sent, no answer".
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from typing import Any, NoReturn

import httpx
import stripe


class InjectedHTTPXClient(stripe.HTTPClient):
    name = "kassa-httpx"

    def __init__(self, client: httpx.AsyncClient, *, timeout: float) -> None:
        super().__init__()
        self._client = client
        self._timeout = timeout

    async def request_async(self, method: str, url: str, headers: Mapping[str, str],
                            post_data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._client.request(method, url, headers=dict(headers),
                                                  content=post_data or None,
                                                  timeout=self._timeout)
        except httpx.HTTPError as exc:
            self._fail(exc)
        return response.content, response.status_code, response.headers

    async def request_stream_async(self, method: str, url: str, headers: Mapping[str, str],
                                   post_data: Any = None
                                   ) -> tuple[AsyncIterable[bytes], int, Mapping[str, str]]:
        content, status, response_headers = await self.request_async(method, url, headers,
                                                                     post_data)

        async def chunks() -> AsyncIterable[bytes]:
            yield content

        return chunks(), status, response_headers

    async def close_async(self) -> None:
        return None  # the client belongs to whoever injected it

    async def sleep_async(self, secs: float) -> None:
        import asyncio

        await asyncio.sleep(secs)

    @staticmethod
    def _fail(exc: httpx.HTTPError) -> NoReturn:
        error: Exception = stripe.APIConnectionError(  # type: ignore[no-untyped-call]
            f"{type(exc).__name__} talking to Stripe", should_retry=False)
        raise error from exc
