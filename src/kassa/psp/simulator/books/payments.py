"""Payments: authorizing a card (declined, 3-D Secure, or captured at once), completing
3-D Secure, capturing (at once or ``pending``), and voiding."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from kassa.psp.simulator.books.core import fingerprint, persisted
from kassa.psp.simulator.books.disputes import Disputes
from kassa.psp.simulator.books.errors import AuthorizationNotFound
from kassa.psp.simulator.books.records import Authorization, Body
from kassa.psp.simulator.cards import behaviour_of, brand_of


class Payments(Disputes):
    """Builds on disputes: a card that is disputed once captured opens its dispute when its
    capture succeeds."""

    __slots__ = ()

    @persisted
    def authorize(self, *, idempotency_key: str, amount: int, currency: str, number: str,
                  exp_month: int, exp_year: int, cvc: str | None, capture: bool,
                  merchant_id: str, description: str | None, return_url: str | None,
                  base_url: Callable[[], str], off_session: bool = False) -> Body:
        """``base_url`` is called only when the card needs 3DS, to build ``action_url``.
        ``off_session``: the cardholder is not there, so no 3DS: a card that always asks for
        it is declined ``authentication_required``; one set up before is charged without it
        (kassa charges off-session only cards saved to a customer)."""
        # The card is fingerprinted by hash so the PAN is never kept beside the key.
        card_hash = hashlib.sha256(f"{number}|{exp_month}|{exp_year}|{cvc}".encode()).digest()
        request = fingerprint("authorize", amount, currency, card_hash, capture,
                              merchant_id, description, return_url,
                              *(("off_session",) if off_session else ()))
        replay = self._replay(idempotency_key, request)
        if replay is not None:
            return replay

        now = time.gmtime()
        behaviour = behaviour_of(number, exp_month, exp_year, today=(now.tm_year, now.tm_mon))
        auth = Authorization(
            id=f"sim_{secrets.token_hex(12)}",
            idempotency_key=idempotency_key,
            merchant_id=merchant_id,
            amount=amount,
            currency=currency,
            capture_requested=capture,
            brand=brand_of(number),
            last4=number[-4:],
            status="authorized",
            created=int(time.time()),
            return_url=return_url,
            description=description,
            dispute_reason=behaviour.dispute_reason,
            inquiry=behaviour.inquiry,
            refund_fails=behaviour.refund_fails,
        )
        if behaviour.decline_code is not None:
            auth.status = "declined"
            auth.decline_code = behaviour.decline_code
            auth.message = behaviour.message
        elif behaviour.requires_3ds and off_session and behaviour.authenticate_always:
            auth.status = "declined"
            auth.decline_code = "authentication_required"
            auth.message = "Your card was declined. This transaction requires authentication."
        elif behaviour.requires_3ds and not off_session:
            auth.status = "requires_action"
            auth.action_url = f"{base_url()}/3ds/{auth.id}"
        elif capture:
            auth.status = "captured"
            auth.amount_captured = amount
        self.authorizations[auth.id] = auth
        self.counts["authorizations"] += 1
        response = self._record(idempotency_key, "authorize", request, auth.id, auth.view())
        if auth.status == "captured":
            self._after_capture(auth)
        return response

    @persisted
    def complete_authentication(self, authorization_id: str, *, succeeded: bool
                                ) -> Authorization:
        """Finish 3DS; an authorization no longer awaiting it is left as it is."""
        auth = self.authorizations.get(authorization_id)
        if auth is None:
            raise AuthorizationNotFound(authorization_id)
        if auth.status != "requires_action":
            return auth
        self.touch(auth=auth.id)
        if not succeeded:
            auth.status = "declined"
            auth.decline_code = "authentication_failed"
            auth.message = "The customer failed 3D Secure authentication."
        elif auth.capture_requested:
            auth.status = "captured"
            auth.amount_captured = auth.amount
            self.counts["captures"] += 1
        else:
            auth.status = "authorized"
        # the merchant's PSP learns the outcome by webhook, as from a real acquirer
        self._emit("authorization.updated", auth.view())
        if auth.status == "captured":
            self._after_capture(auth)
        return auth

    @persisted
    def capture(self, *, idempotency_key: str, authorization_id: str, amount: int | None,
                currency: str | None, pending: bool = False,
                validity_s: float | None = None) -> Body:
        """``pending``: accept the capture now and settle it later (``settle``)."""
        request = fingerprint("capture", authorization_id, amount, currency)
        replay = self._replay(idempotency_key, request)
        if replay is not None:
            return replay
        auth = self._authorization(authorization_id, currency)
        amount = auth.amount if amount is None else amount
        failure: tuple[str, str] | None = None
        if auth.status == "captured":
            failure = ("already_captured", "This authorization has already been captured.")
        elif auth.pending_capture is not None:
            failure = ("capture_pending", "A capture of this authorization is pending.")
        elif auth.status != "authorized":
            failure = _not_in_state(auth.status)
        elif validity_s is not None and time.time() > auth.created + validity_s:
            failure = ("authorization_expired",
                       "The authorization expired before it was captured.")
        elif amount > auth.amount:
            failure = ("amount_too_large",
                       f"Capture amount {amount} exceeds the authorized {auth.amount}.")
        if failure is None and pending:
            auth.pending_capture = idempotency_key
            response = self._record(idempotency_key, "capture", request, auth.id,
                                    self._result("capture", "pending", idempotency_key, auth,
                                                 amount, None))
            if self.on_pending is not None:
                self.on_pending(idempotency_key, "")
            return response
        if failure is None:
            auth.status = "captured"
            auth.amount_captured = amount  # one capture; the remainder is released
            self.counts["captures"] += 1
        response = self._record(idempotency_key, "capture", request, auth.id,
                                self._result("capture", "captured", idempotency_key, auth,
                                             amount, failure))
        if failure is None:
            self._emit("capture.succeeded", response)
            self._after_capture(auth)
        return response

    def _settle_capture(self, auth: Authorization, current: Body, outcome: str) -> None:
        """Settle the pending capture ``current``."""
        auth.pending_capture = None
        if outcome == "succeeded":
            auth.status = "captured"
            auth.amount_captured = int(current["amount"])
            self.counts["captures"] += 1
            current.update(status="captured")
        else:
            current.update(status="failed", failure_code="capture_failed",
                           message="The issuer refused the capture.")
            self.counts["failed_operations"] += 1
        self._emit(f"capture.{outcome}", dict(current))
        if outcome == "succeeded":
            self._after_capture(auth)

    def _reject_capture(self, auth: Authorization, current: Body) -> None:
        """The scheme rejects a capture that succeeded: nothing is collected, and the
        authorisation is held again (capturable anew while it is valid)."""
        auth.status = "authorized"
        auth.amount_captured = 0
        self.counts["captures"] -= 1
        current.update(status="failed", failure_code="capture_failed",
                       message="The card scheme rejected the capture.")
        self.counts["failed_operations"] += 1
        self._emit("capture.failed", dict(current))

    @persisted
    def void(self, *, idempotency_key: str, authorization_id: str) -> Body:
        request = fingerprint("void", authorization_id)
        replay = self._replay(idempotency_key, request)
        if replay is not None:
            return replay
        auth = self._authorization(authorization_id, None)
        failure: tuple[str, str] | None = None
        if auth.status == "voided":
            failure = ("already_voided", "This authorization has already been voided.")
        elif auth.status == "captured":
            failure = ("already_captured",
                       "A captured authorization cannot be voided; refund it instead.")
        elif auth.pending_capture is not None:
            failure = ("capture_pending", "A capture of this authorization is pending.")
        elif auth.status not in ("authorized", "requires_action"):
            failure = _not_in_state(auth.status)
        if failure is None:
            auth.status = "voided"
            self.counts["voids"] += 1
        return self._record(idempotency_key, "void", request, auth.id,
                            self._result("void", "voided", idempotency_key, auth, auth.amount,
                                         failure))


def _not_in_state(status: str) -> tuple[str, str]:
    code = {
        "voided": "authorization_voided",
        "expired": "authorization_expired",
        "declined": "authorization_declined",
        "requires_action": "authentication_required",
    }.get(status, "invalid_state")
    return code, f"The authorization is {status}."
