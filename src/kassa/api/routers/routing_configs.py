"""/v1/routing_configs (kassa's extension): create a version, list, retrieve, activate."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from kassa.api import deps, openapi, routing
from kassa.api.responses import ListOf
from kassa.api.schemas import ListQuery, Params
from kassa.services import routing_configs

router = APIRouter(tags=["routing_configs"], responses=openapi.V1_ERRORS)
PREFIX = "/v1/routing_configs"


class RoutingConfigCreate(Params):
    """The policy's shape is checked by domain/routing.py (its 400s name the param)."""

    name: Annotated[str, Field(max_length=200)] | None = None
    rules: list[dict[str, Any]] | dict[str, Any] | None = Field(
        None, description="Ordered; the first whose conditions all hold picks the route. "
        "Each: {name, conditions: {currency, amount_gte, amount_lte, card_brand, "
        "card_country, metadata, capture_method}, route}.")
    default_route: dict[str, Any] = Field(
        description="{strategy: single, psp} | {strategy: priority, psps: [...]} | "
        "{strategy: volume_split, split: [{psp, percent}]} | "
        "{strategy: success_rate, psps: [...], exploration_percent}")


class RoutingConfigActivate(Params):
    pass


class RoutingConfigObject(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["routing_config"]
    version: int
    active: bool
    activated_at: int | None
    created: int
    name: str | None
    rules: list[dict[str, Any]]
    default_route: dict[str, Any]


CONFIG = openapi.ok(RoutingConfigObject)


@router.post(PREFIX, responses=CONFIG, openapi_extra=openapi.body(RoutingConfigCreate))
async def create_routing_config(request: Request) -> Response:
    return await routing.post(request, RoutingConfigCreate, routing_configs.create,
                              lambda body: dict(name=body.name, rules=body.rules,
                                                default_route=body.default_route))


@router.get(PREFIX, responses=openapi.ok(ListOf[RoutingConfigObject]),
            openapi_extra=openapi.query(ListQuery))
async def list_routing_configs(request: Request, caller: deps.SecretKey,
                               q: Annotated[ListQuery, deps.query(ListQuery)]) -> Response:
    return await routing.list_page(request, caller, q, PREFIX, routing_configs.list_configs)


@router.get(PREFIX + "/{config_id}", responses=CONFIG)
async def retrieve_routing_config(request: Request, config_id: str) -> Response:
    return await routing.retrieve(request, routing_configs.retrieve, config_id=config_id)


@router.post(PREFIX + "/{config_id}/activate", responses=CONFIG,
             openapi_extra=openapi.body(RoutingConfigActivate))
async def activate_routing_config(request: Request, config_id: str) -> Response:
    return await routing.post(request, RoutingConfigActivate, routing_configs.activate,
                              config_id=config_id)
