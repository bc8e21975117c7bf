"""The PSPAdapter for Stripe: server-side PaymentIntents through the official SDK (async).

- authorize: one ``PaymentIntent.create(confirm=true)`` with the card as a PaymentMethod
  (a Stripe test token ``pm_card_*`` and a PSP token ``<account>:pm_…`` of this account
  pass through; other cards become a PaymentMethod first), ``capture_method`` manual or
  automatic, kassa's ids in ``metadata``.
- capture (full or partial, once: Stripe releases the rest), cancel, refunds (several).
- Every mutating call carries ``Idempotency-Key`` = kassa's attempt id (derived keys for
  the PaymentMethod a raw card needs), so a repeat is answered with the first answer.
- lookup (recovery): an authorisation by its PaymentIntent id when kassa has it, else by
  kassa's attempt id in the metadata of recent PaymentIntents (list, which is strongly
  consistent, unlike search); a capture or cancel by the PaymentIntent's status; a refund
  by its metadata among the PaymentIntent's refunds. Not found → UnknownOperation: the
  saga repeats the call with the same key, which Stripe answers from its idempotency store.

Statuses and errors are mapped in mapping.py, webhooks in webhooks.py; what localstripe
does differently is in README.md.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import stripe

from kassa.domain.money import Money
from kassa.domain.payments import Operation
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    Outcome,
    PSPEvent,
    PSPOutcomeUnknown,
    PSPResult,
    UnknownOperation,
)
from kassa.psp.stripe import mapping as m
from kassa.psp.stripe import webhooks
from kassa.psp.stripe.settings import IDEMPOTENCY_KEY_LIFETIME_S, StripeSettings
from kassa.psp.stripe.transport import InjectedHTTPXClient

T = TypeVar("T")
TEST_TOKEN_PREFIX = "pm_card_"  # Stripe's test PaymentMethods: charged as they are
REFUND_PREFIX = "re_"
# a PaymentIntent made for an attempt is created after the attempt; clocks differ a little
CLOCK_SKEW_S = 300


class StripeAdapter:
    """One Stripe account, reached through ``client`` (kassa's shared pool)."""

    def __init__(self, client: httpx.AsyncClient, settings: StripeSettings, *,
                 name: str = "stripe", timeout: float = 10.0) -> None:
        assert settings.secret_key is not None
        self.name = name
        self._localstripe = settings.localstripe
        self._lookup_pages = settings.lookup_pages
        self._webhook_secrets = tuple(settings.webhook_secrets())
        self._webhook_tolerance_s = settings.webhook_tolerance_seconds
        self._stripe = stripe.StripeClient(
            settings.secret_key.get_secret_value(),
            base_addresses={"api": settings.api_base.rstrip("/")},
            http_client=InjectedHTTPXClient(client, timeout=timeout),
            max_network_retries=0)  # kassa's saga and recovery decide what is repeated
        self._v1 = self._stripe.v1

    # ------------------------------------------------------------------ payments

    async def authorize(self, request: AuthorizeRequest) -> PSPResult:
        key = request.idempotency_key
        try:
            payment_method = await self._payment_method(request)
            params: dict[str, Any] = {
                "amount": request.amount.minor,
                "currency": request.amount.currency,
                "payment_method": payment_method,
                "payment_method_types": ["card"],
                "confirm": True,
                "capture_method": "automatic" if request.capture else "manual",
                "metadata": self._metadata(key, request.payment_id, request.merchant_id),
            }
            if request.off_session:  # Stripe declines a card that asks for 3DS itself
                params["off_session"] = True
            if not self._localstripe:  # parameters localstripe refuses
                if request.description is not None:
                    params["description"] = request.description
                if request.return_url is not None:
                    params["return_url"] = request.return_url
            pi = await self._v1.payment_intents.create_async(
                _sdk(params), {"idempotency_key": key})
        except stripe.CardError as exc:
            return m.declined(exc)
        except stripe.StripeError as exc:
            raise m.classify(exc, f"{self.name} authorize (key {key!r})") from exc
        return m.payment_intent_result(pi)

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult:
        where = f"{self.name} capture (key {idempotency_key!r})"
        try:
            pi = await self._v1.payment_intents.capture_async(
                psp_reference, {"amount_to_capture": amount.minor},
                {"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            if _gone(exc):  # Stripe canceled the uncaptured intent (expired after 7 days)
                return PSPResult(Outcome.FAILED, psp_reference,
                                 decline_code="authorization_expired",
                                 message=m.redact(exc.user_message))
            raise m.classify(exc, where) from exc
        except stripe.StripeError as exc:
            raise m.classify(exc, where) from exc
        return m.capture_result(pi)

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult:
        where = f"{self.name} cancel (key {idempotency_key!r})"
        try:
            pi = await self._v1.payment_intents.cancel_async(
                psp_reference, None, {"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            if _gone(exc):  # canceled already: as good as done
                return PSPResult(Outcome.VOIDED, psp_reference, raw_status="canceled")
            raise m.classify(exc, where) from exc
        except stripe.StripeError as exc:
            raise m.classify(exc, where) from exc
        return m.void_result(pi)

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult:
        params: dict[str, Any] = {"payment_intent": psp_reference, "amount": amount.minor,
                                  "metadata": {m.ATTEMPT_KEY: idempotency_key}}
        refund = await self._call(
            f"refund (key {idempotency_key!r})",
            lambda: self._v1.refunds.create_async(
                _sdk(params), {"idempotency_key": idempotency_key}))
        return m.refund_result(refund)

    # ------------------------------------------------------------------ recovery

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        where = f"lookup of {attempt.operation.value} {attempt.idempotency_key!r}"
        if attempt.operation is Operation.AUTHORIZE:
            if attempt.psp_reference:
                return m.payment_intent_result(await self._intent(attempt.psp_reference,
                                                                  where))
            pi = await self._find_intent(attempt)
            if pi is None:
                raise UnknownOperation(f"{self.name}: no PaymentIntent for attempt "
                                       f"{attempt.idempotency_key}")
            return m.payment_intent_result(pi)
        if not attempt.psp_reference:
            raise UnknownOperation(f"{self.name}: {where} without a PaymentIntent")
        reference = attempt.psp_reference
        if reference.startswith(REFUND_PREFIX):
            # a refund answered pending carries the refund's own id from then on
            return m.refund_result(await self._call(
                where, lambda: self._v1.refunds.retrieve_async(reference)))
        pi = await self._intent(reference, where)
        status = m.field(pi, "status")
        if attempt.operation is Operation.CAPTURE:
            if status == "succeeded":
                return m.capture_result(pi)
            if status == "canceled":
                return PSPResult(Outcome.FAILED, attempt.psp_reference,
                                 decline_code="authorization_expired", raw_status=status)
            if status == "requires_capture":  # not captured yet: the capture is repeated
                raise UnknownOperation(f"{self.name}: {attempt.psp_reference} uncaptured")
            raise PSPOutcomeUnknown(f"{self.name}: {where}: the intent is {status!r}")
        if attempt.operation is Operation.VOID:
            if status == "canceled":
                return m.void_result(pi)
            if status == "succeeded":
                return PSPResult(Outcome.FAILED, attempt.psp_reference,
                                 decline_code="already_captured", raw_status=status,
                                 message="The payment was captured; it cannot be canceled.")
            raise UnknownOperation(f"{self.name}: {attempt.psp_reference} is {status!r}")
        refunds = await self._call(where, lambda: self._v1.refunds.list_async(
            _sdk({"payment_intent": attempt.psp_reference, "limit": 100})))
        async for refund in refunds.auto_paging_iter():
            if m.field(m.field(refund, "metadata"), m.ATTEMPT_KEY) == attempt.idempotency_key:
                return m.refund_result(refund)
        raise UnknownOperation(f"{self.name}: no refund for attempt {attempt.idempotency_key}")

    async def _find_intent(self, attempt: AttemptRef) -> Any | None:
        """The PaymentIntent carrying the attempt's id in its metadata, from the newest
        PaymentIntents (created since the attempt). None when the list is exhausted;
        PSPOutcomeUnknown when too many pages were read and Stripe no longer keeps the
        key's answer (a repeat could then charge twice)."""
        params: dict[str, Any] = {"limit": 100}
        if attempt.created and not self._localstripe:  # localstripe refuses the filter
            params["created"] = {"gte": attempt.created - CLOCK_SKEW_S}
        where = f"lookup of authorize {attempt.idempotency_key!r}"
        for _ in range(self._lookup_pages):
            page = await self._call(where, self._lister(dict(params)))
            for pi in page.data:
                if m.field(m.field(pi, "metadata"), m.ATTEMPT_KEY) == attempt.idempotency_key:
                    return pi
            if not page.has_more or not page.data:
                return None
            params["starting_after"] = page.data[-1].id
        if time.time() - attempt.created < IDEMPOTENCY_KEY_LIFETIME_S - CLOCK_SKEW_S:
            return None  # Stripe still holds the key: repeating it is answered from there
        raise PSPOutcomeUnknown(f"{self.name}: attempt {attempt.idempotency_key} not among "
                                f"the {self._lookup_pages * 100} newest PaymentIntents")

    def _lister(self, params: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: self._v1.payment_intents.list_async(_sdk(params))

    # ------------------------------------------------------------------ webhooks, disputes

    async def parse_webhook(self, *, headers: Mapping[str, str], body: bytes,
                            now: int) -> Sequence[PSPEvent]:
        return await webhooks.parse(self, headers=headers, body=body, now=now,
                                    secrets=self._webhook_secrets,
                                    tolerance_s=self._webhook_tolerance_s)

    async def payment_intent(self, psp_reference: str) -> Any:
        """A PaymentIntent as Stripe has it now (webhooks.py reads kassa's ids from it)."""
        return await self._intent(psp_reference, f"retrieve {psp_reference}")

    async def submit_dispute_evidence(self, *, psp_dispute_id: str,
                                      evidence: Mapping[str, str]) -> None:
        await self._call(f"dispute evidence {psp_dispute_id}",
                         lambda: self._v1.disputes.update_async(
                             psp_dispute_id, _sdk({"evidence": dict(evidence),
                                                   "submit": True})))

    async def accept_dispute(self, *, psp_dispute_id: str) -> None:
        dispute = await self._call(f"retrieve dispute {psp_dispute_id}",
                                   lambda: self._v1.disputes.retrieve_async(psp_dispute_id))
        if m.field(dispute, "status") in ("lost", "won", "warning_closed"):
            return  # closed already: accepting again changes nothing
        await self._call(f"close dispute {psp_dispute_id}",
                         lambda: self._v1.disputes.close_async(psp_dispute_id))

    # ------------------------------------------------------------------ helpers

    async def _payment_method(self, request: AuthorizeRequest) -> str:
        if request.psp_token is not None:  # a PaymentMethod of this Stripe account
            return request.psp_token
        token = request.payment_method
        if token is not None and token.startswith(TEST_TOKEN_PREFIX):
            return token
        card: dict[str, Any] = {"number": request.card.number,
                                "exp_month": request.card.exp_month,
                                "exp_year": request.card.exp_year}
        if request.card.cvc is not None:
            card["cvc"] = request.card.cvc
        pm = await self._v1.payment_methods.create_async(
            _sdk({"type": "card", "card": card,
                  "metadata": {m.ATTEMPT_KEY: request.idempotency_key}}),
            {"idempotency_key": f"{request.idempotency_key}-pm"})
        return str(pm.id)

    def _metadata(self, attempt: str, payment: str | None, merchant: str) -> dict[str, str]:
        metadata = {m.ATTEMPT_KEY: attempt, m.MERCHANT_KEY: merchant}
        if payment is not None:
            metadata[m.PAYMENT_KEY] = payment
        return metadata

    async def _intent(self, psp_reference: str, where: str) -> Any:
        return await self._call(where, lambda: self._v1.payment_intents.retrieve_async(
            psp_reference))

    async def _call(self, where: str, send: Callable[[], Awaitable[T]]) -> T:
        try:
            return await send()
        except stripe.StripeError as exc:
            raise m.classify(exc, f"{self.name} {where}") from exc


def _sdk(params: dict[str, Any]) -> Any:
    """Parameters as the SDK takes them (its TypedDicts describe every field; kassa builds
    plain dicts of the few it sends)."""
    return params


def _gone(exc: stripe.InvalidRequestError) -> bool:
    """Stripe refused because the PaymentIntent is canceled (or its charge expired)."""
    if exc.code == "charge_expired_for_capture":
        return True
    pi = m.field(exc.error, "payment_intent") if exc.error is not None else None
    return exc.code == "payment_intent_unexpected_state" and m.field(pi, "status") == "canceled"
