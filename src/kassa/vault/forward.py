"""The forwarding endpoint's work: a PSP request built outside the vault with placeholders
(placeholders.py) gets the card fields filled in and goes to an allow-listed PSP origin
only; the PSP's answer comes back with any card number it echoed put back as placeholder.

The outcome of the PSP hop travels back in ``Kassa-Forward-Error`` (connect,
connect_timeout, timeout, transport, refused), so the caller's transport can raise what its
own connection would have raised (transport.py) and adapters keep their error mapping: a
request the PSP never received stays provably unsent, a timeout stays outcome-unknown."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson

from kassa.vault import placeholders
from kassa.vault.crypto import DecryptionFailed
from kassa.vault.hop import Hop, HopFailed, HttpxHop
from kassa.vault.keyring import UnwrapFailed
from kassa.vault.secret import Secret
from kassa.vault.service import Vault

ERROR_HEADER = "kassa-forward-error"
URL_HEADER = "kassa-forward-url"
METHOD_HEADER = "kassa-forward-method"
TIMEOUT_HEADER = "kassa-forward-timeout"
TOKEN_HEADER = "kassa-vault-token"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "host", "content-length"}
# the caller's Accept-Encoding is not sent on: the vault asks the PSP for its answer as it
# is (identity), so the card numbers it echoes are masked in the very bytes received and
# nothing is decompressed here (no size a compressed answer could blow up to); an answer
# encoded all the same is refused (Forwarder.forward), never passed on unread
_NOT_SENT = _HOP_BY_HOP | {"accept-encoding"}
_IDENTITY = ("accept-encoding", "identity")
_NOT_RETURNED = _HOP_BY_HOP | {"content-encoding"}
log = logging.getLogger(__name__)


class ForwardRefused(Exception):
    """Not forwarded (nothing reached the PSP): a host off the allow-list, an unknown card,
    a body the vault cannot read."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Forwarded:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: str | None = None  # connect[_timeout] | timeout | transport (the PSP hop failed)


@functools.lru_cache(maxsize=1024)  # the few PSP endpoints: parsing was 6 % of a forward
def _target(url: str) -> tuple[str, tuple[str, str, int]]:
    """The URL as httpx parses and writes it back (what is sent: the origin checked is the
    one of the very string the hop parses again) and its origin, once per URL."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return str(parsed), (parsed.scheme, parsed.host, port)


def origin(url: str) -> tuple[str, str, int]:
    return _target(url)[1]


def parse_allow_list(text: str) -> frozenset[tuple[str, str, int]]:
    """``http://127.0.0.1:8001,https://api.stripe.com``: the PSP origins one may forward to."""
    return frozenset(origin(item.strip()) for item in text.split(",") if item.strip())


