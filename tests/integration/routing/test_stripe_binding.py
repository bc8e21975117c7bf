"""A Stripe key rotation that would move an account to another Stripe account is refused:
merchants' accounts over HTTP (/v1/psp_accounts) and the platform's at start-up. Stripe is
an httpx.MockTransport answering GET /v1/account as recorded
(tests/unit/psp/test_stripe_account.py: localstripe has no /v1/account), per key."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from kassa import bootstrap
from kassa.config import Settings
from kassa.psp.stripe import StripeSettings
from kassa.startup_errors import StartupError
from tests.integration.routing.conftest import routed_world
from tests.support.simulator_server import running_simulator
from tests.support.vault import SESSION_SECRETS_KEYS

STRIPE = "http://stripe.test"
ACCOUNTS = {"sk_test_a1": "acct_1AAAAAAAAAAAAAAA", "sk_test_a2": "acct_1AAAAAAAAAAAAAAA",
            "sk_test_b": "acct_1BBBBBBBBBBBBBBB"}


class FakeStripe(httpx.AsyncBaseTransport):
    """GET /v1/account of stripe.test by key; everything else to the real network."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.asked: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "stripe.test":
            return await self.real.handle_async_request(request)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.asked.append(key)
        assert (request.method, request.url.path) == ("GET", "/v1/account")
        if key not in ACCOUNTS:
            return httpx.Response(401, json={"error": {
                "type": "invalid_request_error", "message": "Invalid API Key provided"}})
        return httpx.Response(200, json={"id": ACCOUNTS[key], "object": "account",
                                         "charges_enabled": True, "type": "standard"})

    async def aclose(self) -> None:
        await self.real.aclose()


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


