"""The httpx transport of kassa's PSP client in the API and worker processes: a request
whose body carries vault placeholders goes to the vault's forwarding endpoint (on its
private, loopback-only listener: KASSA_VAULT_FORWARD_PORT) instead of the PSP, everything
else goes straight on. Adapters keep building their own requests and reading their own
answers; they never see a card number, and neither does this process.

Failures of the PSP hop, as the vault reports them, are raised as the exceptions the
adapter's own connection would have raised (ConnectError, ConnectTimeout: provably unsent;
ReadTimeout, RemoteProtocolError: sent, outcome unknown)."""

from __future__ import annotations

import httpx

from kassa.vault import forward as fw
from kassa.vault.placeholders import MARKER

_HOP = {"host", "content-length", "connection", "transfer-encoding"}
_RAISED: dict[str, type[httpx.TransportError]] = {
    "connect": httpx.ConnectError, "connect_timeout": httpx.ConnectTimeout,
    "timeout": httpx.ReadTimeout, "transport": httpx.RemoteProtocolError}


class VaultForwardingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, *, forward_url: str, token: str
                 ) -> None:
        self.inner = inner
        # parsed once: a Request given a str parses it again per payment
        self.forward_url = httpx.URL(forward_url.rstrip("/") + "/v1/forward")
        self.token = token

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if MARKER not in body:
            return await self.inner.handle_async_request(request)
        timeout = (request.extensions.get("timeout") or {}).get("read")
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _HOP]
        headers += [(fw.TOKEN_HEADER, self.token), (fw.URL_HEADER, str(request.url)),
                    (fw.METHOD_HEADER, request.method)]
        if timeout:
            # the vault gives up on the PSP a little before this client gives up on it
            headers.append((fw.TIMEOUT_HEADER, f"{max(0.1, timeout * 0.95):.3f}"))
        via = httpx.Request("POST", self.forward_url, headers=headers, content=body,
                            extensions=request.extensions)
        response = await self.inner.handle_async_request(via)
        error = response.headers.get(fw.ERROR_HEADER)
        if error in _RAISED:
            await response.aread()
            await response.aclose()
            raise _RAISED[error](f"via the vault: {error} error reaching {request.url.host}",
                                 request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
