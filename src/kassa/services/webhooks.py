"""Webhook endpoint use cases: create (secret shown once), update, delete, rotate the secret
with a grace period, list deliveries with their attempts, redeliver events, pending counts.

The sender that works the delivery queue is kassa.webhooks.delivery; the fan-out from
events to deliveries is a trigger in the database (migration 0003).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kassa import representations
from kassa.db import cursors as cursors_db
from kassa.db import webhook_deliveries as deliveries_db
from kassa.db import webhook_endpoints as endpoints_db
from kassa.domain import ids
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.services import pagination
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork
from kassa.webhooks import endpoints as rules

Resolver = Callable[[str, int], Awaitable[list[str]]]

DELIVERY_STATUSES = ("pending", "retrying", "delivered", "dead")
MAX_GRACE_SECONDS = 7 * 24 * 3600


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (what a connection could end up using)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Settings the endpoint use cases need (built from config by bootstrap)."""

    production: bool = False  # refuse non-public destinations and plain http
    rotation_grace_seconds: float = 24 * 3600.0  # the old secret signs this long
    max_endpoints_per_merchant: int = 32
    resolve: Resolver = field(default=resolve_host)


def new_secret() -> str:
    """``whsec_`` and 48 base62 characters (~285 random bits)."""
    return "whsec_" + ids.encode("", os.urandom(18))[1:] + ids.encode("", os.urandom(18))[1:]


async def check_url(policy: WebhookPolicy, url: str) -> str:
    """The URL if it may be an endpoint; in production every address its host resolves to
    must be public (no private, loopback or link-local targets: SSRF). The sender checks
    the addresses again when it connects, which catches DNS rebinding."""
    try:
        parsed = rules.parse_url(url, production=policy.production)
    except rules.EndpointRuleError as exc:
        raise InvalidRequest(exc.message, param=exc.param) from None
    if not policy.production:
        return parsed.url
    literal = parsed.ip_literal()
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await policy.resolve(parsed.host, parsed.port)
        except OSError:
            raise InvalidRequest(f"Invalid URL: the host {parsed.host} could not be resolved.",
                                 param="url") from None
        if not addresses:
            raise InvalidRequest(f"Invalid URL: the host {parsed.host} has no address.",
                                 param="url")
    refused = rules.refused_addresses(addresses)
    if refused:
        raise InvalidRequest(
            f"Invalid URL: {parsed.host} resolves to {', '.join(refused)}; private, loopback "
            "and link-local destinations are refused in production.", param="url")
    return parsed.url


def _events(enabled_events: list[str]) -> list[str]:
    try:
        return rules.normalize_enabled_events(enabled_events)
    except rules.EndpointRuleError as exc:
        raise InvalidRequest(exc.message, param=exc.param) from None


def _description(description: str | None) -> str | None:
    if description is not None and len(description) > rules.MAX_DESCRIPTION_LENGTH:
        raise InvalidRequest(f"description must be at most {rules.MAX_DESCRIPTION_LENGTH} "
                             "characters.", param="description")
    return description or None


def _endpoint(row: Any, *, secret: str | None = None) -> dict[str, Any]:
    return representations.webhook_endpoint(dict(row), secret=secret)


def _not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"No such webhook endpoint: '{endpoint_id}'", param="id")


# ---------------------------------------------------------------- endpoints


