"""The contract every PSP adapter satisfies: one async Protocol over small dataclasses.

Each call carries ``idempotency_key`` = kassa's attempt id, so repeating a call after a
crash or timeout can never move money twice at the PSP. PSP-specific statuses are mapped
to :class:`Outcome` inside each adapter's own module and nowhere else.

    PSPError
     ├── PSPRefused            4xx: the PSP refused the request itself (not a decline);
     │    │                    nothing moved, repeating it will not help (alias PSPRejected)
     │    └── PSPCredentialsRefused  the key itself (unknown, revoked, no access)
     ├── PSPRetryable          repeating the call with the same key is safe
     │    ├── PSPUnavailable   provably not processed (connection refused, DNS failure)
     │    └── PSPOutcomeUnknown  may have been processed: 5xx, reset after sending, an
     │         │               unreadable answer; resolve it with lookup / a repeat
     │         └── PSPTimeout  no answer in time
     ├── UnknownOperation      lookup: the PSP has no record of the attempt, so repeating
     │    │                    the call with its key is safe (and tells the outcome)
     │    └── CannotLookUp     the PSP reads nothing back: a repeat's refusal is no outcome
     ├── WebhookRejected   an inbound webhook is unsigned, wrongly signed, stale or malformed
     └── ReportUnavailable  a settlement report could not be had (not published yet, refused,
                           unreachable); the daily pull tries that day again later

The saga runner (services/saga.py) maps these to what it records: a refusal is a recorded
failure of the attempt, the two retryable classes leave the attempt to recovery.

Recovery's primitive is ``lookup``: find what the PSP did with one attempt (an
:class:`AttemptRef`, everything kassa knows of it) by the PSP's own means — the simulator
answers by idempotency key, Stripe by the PaymentIntent's id or kassa's ids in its
metadata. ``UnknownOperation`` means "not found there": the saga then repeats the call
with the same key, which the PSP deduplicates.

Inbound webhooks are verified and normalised by ``parse_webhook`` into :class:`PSPEvent`s:
each names the PSP object it is about (``object_ref``) and its place in that object's
history (``sequence``), so kassa can apply them once and in order whatever order they
arrive in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import Money
from kassa.domain.payments import Operation


class Outcome(StrEnum):
    AUTHORIZED = "authorized"  # funds held, capture pending
    CAPTURED = "captured"  # authorised and captured (or capture succeeded)
    REQUIRES_ACTION = "requires_action"  # customer authentication needed (3DS)
    DECLINED = "declined"  # the issuer or PSP refused; final
    VOIDED = "voided"
    REFUNDED = "refunded"
    REFUND_PENDING = "refund_pending"
    CAPTURE_PENDING = "capture_pending"  # accepted; the PSP confirms or fails it later
    VOID_PENDING = "void_pending"  # accepted (Adyen's cancel `received`); confirmed later
    FAILED = "failed"  # the operation was refused (e.g. capture of an expired auth)


class PSPError(Exception):
    pass


class PSPRetryable(PSPError):
    """The call may be repeated with its key; whether the PSP acted is not known here."""


class PSPUnavailable(PSPRetryable):
    """Provably not processed: the request never reached the PSP (connection refused, DNS
    failure). Only this class may ever fail over to another PSP."""


class PSPOutcomeUnknown(PSPRetryable):
    """The PSP may have acted: a 5xx, a connection reset after sending, an answer kassa
    cannot read. Recovery resolves it at the same PSP."""


class PSPTimeout(PSPOutcomeUnknown):
    """No answer in time; the PSP may or may not have acted."""


class PSPRefused(PSPError):
    """The PSP refused the request as invalid (4xx); nothing moved, repeating will not help."""


class PSPCredentialsRefused(PSPRefused):
    """The PSP refused the credentials themselves (an unknown or revoked key, a restricted
    key without access): nothing can be done with them."""


PSPRejected = PSPRefused  # the name earlier code used


class UnknownOperation(PSPError):
    """lookup: the PSP has no record of this attempt by its own means of finding it; the
    call may be repeated with the attempt's idempotency key (the PSP deduplicates it)."""


class CannotLookUp(UnknownOperation):
    """lookup: the PSP has no way to read an operation back (Adyen), so the call is
    repeated with its key and answered from the PSP's idempotency store. A refusal (4xx)
    of that repeat says nothing about the original (Adyen refuses a repeat once its key
    has lapsed, or a modification of a payment that moved on): a modification stays
    unresolved for the PSP's notification, never recorded as failed or succeeded."""


class WebhookRejected(PSPError):
    """parse_webhook: not provably from the PSP (unsigned, bad signature, stale timestamp)
    or not readable; the receiver answers 400 and stores nothing."""


class ReportUnavailable(PSPError):
    """The day's settlement report could not be downloaded now: the PSP has not published
    it yet, refused the credentials, or did not answer. Nothing was imported."""


