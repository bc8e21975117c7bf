"""What every use case needs, built once by bootstrap.py: pool, PSPs, clock, ids, policy."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import asyncpg

from kassa.db.ops import Op
from kassa.domain import ids
from kassa.domain.fees import FeeSchedule
from kassa.domain.payments import PaymentIntent
from kassa.domain.routing import Decision
from kassa.psp.base import Card, PSPAdapter
from kassa.secrets_box import SecretsBox
from kassa.vault.resolver import Resolved


class PaymentMethodResolver(Protocol):
    """Turns a payment method token into card data for the PSP call (the vault's seam)."""

    async def resolve(self, *, merchant_id: str, payment_method: str) -> Card | None: ...

    async def lookup(self, *, merchant_id: str, payment_method: str,
                     customer: str | None = None, kept: bool = False) -> Resolved:
        """The card and, for the vault's, its non-secret row: one read for a payment
        (with ``customer``: also whether that customer is live, in the same read; with
        ``kept``: a card saved to them as this process kept it, unread, whose row version
        the caller's first commit must claim)."""
        ...


class Writer(Protocol):
    """Applies a unit of work's writes in a transaction of its own (db/batch_writer.py
    shares one transaction among concurrent units)."""

    async def apply(self, unit: list[Op]) -> None: ...


class Router(Protocol):
    """psp/policy_router.py: where an authorisation goes, and where it may fail over."""

    def choose(self, payment: PaymentIntent) -> PSPAdapter: ...

    async def plan(self, payment: PaymentIntent, card: Card | None) -> Decision: ...

    def fallback(self, decision: Decision, tried: Sequence[str]) -> str | None: ...

    def failed_over(self, from_psp: str, to_psp: str, reason: str) -> None: ...


# (status, body) the client gets for a result or an error: the API layer's renderer, so
# that whoever records an outcome (recovery too) stores the answer a retry must replay
Renderer = Callable[[object], tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    """How recovery watches attempts that wait (ARCHITECTURE §3): first looks, backoff,
    the bound on unresolved looks, and the deadlines of authentications and holds."""

    recovery_after_seconds: float = 30.0  # a `started` attempt is presumed orphaned
    pending_poll_seconds: float = 30.0  # first look at a pending capture/refund
    action_poll_seconds: float = 15.0  # first look at an open 3-D Secure authentication
    action_expiry_seconds: float = 3600.0  # then it is voided (requires_payment_method)
    backoff_cap_seconds: float = 3600.0
    max_tries: int = 20  # unresolved looks before needs_attention
    lease_seconds: float = 60.0  # a claimed attempt is hidden from other workers this long
    hold_validity_seconds: Mapping[str, float] = field(default_factory=dict)
    default_hold_validity_seconds: float = 7 * 24 * 3600.0  # like Stripe's card auths

    def hold_validity(self, psp: str) -> float:
        return self.hold_validity_seconds.get(psp, self.default_hold_validity_seconds)

    def backoff(self, first: float, tries: int) -> float:
        return min(self.backoff_cap_seconds, first * float(2 ** min(tries, 20)))


def new_id(kind: str) -> str:
    return ids.encode(ids.PREFIXES.get(kind, kind), os.urandom(18))


def unix_now() -> int:
    return int(time.time())


@dataclass(frozen=True, slots=True)
class CheckoutSettings:
    """What the hosted checkout page needs (None on Kassa: no vault, so no card form)."""

    vault_url: str  # the vault as the customer's browser reaches it
    token_key: bytes  # signs the page's checkout tokens (kassa/checkout/tokens.py)


@dataclass(slots=True)
class FxPolicy:
    """Multi-currency settings (domain/fx.py) and this process's cache of each merchant's
    settlement currency: a same-currency payment costs no extra round trip for it."""

    max_age_seconds: int = 24 * 3600
    cache_seconds: float = 60.0
    # reconciliation: a PSP's conversion rate more than this fraction off kassa's own rate
    # for the pair is an amount_mismatch, not posted (db/reconciliation.py flag_conversions)
    reconcile_band: Decimal = Decimal("0.05")
    # merchant id -> (monotonic expiry, settlement currency or None)
    settlement: dict[str, tuple[float, str | None]] = field(default_factory=dict)


@dataclass(slots=True)
class Kassa:
    pool: asyncpg.Pool
    psps: Mapping[str, PSPAdapter]
    router: Router
    payment_methods: PaymentMethodResolver
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    platform_account: str | None = None  # may read and resolve reconciliation runs
    idempotency_lock_timeout_seconds: float = 60.0
    idempotency_retention_hours: float = 24.0
    recovery_after_seconds: float = 30.0
    clock: Callable[[], int] = unix_now
    ids: Callable[[str], str] = new_id
    writer: Writer | None = None  # None: each unit of work is its own transaction
    watch: WatchPolicy = field(default_factory=WatchPolicy)
    render: Renderer | None = None  # bootstrap wires the API's renderer
    # where a PSP sends the customer back after 3-D Secure (this API's /psp/return/…)
    public_url: str = "http://127.0.0.1:8000"
    checkout: CheckoutSettings | None = None
    # seals merchants' PSP credentials (None: no key configured, no psp_accounts)
    secrets: SecretsBox | None = None
    production: bool = False  # KASSA_ENV=production: live keys and http URLs are refused
    # KASSA_PSP_TOKENS_ON_PLATFORM_ACCOUNTS (services/psp_tokens.py)
    platform_psp_tokens: bool = False
    # the Stripe account (acct_…) a secret key belongs to, asked with (key, API base); a
    # merchant's account is bound to it (services/psp_accounts.py). None: not asked
    # (localstripe, which has no /v1/account)
    stripe_account_of: Callable[[str, str], Awaitable[str]] | None = None
    fx: FxPolicy = field(default_factory=FxPolicy)

    def psp(self, name: str) -> PSPAdapter:
        return self.psps[name]

    def psps_changed(self, name: str) -> None:
        """A merchant's PSP account changed: this process reads it again on next use."""
        forget = getattr(self.psps, "forget", None)
        if forget is not None:
            forget(name)
