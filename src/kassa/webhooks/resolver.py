"""DNS for production webhook senders: a host must resolve to public addresses only, checked
when the sender connects (so a name cannot be turned to the internal network later)."""

from __future__ import annotations

import errno
import socket

from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from kassa.webhooks import endpoints as rules


class PublicOnlyResolver(ThreadedResolver):
    """DNS for production senders: refuses hosts that resolve to a private, loopback,
    link-local or otherwise non-public address at connect time, so an endpoint that was
    public when it was registered cannot be turned against the internal network by
    changing its DNS (rebinding)."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        refused = rules.refused_addresses([r["host"] for r in results])
        if refused:
            raise OSError(errno.EACCES, f"refused: {host} resolves to non-public "
                                        f"address(es) {', '.join(refused)}")
        return results
