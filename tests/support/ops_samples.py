"""One of each kassa_apply operation (db/ops.py), as a unit of work that PostgreSQL accepts:
a payment, its attempt and charge, its capture on the ledger with its balance transaction, a
refund that failed, an event and an idempotency key answered for the attempt."""

from __future__ import annotations

import dataclasses

from kassa.db import ops
from kassa.domain import ledger
from kassa.domain.charges import CardFacts, ChargeDetails
from kassa.domain.money import Money
from kassa.domain.payments import (
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    Refund,
    RefundStatus,
)

NOW = 1_700_000_000


def entities(mid: str, tag: str) -> tuple[PaymentIntent, Attempt, ChargeDetails, Refund]:
    p = PaymentIntent(id=f"pi_{tag}", merchant_id=mid, amount=Money(1000, "usd"),
                      status=PaymentStatus.REQUIRES_PAYMENT_METHOD, capture_method="automatic",
                      created=NOW, metadata={"order": "7"}, client_secret=f"pi_{tag}_secret_x")
    a = Attempt(id=f"att_{tag}", merchant_id=mid, payment_intent_id=p.id,
                operation=Operation.AUTHORIZE, psp="simulator", status=AttemptStatus.STARTED,
                amount=p.amount, capture=True, idempotency_key=f"key_{tag}")
    c = ChargeDetails(id=a.id, merchant_id=mid, payment_intent_id=p.id,
                      payment_method="pm_card_visa",
                      card=CardFacts("visa", "4242", 12, 2034, "credit", "US"),
                      receipt_token=f"rcpt_{tag}_{tag}_{tag}", created=NOW,
                      billing_details={"name": "Jenny Rosen"})
    r = Refund(id=f"re_{tag}", merchant_id=mid, payment_intent_id=p.id,
               amount=Money(300, "usd"), status=RefundStatus.PENDING, created=NOW,
               reason="requested_by_customer", metadata={"why": "test"})
    return p, a, c, r


def one_of_each(mid: str, tag: str) -> list[ops.Op]:
    """Every op class once (InsertBalanceTransaction carried by its PostLedger), in an
    order the database accepts as one unit of work."""
    p, a, c, r = entities(mid, tag)
    unit: list[ops.Op] = [
        ops.ClaimIdempotency(merchant_id=mid, key=f"key_{tag}", fingerprint=b"\x01" * 32,
                             method="POST", path="/v1/payment_intents", request_id=f"req_{tag}"),
        ops.InsertPayment.of(p),
        ops.InsertAttempt.of(a, check_after_s=30.0),
        ops.InsertCharge(c),
        ops.SetIdempotencyResource(merchant_id=mid, key=f"key_{tag}", resource_id=p.id),
        ops.MarkAttemptUnknown(a.id),
        # a try the PSP never received, closed so the payment can go elsewhere
        ops.InsertAttempt.of(dataclasses.replace(a, id=f"{a.id}_fo"), check_after_s=30.0),
        ops.FailOverAttempt(f"{a.id}_fo", {"code": "psp_unavailable"}, 30.0),
    ]
    a.status, a.psp_reference = AttemptStatus.SUCCEEDED, f"ch_sim_{tag}"
    unit.append(ops.FinishAttempt.of(a, expected=(AttemptStatus.UNKNOWN,)))
    p.status, p.amount_received, p.latest_charge, p.psp = (
        PaymentStatus.SUCCEEDED, 1000, a.id, "simulator")
    unit.append(ops.UpdatePayment.of(p))
    fee = Money(59, "usd")
    unit.append(ops.PostLedger(
        ledger.capture(merchant_id=mid, psp="simulator", gross=p.amount, fee=fee, held=None),
        merchant_id=mid, source_id=p.id,
        balance_transaction=ops.InsertBalanceTransaction(
            id=f"txn_{tag}", merchant_id=mid, amount=1000, fee=59, currency="usd",
            type="charge", source=a.id, status="pending", available_on=NOW + 86400,
            created=NOW, description=None)))
    unit.append(ops.InsertRefund.of(r))
    r.move(RefundStatus.FAILED)
    r.failure_reason = "unknown"
    unit.append(ops.UpdateRefund.of(r))
    unit.append(ops.InsertEvents([{"id": f"evt_{tag}", "merchant_id": mid,
                                   "type": "payment_intent.succeeded", "object_id": p.id,
                                   "data": {"id": f"evt_{tag}", "object": "event"},
                                   "created": NOW}]))
    unit.append(ops.CompleteIdempotency(merchant_id=mid, key=f"key_{tag}", status=200,
                                        body=b'{"id": "pi"}', for_attempt=a.id))
    # no such card: the database attaches nothing (services/saved_cards.py)
    unit.append(ops.SavePaymentMethod(payment_method_id=f"pm_{tag}", merchant_id=mid,
                                      customer=f"cus_{tag}"))
    unit.append(ops.UsePaymentMethod(payment_method_id=f"pm_{tag}", merchant_id=mid,
                                     payment_intent_id=p.id))
    return unit
