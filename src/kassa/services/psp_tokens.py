"""Checking a PSP's own token (``<psp_account>:<token>``) against the account it names,
before a payment is created or authorised with it: the account exists for this merchant
(a platform account, or the merchant's own ``pspacct_…``), is enabled, takes the currency,
and the token has the shape that account's PSP issues. Each failure is a 400 naming
``payment_method``; nothing is stored or sent.

The platform's shared Stripe and Adyen accounts take no tokens unless the platform says its
merchants may charge each other's (KASSA_PSP_TOKENS_ON_PLATFORM_ACCOUNTS): a token there
was stored for some merchant's shopper, and nothing tells kassa which, so merchant B could
charge A's shopper with A's shopper reference and stored id. A merchant's own account
(pspacct_…) holds only its tokens. The simulator's tokens are test cards."""

from __future__ import annotations

from kassa.domain import psp_tokens
from kassa.domain.errors import InvalidRequest
from kassa.psp.accounts import is_account_id
from kassa.services.context import Kassa

PARAM = psp_tokens.PARAM


def _unknown(account: str) -> InvalidRequest:
    # another merchant's account answers like one that does not exist: ids do not leak
    return InvalidRequest(f"No such PSP account: '{account}' (payment_method names the PSP "
                          "account that issued its token).", param=PARAM,
                          code="psp_account_unknown")


SHARED = ("stripe", "adyen")  # platform accounts whose tokens may be any merchant's


def _shared(account: str) -> InvalidRequest:
    return InvalidRequest(
        f"The platform's PSP account '{account}' is shared by every merchant: a token "
        "stored there may be another merchant's shopper's, so it is not charged. Connect "
        "your own account (POST /v1/psp_accounts) and use its tokens (pspacct_…:<token>).",
        param=PARAM, code="psp_token_shared_account")


def _disabled(account: str) -> InvalidRequest:
    return InvalidRequest(f"The PSP account '{account}' is disabled: its tokens cannot be "
                          "charged now.", param=PARAM, code="psp_account_disabled")


async def check(kassa: Kassa, *, merchant_id: str, payment_method: str | None,
                currency: str) -> str | None:
    """The account a pinned payment method goes to (None: not a PSP token)."""
    token = psp_tokens.parse(payment_method)
    if token is None:
        return None
    name, registry = token.account, kassa.psps
    platform = getattr(registry, "platform", None)
    if platform is not None and platform(name) or platform is None and name in registry:
        account = getattr(registry, "account", None)
        psp = account(name).psp if account is not None else name
        if psp in SHARED and not kassa.platform_psp_tokens:
            raise _shared(name)
        enabled = getattr(registry, "enabled", None)
        if enabled is not None and not enabled(name):
            raise _disabled(name)
        psp_tokens.check_shape(token, psp)
        return name
    accounts = getattr(registry, "merchant_accounts", None)
    if accounts is None or not is_account_id(name):
        raise _unknown(name)
    await registry.refresh([name])  # type: ignore[attr-defined]
    facts = accounts.facts(name)
    if facts is None or facts.merchant_id != merchant_id:
        raise _unknown(name)
    if not facts.enabled:
        raise _disabled(name)
    if currency.lower() not in facts.currencies:
        raise InvalidRequest(f"The PSP account '{name}' does not take {currency.upper()} "
                             f"(it takes {', '.join(sorted(facts.currencies)).upper()}).",
                             param=PARAM, code="psp_account_currency_unsupported")
    psp_tokens.check_shape(token, facts.psp)
    return name
