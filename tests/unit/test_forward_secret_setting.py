"""KASSA_VAULT_FORWARD_SECRET authenticates kassa's processes to the vault's forwarding
endpoint: in production it is refused at start-up when shorter than 32 characters, with a
message naming the setting."""

from __future__ import annotations

import pydantic
import pytest

from kassa.cli.reporting import explain
from kassa.config import Settings


def test_a_short_forward_secret_is_refused_in_production(monkeypatch):
    monkeypatch.setenv("KASSA_ENV", "production")
    monkeypatch.setenv("KASSA_VAULT_FORWARD_SECRET", "x" * 31)
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings()
    cause, remedy, code = explain(caught.value)
    assert "KASSA_VAULT_FORWARD_SECRET" in cause and "at least 32 characters" in cause
    assert code == 2 and "KASSA_VAULT_FORWARD_SECRET" in remedy
    assert "x" * 31 not in cause + remedy  # the secret is not echoed


def test_long_enough_in_production_and_any_length_in_test_or_development(monkeypatch):
    monkeypatch.setenv("KASSA_ENV", "production")
    monkeypatch.setenv("KASSA_VAULT_FORWARD_SECRET", "x" * 32)
    assert Settings().vault_forward_token() == "x" * 32
    monkeypatch.delenv("KASSA_VAULT_FORWARD_SECRET")
    assert Settings().vault_forward_token() is None  # no vault: nothing to check
    for env in ("test", "development"):
        monkeypatch.setenv("KASSA_ENV", env)
        monkeypatch.setenv("KASSA_VAULT_FORWARD_SECRET", "short")
        assert Settings().vault_forward_token() == "short"
