"""Was an HTTP request provably never sent? The line between PSPUnavailable (may fail over)
and PSPOutcomeUnknown (must be resolved at the same PSP) for adapters over httpx.

httpx's own transport (httpcore) raises ConnectError / ConnectTimeout only while opening
the connection, before a byte of the request is written. kassa's production transport is
httpx-aiohttp (bootstrap.http_client), whose exception map (0.2) turns *every*
``aiohttp.ClientConnectionError`` into ``httpx.ConnectTimeout`` — including
``ServerDisconnectedError``, a connection dropped after the request was sent. So the class
alone proves nothing there; the aiohttp exception it was raised from does: only
``aiohttp.ClientConnectorError`` (refused, DNS failure, TLS handshake failed) is raised
before anything was sent.
"""

from __future__ import annotations

import aiohttp
import httpx


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def never_sent(exc: httpx.TransportError) -> bool:
    """True only when the request cannot have reached the server."""
    causes = _causes(exc)
    if any(isinstance(c, aiohttp.ClientConnectorError) for c in causes):
        return True
    if any(isinstance(c, aiohttp.ClientError) for c in causes):
        return False  # aiohttp failed some other way: it may have sent the request
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
