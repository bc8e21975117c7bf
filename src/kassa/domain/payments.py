"""The PaymentIntent state machine: a transition table and the one function that applies it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn

from kassa.domain.errors import AmountError, IllegalTransition, InvalidRequest
from kassa.domain.fx import Conversion
from kassa.domain.money import MAX_AMOUNT, Money


class PaymentStatus(StrEnum):
    # new without a card, or the last attempt failed
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"  # has a card, waiting for confirm
    REQUIRES_ACTION = "requires_action"  # PSP asked for customer authentication (3DS)
    PROCESSING = "processing"  # a PSP call is in flight or its outcome is unknown
    REQUIRES_CAPTURE = "requires_capture"  # authorised, funds held, waiting for manual capture
    SUCCEEDED = "succeeded"  # captured (terminal for the intent; refunds don't change it)
    CANCELED = "canceled"  # voided or abandoned (terminal)


S = PaymentStatus

TRANSITIONS: frozenset[tuple[PaymentStatus, PaymentStatus]] = frozenset(
    {
        (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION),  # card attached
        (S.REQUIRES_PAYMENT_METHOD, S.PROCESSING),  # confirm with a card in the same call
        (S.REQUIRES_PAYMENT_METHOD, S.CANCELED),
        (S.REQUIRES_CONFIRMATION, S.REQUIRES_CONFIRMATION),  # card replaced
        (S.REQUIRES_CONFIRMATION, S.PROCESSING),  # confirm
        (S.REQUIRES_CONFIRMATION, S.CANCELED),
        (S.REQUIRES_ACTION, S.SUCCEEDED),  # authentication done, PSP captured
        (S.REQUIRES_ACTION, S.REQUIRES_CAPTURE),  # authentication done, PSP authorised
        (S.REQUIRES_ACTION, S.REQUIRES_PAYMENT_METHOD),  # authentication failed
        # canceling an open authentication voids it at the PSP first (via processing)
        (S.REQUIRES_ACTION, S.PROCESSING),  # void of the authentication in flight
        (S.PROCESSING, S.REQUIRES_ACTION),  # 3DS asked, or its void refused
        (S.PROCESSING, S.REQUIRES_CAPTURE),  # authorised (manual) or capture failed
        (S.PROCESSING, S.SUCCEEDED),  # captured
        (S.PROCESSING, S.REQUIRES_PAYMENT_METHOD),  # declined
        (S.PROCESSING, S.CANCELED),  # void confirmed
        (S.REQUIRES_CAPTURE, S.PROCESSING),  # capture or void in flight
    }
)
# The only ways out of `succeeded`, taken by PaymentIntent.capture_reversed alone: the
# scheme rejected a capture after the PSP confirmed it (Adyen's CAPTURE_FAILED after
# CAPTURE): held again while the authorisation is valid, else canceled. A table of its
# own, so no other command (a late authorisation, a void) can reopen a succeeded payment.
REVERSALS: frozenset[tuple[PaymentStatus, PaymentStatus]] = frozenset(
    {(S.SUCCEEDED, S.REQUIRES_CAPTURE), (S.SUCCEEDED, S.CANCELED)})

TERMINAL = frozenset({S.SUCCEEDED, S.CANCELED})
CANCELABLE = frozenset(
    {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE}
)
CONFIRMABLE = frozenset({S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION})
CANCELLATION_REASONS = frozenset(  # what a merchant may give; kassa itself sets "automatic"
    {"duplicate", "fraudulent", "requested_by_customer", "abandoned"}
)
AUTOMATIC = "automatic"  # canceled by kassa: the authorisation hold expired


def transition(payment: PaymentIntent, dst: PaymentStatus, *, action: str | None = None,
               table: frozenset[tuple[PaymentStatus, PaymentStatus]] = TRANSITIONS) -> None:
    """Move ``payment`` to ``dst`` or raise IllegalTransition; bumps nothing else."""
    if (payment.status, dst) not in table:
        raise IllegalTransition(payment.status.value, dst.value, action=action)
    payment.status = dst


def validate_amount(amount: int, *, param: str = "amount") -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest("Invalid integer", param=param)
    if amount < 1:
        raise AmountError("Amount must be at least 1 minor unit.", param=param,
                          code="amount_too_small")
    if amount > MAX_AMOUNT:
        raise AmountError(f"Amount must be no more than {MAX_AMOUNT}.", param=param,
                          code="amount_too_large")


class Operation(StrEnum):
    """What a PSP attempt does; each attempt's id is the PSP idempotency key."""

    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class AttemptStatus(StrEnum):
    STARTED = "started"  # recorded before the PSP call; outcome not yet known
    SUCCEEDED = "succeeded"  # PSP accepted (authorised, captured, voided, refunded)
    REQUIRES_ACTION = "requires_action"  # PSP wants customer authentication
    PENDING = "pending"  # PSP accepted a capture/refund; its outcome comes later
    FAILED = "failed"  # PSP refused (decline, invalid) — final, nothing moved at the PSP
    UNKNOWN = "unknown"  # timeout / 5xx: recovery must ask the PSP
    # recovery gave up after its bounded tries: an operator must look (the payment stays
    # where it was; `kassa attempts list --stuck`)
    NEEDS_ATTENTION = "needs_attention"


