"""Disputes: a cardholder's chargeback (or inquiry) of a captured authorization, the
merchant's evidence or acceptance, and the issuer's decision (a ``/_sim`` control)."""

from __future__ import annotations

import secrets
import time

from kassa.psp.simulator.books.core import Books, persisted
from kassa.psp.simulator.books.errors import Conflict, InvalidRequest, NotFound
from kassa.psp.simulator.books.records import (
    EVIDENCE_DAYS,
    OPEN_DISPUTE,
    Authorization,
    Body,
    SimDispute,
)


class Disputes(Books):
    __slots__ = ()

    def _after_capture(self, auth: Authorization) -> None:
        """A card that is disputed once captured opens its dispute now."""
        if auth.dispute_reason is not None and auth.id not in self.disputes:
            self.open_dispute(auth.id, reason=auth.dispute_reason, inquiry=auth.inquiry)

    @persisted
    def open_dispute(self, authorization_id: str, *, reason: str = "fraudulent",
                     amount: int | None = None, inquiry: bool = False) -> Body:
        auth = self._authorization(authorization_id, None)
        if auth.id in self.disputes:
            raise Conflict("This authorization is already disputed.")
        disputable = auth.amount_captured - auth.amount_refunded
        amount = disputable if amount is None else amount
        if auth.status != "captured" or not 0 < amount <= disputable:
            raise Conflict(f"Only captured, unrefunded money can be disputed "
                           f"(disputable: {disputable}).")
        now = int(time.time())
        dispute = SimDispute(
            id=f"sdp_{secrets.token_hex(12)}", authorization_id=auth.id,
            authorization_key=auth.idempotency_key, amount=amount, currency=auth.currency,
            reason=reason, status="warning_needs_response" if inquiry else "needs_response",
            created=now, evidence_due_by=now + EVIDENCE_DAYS * 86400)
        self.disputes[auth.id] = dispute
        self.touch(dispute=auth.id)
        self.counts["disputes"] += 1
        self._emit("dispute.created", dispute.view())
        return dispute.view()

    def dispute(self, dispute_id: str) -> SimDispute:
        for dispute in self.disputes.values():
            if dispute.id == dispute_id:
                return dispute
        raise NotFound(dispute_id)

    def dispute_of(self, authorization_id: str) -> SimDispute:
        dispute = self.disputes.get(authorization_id)
        if dispute is None:
            raise NotFound(authorization_id)
        return dispute

    def _move_dispute(self, dispute: SimDispute, status: str) -> Body:
        dispute.status = status
        self.touch(dispute=dispute.authorization_id)
        closed = status in ("won", "lost", "warning_closed")
        if closed:
            dispute.decided = int(time.time())
        self._emit("dispute.closed" if closed else "dispute.updated", dispute.view())
        return dispute.view()

    @persisted
    def close_dispute(self, authorization_id: str, outcome: str) -> Body:
        """The issuer decides (test control)."""
        if outcome not in ("won", "lost", "warning_closed"):
            raise InvalidRequest("outcome must be won, lost or warning_closed", "outcome")
        dispute = self.dispute_of(authorization_id)
        if dispute.status not in OPEN_DISPUTE:
            raise Conflict(f"The dispute is already {dispute.status}.")
        if outcome == "warning_closed" and not dispute.status.startswith("warning_"):
            raise Conflict("Only an inquiry closes as warning_closed.")
        return self._move_dispute(dispute, outcome)

    @persisted
    def escalate_dispute(self, authorization_id: str) -> Body:
        """An inquiry becomes a chargeback (test control)."""
        dispute = self.dispute_of(authorization_id)
        if not dispute.status.startswith("warning_") or dispute.status == "warning_closed":
            raise Conflict(f"Only an open inquiry can escalate; this one is {dispute.status}.")
        dispute.submitted = False
        return self._move_dispute(dispute, "needs_response")

    @persisted
    def submit_evidence(self, dispute_id: str, evidence: dict[str, str], *, submit: bool
                        ) -> Body:
        """Store (and with ``submit`` send) evidence. Like Stripe's test mode, submitted
        ``uncategorized_text`` of ``winning_evidence``/``losing_evidence`` decides at once."""
        dispute = self.dispute(dispute_id)
        if dispute.submitted or dispute.status not in ("warning_needs_response",
                                                       "needs_response"):
            if submit and dispute.submitted and evidence == dispute.evidence:
                return dispute.view()  # a repeated submission: already done
            raise Conflict(f"Evidence can no longer be changed (the dispute is "
                           f"{dispute.status}).")
        dispute.evidence = dict(evidence)
        self.touch(dispute=dispute.authorization_id)
        if not submit:
            return dispute.view()
        dispute.submitted = True
        inquiry = dispute.status.startswith("warning_")
        view = self._move_dispute(dispute, "warning_under_review" if inquiry
                                  else "under_review")
        decided = {"winning_evidence": "won", "losing_evidence": "lost"}.get(
            evidence.get("uncategorized_text", ""))
        if decided is not None:
            view = self._move_dispute(dispute, decided)
        return view

    @persisted
    def accept_dispute(self, dispute_id: str) -> Body:
        """The merchant concedes: the dispute is lost."""
        dispute = self.dispute(dispute_id)
        if dispute.status == "lost":
            return dispute.view()
        if dispute.status not in ("warning_needs_response", "needs_response"):
            raise Conflict(f"The dispute is {dispute.status}; it can no longer be accepted.")
        return self._move_dispute(dispute, "lost")
