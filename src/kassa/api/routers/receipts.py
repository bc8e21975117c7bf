"""GET /receipts/{charge}/{token}: the receipt page a charge's ``receipt_url`` names.

No API key, as at Stripe: the customer opens it from an email or the merchant's page. The
random token in the URL is the credential; any other URL is the same 404, so a charge id
alone reveals nothing. Written with ``html.escape`` like the 3-D Secure return page: four
values on one page do not call for a template engine kassa does not otherwise load.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kassa.api import deps
from kassa.domain.money import Money
from kassa.services import charges

router = APIRouter(tags=["receipts"])

STATUS_WORDS = {"succeeded": "Paid", "pending": "Pending", "failed": "Failed"}


def _money(minor: int, currency: str) -> str:
    return html.escape(str(Money(minor, currency)))


def page(charge: dict[str, Any], merchant: str) -> str:
    currency = charge["currency"]
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    rows = [("Amount", _money(charge["amount"], currency)),
            ("Status", STATUS_WORDS.get(charge["status"], charge["status"]))]
    if charge["amount_captured"] and charge["amount_captured"] != charge["amount"]:
        rows.append(("Captured", _money(charge["amount_captured"], currency)))
    if charge["amount_refunded"]:
        rows.append(("Refunded", _money(charge["amount_refunded"], currency)))
    if card:
        rows.append(("Card", f"{html.escape(str(card['brand']).title())} ending in "
                             f"{html.escape(str(card['last4']))}"))
    if charge["description"]:
        rows.append(("Description", html.escape(charge["description"])))
    rows.append(("Receipt for", html.escape(charge["id"])))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    title = f"Receipt from {html.escape(merchant)}"
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=robots content=noindex>"
            f"<title>{title}</title></head><body><h1>{title}</h1>"
            f"<table>{body}</table></body></html>")


@router.get("/receipts/{charge_id}/{token}", include_in_schema=False)
async def receipt(request: Request, charge_id: str, token: str) -> Response:
    found = await charges.receipt(deps.kassa(request), charge_id=charge_id, token=token)
    if found is None:
        return HTMLResponse("<!doctype html><title>Not found</title><p>No such receipt.",
                            status_code=404)
    charge, merchant = found
    return HTMLResponse(page(charge, merchant), headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