# the PSP call's outcome is not known yet: whoever learns it records it (CAS on these)
OPEN_ATTEMPT = (AttemptStatus.STARTED, AttemptStatus.UNKNOWN, AttemptStatus.NEEDS_ATTENTION)


class VoidPurpose(StrEnum):
    """Why a void was sent; decides what a successful void makes of the payment."""

    CANCEL = "cancel"  # the merchant canceled
    ACTION_EXPIRED = "action_expired"  # 3-D Secure not completed in time
    HOLD_EXPIRED = "hold_expired"  # an uncaptured authorisation reached its validity


@dataclass(slots=True)
class Attempt:
    """One PSP call sequence; its id is the PSP idempotency key."""

    id: str
    merchant_id: str
    payment_intent_id: str
    operation: Operation
    psp: str
    status: AttemptStatus
    amount: Money
    capture: bool = False
    refund_id: str | None = None
    psp_reference: str | None = None
    error: dict[str, Any] | None = None
    return_url: str | None = None  # the merchant's, for 3-D Secure
    # an authorisation for a customer who is not there (a saved card charged by the
    # merchant): no 3-D Secure is possible, so a card that asks for it is declined
    off_session: bool = False
    idempotency_key: str | None = None  # the request's: its answer is stored with the outcome
    purpose: VoidPurpose | None = None
    tries: int = 0  # recovery's unresolved looks since the last change
    created: int = 0  # unix seconds
    # an authorisation's domain.charges.ChargeDetails while the request that made it runs
    # (the charges row keeps them): its finisher renders the charge without reading it back
    charge: Any = None
    # the PSP's id of the modification itself when it has its own (Adyen answers a
    # capture, cancel or refund `received` with a new pspReference; its notification
    # names it): how an inbound event finds this attempt
    operation_reference: str | None = None


