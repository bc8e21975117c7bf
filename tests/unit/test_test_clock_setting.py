"""KASSA_TEST_CLOCK_FILE replaces the clock of a process (tests move simulated days forward
under running workers): read at every call, and refused in production, where it would let
whoever can write one file move every payout's day."""

from __future__ import annotations

import pydantic
import pytest

from kassa.bootstrap import file_clock
from kassa.cli.reporting import explain
from kassa.config import Settings


def test_the_file_is_the_clock_at_every_call(tmp_path):
    path = tmp_path / "clock"
    path.write_text("1700000000\n")
    now = file_clock(path)
    assert now() == 1_700_000_000
    path.write_text("1700086400")
    assert now() == 1_700_086_400


def test_refused_in_production(monkeypatch, tmp_path):
    monkeypatch.setenv("KASSA_ENV", "production")
    monkeypatch.setenv("KASSA_TEST_CLOCK_FILE", str(tmp_path / "clock"))
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings()
    cause, _, code = explain(caught.value)
    assert "KASSA_TEST_CLOCK_FILE" in cause and code == 2
    monkeypatch.setenv("KASSA_ENV", "test")
    assert Settings().test_clock_file == tmp_path / "clock"
