"""The simulated acquirer's books: authorizations and idempotent operations, in memory.

Every method here is synchronous on purpose: the simulator runs on one event loop, so no
other request can run between the idempotency-key check and the write that follows it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kassa.psp.simulator.cards import behaviour_of, brand_of

Body = dict[str, Any]


class InvalidRequest(Exception):
    """The request is malformed (answered 400, not stored under its key)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class IdempotencyConflict(Exception):
    """The key was already used for a different request (answered 409)."""


class AuthorizationNotFound(Exception):
    """No authorization has this id (answered 404, not stored under its key)."""


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
    fingerprint: tuple[Any, ...]
    authorization_id: str
    response: Body  # the body answered the first time, replayed verbatim


@dataclass(slots=True)
class Acquirer:
    """In-memory authorizations, operations by idempotency key, and counters."""

    authorizations: dict[str, Authorization] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.authorizations.clear()
        self.operations.clear()
        self.counts.clear()

    # -- idempotency ---------------------------------------------------------------

    def _replay(self, key: str, fingerprint: tuple[Any, ...]) -> Body | None:
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

    def _record(self, key: str, kind: str, fingerprint: tuple[Any, ...], auth_id: str,
                response: Body) -> Body:
        self.operations[key] = Operation(kind, fingerprint, auth_id, response)
        return response

    # -- operations ------------------------------------------------------------------

    def authorize(self, *, idempotency_key: str, amount: int, currency: str, number: str,
                  exp_month: int, exp_year: int, cvc: str | None, capture: bool,
                  merchant_id: str, description: str | None, return_url: str | None,
                  base_url: Callable[[], str]) -> Body:
        """``base_url`` is called only when the card needs 3DS, to build ``action_url``."""
        # The card is fingerprinted by hash so the PAN is never kept beside the key.
        card_hash = hashlib.sha256(f"{number}|{exp_month}|{exp_year}|{cvc}".encode()).digest()
        fingerprint = ("authorize", amount, currency, card_hash, capture, merchant_id,
                       description, return_url)
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
        return self._record(idempotency_key, "authorize", fingerprint, auth.id, auth.view())

    def capture(self, *, idempotency_key: str, authorization_id: str, amount: int | None,
                currency: str | None) -> Body:
        fingerprint = ("capture", authorization_id, amount, currency)
        replay = self._replay(idempotency_key, fingerprint)
        if replay is not None:
            return replay
        auth = self._authorization(authorization_id, currency)
        amount = auth.amount if amount is None else amount
        failure: tuple[str, str] | None = None
        if auth.status == "captured":
            failure = ("already_captured", "This authorization has already been captured.")
        elif auth.status != "authorized":
            failure = _not_in_state(auth.status)
        elif amount > auth.amount:
            failure = ("amount_too_large",
                       f"Capture amount {amount} exceeds the authorized {auth.amount}.")
        if failure is None:
            auth.status = "captured"
            auth.amount_captured = amount  # one capture; the remainder is released
            self.counts["captures"] += 1
        return self._record(idempotency_key, "capture", fingerprint, auth.id,
                            self._result("capture", "captured", idempotency_key, auth, amount,
                                         failure))

    def void(self, *, idempotency_key: str, authorization_id: str) -> Body:
        fingerprint = ("void", authorization_id)
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
        elif auth.status not in ("authorized", "requires_action"):
            failure = _not_in_state(auth.status)
        if failure is None:
            auth.status = "voided"
            self.counts["voids"] += 1
        return self._record(idempotency_key, "void", fingerprint, auth.id,
                            self._result("void", "voided", idempotency_key, auth, auth.amount,
                                         failure))

    def refund(self, *, idempotency_key: str, authorization_id: str, amount: int | None,
               currency: str | None) -> Body:
        fingerprint = ("refund", authorization_id, amount, currency)
        replay = self._replay(idempotency_key, fingerprint)
        if replay is not None:
            return replay
        auth = self._authorization(authorization_id, currency)
        refundable = auth.amount_captured - auth.amount_refunded
        amount = refundable if amount is None else amount
        failure: tuple[str, str] | None = None
        if auth.status != "captured":
            failure = ("not_captured", f"Only a captured authorization can be refunded "
                                       f"(this one is {auth.status}).")
        elif refundable == 0:
            failure = ("already_refunded", "This authorization has been fully refunded.")
        elif amount > refundable:
            failure = ("amount_too_large",
                       f"Refund amount {amount} exceeds the refundable {refundable}.")
        if failure is None:
            auth.amount_refunded += amount
            self.counts["refunds"] += 1
        return self._record(idempotency_key, "refund", fingerprint, auth.id,
                            self._result("refund", "refunded", idempotency_key, auth, amount,
                                         failure))

    def complete_authentication(self, authorization_id: str, *, succeeded: bool
                                ) -> Authorization:
        """Finish 3DS; an authorization no longer awaiting it is left as it is."""
        auth = self.authorizations.get(authorization_id)
        if auth is None:
            raise AuthorizationNotFound(authorization_id)
        if auth.status != "requires_action":
            return auth
        if not succeeded:
            auth.status = "declined"
            auth.decline_code = "authentication_failed"
            auth.message = "The customer failed 3D Secure authentication."
        elif auth.capture_requested:
            auth.status = "captured"
            auth.amount_captured = auth.amount
        else:
            auth.status = "authorized"
        return auth

    # -- reads -----------------------------------------------------------------------

    def operation_view(self, idempotency_key: str) -> Body | None:
        """An operation's result; for an authorization, its *current* state."""
        op = self.operations.get(idempotency_key)
        if op is None:
            return None
        if op.kind == "authorize":
            return self.authorizations[op.authorization_id].view()
        return op.response

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
