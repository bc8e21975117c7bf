"""Migration 0018 (kassa_vault.payment_methods.detached): a card detached before it (its
payment_method.detached event says so) is marked detached, a never-attached or still saved
card is not; and the migration goes down and up again."""

from __future__ import annotations

import psycopg
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

CARD = ("INSERT INTO kassa_vault.payment_methods (id, merchant_id, brand, last4, exp_month,"
        " exp_year, funding, fingerprint, checks, billing_details, created, customer)"
        " VALUES (%s, 'acct_a', 'visa', '4242', 12, 2034, 'credit', 'f', '{}', '{}', 0, %s)")


def test_cards_detached_before_are_marked(server_url):
    with empty_database(server_url, "kassa_detached") as u:
        cfg = alembic_config(u)
        command.upgrade(cfg, "routing_routing_configs")
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES ('acct_a', 'm', 0)")
            conn.execute("INSERT INTO customers (id, merchant_id, created)"
                         " VALUES ('cus_a', 'acct_a', 0)")
            for pm, customer in (("pm_was", None), ("pm_new", None), ("pm_saved", "cus_a"),
                                 ("pm_other", None)):
                conn.execute(CARD, (pm, customer))
            conn.execute("INSERT INTO events (id, merchant_id, type, object_id, data, created)"
                         " VALUES ('evt_1', 'acct_a', 'payment_method.detached', 'pm_was',"
                         " '{}', 0), ('evt_2', 'acct_a', 'payment_method.attached',"
                         " 'pm_other', '{}', 0), ('evt_3', 'acct_b',"
                         " 'payment_method.detached', 'pm_other', '{}', 0)")
        upgrade(u)
        with psycopg.connect(u) as conn:
            rows = dict(conn.execute(
                "SELECT id, detached FROM kassa_vault.payment_methods").fetchall())
        assert rows == {"pm_was": True, "pm_new": False, "pm_saved": False,
                        "pm_other": False}
        command.downgrade(cfg, "routing_routing_configs")
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT count(*) FROM kassa_vault.payment_methods"
                                " WHERE detached").fetchone() == (1,)
