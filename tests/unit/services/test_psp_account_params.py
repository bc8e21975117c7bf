"""services/psp_accounts.py's checks that need no database: production narrows base_url to
the PSP's own API hosts (a merchant's URL is called from kassa's network), and a secret's
value is never repeated in an error."""

from __future__ import annotations

import pytest

from kassa.domain.errors import InvalidRequest
from kassa.services.psp_accounts import parse_credentials, parse_settings


@pytest.mark.parametrize(("psp", "url"), [
    ("stripe", "https://api.stripe.com"),
    ("adyen", "https://checkout-test.adyen.com/v71"),
    ("adyen", "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout/v71"),
])
def test_production_takes_the_psps_own_hosts(psp: str, url: str) -> None:
    given = {"base_url": url, "merchant_account": "Shop" if psp == "adyen" else None}
    got = parse_settings(psp, given, production=True)
    assert got["base_url"] == url


@pytest.mark.parametrize(("psp", "url"), [
    ("stripe", "https://10.0.0.5"), ("stripe", "https://api.stripe.com.evil.example"),
    ("stripe", "http://api.stripe.com"), ("adyen", "https://metadata.internal/v71"),
    ("adyen", "https://notadyen.com"), ("simulator", "https://sim.example"),
])
def test_production_refuses_any_other_host(psp: str, url: str) -> None:
    given = {"base_url": url, "merchant_account": "Shop" if psp == "adyen" else None}
    with pytest.raises(InvalidRequest) as refused:
        parse_settings(psp, given, production=True)
    assert refused.value.param == "base_url"


def test_outside_production_a_local_url_is_fine() -> None:
    got = parse_settings("simulator", {"base_url": "http://127.0.0.1:8011/"},
                         production=False)
    assert got == {"base_url": "http://127.0.0.1:8011"}


@pytest.mark.parametrize("creds", [
    {"api_key": "sk_live_leak"}, {"api_key": "nope_leak"},
    {"api_key": "sk_test_1", "webhook_secret": "plain_leak"},
    {"api_key": ["leak"]}, {"api_key": "sk_test_1", "other_leak": "x"},
])
def test_errors_never_repeat_a_secret(creds: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_credentials("stripe", creds, production=False)
    assert "leak" not in refused.value.message.replace("other_leak", "")
