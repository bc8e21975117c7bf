"""Which Stripe account a secret key belongs to: ``GET /v1/account`` (Retrieve the current
account) with that key, through kassa's PSP client.

A key rotation must stay in the same Stripe account: the PaymentIntents (``pi_…``) of
payments kassa already took live in the old one, and captures, refunds and recovery's
lookups of them would fail (or find nothing) under another account's key. The id this
answers is stored with the account (services/psp_accounts.py for merchants' accounts,
services/stripe_binding.py for the platform's) and compared on every rotation.

localstripe has no ``/v1/account`` (it keeps one store whatever the key): kassa pointed at
localstripe does not bind (README.md beside this file); tests/unit/psp/test_stripe_account.py
covers the call against Stripe's recorded answer.
"""

from __future__ import annotations

import httpx
import stripe

from kassa.psp.base import PSPCredentialsRefused, PSPError
from kassa.psp.stripe import mapping as m
from kassa.psp.stripe.transport import InjectedHTTPXClient

ACCOUNT_PREFIX = "acct_"


class StripeKeyRefused(PSPCredentialsRefused):
    """Stripe refused the key itself (401: unknown or revoked key; 403: a restricted key
    without read access to the account)."""


async def account_of(client: httpx.AsyncClient, *, api_key: str, api_base: str,
                     request_timeout: float = 10.0) -> str:
    """The ``acct_…`` id of the Stripe account ``api_key`` belongs to. Raises
    StripeKeyRefused, or the PSP error class of anything else (unreachable, 5xx)."""
    sdk = stripe.StripeClient(api_key, base_addresses={"api": api_base.rstrip("/")},
                              http_client=InjectedHTTPXClient(client, timeout=request_timeout),
                              max_network_retries=0)
    try:
        account = await sdk.v1.accounts.retrieve_current_async()
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise StripeKeyRefused(f"Stripe refused the key: {type(exc).__name__} "
                               f"{m.redact(str(exc.user_message or exc)) or ''}"[:300]) from exc
    except stripe.StripeError as exc:
        raise m.classify(exc, "stripe retrieve account") from exc
    found = str(getattr(account, "id", "") or "")
    if not found.startswith(ACCOUNT_PREFIX):
        raise PSPError(f"stripe retrieve account: an answer without an account id ({found!r})")
    return found
