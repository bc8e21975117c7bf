"""kassa.webhooks.construct_event: Stripe's Webhook.construct_event contract."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.webhooks import SignatureVerificationError, construct_event, verify_header
from kassa.webhooks.signing import (
    MalformedHeader,
    compute_signature,
    parse_header,
    signature_header,
)

SECRET = "whsec_test_secret"
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded"})


def header(body: str = BODY, secrets: tuple[str, ...] = (SECRET,), t: int | None = None) -> str:
    return signature_header(body.encode(), secrets, int(time.time()) if t is None else t)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY.encode(),
                        hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1700000000, BODY.encode()) == expected
    assert header(t=1700000000) == f"t=1700000000,v1={expected}"


def test_valid_signature_returns_the_event() -> None:
    event = construct_event(BODY, header(), SECRET)
    assert event["id"] == "evt_1"
    assert construct_event(BODY.encode(), header(), SECRET) == event


def test_any_matching_v1_is_accepted_during_rotation() -> None:
    h = header(secrets=("whsec_new", SECRET))
    assert len(parse_header(h).signatures) == 2
    assert construct_event(BODY, h, SECRET)["id"] == "evt_1"
    assert construct_event(BODY, h, "whsec_new")["id"] == "evt_1"
    with pytest.raises(SignatureVerificationError):
        construct_event(BODY, h, "whsec_other")


@pytest.mark.parametrize("bad", [
    None, "", "garbage", "v1=abc", "t=notanumber,v1=abc", "t=1700000000",
    "t=1700000000,v0=abc",
])
def test_missing_or_malformed_header_is_refused(bad: str | None) -> None:
    with pytest.raises(SignatureVerificationError) as info:
        construct_event(BODY, bad, SECRET)
    assert info.value.sig_header == bad


def test_wrong_secret_or_tampered_body_is_refused() -> None:
    with pytest.raises(SignatureVerificationError):
        construct_event(BODY, header(), "whsec_wrong")
    with pytest.raises(SignatureVerificationError):
        construct_event(BODY.replace("succeeded", "canceled"), header(), SECRET)


def test_stale_timestamp_is_refused_within_tolerance_rules() -> None:
    old = int(time.time()) - 301
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        construct_event(BODY, header(t=old), SECRET)
    assert construct_event(BODY, header(t=old), SECRET, tolerance=600)["id"] == "evt_1"
    assert construct_event(BODY, header(t=old), SECRET, tolerance=0)["id"] == "evt_1"
    assert verify_header(BODY, header(t=1000), SECRET, now=1100.0)
    with pytest.raises(SignatureVerificationError):
        verify_header(BODY, header(t=1000), SECRET, now=1301.0)


def test_a_correctly_signed_body_that_is_not_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        construct_event("not json", header("not json"), SECRET)


@given(body=st.binary(max_size=2000), secret=st.text(min_size=1, max_size=80),
       t=st.integers(min_value=0, max_value=2**40))
def test_sign_then_verify_round_trips(body: bytes, secret: str, t: int) -> None:
    assert verify_header(body, signature_header(body, [secret], t), secret, tolerance=None)


@pytest.mark.parametrize(("value", "lenient"), [
    ("t=abc,v1=aa", (None, ("aa",))),
    ("t= 1000,v1= aa", (1000, ("aa",))),
    ("t=1234567890123,v1=aa", (1234567890123, ("aa",))),
    ("t=,v1=aa", (None, ("aa",))),
])
def test_strict_parse_refuses_a_timestamp_the_lenient_parse_skips_or_trims(
        value: str, lenient: tuple[int | None, tuple[str, ...]]) -> None:
    parsed = parse_header(value)
    assert (parsed.timestamp, parsed.signatures) == lenient
    with pytest.raises(MalformedHeader, match="malformed timestamp in signature header"):
        parse_header(value, strict=True)


def test_strict_parse_takes_values_as_sent() -> None:
    parsed = parse_header(" t=1000 ,v1= aa,v0=bb,junk", strict=True)
    assert (parsed.timestamp, parsed.signatures) == (1000, (" aa",))
