"""Merchants' PSP accounts inside the registry, through real PostgreSQL: sealed credentials
open only on their own row; an adapter is rebuilt when its row changes (also when another
process changed it) and not before its cache period says to look; a rotation of the
secrets key keeps old rows opening and seals new ones under the new version; the router
never sends a payment to another merchant's account, even from a configuration row that
names one."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kassa.db import psp_accounts as psp_accounts_db
from kassa.db import routing_configs as routing_configs_db
from kassa.psp.accounts import MerchantAccounts
from kassa.psp.base import PSPUnavailable
from kassa.secrets_box import SecretsBox
from kassa.services import merchants
from tests.integration.routing.conftest import A, World, routed_world
from tests.support.simulator_server import running_simulator
from tests.support.vault import SESSION_SECRETS_KEYS


@pytest.fixture(scope="module")
def two_sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


@pytest.fixture
async def world(dsn, two_sims) -> AsyncIterator[World]:
    async with routed_world(dsn, *two_sims) as w:
        yield w


async def account(w: World, url: str, **extra: Any) -> str:
    r = await w.api.post("/v1/psp_accounts", headers=w.auth, json={
        "psp": "simulator", "base_url": url, "currencies": ["usd"],
        "credentials": {"webhook_secret": "s3cret-one"}, **extra})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def built_url(adapter: Any) -> str:
    inner = getattr(adapter, "inner", adapter)  # the monitored wrapper's adapter
    return str(inner._base_url)


async def test_credentials_copied_onto_another_row_do_not_open(world: World) -> None:
    w = world
    first, second = await account(w, w.urls[A]), await account(w, w.urls[A])
    accounts = w.kassa.psps.merchant_accounts  # type: ignore[attr-defined]
    assert built_url(await accounts.adapter(first)) == w.urls[A]
    sealed = await w.kassa.pool.fetchval("SELECT credentials FROM psp_accounts WHERE id = $1",
                                         first)
    await w.kassa.pool.execute("UPDATE psp_accounts SET credentials = $2,"
                               " revision = revision + 1 WHERE id = $1", second, sealed)
    accounts.forget(second)
    with pytest.raises(PSPUnavailable, match="do not open"):
        await accounts.adapter(second)
    assert built_url(await accounts.adapter(first)) == w.urls[A]


async def test_a_changed_row_is_rebuilt_once_its_cache_period_says_to_look(
        world: World, two_sims) -> None:
    w = world
    a_url, _ = two_sims
    name = await account(w, a_url)
    now = [0.0]
    box = SecretsBox.from_text(SESSION_SECRETS_KEYS)
    other_process = MerchantAccounts(w.kassa.pool, box, lambda row, creds: _Built(row, creds),
                                     cache_seconds=5.0, clock=lambda: now[0])
    before = await other_process.adapter(name)
    assert before.url == a_url and before.secret == "s3cret-one"
    assert await other_process.adapter(name) is before
    # this process changes the row; the other learns only by looking at its revision
    # (its credentials: the account's identity, base_url, does not change)
    r = await w.api.post(f"/v1/psp_accounts/{name}", headers=w.auth, json={
        "credentials": {"webhook_secret": "s3cret-two"}})
    assert r.status_code == 200, r.text
    assert await other_process.adapter(name) is before  # within its cache period
    now[0] = 6.0
    after = await other_process.adapter(name)
    assert after is not before and (after.url, after.secret) == (a_url, "s3cret-two")
    now[0] = 12.0  # looked again, nothing changed: the same adapter
    assert await other_process.adapter(name) is after
    assert built_url(await w.kassa.psps.merchant_accounts.adapter(name)) == a_url  # type: ignore[attr-defined]


class _Built:
    def __init__(self, row: Any, creds: Any) -> None:
        self.name = row["id"]
        self.url = row["settings"]["base_url"]
        self.secret = creds.get("webhook_secret")


async def test_a_new_secrets_key_keeps_old_rows_opening_and_seals_new_ones(
        world: World) -> None:
    w = world
    name = await account(w, w.urls[A])
    old = SecretsBox.from_text(SESSION_SECRETS_KEYS)
    rotated = SecretsBox.from_text(SESSION_SECRETS_KEYS + ",v2:"
                                   + base64.b64encode(os.urandom(32)).decode())
    w.kassa.secrets = rotated
    try:
        reader = MerchantAccounts(w.kassa.pool, rotated, lambda row, creds: _Built(row, creds))
        assert (await reader.adapter(name)).secret == "s3cret-one"
        r = await w.api.post(f"/v1/psp_accounts/{name}", headers=w.auth,
                             json={"credentials": {"webhook_secret": "s3cret-v2"}})
        assert r.status_code == 200, r.text
        sealed = bytes(await w.kassa.pool.fetchval(
            "SELECT credentials FROM psp_accounts WHERE id = $1", name))
        assert SecretsBox.version_of(sealed) == 2
        reader.forget(name)
        assert (await reader.adapter(name)).secret == "s3cret-v2"
        stale = MerchantAccounts(w.kassa.pool, old, lambda row, creds: _Built(row, creds))
        with pytest.raises(PSPUnavailable):  # a process without v2 cannot open it
            await stale.adapter(name)
    finally:
        w.kassa.secrets = old


async def test_another_merchants_account_is_never_routed_to(world: World) -> None:
    w = world
    other = await merchants.create_merchant(w.kassa, name="Other")
    theirs = await account(w, w.urls[A])  # w's merchant's account …
    # … named by the other merchant's configuration, written past the API's check
    async with w.kassa.pool.acquire() as conn:
        cfg = await routing_configs_db.insert_config(
            conn, config_id="rcfg_foreign", merchant_id=other["merchant_id"], name=None,
            rules=[], default_route={"strategy": "single", "psp": theirs}, created=0)
        await routing_configs_db.activate(conn, merchant_id=other["merchant_id"],
                                          config_id=cfg["id"], now=0)
    r = await w.api.post("/v1/payment_intents", headers={
        "Authorization": f"Bearer {other['secret_key']}"}, json={
        "amount": 1500, "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": True})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    psp = await w.kassa.pool.fetchval("SELECT psp FROM payment_intents WHERE id = $1",
                                      r.json()["id"])
    assert psp == A  # the platform's default, not w's account
    row = await psp_accounts_db.get_account(w.kassa.pool, merchant_id=w.merchant_id,
                                            account_id=theirs)
    assert row is not None and row["revision"] == 1


async def test_an_account_a_configuration_names_is_looked_for_at_once(world: World) -> None:
    """A replica may learn of a configuration before its accounts snapshot holds the
    account the configuration names: the snapshot is read again then (at most once a
    second), so the payment is not sent to the default for a whole cache period."""
    w = world
    now = [0.0]
    replica = MerchantAccounts(w.kassa.pool, SecretsBox.from_text(SESSION_SECRETS_KEYS),
                               lambda row, creds: _Built(row, creds), cache_seconds=60.0,
                               clock=lambda: now[0])
    await replica.refresh()
    first = await account(w, w.urls[A])
    await replica.refresh()
    assert replica.facts(first) is None  # within the period, nothing asked for it
    now[0] = 0.5
    await replica.refresh([first])
    facts = replica.facts(first)
    assert facts is not None and facts.takes(merchant_id=w.merchant_id, currency="usd")
    assert not facts.takes(merchant_id=w.merchant_id, currency="eur")
    assert not facts.takes(merchant_id="acct_other", currency="usd")
    second = await account(w, w.urls[A])
    now[0] = 1.0
    await replica.refresh([second])  # forced half a second ago: not again yet
    assert replica.facts(second) is None
    now[0] = 1.6
    await replica.refresh([second, "simulator"])
    assert replica.facts(second) is not None
