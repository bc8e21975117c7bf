"""The three shapes of a /v1 route, written once; each router names its models and services.

- ``post``: authenticate, parse the body with its model (a 401 before a 400), run the service
  under the request's Idempotency-Key (``deps.run_post``).
- ``list_page``: the caller and query FastAPI has already checked (``deps.SecretKey`` comes
  first, so a bad key is a 401 before a bad query is a 400), one page from the service,
  Stripe's list object.
- ``retrieve``: authenticate, read through the service, the object.

Each honours ``expand[]`` (services/expand.py): checked against the object the route answers
before the service runs, applied to its answer. A route written by hand uses the same pieces:
``expansions``/``query_expansions``, then ``run_post_expanded`` or ``answer_expanded``.

The route functions keep their own signatures: FastAPI builds /openapi.json from them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from kassa import representations
from kassa.api import deps
from kassa.api.params import parse_form
from kassa.api.schemas import ExpandQuery, ListQuery
from kassa.services import expand, pagination
from kassa.services.merchants import Caller

M = TypeVar("M", bound=BaseModel)
Page = tuple[list[dict[str, Any]], bool]
# the object the routes under /v1/<resource> answer (a list route: its items)
OBJECTS = {"payment_intents": "payment_intent", "charges": "charge", "refunds": "refund",
           "balance_transactions": "balance_transaction", "disputes": "dispute",
           "customers": "customer", "payment_methods": "payment_method"}


def _object(segment: str) -> str:
    return OBJECTS.get(segment, segment)


def _resource(path: str) -> str:
    parts = path.split("/")
    return _object(parts[2] if len(parts) > 2 else "")


def expansions(request: Request, requested: list[str] | None) -> list[str]:
    """``expand[]`` as requested, checked against the object this route answers: an
    unknown or unexpandable path is a 400 before anything runs."""
    return expand.check(_resource(request.url.path), requested)


def query_expansions(request: Request) -> list[str]:
    """A GET's ``expand[]`` (bracket notation in the query string), checked."""
    query = ExpandQuery.model_validate(parse_form(request.scope.get("query_string", b"")))
    return expansions(request, query.expand)


async def answer_expanded(request: Request, merchant_id: str, obj: dict[str, Any],
                          paths: list[str]) -> Response:
    return deps.respond(await expand.expand(deps.kassa(request), merchant_id=merchant_id,
                                            obj=obj, paths=paths))


async def run_post_expanded(request: Request, caller: Caller, raw: dict[str, Any],
                            action: Callable[[Any], Awaitable[dict[str, Any]]],
                            paths: list[str]) -> Response:
    """``deps.run_post`` answering with ``paths`` expanded, a replay included (the key
    stores the service's answer; the SDKs retry on their own and must get what the first
    answer had)."""
    k = deps.kassa(request)

    async def act(idem: Any) -> dict[str, Any]:
        return await expand.expand(k, merchant_id=caller.merchant_id, obj=await action(idem),
                                   paths=paths)

    response = await deps.run_post(request, caller, raw, act)
    if paths and response.status_code == 200 and \
            response.headers.get("idempotent-replayed") == "true":
        expanded = await expand.expand(k, merchant_id=caller.merchant_id,
                                       obj=orjson.loads(bytes(response.body)), paths=paths)
        kept = {name: value for name, value in response.headers.items()
                if name not in ("content-length", "content-type")}
        return Response(orjson.dumps(expanded), status_code=200, headers=kept,
                        media_type=deps.JSON)
    return response


async def post(request: Request, model: type[M], service: Callable[..., Awaitable[dict[str, Any]]],
               arguments: Callable[[M], dict[str, Any]] | None = None, *,
               fingerprinted: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
               **params: Any) -> Response:
    """A write, run once per Idempotency-Key (replayed after): ``service(kassa,
    merchant_id=, **params, **arguments(body), idempotency=)``; ``params`` are the path's,
    ``arguments`` picks what the service takes from the validated body, ``fingerprinted``
    what of the body the key's stored request hash covers (secrets as keyed digests)."""
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, model)
    if fingerprinted is not None:
        raw = fingerprinted(raw)
    k = deps.kassa(request)
    paths = expansions(request, getattr(body, "expand", None))
    if arguments is not None:
        params.update(arguments(body))
    return await run_post_expanded(request, caller, raw, lambda idem: service(
        k, merchant_id=caller.merchant_id, idempotency=idem, **params), paths)


async def list_page(request: Request, caller: Caller, q: ListQuery, url: str,
                    lister: Callable[..., Awaitable[Page]], **filters: Any) -> Response:
    """``lister(kassa, merchant_id=, limit=, starting_after=, ending_before=, **filters)``,
    after the cursors were found to name objects of this list (else a 400)."""
    paths = expand.check("list", q.expand, item=_object(url.rstrip("/").split("/")[-1]))
    k = deps.kassa(request)
    await pagination.require_cursors(k, merchant_id=caller.merchant_id, url=url,
                                     starting_after=q.starting_after,
                                     ending_before=q.ending_before)
    items, more = await lister(k, merchant_id=caller.merchant_id,
                               limit=q.limit, starting_after=q.starting_after,
                               ending_before=q.ending_before, created=q.created, **filters)
    return deps.respond(await expand.expand(
        k, merchant_id=caller.merchant_id, obj=representations.list_object(url, items, more),
        paths=paths))


async def retrieve(request: Request, reader: Callable[..., Awaitable[dict[str, Any]]],
                   **params: Any) -> Response:
    """``reader(kassa, merchant_id=, **params)``, which raises NotFound for a missing id."""
    caller = await deps.authenticate(request)
    paths = query_expansions(request)
    obj = await reader(deps.kassa(request), merchant_id=caller.merchant_id, **params)
    return await answer_expanded(request, caller.merchant_id, obj, paths)
