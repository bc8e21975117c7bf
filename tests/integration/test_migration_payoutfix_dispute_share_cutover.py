"""Migration payoutfix_dispute_share_cutover: it records the highest ledger transaction at
the time it runs (0 on a fresh database) as the last one the legacy dispute amount may
apply to; the downgrade drops the record, and the upgrade records it again."""

from __future__ import annotations

import psycopg
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

BEFORE = "reconfast_item_writes"
CUTOVER = "SELECT rule, last_legacy_transaction FROM ledger_rule_cutovers"
POST = ("INSERT INTO ledger_transactions (kind, merchant_id, source_id)"
        " VALUES ('capture', 'acct_old', %s) RETURNING id")


def test_the_cutover_is_the_last_transaction_before_the_upgrade(server_url):
    with empty_database(server_url, "kassa_dispute_share_cutover") as u:
        upgrade(u, BEFORE)
        with psycopg.connect(u, autocommit=True) as conn:
            # an empty transaction is enough for the cutover's id (entries are not read)
            conn.execute("SET session_replication_role = replica")  # no balance trigger
            conn.execute(POST, ("pi_old_1",))
            conn.execute(POST, ("pi_old_2",))
            last = conn.execute(POST, ("pi_old_3",)).fetchone()[0]
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute(CUTOVER).fetchall() == [("dispute_share", last)]
        command.downgrade(alembic_config(u), BEFORE)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('ledger_rule_cutovers')").fetchone() == (
                None,)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute(CUTOVER).fetchall() == [("dispute_share", last)]


def test_a_fresh_database_has_no_legacy_withdrawal(server_url):
    with empty_database(server_url, "kassa_dispute_share_cutover_fresh") as u:
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute(CUTOVER).fetchall() == [("dispute_share", 0)]
