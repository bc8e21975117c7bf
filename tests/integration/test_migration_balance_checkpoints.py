"""Migration ledger_balance_checkpoints: the checkpoint tables and the (account, id) index
come in, the old account index goes, and a downgrade puts it back."""

from __future__ import annotations

import psycopg
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database


def _schema(u: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(u) as conn:
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'ledger_entries'")}
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'ledger_checkpoint%'")}
    return indexes, tables


def test_checkpoint_tables_and_index_come_and_go(server_url):
    with empty_database(server_url, "kassa_checkpoint_migration") as u:
        upgrade(u)
        indexes, tables = _schema(u)
        assert "ledger_entries_account_position" in indexes
        assert "ledger_entries_account" not in indexes
        assert tables == {"ledger_checkpoints", "ledger_checkpoint_runs"}
        command.downgrade(alembic_config(u), "reconcile_daily_pulls")
        indexes, tables = _schema(u)
        assert "ledger_entries_account" in indexes
        assert "ledger_entries_account_position" not in indexes and not tables
        upgrade(u)
        assert "ledger_entries_account_position" in _schema(u)[0]
