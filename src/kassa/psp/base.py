"""The contract every PSP adapter satisfies: one async Protocol over small dataclasses.

Each call carries ``idempotency_key`` = kassa's attempt id, so repeating a call after a
crash or timeout can never move money twice at the PSP. PSP-specific statuses are mapped
to :class:`Outcome` inside each adapter's own module and nowhere else.

    PSPError
     ├── PSPRetryable      5xx, connection refused/reset: nothing happened *or* unknown
     │    └── PSPTimeout   no answer in time: outcome unknown, ask get_status later
     └── PSPRejected       4xx: the PSP refused the request itself (not a decline)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from kassa.domain.money import Money


class Outcome(StrEnum):
    AUTHORIZED = "authorized"  # funds held, capture pending
    CAPTURED = "captured"  # authorised and captured (or capture succeeded)
    REQUIRES_ACTION = "requires_action"  # customer authentication needed (3DS)
    DECLINED = "declined"  # the issuer or PSP refused; final
    VOIDED = "voided"
    REFUNDED = "refunded"
    REFUND_PENDING = "refund_pending"
    FAILED = "failed"  # the operation was refused (e.g. capture of an expired auth)


class PSPError(Exception):
    pass


class PSPRetryable(PSPError):
    """The PSP could not be reached or answered 5xx; the call may be repeated with its key."""


class PSPTimeout(PSPRetryable):
    """No answer in time; the PSP may or may not have acted."""


class PSPRejected(PSPError):
    """The PSP refused the request as invalid (4xx); repeating it will not help."""


class UnknownOperation(PSPError):
    """get_status: the PSP has no record of this idempotency key (the call never arrived)."""


@dataclass(frozen=True, slots=True)
class Card:
    """Card data as the adapter needs it. Only adapters see ``number``; never log it."""

    number: str
    exp_month: int
    exp_year: int
    brand: str
    cvc: str | None = None

    def __repr__(self) -> str:  # keeps the PAN out of logs and tracebacks
        return f"Card(brand={self.brand!r}, last4={self.number[-4:]!r})"


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    idempotency_key: str
    amount: Money
    card: Card
    capture: bool  # True: authorise and capture in one call (automatic capture)
    merchant_id: str
    description: str | None = None
    return_url: str | None = None


@dataclass(frozen=True, slots=True)
class PSPResult:
    """What the PSP did for one operation."""

    outcome: Outcome
    psp_reference: str
    amount: Money | None = None
    decline_code: str | None = None
    message: str | None = None
    action_url: str | None = None  # for REQUIRES_ACTION
    raw_status: str | None = None  # the PSP's own status word, for diagnostics


@runtime_checkable
class PSPAdapter(Protocol):
    """Payment calls. Inbound webhooks, settlement reports and payouts join this
    protocol with the issues that need them (parse_webhook, settlement_report, payout)."""

    name: str

    async def authorize(self, request: AuthorizeRequest) -> PSPResult: ...

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult: ...

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult: ...

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult: ...

    async def get_status(self, *, idempotency_key: str) -> PSPResult:
        """The result of the operation sent with ``idempotency_key``.

        Raises UnknownOperation if the PSP never received it, so the caller knows that
        repeating the call is safe and nothing was charged.
        """
        ...
