"""Sealing of secrets kassa keeps for others (a merchant's PSP credentials) with AES-256-GCM
under versioned keys, so a database dump alone never reveals them.

A sealed value is ``version (4 bytes, big-endian) | nonce (12) | ciphertext+tag``: the prefix
says which key opens it, so old rows keep opening after a new key version is added (the
highest version seals). The associated data binds the ciphertext to its row (callers pass
the object's id and merchant), so a value copied onto another row does not open.

Keys: ``KASSA_SECRETS_KEYS`` (``v1:<base64 of 32 bytes>,v2:…``) or the file
``KASSA_SECRETS_KEY_FILE`` (default ``KASSA_HOME/secrets-keys``, one entry a line), the
vault keyring's format. Outside production a missing file is created with one fresh key, as
`kassa dev` does for the vault's KEK, so the two-command setup holds. These keys are not
the vault's key-encryption keys: the API holds these, only the vault holds those.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from kassa.vault.keyring import (
    KEY_BYTES,
    NONCE_BYTES,
    KeyringError,
    format_entry,
    parse_keyring,
    write_private,
)

VERSION_BYTES = 4


class SecretsBoxError(Exception):
    """The keys are missing or malformed, or a sealed value names a version not held."""


class OpenFailed(SecretsBoxError):
    """A sealed value did not authenticate: tampered, or its associated data differs."""


class SecretsBox:
    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise SecretsBoxError("no secrets key")
        for version, key in keys.items():
            if version < 1 or len(key) != KEY_BYTES:
                raise SecretsBoxError(f"secrets key v{version} must be a version > 0 with a "
                                      f"{KEY_BYTES}-byte key")
        self._keys = {v: AESGCM(k) for v, k in keys.items()}
        self.current = max(keys)
        # a key of its own for fingerprints, derived so that no key serves two purposes,
        # from the lowest version held: adding a version (a rotation) must not change a
        # fingerprint, or a request retried across it would no longer match its
        # Idempotency-Key; only retiring that version does (wait out idempotency_retention_hours)
        self.fingerprint_version = min(keys)
        self._mac_key = hmac.new(keys[self.fingerprint_version],
                                 b"kassa/secrets-box/fingerprint", hashlib.sha256).digest()

    @classmethod
    def from_text(cls, text: str) -> SecretsBox:
        try:
            return cls(parse_keyring(text))
        except KeyringError as exc:
            raise SecretsBoxError(str(exc).replace("keyring", "secrets key")) from None

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, plaintext, aad)
        return self.current.to_bytes(VERSION_BYTES, "big") + nonce + sealed

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < VERSION_BYTES + NONCE_BYTES + 16:
            raise OpenFailed("the sealed value is truncated")
        version = int.from_bytes(sealed[:VERSION_BYTES], "big")
        key = self._keys.get(version)
        if key is None:
            raise SecretsBoxError(f"the sealed value needs secrets key v{version}, which is "
                                  "not configured")
        nonce = sealed[VERSION_BYTES:VERSION_BYTES + NONCE_BYTES]
        try:
            return key.decrypt(nonce, sealed[VERSION_BYTES + NONCE_BYTES:], aad)
        except InvalidTag:
            raise OpenFailed("the sealed value did not authenticate") from None

    def fingerprint(self, data: bytes) -> str:
        """A keyed digest of a secret (what an Idempotency-Key's stored request hash is
        computed over instead of the secret: an unkeyed hash of a guessable secret would be
        an offline oracle for it)."""
        return hmac.new(self._mac_key, data, hashlib.sha256).hexdigest()

    @staticmethod
    def version_of(sealed: bytes) -> int:
        return int.from_bytes(sealed[:VERSION_BYTES], "big")


def new_key_file(path: Path) -> None:
    """A key file with one fresh key, unless one appeared meanwhile: the API and the
    workers `kassa dev` starts may race here, and all must end up with the same key (a
    replaced file would leave one process sealing with a key the others never see)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_private(tmp, format_entry(1, os.urandom(KEY_BYTES)) + "\n")
    try:
        os.link(tmp, path)  # atomic, and refuses to replace an existing file
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def load(*, keys: SecretStr | str | None, key_file: Path, create: bool) -> SecretsBox | None:
    """The box from the keys' text, else the key file; ``create``: make the file with one
    fresh key when there is none (development and tests). None: no keys configured (then
    merchant PSP accounts cannot be created, and say so)."""
    if keys is not None:
        text = keys.get_secret_value() if isinstance(keys, SecretStr) else keys
        return SecretsBox.from_text(text)
    if not key_file.exists():
        if not create:
            return None
        new_key_file(key_file)
    return SecretsBox.from_text(key_file.read_text())
