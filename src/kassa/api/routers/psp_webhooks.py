"""POST /psp/{psp}/webhooks: PSPs deliver asynchronous outcomes here, signed — no API key.

The answer comes at once: the events are verified and stored, and the psp-webhooks worker
applies them. 400 for an unsigned, wrongly signed, stale or malformed delivery (nothing is
stored); 200 for a duplicate (nothing changes).
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from kassa.api import deps, errors, openapi, responses
from kassa.webhooks import inbound as psp_webhooks

router = APIRouter(tags=["psp webhooks"])

MAX_BODY_BYTES = 1024 * 1024


def _too_large() -> Response:
    body = errors.error_body("invalid_request_error", "Webhook body too large.")
    return Response(orjson.dumps(body), status_code=413, media_type=deps.JSON)


@router.post("/psp/{psp}/webhooks",
             responses={**openapi.ok(responses.WebhookReceipt),
                        **openapi.errors(400, 404, 413, 500, 503)},
             openapi_extra={"requestBody": {"required": True, "content": {openapi.JSON: {
                 "schema": {"description": "The PSP's signed event payload, verified against "
                                           "its signature header."}}}}})
async def receive_psp_webhook(request: Request, psp: str) -> Response:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_large()
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _too_large()
    return deps.respond(await psp_webhooks.receive(deps.kassa(request), psp=psp,
                                                   headers=request.headers, body=body))
