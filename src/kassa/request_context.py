"""The API request being served, if any: its ``req_…`` id and Idempotency-Key.

A neutral module (stdlib only) between the API layer, which sets it per request (the door,
kassa.api.door), and the services, which stamp it on the events a request causes (Stripe's
``event.request``) without every use case taking it as an argument. A context variable
rather than a parameter threaded through each service: asyncio gives every request its own
copy, and anything that runs outside a request (workers, recovery, inbound PSP webhooks
applied later) sees none, which is Stripe's ``request.id: null`` for automatic events.
"""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from dataclasses import dataclass

from kassa.domain import ids


@dataclass(slots=True)
class RequestContext:
    id: str  # req_… (the Request-Id header)
    idempotency_key: str | None
    # a merchant's /v1 call (its events name it); PSP webhooks and 3-D Secure returns are
    # served by the API too, but the events they lead to are automatic ones, as at Stripe
    merchant_call: bool = True
    log_url: str | None = None  # where this request's log entry is read (errors link it)
    merchant_id: str | None = None  # set once the API key is known: its errors are logged


def identify(merchant_id: str) -> None:
    """The request is this merchant's (authentication passed)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.merchant_id = merchant_id


_current: ContextVar[RequestContext | None] = ContextVar("kassa_request", default=None)


def new_request_id() -> str:
    """``req_`` and 14 base62 characters, as Stripe's."""
    return ids.encode("req", os.urandom(18))[:18]


def current() -> RequestContext | None:
    return _current.get()


def bind(context: RequestContext | None) -> Token[RequestContext | None]:
    return _current.set(context)


def unbind(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def event_request() -> dict[str, str | None]:
    """Stripe's ``event.request``: the merchant request that caused the event, if one did."""
    ctx = _current.get()
    if ctx is None or not ctx.merchant_call:
        return {"id": None, "idempotency_key": None}
    return {"id": ctx.id, "idempotency_key": ctx.idempotency_key}
