"""/v1/request_logs/{id}: a merchant request answered with an error, under its Request-Id
(where an error's ``request_log_url`` points)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import openapi, responses, routing
from kassa.services import request_logs

router = APIRouter(prefix="/v1/request_logs", tags=["request_logs"],
                   responses=openapi.V1_ERRORS)


@router.get("/{request_id}", responses=openapi.ok(responses.RequestLogObject))
async def retrieve_request_log(request: Request, request_id: str) -> Response:
    return await routing.retrieve(request, request_logs.retrieve, request_id=request_id)
