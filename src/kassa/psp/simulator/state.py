"""The simulated acquirer's books: authorizations, idempotent operations and disputes, in
memory.

Every method here is synchronous on purpose: the simulator runs on one event loop, so no
other request can run between the idempotency-key check and the write that follows it.
Asynchronous outcomes (a pending capture or refund settling, a refund bouncing, a dispute
opening or closing, a 3-D Secure authentication completed) are reported through
``notify(type, object, sequence)``, which the app turns into signed webhooks; ``on_pending(key,
outcome)`` asks the app to settle an operation later.

With a ``store`` (store.py) every mutating call writes what it changed before it returns,
and ``Acquirer.open`` reads it all back: the books survive a restart, as a PSP's do.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kassa.psp.simulator.cards import behaviour_of, brand_of
from kassa.psp.simulator.store import SqliteStore

Body = dict[str, Any]
Notify = Callable[[str, Body, int], object]  # (type, object, its per-object sequence)
OnPending = Callable[[str, str], None]

EVIDENCE_DAYS = 7  # how long a merchant has to answer a dispute

F = TypeVar("F", bound=Callable[..., Any])


def _fingerprint(*parts: object) -> str:
    """A request's identity under its idempotency key, as a string that survives storage."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def persisted(method: F) -> F:
    """Write what the call changed to the store before its answer leaves (also when it
    raised after changing something)."""

    @functools.wraps(method)
    def wrapper(self: Acquirer, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.save()

    return wrapper  # type: ignore[return-value]


class InvalidRequest(Exception):
    """The request is malformed (answered 400, not stored under its key)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class IdempotencyConflict(Exception):
    """The key was already used for a different request (answered 409)."""


class AuthorizationNotFound(Exception):
    """No authorization has this id (answered 404, not stored under its key)."""


class NotFound(Exception):
    """No dispute or operation has this id (answered 404)."""


class Conflict(Exception):
    """The object is not in a state that allows this (answered 409)."""


@dataclass(slots=True)
class Authorization:
    id: str
    idempotency_key: str
    merchant_id: str
    amount: int
    currency: str
    capture_requested: bool
    brand: str
    last4: str
    status: str  # requires_action | authorized | captured | declined | voided
    created: int
    amount_captured: int = 0
    amount_refunded: int = 0
    decline_code: str | None = None
    message: str | None = None
    action_url: str | None = None
    return_url: str | None = None
    description: str | None = None
    pending_capture: str | None = None  # key of a capture answered `pending`
    dispute_reason: str | None = None  # the card is disputed once captured
    inquiry: bool = False
    refund_fails: bool = False

    def view(self) -> Body:
        return {
            "id": self.id,
            "object": "authorization",
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "capture": self.capture_requested,
            "merchant_id": self.merchant_id,
            "brand": self.brand,
            "last4": self.last4,
            "description": self.description,
            "decline_code": self.decline_code,
            "message": self.message,
            "action_url": self.action_url,
            "created": self.created,
        }


@dataclass(slots=True)
class Operation:
    """One request received under an idempotency key and the answer it got."""

    kind: str  # authorize | capture | void | refund
    fingerprint: str
    authorization_id: str
    response: Body  # the body answered the first time, replayed verbatim
    current: Body | None = None  # capture/refund: the result now (a pending one settles)


@dataclass(slots=True)
class SimDispute:
    """A cardholder's dispute of one captured authorization."""

    id: str
    authorization_id: str
    authorization_key: str  # the merchant's idempotency key of the authorization
    amount: int
    currency: str
    reason: str
    status: str  # Stripe's dispute statuses
    created: int
    evidence_due_by: int
    evidence: dict[str, str] = field(default_factory=dict)
    submitted: bool = False

    def view(self) -> Body:
        return {
            "id": self.id,
            "object": "dispute",
            "authorization": self.authorization_id,
            "authorization_idempotency_key": self.authorization_key,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "status": self.status,
            "evidence": dict(self.evidence),
            "evidence_due_by": self.evidence_due_by,
            "created": self.created,
        }


OPEN_DISPUTE = frozenset({"warning_needs_response", "warning_under_review", "needs_response",
                          "under_review"})
CHARGEBACK = frozenset({"needs_response", "under_review", "lost"})  # refunds refused


@dataclass(slots=True)
class Acquirer:
    """In-memory authorizations, operations by idempotency key, and counters."""

    authorizations: dict[str, Authorization] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    disputes: dict[str, SimDispute] = field(default_factory=dict)  # by authorization id
    counts: Counter[str] = field(default_factory=Counter)
    notify: Notify | None = None
    on_pending: OnPending | None = None
    store: SqliteStore | None = None
    # what the current call changed, written by save()
    _dirty_auths: set[str] = field(default_factory=set)
    _dirty_ops: set[str] = field(default_factory=set)
    _dirty_disputes: set[str] = field(default_factory=set)
    sequences: Counter[str] = field(default_factory=Counter)  # events per object
    _dirty_sequences: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, store: SqliteStore | None) -> Acquirer:
        """An acquirer with the books ``store`` kept (empty without one)."""
        acquirer = cls(store=store)
        if store is None:
            return acquirer
        saved = store.load()
        for a in saved["authorizations"]:
            acquirer.authorizations[a["id"]] = Authorization(**a)
        for key, o in saved["operations"].items():
            acquirer.operations[key] = Operation(**o)
        for d in saved["disputes"]:
            acquirer.disputes[d["authorization_id"]] = SimDispute(**d)
        acquirer.counts.update(saved["counts"])
        acquirer.sequences.update(saved["sequences"])
        return acquirer

    def touch(self, *, auth: str | None = None, key: str | None = None,
              dispute: str | None = None) -> None:
        """Mark an object changed by this call (by authorization id / operation key)."""
        if auth is not None:
            self._dirty_auths.add(auth)
        if key is not None:
            self._dirty_ops.add(key)
        if dispute is not None:
            self._dirty_disputes.add(dispute)

    def save(self) -> None:
        if self.store is not None and (self._dirty_auths or self._dirty_ops
                                       or self._dirty_disputes or self._dirty_sequences):
            self.store.save(
                authorizations=[self.authorizations[i] for i in self._dirty_auths
                                if i in self.authorizations],
                operations=[(k, self.operations[k]) for k in self._dirty_ops
                            if k in self.operations],
                disputes=[self.disputes[i] for i in self._dirty_disputes
                          if i in self.disputes],
                counts=dict(self.counts),
                sequences={k: self.sequences[k] for k in self._dirty_sequences})
        self._dirty_auths.clear()
        self._dirty_ops.clear()
        self._dirty_disputes.clear()
        self._dirty_sequences.clear()

    def reset(self) -> None:
        self.authorizations.clear()
        self.operations.clear()
        self.disputes.clear()
        self.counts.clear()
        self.sequences.clear()
        if self.store is not None:
            self.store.clear()

    def _emit(self, type: str, obj: Body) -> None:
        # per-object event sequence, kept with the books: after a restart the next event
        # about an old object must still be newer than the ones kassa applied
        object_id = str(obj["id"])
        self.sequences[object_id] += 1
        self._dirty_sequences.add(object_id)
        if self.notify is not None:
            self.notify(type, obj, self.sequences[object_id])

    # -- idempotency ---------------------------------------------------------------

    def _replay(self, key: str, fingerprint: str) -> Body | None:
        op = self.operations.get(key)
        if op is None:
            return None
        if op.fingerprint != fingerprint:
            self.counts["idempotency_conflicts"] += 1
            raise IdempotencyConflict(
                f"Idempotency key {key!r} was already used for a different {op.kind} request."
            )
        self.counts["replays"] += 1
        return op.response

    def _record(self, key: str, kind: str, fingerprint: str, auth_id: str,
                response: Body) -> Body:
        current = dict(response) if kind in ("capture", "refund") else None
        self.operations[key] = Operation(kind, fingerprint, auth_id, response, current)
        self.touch(auth=auth_id, key=key)
        return response

    # -- operations ------------------------------------------------------------------

    @persisted
    def authorize(self, *, idempotency_key: str, amount: int, currency: str, number: str,
                  exp_month: int, exp_year: int, cvc: str | None, capture: bool,
                  merchant_id: str, description: str | None, return_url: str | None,
                  base_url: Callable[[], str]) -> Body:
        """``base_url`` is called only when the card needs 3DS, to build ``action_url``."""
        # The card is fingerprinted by hash so the PAN is never kept beside the key.
        card_hash = hashlib.sha256(f"{number}|{exp_month}|{exp_year}|{cvc}".encode()).digest()
        fingerprint = _fingerprint("authorize", amount, currency, card_hash, capture,
                                   merchant_id, description, return_url)
        replay = self._replay(idempotency_key, fingerprint)
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
        elif behaviour.requires_3ds:
            auth.status = "requires_action"
            auth.action_url = f"{base_url()}/3ds/{auth.id}"
        elif capture:
            auth.status = "captured"
            auth.amount_captured = amount
        self.authorizations[auth.id] = auth
        self.counts["authorizations"] += 1
        response = self._record(idempotency_key, "authorize", fingerprint, auth.id, auth.view())
        if auth.status == "captured":
            self._after_capture(auth)
        return response

    @persisted
    def capture(self, *, idempotency_key: str, authorization_id: str, amount: int | None,
                currency: str | None, pending: bool = False,
                validity_s: float | None = None) -> Body:
        """``pending``: accept the capture now and settle it later (``settle``)."""
        fingerprint = _fingerprint("capture", authorization_id, amount, currency)
        replay = self._replay(idempotency_key, fingerprint)
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
            response = self._record(idempotency_key, "capture", fingerprint, auth.id,
                                    self._result("capture", "pending", idempotency_key, auth,
                                                 amount, None))
            if self.on_pending is not None:
                self.on_pending(idempotency_key, "")
            return response
        if failure is None:
            auth.status = "captured"
            auth.amount_captured = amount  # one capture; the remainder is released
            self.counts["captures"] += 1
        response = self._record(idempotency_key, "capture", fingerprint, auth.id,
                                self._result("capture", "captured", idempotency_key, auth,
                                             amount, failure))
        if failure is None:
            self._emit("capture.succeeded", response)
            self._after_capture(auth)
        return response

    @persisted
    def void(self, *, idempotency_key: str, authorization_id: str) -> Body:
        fingerprint = _fingerprint("void", authorization_id)
        replay = self._replay(idempotency_key, fingerprint)
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
        return self._record(idempotency_key, "void", fingerprint, auth.id,
                            self._result("void", "voided", idempotency_key, auth, auth.amount,
                                         failure))

    @persisted
    def refund(self, *, idempotency_key: str, authorization_id: str, amount: int | None,
               currency: str | None, pending: bool = False) -> Body:
        """``pending``: answer `pending` and settle later; a ``refund_fails`` card's refund
        succeeds now and bounces later (both through ``on_pending``)."""
        fingerprint = _fingerprint("refund", authorization_id, amount, currency)
        replay = self._replay(idempotency_key, fingerprint)
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
        response = self._record(idempotency_key, "refund", fingerprint, auth.id,
                                self._result("refund", status, idempotency_key, auth, amount,
                                             failure))
        if failure is None and status == "refunded":
            self._emit("refund.succeeded", response)
        if failure is None and (pending or auth.refund_fails) and self.on_pending is not None:
            self.on_pending(idempotency_key, "failed" if auth.refund_fails else "")
        return response

    @persisted
    def settle(self, idempotency_key: str, outcome: str) -> Body:
        """Settle a pending capture or refund (``succeeded``/``failed``), or bounce a
        succeeded refund (``failed``); reported by webhook. Returns the new result."""
        if outcome not in ("succeeded", "failed"):
            raise InvalidRequest("outcome must be succeeded or failed", "outcome")
        op = self.operations.get(idempotency_key)
        if op is None or op.current is None:
            raise NotFound(idempotency_key)
        auth = self.authorizations[op.authorization_id]
        self.touch(auth=auth.id, key=idempotency_key)
        current = op.current
        amount = int(current["amount"])
        if op.kind == "capture" and current["status"] == "pending":
            auth.pending_capture = None
            if outcome == "succeeded":
                auth.status = "captured"
                auth.amount_captured = amount
                self.counts["captures"] += 1
                current.update(status="captured")
            else:
                current.update(status="failed", failure_code="capture_failed",
                               message="The issuer refused the capture.")
                self.counts["failed_operations"] += 1
            self._emit(f"capture.{outcome}", dict(current))
            if outcome == "succeeded":
                self._after_capture(auth)
        elif op.kind == "refund" and current["status"] in ("pending", "refunded"):
            if current["status"] == "refunded" and outcome == "succeeded":
                raise Conflict("This refund has already succeeded.")
            if outcome == "succeeded":
                self.counts["refunds"] += 1
                current.update(status="refunded")
            else:
                if current["status"] == "refunded":
                    self.counts["refunds"] -= 1
                auth.amount_refunded -= amount
                current.update(status="failed", failure_code="refund_failed",
                               message="The refund could not be delivered to the card.")
                self.counts["failed_operations"] += 1
            self._emit(f"refund.{outcome}", dict(current))
        else:
            raise Conflict(f"This {op.kind} is {current['status']}; nothing to settle.")
        return dict(current)

    # -- disputes --------------------------------------------------------------------

    def _after_capture(self, auth: Authorization) -> None:
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

    # -- reads -----------------------------------------------------------------------

    def operation_view(self, idempotency_key: str) -> Body | None:
        """An operation's result; for an authorization, its *current* state, for a capture
        or refund its current result (a pending one settles, a refund may bounce)."""
        op = self.operations.get(idempotency_key)
        if op is None:
            return None
        if op.kind == "authorize":
            return self.authorizations[op.authorization_id].view()
        return dict(op.current) if op.current is not None else op.response

    def authorization_list(self) -> list[Body]:
        return [
            {
                "id": a.id,
                "idempotency_key": a.idempotency_key,
                "amount": a.amount,
                "currency": a.currency,
                "status": a.status,
                "amount_captured": a.amount_captured,
                "amount_refunded": a.amount_refunded,
                "merchant_id": a.merchant_id,
            }
            for a in self.authorizations.values()
        ]

    def stats(self) -> Body:
        by_status = Counter(a.status for a in self.authorizations.values())
        return {
            "authorizations": self.counts["authorizations"],
            "authorizations_by_status": dict(by_status),
            "captures": self.counts["captures"],
            "voids": self.counts["voids"],
            "refunds": self.counts["refunds"],
            "failed_operations": self.counts["failed_operations"],
            "replays": self.counts["replays"],
            "idempotency_conflicts": self.counts["idempotency_conflicts"],
            "operations": len(self.operations),
            "disputes": self.counts["disputes"],
        }

    # -- helpers ---------------------------------------------------------------------

    def _authorization(self, authorization_id: str, currency: str | None) -> Authorization:
        auth = self.authorizations.get(authorization_id)
        if auth is None:
            raise AuthorizationNotFound(authorization_id)
        if currency is not None and currency != auth.currency:
            raise InvalidRequest(
                f"Currency {currency!r} does not match the authorization's {auth.currency!r}.",
                "currency",
            )
        return auth

    def _result(self, kind: str, success_status: str, key: str, auth: Authorization,
                amount: int, failure: tuple[str, str] | None) -> Body:
        if failure is not None:
            self.counts["failed_operations"] += 1
        return {
            "id": f"simop_{secrets.token_hex(12)}",
            "object": kind,
            "authorization": auth.id,
            "idempotency_key": key,
            "status": success_status if failure is None else "failed",
            "amount": amount,
            "currency": auth.currency,
            "failure_code": None if failure is None else failure[0],
            "message": None if failure is None else failure[1],
            "created": int(time.time()),
        }


def _not_in_state(status: str) -> tuple[str, str]:
    code = {
        "voided": "authorization_voided",
        "declined": "authorization_declined",
        "requires_action": "authentication_required",
    }.get(status, "invalid_state")
    return code, f"The authorization is {status}."
