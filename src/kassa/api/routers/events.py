"""/v1/events: the event stream, newest first, cursor-paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses
from kassa.api.schemas import EventListQuery
from kassa.services import events

router = APIRouter(prefix="/v1/events", tags=["events"], responses=openapi.V1_ERRORS)


@router.get("", responses=openapi.ok(responses.ListOf[responses.EventObject]))
async def list_events(request: Request, caller: deps.SecretKey,
                      q: Annotated[EventListQuery, Query()]) -> Response:
    items, more = await events.list_(deps.kassa(request), merchant_id=caller.merchant_id,
                                     limit=q.limit, starting_after=q.starting_after,
                                     ending_before=q.ending_before, type=q.type)
    return deps.list_response("/v1/events", items, more)


@router.get("/{event_id}", responses=openapi.ok(responses.EventObject))
async def retrieve_event(request: Request, event_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await events.retrieve(deps.kassa(request),
                                              merchant_id=caller.merchant_id,
                                              event_id=event_id))
