"""/v1/psp_accounts over real HTTP (uvicorn on loopback): a merchant brings its own
simulator account (a second simulator server, not one the platform knows), routes to it by
its id, and its payments are charged, captured and refunded there — counted in that
simulator's own books, in kassa's payments and in kassa's ledger, and absent from the
platform's simulator. Disabling the account sends new payments back to the platform's
default; the account's credentials appear in no response, log line or database column."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.psp.simulator import signature
from kassa.services import merchants
from kassa.services.context import Kassa
from kassa.services.idempotency import fingerprint
from tests.support.api_server import serving
from tests.support.databases import migrated_database
from tests.support.simulator_server import running_simulator
from tests.support.vault import SESSION_SECRETS_KEYS

WEBHOOK_SECRET = "sim-account-webhook-secret-4f1c0b"  # the credential that must never leak
PLATFORM_SECRET = "platform-simulator-webhook-secret"


@dataclass
class World:
    kassa: Kassa
    api: httpx.AsyncClient
    platform_sim: httpx.AsyncClient
    own_sim: httpx.AsyncClient
    own_url: str
    auth: dict[str, str]
    merchant_id: str
    other_auth: dict[str, str]

    async def post(self, path: str, auth: dict[str, str] | None = None,
                   **body: Any) -> httpx.Response:
        return await self.api.post(path, headers=auth or self.auth, json=body)

    async def pay(self, amount: int, currency: str = "usd", **extra: Any) -> dict[str, Any]:
        r = await self.post("/v1/payment_intents", amount=amount, currency=currency,
                            payment_method="pm_card_visa", confirm=True, **extra)
        assert r.status_code == 200, r.text
        return r.json()

    async def books(self, sim: httpx.AsyncClient) -> list[dict[str, Any]]:
        r = await sim.get("/_sim/authorizations")
        assert r.status_code == 200, r.text
        return [a for a in r.json() if a["merchant_id"] == self.merchant_id]

    async def receivable(self, psp: str) -> int:
        value = await self.kassa.pool.fetchval(
            "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " WHERE t.merchant_id = $1 AND e.account = $2 AND e.layer = 'posted'",
            self.merchant_id, f"psp:{psp}:receivable")
        return int(value)

    async def route_single(self, psp: str, auth: dict[str, str] | None = None
                           ) -> httpx.Response:
        r = await self.post("/v1/routing_configs", auth,
                            default_route={"strategy": "single", "psp": psp})
        if r.status_code != 200:
            return r
        return await self.post(f"/v1/routing_configs/{r.json()['id']}/activate", auth)


@pytest.fixture(scope="module")
def module_dsn(server_url: str) -> Iterator[str]:
    with migrated_database(server_url, prefix="kassa_pspacct") as url:
        yield url


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as platform, running_simulator() as own:
        yield platform, own


@pytest.fixture
async def world(module_dsn: str, sims: tuple[str, str]) -> AsyncIterator[World]:
    platform_url, own_url = sims
    settings = Settings(env="test", simulator_url=platform_url, psp_timeout_seconds=5.0,
                        api_key_cache_seconds=0.0, routing_cache_seconds=0.0,
                        db_write_batch=1, secrets_keys=SESSION_SECRETS_KEYS,
                        simulator_webhook_secret=PLATFORM_SECRET)
    k, close = await bootstrap.build(settings, module_dsn, pool_size=6)
    app = create_app(kassa=k, key_cache_seconds=0.0)
    try:
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as api, \
                httpx.AsyncClient(base_url=platform_url) as platform, \
                httpx.AsyncClient(base_url=own_url) as own:
            m = await merchants.create_merchant(k, name="Own account merchant")
            other = await merchants.create_merchant(k, name="Other merchant")
            yield World(kassa=k, api=api, platform_sim=platform, own_sim=own,
                        own_url=own_url,
                        auth={"Authorization": f"Bearer {m['secret_key']}"},
                        merchant_id=m["merchant_id"],
                        other_auth={"Authorization": f"Bearer {other['secret_key']}"})
    finally:
        await close()


async def create_account(w: World, **extra: Any) -> dict[str, Any]:
    r = await w.post("/v1/psp_accounts", psp="simulator", base_url=w.own_url,
                     currencies=["usd", "GBP"],
                     credentials={"webhook_secret": WEBHOOK_SECRET}, **extra)
    assert r.status_code == 200, r.text
    return r.json()


async def test_own_account_takes_the_merchants_payments_and_money_counts_at_both_ends(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    w = world
    seen: list[str] = []
    account = await create_account(w)
    seen.append(orjson.dumps(account).decode())
    assert account["object"] == "psp_account" and account["id"].startswith("pspacct_")
    assert (account["psp"], account["enabled"], account["currencies"], account["base_url"],
            account["livemode"]) == ("simulator", True, ["gbp", "usd"], w.own_url, False)
    assert "credentials" not in account

    r = await w.route_single(account["id"])
    assert r.status_code == 200, r.text
    paid = [await w.pay(amount) for amount in (1000, 2500, 4200)]
    assert all(p["status"] == "succeeded" for p in paid), paid
    manual = await w.pay(7000, capture_method="manual")
    assert manual["status"] == "requires_capture"
    r = await w.post(f"/v1/payment_intents/{manual['id']}/capture", amount_to_capture=5000)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    r = await w.post("/v1/refunds", payment_intent=paid[0]["id"], amount=400)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text

    own = await w.books(w.own_sim)
    assert sorted(a["amount"] for a in own) == [1000, 2500, 4200, 7000]
    assert sum(a["amount_captured"] for a in own) == 1000 + 2500 + 4200 + 5000
    assert sum(a["amount_refunded"] for a in own) == 400
    assert await w.books(w.platform_sim) == []  # the platform's simulator saw none of it
    psps = {r["psp"] for r in await w.kassa.pool.fetch(
        "SELECT psp FROM payment_intents WHERE merchant_id = $1", w.merchant_id)}
    assert psps == {account["id"]}
    # kassa's ledger: what the merchant's own account owes equals what it captured less
    # what it refunded, to the cent
    assert await w.receivable(account["id"]) == 1000 + 2500 + 4200 + 5000 - 400
    assert await w.receivable("simulator") == 0

    # a currency the account does not take is never sent there: the platform's default
    eur = await w.pay(900, currency="eur")
    assert eur["status"] == "succeeded"
    assert [a["amount"] for a in await w.books(w.platform_sim)] == [900]
    assert len(await w.books(w.own_sim)) == 4

    # disabled: new payments go to the platform's default (as with no usable account),
    # while the payments it took still refund there
    r = await w.post(f"/v1/psp_accounts/{account['id']}", enabled=False)
    assert r.status_code == 200 and r.json()["enabled"] is False, r.text
    seen.append(r.text)
    after = await w.pay(1100)
    assert after["status"] == "succeeded"
    assert sorted(a["amount"] for a in await w.books(w.platform_sim)) == [900, 1100]
    r = await w.post("/v1/refunds", payment_intent=paid[1]["id"])
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    own = await w.books(w.own_sim)
    assert len(own) == 4 and sum(a["amount_refunded"] for a in own) == 400 + 2500
    assert await w.receivable(account["id"]) == 1000 + 2500 + 4200 + 5000 - 400 - 2500
    assert await w.receivable("simulator") == 900 + 1100

    for got in (await w.api.get(f"/v1/psp_accounts/{account['id']}", headers=w.auth),
                await w.api.get("/v1/psp_accounts", headers=w.auth)):
        assert got.status_code == 200
        seen.append(got.text)
    assert all(WEBHOOK_SECRET not in text for text in seen)
    assert WEBHOOK_SECRET not in caplog.text
    # at rest: the row holds a sealed value, never the secret
    row = await w.kassa.pool.fetchrow("SELECT * FROM psp_accounts WHERE id = $1",
                                      account["id"])
    assert WEBHOOK_SECRET.encode() not in bytes(row["credentials"])
    assert WEBHOOK_SECRET not in orjson.dumps({k: v for k, v in dict(row).items()
                                               if k != "credentials"}, default=str).decode()


async def test_the_accounts_webhooks_verify_with_its_own_secret_only(world: World) -> None:
    w = world
    account = await create_account(w)
    body = orjson.dumps({"id": "evt_sim_1", "type": "sim.nothing_kassa_acts_on",
                         "sequence": 1, "data": {"object": {}}})
    now = int(time.time())
    url = f"/psp/{account['id']}/webhooks"
    ok = await w.api.post(url, content=body, headers={
        signature.HEADER: signature.header(WEBHOOK_SECRET, now, body)})
    assert ok.status_code == 200, ok.text
    for wrong in (PLATFORM_SECRET, "guess"):
        r = await w.api.post(url, content=body, headers={
            signature.HEADER: signature.header(wrong, now, body)})
        assert r.status_code == 400 and r.json()["error"]["code"] == \
            "webhook_signature_invalid", r.text
    r = await w.api.post("/psp/pspacct_doesnotexist/webhooks", content=body, headers={
        signature.HEADER: signature.header(WEBHOOK_SECRET, now, body)})
    assert r.status_code == 400, r.text


async def test_rotation_takes_effect_at_once_in_this_process(world: World) -> None:
    w = world
    account = await create_account(w)
    body = orjson.dumps({"id": "evt_sim_2", "type": "sim.nothing", "sequence": 1,
                         "data": {"object": {}}})
    url = f"/psp/{account['id']}/webhooks"

    async def accepted(secret: str) -> bool:
        r = await w.api.post(url, content=body, headers={
            signature.HEADER: signature.header(secret, int(time.time()), body)})
        return r.status_code == 200

    assert await accepted(WEBHOOK_SECRET)
    r = await w.post(f"/v1/psp_accounts/{account['id']}",
                     credentials={"webhook_secret": "rotated-secret-7d2e"})
    assert r.status_code == 200 and "rotated-secret-7d2e" not in r.text, r.text
    assert await accepted("rotated-secret-7d2e")
    assert not await accepted(WEBHOOK_SECRET)
    # its identity at the PSP does not change (its payments are followed up there): the
    # same base_url again is fine, another one is a 400 and nothing changes
    r = await w.post(f"/v1/psp_accounts/{account['id']}", base_url=w.own_url)
    assert r.status_code == 200, r.text
    r = await w.post(f"/v1/psp_accounts/{account['id']}", base_url="http://127.0.0.1:9")
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (
        "psp_account_identity_immutable", "base_url")
    got = (await w.api.get(f"/v1/psp_accounts/{account['id']}", headers=w.auth)).json()
    assert got["base_url"] == w.own_url


async def test_tenancy_deletion_and_bad_input(world: World) -> None:
    w = world
    account = await create_account(w)
    # another merchant cannot see it, route to it, change or delete it
    r = await w.api.get(f"/v1/psp_accounts/{account['id']}", headers=w.other_auth)
    assert r.status_code == 404
    r = await w.route_single(account["id"], w.other_auth)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("resource_missing", "default_route[psp]")
    r = await w.post(f"/v1/psp_accounts/{account['id']}", w.other_auth, enabled=False)
    assert r.status_code == 404
    r = await w.api.delete(f"/v1/psp_accounts/{account['id']}", headers=w.other_auth)
    assert r.status_code == 404

    # named by the active configuration: not deleted
    assert (await w.route_single(account["id"])).status_code == 200
    r = await w.api.delete(f"/v1/psp_accounts/{account['id']}", headers=w.auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "psp_account_in_use", r.text
    assert (await w.route_single("simulator")).status_code == 200
    r = await w.api.delete(f"/v1/psp_accounts/{account['id']}", headers=w.auth)
    assert r.status_code == 200 and r.json() == {
        "id": account["id"], "object": "psp_account", "deleted": True}
    r = await w.api.get(f"/v1/psp_accounts/{account['id']}", headers=w.auth)
    assert r.status_code == 404
    listed = (await w.api.get("/v1/psp_accounts", headers=w.auth)).json()["data"]
    assert account["id"] not in [a["id"] for a in listed]
    r = await w.route_single(account["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "resource_missing"

    # a disabled account cannot be named by a new configuration
    disabled = await create_account(w, enabled=False)
    r = await w.route_single(disabled["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "psp_account_disabled"

    bad: list[tuple[dict[str, Any], str]] = [
        ({"psp": "paypal", "currencies": ["usd"]}, "psp"),
        ({"psp": "simulator", "base_url": w.own_url, "currencies": ["usd", "xyz"]},
         "currencies[1]"),
        ({"psp": "simulator", "base_url": w.own_url}, "currencies"),
        ({"psp": "simulator", "currencies": ["usd"]}, "base_url"),
        ({"psp": "simulator", "base_url": "ftp://example.com", "currencies": ["usd"]},
         "base_url"),
        ({"psp": "simulator", "base_url": "http://", "currencies": ["usd"]}, "base_url"),
        ({"psp": "stripe", "currencies": ["usd"]}, "credentials[api_key]"),
        ({"psp": "stripe", "currencies": ["usd"], "credentials": {"api_key": "pk_test_1"}},
         "credentials[api_key]"),
        ({"psp": "stripe", "currencies": ["usd"],
          "credentials": {"api_key": "sk_live_leakme"}}, "credentials[api_key]"),
        ({"psp": "stripe", "currencies": ["usd"],
          "credentials": {"api_key": "sk_test_1", "password": "x"}}, "credentials[password]"),
        ({"psp": "adyen", "currencies": ["eur"], "merchant_account": "Shop",
          "credentials": {"api_key": "AQE_leakme"}}, "credentials[hmac_keys]"),
        ({"psp": "adyen", "currencies": ["eur"], "credentials": {
            "api_key": "AQE_leakme", "hmac_keys": ["00ff"]}}, "merchant_account"),
        ({"psp": "adyen", "currencies": ["eur"], "merchant_account": "Shop",
          "credentials": {"api_key": "AQE_leakme", "hmac_keys": ["nothex"]}},
         "credentials[hmac_keys][0]"),
        ({"psp": "simulator", "base_url": w.own_url, "currencies": ["usd"],
          "enabled": "maybe"}, "enabled"),
    ]
    for body, param in bad:
        r = await w.post("/v1/psp_accounts", **body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "leakme" not in r.text
    r = await w.api.post("/v1/psp_accounts", headers=w.auth, data={
        "psp": "simulator", "base_url": w.own_url, "currencies[0]": "eur",
        "credentials[webhook_secret]": "form-encoded-secret"})
    assert r.status_code == 200 and r.json()["currencies"] == ["eur"], r.text
    assert "form-encoded-secret" not in r.text


async def test_list_pages_like_the_other_lists(world: World) -> None:
    w = world
    made = [(await create_account(w))["id"] for _ in range(3)]
    page = (await w.api.get("/v1/psp_accounts?limit=2", headers=w.auth)).json()
    assert page["object"] == "list" and page["url"] == "/v1/psp_accounts"
    assert page["has_more"] is True and [a["id"] for a in page["data"]] == made[:0:-1]
    nxt = (await w.api.get(f"/v1/psp_accounts?limit=2&starting_after={made[1]}",
                           headers=w.auth)).json()
    assert nxt["data"][0]["id"] == made[0]
    r = await w.api.get("/v1/psp_accounts?starting_after=pspacct_nope", headers=w.auth)
    assert r.status_code == 400


async def test_an_idempotency_key_replays_and_its_fingerprint_is_keyed(world: World) -> None:
    w = world
    body = {"psp": "simulator", "base_url": w.own_url, "currencies": ["usd"],
            "credentials": {"webhook_secret": "guessable"}}
    headers = {**w.auth, "Idempotency-Key": "pspacct-create-1"}
    first = await w.api.post("/v1/psp_accounts", headers=headers, json=body)
    again = await w.api.post("/v1/psp_accounts", headers=headers, json=body)
    assert first.status_code == again.status_code == 200, first.text
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    other = await w.api.post("/v1/psp_accounts", headers=headers, json={
        **body, "credentials": {"webhook_secret": "another"}})
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    stored = await w.kassa.pool.fetchval(
        "SELECT fingerprint FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
        w.merchant_id, "pspacct-create-1")
    unkeyed = fingerprint("POST", "/v1/psp_accounts", body)  # what would be an oracle
    assert stored is not None and bytes(stored) != unkeyed
