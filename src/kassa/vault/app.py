"""The vault's two ASGI apps (``kassa vault``). The public one: ``POST /v1/payment_methods``
(publishable or secret key, or a checkout token) takes raw cards, ``GET
/v1/payment_methods/{id}`` shows one. The private one, on a loopback-only listener of its
own: ``POST /v1/forward`` (kassa's own processes, by shared token) fills card fields into a
PSP request — never reachable where browsers (or anything off the machine) reach the vault.

Nothing here logs a request body, and every error message is written without the values
that were sent, so a card number reaches no log, error or response."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from kassa.api import browsers, deps, errors
from kassa.api.browsers import BrowserDoor
from kassa.api.door import Door
from kassa.api.params import parse_body
from kassa.checkout import tokens as checkout_tokens
from kassa.domain.errors import KassaError, NotFound
from kassa.representations.payment_methods import payment_method
from kassa.services.context import Kassa
from kassa.services.merchants import KeyCache
from kassa.vault import forward as fw
from kassa.vault import store
from kassa.vault.cards import CardInvalid
from kassa.vault.service import Vault

JSON = "application/json"


def _error(exc: BaseException) -> Response:
    status, body = errors.for_exception(exc)
    if isinstance(exc, CardInvalid):
        body["error"]["param"] = exc.param
    return Response(orjson.dumps(body), status_code=status, media_type=JSON,
                    headers=errors.headers_for(exc) or None)


def create_vault_app(*, vault: Vault, checkout_keys: Sequence[bytes] = (),
                     key_cache_seconds: float = 5.0, max_body_bytes: int = 64 * 1024,
                     answer_within_seconds: float = 30.0, clock: Callable[[], int] | None = None
                     ) -> FastAPI:
    """The vault's public listener, the one browsers reach: payment methods only.
    ``checkout_keys`` verify the hosted checkout page's tokens (none: refused)."""
    import time

    now = clock or (lambda: int(time.time()))
    app = _app()
    app.state.keys = KeyCache(key_cache_seconds)
    app.state.vault = vault
    # deps.authenticate reads API keys through the services' KeyCache, which needs only the
    # pool of a Kassa: the vault's role may read api_keys (vault/roles.py), nothing else
    app.state.kassa = Kassa(pool=vault.pool, psps={}, router=None,  # type: ignore[arg-type]
                            payment_methods=None)  # type: ignore[arg-type]

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        try:
            ok = await vault.pool.fetchval("SELECT 1") == 1
        except Exception:  # noqa: BLE001 - any failure means not ready
            ok = False
        return Response(orjson.dumps({"status": "ok" if ok else "unavailable"}),
                        status_code=200 if ok else 503, media_type=JSON)

    async def tokenising_merchant(request: Request) -> str:
        """A publishable or secret key's merchant, or a hosted checkout page's token's."""
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if bearer.startswith(checkout_tokens.PREFIX):
            merchant_id = checkout_tokens.merchant_of(checkout_keys, bearer, now=now())
            if merchant_id is None:
                raise errors.AuthenticationError("This checkout page has expired; reload it.")
            return merchant_id
        return (await deps.authenticate(request, secret=False)).merchant_id

    @app.post("/v1/payment_methods")
    async def create_payment_method(request: Request) -> Response:
        try:
            merchant_id = await tokenising_merchant(request)
            raw = parse_body(request.headers.get("content-type"), await request.body())
            key = request.headers.get("idempotency-key")
            made = await vault.tokenize(merchant_id=merchant_id, params=raw, livemode=False,
                                        now=now(), idempotency_key=key)
        except (KassaError, CardInvalid) as exc:
            return _error(exc)
        headers = {} if key is None else {"Idempotency-Key": key}
        if made.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(orjson.dumps(payment_method(made.row)), media_type=JSON,
                        headers=headers)

    @app.get("/v1/payment_methods/{payment_method_id}")
    async def retrieve_payment_method(request: Request, payment_method_id: str) -> Response:
        try:
            caller = await deps.authenticate(request)
            row = await store.get_payment_method(
                vault.pool, merchant_id=caller.merchant_id,
                payment_method_id=payment_method_id)
            if row is None:
                raise NotFound(f"No such PaymentMethod: '{payment_method_id:.64}'", param="id")
        except KassaError as exc:
            return _error(exc)
        return Response(orjson.dumps(payment_method(row)), media_type=JSON)

    # the checkout page and kassa.js post cards from the merchant's origin, with a
    # publishable key or a checkout token; a secret key from a page is refused
    app.add_middleware(BrowserDoor, routes=browsers.VAULT_ROUTES,
                       allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])
    app.add_middleware(Door, max_body_bytes=max_body_bytes, answer_within=answer_within_seconds)
    return app


