"""The three shapes of a /v1 route, written once; each router names its models and services.

- ``post``: authenticate, parse the body with its model (a 401 before a 400), run the service
  under the request's Idempotency-Key (``deps.run_post``).
- ``list_page``: the caller and query FastAPI has already checked (``deps.SecretKey`` comes
  first, so a bad key is a 401 before a bad query is a 400), one page from the service,
  Stripe's list object.
- ``retrieve``: authenticate, read through the service, the object.

The route functions keep their own signatures: FastAPI builds /openapi.json from them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from kassa import representations
from kassa.api import deps
from kassa.api.schemas import ListQuery
from kassa.services import pagination
from kassa.services.merchants import Caller

M = TypeVar("M", bound=BaseModel)
Page = tuple[list[dict[str, Any]], bool]


async def post(request: Request, model: type[M], service: Callable[..., Awaitable[dict[str, Any]]],
               arguments: Callable[[M], dict[str, Any]] | None = None, **params: Any
               ) -> Response:
    """A write, run once per Idempotency-Key (replayed after): ``service(kassa,
    merchant_id=, **params, **arguments(body), idempotency=)``; ``params`` are the path's,
    ``arguments`` picks what the service takes from the validated body."""
    caller = await deps.authenticate(request)
    body, raw = await deps.params(request, model)
    k = deps.kassa(request)
    if arguments is not None:
        params.update(arguments(body))
    return await deps.run_post(request, caller, raw, lambda idem: service(
        k, merchant_id=caller.merchant_id, idempotency=idem, **params))


async def list_page(request: Request, caller: Caller, q: ListQuery, url: str,
                    lister: Callable[..., Awaitable[Page]], **filters: Any) -> Response:
    """``lister(kassa, merchant_id=, limit=, starting_after=, ending_before=, **filters)``,
    after the cursors were found to name objects of this list (else a 400)."""
    await pagination.require_cursors(deps.kassa(request), merchant_id=caller.merchant_id,
                                     url=url, starting_after=q.starting_after,
                                     ending_before=q.ending_before)
    items, more = await lister(deps.kassa(request), merchant_id=caller.merchant_id,
                               limit=q.limit, starting_after=q.starting_after,
                               ending_before=q.ending_before, created=q.created, **filters)
    return deps.respond(representations.list_object(url, items, more))


async def retrieve(request: Request, reader: Callable[..., Awaitable[dict[str, Any]]],
                   **params: Any) -> Response:
    """``reader(kassa, merchant_id=, **params)``, which raises NotFound for a missing id."""
    caller = await deps.authenticate(request)
    return deps.respond(await reader(deps.kassa(request), merchant_id=caller.merchant_id,
                                     **params))
