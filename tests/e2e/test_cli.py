"""The `kassa` CLI against a real database (KASSA_DATABASE_URL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from kassa.db.migrate import upgrade


def kassa(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "KASSA_DATABASE_URL": dsn})


@pytest.fixture
def private_dsn(server_url):
    name = f"kassa_cli_{uuid.uuid4().hex[:8]}"
    admin = server_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_merchants_create_prints_a_working_key(private_dsn):
    out = kassa("merchants", "create", "Acme Books", dsn=private_dsn)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["merchant_id"].startswith("acct_")
    assert created["secret_key"].startswith("sk_test_")
    with psycopg.connect(private_dsn) as conn:
        assert conn.execute("SELECT name FROM merchants WHERE id = %s",
                            (created["merchant_id"],)).fetchone() == ("Acme Books",)
        # only the hash is stored
        assert conn.execute("SELECT count(*) FROM api_keys WHERE key_hash::text LIKE %s",
                            (f"%{created['secret_key']}%",)).fetchone() == (0,)


def test_ledger_verify_passes_then_reports_and_exits_1(private_dsn):
    ok = kassa("ledger", "verify", dsn=private_dsn)
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK" in ok.stdout
    with psycopg.connect(private_dsn, autocommit=True) as conn:
        # a payment claiming money the ledger never received (the DB allows this row)
        conn.execute(
            "INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
            " capture_method, amount_received, created) VALUES ('pi_bad', 'acct_x', 500,"
            " 'usd', 'succeeded', 'automatic', 500, 0)")
    bad = kassa("ledger", "verify", dsn=private_dsn)
    assert bad.returncode == 1
    assert "pi_bad" in bad.stderr and "FAIL" in bad.stderr


def test_migrate_is_idempotent(private_dsn):
    out = kassa("migrate", dsn=private_dsn)
    assert out.returncode == 0, out.stderr
