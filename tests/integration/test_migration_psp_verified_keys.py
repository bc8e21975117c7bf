"""Migration 0027 (psp_verified_keys): a key's digest is 32 bytes, one row per account and
key; the downgrade drops the table and the upgrade brings it back empty."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import migrated_database

ROW = "INSERT INTO psp_verified_keys (account, key_sha256, psp_account_ref) VALUES (%s, %s, %s)"


def test_digests_only_and_the_downgrade_round_trips(server_url):
    with migrated_database(server_url, prefix="kassa_mig_keys") as u:
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(ROW, ("stripe", hashlib.sha256(b"sk_test_1").digest(), "acct_1"))
            with pytest.raises(psycopg.errors.CheckViolation):  # not a SHA-256
                conn.execute(ROW, ("stripe", b"sk_test_1", "acct_1"))
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(ROW, ("stripe", hashlib.sha256(b"sk_test_1").digest(), "acct_1"))
        command.downgrade(alembic_config(u), "fx_exchange_rates")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('psp_verified_keys')").fetchone() == (None,)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT count(*) FROM psp_verified_keys").fetchone() == (0,)
