"""The hosted checkout page's HTML and its Content-Security-Policy.

The page runs only kassa's own scripts, named with their integrity hashes; its data (the
intent, the checkout token, where to post the card) is a JSON block that is never executed.
Everything the customer sees is escaped."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

import orjson

from kassa.checkout.assets import asset
from kassa.domain.currencies import to_major
from kassa.domain.money import Money

ASSET_PATH = "/checkout/assets"
OUTCOMES = {
    "succeeded": ("succeeded", "Payment complete. Thank you!"),
    "requires_capture": ("succeeded", "Payment authorised. Thank you!"),
    "processing": ("processing", "Your payment is being processed."),
    "canceled": ("canceled", "This payment was canceled."),
    "requires_action": ("processing", "Your bank is still waiting for you to authenticate."),
}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(vault_url: str) -> str:
    """Scripts and styles from kassa only; the card goes to the vault's origin only; the
    page can be framed by nobody and sends its form nowhere but its own origin."""
    return "; ".join([
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        f"connect-src 'self' {origin(vault_url)}", "form-action 'self'", "base-uri 'none'",
        "frame-ancestors 'none'"])


def display_amount(amount: Money) -> str:
    return f"{to_major(amount):,} {amount.currency.upper()}"


def _tags() -> str:
    css, lib, page = asset("checkout.css"), asset("kassa.js"), asset("checkout.js")
    return (f'<link rel="stylesheet" href="{ASSET_PATH}/{css.name}" integrity="{css.integrity}">'
            f'<script src="{ASSET_PATH}/{lib.name}" integrity="{lib.integrity}" defer></script>'
            f'<script src="{ASSET_PATH}/{page.name}" integrity="{page.integrity}" defer>'
            "</script>")


def render(*, merchant: str, amount: Money, description: str | None, status: str,
           error: str | None, config: dict[str, Any]) -> str:
    """``status``: the intent's; a form while it still needs a card, else how it ended."""
    data = orjson.dumps(config).decode().replace("<", "\\u003c")  # no </script> inside
    head = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            f"<title>Pay {html.escape(merchant)}</title>{_tags()}</head><body><main>")
    top = (f'<p class="merchant">{html.escape(merchant)}</p>'
           f'<p class="amount" id="amount">{html.escape(display_amount(amount))}</p>')
    if description:
        top += f'<p class="description">{html.escape(description)}</p>'
    if status in ("requires_payment_method", "requires_confirmation"):
        error_box = (f'<p class="error" id="card-errors" role="alert"'
                     f'{"" if error else " hidden"}>{html.escape(error or "")}</p>')
        body = ('<form id="payment-form" novalidate>'
                '<label><span>Name on card</span><input id="cardholder-name" '
                'autocomplete="cc-name"></label>'
                '<div id="card-element"></div>'
                f'{error_box}'
                f'<button id="pay" type="submit">Pay {html.escape(display_amount(amount))}'
                '</button></form>'
                '<p class="secure">Card details go straight to the card vault.</p>')
    else:
        css_class, text = OUTCOMES.get(status, ("failed", "This payment cannot be paid."))
        body = f'<p class="outcome {css_class}" id="outcome">{html.escape(text)}</p>'
    return (head + top + body
            + f'<script type="application/json" id="kassa-config">{data}</script>'
            + "</main></body></html>")
