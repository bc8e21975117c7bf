"""Row mappers: the columns kassa reads of a payment, an attempt and a refund, and the
domain objects built from them."""

from __future__ import annotations

import asyncpg

from kassa.db.ops import PI_FIELDS as _PI_FIELDS
from kassa.domain.fx import Conversion
from kassa.domain.money import Money
from kassa.domain.payments import (
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    Refund,
    RefundStatus,
    VoidPurpose,
)

PI_COLUMNS = (
    "id, merchant_id, amount, currency, status, capture_method, payment_method, description,"
    " metadata, amount_capturable, amount_received, amount_refunded, last_payment_error,"
    " next_action, canceled_at, cancellation_reason, latest_charge, psp, psp_reference,"
    " pending_attempt_id, created, version, client_secret, confirmation_method, receipt_email,"
    " statement_descriptor, statement_descriptor_suffix, setup_future_usage, shipping,"
    " automatic_payment_methods, payment_method_options, customer, hold_ref,"
    " settlement_currency, exchange_rate, fx_rate_id"
)


def payment_from_row(row: asyncpg.Record) -> PaymentIntent:
    return PaymentIntent(
        id=row["id"], merchant_id=row["merchant_id"],
        amount=Money(row["amount"], row["currency"]), status=PaymentStatus(row["status"]),
        capture_method=row["capture_method"], created=row["created"],
        payment_method=row["payment_method"], description=row["description"],
        metadata=row["metadata"], amount_capturable=row["amount_capturable"],
        amount_received=row["amount_received"], amount_refunded=row["amount_refunded"],
        last_payment_error=row["last_payment_error"], next_action=row["next_action"],
        canceled_at=row["canceled_at"], cancellation_reason=row["cancellation_reason"],
        latest_charge=row["latest_charge"], psp=row["psp"], psp_reference=row["psp_reference"],
        pending_attempt_id=row["pending_attempt_id"], version=row["version"],
        hold_ref=row["hold_ref"],
        **{name: row[name] for name in _PI_FIELDS},
        fx=None if row["exchange_rate"] is None else Conversion(
            row["currency"], row["settlement_currency"], row["exchange_rate"],
            row["fx_rate_id"]),
    )


def attempt_from_row(row: asyncpg.Record) -> Attempt:
    return Attempt(
        id=row["id"], merchant_id=row["merchant_id"], payment_intent_id=row["payment_intent_id"],
        operation=Operation(row["operation"]), psp=row["psp"],
        status=AttemptStatus(row["status"]), amount=Money(row["amount"], row["currency"]),
        capture=row["capture"], refund_id=row["refund_id"], psp_reference=row["psp_reference"],
        error=row["error"], return_url=row["return_url"], off_session=row["off_session"],
        idempotency_key=row["idempotency_key"],
        purpose=None if row["purpose"] is None else VoidPurpose(row["purpose"]),
        tries=row["tries"], created=int(row["created_at"].timestamp()),
        operation_reference=row["operation_reference"])


ATTEMPT_COLUMNS = ("id, merchant_id, payment_intent_id, operation, psp, status, amount,"
                    " currency, capture, refund_id, psp_reference, error, return_url,"
                    " off_session, idempotency_key, purpose, tries, created_at,"
                    " operation_reference")


REFUND_COLUMNS = ("id, merchant_id, payment_intent_id, amount, currency, status, reason,"
                   " metadata, failure_reason, psp_reference, attempt_id, created, version")


def refund_from_row(row: asyncpg.Record) -> Refund:
    return Refund(
        id=row["id"], merchant_id=row["merchant_id"], payment_intent_id=row["payment_intent_id"],
        amount=Money(row["amount"], row["currency"]), status=RefundStatus(row["status"]),
        created=row["created"], reason=row["reason"], metadata=row["metadata"],
        failure_reason=row["failure_reason"], psp_reference=row["psp_reference"],
        attempt_id=row["attempt_id"], version=row["version"])
