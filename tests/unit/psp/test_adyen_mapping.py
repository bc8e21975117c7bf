"""Adyen's resultCode, refusal reasons and error statuses as kassa's outcomes and error
classes (psp/adyen/mapping.py, the one place they are mapped)."""

from __future__ import annotations

import httpx
import pytest

from kassa.domain.money import Money
from kassa.psp.adyen import mapping as m
from kassa.psp.base import (
    Outcome,
    PSPOutcomeUnknown,
    PSPRefused,
    PSPTimeout,
    PSPUnavailable,
)

EUR = {"value": 1000, "currency": "EUR"}


@pytest.mark.parametrize(("code", "capture", "outcome"), [
    ("Authorised", True, Outcome.CAPTURED),
    ("Authorised", False, Outcome.AUTHORIZED),
    ("Refused", False, Outcome.DECLINED),
    ("Error", False, Outcome.DECLINED),
    ("Cancelled", False, Outcome.DECLINED),
    ("RedirectShopper", True, Outcome.REQUIRES_ACTION),
    ("IdentifyShopper", True, Outcome.REQUIRES_ACTION),
    ("ChallengeShopper", True, Outcome.REQUIRES_ACTION),
])
def test_result_codes(code: str, capture: bool, outcome: Outcome) -> None:
    result = m.payment_result({"resultCode": code, "pspReference": "8835511210681145",
                               "amount": EUR, "action": {"type": "redirect",
                                                         "url": "https://x/3ds"}},
                              capture=capture)
    assert (result.outcome, result.psp_reference, result.amount) == (
        outcome, "8835511210681145", Money(1000, "eur"))
    if outcome is Outcome.DECLINED:
        assert result.decline_code and result.message


@pytest.mark.parametrize("code", ["Pending", "Received", "PartiallyAuthorised", "Nonsense"])
def test_results_that_are_not_final_are_unknown(code: str) -> None:
    with pytest.raises(PSPOutcomeUnknown):
        m.payment_result({"resultCode": code, "pspReference": "1"}, capture=True)


@pytest.mark.parametrize(("code", "reason", "raw", "decline"), [
    ("2", "Refused", None, "generic_decline"),
    ("12", "Not enough balance", None, "insufficient_funds"),
    ("5", "Blocked Card", "41 : Lost card", "lost_card"),
    ("5", "Blocked Card", "43 : Stolen card", "stolen_card"),
    ("5", "Blocked Card", "62 : Restricted", "pickup_card"),
    ("6", "Expired Card", None, "expired_card"),
    ("24", "CVC Declined", None, "incorrect_cvc"),
    (None, "Expired Card", None, "expired_card"),
    ("999", "Something new", None, "generic_decline"),
])
def test_refusal_reasons(code: str | None, reason: str, raw: str | None, decline: str) -> None:
    assert m.decline_code(code, reason, raw) == decline


def test_a_card_number_echoed_back_is_masked() -> None:
    result = m.payment_result({"resultCode": "Refused", "pspReference": "1",
                               "refusalReason": "bad card 4242424242424242"}, capture=True)
    assert "4242424242424242" not in str(result.message)


def test_received_modifications_are_pending_at_the_payment() -> None:
    answer = {"status": "received", "paymentPspReference": "8835511210681145",
              "pspReference": "8815329842815468", "amount": {"value": 600, "currency": "EUR"}}
    for kind, outcome in (("capture", Outcome.CAPTURE_PENDING),
                          ("refund", Outcome.REFUND_PENDING),
                          ("cancel", Outcome.VOID_PENDING)):
        result = m.modification_result(kind, answer, None)
        # the payment's reference (where a repeat goes) and the modification's own one
        # (what its notification names)
        assert (result.outcome, result.psp_reference, result.operation_reference) == (
            outcome, "8835511210681145", "8815329842815468")
    with pytest.raises(PSPOutcomeUnknown):
        m.modification_result("capture", {**answer, "status": "[capture-received]"}, None)


@pytest.mark.parametrize(("status", "body", "error"), [
    (500, {"errorCode": "901"}, PSPOutcomeUnknown),
    (503, None, PSPOutcomeUnknown),
    (422, {"errorCode": "704"}, PSPOutcomeUnknown),
    (422, {"errorCode": "167"}, PSPRefused),
    (400, {"errorCode": "702"}, PSPRefused),
    (401, {"errorCode": "000"}, PSPUnavailable),
    (403, {"errorCode": "010"}, PSPUnavailable),
    (429, None, PSPUnavailable),
])
def test_error_statuses(status: int, body: object, error: type) -> None:
    assert type(m.classify_status(status, body, "adyen test")) is error


def test_transport_errors() -> None:
    request = httpx.Request("POST", "https://checkout-test.adyen.com/v71/payments")
    assert isinstance(m.classify_transport(httpx.ConnectError("refused", request=request),
                                           "x"), PSPUnavailable)
    assert isinstance(m.classify_transport(httpx.ReadTimeout("slow", request=request), "x"),
                      PSPTimeout)
    unknown = m.classify_transport(httpx.RemoteProtocolError("reset", request=request), "x")
    assert type(unknown) is PSPOutcomeUnknown


def test_a_drop_after_sending_over_aiohttp_is_unknown_not_unavailable() -> None:
    """httpx-aiohttp (production) raises ConnectTimeout for a connection dropped after the
    request was sent: only aiohttp's could-not-connect is provably not processed."""
    import aiohttp

    dropped = httpx.ConnectTimeout("Server disconnected")
    dropped.__cause__ = aiohttp.ServerDisconnectedError()
    assert not isinstance(m.classify_transport(dropped, "x"), PSPUnavailable)
    assert isinstance(m.classify_transport(dropped, "x"), PSPOutcomeUnknown)
    refused = httpx.ConnectTimeout("Cannot connect")
    refused.__cause__ = aiohttp.ClientConnectorError(
        None, OSError(111, "Connection refused"))  # type: ignore[arg-type]
    assert isinstance(m.classify_transport(refused, "x"), PSPUnavailable)
