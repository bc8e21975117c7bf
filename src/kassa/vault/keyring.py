"""Key-encryption keys (KEKs): the interface the vault wraps its data keys through, and the
local keyring that reads versioned KEKs from a file or the environment.

A KMS or HashiCorp Vault's transit engine fits the same interface (``wrap``/``unwrap`` by
version, with associated data; transit's ``encrypt`` takes it as ``context``/
``associated_data``): the KEK never leaves it, and the vault stores only what it returns.

Keyring text (file ``KASSA_VAULT_KEK_FILE`` or variable ``KASSA_VAULT_KEKS``): one
``v<N>:<base64 of 32 random bytes>`` per line (or comma separated); versions are positive
integers, the highest is the newest. ``kassa vault rotate-kek`` appends a new version to a
file keyring itself.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
_ENTRY = re.compile(r"^v(\d{1,9}):([A-Za-z0-9+/=_-]+)$")


class KeyringError(Exception):
    """The keyring is missing, malformed, or lacks a version the data needs."""


class UnwrapFailed(Exception):
    """A wrapped key did not authenticate: tampered, wrong KEK version or wrong context."""


class KeyEncryptionKeys(Protocol):
    """What the vault needs of a KEK holder; the KEK itself never leaves it."""

    def versions(self) -> Sequence[int]:
        """The versions this holder can use, oldest first."""
        ...

    async def wrap(self, version: int, key: bytes, aad: bytes) -> bytes: ...

    async def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        """Raises UnwrapFailed unless ``wrapped`` came from ``wrap`` with this version
        and ``aad``; KeyringError if the version is unknown."""
        ...


def parse_keyring(text: str) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for n, entry in enumerate(re.split(r"[,\n]", text), 1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        match = _ENTRY.match(entry)
        if match is None:
            raise KeyringError(f"keyring entry {n} is not v<N>:<base64 key>")
        version = int(match.group(1))
        try:
            key = base64.b64decode(match.group(2).replace("-", "+").replace("_", "/"),
                                   validate=True)
        except binascii.Error:
            raise KeyringError(f"keyring entry v{version} is not base64") from None
        if len(key) != KEY_BYTES or version < 1 or version in keys:
            raise KeyringError(f"keyring entry v{version} must be a new version > 0 with a "
                               f"{KEY_BYTES}-byte key")
        keys[version] = key
    return keys


def format_entry(version: int, key: bytes) -> str:
    return f"v{version}:{base64.b64encode(key).decode()}"


class LocalKeyring:
    """KEKs held in this process, from a file (re-read when a version is missing, so a
    running vault learns a version `rotate-kek` added) or from a variable's text."""

    def __init__(self, *, path: Path | None = None, text: str | None = None) -> None:
        if (path is None) == (text is None):
            raise KeyringError("a keyring is either a file or a text")
        self.path = path
        self._keys: dict[int, bytes] = {}
        self._text = text
        self._load()

    def _load(self) -> None:
        if self.path is not None:
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                raise KeyringError(f"the keyring file {self.path} does not exist") from None
        else:
            text = self._text or ""
        keys = parse_keyring(text)
        if not keys:
            raise KeyringError("the keyring holds no key-encryption key")
        self._keys = keys

    def versions(self) -> Sequence[int]:
        return sorted(self._keys)

    def _key(self, version: int) -> bytes:
        if version not in self._keys and self.path is not None:
            self._load()
        try:
            return self._keys[version]
        except KeyError:
            raise KeyringError(f"the keyring has no KEK version {version}") from None

    async def wrap(self, version: int, key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._key(version)).encrypt(nonce, key, _kek_aad(version, aad))

    async def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        kek = self._key(version)
        try:
            return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                       _kek_aad(version, aad))
        except (InvalidTag, ValueError):
            raise UnwrapFailed("the data key did not authenticate under this KEK") from None

    def add_version(self) -> int:
        """Append a new random KEK to the keyring file (atomically, mode 0600); returns its
        version."""
        if self.path is None:
            raise KeyringError("this keyring comes from KASSA_VAULT_KEKS: add a new "
                               "v<N>:<key> entry there, then run rotate-kek again")
        self._load()
        version = max(self._keys) + 1
        key = os.urandom(KEY_BYTES)
        lines = [format_entry(v, k) for v, k in sorted(self._keys.items())]
        write_private(self.path, "\n".join([*lines, format_entry(version, key)]) + "\n")
        self._keys[version] = key
        return version


def _kek_aad(version: int, aad: bytes) -> bytes:
    return b"kassa-vault/kek/v%d|" % version + aad


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` readable by its owner only, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def new_keyring_file(path: Path) -> None:
    """A keyring file with one fresh KEK (development: `kassa dev` makes one in
    KASSA_HOME)."""
    write_private(path, format_entry(1, os.urandom(KEY_BYTES)) + "\n")
