"""Pure webhook rules: the retry schedule, enabled_events, URLs and addresses (SSRF)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa import representations
from kassa.webhooks import endpoints as rules
from kassa.webhooks.backoff import RetrySchedule

SCHEDULE = RetrySchedule(base_seconds=60, cap_seconds=6 * 3600, window_seconds=3 * 24 * 3600)


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    assert [SCHEDULE.ceiling(n) for n in range(1, 6)] == [60, 120, 240, 480, 960]
    assert SCHEDULE.ceiling(30) == 6 * 3600
    assert SCHEDULE.ceiling(10_000) == 6 * 3600


@given(failures=st.integers(min_value=1, max_value=500),
       age=st.floats(min_value=0, max_value=4 * 24 * 3600),
       draw=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_full_jitter_stays_within_the_ceiling_and_the_window(failures: int, age: float,
                                                             draw: float) -> None:
    delay = SCHEDULE.next_retry_in(failures=failures, age_seconds=age, draw=draw)
    if delay is None:
        assert age + draw * SCHEDULE.ceiling(failures) > SCHEDULE.window_seconds
    else:
        assert 0 <= delay <= SCHEDULE.ceiling(failures)
        assert age + delay <= SCHEDULE.window_seconds


def test_a_delivery_failing_forever_dies_after_about_three_days() -> None:
    age, failures = 0.0, 0
    while True:
        failures += 1
        delay = SCHEDULE.next_retry_in(failures=failures, age_seconds=age, draw=0.5)
        if delay is None:
            break
        age += delay
    assert 2 * 24 * 3600 < age <= 3 * 24 * 3600
    assert 15 < failures < 40


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetrySchedule(base_seconds=10, cap_seconds=5)
    with pytest.raises(ValueError):
        SCHEDULE.next_retry_in(failures=1, age_seconds=0, draw=1.0)


def test_enabled_events_are_checked_against_the_catalogue() -> None:
    assert rules.normalize_enabled_events(["refund.created", "charge.refunded",
                                           "refund.created"]) == ["charge.refunded",
                                                                  "refund.created"]
    assert rules.normalize_enabled_events(["payment_intent.succeeded", "*"]) == ["*"]
    for bad in ([], ["payment_intent.exploded"], ["payment_intent.*"]):
        with pytest.raises(rules.EndpointRuleError):
            rules.normalize_enabled_events(bad)
    assert rules.subscribes(["*"], "refund.created")
    assert rules.subscribes(["refund.created"], "refund.created")
    assert not rules.subscribes(["refund.created"], "refund.failed")


def test_every_event_type_kassa_emits_can_be_subscribed_to() -> None:
    package = Path(rules.__file__).resolve().parents[1]
    emitted = set()
    for path in [*package.glob("services/*.py"), *package.glob("domain/*.py")]:
        text = path.read_text()
        emitted |= set(re.findall(r'type="([a-z_]+\.[a-z_.]+)"', text))
        emitted |= set(re.findall(r'"((?:payment_intent|charge|refund)\.[a-z_.]+)"', text))
    assert emitted, "no emitted event types found"
    assert emitted <= rules.EVENT_TYPES, emitted - rules.EVENT_TYPES


@pytest.mark.parametrize(("url", "production", "ok"), [
    ("https://hooks.example.com/x", True, True),
    ("https://hooks.example.com:8443/x?a=1", True, True),
    ("http://hooks.example.com/x", True, False),
    ("http://hooks.example.com/x", False, True),
    ("http://localhost:3000/x", False, True),
    ("https://localhost/x", True, False),
    ("https://api.localhost/x", True, False),
    ("https://printer.local/x", True, False),
    ("ftp://example.com/x", False, False),
    ("https://u:p@example.com/x", False, False),
    ("https://example.com/x#frag", False, False),
    ("https://example.com:99999/x", False, False),
    ("https://exa mple.com/x", False, False),
    ("https:///x", False, False),
    ("", False, False),
    ("https://e.com/" + "a" * 2100, False, False),
])
def test_url_rules(url: str, production: bool, ok: bool) -> None:
    if ok:
        assert rules.parse_url(url, production=production).url == url
    else:
        with pytest.raises(rules.EndpointRuleError):
            rules.parse_url(url, production=production)


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:4700::1111", True), ("8.8.8.8", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("::", False),
    ("fe80::1", False), ("fe80::1%lo", False), ("fc00::1", False), ("ff02::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True), ("64:ff9b::a00:1", False),
    ("2002:a00:1::", False), ("2001:db8::1", False), ("not-an-ip", False),
])
def test_address_classification(address: str, public: bool) -> None:
    assert (rules.refused_addresses([address]) == []) is public


def test_delivery_ids_round_trip() -> None:
    assert representations.parse_delivery_id(representations.delivery_public_id(42)) == 42
    for bad in ("42", "whdel_", "whdel_x1", "whdel_" + "9" * 30, "evt_1"):
        assert representations.parse_delivery_id(bad) is None
