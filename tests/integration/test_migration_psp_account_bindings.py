"""Migration 0025 (psp_account_bindings): a binding never changes in place (deleting it is
the deliberate rebind), and the migration goes down and up again."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

BIND = ("INSERT INTO psp_account_bindings (account, psp, psp_account_ref)"
        " VALUES ('stripe', 'stripe', %s)")


def test_a_binding_is_immutable_and_the_migration_goes_down_and_up(server_url):
    with empty_database(server_url, "kassa_bindings_mig") as u:
        cfg = alembic_config(u)
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(BIND, ("acct_1AAAAAAAAAAAAAAA",))
            with pytest.raises(psycopg.errors.CheckViolation, match="stays bound"):
                conn.execute("UPDATE psp_account_bindings SET psp_account_ref = 'acct_x'")
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(BIND.replace("'stripe', 'stripe'", "'other', 'stripe'"), ("",))
            conn.execute("DELETE FROM psp_account_bindings WHERE account = 'stripe'")
            conn.execute(BIND, ("acct_1BBBBBBBBBBBBBBB",))  # rebound on purpose
        command.downgrade(cfg, "ledger_balance_checkpoints")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('psp_account_bindings')").fetchone() == \
                (None,)
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(BIND, ("acct_1AAAAAAAAAAAAAAA",))
            assert conn.execute("SELECT count(*) FROM psp_account_bindings").fetchone() == (1,)
