"""GET /psp/{psp}/return/{attempt}: where a PSP sends the customer after 3-D Secure.

No API key: the customer's browser comes here. kassa does not trust the query the PSP
adds (it only passes it back to a PSP that asks for it, Adyen's ``redirectResult``); it
asks the PSP how the authorisation ended and records that (ledger included)
before sending the customer on, so the merchant's ``return_url`` already sees the final
status — as with Stripe, which appends ``payment_intent`` and ``redirect_status``.
Without a return_url the customer gets a short page saying how it ended.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kassa.api import deps
from kassa.domain.payments import PaymentStatus
from kassa.services import confirm

router = APIRouter(tags=["psp returns"])

REDIRECT_STATUS = {
    PaymentStatus.SUCCEEDED: "succeeded",
    PaymentStatus.REQUIRES_CAPTURE: "succeeded",
    PaymentStatus.PROCESSING: "processing",
    PaymentStatus.REQUIRES_ACTION: "processing",
}


@router.get("/psp/{psp}/return/{attempt}", include_in_schema=False)
async def customer_returns(request: Request, psp: str, attempt: str) -> Response:
    p, a = await confirm.record_return(deps.kassa(request), psp=psp, attempt_id=attempt,
                                       query=dict(request.query_params))
    redirect_status = REDIRECT_STATUS.get(p.status, "failed")
    if a.return_url:
        return RedirectResponse(_with_query(a.return_url, payment_intent=p.id,
                                            redirect_status=redirect_status),
                                status_code=303)
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Payment</title></head>"
        f"<body><h1>Authentication {html.escape(redirect_status)}</h1>"
        f"<p>Payment {html.escape(p.id)} is {html.escape(p.status.value)}.</p></body></html>")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))
