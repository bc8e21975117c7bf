"""Three database roles: the schema owner migrates; the serving role (API, workers) may read
the vault's non-secret table and nothing else of it; the vault's role holds the ciphertext
and reads no payment, ledger or event of the services."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg import errors

from kassa.api.app import create_app
from kassa.services import merchants
from tests.integration.test_database_roles import kassa_cli
from tests.support.databases import empty_database, login_role, with_user
from tests.support.vault import kassa_through, running_vault, tokenise


@pytest.fixture(scope="module")
def urls(server_url: str) -> Iterator[dict[str, str]]:
    with login_role(server_url, "kassa_owner") as owner, \
            login_role(server_url, "kassa_app") as app, \
            login_role(server_url, "kassa_vault") as vault, \
            empty_database(server_url, "kassa_vault_roles", owner=owner) as url:
        env = {"KASSA_MIGRATION_DATABASE_URL": with_user(url, owner),
               "KASSA_DATABASE_URL": with_user(url, app),
               "KASSA_VAULT_DATABASE_URL": with_user(url, vault)}
        out = kassa_cli("migrate", env=env)
        assert out.returncode == 0, out.stderr
        assert kassa_cli("migrate", env=env).returncode == 0  # idempotent
        yield {"owner": env["KASSA_MIGRATION_DATABASE_URL"], "app": env["KASSA_DATABASE_URL"],
               "vault": env["KASSA_VAULT_DATABASE_URL"]}


@pytest.mark.parametrize("statement", [
    "SELECT * FROM kassa_vault.card_secrets",
    "SELECT * FROM kassa_vault.data_keys",
    "SELECT * FROM kassa_vault.kek_versions",
    "SELECT pan FROM kassa_vault.card_secrets JOIN kassa_vault.payment_methods ON true",
    "INSERT INTO kassa_vault.payment_methods (id) VALUES ('pm_x')",
    "UPDATE kassa_vault.payment_methods SET last4 = '0000'",
    "UPDATE kassa_vault.payment_methods SET fingerprint = 'x', brand = 'visa'",
    "UPDATE kassa_vault.payment_methods SET merchant_id = 'acct_x'",
    "DELETE FROM kassa_vault.payment_methods",
    "ALTER TABLE kassa_vault.card_secrets DISABLE TRIGGER ALL",
    "COPY kassa_vault.card_secrets TO STDOUT",
])
def test_the_serving_role_cannot_reach_the_vaults_ciphertext(urls, statement):
    with psycopg.connect(urls["app"]) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_serving_role_reads_the_non_secret_table(urls):
    with psycopg.connect(urls["app"]) as conn:
        conn.execute("SELECT id, brand, last4, fingerprint FROM kassa_vault.payment_methods")


@pytest.mark.parametrize("statement", [
    "SELECT * FROM payment_intents",
    "SELECT * FROM ledger_entries",
    "SELECT * FROM events",
    "INSERT INTO api_keys (id) VALUES ('k')",
    "DELETE FROM kassa_vault.card_secrets",
    "DELETE FROM kassa_vault.data_keys",
    "DROP TRIGGER data_keys_live_kek ON kassa_vault.data_keys",
    "ALTER TABLE kassa_vault.data_keys DISABLE TRIGGER data_keys_live_kek",
    "CREATE OR REPLACE FUNCTION kassa_vault.refuse_retired_kek() RETURNS trigger"
    " LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
])
def test_the_vault_role_holds_only_the_vault(urls, statement):
    with psycopg.connect(urls["vault"]) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


async def test_a_vault_card_pays_with_each_process_in_its_own_role(urls, settings):
    async with running_vault(settings, urls["vault"]) as vault, \
            kassa_through(vault, urls["app"]) as k:
        shop = await merchants.create_merchant(k, name="Roles shop")
        r = await tokenise(vault.url, shop["publishable_key"], "4242424242424242")
        assert r.status_code == 200, r.text
        app = create_app(kassa=k, key_cache_seconds=0.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as client:
            auth = {"Authorization": f"Bearer {shop['secret_key']}"}
            got = await client.get(f"/v1/payment_methods/{r.json()['id']}", headers=auth)
            assert got.status_code == 200, got.text
            paid = await client.post("/v1/payment_intents", headers=auth, data={
                "amount": "1500", "currency": "eur", "payment_method": r.json()["id"],
                "confirm": "true"})
            assert paid.status_code == 200, paid.text
            assert paid.json()["status"] == "succeeded"


def test_the_serving_role_updates_only_what_a_merchant_may_change(urls):
    with psycopg.connect(urls["app"]) as conn:
        conn.execute("UPDATE kassa_vault.payment_methods SET customer = NULL,"
                     " metadata = metadata, billing_details = billing_details,"
                     " exp_month = exp_month, exp_year = exp_year WHERE false")


async def test_a_card_saved_and_reused_with_each_process_in_its_own_role(urls, settings):
    async with running_vault(settings, urls["vault"]) as vault, \
            kassa_through(vault, urls["app"]) as k:
        shop = await merchants.create_merchant(k, name="Saved cards shop")
        pm = (await tokenise(vault.url, shop["publishable_key"], "4242424242424242")).json()
        app = create_app(kassa=k, key_cache_seconds=0.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kassa.test") as client:
            auth = {"Authorization": f"Bearer {shop['secret_key']}"}
            cus = (await client.post("/v1/customers", headers=auth, data={"name": "R"})).json()
            paid = await client.post("/v1/payment_intents", headers=auth, data={
                "amount": "900", "currency": "eur", "payment_method": pm["id"],
                "customer": cus["id"], "setup_future_usage": "off_session", "confirm": "true"})
            assert paid.status_code == 200, paid.text
            got = await client.get(f"/v1/payment_methods/{pm['id']}", headers=auth)
            assert got.json()["customer"] == cus["id"]  # saved by kassa_apply, serving role
            again = await client.post("/v1/payment_intents", headers=auth, data={
                "amount": "700", "currency": "eur", "payment_method": pm["id"],
                "customer": cus["id"], "off_session": "true", "confirm": "true"})
            assert again.status_code == 200 and again.json()["status"] == "succeeded"
            detached = await client.post(f"/v1/payment_methods/{pm['id']}/detach",
                                         headers=auth)
            assert detached.status_code == 200, detached.text


def test_the_vault_role_must_be_its_own(server_url):
    with login_role(server_url, "kassa_owner") as owner, \
            login_role(server_url, "kassa_app") as app, \
            empty_database(server_url, "kassa_vault_roles", owner=owner) as url:
        out = kassa_cli("migrate", env={
            "KASSA_MIGRATION_DATABASE_URL": with_user(url, owner),
            "KASSA_DATABASE_URL": with_user(url, app), "KASSA_VAULT_ROLE": app})
        assert out.returncode == 2
        assert "is also the serving role" in out.stderr and "Traceback" not in out.stderr