class Forwarder:
    def __init__(self, vault: Vault, hop: Hop | httpx.AsyncBaseTransport, *,
                 allowed: frozenset[tuple[str, str, int]], default_timeout: float = 10.0
                 ) -> None:
        """``hop``: the PSP connections (pooled, kept alive: hop.AiohttpHop), or an httpx
        transport (hop.HttpxHop). No client around them: a forward needs none of a
        client's redirects, auth, cookies (a PSP's cookie must not travel with another
        merchant's request) or default headers (the caller's request brings its own)."""
        self.vault = vault
        self.hop: Hop = HttpxHop(hop) if isinstance(hop, httpx.AsyncBaseTransport) else hop
        self.allowed = allowed
        self.default_timeout = default_timeout

    async def forward(self, *, method: str, url: str, headers: Iterable[tuple[str, str]],
                      body: bytes, psp_timeout: float | None) -> Forwarded:
        try:
            normalised, target = _target(url)
        except (httpx.InvalidURL, TypeError):
            raise ForwardRefused("the forward URL is not a URL") from None
        if method != "POST":
            # a card is sent with POST only (every adapter's authorisation); and an HTTP
            # client sends an idempotent method again on a new connection after a kept-alive
            # one dropped it, so a PUT's "connect" failure need not mean unsent (hop.py)
            raise ForwardRefused(f"the vault forwards POST requests only, not {method[:10]}",
                                 status=405)
        if target not in self.allowed:
            raise ForwardRefused(f"{target[0]}://{target[1]}:{target[2]} is not an allowed PSP "
                                 "host (KASSA_VAULT_FORWARD_HOSTS)", status=403)
        outgoing = []
        content_type = ""
        for k, v in headers:
            name = k.lower()
            if name in _NOT_SENT or name.startswith(("kassa-vault-", "kassa-forward-")):
                continue
            if name == "content-type" and not content_type:
                content_type = v
            outgoing.append((k, v))
        outgoing.append(_IDENTITY)
        filled, pans, cvcs = await self._fill(content_type, body)
        try:
            answer = await self.hop.send(method, normalised, outgoing, filled,
                                         psp_timeout or self.default_timeout)
        except HopFailed as failed:
            # "connect" tells the caller the PSP never got the request (it may fail over to
            # another PSP), so only what provably never left is one (hop.py)
            if failed.kind in ("connect", "connect_timeout"):
                for pm_id, cvc in cvcs.items():  # the CVC was not used
                    self.vault.cvcs.give_back(pm_id, cvc)
                return Forwarded(504 if failed.kind == "connect_timeout" else 502, [], b"",
                                 failed.kind)
            return Forwarded(504 if failed.kind == "timeout" else 502, [], b"", failed.kind)
        if any(k.lower() == "content-encoding" and v.strip().lower() not in ("", "identity")
               for k, v in answer.headers):
            # encoded although identity was asked for: the card number it may echo cannot be
            # masked, nor the answer read — the request was sent, its outcome is unknown
            log.error("the PSP at %s://%s:%s answered with a content-encoding: refused as an "
                      "unknown outcome", *target)
            return Forwarded(502, [], b"", "transport")
        body_back = answer.body
        for pm_id, pan in pans.items():  # a PSP that echoes the number gets its placeholder
            body_back = body_back.replace(pan.encode(), placeholders.placeholder(pm_id, "number")
                                          .encode())
        returned = [(k, v) for k, v in answer.headers if k.lower() not in _NOT_RETURNED]
        return Forwarded(answer.status, returned, body_back)

    async def _fill(self, content_type: str, body: bytes
                    ) -> tuple[bytes, dict[str, str], dict[str, Secret]]:
        """The body with placeholders replaced; the PANs and CVCs used, by payment method."""
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise ForwardRefused("the body to forward is not JSON") from None
            found = _json_placeholders(document)
        elif kind == "application/x-www-form-urlencoded":
            pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
            found = {v for _, v in pairs if placeholders.parse(v) is not None}
        else:
            raise ForwardRefused("the vault forwards JSON or form-encoded bodies only")
        wanted = {placeholders.parse(p) for p in found}
        numbers = {pm for pm, field in filter(None, wanted) if field == "number"}
        try:
            opened = await self.vault.open_cards(sorted(numbers)) if numbers else {}
        except (DecryptionFailed, UnwrapFailed):
            log.error("a stored card did not authenticate (tampered, or moved between rows): "
                      "one of %s", sorted(numbers))
            raise ForwardRefused("the card's stored data did not authenticate", 422) from None
        missing = numbers - set(opened)
        if missing:
            raise ForwardRefused(f"No such PaymentMethod: '{sorted(missing)[0]}'", status=404)
        values: dict[str, str | None] = {}
        pans: dict[str, str] = {}
        cvcs: dict[str, Secret] = {}
        for pm, field in filter(None, wanted):
            if field == "number":
                pans[pm] = opened[pm].reveal()
                values[placeholders.placeholder(pm, field)] = pans[pm]
            else:
                cvc = self.vault.cvcs.take(pm)
                if cvc is not None:
                    cvcs[pm] = cvc
                values[placeholders.placeholder(pm, field)] = None if cvc is None \
                    else cvc.reveal()
        if kind == "application/json":
            return orjson.dumps(_json_fill(document, values)), pans, cvcs
        filled = [(k, values[v]) if v in values else (k, v) for k, v in pairs]
        return urlencode([(k, v) for k, v in filled if v is not None]).encode(), pans, cvcs


def _json_placeholders(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node} if placeholders.parse(node) is not None else set()
    if isinstance(node, dict):
        return set().union(*map(_json_placeholders, node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*map(_json_placeholders, node)) if node else set()
    return set()


def _json_fill(node: Any, values: dict[str, str | None]) -> Any:
    """Placeholders replaced; a field whose value is gone (a CVC no longer held) omitted."""
    if isinstance(node, dict):
        return {k: _json_fill(v, values) for k, v in node.items()
                if not (isinstance(v, str) and v in values and values[v] is None)}
    if isinstance(node, list):
        return [_json_fill(v, values) for v in node]
    if isinstance(node, str) and node in values:
        return values[node]
    return node
