"""Migration 0023 (reconcile_daily_pulls): one pull row per PSP account and day (a second is
refused by the database, whatever Python does), an imported day names its run, a failed one
its failure and retry time; the migration goes down and up again."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

PULL = ("INSERT INTO reconciliation_pulls (psp, report_date, status, claimed_by, lease_until,"
        " run_id, failure, retry_at, created) VALUES ('simulator', %s, %s, 'w', 0, %s, %s, %s,"
        " 0)")


def test_one_pull_per_account_and_day(server_url):
    with empty_database(server_url, "kassa_pulls_mig") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(PULL, ("2026-12-01", "claimed", None, None, None))
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(PULL, ("2026-12-01", "claimed", None, None, None))
            with pytest.raises(psycopg.errors.CheckViolation):  # imported names its run
                conn.execute(PULL, ("2026-12-02", "imported", None, None, None))
            with pytest.raises(psycopg.errors.CheckViolation):  # only an imported one has
                conn.execute(PULL, ("2026-12-02", "claimed", "recon_nope", None, None))
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute(PULL, ("2026-12-02", "imported", "recon_nope", None, None))
            with pytest.raises(psycopg.errors.CheckViolation):  # failed says why and when
                conn.execute(PULL, ("2026-12-02", "failed", None, None, None))
            conn.execute(PULL, ("2026-12-02", "failed", None, "HTTP 404", 5))
        cfg = alembic_config(u)
        command.downgrade(cfg, "psp_accounts_merchant_accounts")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('reconciliation_pulls')").fetchone() == (None,)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT count(*) FROM reconciliation_pulls").fetchone() == (0,)
