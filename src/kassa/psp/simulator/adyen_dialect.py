"""The simulator's Adyen dialect over the SAME books as its own API: what an Adyen payment,
modification, redirect or dispute is in the books, Adyen's idempotency store, and the
relay that turns the books' events about Adyen payments into signed standard
notifications (everything else still goes out as the simulator's own events).

Its records live in the books' operation table under ``adyen-…`` keys (kind ``adyen``),
so they are written with the call that made them and survive a restart like the books.
Idempotency-Key answers are kept for as long as the books are (Adyen keeps them at least
7 days; the dialect never forgets one), so a repeat of ``/payments`` with the same key is
answered from the store — which is how kassa's adapter resolves an attempt whose answer
was lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from kassa.psp.simulator import adyen_shapes as shapes
from kassa.psp.simulator.books import Acquirer, Body, Operation
from kassa.psp.simulator.chaos import Chaos
from kassa.psp.simulator.webhooks import WebhookSender

KIND = "adyen"
# the books' dispute statuses as Adyen's dispute notifications
DISPUTE_CREATED = {"warning_needs_response": "NOTIFICATION_OF_CHARGEBACK",
                   "needs_response": "CHARGEBACK"}


@dataclass(slots=True)
class Answer:
    status: int
    body: Body


def fingerprint(path: str, body: Body) -> str:
    return hashlib.sha256(path.encode() + b"\n" + orjson.dumps(
        body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AdyenDialect:
    """Adyen's view of the books; ``install`` puts its relay between books and sender."""

    def __init__(self, acquirer: Acquirer, chaos: Chaos, webhooks: WebhookSender) -> None:
        self.acquirer = acquirer
        self.chaos = chaos
        self.webhooks = webhooks
        self._native = acquirer.notify
        # the request fields of a /payments call now in the books (synchronous): an event
        # the books send about its new authorization (a dispute of a card captured at
        # once) is already about an Adyen payment
        self.opening: Body | None = None

    def install(self) -> None:
        self._native = self.acquirer.notify
        self.acquirer.notify = self.relay

    # -- records ---------------------------------------------------------------------

    def _get(self, key: str) -> Body | None:
        op = self.acquirer.operations.get(key)
        return op.response if op is not None and op.kind == KIND else None

    def _put(self, key: str, auth_id: str, record: Body, fp: str = "") -> None:
        self.acquirer.operations[key] = Operation(KIND, fp, auth_id, record, None)
        self.acquirer.touch(key=key)

    def _drop(self, key: str) -> None:
        self.acquirer.operations.pop(key, None)

    def save(self) -> None:
        self.acquirer.save()

    def payment(self, psp: str) -> Body | None:
        return self._get(f"adyen-payment:{psp}")

    def payment_of(self, auth_id: str) -> Body | None:
        return self.payment(shapes.psp_reference(auth_id))

    def put_payment(self, auth_id: str, record: Body) -> None:
        self._put(f"adyen-payment:{record['pspReference']}", auth_id, record)

    def adopt(self, auth_id: str, template: Body) -> Body:
        record = {**template, "pspReference": shapes.psp_reference(auth_id)}
        self.put_payment(auth_id, record)
        return record

    def authorization(self, psp: str) -> Body:
        """The books' authorization behind an Adyen payment, as it is now."""
        op = self.acquirer.operations[f"adyen-payment:{psp}"]
        return self.acquirer.authorizations[op.authorization_id].view()

    def redirect_token(self, auth_id: str, psp: str) -> str:
        """The ``redirectResult`` the shopper brings back (opaque to the merchant)."""
        token = shapes.psp_reference(f"{auth_id}:redirect") + psp
        self.put_redirect(auth_id, token, psp)
        return token

    def modification(self, psp: str) -> Body | None:
        return self._get(f"adyen-mod:{psp}")

    def put_modification(self, auth_id: str, record: Body) -> None:
        self._put(f"adyen-mod:{record['pspReference']}", auth_id, record)

    def drop_modification(self, psp: str) -> None:
        self._drop(f"adyen-mod:{psp}")

    def redirect(self, token: str) -> Body | None:
        return self._get(f"adyen-redirect:{token}")

    def put_redirect(self, auth_id: str, token: str, psp: str) -> None:
        self._put(f"adyen-redirect:{token}", auth_id, {"pspReference": psp})

    def dispute(self, psp: str) -> Body | None:
        return self._get(f"adyen-dispute:{psp}")

    def answer(self, account: str, key: str, fp: str) -> Answer | None:
        """The stored answer to ``key``; AdyenError 422 when it was used for another body."""
        op = self.acquirer.operations.get(f"adyen-idem:{account}:{key}")
        if op is None:
            return None
        if op.fingerprint != fp:
            self.acquirer.counts["idempotency_conflicts"] += 1
            raise shapes.AdyenError(422, "704", "request already processed or in progress")
        self.acquirer.counts["replays"] += 1
        return Answer(int(op.response["status"]), dict(op.response["body"]))

    def keep_answer(self, account: str, key: str, fp: str, auth_id: str,
                    answer: Answer) -> None:
        self._put(f"adyen-idem:{account}:{key}", auth_id,
                  {"status": answer.status, "body": answer.body}, fp)

    # -- notifications ---------------------------------------------------------------

    def notify(self, event_code: str, *, success: bool, record: Body, psp: str,
               merchant_reference: str | None, amount: Body | None,
               original: str | None = None, reason: str | None = None,
               additional: dict[str, str] | None = None) -> None:
        item = shapes.notification_item(
            event_code=event_code, success=success, psp=psp,
            merchant_account=record["merchantAccount"], merchant_reference=merchant_reference,
            amount=amount, original=original, reason=reason, additional=additional,
            hex_key=self.chaos.config.adyen_hmac_key)
        self.webhooks.record_adyen(event_code, shapes.notification([item]))

    def authorisation(self, auth: Body, record: Body) -> None:
        """AUTHORISATION for a payment whose outcome is final (not waiting on 3DS)."""
        if auth["status"] == "requires_action":
            return
        success = auth["status"] in ("authorized", "captured")
        additional: dict[str, str] = {f"metadata.{k}": v
                                      for k, v in (record.get("metadata") or {}).items()}
        if record.get("captureDelayHours") is not None:
            additional["captureDelayHours"] = str(record["captureDelayHours"])
        reason = None
        if not success:
            code, reason, raw = shapes.REFUSALS.get(auth.get("decline_code") or "",
                                                    shapes.REFUSALS["generic_decline"])
            additional.update(refusalReasonRaw=raw, refusalReasonCode=code)
        self.notify("AUTHORISATION", success=success, record=record,
                    psp=record["pspReference"], merchant_reference=record["reference"],
                    amount=shapes.amount_view(auth["amount"], auth["currency"]),
                    reason=reason, additional=additional)

    def relay(self, type: str, obj: Body, sequence: int) -> object:
        """The books' event: an Adyen notification when it is about an Adyen payment."""
        auth_id = obj["id"] if obj.get("object") == "authorization" else obj.get("authorization")
        record = self.payment_of(str(auth_id)) if auth_id else None
        if record is None and auth_id and self.opening is not None:
            record = self.adopt(str(auth_id), self.opening)
        if record is None:
            return self._native(type, obj, sequence) if self._native is not None else None
        if type == "authorization.updated":
            self.authorisation(obj, record)
        elif obj.get("object") in ("capture", "refund"):
            self._modification_event(type, obj, record)
        elif obj.get("object") == "dispute":
            self._dispute_event(type, obj, record)
        return None

    def _modification_event(self, type: str, obj: Body, record: Body) -> None:
        mod = self.modification(shapes.psp_reference(str(obj["idempotency_key"])))
        if mod is None:
            return  # made through the simulator's own API on an Adyen payment: not ours
        code = {"capture.succeeded": "CAPTURE", "capture.failed": "CAPTURE_FAILED",
                "refund.succeeded": "REFUND", "refund.failed": "REFUND_FAILED"}[type]
        self.notify(code, success=True, record=record, psp=mod["pspReference"],
                    original=record["pspReference"], merchant_reference=mod.get("reference"),
                    amount=mod.get("amount"),
                    reason=obj.get("message") if type.endswith("failed") else None)

    def _dispute_event(self, type: str, obj: Body, record: Body) -> None:
        status = str(obj["status"])
        psp = shapes.psp_reference(str(obj["id"]))
        self._put(f"adyen-dispute:{psp}", str(obj["authorization"]),
                  {"pspReference": psp, "disputeId": obj["id"],
                   "paymentPspReference": record["pspReference"]})
        code: str | None = None
        if type == "dispute.created":
            code = DISPUTE_CREATED.get(status)
        elif type == "dispute.updated" and status == "needs_response":
            code = "CHARGEBACK"  # an inquiry became a chargeback
        elif type == "dispute.closed" and status == "won":
            code = "CHARGEBACK_REVERSED"
        elif type == "dispute.closed" and status == "lost" and obj.get("evidence"):
            code = "SECOND_CHARGEBACK"  # defended and lost
        if code is None:
            return  # Adyen sends nothing for this step (e.g. defense submitted, accepted)
        additional = {"chargebackReasonCode": _REASON_CODES.get(str(obj["reason"]), "10.4"),
                      "disputeStatus": _DISPUTE_STATUS.get(status, "Undefended"),
                      "defensePeriodEndsAt": shapes.event_date(obj["evidence_due_by"])}
        self.notify(code, success=True, record=record, psp=psp,
                    original=record["pspReference"], merchant_reference=record["reference"],
                    amount=shapes.amount_view(obj["amount"], obj["currency"]),
                    reason=str(obj["reason"]), additional=additional)

    def summary(self, psp: str) -> Body | None:
        """The books' record of an Adyen payment (for tests counting money at both ends)."""
        record = self.payment(psp)
        if record is None:
            return None
        op = self.acquirer.operations[f"adyen-payment:{psp}"]
        auth = self.acquirer.authorizations[op.authorization_id]
        return {**auth.summary(), "pspReference": psp, "reference": record["reference"]}


# the books' dispute reasons as card-network reason codes (Visa's), and Adyen's statuses
_REASON_CODES: dict[str, str] = {"fraudulent": "10.4", "product_not_received": "13.1",
                                 "duplicate": "12.6.1", "credit_not_processed": "13.6"}
_DISPUTE_STATUS: dict[str, str] = {"warning_needs_response": "Undefended",
                                   "needs_response": "Undefended", "won": "Won",
                                   "lost": "Lost", "under_review": "Pending"}
