"""Adyen's notification verifier: Adyen's published HMAC example, every item of a batch,
two keys during rotation, replays as duplicate events, and the normalised events."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from kassa.domain.disputes import DisputeStatus
from kassa.domain.money import Money
from kassa.psp.adyen import webhooks
from kassa.psp.base import Outcome, PSPEventType, WebhookRejected

# Adyen's published example (docs "Verify HMAC signatures"; adyen-ruby-api-library's spec)
EXAMPLE_KEY = bytes.fromhex("44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2AC"
                            "F6BA056")
EXAMPLE = {"pspReference": "7914073381342284", "merchantAccountCode": "TestMerchant",
           "merchantReference": "TestPayment-1407325143704",
           "amount": {"value": 1130, "currency": "EUR"}, "eventCode": "AUTHORISATION",
           "eventDate": "2019-05-06T17:15:34.121+02:00", "success": "true",
           "paymentMethod": "visa",
           "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=",
                              "captureDelayHours": "0"}}
OLD_KEY = bytes.fromhex("11" * 32)
NEW_KEY = bytes.fromhex("22" * 32)


def item(key: bytes, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"eventCode": "CAPTURE", "success": "true",
                           "eventDate": "2026-12-02T10:00:00+00:00",
                           "merchantAccountCode": "KassaECOM", "pspReference": "8815329842815468",
                           "originalReference": "8835511210681145",
                           "merchantReference": "att_capture_1",
                           "amount": {"value": 600, "currency": "EUR"}, **fields}
    extra = dict(out.pop("additionalData", {}))
    out["additionalData"] = {**extra, "hmacSignature": webhooks.signature(out, key)}
    return out


def body(*items: dict[str, Any], live: str = "false") -> bytes:
    return orjson.dumps({"live": live, "notificationItems": [
        {"NotificationRequestItem": i} for i in items]})


def parse(raw: bytes, keys: list[bytes] | None = None) -> list[Any]:
    return webhooks.parse("adyen", raw, keys=keys or [NEW_KEY], live=False,
                          merchant_account=None)


def test_adyens_published_example_verifies_and_a_changed_amount_does_not() -> None:
    assert webhooks.signing_string(EXAMPLE) == (
        b"7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true")
    webhooks.verify_item(EXAMPLE, [EXAMPLE_KEY])
    changed = copy.deepcopy(EXAMPLE)
    changed["amount"]["value"] = 1131
    with pytest.raises(WebhookRejected):
        webhooks.verify_item(changed, [EXAMPLE_KEY])
    (event,) = parse(body(EXAMPLE), [EXAMPLE_KEY])
    assert (event.type, event.outcome, event.amount) == (
        PSPEventType.AUTHORIZATION_UPDATED, Outcome.AUTHORIZED, Money(1130, "eur"))


def test_unsigned_forged_and_wrong_key_items_are_refused() -> None:
    unsigned = item(NEW_KEY)
    del unsigned["additionalData"]["hmacSignature"]
    forged = item(NEW_KEY)
    forged["amount"] = {"value": 60000, "currency": "EUR"}  # the signature is of 600
    for bad in (unsigned, forged, item(bytes.fromhex("33" * 32))):
        with pytest.raises(WebhookRejected):
            parse(body(bad))


def test_one_bad_item_refuses_the_whole_batch() -> None:
    good = [item(NEW_KEY, pspReference=f"88153298428154{n:02d}",
                 merchantReference=f"att_{n}") for n in range(3)]
    bad = item(bytes.fromhex("33" * 32), pspReference="9999999999999999",
               merchantReference="att_forged")
    assert len(parse(body(*good))) == 3
    for position in range(4):
        batch = [*good]
        batch.insert(position, bad)  # first, middle or last: never only item[0] checked
        with pytest.raises(WebhookRejected, match="9999999999999999"):
            parse(body(*batch))


def test_both_keys_are_accepted_while_rotating() -> None:
    batch = body(item(OLD_KEY, merchantReference="att_old"),
                 item(NEW_KEY, pspReference="8815329842815469", merchantReference="att_new"))
    assert [e.reference for e in parse(batch, [NEW_KEY, OLD_KEY])] == ["att_old", "att_new"]
    with pytest.raises(WebhookRejected):  # the old key retired
        parse(batch, [NEW_KEY])


DATE_S = 1796205600  # 2026-12-02T10:00:00Z, item()'s eventDate


def test_a_replay_is_the_same_event_so_the_inbox_drops_it() -> None:
    raw = body(item(NEW_KEY))
    assert [e.event_id for e in parse(raw)] == [e.event_id for e in parse(raw)] == [
        f"8815329842815468:CAPTURE:true:{DATE_S}"]


def test_the_same_event_on_a_new_date_is_a_new_event() -> None:
    """A second CHARGEBACK about the same dispute is Adyen's same eventCode and
    pspReference again, on a later eventDate: a new event (processed), not a replay."""
    first = item(NEW_KEY, eventCode="CHARGEBACK", pspReference="9915329842815470")
    again = item(NEW_KEY, eventCode="CHARGEBACK", pspReference="9915329842815470",
                 eventDate="2026-12-09T10:00:00+00:00")
    (one,), (two,) = parse(body(first)), parse(body(again))
    assert one.event_id != two.event_id and two.sequence > one.sequence
    assert one.event_id == f"9915329842815470:CHARGEBACK:true:{DATE_S}"
    assert two.event_id == f"9915329842815470:CHARGEBACK:true:{DATE_S + 7 * 86400}"


def test_test_notification_at_a_live_account_and_no_keys_are_refused() -> None:
    with pytest.raises(WebhookRejected):
        webhooks.parse("adyen", body(item(NEW_KEY)), keys=[NEW_KEY], live=True,
                       merchant_account=None)
    with pytest.raises(WebhookRejected):
        webhooks.parse("adyen", body(item(NEW_KEY)), keys=[], live=False,
                       merchant_account=None)
    with pytest.raises(WebhookRejected):
        parse(b'{"live":"false","notificationItems":[]}')


@pytest.mark.parametrize(("code", "success", "kind"), [
    ("CAPTURE", "true", PSPEventType.CAPTURE_SUCCEEDED),
    ("CAPTURE", "false", PSPEventType.CAPTURE_FAILED),
    ("CAPTURE_FAILED", "true", PSPEventType.CAPTURE_FAILED),
    ("CANCELLATION", "true", PSPEventType.VOID_SUCCEEDED),
    ("CANCELLATION", "false", PSPEventType.VOID_FAILED),
    ("REFUND", "true", PSPEventType.REFUND_SUCCEEDED),
    ("REFUND", "false", PSPEventType.REFUND_FAILED),
    ("REFUND_FAILED", "true", PSPEventType.REFUND_FAILED),
])
def test_modification_events(code: str, success: str, kind: PSPEventType) -> None:
    (event,) = parse(body(item(NEW_KEY, eventCode=code, success=success)))
    assert (event.type, event.reference, event.psp_reference, event.operation_reference) == (
        kind, "att_capture_1", "8835511210681145", "8815329842815468")
    assert event.event_id == f"8815329842815468:{code}:{success}:{DATE_S}"


def test_a_failure_after_success_is_newer() -> None:
    (capture,) = parse(body(item(NEW_KEY)))
    (failed,) = parse(body(item(NEW_KEY, eventCode="CAPTURE_FAILED")))
    assert capture.object_ref == failed.object_ref and failed.sequence > capture.sequence


@pytest.mark.parametrize(("code", "status"), [
    ("NOTIFICATION_OF_CHARGEBACK", DisputeStatus.WARNING_NEEDS_RESPONSE),
    ("CHARGEBACK", DisputeStatus.NEEDS_RESPONSE),
    ("CHARGEBACK_REVERSED", DisputeStatus.WON),
    ("SECOND_CHARGEBACK", DisputeStatus.LOST),
])
def test_dispute_events(code: str, status: DisputeStatus) -> None:
    (event,) = parse(body(item(NEW_KEY, eventCode=code, merchantReference="att_auth",
                               additionalData={"chargebackReasonCode": "10.4",
                                               "defensePeriodEndsAt":
                                                   "2026-12-09T10:00:00+00:00"})))
    assert event.dispute is not None
    assert (event.dispute.status, event.dispute.reason, event.dispute.amount) == (
        status, "fraudulent", Money(600, "eur"))
    assert (event.reference, event.psp_reference) == ("att_auth", "8835511210681145")


def test_refused_authorisation_carries_its_decline_code() -> None:
    (event,) = parse(body(item(NEW_KEY, eventCode="AUTHORISATION", success="false",
                               originalReference=None, reason="Blocked Card",
                               additionalData={"refusalReasonCode": "5",
                                               "refusalReasonRaw": "43 : Stolen card"})))
    assert (event.outcome, event.decline_code) == (Outcome.DECLINED, "stolen_card")


def test_an_authorisation_is_authorised_whatever_its_unsigned_fields_say() -> None:
    """captureDelayHours / metadata are outside the HMAC: kassa decides captured or not
    from its own attempt (webhooks/inbound.py), and never drops the event for them."""
    for extra in ({}, {"metadata.kassa_capture": "manual"}, {"captureDelayHours": "0"},
                  {"metadata.kassa_capture": "automatic"}, {"manualCapture": "true"}):
        (event,) = parse(body(item(NEW_KEY, eventCode="AUTHORISATION",
                                   originalReference=None, additionalData=extra)))
        assert (event.type, event.outcome) == (PSPEventType.AUTHORIZATION_UPDATED,
                                               Outcome.AUTHORIZED), extra


def test_events_kassa_does_not_act_on_are_verified_and_dropped() -> None:
    assert parse(body(item(NEW_KEY, eventCode="REPORT_AVAILABLE"))) == []
    with pytest.raises(WebhookRejected):
        parse(body(item(OLD_KEY, eventCode="REPORT_AVAILABLE")))


@pytest.mark.parametrize("raw", [
    b"", b"[]", b"null", b"{}", b'{"notificationItems": {}}', b'{"notificationItems": [1]}',
    b'{"live": "false", "notificationItems": [{"NotificationRequestItem": []}]}',
    b'{"live": "false", "notificationItems": [{"NotificationRequestItem": {}}]}',
    b'{"live": "false", "notificationItems": [{"NotificationRequestItem": '
    b'{"amount": 5, "additionalData": []}}]}',
    b"\xff\xfe", b"x" * (webhooks.MAX_WEBHOOK_BYTES + 1),
])
def test_garbage_is_refused_never_an_error(raw: bytes) -> None:
    with pytest.raises(WebhookRejected):
        parse(raw)


def test_a_signed_item_with_unreadable_fields_is_refused() -> None:
    for fields in ({"eventDate": "yesterday"}, {"amount": {"value": "600", "currency": "EUR"}},
                   {"success": "maybe"}, {"eventCode": "CAPTURE", "originalReference": None}):
        with pytest.raises(WebhookRejected):
            parse(body(item(NEW_KEY, **fields)))


@pytest.mark.parametrize("fields", [
    {"eventCode": "CHARGEBACK", "amount": None},
    {"eventCode": "NOTIFICATION_OF_CHARGEBACK", "amount": None},
    {"eventDate": "1969-12-31T23:59:59+00:00"},
    {"eventDate": "1970-01-01T00:00:00+00:00"},
    {"eventDate": "0001-01-01T00:00:00+00:00"},
    {"eventDate": "9999-12-31T23:59:59-14:00"},
    {"pspReference": "8" * 255},  # fits a field, not the inbox's 255-character event id
    {"eventCode": "X" * 250, "pspReference": "8" * 10},
])
def test_signed_items_kassa_cannot_store_are_refused_never_an_error(
        fields: dict[str, Any]) -> None:
    """Each would have been an AssertionError or a database CHECK violation (a 500)."""
    with pytest.raises(WebhookRejected):
        parse(body(item(NEW_KEY, **fields)))


def test_the_longest_storable_event_id_is_accepted() -> None:
    reference = "8" * (255 - len(f":CAPTURE:true:{DATE_S}"))
    (event,) = parse(body(item(NEW_KEY, pspReference=reference)))
    assert len(event.event_id) == 255 and event.sequence > 0
