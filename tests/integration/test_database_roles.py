"""Two database roles: the schema owner migrates (`kassa migrate`), the serving role only reads
and writes rows, so it can neither edit the ledger nor switch its append-only triggers off —
and every use case still works as that role."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from psycopg import errors

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.ledger.verify import verify
from kassa.services import balances, idempotency, merchants, recovery
from kassa.services.context import Kassa
from kassa.webhooks import inbound as psp_webhooks
from tests.support.databases import empty_database, login_role, with_user
from tests.support.webhook_receiver import create_endpoint


def kassa_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


@pytest.fixture(scope="module")
def roles(server_url: str) -> Iterator[tuple[str, str]]:
    """(migration URL, serving URL) of a fresh database migrated by `kassa migrate` as its
    owner, with the serving role granted its privileges."""
    with login_role(server_url, "kassa_owner") as owner, \
            login_role(server_url, "kassa_app") as app, \
            empty_database(server_url, "kassa_roles", owner=owner) as url:
        migration_url, serving_url = with_user(url, owner), with_user(url, app)
        env = {"KASSA_MIGRATION_DATABASE_URL": migration_url,
               "KASSA_DATABASE_URL": serving_url}
        out = kassa_cli("migrate", env=env)
        assert out.returncode == 0, out.stderr
        assert f"serving role {app} granted" in out.stdout
        again = kassa_cli("migrate", env=env)  # idempotent
        assert again.returncode == 0, again.stderr
        yield migration_url, serving_url


@pytest.mark.parametrize("statement", [
    "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
    "ALTER TABLE ledger_transactions DISABLE TRIGGER ledger_transactions_append_only",
    "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
    "UPDATE ledger_entries SET amount = 0",
    "DELETE FROM ledger_entries",
    "TRUNCATE ledger_entries",
    "DELETE FROM events",
    "UPDATE events SET type = 'x'",
    "DELETE FROM alembic_version",
    "CREATE OR REPLACE FUNCTION kassa_refuse_change() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN RETURN NULL; END $$",
    "SET session_replication_role = replica",
])
def test_the_serving_role_cannot_touch_the_ledger(roles, statement):
    _, serving_url = roles
    with psycopg.connect(serving_url) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_owner_can_still_alter_its_tables(roles):
    migration_url, _ = roles
    with psycopg.connect(migration_url) as conn:
        conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only")
        conn.rollback()


@pytest.fixture
async def serving_kassa(roles, settings: Settings) -> AsyncIterator[Kassa]:
    _, serving_url = roles
    k, close = await bootstrap.build(settings, serving_url, pool_size=4)
    try:
        yield k
    finally:
        await close()


async def test_payments_work_as_the_serving_role(serving_kassa, roles):
    created = await merchants.create_merchant(serving_kassa, name="Role merchant")
    auth = {"Authorization": f"Bearer {created['secret_key']}"}
    app = create_app(kassa=serving_kassa, key_cache_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as client:
        # an endpoint, so that the events' fan-out trigger (run as this role) has work
        await create_endpoint(client, auth, "http://127.0.0.1:9/hook")
        r = await client.post("/v1/payment_intents", headers={**auth, "Idempotency-Key": "k1"},
                              data={"amount": "2000", "currency": "usd",
                                    "payment_method": "pm_card_visa", "confirm": "true"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "succeeded"
        pi = r.json()["id"]
        r = await client.post("/v1/payment_intents", headers=auth, data={
            "amount": "1000", "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true", "capture_method": "manual"})
        assert r.json()["status"] == "requires_capture", r.text
        r = await client.post(f"/v1/payment_intents/{r.json()['id']}/capture", headers=auth)
        assert r.json()["status"] == "succeeded", r.text
        r = await client.post("/v1/refunds", headers=auth,
                              data={"payment_intent": pi, "amount": "500"})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    # the workers' use cases, one pass each, as the same role
    await recovery.recover_open_attempts(serving_kassa)
    await balances.release_available_funds(serving_kassa)
    await idempotency.expire(serving_kassa)
    await psp_webhooks.apply_pending(serving_kassa)
    report = await verify(serving_kassa.pool)
    assert report.ok, report.problems


def test_api_and_worker_start_as_the_serving_role_without_migrating(roles):
    # `kassa ledger verify` stands for every command that needs a current schema
    _, serving_url = roles
    out = kassa_cli("ledger", "verify", env={"KASSA_DATABASE_URL": serving_url})
    assert out.returncode == 0, out.stderr


def test_grants_refuse_a_role_that_would_not_be_restricted(server_url):
    with login_role(server_url, "kassa_owner") as owner, \
            empty_database(server_url, "kassa_roles", owner=owner) as url:
        env = {"KASSA_MIGRATION_DATABASE_URL": with_user(url, owner),
               "KASSA_DATABASE_URL": with_user(url, owner)}
        # the database's owner as serving role: it could drop the ledger
        out = kassa_cli("migrate", "--grant-to", owner, env=env)
        assert out.returncode == 2
        assert "is the migration role" in out.stderr
        out = kassa_cli("migrate", "--grant-to", "kassa_nobody_here", env=env)
        assert out.returncode == 2
        assert "does not exist" in out.stderr and "CREATE ROLE" in out.stderr
        assert "Traceback" not in out.stderr


def test_a_serving_role_never_granted_is_told_to_run_migrate(server_url):
    with login_role(server_url, "kassa_app") as app, \
            empty_database(server_url, "kassa_roles") as url:
        assert kassa_cli("migrate", env={"KASSA_DATABASE_URL": url}).returncode == 0
        out = kassa_cli("ledger", "verify", env={"KASSA_DATABASE_URL": with_user(url, app)})
        assert out.returncode == 2, out.stderr
        cause, remedy = out.stderr.strip().splitlines()
        assert f"the role {app} may not read kassa's tables" in cause
        assert "KASSA_MIGRATION_DATABASE_URL" in remedy


def test_a_migration_role_without_create_rights_gets_two_lines(server_url):
    with login_role(server_url, "kassa_app") as app, \
            empty_database(server_url, "kassa_roles") as url:
        with psycopg.connect(url, autocommit=True) as conn:  # as PostgreSQL 15+ does
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        out = kassa_cli("migrate", env={"KASSA_DATABASE_URL": with_user(url, app)})
        assert out.returncode == 2, out.stderr
        cause, remedy = out.stderr.strip().splitlines()
        assert cause.startswith("kassa: a migration failed: permission denied for schema public")
        assert "schema owner" in remedy
