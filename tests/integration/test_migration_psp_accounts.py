"""Migration 0022 (psp_accounts): a row is never deleted (its payments still need it), and
the migration goes down and up again — down refused once a payment went through a
merchant's account, so captures and refunds are never stranded."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

ACCOUNT = ("INSERT INTO psp_accounts (id, merchant_id, psp, currencies, credentials, created,"
           " updated) VALUES ('pspacct_a', 'acct_a', 'simulator', '{usd}', %s, 0, 0)")


def test_rows_are_kept_and_down_is_refused_once_payments_went_there(server_url):
    with empty_database(server_url, "kassa_pspacct_mig") as u:
        cfg = alembic_config(u)
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES ('acct_a', 'm', 0)")
            conn.execute(ACCOUNT, (b"\x00" * 64,))
            with pytest.raises(psycopg.errors.CheckViolation, match="marked deleted"):
                conn.execute("DELETE FROM psp_accounts WHERE id = 'pspacct_a'")
            with pytest.raises(psycopg.errors.CheckViolation):  # never stored in the clear
                conn.execute(ACCOUNT.replace("pspacct_a", "pspacct_b"), (b"sk_test_1",))
        command.downgrade(cfg, "adyen_modification_refs")  # no payment went through it
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(ACCOUNT, (b"\x00" * 64,))
            conn.execute(
                "INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
                " capture_method, created, psp) VALUES ('pi_a', 'acct_a', 100, 'usd',"
                " 'processing', 'automatic', 0, 'pspacct_a')")
            conn.execute(
                "INSERT INTO attempts (id, merchant_id, payment_intent_id, operation, psp,"
                " status, amount, currency) VALUES ('ch_a', 'acct_a', 'pi_a', 'authorize',"
                " 'pspacct_a', 'started', 100, 'usd')")
        with pytest.raises(Exception, match="would strand their captures"):
            command.downgrade(cfg, "adyen_modification_refs")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT count(*) FROM psp_accounts").fetchone() == (1,)