async def create_endpoint(kassa: Kassa, *, policy: WebhookPolicy, merchant_id: str, url: str,
                          enabled_events: list[str], description: str | None = None,
                          metadata: dict[str, str] | None = None, stripe_signature: bool = True,
                          idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """The new endpoint with its signing secret: the only response that contains it.
    ``stripe_signature``: its deliveries also carry Stripe-Signature."""
    checked_url = await check_url(policy, url)
    events = _events(enabled_events)
    secret = new_secret()
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        await endpoints_db.lock_merchant(conn, merchant_id)
        if await endpoints_db.count_endpoints(conn,
                                              merchant_id) >= policy.max_endpoints_per_merchant:
            raise InvalidRequest(
                f"A merchant may have at most {policy.max_endpoints_per_merchant} webhook "
                "endpoints; delete one first.", code="webhook_endpoint_limit")
        row = await endpoints_db.insert_endpoint(
            conn, endpoint_id=kassa.ids("we"), merchant_id=merchant_id, url=checked_url,
            description=_description(description), metadata=metadata or {},
            enabled_events=events, secret=secret, created=kassa.clock(),
            stripe_signature=stripe_signature)
        result = _endpoint(row, secret=secret)
        await uow.commit(response=result)
    return result


async def retrieve_endpoint(kassa: Kassa, *, merchant_id: str, endpoint_id: str
                            ) -> dict[str, Any]:
    row = await endpoints_db.get_endpoint(kassa.pool, merchant_id=merchant_id,
                                          endpoint_id=endpoint_id)
    if row is None:
        raise _not_found(endpoint_id)
    return _endpoint(row)


async def list_endpoints(kassa: Kassa, *, merchant_id: str, limit: int,
                         starting_after: str | None, ending_before: str | None,
                         created: Bounds | None = None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await endpoints_db.list_endpoints(kassa.pool, merchant_id=merchant_id, limit=limit,
                                                   starting_after=starting_after,
                                                   ending_before=ending_before, created=created)
    return [_endpoint(r) for r in rows], more


async def update_endpoint(kassa: Kassa, *, policy: WebhookPolicy, merchant_id: str,
                          endpoint_id: str, url: str | None = None,
                          enabled_events: list[str] | None = None,
                          description: str | None = None, disabled: bool | None = None,
                          metadata: dict[str, str | None] | None = None,
                          stripe_signature: bool | None = None,
                          idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Change what is given. Metadata keys merge; an empty value removes its key.
    Re-enabling an endpoint sends the deliveries that waited while it was disabled."""
    checked_url = None if url is None else await check_url(policy, url)
    events = None if enabled_events is None else _events(enabled_events)
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        current = await endpoints_db.get_endpoint(conn, merchant_id=merchant_id,
                                                  endpoint_id=endpoint_id, for_update=True)
        if current is None:
            raise _not_found(endpoint_id)
        merged = dict(current["metadata"])
        for key, value in (metadata or {}).items():
            if value in (None, ""):
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        status = current["status"]
        if disabled is not None:
            status = "disabled" if disabled else "enabled"
        row = await endpoints_db.update_endpoint(
            conn, merchant_id=merchant_id, endpoint_id=endpoint_id,
            url=checked_url or current["url"],
            description=current["description"] if description is None
            else _description(description),
            metadata=merged, enabled_events=events or list(current["enabled_events"]),
            status=status, stripe_signature=current["stripe_signature"]
            if stripe_signature is None else stripe_signature)
        assert row is not None  # locked above
        if current["status"] == "disabled" and status == "enabled":
            await deliveries_db.unpark_deliveries(conn, endpoint_id=endpoint_id)
        result = _endpoint(row)
        await uow.commit(response=result)
    return result


async def delete_endpoint(kassa: Kassa, *, merchant_id: str, endpoint_id: str,
                          idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Stops every delivery to it; its delivery history goes with it."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        if not await endpoints_db.delete_endpoint(conn, merchant_id=merchant_id,
                                                  endpoint_id=endpoint_id):
            raise _not_found(endpoint_id)
        result = representations.deleted_webhook_endpoint(endpoint_id)
        await uow.commit(response=result)
    return result


async def rotate_secret(kassa: Kassa, *, policy: WebhookPolicy, merchant_id: str,
                        endpoint_id: str, grace_seconds: float | None = None,
                        idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """A new secret, returned once. Deliveries carry a v1 signature for the new and for the
    old secret until the grace period ends (``grace_seconds`` or the configured default;
    0 revokes the old one at once)."""
    grace = policy.rotation_grace_seconds if grace_seconds is None else grace_seconds
    if not 0 <= grace <= MAX_GRACE_SECONDS:
        raise InvalidRequest(f"expires_in must be between 0 and {MAX_GRACE_SECONDS} seconds.",
                             param="expires_in")
    secret = new_secret()
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        row = await endpoints_db.rotate_secret(conn, merchant_id=merchant_id,
                                               endpoint_id=endpoint_id,
                                               secret=secret, grace_seconds=grace)
        if row is None:
            raise _not_found(endpoint_id)
        result = _endpoint(row, secret=secret)
        await uow.commit(response=result)
    return result


# ---------------------------------------------------------------- deliveries


async def list_deliveries(kassa: Kassa, *, merchant_id: str, endpoint_id: str, limit: int,
                          starting_after: str | None, ending_before: str | None,
                          status: str | None, created: Bounds | None = None
                          ) -> tuple[list[dict[str, Any]], bool]:
    """An endpoint's deliveries, newest first, each with all its attempts."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidRequest(f"Invalid status: must be one of {', '.join(DELIVERY_STATUSES)}.",
                             param="status")
    cursors: dict[str, int | None] = {}
    for name, value in (("starting_after", starting_after), ("ending_before", ending_before)):
        cursors[name] = None if value is None else representations.parse_delivery_id(value)
        if value is not None and cursors[name] is None:
            raise InvalidRequest(f"Invalid {name}: not a webhook delivery id.", param=name)
    if await endpoints_db.get_endpoint(kassa.pool, merchant_id=merchant_id,
                                       endpoint_id=endpoint_id) is None:
        raise _not_found(endpoint_id)
    for name, value in (("starting_after", starting_after), ("ending_before", ending_before)):
        number = cursors[name]
        if value is not None and number is not None and not await cursors_db.delivery_exists(
                kassa.pool, merchant_id=merchant_id, endpoint_id=endpoint_id,
                delivery_id=number):
            raise pagination.missing_cursor("webhook_delivery", name, value)
    rows, more = await deliveries_db.list_deliveries(
        kassa.pool, merchant_id=merchant_id, endpoint_id=endpoint_id, limit=limit,
        starting_after=cursors["starting_after"], ending_before=cursors["ending_before"],
        status=status, created=created)
    attempts = await deliveries_db.attempts_for(kassa.pool, [r["id"] for r in rows]) if rows else {}
    return [representations.webhook_delivery(dict(r),
                                             [dict(a) for a in attempts.get(r["id"], [])])
            for r in rows], more


async def pending_webhooks(kassa: Kassa, *, merchant_id: str, event_ids: list[str]
                           ) -> dict[str, int]:
    """Per event id, its deliveries not (yet) acknowledged with a 2xx (absent: 0)."""
    if not event_ids:
        return {}
    return await deliveries_db.pending_counts(kassa.pool, merchant_id=merchant_id,
                                              event_ids=event_ids)


async def redeliver(kassa: Kassa, *, merchant_id: str, event_id: str,
                    endpoint_id: str | None = None,
                    idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Send an event again: its delivered and dead deliveries (or, with ``endpoint_id``,
    to that one endpoint, even one that was not subscribed when the event happened).
    Deliveries still pending or retrying are already on their way and are left alone.
    Returns the deliveries scheduled."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        if not await deliveries_db.event_exists(conn, merchant_id=merchant_id, event_id=event_id):
            raise NotFound(f"No such event: '{event_id}'", param="id")
        if endpoint_id is not None:
            if await endpoints_db.get_endpoint(conn, merchant_id=merchant_id,
                                               endpoint_id=endpoint_id) is None:
                raise NotFound(f"No such webhook endpoint: '{endpoint_id}'", param="endpoint")
            rows = await deliveries_db.redeliver_to_endpoint(
                conn, merchant_id=merchant_id, event_id=event_id, endpoint_id=endpoint_id)
        else:
            rows = await deliveries_db.redeliver_event(conn, merchant_id=merchant_id,
                                                       event_id=event_id)
        result = representations.list_object(
            f"/v1/events/{event_id}/redeliver",
            [representations.webhook_delivery(dict(r)) for r in rows], has_more=False)
        await uow.commit(response=result)
    return result


async def redeliver_as_operator(kassa: Kassa, *, event_id: str, endpoint_id: str | None = None
                                ) -> dict[str, Any]:
    """The CLI's redelivery: the event id alone names its merchant."""
    merchant_id = await deliveries_db.event_merchant(kassa.pool, event_id)
    if merchant_id is None:
        raise NotFound(f"No such event: '{event_id}'", param="id")
    return await redeliver(kassa, merchant_id=merchant_id, event_id=event_id,
                           endpoint_id=endpoint_id)


async def list_dead(kassa: Kassa, *, merchant_id: str | None = None, limit: int = 100
                    ) -> list[dict[str, Any]]:
    """Dead deliveries across merchants (or one), most recent first, for operators."""
    rows = await deliveries_db.list_dead(kassa.pool, merchant_id=merchant_id, limit=limit)
    out = []
    for r in rows:
        obj = representations.webhook_delivery(dict(r))
        obj["merchant"] = r["merchant_id"]
        obj["url"] = r["url"]
        out.append(obj)
    return out
