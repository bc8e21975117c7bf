"""``Acquirer``, the simulated acquirer's books whole: payments (with the disputes a
captured card may bring) and refunds over the shared ``Books``, and the settling of
operations answered ``pending``."""

from __future__ import annotations

from kassa.psp.simulator.books.core import persisted
from kassa.psp.simulator.books.errors import Conflict, InvalidRequest, NotFound
from kassa.psp.simulator.books.payments import Payments
from kassa.psp.simulator.books.records import Body
from kassa.psp.simulator.books.refunds import Refunds


class Acquirer(Payments, Refunds):
    """Authorizations, operations by idempotency key, disputes and counters, in memory
    (and in the store, when it has one)."""

    __slots__ = ()

    @persisted
    def settle(self, idempotency_key: str, outcome: str) -> Body:
        """Settle a pending capture or refund (``succeeded``/``failed``), bounce a
        succeeded refund (``failed``), or have the scheme reject a capture that succeeded
        (``failed``: Adyen's CAPTURE_FAILED after CAPTURE); reported by webhook. Returns the
        new result."""
        if outcome not in ("succeeded", "failed"):
            raise InvalidRequest("outcome must be succeeded or failed", "outcome")
        op = self.operations.get(idempotency_key)
        if op is None or op.current is None:
            raise NotFound(idempotency_key)
        auth = self.authorizations[op.authorization_id]
        self.touch(auth=auth.id, key=idempotency_key)
        current = op.current
        if op.kind == "capture" and current["status"] == "pending":
            self._settle_capture(auth, current, outcome)
        elif op.kind == "capture" and current["status"] == "captured" and outcome == "failed":
            self._reject_capture(auth, current)
        elif op.kind == "refund" and current["status"] in ("pending", "refunded"):
            self._settle_refund(auth, current, outcome)
        else:
            raise Conflict(f"This {op.kind} is {current['status']}; nothing to settle.")
        return dict(current)

    @persisted
    def expire(self, authorization_id: str) -> Body:
        """The authorisation reaches the end of its validity uncaptured and the acquirer
        lets it lapse (Adyen cancels it automatically, Stripe cancels the PaymentIntent):
        nothing of it can be captured any more, and a capture still pending fails
        ``authorization_expired`` (reported by webhook). Returns the authorization."""
        auth = self.authorizations.get(authorization_id)
        if auth is None:
            raise NotFound(authorization_id)
        if auth.status != "authorized":
            raise Conflict(f"This authorization is {auth.status}; only an uncaptured one "
                           "expires.")
        self.touch(auth=auth.id)
        if auth.pending_capture is not None:
            op = self.operations[auth.pending_capture]
            assert op.current is not None
            self.touch(auth=auth.id, key=auth.pending_capture)
            auth.pending_capture = None
            op.current.update(status="failed", failure_code="authorization_expired",
                              message="The authorization expired before it was captured.")
            self.counts["failed_operations"] += 1
            self._emit("capture.failed", dict(op.current))
        auth.status = "expired"
        auth.decline_code = "authorization_expired"
        auth.message = "The authorization expired before it was captured."
        return auth.view()