async def test_a_merchant_s_stripe_account_is_bound_and_rotations_stay_in_it(dsn, sims):
    fake = FakeStripe()
    async with routed_world(dsn, *sims, transport=fake) as w:
        async def post(path: str, **body: Any) -> httpx.Response:
            return await w.api.post(path, headers=w.auth, json=body)

        r = await post("/v1/psp_accounts", psp="stripe", base_url=STRIPE,
                       currencies=["usd"], credentials={"api_key": "sk_test_a1"})
        assert r.status_code == 200, r.text
        account = r.json()
        assert account["stripe_account"] == ACCOUNTS["sk_test_a1"]
        name = account["id"]
        revision = await w.kassa.pool.fetchval(
            "SELECT revision FROM psp_accounts WHERE id = $1", name)
        # a rotated key of the same Stripe account: taken
        r = await post(f"/v1/psp_accounts/{name}", credentials={"api_key": "sk_test_a2"})
        assert r.status_code == 200, r.text
        assert r.json()["stripe_account"] == ACCOUNTS["sk_test_a1"]
        after_rotation = await w.kassa.pool.fetchrow(
            "SELECT revision, credentials FROM psp_accounts WHERE id = $1", name)
        assert after_rotation["revision"] > revision
        # a key of another Stripe account: refused, nothing changed
        r = await post(f"/v1/psp_accounts/{name}", credentials={"api_key": "sk_test_b"})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert (err["code"], err["param"]) == ("psp_account_identity_mismatch",
                                               "credentials[api_key]")
        assert ACCOUNTS["sk_test_b"] in err["message"] and "sk_test_b" not in err["message"]
        # a key Stripe refuses: refused, nothing changed
        r = await post(f"/v1/psp_accounts/{name}", credentials={"api_key": "sk_test_gone"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "psp_credentials_invalid"
        row = await w.kassa.pool.fetchrow(
            "SELECT revision, credentials, settings FROM psp_accounts WHERE id = $1", name)
        assert (row["revision"], row["credentials"]) == (after_rotation["revision"],
                                                         after_rotation["credentials"])
        # a new account with an unknown key is not created at all
        r = await post("/v1/psp_accounts", psp="stripe", base_url=STRIPE,
                       currencies=["usd"], credentials={"api_key": "sk_test_nobody"})
        assert r.status_code == 400 and r.json()["error"]["code"] == \
            "psp_credentials_invalid", r.text
        assert await w.kassa.pool.fetchval(
            "SELECT count(*) FROM psp_accounts WHERE merchant_id = $1", w.merchant_id) == 1
        # an unrelated update (currencies) asks Stripe nothing
        asked = len(fake.asked)
        r = await post(f"/v1/psp_accounts/{name}", currencies=["usd", "eur"])
        assert r.status_code == 200, r.text
        assert len(fake.asked) == asked
    await fake.aclose()


async def test_a_stripe_that_cannot_be_asked_stores_nothing(dsn, sims):
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with routed_world(dsn, *sims, transport=httpx.MockTransport(down)) as w:
        r = await w.api.post("/v1/psp_accounts", headers=w.auth, json={
            "psp": "stripe", "base_url": STRIPE, "currencies": ["usd"],
            "credentials": {"api_key": "sk_test_a1"}})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "psp_unreachable"
        assert await w.kassa.pool.fetchval(
            "SELECT count(*) FROM psp_accounts WHERE merchant_id = $1", w.merchant_id) == 0


async def test_the_platform_s_stripe_key_must_stay_in_its_bound_account(dsn, sims):
    settings = Settings(env="test", simulator_url=sims[0], secrets_keys=SESSION_SECRETS_KEYS)

    async def start(key: str, *, stripe_up: bool = True) -> list[str]:
        """The keys Stripe was asked about while kassa started with ``key``."""
        fake = FakeStripe()

        def down(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        transport = fake if stripe_up else httpx.MockTransport(down)
        async with httpx.AsyncClient(transport=transport) as http:
            k, close = await bootstrap.build(settings, dsn, pool_size=2, http=http,
                                             stripe=StripeSettings(
                                                 secret_key=SecretStr(key), api_base=STRIPE))
            await close()
        return fake.asked

    assert await start("sk_test_a1") == ["sk_test_a1"]  # the first start binds
    assert await start("sk_test_a2") == ["sk_test_a2"]  # a rotated key of the same account
    # a key checked before is not asked about again: a restart needs no Stripe
    assert await start("sk_test_a1") == []
    assert await start("sk_test_a2", stripe_up=False) == []
    with pytest.raises(StartupError) as exc:
        await start("sk_test_b")
    assert ACCOUNTS["sk_test_b"] in exc.value.cause and ACCOUNTS["sk_test_a1"] in exc.value.cause
    assert "psp_account_bindings" in exc.value.remedy
    with pytest.raises(StartupError, match="refused"):
        await start("sk_test_revoked")
    # a key never checked, while Stripe cannot be asked: not served
    with pytest.raises(StartupError, match="could not be looked up"):
        await start("sk_test_a3_unseen", stripe_up=False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT account, psp, psp_account_ref FROM psp_account_bindings")
        assert [tuple(r) for r in rows] == [("stripe", "stripe", ACCOUNTS["sk_test_a1"])]
        with pytest.raises(asyncpg.CheckViolationError, match="stays bound"):
            await conn.execute("UPDATE psp_account_bindings SET psp_account_ref = 'acct_x'")
        # only the two keys of the bound account are remembered (digests, never the key)
        kept = await conn.fetch("SELECT key_sha256, psp_account_ref FROM psp_verified_keys")
        assert sorted(bytes(r["key_sha256"]) for r in kept) == sorted(
            hashlib.sha256(k.encode()).digest() for k in ("sk_test_a1", "sk_test_a2"))
        assert {r["psp_account_ref"] for r in kept} == {ACCOUNTS["sk_test_a1"]}
        # rebound on purpose (the binding deleted): an old account's key is asked again
        await conn.execute("DELETE FROM psp_account_bindings")
        await conn.execute("INSERT INTO psp_account_bindings (account, psp, psp_account_ref)"
                           " VALUES ('stripe', 'stripe', $1)", ACCOUNTS["sk_test_b"])
    finally:
        await conn.close()
    with pytest.raises(StartupError, match="could not be looked up"):
        await start("sk_test_a1", stripe_up=False)
    assert await start("sk_test_b") == ["sk_test_b"]


async def test_two_rotations_racing_on_an_unbound_account_bind_it_once(dsn, sims):
    """An account made before binding existed has none: the first rotation binds it (under
    the row's lock), a racing one with another Stripe account's key is then refused."""
    fake = FakeStripe()
    async with routed_world(dsn, *sims, transport=fake) as w:
        r = await w.api.post("/v1/psp_accounts", headers=w.auth, json={
            "psp": "stripe", "base_url": STRIPE, "currencies": ["usd"],
            "credentials": {"api_key": "sk_test_a1"}})
        assert r.status_code == 200, r.text
        name = r.json()["id"]
        for _ in range(5):
            await w.kassa.pool.execute(
                "UPDATE psp_accounts SET settings = settings - 'stripe_account' WHERE id = $1",
                name)
            answers = await asyncio.gather(*(
                w.api.post(f"/v1/psp_accounts/{name}", headers=w.auth,
                           json={"credentials": {"api_key": key}})
                for key in ("sk_test_a2", "sk_test_b")))
            codes = sorted(a.status_code for a in answers)
            assert codes == [200, 400], [a.text for a in answers]
            won = next(a for a in answers if a.status_code == 200).json()["stripe_account"]
            lost = next(a for a in answers if a.status_code == 400).json()["error"]
            assert lost["code"] == "psp_account_identity_mismatch"
            stored = await w.kassa.pool.fetchval(
                "SELECT settings->>'stripe_account' FROM psp_accounts WHERE id = $1", name)
            assert stored == won
    await fake.aclose()
