"""The vault's ASGI app (``kassa vault``): ``POST /v1/payment_methods`` (publishable or
secret key) takes raw cards, ``GET /v1/payment_methods/{id}`` shows one, and ``POST
/v1/forward`` (kassa's own processes, by shared token) fills card fields into a PSP request.

Nothing here logs a request body, and every error message is written without the values
that were sent, so a card number reaches no log, error or response."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kassa.api import deps, errors
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


def create_vault_app(*, vault: Vault | None = None, forwarder: fw.Forwarder | None = None,
                     forward_token: str,
                     lifespan_vault: Callable[[], Awaitable[tuple[Vault, fw.Forwarder,
                                                                  Callable[[], Awaitable[None]]]]]
                     | None = None,
                     key_cache_seconds: float = 5.0, max_body_bytes: int = 64 * 1024,
                     answer_within_seconds: float = 30.0, clock: Callable[[], int] | None = None
                     ) -> FastAPI:
    """Pass a ready ``vault`` and ``forwarder`` (tests), or ``lifespan_vault`` to build them
    on the server's loop (``kassa vault``)."""
    import time

    now = clock or (lambda: int(time.time()))
    if not forward_token:
        raise ValueError("the vault needs a forward token (KASSA_VAULT_FORWARD_SECRET)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        closer = None
        if lifespan_vault is not None:
            built, app.state.forwarder, closer = await lifespan_vault()
            _install(app, built)
        try:
            yield
        finally:
            if closer is not None:
                await closer()

    app = FastAPI(title="kassa vault", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.keys = KeyCache(key_cache_seconds)
    if vault is not None:
        _install(app, vault)
        app.state.forwarder = forwarder

    def the_vault(request: Request) -> Vault:
        v: Vault = request.app.state.vault
        return v

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        ok = getattr(request.app.state, "vault", None) is not None
        if ok:
            try:
                await the_vault(request).pool.fetchval("SELECT 1")
            except Exception:  # noqa: BLE001 - any failure means not ready
                ok = False
        return Response(orjson.dumps({"status": "ok" if ok else "unavailable"}),
                        status_code=200 if ok else 503, media_type=JSON)

    checkout_key = checkout_tokens.signing_key(forward_token)

    async def tokenising_merchant(request: Request) -> str:
        """A publishable or secret key's merchant, or a hosted checkout page's token's."""
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if bearer.startswith(checkout_tokens.PREFIX):
            merchant_id = checkout_tokens.merchant_of(checkout_key, bearer, now=now())
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
            made = await the_vault(request).tokenize(merchant_id=merchant_id,
                                                     params=raw, livemode=False, now=now(),
                                                     idempotency_key=key)
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
                the_vault(request).pool, merchant_id=caller.merchant_id,
                payment_method_id=payment_method_id)
            if row is None:
                raise NotFound(f"No such PaymentMethod: '{payment_method_id:.64}'", param="id")
        except KassaError as exc:
            return _error(exc)
        return Response(orjson.dumps(payment_method(row)), media_type=JSON)

    @app.post("/v1/forward")
    async def forward(request: Request) -> Response:
        given = request.headers.get(fw.TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), forward_token.encode()):
            return _refusal(401, "a forward needs the vault's token")
        forwarder: fw.Forwarder = request.app.state.forwarder
        timeout = request.headers.get(fw.TIMEOUT_HEADER)
        try:
            result = await forwarder.forward(
                method=request.headers.get(fw.METHOD_HEADER, "POST"),
                url=request.headers.get(fw.URL_HEADER, ""),
                headers=request.headers.items(), body=await request.body(),
                psp_timeout=float(timeout) if timeout else None)
        except fw.ForwardRefused as exc:
            return _refusal(exc.status, str(exc))
        except ValueError:
            return _refusal(400, "the forward timeout is not a number")
        headers = dict(result.headers)
        if result.error is not None:
            headers[fw.ERROR_HEADER] = result.error
        return Response(result.body, status_code=result.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        body = errors.error_body("invalid_request_error",
                                 f"Unrecognized request URL ({request.method}: "
                                 f"{request.url.path}).")
        return Response(orjson.dumps(body), status_code=exc.status_code, media_type=JSON)

    # the checkout page and kassa.js post cards from the merchant's origin, with a
    # publishable key (no cookies: credentials are never sent cross-origin)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["POST"],
                       allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])
    app.add_middleware(Door, max_body_bytes=max_body_bytes, answer_within=answer_within_seconds)
    return app


def _refusal(status: int, message: str) -> Response:
    body = errors.error_body("invalid_request_error", message, code="forward_refused")
    return Response(orjson.dumps(body), status_code=status, media_type=JSON,
                    headers={fw.ERROR_HEADER: "refused"})


def _install(app: FastAPI, vault: Vault) -> None:
    app.state.vault = vault
    # deps.authenticate reads API keys through the services' KeyCache, which needs only the
    # pool of a Kassa: the vault's role may read api_keys (vault/roles.py), nothing else
    app.state.kassa = Kassa(pool=vault.pool, psps={}, router=None,  # type: ignore[arg-type]
                            payment_methods=None)  # type: ignore[arg-type]

