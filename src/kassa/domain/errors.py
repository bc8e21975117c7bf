"""Domain errors: what went wrong in payments language, with no HTTP codes.

    KassaError
     ├── InvalidRequest            a parameter is missing, malformed or out of range
     │    └── AmountError          amount too small, too large, above what may be captured/refunded
     ├── NotFound                  no such object for this merchant
     ├── IllegalTransition         the state machine does not allow this move
     ├── ConcurrentModification    another request changed the object first (retryable)
     ├── IdempotencyError          key reused with different parameters
     ├── IdempotencyInFlight       key's first request is still running
     └── CardError                 the PSP declined the card (payment still exists)
"""

from __future__ import annotations


class KassaError(Exception):
    code: str = "kassa_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(KassaError):
    code = "parameter_invalid"


class AmountError(InvalidRequest):
    code = "amount_invalid"


class NotFound(KassaError):
    code = "resource_missing"


class IllegalTransition(KassaError):
    code = "payment_intent_unexpected_state"

    def __init__(self, src: str, dst: str, *, action: str | None = None,
                 obj: str = "PaymentIntent"):
        what = action or f"transition to {dst}"
        super().__init__(
            f"You cannot {what} this {obj} because it has a status of {src}.",
        )
        self.src = src
        self.dst = dst


class ConcurrentModification(KassaError):
    code = "lock_timeout"


class IdempotencyError(KassaError):
    code = "idempotency_key_in_use"


class IdempotencyInFlight(KassaError):
    code = "idempotency_key_in_use"


class CardError(KassaError):
    code = "card_declined"

    def __init__(self, message: str, *, decline_code: str | None, code: str = "card_declined",
                 payment_intent: dict[str, object] | None = None, charge: str | None = None,
                 payment_method: dict[str, object] | None = None):
        super().__init__(message, code=code)
        self.decline_code = decline_code
        self.payment_intent = payment_intent
        self.charge = charge  # the declined authorisation attempt (ch_…)
        self.payment_method = payment_method  # the card declined, as Stripe's object

    @classmethod
    def from_error(cls, err: dict[str, object], *, payment_intent: dict[str, object] | None
                   ) -> CardError:
        """From a recorded decline (an attempt's error, an intent's last_payment_error)."""
        pm = err.get("payment_method")
        charge = err.get("charge")
        return cls(str(err.get("message") or "Your card was declined."),
                   decline_code=None if err.get("decline_code") is None
                   else str(err["decline_code"]),
                   code=str(err.get("code") or "card_declined"), payment_intent=payment_intent,
                   charge=None if charge is None else str(charge),
                   payment_method=pm if isinstance(pm, dict) else None)
