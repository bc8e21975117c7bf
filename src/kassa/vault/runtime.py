"""Builds the vault from settings: its keyring, its pool (the vault's own role), the
forwarder's PSP client. The vault's composition root, kept apart from bootstrap.py, which
wires the API and workers and never sees a key-encryption key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from kassa.config import Settings
from kassa.startup_errors import StartupError
from kassa.vault.cvc import CvcMemory
from kassa.vault.forward import Forwarder, parse_allow_list
from kassa.vault.keyring import KeyringError, LocalKeyring, new_keyring_file
from kassa.vault.service import Vault, VaultStartupError

Closer = Callable[[], Awaitable[None]]


def keyring_path(settings: Settings) -> Path:
    return settings.vault_kek_file or settings.home / "vault-kek"


def keyring(settings: Settings, *, create: bool = False) -> LocalKeyring:
    """KASSA_VAULT_KEKS, else the keyring file; ``create`` (development only) makes a file
    with one fresh KEK when there is none."""
    try:
        if settings.vault_keks is not None:
            return LocalKeyring(text=settings.vault_keks.get_secret_value())
        path = keyring_path(settings)
        if not path.exists() and create and settings.env != "production":
            new_keyring_file(path)
        return LocalKeyring(path=path)
    except KeyringError as exc:
        raise StartupError(f"the vault's key-encryption keys: {exc}",
                           "set KASSA_VAULT_KEK_FILE to a keyring file or KASSA_VAULT_KEKS to "
                           "v1:<base64 of 32 random bytes>") from None


def vault_dsn(settings: Settings, dsn: str) -> str:
    return settings.vault_database_url or dsn


async def build_vault(settings: Settings, dsn: str, *, create_keyring: bool = False,
                      pool_size: int = 8) -> tuple[Vault, Forwarder, Closer]:
    from kassa.db.pool import create_pool
    from kassa.vault.hop import AiohttpHop

    keys = keyring(settings, create=create_keyring)
    pool = await create_pool(vault_dsn(settings, dsn), min_size=1, max_size=pool_size)
    vault = Vault(pool=pool, keys=keys, cvcs=CvcMemory(settings.vault_cvc_ttl_seconds),
                  version_refresh_seconds=settings.vault_kek_refresh_seconds)
    try:
        await vault.check_keyring()
    except VaultStartupError as exc:
        await pool.close()
        raise StartupError(str(exc), "start the vault with the keyring that wrapped its keys "
                                     "(KASSA_VAULT_KEK_FILE / KASSA_VAULT_KEKS)") from None
    except BaseException:
        await pool.close()
        raise
    hop = AiohttpHop(max_connections=200)
    forwarder = Forwarder(vault, hop, allowed=parse_allow_list(settings.vault_allowed_hosts()),
                          default_timeout=settings.psp_timeout_seconds)

    async def close() -> None:
        await hop.aclose()
        await pool.close()

    return vault, forwarder, close
