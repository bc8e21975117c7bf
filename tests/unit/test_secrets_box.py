"""kassa/secrets_box.py: a sealed value opens only with its key version and its associated
data; tampering, a missing version or another row's data refuse it; the key file is made
once and shared by processes racing to make it."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from kassa import secrets_box
from kassa.secrets_box import OpenFailed, SecretsBox, SecretsBoxError


def key_text(*versions: int) -> str:
    return ",".join(f"v{v}:{base64.b64encode(os.urandom(32)).decode()}" for v in versions)


AAD = b"kassa/psp-account-credentials|pspacct_1|acct_1"


def test_round_trip_with_the_version_prefix() -> None:
    box = SecretsBox.from_text(key_text(1, 2))
    sealed = box.seal(b'{"api_key":"sk_test_123"}', AAD)
    assert SecretsBox.version_of(sealed) == 2  # the highest version seals
    assert b"sk_test_123" not in sealed
    assert box.open(sealed, AAD) == b'{"api_key":"sk_test_123"}'
    assert box.seal(b"x", AAD) != box.seal(b"x", AAD)  # a fresh nonce each time


def test_an_older_version_still_opens_after_a_new_key_is_added() -> None:
    v1 = key_text(1)
    sealed = SecretsBox.from_text(v1).seal(b"secret", AAD)
    both = SecretsBox.from_text(v1 + "," + key_text(2))
    assert both.current == 2
    assert both.open(sealed, AAD) == b"secret"


@pytest.mark.parametrize("where", [0, 3, 4, 15, 16, -1])
def test_tampering_anywhere_is_refused(where: int) -> None:
    box = SecretsBox.from_text(key_text(1))
    sealed = bytearray(box.seal(b"secret", AAD))
    sealed[where] ^= 0x01
    with pytest.raises(SecretsBoxError):  # a changed version byte names another key
        box.open(bytes(sealed), AAD)


def test_truncated_is_refused() -> None:
    box = SecretsBox.from_text(key_text(1))
    with pytest.raises(OpenFailed):
        box.open(box.seal(b"secret", AAD)[:20], AAD)


def test_a_version_not_held_is_refused_by_name() -> None:
    sealed = SecretsBox.from_text(key_text(3)).seal(b"secret", AAD)
    with pytest.raises(SecretsBoxError, match="v3"):
        SecretsBox.from_text(key_text(1, 2)).open(sealed, AAD)


def test_the_same_version_with_another_key_does_not_open() -> None:
    sealed = SecretsBox.from_text(key_text(1)).seal(b"secret", AAD)
    with pytest.raises(OpenFailed):
        SecretsBox.from_text(key_text(1)).open(sealed, AAD)


def test_another_rows_associated_data_does_not_open() -> None:
    box = SecretsBox.from_text(key_text(1))
    sealed = box.seal(b"secret", AAD)
    for other in (b"kassa/psp-account-credentials|pspacct_2|acct_1",
                  b"kassa/psp-account-credentials|pspacct_1|acct_2", b""):
        with pytest.raises(OpenFailed):
            box.open(sealed, other)


@pytest.mark.parametrize("text", ["", "v1:notbase64!", "v0:" + base64.b64encode(
    os.urandom(32)).decode(), "v1:" + base64.b64encode(os.urandom(16)).decode(), "k1:abc"])
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(SecretsBoxError):
        SecretsBox.from_text(text)


def test_load_makes_the_key_file_once_and_only_outside_production(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secrets-keys"
    assert secrets_box.load(keys=None, key_file=path, create=False) is None
    assert not path.exists()
    first = secrets_box.load(keys=None, key_file=path, create=True)
    assert first is not None and path.exists() and path.stat().st_mode & 0o077 == 0
    text = path.read_text()
    secrets_box.new_key_file(path)  # a second process racing to make it keeps the first
    assert path.read_text() == text
    again = secrets_box.load(keys=None, key_file=path, create=True)
    assert again is not None
    assert again.open(first.seal(b"secret", AAD), AAD) == b"secret"
    assert list(tmp_path.joinpath("home").iterdir()) == [path]  # no temporary file left


def test_keys_given_win_over_the_file(tmp_path: Path) -> None:
    given = key_text(7)
    box = secrets_box.load(keys=given, key_file=tmp_path / "none", create=True)
    assert box is not None and box.current == 7
    assert not (tmp_path / "none").exists()


def test_the_fingerprint_is_keyed_and_stable() -> None:
    text = key_text(1)
    box = SecretsBox.from_text(text)
    assert box.fingerprint(b"secret") == SecretsBox.from_text(text).fingerprint(b"secret")
    assert box.fingerprint(b"secret") != SecretsBox.from_text(key_text(1)).fingerprint(
        b"secret")
    assert box.fingerprint(b"secret") != box.fingerprint(b"secret2")


def test_the_fingerprint_survives_a_rotation() -> None:
    # a new (higher) version seals from now on; the fingerprint stays under the lowest, so
    # an Idempotency-Key's stored digest still matches the request retried after rotation
    text = key_text(1)
    rotated = SecretsBox.from_text(text + "," + key_text(2))
    assert rotated.current == 2 and rotated.fingerprint_version == 1
    assert rotated.fingerprint(b"secret") == SecretsBox.from_text(text).fingerprint(b"secret")


def test_the_composition_root_makes_a_key_outside_production_only(tmp_path: Path) -> None:
    from kassa import bootstrap
    from kassa.config import Settings
    from kassa.startup_errors import StartupError

    dev = bootstrap.secrets(Settings(env="development", home=tmp_path / "dev"))
    assert dev is not None and (tmp_path / "dev" / "secrets-keys").exists()
    assert bootstrap.secrets(Settings(env="production", home=tmp_path / "prod")) is None
    assert not (tmp_path / "prod").exists()
    with pytest.raises(StartupError, match="secrets keys"):
        bootstrap.secrets(Settings(env="production", secrets_keys="v1:short"))
