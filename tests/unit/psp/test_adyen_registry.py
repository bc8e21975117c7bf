"""The platform's Adyen account from settings (KASSA_ADYEN_*): added to the registry when
its API key is set, refused when it could not be run safely."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from kassa import bootstrap
from kassa.config import Settings
from kassa.psp.adyen import AdyenAdapter, AdyenSettings
from kassa.psp.stripe import StripeSettings

KEY = "ab" * 32


async def test_an_adyen_key_adds_the_adyen_account() -> None:
    adyen = AdyenSettings(api_key="AQE_key", merchant_account="ShopECOM", hmac_keys=KEY,
                          hold_validity_seconds=600)
    async with httpx.AsyncClient() as client:
        registry = bootstrap.psp_registry(Settings(), client, stripe=StripeSettings(),
                                          adyen=adyen)
    assert sorted(registry) == ["adyen", "simulator"]
    assert isinstance(registry["adyen"], AdyenAdapter)
    assert registry.account("adyen").psp == "adyen"
    assert registry.hold_validity_seconds()["adyen"] == 600


@pytest.mark.parametrize(("changes", "match"), [
    ({"merchant_account": None}, "MERCHANT_ACCOUNT"),
    ({"hmac_keys": None}, "HMAC"),
    ({"live": True}, "live"),
])
async def test_an_adyen_account_that_cannot_run_safely_is_refused(changes: dict[str, object],
                                                                 match: str) -> None:
    adyen = AdyenSettings(**{"api_key": "AQE_key", "merchant_account": "ShopECOM",
                             "hmac_keys": KEY, **changes})
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match=match):
            bootstrap.psp_registry(Settings(), client, stripe=StripeSettings(), adyen=adyen)


def test_adyen_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASSA_ADYEN_API_KEY", "AQE_env")
    monkeypatch.setenv("KASSA_ADYEN_MERCHANT_ACCOUNT", "EnvECOM")
    monkeypatch.setenv("KASSA_ADYEN_HMAC_KEYS", f"{KEY}, {'cd' * 32}")
    settings = AdyenSettings()
    assert settings.configured() and settings.merchant_account == "EnvECOM"
    assert settings.keys() == [bytes.fromhex(KEY), bytes.fromhex("cd" * 32)]
    monkeypatch.setenv("KASSA_ADYEN_HMAC_KEYS", "not-hex")
    with pytest.raises(ValidationError):
        AdyenSettings()


def test_kassa_dev_connects_its_adyen_account_to_the_simulators_dialect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kassa.cli.dev import _dev_adyen
    from kassa.psp.simulator import SimulatorConfig

    monkeypatch.delenv("KASSA_ADYEN_API_KEY", raising=False)
    settings = Settings(port=8123)
    config, adyen = _dev_adyen(settings, SimulatorConfig())
    assert adyen.configured() and adyen.api_key is not None
    assert config.adyen_api_key == adyen.api_key.get_secret_value()
    assert [bytes.fromhex(str(config.adyen_hmac_key))] == adyen.keys()
    assert config.adyen_merchant_account == adyen.merchant_account
    assert adyen.checkout_url == f"{settings.simulator_base_url()}/v71"
    assert str(config.adyen_webhook_url).endswith(":8123/psp/adyen/webhooks")
    # a real account configured: kassa dev leaves it alone
    monkeypatch.setenv("KASSA_ADYEN_API_KEY", "AQE_real")
    same, real = _dev_adyen(settings, SimulatorConfig())
    assert same.adyen_api_key is None and real.api_key is not None
    assert real.api_key.get_secret_value() == "AQE_real"
