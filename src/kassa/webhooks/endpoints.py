"""Rules for webhook endpoints: which event types may be subscribed, what a valid URL is,
which addresses a production sender must never connect to (SSRF). Pure: resolving a
hostname is the caller's job. (The objects the API returns: kassa.representations.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

WILDCARD = "*"

# Every event type kassa emits (services/*.py `emit(type=...)`); a unit test keeps this
# catalogue and the code in step. Subscribing to an unknown type is refused, as at Stripe.
EVENT_TYPES: frozenset[str] = frozenset({
    "payment_intent.created",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.expired",
    "charge.updated",
    "charge.refunded",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "account.updated",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.attached",
    "payment_method.detached",
    "payment_method.updated",
})

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 5000


class EndpointRuleError(ValueError):
    """A parameter breaks an endpoint rule; ``param`` names it."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def normalize_enabled_events(events: Iterable[str]) -> list[str]:
    """The subscription as stored: de-duplicated, sorted, ``["*"]`` alone if present."""
    wanted = [e.strip() for e in events]
    if not wanted:
        raise EndpointRuleError("enabled_events must name at least one event type, or '*'.",
                                param="enabled_events")
    if WILDCARD in wanted:
        return [WILDCARD]
    unknown = sorted({e for e in wanted if e not in EVENT_TYPES})
    if unknown:
        raise EndpointRuleError(
            f"Invalid enabled_events: unknown event type(s) {', '.join(unknown)}. "
            "Use '*' or event types such as payment_intent.succeeded.",
            param="enabled_events")
    return sorted(set(wanted))


def subscribes(enabled_events: Iterable[str], event_type: str) -> bool:
    """Mirrors the fan-out trigger (migration 0003)."""
    return any(e == WILDCARD or e == event_type for e in enabled_events)


@dataclass(frozen=True, slots=True)
class EndpointURL:
    url: str
    scheme: str
    host: str  # lower-case hostname, or an IP literal without brackets
    port: int

    def ip_literal(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_url(url: str, *, production: bool) -> EndpointURL:
    """Syntax rules for an endpoint URL; in production also HTTPS only and no names that
    can only mean this machine. Addresses behind a hostname are checked by the caller."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise EndpointRuleError(f"url must be 1 to {MAX_URL_LENGTH} characters.", param="url")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise EndpointRuleError("Invalid URL: it contains whitespace or control characters.",
                                param="url")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRuleError("Invalid URL: it could not be parsed.", param="url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise EndpointRuleError("Invalid URL: the scheme must be https (or http outside "
                                "production).", param="url")
    if production and scheme != "https":
        raise EndpointRuleError("Invalid URL: webhook endpoints must use https in production.",
                                param="url")
    host = (parts.hostname or "").lower()
    if not host:
        raise EndpointRuleError("Invalid URL: it has no host.", param="url")
    if parts.username is not None or parts.password is not None:
        raise EndpointRuleError("Invalid URL: credentials in the URL are not allowed.",
                                param="url")
    if parts.fragment:
        raise EndpointRuleError("Invalid URL: fragments are not allowed.", param="url")
    if production and (host == "localhost" or host.endswith((".localhost", ".local",
                                                                ".internal"))):
        raise EndpointRuleError(f"Invalid URL: {host} is not a public host; private, loopback "
                                "and link-local destinations are refused in production.",
                                param="url")
    return EndpointURL(url=url, scheme=scheme, host=host,
                       port=port or (443 if scheme == "https" else 80))


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for private, loopback, link-local, shared, reserved, multicast, unspecified
    addresses, including IPv4 ones embedded in IPv6 (mapped, 6to4, NAT64, Teredo)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if ip.ipv4_mapped is not None:
            embedded.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.scope_id:
            return False
        if any(not is_public_address(v4) for v4 in embedded):
            return False
    return bool(ip.is_global) and not ip.is_multicast


def refused_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses a production sender must not connect to."""
    refused = []
    for address in addresses:
        try:
            public = is_public_address(address)
        except ValueError:
            public = False
        if not public:
            refused.append(address)
    return refused

