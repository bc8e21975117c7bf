"""The platform's Stripe account bound to the Stripe account its key belongs to: at every
start the configured key's account (``GET /v1/account``) must be the one the platform's
``stripe`` account was first bound to (db/psp_bindings.py). A key of another Stripe account
would leave every payment kassa took (their ``pi_…`` live in the old account) impossible to
capture, refund or recover, so kassa refuses to start with it.

Stripe is asked only about a key it was never asked about: a key found to belong to the
bound account is remembered by its SHA-256 (``psp_verified_keys``; a key never moves to
another account), so a restart with it needs no Stripe. Without that, every start of every
process (API, workers, CLI) would depend on Stripe answering, and a Stripe outage, the
moment failover to the other PSPs matters most, would keep kassa from starting at all."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import asyncpg

from kassa.db import psp_bindings
from kassa.psp.base import PSPCredentialsRefused, PSPError
from kassa.startup_errors import StartupError

ACCOUNT = "stripe"  # the platform's Stripe account's name (psp/router.py)


async def bind_platform(pool: asyncpg.Pool, lookup: Callable[[str, str], Awaitable[str]], *,
                        api_key: str, api_base: str) -> str:
    """The Stripe account id the key belongs to, bound on the first start; a key of another
    account than the bound one, a key Stripe refuses, or a Stripe that cannot be asked:
    StartupError (nothing is served with a key kassa could not check). A key checked
    before against the account still bound: no question to Stripe."""
    digest = hashlib.sha256(api_key.encode()).digest()
    known = await psp_bindings.verified(pool, account=ACCOUNT, key_sha256=digest)
    if known is not None and known == await psp_bindings.bound(pool, account=ACCOUNT):
        return known
    try:
        found = await lookup(api_key, api_base)
    except PSPCredentialsRefused as exc:
        raise StartupError(f"Stripe refused KASSA_STRIPE_SECRET_KEY ({exc})",
                           "set a valid secret key of the platform's Stripe account") from None
    except PSPError as exc:
        raise StartupError(
            f"the Stripe account of KASSA_STRIPE_SECRET_KEY could not be looked up ({exc})",
            f"check that {api_base} is reachable: kassa checks at every start that the key "
            "belongs to the Stripe account its payments are in") from None
    bound = await psp_bindings.bind(pool, account=ACCOUNT, psp="stripe", ref=found)
    if bound != found:
        raise StartupError(
            f"KASSA_STRIPE_SECRET_KEY belongs to Stripe account {found}, but kassa's "
            f"'{ACCOUNT}' account is bound to {bound}: the payments it took live there",
            f"set a key of {bound} (a rotated key of the same account); to move to "
            f"{found} on purpose, settle every payment at {bound} first, then delete "
            f"the binding (DELETE FROM psp_account_bindings WHERE account = '{ACCOUNT}')")
    await psp_bindings.record_verified(pool, account=ACCOUNT, key_sha256=digest, ref=found)
    return found
