"""The three shapes of a /v1 route, written once; each router names its models and services.

- ``post``: authenticate, parse the body with its model (a 401 before a 400), run the service
  under the request's Idempotency-Key (``deps.run_post``).
- ``list_page``: the caller and query FastAPI has already checked (``deps.SecretKey`` comes
  first, so a bad key is a 401 before a bad query is a 400), one page from the service,
  Stripe's list object.
- ``retrieve``: authenticate, read through the service, the object.

Each honours ``expand[]`` (services/expand.py): checked against the object the route answers
before the service runs, applied to its answer.

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
from kassa.services import expand
from kassa.services.merchants import Caller

M = TypeVar("M", bound=BaseModel)
Page = tuple[list[dict[str, Any]], bool]
# the object the routes under /v1/<resource> answer (a list route: its items)
OBJECTS = {"payment_intents": "payment_intent", "charges": "charge", "refunds": "refund",
           "balance_transactions": "balance_transaction", "disputes": "dispute"}


def _object(segment: str) -> str:
    return OBJECTS.get(segment, segment)


def _resource(path: str) -> str:
    parts = path.split("/")
    return _object(parts[2] if len(parts) > 2 else "")


async def post(request: Request, model: type[M], service: Callable[..., Awaitable[dict[str, Any]]],
               arguments: Callable[[M], dict[str, Any]] | None = None, **params: Any
               ) -> Response:
    """A write, run once per Idempotency-Key (replayed after): ``service(kassa,
    merchant_id=, **params, **arguments(body), idempotency=)``; ``params`` are the path's,
    ``arguments`` picks what the service takes from the validated body."""
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, model)
    k = deps.kassa(request)
    paths = expand.check(_resource(request.url.path), getattr(body, "expand", None))
    if arguments is not None:
        params.update(arguments(body))

    async def act(idem: Any) -> dict[str, Any]:
        result = await service(k, merchant_id=caller.merchant_id, idempotency=idem, **params)
        return await expand.expand(k, merchant_id=caller.merchant_id, obj=result, paths=paths)

    response = await deps.run_post(request, caller, raw, act)
    if paths and response.status_code == 200 and \
            response.headers.get("idempotent-replayed") == "true":
        # the key stored the service's answer; a retry (the SDKs retry on their own) gets
        # the expansions its request asked for, as the first answer had them
        expanded = await expand.expand(k, merchant_id=caller.merchant_id,
                                       obj=orjson.loads(bytes(response.body)), paths=paths)
        kept = {name: value for name, value in response.headers.items()
                if name not in ("content-length", "content-type")}
        return Response(orjson.dumps(expanded), status_code=200, headers=kept,
                        media_type=deps.JSON)
    return response


async def list_page(request: Request, caller: Caller, q: ListQuery, url: str,
                    lister: Callable[..., Awaitable[Page]], **filters: Any) -> Response:
    """``lister(kassa, merchant_id=, limit=, starting_after=, ending_before=, **filters)``."""
    paths = expand.check("list", q.expand, item=_object(url.rstrip("/").split("/")[-1]))
    k = deps.kassa(request)
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
    query = ExpandQuery.model_validate(parse_form(request.scope.get("query_string", b"")))
    paths = expand.check(_resource(request.url.path), query.expand)
    k = deps.kassa(request)
    return deps.respond(await expand.expand(
        k, merchant_id=caller.merchant_id,
        obj=await reader(k, merchant_id=caller.merchant_id, **params), paths=paths))
