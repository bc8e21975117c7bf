"""Migration 0020 (vault_jsonb_objects): card columns written as JSON strings by the releases
before it become the objects they contained, objects stay as they are, the database refuses a
string from then on, and the migration goes down (back to strings) and up again."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

CARD = ("INSERT INTO kassa_vault.payment_methods (id, merchant_id, brand, last4, exp_month,"
        " exp_year, funding, fingerprint, checks, billing_details, metadata, created)"
        " VALUES (%s, 'acct_a', 'visa', '4242', 12, 2034, 'credit', 'f', %s, %s, %s, 0)")
CHECKS = '{"cvc_check": "pass", "address_line1_check": null}'
BILLING = '{"name": "Ada", "address": {"city": "Berlin"}}'


def test_string_encoded_cards_become_objects(server_url):
    with empty_database(server_url, "kassa_vault_jsonb") as u:
        cfg = alembic_config(u)
        command.upgrade(cfg, "cards_rules_single_use")
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES ('acct_a', 'm', 0)")
            # as the previous release wrote them: the object's text, encoded once more
            conn.execute(CARD, ("pm_old", psycopg.types.json.Jsonb(CHECKS),
                                psycopg.types.json.Jsonb(BILLING),
                                psycopg.types.json.Jsonb('{"order": "7"}')))
            conn.execute(CARD, ("pm_obj", CHECKS, BILLING, '{}'))
        upgrade(u)
        with psycopg.connect(u) as conn:
            rows = {r[0]: r[1:] for r in conn.execute(
                "SELECT id, jsonb_typeof(checks), checks->>'cvc_check',"
                " billing_details #>> '{address,city}', metadata->>'order'"
                " FROM kassa_vault.payment_methods")}
            assert rows == {"pm_old": ("object", "pass", "Berlin", "7"),
                            "pm_obj": ("object", "pass", "Berlin", None)}
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(CARD, ("pm_str", psycopg.types.json.Jsonb(CHECKS), BILLING,
                                    '{}'))
        command.downgrade(cfg, "cards_rules_single_use")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT DISTINCT jsonb_typeof(checks)"
                                " FROM kassa_vault.payment_methods").fetchall() == [("string",)]
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute(
                "SELECT checks->>'cvc_check' FROM kassa_vault.payment_methods"
                " ORDER BY id").fetchall() == [("pass",), ("pass",)]
