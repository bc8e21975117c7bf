"""/v1/events: the event stream, newest first, cursor-paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, openapi, responses, routing
from kassa.api.schemas import EventListQuery
from kassa.services import events

router = APIRouter(prefix="/v1/events", tags=["events"], responses=openapi.V1_ERRORS)


@router.get("", responses=openapi.ok(responses.ListOf[responses.EventObject]),
            openapi_extra=openapi.query(EventListQuery))
async def list_events(request: Request, caller: deps.SecretKey,
                      q: Annotated[EventListQuery, deps.query(EventListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, "/v1/events", events.list_, type=q.type,
                                   types=q.types)


@router.get("/{event_id}", responses=openapi.ok(responses.EventObject))
async def retrieve_event(request: Request, event_id: str) -> Response:
    return await routing.retrieve(request, events.retrieve, event_id=event_id)
