"""/openapi.json describes every operation from the models the handlers validate with."""

from __future__ import annotations

import httpx
import pytest

from kassa.api import customer_schemas, schemas
from kassa.api.app import create_app
from kassa.api.routers import (
    account,
    disputes,
    payouts,
    psp_accounts,
    reconciliation,
    routing_configs,
    webhook_endpoints,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.fixture(scope="module")
def doc() -> dict:
    return create_app(kassa=None, max_body_bytes=4096, answer_within_seconds=5).openapi()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


BODIES = {
    ("POST", "/v1/payment_intents"): schemas.PaymentIntentCreate,
    ("POST", "/v1/payment_intents/{payment_id}"): schemas.PaymentIntentUpdate,
    ("POST", "/v1/payment_intents/{payment_id}/confirm"): schemas.PaymentIntentConfirm,
    ("POST", "/v1/payment_intents/{payment_id}/capture"): schemas.PaymentIntentCapture,
    ("POST", "/v1/payment_intents/{payment_id}/cancel"): schemas.PaymentIntentCancel,
    ("POST", "/v1/refunds"): schemas.RefundCreate,
    ("POST", "/v1/refunds/{refund_id}"): schemas.RefundUpdate,
    ("POST", "/v1/refunds/{refund_id}/cancel"): schemas.RefundCancel,
    ("POST", "/v1/webhook_endpoints"): webhook_endpoints.WebhookEndpointCreate,
    ("POST", "/v1/webhook_endpoints/{endpoint_id}"): webhook_endpoints.WebhookEndpointUpdate,
    ("POST", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"):
        webhook_endpoints.WebhookEndpointRotateSecret,
    ("POST", "/v1/events/{event_id}/redeliver"): webhook_endpoints.EventRedeliver,
    ("POST", "/v1/disputes/{dispute_id}"): disputes.DisputeUpdate,
    ("POST", "/v1/disputes/{dispute_id}/close"): disputes.DisputeClose,
    ("POST", "/v1/payouts"): payouts.PayoutCreate,
    ("POST", "/v1/payouts/{payout_id}/cancel"): payouts.PayoutCancel,
    ("POST", "/v1/accounts/{account_id}/external_accounts"): payouts.ExternalAccountCreate,
    ("POST", "/v1/customers"): customer_schemas.CustomerCreate,
    ("POST", "/v1/customers/{customer_id}"): customer_schemas.CustomerUpdate,
    ("POST", "/v1/payment_methods/{payment_method_id}"): customer_schemas.PaymentMethodUpdate,
    ("POST", "/v1/payment_methods/{payment_method_id}/attach"):
        customer_schemas.PaymentMethodAttach,
    ("POST", "/v1/payment_methods/{payment_method_id}/detach"):
        customer_schemas.PaymentMethodDetach,
    ("POST", "/v1/account"): account.AccountUpdate,
    ("POST", "/v1/reconciliation_discrepancies/{discrepancy_id}/resolve"):
        reconciliation.DiscrepancyResolve,
    ("POST", "/v1/routing_configs"): routing_configs.RoutingConfigCreate,
    ("POST", "/v1/routing_configs/{config_id}/activate"): routing_configs.RoutingConfigActivate,
    ("POST", "/v1/psp_accounts"): psp_accounts.PSPAccountCreate,
    ("POST", "/v1/psp_accounts/{account_id}"): psp_accounts.PSPAccountUpdate,
}


def test_every_path_and_operation_is_listed(doc):
    assert len(doc["paths"]) == 51
    assert len(list(operations(doc))) == 70


@pytest.mark.parametrize(("key", "model"), BODIES.items(), ids=lambda v: str(v))
def test_bodies_are_the_validating_models_form_and_json(doc, key, model):
    method, path = key
    body = doc["paths"][path][method.lower()]["requestBody"]
    ref = f"#/components/schemas/{model.__name__}"
    assert body["content"][FORM]["schema"] == {"$ref": ref}
    assert body["content"][JSON]["schema"] == {"$ref": ref}
    generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
    generated.pop("$defs", None)
    assert doc["components"]["schemas"][model.__name__] == generated  # no second copy
    assert body["required"] == any(f.is_required() for f in model.model_fields.values())


def test_every_post_under_v1_has_a_body(doc):
    posts = {(m, p) for m, p, _ in operations(doc) if m == "POST" and p.startswith("/v1/")}
    assert posts == set(BODIES)


def test_form_bodies_use_brackets_for_objects(doc):
    form = doc["paths"]["/v1/payment_intents"]["post"]["requestBody"]["content"][FORM]
    assert form["encoding"]["metadata"] == {"style": "deepObject", "explode": True}


def test_list_query_parameters_are_described(doc):
    names = {p["name"]: p for p in doc["paths"]["/v1/events"]["get"]["parameters"]}
    created = {"created", "created[gt]", "created[gte]", "created[lt]", "created[lte]"}
    assert set(names) == {"limit", "starting_after", "ending_before", "type", "types[]",
                          "expand[]", *created}
    assert names["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                        "default": 10}
    assert names["types[]"]["schema"]["type"] == "array"
    assert names["created[gte]"]["schema"] == {"type": "integer"}
    deliveries = doc["paths"]["/v1/webhook_endpoints/{endpoint_id}/deliveries"]["get"]
    assert {p["name"] for p in deliveries["parameters"]} == {
        "endpoint_id", "limit", "starting_after", "ending_before", "status", "expand[]",
        *created}


def test_security_and_error_answers(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["secretKey"] == {"type": "http", "scheme": "bearer",
                                    "description": schemes["secretKey"]["description"]}
    assert schemes["secretKeyBasic"]["scheme"] == "basic"
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for method, path, op in operations(doc):
        if path.startswith("/v1/"):
            assert op["security"] == [{"secretKey": []}, {"secretKeyBasic": []}], path
            for status in ("400", "401", "403", "404", "409", "413", "500", "503"):
                assert op["responses"][status]["content"][JSON]["schema"] == error
            assert op["responses"]["503"]["headers"]["Retry-After"]["required"] is True
        else:
            assert "security" not in op
        assert "422" not in op["responses"]  # kassa answers validation errors 400
        assert "$ref" in str(op["responses"]["200"]), (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    err = doc["components"]["schemas"]["Error"]
    assert set(err["required"]) == {"type", "message"}


async def test_the_key_is_checked_before_the_parameters():
    app = create_app(kassa=None, max_body_bytes=4096, answer_within_seconds=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as c:
        r = await c.get("/v1/events?limit=abc")
    assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_missing"
