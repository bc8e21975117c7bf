"""The card vault on loopback for tests, on the test's own event loop, and a kassa whose PSP
client forwards card placeholders to it (as bootstrap wires it from settings)."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from kassa import bootstrap
from kassa.checkout import tokens
from kassa.config import Settings
from kassa.services.context import Kassa
from kassa.vault.app import create_forward_app, create_vault_app
from kassa.vault.runtime import build_vault
from kassa.vault.service import Vault
from tests.support.api_server import serving

FORWARD_TOKEN = "test-forward-token-" + "x" * 16
# the hosted checkout's tokens have a secret of their own (generated as `kassa dev` does)
CHECKOUT_TOKEN_SECRET = secrets.token_hex(32)


def keyring_text(*versions: int) -> str:
    return ",".join(f"v{v}:{base64.b64encode(os.urandom(32)).decode()}" for v in versions)


# one keyring per test session, as the session shares one database (a vault started with
# another keyring than the one that wrapped its keys refuses to start)
SESSION_KEKS = keyring_text(1)


@dataclass
class RunningVault:
    url: str  # the public listener (payment methods, what browsers reach)
    forward_url: str  # the private one (the forwarding endpoint)
    vault: Vault
    settings: Settings  # the settings kassa's API and workers would run with


@contextlib.asynccontextmanager
async def running_vault(settings: Settings, dsn: str, *, keks: str | None = None,
                        **overrides: object) -> AsyncIterator[RunningVault]:
    vault_settings = settings.model_copy(update={
        "vault_keks": SecretStr(keks or SESSION_KEKS),
        "vault_forward_secret": SecretStr(FORWARD_TOKEN),
        "checkout_token_secret": SecretStr(CHECKOUT_TOKEN_SECRET), **overrides})
    vault, forwarder, close = await build_vault(vault_settings, dsn, pool_size=4)
    try:
        app = create_vault_app(vault=vault, key_cache_seconds=0.0, checkout_keys=(
            tokens.verifying_keys(vault_settings.checkout_token_secrets())))
        private = create_forward_app(forwarder=forwarder, forward_token=FORWARD_TOKEN)
        async with serving(app) as url, serving(private) as forward_url:
            port = int(forward_url.rsplit(":", 1)[1])
            yield RunningVault(url, forward_url, vault, vault_settings.model_copy(
                update={"vault_url": url, "vault_forward_port": port, "vault_keks": None}))
    finally:
        await close()


@contextlib.asynccontextmanager
async def kassa_through(running: RunningVault, dsn: str) -> AsyncIterator[Kassa]:
    """A kassa (API and workers' composition) that never holds a key-encryption key."""
    k, close = await bootstrap.build(running.settings, dsn, pool_size=6)
    try:
        yield k
    finally:
        await close()


async def tokenise(vault_url: str, key: str, number: str, *, cvc: str | None = "123",
                   month: str = "12", year: str = "2034") -> httpx.Response:
    data = {"type": "card", "card[number]": number, "card[exp_month]": month,
            "card[exp_year]": year, "billing_details[name]": "Jenny Rosen"}
    if cvc is not None:
        data["card[cvc]"] = cvc
    async with httpx.AsyncClient(base_url=vault_url) as c:
        return await c.post("/v1/payment_methods", auth=(key, ""), data=data)