def create_forward_app(*, forwarder: fw.Forwarder, forward_token: str,
                       max_body_bytes: int = 64 * 1024, answer_within_seconds: float = 30.0
                       ) -> ASGIApp:
    """The vault's private listener (loopback only, KASSA_VAULT_FORWARD_PORT): the
    forwarding endpoint, for kassa's API and workers on this machine, by shared token. No
    CORS: nothing a browser may call.

    One route, so a plain ASGI callable behind the same Door (bounded body, well-formed URL,
    an answer within the deadline) instead of a FastAPI app: every payment with a vault
    card passes here, and routing, dependency solving and the exception middlewares were
    a sixth of the vault's CPU per payment. Any other path or method gets the answer the
    public listener gives (``Unrecognized request URL``)."""
    if not forward_token:
        raise ValueError("the vault needs a forward token (KASSA_VAULT_FORWARD_SECRET)")
    token = forward_token.encode()

    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off (cli.py); nothing else is served
        if scope["path"] != "/v1/forward" or scope["method"] != "POST":
            status = 404 if scope["path"] != "/v1/forward" else 405
            body = errors.error_body("invalid_request_error",
                                     f"Unrecognized request URL ({scope['method']}: "
                                     f"{scope['path']}).")
            await _send(send, status, [(b"content-type", JSON.encode())], orjson.dumps(body))
            return
        headers = Headers(scope=scope)
        if not hmac.compare_digest(headers.get(fw.TOKEN_HEADER, "").encode(), token):
            await _send_refusal(send, 401, "a forward needs the vault's token")
            return
        timeout = headers.get(fw.TIMEOUT_HEADER)
        try:
            result = await forwarder.forward(
                method=headers.get(fw.METHOD_HEADER, "POST"),
                url=headers.get(fw.URL_HEADER, ""), headers=headers.items(),
                body=await _body(receive), psp_timeout=float(timeout) if timeout else None)
        except fw.ForwardRefused as exc:
            await _send_refusal(send, exc.status, str(exc))
            return
        except ValueError:
            await _send_refusal(send, 400, "the forward timeout is not a number")
            return
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in result.headers]
        if result.error is not None:
            out.append((fw.ERROR_HEADER.encode(), result.error.encode()))
        await _send(send, result.status, out, result.body)

    return Door(forward, max_body_bytes=max_body_bytes, answer_within=answer_within_seconds)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
                ) -> None:
    headers = [(k, v) for k, v in headers if k != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_refusal(send: Send, status: int, message: str) -> None:
    body = errors.error_body("invalid_request_error", message, code="forward_refused")
    await _send(send, status, [(b"content-type", JSON.encode()),
                               (fw.ERROR_HEADER.encode(), b"refused")], orjson.dumps(body))


def _app() -> FastAPI:
    app = FastAPI(title="kassa vault", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        body = errors.error_body("invalid_request_error",
                                 f"Unrecognized request URL ({request.method}: "
                                 f"{request.url.path}).")
        return Response(orjson.dumps(body), status_code=exc.status_code, media_type=JSON)

    return app


