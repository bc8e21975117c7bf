"""The PSP registry bootstrap builds from settings: the simulator always, Stripe when its
secret key is set; the router picks from it."""

from __future__ import annotations

import httpx
import pytest

from kassa import bootstrap
from kassa.config import Settings
from kassa.psp.router import DefaultRouter, PSPAccount, PSPRegistry
from kassa.psp.simulator import SimulatorAdapter
from kassa.psp.stripe import StripeAdapter, StripeSettings


async def test_the_simulator_alone_without_a_stripe_key() -> None:
    async with httpx.AsyncClient() as client:
        registry = bootstrap.psp_registry(Settings(), client, stripe=StripeSettings())

    assert list(registry) == ["simulator"]
    with pytest.raises(ValueError, match="not configured"):
        DefaultRouter(registry, "stripe")


async def test_a_stripe_key_adds_the_stripe_account() -> None:
    stripe = StripeSettings(secret_key="sk_test_registry", hold_validity_seconds=3600)
    async with httpx.AsyncClient() as client:
        registry = bootstrap.psp_registry(Settings(simulator_hold_validity_seconds=60),
                                          client, stripe=stripe)

    assert sorted(registry) == ["simulator", "stripe"]
    assert isinstance(registry["stripe"], StripeAdapter)
    assert registry.account("stripe").psp == "stripe"
    assert registry.hold_validity_seconds() == {"simulator": 60, "stripe": 3600}
    assert DefaultRouter(registry, "stripe").choose(None) is registry["stripe"]  # type: ignore[arg-type]


def test_stripe_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASSA_STRIPE_SECRET_KEY", "sk_test_env")
    monkeypatch.setenv("KASSA_STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b")
    monkeypatch.setenv("KASSA_STRIPE_API_BASE", "http://127.0.0.1:12111")

    stripe = StripeSettings()

    assert stripe.configured() and stripe.api_base == "http://127.0.0.1:12111"
    assert stripe.webhook_secrets() == ["whsec_a", "whsec_b"]


async def test_an_account_name_is_taken_once() -> None:
    async with httpx.AsyncClient() as client:
        sim = SimulatorAdapter(client, "http://127.0.0.1:1")
        account = PSPAccount(name="simulator", psp="simulator", adapter=sim,
                             hold_validity_seconds=1.0)
        with pytest.raises(ValueError, match="twice"):
            PSPRegistry([account, account])
        with pytest.raises(ValueError, match="adapter named"):
            PSPRegistry([PSPAccount(name="other", psp="simulator", adapter=sim,
                                    hold_validity_seconds=1.0)])


async def test_a_live_key_is_refused_outside_production() -> None:
    live = StripeSettings(secret_key="sk_live_registry")
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="live key"):
            bootstrap.psp_registry(Settings(env="development"), client, stripe=live)
        registry = bootstrap.psp_registry(Settings(env="production"), client, stripe=live)
    assert "stripe" in registry
