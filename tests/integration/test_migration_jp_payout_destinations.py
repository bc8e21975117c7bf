"""Migration jp_payout_destinations: a Japanese destination must have its account type and
no other may; the downgrade is refused while a Japanese destination exists, and works
(and upgrades again) once none does."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

INSERT = ("INSERT INTO payout_destinations (id, merchant_id, currency, country,"
          " account_holder_name, iban, routing_number, account_number, account_type, last4,"
          " created) VALUES (%s, 'acct_jp', %s, %s, 'ヤマダ タロウ', %s, %s, %s, %s, %s, 0)")


def test_jp_account_type_is_checked_and_the_downgrade_refused_while_needed(server_url):
    with empty_database(server_url, "kassa_jp_destinations_migration") as u:
        # (at this revision the numbers are still in clear; 0029 seals them)
        upgrade(u, "jp_payout_destinations")
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES ('acct_jp', 'jp', 0)")
            conn.execute(INSERT, ("ba_jp", "jpy", "JP", None, "0001001", "1234567", "futsu",
                                  "4567"))
            for bad in (("ba_x1", "jpy", "JP", None, "0001001", "1234567", None, "4567"),
                        ("ba_x2", "usd", "US", None, "110000000", "000123456789", "toza",
                         "6789"),
                        ("ba_x3", "jpy", "JP", None, "0001001", "1234567", "checking",
                         "4567")):
                with pytest.raises(psycopg.errors.CheckViolation):
                    conn.execute(INSERT, bad)
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="Japanese payout destination"):
            command.downgrade(alembic_config(u), "psp_verified_keys")
        with psycopg.connect(u, autocommit=True) as conn:
            assert conn.execute("SELECT account_type FROM payout_destinations").fetchall() \
                == [("futsu",)]
            conn.execute("DELETE FROM payout_destinations")
        command.downgrade(alembic_config(u), "psp_verified_keys")
        with psycopg.connect(u) as conn:
            assert not conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name ="
                " 'payout_destinations' AND column_name = 'account_type'").fetchall()
        upgrade(u)
