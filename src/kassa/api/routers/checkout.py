"""The hosted checkout page: ``GET /checkout/{payment_intent}?client_secret=…[&return_url=…]``,
its confirm (``POST /checkout/{payment_intent}/confirm``, the client_secret in the body),
its assets, and ``/kassa.js`` for merchants' own pages.

No API key: the client_secret is the customer's credential for this one intent, as with
Stripe.js. Like Stripe's, whoever holds it chooses ``return_url``. Card numbers never come
here: the page posts them to the vault (services/checkout.py mints its token)."""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from kassa import representations
from kassa.api import deps, schemas
from kassa.api.routers.psp_returns import REDIRECT_STATUS, _with_query
from kassa.checkout import page
from kassa.checkout.assets import asset
from kassa.domain.errors import KassaError
from kassa.request_context import identify
from kassa.services import checkout
from kassa.services.merchants import Caller

router = APIRouter(include_in_schema=False)
SECURITY_HEADERS = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
_RETURN_URL = TypeAdapter(schemas.AbsoluteUrl)
Secret = Annotated[str | None, Query(max_length=255)]
Url = Annotated[str | None, Query(max_length=2000)]


def _problem(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout"
        f"</title></head><body><main><h1>Checkout</h1><p id=\"problem\">{html.escape(message)}"
        "</p></main></body></html>", status_code=status,
        headers={**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'"})


@router.get("/checkout/assets/{name}")
async def checkout_asset(name: str) -> Response:
    try:
        found = asset(name)
    except KeyError:
        return Response(b"not found", status_code=404, media_type="text/plain")
    return Response(found.body, media_type=found.media_type, headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"})


@router.get("/kassa.js")
async def kassa_js() -> Response:
    """For merchants' pages, from their own origin: CORS, so the integrity check can run."""
    found = asset("kassa.js")
    return Response(found.body, media_type=found.media_type, headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300",
        "Access-Control-Allow-Origin": "*", "X-Kassa-Integrity": found.integrity})


@router.get("/checkout/{payment_id}")
async def checkout_page(request: Request, payment_id: str, client_secret: Secret = None,
                        return_url: Url = None, redirect_status: Url = None) -> Response:
    if return_url is not None:
        try:
            return_url = _RETURN_URL.validate_python(return_url)
        except ValidationError:
            return _problem(400, "The return_url of this checkout link is not an absolute "
                                 "http(s) URL.")
    k = deps.kassa(request)
    try:
        opened = await checkout.open_checkout(k, payment_id=payment_id,
                                              client_secret=client_secret)
    except checkout.CheckoutUnavailable as exc:
        return _problem(503, exc.message)
    except KassaError as exc:
        return _problem(404, exc.message)
    p = opened.intent
    identify(p.merchant_id)
    status = p.status.value
    if redirect_status is not None and return_url and p.status in REDIRECT_STATUS:
        # back from 3-D Secure, kassa has recorded how it ended: on to the merchant
        return RedirectResponse(_with_query(return_url, payment_intent=p.id,
                                            redirect_status=REDIRECT_STATUS[p.status]),
                                status_code=303, headers=SECURITY_HEADERS)
    own = {"client_secret": client_secret or ""}
    if return_url:
        own["return_url"] = return_url
    page_url = f"{k.public_url}/checkout/{p.id}?{urlencode(own)}"
    error = None
    if redirect_status is not None and p.last_payment_error:
        error = str(p.last_payment_error.get("message") or "Your payment could not be "
                    "completed.")
    config = {"payment_intent": p.id, "client_secret": client_secret, "token": opened.token,
              "vault_url": opened.vault_url, "confirm_url": f"/checkout/{p.id}/confirm",
              "return_url": return_url, "page_url": page_url,
              # 3-D Secure brings the customer back here first (recorded, then on)
              "action_return_url": page_url}
    body = page.render(merchant=opened.merchant_name, amount=p.amount,
                       description=p.description, status=status, error=error, config=config)
    return HTMLResponse(body, headers={
        **SECURITY_HEADERS, "Content-Security-Policy": page.content_security_policy(
            opened.vault_url)})


@router.post("/checkout/{payment_id}/confirm")
async def checkout_confirm(request: Request, payment_id: str) -> Response:
    """The page's Pay: the card's pm_… from the vault and the client_secret, nothing else."""
    try:
        body, raw = await deps.params(request, schemas.PaymentIntentConfirm)
        k = deps.kassa(request)
        p = await checkout.load(k, payment_id=payment_id, client_secret=body.client_secret)
    except KassaError as exc:
        return deps.respond(exc)
    identify(p.merchant_id)
    caller = Caller(merchant_id=p.merchant_id, key_id="checkout", kind="publishable")
    try:
        response = await deps.run_post(request, caller, raw, lambda idem: checkout.confirm(
            k, merchant_id=p.merchant_id, payment_id=p.id,
            client_secret=body.client_secret or "", payment_method=body.payment_method,
            return_url=body.return_url, idempotency=idem))
    except KassaError as exc:  # a decline included: its body carries the intent
        response = deps.respond(exc)
    view = representations.publishable_view(orjson.loads(response.body))
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(orjson.dumps(view), status_code=response.status_code,
                    media_type=deps.JSON, headers=headers)
