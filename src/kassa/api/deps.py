"""Shared request plumbing: authentication, parameter parsing, idempotent execution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from kassa import request_context
from kassa.api import errors
from kassa.api.params import parse_body, parse_form, refuse_nul
from kassa.domain.errors import ConcurrentModification, IdempotencyInFlight, KassaError
from kassa.services import idempotency
from kassa.services.context import Kassa
from kassa.services.merchants import Caller, KeyCache
from kassa.services.uow import IdempotencyHandle

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"


def kassa(request: Request) -> Kassa:
    k: Kassa = request.app.state.kassa
    return k


def api_key_of(header: str) -> str:
    """The key of an ``Authorization`` header (Bearer, or Basic with the key as user)."""
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if header.lower().startswith("basic "):
        import base64
        import binascii

        try:
            return base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


async def authenticate(request: Request, *, secret: bool = True) -> Caller:
    key = api_key_of(request.headers.get("authorization", ""))
    if not key:
        raise errors.AuthenticationError(
            "You did not provide an API key. Provide it as a Bearer token: "
            "'Authorization: Bearer sk_test_...'.", code="api_key_missing")
    cache: KeyCache = request.app.state.keys
    caller = await cache.authenticate(kassa(request), key)
    if caller is None:
        raise errors.AuthenticationError(f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
    request_context.identify(caller.merchant_id)
    if secret and caller.kind != "secret":
        raise errors.PermissionDenied("This API call requires a secret key.")
    return caller


async def secret_caller(request: Request) -> Caller:
    return await authenticate(request)


# The caller of a list route, authenticated before FastAPI validates its query model (so a
# bad key is a 401, not a 400). Other routes call authenticate() first thing instead: their
# path parameters cannot fail and their bodies are read by hand, and a FastAPI dependency
# costs ~15 us per request on the payment path.
SecretKey = Annotated[Caller, Depends(secret_caller)]


def query(model: type[M]) -> Any:
    """A route parameter's default: ``model`` validated from the query string in Stripe's
    bracket notation (``created[gte]=1``, ``expand[0]=x``), which FastAPI's own query models
    cannot read. As a dependency it runs after ``SecretKey`` (a bad key is a 401 first);
    ``openapi.query(model)`` documents it."""

    async def parse(request: Request) -> M:
        raw = parse_form(request.scope.get("query_string", b""))
        refuse_nul(raw)
        return model.model_validate(raw)

    return Depends(parse)


async def params(request: Request, model: type[M]) -> tuple[M, dict[str, Any]]:
    raw = parse_body(request.headers.get("content-type"), await request.body())
    return model.model_validate(raw), raw


def respond(result: object) -> Response:
    status, body = errors.render(result)
    headers = errors.headers_for(result) if isinstance(result, BaseException) else None
    return Response(body, status_code=status, media_type=JSON, headers=headers)


async def run_post(request: Request, caller: Caller, raw: dict[str, Any],
                   action: Callable[[IdempotencyHandle | None], Awaitable[dict[str, Any]]]
                   ) -> Response:
    """Run a POST under its Idempotency-Key (if any): replay, refuse, or execute once."""
    k = kassa(request)
    key = request.headers.get("idempotency-key")
    if key is None:
        return respond(await action(None))
    ctx = request_context.current()
    request_id = ctx.id if ctx is not None else None
    handle = idempotency.prepare(merchant_id=caller.merchant_id, key=key,
                                 method=request.method, path=request.url.path, params=raw,
                                 render=errors.render, request_id=request_id)
    for _ in range(3):
        try:
            result = await _run_claimed(k, handle, action)
        except KassaError as exc:  # this request's own answer (a 402, a 400): the key's too
            response = respond(exc)
            response.headers.update(_key_headers(key, request_id))
            return response
        except idempotency.IdempotencyKeyTaken:
            existing = await idempotency.resolve_existing(k, handle)
            if isinstance(existing, idempotency.Replay):
                # as Stripe: this request's own Request-Id, and the one that stored the answer
                return Response(existing.body, status_code=existing.status, media_type=JSON,
                                headers=_key_headers(key, existing.original_request,
                                                     replayed=True))
            if existing is not None:
                handle = existing  # took over a dead holder's key: resume its saga
            continue
        return Response(errors.render(result)[1], status_code=200, media_type=JSON,
                        headers=_key_headers(key, request_id))
    raise IdempotencyInFlight("The Idempotency-Key is changing hands; retry the request.",
                              param="Idempotency-Key")


def _key_headers(key: str, original_request: str | None, *, replayed: bool = False
                 ) -> dict[str, str]:
    headers = {"Idempotency-Key": key}
    if original_request is not None:
        headers["Original-Request"] = original_request
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


async def _run_claimed(k: Kassa, handle: IdempotencyHandle,
                       action: Callable[[IdempotencyHandle | None], Awaitable[dict[str, Any]]]
                       ) -> dict[str, Any]:
    try:
        result = await action(handle)
    except idempotency.IdempotencyKeyTaken:
        raise
    except KassaError as exc:
        if not handle.claimed and await idempotency.key_exists(k, handle):
            # refused before its first commit, but the key belongs to an earlier request:
            # that request's answer (or its takeover) decides, not this error
            raise idempotency.IdempotencyKeyTaken() from exc
        if not handle.completed:
            if isinstance(exc, ConcurrentModification) and handle.side_effects:
                # retryable, so not the key's final answer: the next retry takes the key
                # over and resumes the saga
                await idempotency.unlock(k, handle)
            elif handle.side_effects:
                # the saga moved: this outcome is the answer every retry must get
                await idempotency.complete(k, handle, exc)
            else:
                await idempotency.release(k, handle)  # nothing happened: let a retry run
        raise
    except BaseException:
        if not handle.side_effects and not handle.completed:
            await idempotency.release(k, handle)
        # else: leave the key locked; after the lock timeout a retry takes over and
        # resumes from the saga's recovery point
        raise
    if not handle.completed:
        await idempotency.complete(k, handle, result)
    return result
