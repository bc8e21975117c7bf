"""The PSPAdapter for Adyen: the Checkout API (v71) and DisputeService (v30) over kassa's
injected ``httpx.AsyncClient``.

Why httpx and not PyPI's ``Adyen`` library: its HTTP client is synchronous (requests,
pycurl or urllib; ``Adyen/httpclient.py``), so every call would block kassa's event loop
or need a thread each, and it hides the transport error kassa needs to tell "never sent"
(may fail over) from "sent, no answer" (outcome unknown). The calls are plain JSON.

- authorize: ``POST /payments`` with the card as ``paymentMethod`` (type ``scheme``; a
  PSP token ``<account>:<shopperReference>/<storedPaymentMethodId>`` as
  ``storedPaymentMethodId`` with ``shopperReference`` and ``recurringProcessingModel``),
  ``reference`` = kassa's attempt id, ``captureDelayHours: 0`` (captured at once) or
  ``additionalData.manualCapture`` (manual capture), kassa's ids and the capture mode in
  ``metadata`` (echoed in notifications). 3-D Secure comes back as ``RedirectShopper``;
  the shopper's return carries ``redirectResult``, sent to ``/payments/details``.
- capture (full or partial), cancel, refunds (several): ``/payments/{pspReference}/
  captures|cancels|refunds``, answered ``received``: pending until Adyen's notification.
- Every call carries ``Idempotency-Key`` = kassa's attempt id (Adyen keeps it ≥ 7 days).
- lookup (recovery): Adyen has no way to read a payment or modification back. Within the
  key's lifetime the saga repeats the call with the same key (``UnknownOperation``), and
  Adyen answers it from its idempotency store (for a modification: ``received`` again; the
  notification settles it). ``CannotLookUp`` tells the saga so: a 4xx to the repeat of a
  modification leaves it unresolved (the original may have been acted on), never failed.
  Past the lifetime a repeat could act twice, so the outcome
  stays unknown and only the notification (Adyen retries for 30 days) settles it.

Statuses and errors are mapped in mapping.py, notifications in webhooks.py.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from kassa.domain import psp_tokens
from kassa.domain.money import Money
from kassa.psp.adyen import mapping as m
from kassa.psp.adyen import webhooks
from kassa.psp.adyen.settings import IDEMPOTENCY_KEY_LIFETIME_S, AdyenSettings
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    CannotLookUp,
    PSPEvent,
    PSPOutcomeUnknown,
    PSPRefused,
    PSPResult,
)

CLOCK_SKEW_S = 300
# Adyen requires a returnUrl; kassa gives its own return endpoint for every attempt it
# makes, this one is used only by a caller that gives none (nothing returns to it)
NO_RETURN_URL = "https://kassa.invalid/psp/adyen/return"
DEFENSE_REASON = "SupplyDefenseMaterial"


class AdyenAdapter:
    """One Adyen merchant account, reached through ``client`` (kassa's shared pool)."""

    webhook_ack = b"[accepted]"  # what Adyen expects back for a notification it delivered

    def __init__(self, client: httpx.AsyncClient, settings: AdyenSettings, *,
                 name: str = "adyen", timeout: float = 10.0) -> None:
        assert settings.api_key is not None and settings.merchant_account is not None
        self.name = name
        self._client = client
        self._timeout = timeout
        self._api_key = settings.api_key.get_secret_value()
        self._account = settings.merchant_account
        self._checkout = settings.checkout_url.rstrip("/")
        self._disputes = settings.disputes_url.rstrip("/")
        self._keys = tuple(settings.keys())
        self._live = settings.live

    # ------------------------------------------------------------------ payments

    async def authorize(self, request: AuthorizeRequest) -> PSPResult:
        card = request.card
        shopper: str | None = None
        method: dict[str, Any]
        if request.psp_token is not None:
            # a stored payment method of this account: Adyen wants the shopperReference it
            # was stored for and the recurring model (Checkout API v71 PaymentRequest)
            shopper, stored = psp_tokens.adyen_stored(request.psp_token)
            method = {"type": "scheme", "storedPaymentMethodId": stored}
        else:
            method = {"type": "scheme", "number": card.number,
                      "expiryMonth": f"{card.exp_month:02d}",
                      "expiryYear": str(card.exp_year)}
            if card.cvc is not None:
                method["cvc"] = card.cvc
        metadata = {webhooks.CAPTURE_KEY: "automatic" if request.capture else "manual",
                    "kassa_merchant": request.merchant_id}
        if request.payment_id is not None:
            metadata["kassa_payment"] = request.payment_id
        body: dict[str, Any] = {
            "merchantAccount": self._account,
            "amount": m.amount_view(request.amount),
            "reference": request.idempotency_key,
            "paymentMethod": method,
            "returnUrl": request.return_url or NO_RETURN_URL,
            "shopperInteraction": "Ecommerce",
            "channel": "Web",
            "metadata": metadata,
        }
        if shopper is not None:  # the shopper pays with the card stored on file
            body.update(shopperReference=shopper, recurringProcessingModel="CardOnFile")
        if request.off_session:
            # a merchant-initiated charge of a stored card: no shopper, so no 3-D Secure
            # (Adyen refuses it "Authentication required" when the issuer insists)
            body.update(shopperInteraction="ContAuth",
                        recurringProcessingModel="UnscheduledCardOnFile")
        if request.capture:
            body["captureDelayHours"] = 0
        else:
            body["additionalData"] = {"manualCapture": "true"}
        answer = await self._post(f"{self._checkout}/payments", body,
                                  request.idempotency_key, "authorize")
        return m.payment_result(answer, capture=request.capture)

    async def complete_redirect(self, *, idempotency_key: str, redirect_result: str,
                                capture: bool) -> PSPResult:
        """The shopper came back from 3-D Secure: ``/payments/details`` tells the outcome
        (server to server, so kassa trusts it; the query itself is only the key to ask)."""
        # one key per returned query: a tampered query must not take the key of the real one
        digest = hashlib.sha256(redirect_result.encode()).hexdigest()[:16]
        answer = await self._post(f"{self._checkout}/payments/details",
                                  {"details": {"redirectResult": redirect_result}},
                                  f"{idempotency_key}-d-{digest}", "payment details")
        return m.payment_result(answer, capture=capture)

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult:
        return await self._modify("capture", "captures", idempotency_key, psp_reference,
                                  amount)

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult:
        return await self._modify("cancel", "cancels", idempotency_key, psp_reference, None)

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult:
        return await self._modify("refund", "refunds", idempotency_key, psp_reference,
                                  amount)

    async def _modify(self, kind: str, path: str, key: str, psp_reference: str,
                      amount: Money | None) -> PSPResult:
        body: dict[str, Any] = {"merchantAccount": self._account, "reference": key}
        if amount is not None:
            body["amount"] = m.amount_view(amount)
        answer = await self._post(
            f"{self._checkout}/payments/{quote(psp_reference, safe='')}/{path}", body, key,
            kind)
        return m.modification_result(kind, answer, amount)

    # ------------------------------------------------------------------ recovery

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        if attempt.created and time.time() - attempt.created > \
                IDEMPOTENCY_KEY_LIFETIME_S - CLOCK_SKEW_S:
            raise PSPOutcomeUnknown(
                f"{self.name}: attempt {attempt.idempotency_key} is older than Adyen keeps "
                "its Idempotency-Key; a repeat could act twice, its notification settles it")
        raise CannotLookUp(
            f"{self.name}: Adyen reads nothing back; the call is repeated with its "
            f"Idempotency-Key {attempt.idempotency_key!r} and answered from Adyen's store")

    # ------------------------------------------------------------------ webhooks, disputes

    async def parse_webhook(self, *, headers: Mapping[str, str], body: bytes,
                            now: int) -> Sequence[PSPEvent]:
        return webhooks.parse(self.name, body, keys=self._keys, live=self._live,
                              merchant_account=self._account)

    async def submit_dispute_evidence(self, *, psp_dispute_id: str,
                                      evidence: Mapping[str, str]) -> None:
        content = base64.b64encode(orjson.dumps(dict(evidence))).decode()
        await self._dispute("supplyDefenseDocument", psp_dispute_id, {
            "defenseDocuments": [{"content": content, "contentType": "application/json",
                                  "defenseDocumentTypeCode": "DefenseMaterial"}]})
        await self._dispute("defendDispute", psp_dispute_id,
                            {"defenseReasonCode": evidence.get("defense_reason_code",
                                                               DEFENSE_REASON)})

    async def accept_dispute(self, *, psp_dispute_id: str) -> None:
        await self._dispute("acceptDispute", psp_dispute_id, {})

    async def _dispute(self, call: str, psp_dispute_id: str, extra: dict[str, Any]) -> None:
        body = {"merchantAccountCode": self._account, "disputePspReference": psp_dispute_id,
                **extra}
        answer = await self._post(f"{self._disputes}/{call}", body, None, call)
        result = answer.get("disputeServiceResult") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or result.get("success") is not True:
            message = result.get("errorMessage") if isinstance(result, dict) else None
            raise PSPRefused(f"{self.name} {call} {psp_dispute_id}: "
                             f"{m.redact(str(message or 'refused'))[:200]}")

    # ------------------------------------------------------------------ transport

    async def _post(self, url: str, body: dict[str, Any], key: str | None,
                    operation: str) -> Any:
        where = f"{self.name} {operation}" + (f" (key {key!r})" if key else "")
        headers = {"x-api-key": self._api_key, "content-type": "application/json"}
        if key is not None:
            headers["idempotency-key"] = key
        try:
            response = await self._client.post(url, content=orjson.dumps(body),
                                                headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise m.classify_transport(exc, where) from exc
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        if response.status_code >= 300:
            raise m.classify_status(response.status_code, answer, where)
        if answer is None:  # unreadable: whether Adyen acted is unknown
            raise m.MalformedAnswer(f"{where}: HTTP {response.status_code}, not JSON")
        return answer
