"""/v1/events: the event stream, newest first, cursor-paginated."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps
from kassa.services import events

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("")
async def list_events(request: Request) -> Response:
    caller = await deps.authenticate(request)
    q = deps.list_query(request)
    items, more = await events.list_(deps.kassa(request), merchant_id=caller.merchant_id,
                                     limit=q.limit, starting_after=q.starting_after,
                                     ending_before=q.ending_before,
                                     type=request.query_params.get("type"))
    return deps.list_response("/v1/events", items, more)


@router.get("/{event_id}")
async def retrieve_event(request: Request, event_id: str) -> Response:
    caller = await deps.authenticate(request)
    return deps.respond(await events.retrieve(deps.kassa(request),
                                              merchant_id=caller.merchant_id,
                                              event_id=event_id))
