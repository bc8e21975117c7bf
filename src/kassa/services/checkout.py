"""The hosted checkout page's use cases: open an intent by its client_secret (no API key:
the secret is the customer's credential, as Stripe.js uses it), mint the page's checkout
token for the vault, and confirm with the card the vault tokenised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kassa.checkout import tokens
from kassa.db import merchants as merchants_db
from kassa.db import payments as payments_db
from kassa.domain.errors import KassaError, NotFound
from kassa.domain.payments import PaymentIntent, PaymentStatus
from kassa.services import confirm as confirm_flow
from kassa.services.client_secret import verify_client_secret
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle


class CheckoutUnavailable(KassaError):
    """No vault is configured, so there is nowhere to send a card number."""

    code = "checkout_unavailable"


# the statuses in which the page may still send a card to the vault
TAKES_A_CARD = frozenset({PaymentStatus.REQUIRES_PAYMENT_METHOD,
                          PaymentStatus.REQUIRES_CONFIRMATION, PaymentStatus.REQUIRES_ACTION})


@dataclass(frozen=True, slots=True)
class OpenCheckout:
    intent: PaymentIntent
    merchant_name: str
    token: str | None  # what the page presents to the vault (None: the intent takes no card)
    vault_url: str


async def load(kassa: Kassa, *, payment_id: str, client_secret: str | None) -> PaymentIntent:
    """The intent, if ``client_secret`` is its own; one answer for a wrong secret and an
    unknown intent, so the page is no oracle for intent ids."""
    p = await payments_db.get_payment_unscoped(kassa.pool, payment_id) if payment_id.startswith(
        "pi_") and len(payment_id) <= 64 else None
    try:
        if p is None:
            raise NotFound("No such payment.", param="payment_intent")
        verify_client_secret(p, client_secret)
    except KassaError:
        raise NotFound("This checkout link is not valid.", param="client_secret") from None
    return p


async def open_checkout(kassa: Kassa, *, payment_id: str, client_secret: str | None
                        ) -> OpenCheckout:
    if kassa.checkout is None:
        raise CheckoutUnavailable("The hosted checkout page needs the card vault "
                                  "(KASSA_VAULT_FORWARD_SECRET and KASSA_VAULT_URL) and a "
                                  "KASSA_CHECKOUT_TOKEN_SECRET.")
    p = await load(kassa, payment_id=payment_id, client_secret=client_secret)
    merchant = await merchants_db.get_merchant(kassa.pool, p.merchant_id)
    # a token lets its holder tokenise cards for the merchant: only while this intent can
    # still take one, not for a link to a paid or canceled intent that lives on in a mail
    token = tokens.mint(kassa.checkout.token_key, merchant_id=p.merchant_id,
                        payment_id=p.id, now=kassa.clock()) if p.status in TAKES_A_CARD else None
    return OpenCheckout(p, merchant["name"] if merchant else "", token,
                        kassa.checkout.vault_url)


async def confirm(kassa: Kassa, *, merchant_id: str, payment_id: str, client_secret: str,
                  payment_method: str | None, return_url: str | None,
                  idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """As a publishable key with the client_secret confirms (the same checks)."""
    return await confirm_flow.confirm(kassa, merchant_id=merchant_id, payment_id=payment_id,
                                      payment_method=payment_method, return_url=return_url,
                                      client_secret=client_secret, publishable=True,
                                      idempotency=idempotency)
