"""Migration stripe_charges_charges on a database with authorisation attempts already in it:
each becomes a charge (its card unknown, not guessed), and kassa_apply (db/sql/apply.sql)
writes new ones."""

from __future__ import annotations

import json

import psycopg
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

MERCHANT = "acct_m"


def test_attempts_before_the_migration_are_charges_after_it(server_url):
    with empty_database(server_url, "kassa_mig_ch") as url:
        upgrade(url, "stripe_intents_intent_fields")
        with psycopg.connect(url, autocommit=True) as conn:
            for pid, charge, status in (("pi_a", "ch_old", "failed"),
                                        ("pi_a", "ch_new", "succeeded")):
                conn.execute(
                    "INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
                    " capture_method, payment_method, latest_charge, created) VALUES"
                    " (%s, %s, 5000, 'usd', 'requires_capture', 'manual', 'pm_card_visa',"
                    " 'ch_new', 0) ON CONFLICT DO NOTHING", (pid, MERCHANT))
                conn.execute(
                    "INSERT INTO attempts (id, merchant_id, payment_intent_id, operation, psp,"
                    " status, amount, currency) VALUES (%s, %s, %s, 'authorize', 'simulator',"
                    " %s, 5000, 'usd')", (charge, MERCHANT, pid, status))
            conn.execute("INSERT INTO attempts (id, merchant_id, payment_intent_id, operation,"
                         " psp, status, amount, currency) VALUES ('att_cap', %s, 'pi_a',"
                         " 'capture', 'simulator', 'unknown', 5000, 'usd')", (MERCHANT,))
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = {r[0]: r[1:] for r in conn.execute(
                "SELECT id, payment_method, card, length(receipt_token) FROM charges")}
            assert rows == {"ch_old": (None, None, 64), "ch_new": ("pm_card_visa", None, 64)}
            # the deployed function takes the new operation beside the old ones
            conn.execute("SELECT kassa_apply(%s::jsonb)", (json.dumps([
                {"op": "insert_charge", "row": {
                    "id": "ch_x", "merchant_id": MERCHANT, "payment_intent_id": "pi_a",
                    "payment_method": "pm_card_amex", "card": {"brand": "amex"},
                    "receipt_token": "r" * 24, "created": 7}},
                {"op": "mark_attempt_unknown", "row": {"id": "att_cap"}}]),))
            assert conn.execute("SELECT card->>'brand' FROM charges WHERE id = 'ch_x'"
                                ).fetchone() == ("amex",)
        command.downgrade(alembic_config(url), "stripe_intents_intent_fields")  # and back
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('charges')").fetchone() == (None,)
            assert conn.execute("SELECT to_regclass('balance_transactions_source')"
                                ).fetchone() == (None,)
