"""The CLI's start-up plumbing without processes: URLs fit to print, signals held back while a
server starts or stops, and errors explained as cause and remedy."""

from __future__ import annotations

import os
import signal

import pytest

from kassa.cli.database import redacted, service_role
from kassa.cli.process import signals_deferred
from kassa.cli.reporting import explain
from kassa.config import Settings
from kassa.startup_errors import StartupError


def test_redacted_hides_only_the_password():
    assert redacted("postgresql://app:s3cr%40t@db:5432/kassa") == "postgresql://app:***@db:5432/kassa"
    assert redacted("postgresql://app@db/kassa") == "postgresql://app@db/kassa"


def test_a_signal_inside_signals_deferred_takes_effect_after_it():
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        steps = []
        with pytest.raises(KeyboardInterrupt), signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("still running")  # not cut in half
        assert steps == ["still running"]
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_explain_startup_errors_and_the_rest():
    assert explain(StartupError("port busy", "change it")) == ("port busy", "change it", 2)
    cause, remedy, code = explain(ValueError("boom\nsecond line"))
    assert (cause, code) == ("unexpected error: ValueError: boom", 1)
    assert "--debug" in remedy


def test_the_serving_role_is_the_database_urls_user_when_the_owner_migrates():
    two = Settings(database_url="postgresql://app@db/k",
                   migration_database_url="postgresql://owner@db/k")
    assert service_role(two) == "app"
    assert service_role(Settings(database_url="postgresql://app@db/k")) is None
    same = Settings(database_url="postgresql://app@db/k",
                    migration_database_url="postgresql://app:pw@db/k")
    assert service_role(same) is None
    explicit = Settings(database_url="postgresql://app@db/k", service_role="svc")
    assert service_role(explicit) == "svc"
