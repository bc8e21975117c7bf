"""An intent's client_secret: made unguessable at creation, checked in constant time
whenever a publishable key reads or confirms with it."""

from __future__ import annotations

import hmac
import secrets

from kassa.domain.errors import InvalidRequest
from kassa.domain.payments import PaymentIntent


def new_client_secret(payment_id: str) -> str:
    """``pi_…_secret_…``: 24 random base62 characters (143 bits) after the intent's id."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return f"{payment_id}_secret_{''.join(secrets.choice(alphabet) for _ in range(24))}"


def verify_client_secret(p: PaymentIntent, client_secret: str | None) -> None:
    """A publishable key acts on an intent only with its client_secret (compared in
    constant time: it is a bearer credential)."""
    if client_secret is None:
        raise InvalidRequest("Missing required param: client_secret.", param="client_secret",
                             code="parameter_missing")
    if p.client_secret is None or not hmac.compare_digest(
            client_secret.encode(), p.client_secret.encode()):
        raise InvalidRequest("The client_secret provided does not match the client_secret "
                             "associated with the PaymentIntent.", param="client_secret",
                             code="payment_intent_invalid_parameter")
