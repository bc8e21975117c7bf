"""/v1/webhook_endpoints: create, list, retrieve, update, delete, rotate_secret, deliveries;
and /v1/events/{id}/redeliver."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BeforeValidator, Field

from kassa.api import deps, openapi, responses, routing
from kassa.api.schemas import (
    Boolean,
    DeliveryListQuery,
    Id,
    ListQuery,
    Metadata,
    NonNegativeInteger,
    Params,
)
from kassa.services import webhooks
from kassa.services.webhooks import WebhookPolicy

router = APIRouter(tags=["webhook_endpoints"], responses=openapi.V1_ERRORS)
PREFIX = "/v1/webhook_endpoints"


def _event_list(v: Any) -> Any:
    """``enabled_events[]=a&enabled_events[]=b``, a JSON list, or one string (``*``)."""
    return [v] if isinstance(v, str) else v


def _metadata_update(v: Any) -> Any:
    """Like create's metadata, but an empty value is kept: it removes that key."""
    if v == "" or v is None:
        return {}
    if not isinstance(v, dict) or len(v) > 50:
        raise ValueError("Invalid metadata: an object of at most 50 string keys and values")
    out: dict[str, str | None] = {}
    for k, val in v.items():
        if val is None or val == "":
            out[str(k)] = None
        elif not isinstance(val, str | int | float) or isinstance(val, bool):
            raise ValueError(f"Invalid metadata value for {k}")
        elif len(str(k)) > 40 or len(str(val)) > 500:
            raise ValueError("Invalid metadata: keys ≤ 40 and values ≤ 500 characters")
        else:
            out[str(k)] = str(val)
    return out


EventList = Annotated[list[Annotated[str, Field(max_length=100)]],
                      BeforeValidator(_event_list), Field(max_length=100)]
# checked in full (scheme, host, https and public addresses in production) by the service
Url = Annotated[str, Field(min_length=1, max_length=2048, json_schema_extra={"format": "uri"})]
Description = Annotated[str, Field(max_length=5000)]


class WebhookEndpointCreate(Params):
    url: Url
    enabled_events: EventList
    description: Description | None = None
    metadata: Metadata | None = None
    api_version: str | None = None  # accepted for SDK compatibility; events are one version
    stripe_signature: Boolean = True  # deliveries also carry Stripe-Signature


class WebhookEndpointUpdate(Params):
    url: Url | None = None
    enabled_events: EventList | None = None
    description: Description | None = None
    disabled: Boolean | None = None
    metadata: Annotated[dict[str, str | None], BeforeValidator(_metadata_update)] | None = None
    stripe_signature: Boolean | None = None


class WebhookEndpointRotateSecret(Params):
    expires_in: NonNegativeInteger | None = None  # seconds the old secret signs


class EventRedeliver(Params):
    endpoint: Id | None = None


@functools.cache
def _configured_policy() -> WebhookPolicy:
    from kassa import bootstrap
    from kassa.config import Settings

    return bootstrap.webhook_policy(Settings())


def policy(request: Request) -> WebhookPolicy:
    """The app's policy when one was set on app.state (tests), else from the environment."""
    configured: WebhookPolicy | None = getattr(request.app.state, "webhook_policy", None)
    return configured if configured is not None else _configured_policy()


ENDPOINT = openapi.ok(responses.WebhookEndpointObject)


@router.post(PREFIX, responses=ENDPOINT, openapi_extra=openapi.body(WebhookEndpointCreate))
async def create_webhook_endpoint(request: Request) -> Response:
    return await routing.post(request, WebhookEndpointCreate, webhooks.create_endpoint,
                              lambda body: dict(policy=policy(request), url=body.url,
                                                enabled_events=body.enabled_events,
                                                description=body.description,
                                                metadata=body.metadata,
                                                stripe_signature=body.stripe_signature))


@router.get(PREFIX, responses=openapi.ok(responses.ListOf[responses.WebhookEndpointObject]),
            openapi_extra=openapi.query(ListQuery))
async def list_webhook_endpoints(request: Request, caller: deps.SecretKey,
                                 q: Annotated[ListQuery, deps.query(ListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, PREFIX, webhooks.list_endpoints)


@router.get(PREFIX + "/{endpoint_id}", responses=ENDPOINT)
async def retrieve_webhook_endpoint(request: Request, endpoint_id: str) -> Response:
    return await routing.retrieve(request, webhooks.retrieve_endpoint, endpoint_id=endpoint_id)


@router.post(PREFIX + "/{endpoint_id}", responses=ENDPOINT,
             openapi_extra=openapi.body(WebhookEndpointUpdate))
async def update_webhook_endpoint(request: Request, endpoint_id: str) -> Response:
    return await routing.post(request, WebhookEndpointUpdate, webhooks.update_endpoint,
                              lambda body: dict(policy=policy(request), url=body.url,
                                                enabled_events=body.enabled_events,
                                                description=body.description,
                                                disabled=body.disabled, metadata=body.metadata,
                                                stripe_signature=body.stripe_signature),
                              endpoint_id=endpoint_id)


@router.delete(PREFIX + "/{endpoint_id}",
               responses=openapi.ok(responses.DeletedWebhookEndpoint),
               openapi_extra=openapi.idempotent())
async def delete_webhook_endpoint(request: Request, endpoint_id: str) -> Response:
    return await routing.post(request, Params, webhooks.delete_endpoint, endpoint_id=endpoint_id)


@router.post(PREFIX + "/{endpoint_id}/rotate_secret", responses=ENDPOINT,
             openapi_extra=openapi.body(WebhookEndpointRotateSecret))
async def rotate_webhook_endpoint_secret(request: Request, endpoint_id: str) -> Response:
    return await routing.post(request, WebhookEndpointRotateSecret, webhooks.rotate_secret,
                              lambda body: dict(policy=policy(request),
                                                grace_seconds=body.expires_in),
                              endpoint_id=endpoint_id)


@router.get(PREFIX + "/{endpoint_id}/deliveries",
            responses=openapi.ok(responses.ListOf[responses.WebhookDeliveryObject]),
            openapi_extra=openapi.query(DeliveryListQuery))
async def list_webhook_deliveries(request: Request, caller: deps.SecretKey, endpoint_id: str,
                                  q: Annotated[DeliveryListQuery,
                                               deps.query(DeliveryListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, f"{PREFIX}/{endpoint_id}/deliveries",
                                   webhooks.list_deliveries, endpoint_id=endpoint_id,
                                   status=q.status)


@router.post("/v1/events/{event_id}/redeliver", tags=["events"],
             responses=openapi.ok(responses.ListOf[responses.WebhookDeliveryObject]),
             openapi_extra=openapi.body(EventRedeliver))
async def redeliver_event(request: Request, event_id: str) -> Response:
    return await routing.post(request, EventRedeliver, webhooks.redeliver,
                              lambda body: dict(endpoint_id=body.endpoint), event_id=event_id)
