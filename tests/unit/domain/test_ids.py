"""Object ids and client secrets: the base62 rendering is the one-digit-at-a-time one."""

from __future__ import annotations

import os
import re

from kassa.domain import ids
from kassa.services.client_secret import new_client_secret


def _one_digit_at_a_time(prefix: str, raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    chars = []
    for _ in range(24):
        n, r = divmod(n, 62)
        chars.append(ids.ALPHABET[r])
    return f"{prefix}_{''.join(chars)}"


def test_encode_renders_the_same_digits_as_one_division_per_digit() -> None:
    samples = [bytes(18), b"\xff" * 18, bytes(range(18))] + [os.urandom(18) for _ in range(500)]
    for raw in samples:
        assert ids.encode("pi", raw) == _one_digit_at_a_time("pi", raw)


def test_client_secret_is_the_intent_id_and_24_fresh_base62_characters() -> None:
    secrets_made = {new_client_secret("pi_123") for _ in range(200)}
    assert len(secrets_made) == 200
    for secret in secrets_made:
        assert re.fullmatch(r"pi_123_secret_[0-9A-Za-z]{24}", secret)
