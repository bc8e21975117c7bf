"""Faults the simulator cannot produce itself, on the wire between kassa and the PSP.

The simulator's own fault model (``POST /_sim/faults``) covers errors and timeouts; a PSP
*refusing* a well-formed request (a 4xx: nothing was done) and an answer kassa cannot read
(the PSP acted, the body is garbage) are injected here instead, by an httpx transport that
kassa's PSP client is built with (bootstrap.build(http=…)) — the network, not kassa, is
what this replaces (CONVENTIONS rule 8).
"""

from __future__ import annotations

from collections import Counter, deque

import httpx
import orjson

REFUSED = "refused"  # answer 400 without forwarding: the PSP rejected the request
GARBLED_AFTER_CHARGE = "garbled_after_charge"  # forward (the PSP acts), answer unreadable
# for PSP test servers without a fault model of their own (localstripe):
ERROR = "error"  # answer 500 api_error without forwarding: nothing was done
TIMEOUT_AFTER_CHARGE = "timeout_after_charge"  # forward (the PSP acts), then time out
FAULTS = (REFUSED, GARBLED_AFTER_CHARGE, ERROR, TIMEOUT_AFTER_CHARGE)


class PSPWireFaults(httpx.AsyncBaseTransport):
    """Wraps the real transport; queued one-shot faults hit the next mutating PSP call
    (a POST under ``/v1/``), in order. Status queries (GET) always pass."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.queue: deque[str] = deque()
        self.injected: Counter[str] = Counter()

    def enqueue(self, fault: str) -> None:
        assert fault in FAULTS, fault
        self.queue.append(fault)

    def clear(self) -> None:
        self.queue.clear()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.startswith("/v1/") \
                or not self.queue:
            return await self.inner.handle_async_request(request)
        fault = self.queue.popleft()
        self.injected[fault] += 1
        if fault == REFUSED:
            return httpx.Response(400, headers={"content-type": "application/json"},
                                  content=orjson.dumps({"error": {
                                      "type": "invalid_request_error",
                                      "message": "Refused by the test's PSP wire."}}))
        if fault == ERROR:
            return httpx.Response(500, headers={"content-type": "application/json"},
                                  content=orjson.dumps({"error": {
                                      "type": "api_error",
                                      "message": "Injected by the test's PSP wire."}}))
        response = await self.inner.handle_async_request(request)
        await response.aread()
        await response.aclose()
        if fault == TIMEOUT_AFTER_CHARGE:
            raise httpx.ReadTimeout("no answer (injected after the PSP acted)",
                                    request=request)
        return httpx.Response(200, headers={"content-type": "application/json"},
                              content=b"<html>upstream proxy error</html>")

    async def aclose(self) -> None:
        await self.inner.aclose()
