"""Only a request that provably never left may fail over: over kassa's production transport
(httpx-aiohttp) a refused connection is "never sent", a connection dropped after the request
was written is not — though httpx-aiohttp raises ConnectTimeout for both."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from kassa.psp.transport_errors import never_sent


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def transport_error(url: str, transport: httpx.AsyncBaseTransport
                          ) -> httpx.TransportError:
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
        with pytest.raises(httpx.TransportError) as err:
            await client.post(url, content=b'{"amount": 1}')
    return err.value


async def drop_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                             ) -> None:
    await reader.read(1024)  # the request arrived: the PSP may act on it
    writer.close()


@pytest.mark.parametrize("make", [AiohttpTransport, httpx.AsyncHTTPTransport])
async def test_refused_is_never_sent_a_drop_after_sending_is_not(make):
    refused = await transport_error(f"http://127.0.0.1:{dead_port()}/v1/authorizations", make())
    assert never_sent(refused)
    server = await asyncio.start_server(drop_after_reading, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        dropped = await transport_error(f"http://127.0.0.1:{port}/v1/authorizations", make())
    assert not never_sent(dropped), repr(dropped)
    if make is AiohttpTransport:  # why the class alone cannot be trusted
        assert isinstance(dropped, httpx.ConnectTimeout)
