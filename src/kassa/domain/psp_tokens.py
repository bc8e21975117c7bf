"""PSP-own tokens: a payment method only one PSP account can charge, written
``<psp_account>:<token>`` (``stripe:pm_1Nxyz``, ``pspacct_…:pm_…``,
``adyen:<shopperReference>/<storedPaymentMethodId>``, ``simulator:tok_visa``).

The token is the PSP's own (a Stripe PaymentMethod of that account, an Adyen stored payment
method, a simulator token); kassa never sees the card behind it, so such a payment routes
to that account only and never fails over (another account cannot charge the token).
Pure parsing and the per-PSP shape checks; which accounts exist is the service's question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kassa.domain.errors import InvalidRequest

# an account name as kassa records it (platform names from settings, ``pspacct_…`` ids)
_ACCOUNT = r"[A-Za-z][A-Za-z0-9_]{0,63}"
_FORM = re.compile(rf"^({_ACCOUNT}):(\S{{1,300}})$")
# the token's shape per PSP: a Stripe PaymentMethod id; Adyen's shopperReference (which
# Adyen requires with a stored payment method, 3..256 characters) and storedPaymentMethodId;
# the simulator's tokens (tok_<test card> or one /_sim/tokens created)
_STRIPE = re.compile(r"^pm_[A-Za-z0-9_]{1,250}$")
_ADYEN = re.compile(r"^(\S{3,256})/([A-Za-z0-9_]{1,64})$")
_SIMULATOR = re.compile(r"^(tok|simtok)_[A-Za-z0-9_]{1,100}$")
SHAPES = {"stripe": ("pm_…", _STRIPE),
          "adyen": ("<shopperReference>/<storedPaymentMethodId>", _ADYEN),
          "simulator": ("tok_… or simtok_…", _SIMULATOR)}
PARAM = "payment_method"


@dataclass(frozen=True, slots=True)
class PSPToken:
    account: str  # the one PSP account that can charge it
    token: str  # what that PSP is given (the prefix stripped)


def parse(payment_method: str | None) -> PSPToken | None:
    """The PSP token a payment method names, or None when it is not of that form (kassa's
    own ``pm_…`` ids and Stripe's test ids have no ``:``)."""
    if payment_method is None or ":" not in payment_method:
        return None
    found = _FORM.fullmatch(payment_method)
    if found is None:
        return None
    return PSPToken(account=found.group(1), token=found.group(2))


def account_of(payment_method: str | None) -> str | None:
    """The account a pinned payment method must go to (None: it may be routed)."""
    token = parse(payment_method)
    return None if token is None else token.account


def token_of(payment_method: str | None) -> str | None:
    """What the PSP is given for a pinned payment method (None: not a PSP token)."""
    token = parse(payment_method)
    return None if token is None else token.token


def check_shape(token: PSPToken, psp: str) -> None:
    """The token must be one ``psp`` issues: a typo is a 400 here, not a refusal at the PSP."""
    shape = SHAPES.get(psp)
    if shape is None:
        raise InvalidRequest(f"The PSP account '{token.account}' takes no PSP tokens.",
                             param=PARAM, code="psp_token_unsupported")
    described, pattern = shape
    if pattern.fullmatch(token.token) is None:
        raise InvalidRequest(f"Invalid payment_method: a token of the {psp} account "
                             f"'{token.account}' is written '{token.account}:{described}'.",
                             param=PARAM, code="invalid_psp_token")


def adyen_stored(token: str) -> tuple[str, str]:
    """An Adyen token's (shopperReference, storedPaymentMethodId)."""
    found = _ADYEN.fullmatch(token)
    if found is None:
        raise ValueError("not an Adyen stored payment method token")
    return found.group(1), found.group(2)
