"""Refunds of captured money: several partial ones up to the captured amount, none of a
charged-back authorization; answered at once or ``pending``, and a ``refund_fails`` card's
refund bounces after it succeeded."""

from __future__ import annotations

from kassa.psp.simulator.books.core import Books, fingerprint, persisted
from kassa.psp.simulator.books.errors import Conflict
from kassa.psp.simulator.books.records import CHARGEBACK, Authorization, Body


class Refunds(Books):
    __slots__ = ()

    @persisted
    def refund(self, *, idempotency_key: str, authorization_id: str, amount: int | None,
               currency: str | None, pending: bool = False) -> Body:
        """``pending``: answer `pending` and settle later; a ``refund_fails`` card's refund
        succeeds now and bounces later (both through ``on_pending``)."""
        request = fingerprint("refund", authorization_id, amount, currency)
        replay = self._replay(idempotency_key, request)
        if replay is not None:
            return replay
        auth = self._authorization(authorization_id, currency)
        refundable = auth.amount_captured - auth.amount_refunded
        amount = refundable if amount is None else amount
        dispute = self.disputes.get(auth.id)
        failure: tuple[str, str] | None = None
        if auth.status != "captured":
            failure = ("not_captured", f"Only a captured authorization can be refunded "
                                       f"(this one is {auth.status}).")
        elif dispute is not None and dispute.status in CHARGEBACK:
            failure = ("charge_disputed", "This charge has been charged back; it cannot be "
                                          "refunded as well.")
        elif refundable == 0:
            failure = ("already_refunded", "This authorization has been fully refunded.")
        elif amount > refundable:
            failure = ("amount_too_large",
                       f"Refund amount {amount} exceeds the refundable {refundable}.")
        if failure is None:
            auth.amount_refunded += amount  # reserved now; given back if it fails
            if not pending:
                self.counts["refunds"] += 1
        status = "pending" if failure is None and pending else "refunded"
        response = self._record(idempotency_key, "refund", request, auth.id,
                                self._result("refund", status, idempotency_key, auth, amount,
                                             failure))
        if failure is None and status == "refunded":
            self._emit("refund.succeeded", response)
        if failure is None and (pending or auth.refund_fails) and self.on_pending is not None:
            self.on_pending(idempotency_key, "failed" if auth.refund_fails else "")
        return response

    def _settle_refund(self, auth: Authorization, current: Body, outcome: str) -> None:
        """Settle the pending or succeeded refund ``current`` (a succeeded one can only
        bounce)."""
        if current["status"] == "refunded" and outcome == "succeeded":
            raise Conflict("This refund has already succeeded.")
        if outcome == "succeeded":
            self.counts["refunds"] += 1
            current.update(status="refunded")
        else:
            if current["status"] == "refunded":
                self.counts["refunds"] -= 1
            auth.amount_refunded -= int(current["amount"])
            current.update(status="failed", failure_code="refund_failed",
                           message="The refund could not be delivered to the card.")
            self.counts["failed_operations"] += 1
        self._emit(f"refund.{outcome}", dict(current))
