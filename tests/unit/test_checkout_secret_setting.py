"""KASSA_CHECKOUT_TOKEN_SECRET signs the hosted checkout's tokens (every page carries one,
so anyone may guess its secret offline): outside development a short one is refused by the
settings, and a missing one, or one that is also the forward secret, is a start-up error
naming the setting (`kassa api` with a vault and `kassa vault`: tests/e2e/test_cli.py)."""

from __future__ import annotations

import pydantic
import pytest

from kassa import bootstrap
from kassa.cli.reporting import explain
from kassa.config import Settings
from kassa.startup_errors import StartupError

LONG = "c" * 32


@pytest.mark.parametrize("env", ["test", "production"])
@pytest.mark.parametrize("setting", ["KASSA_CHECKOUT_TOKEN_SECRET",
                                     "KASSA_CHECKOUT_TOKEN_SECRET_PREVIOUS"])
def test_a_short_secret_is_refused_outside_development(monkeypatch, env, setting):
    monkeypatch.setenv("KASSA_ENV", env)
    monkeypatch.setenv(setting, "c" * 31)
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings()
    cause, remedy, code = explain(caught.value)
    assert setting in cause and "at least 32 characters" in cause and code == 2
    assert "c" * 31 not in cause + remedy  # the secret is not echoed


def test_development_takes_any_length_and_may_go_without(monkeypatch):
    monkeypatch.setenv("KASSA_ENV", "development")
    monkeypatch.setenv("KASSA_VAULT_FORWARD_SECRET", "f")
    assert Settings().checkout_token_refusal() is None  # no secret: no hosted checkout
    assert bootstrap.checkout_settings(Settings()) is None
    monkeypatch.setenv("KASSA_CHECKOUT_TOKEN_SECRET", "short")
    assert Settings().checkout_token_secrets() == ["short"]
    assert bootstrap.checkout_settings(Settings()) is not None


def test_missing_or_reused_secrets_stop_the_start_outside_development(monkeypatch):
    monkeypatch.setenv("KASSA_ENV", "test")
    monkeypatch.setenv("KASSA_VAULT_FORWARD_SECRET", "f" * 32)
    with pytest.raises(StartupError) as caught:
        bootstrap.check_checkout_secret(Settings())
    assert "KASSA_CHECKOUT_TOKEN_SECRET is not set" in caught.value.cause
    assert "KASSA_CHECKOUT_TOKEN_SECRET" in caught.value.remedy
    monkeypatch.setenv("KASSA_CHECKOUT_TOKEN_SECRET_PREVIOUS", LONG)  # verification only
    with pytest.raises(StartupError):
        bootstrap.check_checkout_secret(Settings())
    for reused in ("KASSA_CHECKOUT_TOKEN_SECRET", "KASSA_CHECKOUT_TOKEN_SECRET_PREVIOUS"):
        monkeypatch.setenv("KASSA_CHECKOUT_TOKEN_SECRET", LONG)
        monkeypatch.setenv(reused, "f" * 32)
        with pytest.raises(StartupError) as caught:
            bootstrap.check_checkout_secret(Settings())
        assert "forward secret" in caught.value.cause
    monkeypatch.setenv("KASSA_CHECKOUT_TOKEN_SECRET", LONG)
    monkeypatch.setenv("KASSA_CHECKOUT_TOKEN_SECRET_PREVIOUS", "p" * 32)
    bootstrap.check_checkout_secret(Settings())
    assert Settings().checkout_token_secrets() == [LONG, "p" * 32]