@dataclass(slots=True)
class PaymentIntent:
    id: str
    merchant_id: str
    amount: Money
    status: PaymentStatus
    capture_method: str  # automatic | automatic_async (kept as given; same as automatic) | manual
    created: int  # unix seconds
    payment_method: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    amount_capturable: int = 0
    amount_received: int = 0
    amount_refunded: int = 0
    last_payment_error: dict[str, Any] | None = None
    next_action: dict[str, Any] | None = None
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    latest_charge: str | None = None
    psp: str | None = None
    psp_reference: str | None = None
    pending_attempt_id: str | None = None
    version: int = 0
    # what Stripe integrations send and read back (domain/intent_fields.py has the rules)
    client_secret: str | None = None  # pi_…_secret_…: lets a publishable key read/confirm
    confirmation_method: str = "automatic"
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    # with a customer: a successful payment saves its card to them (services/saved_cards.py)
    setup_future_usage: str | None = None
    shipping: dict[str, Any] | None = None
    automatic_payment_methods: dict[str, Any] | None = None
    payment_method_options: dict[str, Any] | None = None
    customer: str | None = None  # cus_…: whom the intent charges (a saved card is theirs)
    # the ledger hold now open when it is not the charge's own (None: ``latest_charge``):
    # posted again under the attempt of a capture the scheme refused after it was booked
    hold_ref: str | None = None
    # the merchant settles in another currency: the conversion fixed at confirmation
    # (domain/fx.py); None: the payment settles in its own currency
    fx: Conversion | None = None

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def captures_on_authorization(self) -> bool:
        """Automatic capture, unless ``payment_method_options[card][capture_method]`` (the
        only payment method kassa takes is a card) says manual."""
        card = (self.payment_method_options or {}).get("card") or {}
        return (card.get("capture_method") or self.capture_method) != "manual"

    # --- commands: each validates, applies the transition and returns nothing -------------

    def attach_payment_method(self, payment_method: str) -> None:
        if self.status not in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION):
            raise IllegalTransition(self.status.value, S.REQUIRES_CONFIRMATION.value,
                                    action="update the payment method of")
        self.payment_method = payment_method
        transition(self, S.REQUIRES_CONFIRMATION)

    def start_authorization(self, attempt_id: str, psp: str) -> None:
        """Confirm: move to processing with a new authorisation attempt."""
        if self.status not in CONFIRMABLE:
            # processing is also reachable from requires_capture (capture/void in flight);
            # confirming an authorised payment must not start a second authorisation
            raise IllegalTransition(self.status.value, S.PROCESSING.value, action="confirm")
        if self.payment_method is None:
            raise InvalidRequest(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                param="payment_method", code="payment_intent_unexpected_state")
        transition(self, S.PROCESSING, action="confirm")
        self.pending_attempt_id = attempt_id
        self.latest_charge = attempt_id
        self.psp = psp
        self.last_payment_error = None
        self.next_action = None

    # Outcome commands apply the transition first, so a refused one changes nothing.

    def authorization_succeeded(self, *, psp_reference: str, captured: bool,
                                received: int | None = None) -> None:
        """``received``: what the PSP captured when it is not the whole amount."""
        if captured:
            transition(self, S.SUCCEEDED)
            self.amount_received = self.amount.minor if received is None else received
            self.amount_capturable = 0
        else:
            transition(self, S.REQUIRES_CAPTURE)
            self.amount_capturable = self.amount.minor
        self.psp_reference = psp_reference
        self.pending_attempt_id = None
        self.next_action = None

    def authorization_requires_action(self, *, psp_reference: str, next_action: dict[str, Any]
                                      ) -> None:
        transition(self, S.REQUIRES_ACTION)
        self.psp_reference = psp_reference
        self.next_action = next_action
        # the attempt stays open: re-confirming continues it after authentication

    def authorization_failed(self, error: dict[str, Any]) -> None:
        transition(self, S.REQUIRES_PAYMENT_METHOD)
        self.pending_attempt_id = None
        self.next_action = None
        self.last_payment_error = error
        self.payment_method = None

    def start_capture(self, attempt_id: str, amount_to_capture: int | None) -> int:
        if self.status is not S.REQUIRES_CAPTURE:
            raise IllegalTransition(self.status.value, S.PROCESSING.value, action="capture")
        amount = self.amount_capturable if amount_to_capture is None else amount_to_capture
        validate_amount(amount, param="amount_to_capture")
        if amount > self.amount_capturable:
            raise AmountError(
                f"The amount to capture ({amount}) exceeds the amount capturable "
                f"({self.amount_capturable}).",
                param="amount_to_capture", code="amount_too_large")
        transition(self, S.PROCESSING, action="capture")
        self.pending_attempt_id = attempt_id
        return amount

    def capture_succeeded(self, amount: int) -> None:
        if not 0 < amount <= self.amount_capturable:
            raise AmountError(f"captured {amount} but only {self.amount_capturable} was "
                              "capturable", param="amount_to_capture")
        transition(self, S.SUCCEEDED)
        self.pending_attempt_id = None
        self.amount_received = amount
        self.amount_capturable = 0

    def capture_failed(self) -> None:
        """The PSP refused the capture: the authorisation is still held."""
        transition(self, S.REQUIRES_CAPTURE)
        self.pending_attempt_id = None

    def capture_reversed(self, *, hold_ref: str | None, now: int) -> None:
        """The PSP (the scheme) rejected a capture kassa recorded as succeeded: nothing was
        collected. With ``hold_ref`` (the authorisation is still valid) the whole
        authorisation is held again under that ledger hold and may be captured anew;
        without, the payment is ``canceled`` (``automatic``)."""
        if self.status is not S.SUCCEEDED or self.amount_refunded:
            raise IllegalTransition(self.status.value, S.REQUIRES_CAPTURE.value,
                                    action="reverse the capture of")
        self.amount_received = 0
        if hold_ref is not None:
            transition(self, S.REQUIRES_CAPTURE, table=REVERSALS)
            self.amount_capturable = self.amount.minor
            self.hold_ref = hold_ref
        else:
            transition(self, S.CANCELED, table=REVERSALS)
            self.amount_capturable = 0
            self.canceled_at = now
            self.cancellation_reason = AUTOMATIC

    def cancel(self, *, reason: str | None, now: int) -> bool:
        """Cancel; returns True when a PSP void is needed (funds are held, or an
        authentication is open at the PSP and could still complete)."""
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise InvalidRequest(f"Invalid cancellation_reason: {reason}",
                                 param="cancellation_reason")
        if self.status not in CANCELABLE:
            raise IllegalTransition(self.status.value, S.CANCELED.value, action="cancel")
        self.cancellation_reason = reason
        if self.status in (S.REQUIRES_CAPTURE, S.REQUIRES_ACTION):
            return True
        transition(self, S.CANCELED, action="cancel")
        self.canceled_at = now
        self.next_action = None
        return False

    def start_void(self, attempt_id: str) -> None:
        """A void is in flight: of the held funds, or of an open authentication."""
        if self.status not in (S.REQUIRES_CAPTURE, S.REQUIRES_ACTION):
            raise IllegalTransition(self.status.value, S.PROCESSING.value, action="cancel")
        transition(self, S.PROCESSING, action="cancel")
        self.pending_attempt_id = attempt_id

    def void_succeeded(self, *, now: int) -> None:
        transition(self, S.CANCELED)
        self.pending_attempt_id = None
        self.amount_capturable = 0
        self.canceled_at = now
        self.next_action = None

    def authentication_expired(self, error: dict[str, Any]) -> None:
        """3-D Secure was not completed in time and the PSP voided it: a new payment
        method (or a new confirmation) is needed, as Stripe does."""
        transition(self, S.REQUIRES_PAYMENT_METHOD)
        self.pending_attempt_id = None
        self.next_action = None
        self.last_payment_error = error
        self.cancellation_reason = None

    def void_failed(self, *, was: PaymentStatus) -> None:
        """The PSP refused the void: back where the payment was."""
        transition(self, was)
        # an open authentication is the payment's pending attempt again
        self.pending_attempt_id = self.latest_charge if was is S.REQUIRES_ACTION else None
        self.cancellation_reason = None

    def reserve_refund(self, amount: int | None) -> int:
        """Validate a refund and count it against the captured amount before the PSP call."""
        if self.status is not S.SUCCEEDED:
            raise InvalidRequest(
                f"This PaymentIntent has a status of {self.status.value}; only succeeded "
                "payments can be refunded.", param="payment_intent",
                code="charge_not_refundable" if self.status is not S.CANCELED
                else "charge_already_refunded")
        refundable = self.amount_received - self.amount_refunded
        if refundable <= 0:
            raise InvalidRequest("Charge has already been refunded.", param="payment_intent",
                                 code="charge_already_refunded")
        value = refundable if amount is None else amount
        validate_amount(value)
        if value > refundable:
            raise AmountError(
                f"Refund amount ({value}) is greater than unrefunded amount on charge "
                f"({refundable}).", param="amount", code="amount_too_large")
        self.amount_refunded += value
        return value

    def release_refund(self, amount: int) -> None:
        """A refund failed at the PSP: its amount is refundable again."""
        if not 0 < amount <= self.amount_refunded:
            raise AmountError(f"cannot release {amount}: only {self.amount_refunded} is "
                              "counted as refunded", param="amount")
        self.amount_refunded -= amount


