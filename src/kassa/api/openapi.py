"""/openapi.json from what the handlers use: request bodies from the very models
``deps.params`` validates with (bodies are parsed by hand for Stripe's bracket form
encoding, so FastAPI cannot see them), query parameters from FastAPI's own view of the
query models, the error shape and the secret-key security schemes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from kassa.api.responses import ErrorResponse
from kassa.services.idempotency import MAX_KEY_LENGTH

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_BODIES: dict[str, type[BaseModel]] = {}  # every model named by a body(): its schema

_ERRORS = {
    400: "Invalid parameters, URL or body (`invalid_request_error`), or an Idempotency-Key "
         "reused with other parameters (`idempotency_error`).",
    401: "No API key, or an invalid one.",
    402: "The card was declined (`card_error`); the PaymentIntent exists.",
    403: "The call needs a secret key.",
    404: "No such object for this merchant, or no such URL.",
    409: "The object or the Idempotency-Key is busy with another request; retry.",
    413: "The request body is larger than KASSA_API_MAX_BODY_BYTES.",
    500: "An internal error; retry with the same Idempotency-Key.",
    503: "The database cannot be reached, or no answer within KASSA_API_ANSWER_WITHIN_SECONDS "
         "(the request may still complete); retry with the same Idempotency-Key.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "required": True, "schema": {"type": "string"}}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": ErrorResponse, "description": _ERRORS[code]}
        if code == 503:
            out[code]["headers"] = _RETRY_AFTER
    return out


# what any /v1 call may answer besides its success (402 is added where cards are charged)
V1_ERRORS = errors(400, 401, 403, 404, 409, 413, 500, 503)


def ok(model: Any, description: str = "Success.") -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": description}}


def idempotent() -> dict[str, Any]:
    """``openapi_extra`` for a call run under ``deps.run_post``: its Idempotency-Key."""
    return {"parameters": [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "Retrying with the same key and parameters replays the first answer "
                       "(for 24 hours at least); the call is done once.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}}],
        "responses": {"200": {"headers": {
            "Idempotency-Key": {"description": "The key given, echoed.",
                                "schema": {"type": "string"}},
            "Idempotent-Replayed": {"description": "true when this is the first answer, "
                                                   "replayed.",
                                    "schema": {"type": "string", "enum": ["true"]}}}}}}


def body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing ``model`` as the request body, form-encoded (Stripe's
    brackets: ``metadata[order]=7``, ``expand[]=x``) or JSON, the same schema for both;
    and the Idempotency-Key every such call takes."""
    _BODIES[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    properties = model.model_json_schema().get("properties", {})
    objects = [name for name, prop in properties.items()
               if any(p.get("type") == "object" for p in [prop, *prop.get("anyOf", [])])]
    form: dict[str, Any] = {"schema": ref}
    if objects:
        form["encoding"] = {name: {"style": "deepObject", "explode": True} for name in objects}
    required = any(f.is_required() for f in model.model_fields.values())
    return {**idempotent(), "requestBody": {
        "required": required, "description": FORM_NOTATION,
        "content": {FORM: form, JSON: {"schema": ref}}}}


def query(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` listing ``model``'s query parameters by the names clients send:
    ``created`` or ``created[gt]`` …, ``expand[]``."""
    parameters: list[dict[str, Any]] = []
    schema = model.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        variants = [prop, *prop.get("anyOf", [])]
        description = prop.get("description")
        if name == "created" or any("$ref" in v for v in variants):  # a Range
            parameters.append(_query_param(name, {"type": "integer"},
                                           "Exactly this Unix time."))
            parameters += [_query_param(f"{name}[{b}]", {"type": "integer"},
                                        f"Unix time, {b}.") for b in ("gt", "gte", "lt", "lte")]
            continue
        arrays = [v for v in variants if v.get("type") == "array"]
        if arrays:
            parameters.append(_query_param(f"{name}[]", arrays[0], description))
            continue
        plain = next((v for v in variants if v.get("type") not in (None, "null")), prop)
        parameters.append(_query_param(name, {k: v for k, v in plain.items()
                                              if k not in ("title", "default")} | (
            {"default": prop["default"]} if prop.get("default") is not None else {}),
            description, required=name in schema.get("required", [])))
    return {"parameters": parameters}


def _query_param(name: str, schema: dict[str, Any], description: str | None, *,
                 required: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": "query", "required": required,
                           "schema": schema}
    if schema.get("type") == "array":
        out["style"], out["explode"] = "form", True
    if description:
        out["description"] = description
    return out


FORM_NOTATION = ("Form bodies use Stripe's bracket notation: `metadata[order]=7` for an "
                 "object's keys, `expand[]=a&expand[]=b` for a list. A key without `[]` "
                 "given twice is refused (400). JSON bodies are one object, with no key "
                 "repeated.")


def install(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that adds the body models, security schemes and,
    on every /v1 operation, the secret-key requirement."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes, tags=app.openapi_tags)
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name, model in sorted(_BODIES.items()):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
        components["securitySchemes"] = {
            "secretKey": {"type": "http", "scheme": "bearer",
                          "description": "Authorization: Bearer sk_test_..."},
            "secretKeyBasic": {"type": "http", "scheme": "basic",
                               "description": "The secret key as the user name, no password "
                                              "(curl -u sk_test_...:)."},
        }
        for path, item in doc["paths"].items():
            for operation in item.values():
                # FastAPI's 422 for its own validation: kassa answers those 400 (app.py)
                operation["responses"].pop("422", None)
                if path.startswith("/v1/"):
                    operation["security"] = [{"secretKey": []}, {"secretKeyBasic": []}]
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