@dataclass(frozen=True, slots=True)
class Card:
    """Card data as the adapter needs it. Only adapters see ``number``; never log it."""

    number: str
    exp_month: int
    exp_year: int
    brand: str
    cvc: str | None = None
    funding: str = "credit"  # credit | debit | prepaid | unknown (Stripe's card.funding)
    country: str | None = "US"  # the issuer's, ISO 3166-1 alpha-2

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
    payment_id: str | None = None  # kassa's PaymentIntent, echoed to PSPs that keep metadata
    # kassa's payment-method id (``pm_card_visa`` …): a PSP that knows the token itself
    # (Stripe's test payment methods) is given the token instead of the card
    payment_method: str | None = None
    # the PSP's own token (``payment_method`` ``<account>:<token>`` with its prefix
    # stripped): the adapter charges it instead of ``card``, which is then a placeholder
    # with no number (vault/psp_tokens.py)
    psp_token: str | None = None
    # where the PSP sends the customer after 3-D Secure: kassa's own return endpoint for
    # this attempt (derived from the attempt id, so a repeated call is the same call)
    return_url: str | None = None
    # the customer is not there (a merchant-initiated charge of a saved card): no 3-D Secure
    # can happen, so the PSP declines a card that needs it (authentication_required)
    off_session: bool = False


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """One attempt as kassa recorded it, for ``lookup`` to find at the PSP: the key it was
    sent with, and whatever else the PSP's own search needs."""

    operation: Operation
    idempotency_key: str  # kassa's attempt id
    amount: Money
    merchant_id: str
    payment_id: str
    # the authorisation at the PSP: known for capture/void/refund, and for an
    # authorisation once the PSP answered it (e.g. requires_action)
    psp_reference: str | None = None
    created: int = 0  # unix seconds the attempt was started


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
    # the PSP's own id of a capture, cancel or refund (Adyen's modification pspReference;
    # ``psp_reference`` stays the payment's, where a repeat goes): its events name it
    operation_reference: str | None = None


class PSPEventType(StrEnum):
    """Asynchronous outcomes a PSP reports by webhook, normalised."""

    # the outcome of an authorisation that waited on the customer (3-D Secure): the
    # event's ``outcome`` says authorized, captured or declined
    AUTHORIZATION_UPDATED = "authorization.updated"
    CAPTURE_SUCCEEDED = "capture.succeeded"  # a capture answered pending is confirmed
    CAPTURE_FAILED = "capture.failed"
    VOID_SUCCEEDED = "void.succeeded"  # a void answered pending is confirmed
    VOID_FAILED = "void.failed"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"  # a pending refund failed, or a succeeded one bounced
    DISPUTE_CREATED = "dispute.created"
    DISPUTE_UPDATED = "dispute.updated"
    DISPUTE_CLOSED = "dispute.closed"


@dataclass(frozen=True, slots=True)
class PSPDispute:
    """The dispute as the PSP sees it when it sent the event (a full snapshot)."""

    psp_dispute_id: str
    status: DisputeStatus
    amount: Money
    reason: str
    evidence_due_by: int | None = None
    created: int | None = None


@dataclass(frozen=True, slots=True)
class PSPEvent:
    """One verified inbound webhook event.

    ``reference`` is kassa's own idempotency key that the PSP echoes: for capture and refund
    events the attempt that made the operation, for dispute events the attempt that
    authorised the payment. ``object_ref``/``sequence`` order events about one PSP object
    (a dispute, a capture, a refund): a lower sequence than one already applied is stale.
    """

    psp: str
    event_id: str
    type: PSPEventType
    object_ref: str
    sequence: int
    created: int
    psp_reference: str  # the authorisation at the PSP
    reference: str | None = None
    operation_reference: str | None = None  # the PSP's id of the capture/refund
    amount: Money | None = None
    failure_code: str | None = None
    message: str | None = None
    dispute: PSPDispute | None = None
    outcome: Outcome | None = None  # AUTHORIZATION_UPDATED: what the authorisation became
    decline_code: str | None = None


@runtime_checkable
class PSPAdapter(Protocol):
    """Payment calls, inbound webhooks and dispute responses. Settlement reports and
    payouts join this protocol with the issues that need them."""

    name: str

    async def authorize(self, request: AuthorizeRequest) -> PSPResult: ...

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult: ...

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult: ...

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult: ...

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        """What the PSP did with ``attempt``, found by the PSP's own means.

        Raises UnknownOperation when the PSP has no record of it, so the caller repeats the
        call with the same idempotency key (safe: the PSP deduplicates it, and nothing was
        charged twice); PSPRetryable when the PSP cannot tell now.
        """
        ...

    async def parse_webhook(self, *, headers: Mapping[str, str], body: bytes,
                            now: int) -> Sequence[PSPEvent]:
        """Verify an inbound webhook against the raw ``body`` and normalise its events.

        Raises WebhookRejected when it is unsigned, wrongly signed, outside the timestamp
        tolerance around ``now`` (a replay) or malformed. Event types kassa does not act on
        are verified and dropped (an empty sequence), so the PSP still gets its 200.
        """
        ...

    async def submit_dispute_evidence(self, *, psp_dispute_id: str,
                                      evidence: Mapping[str, str]) -> None:
        """Send the merchant's evidence to the issuer (idempotent: resending the same
        evidence is a no-op)."""
        ...

    async def accept_dispute(self, *, psp_dispute_id: str) -> None:
        """Concede the dispute (idempotent)."""
        ...


class SettlementReportSource(Protocol):
    """Where one PSP account's daily settlement report comes from (the daily pull,
    services/reconciliation_pull.py). Its own object, not a method of every PSPAdapter:
    a report is fetched with other credentials and endpoints than payments (Stripe's
    Reporting API, Adyen's report user), and an account may have none configured."""

    format: str  # the parser that reads it (reconciliation/reports.py PARSERS)

    async def download(self, *, day: date, into: Path) -> None:
        """Write the report of the UTC ``day`` to ``into``, streamed (a day may be millions
        of rows). Raises ReportUnavailable when there is none to be had now."""
        ...