class RefundStatus(StrEnum):
    PENDING = "pending"  # sent to the PSP, outcome not final
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


REFUND_TRANSITIONS: frozenset[tuple[RefundStatus, RefundStatus]] = frozenset(
    {
        (RefundStatus.PENDING, RefundStatus.SUCCEEDED),
        (RefundStatus.PENDING, RefundStatus.FAILED),
        (RefundStatus.PENDING, RefundStatus.CANCELED),
        (RefundStatus.SUCCEEDED, RefundStatus.FAILED),  # a PSP may fail a refund later
    }
)
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


@dataclass(slots=True)
class Refund:
    id: str
    merchant_id: str
    payment_intent_id: str
    amount: Money
    status: RefundStatus
    created: int
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    failure_reason: str | None = None
    psp_reference: str | None = None
    attempt_id: str | None = None
    version: int = 0

    def move(self, dst: RefundStatus) -> None:
        if (self.status, dst) not in REFUND_TRANSITIONS:
            raise IllegalTransition(self.status.value, dst.value, obj="Refund")
        self.status = dst

    def cancel(self) -> NoReturn:
        """Stripe cancels only refunds in ``requires_action`` (waiting for the customer's
        details, before any money moves). A kassa card refund goes to the PSP as it is
        created, so it never waits there: a pending one may already be paid out by the PSP,
        and canceling it here would leave the books short of what the PSP sent back."""
        raise IllegalTransition(self.status.value, RefundStatus.CANCELED.value,
                                action="cancel", obj="Refund")
