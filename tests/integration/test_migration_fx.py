"""Migration 0026 (fx_exchange_rates): rates are exact NUMERIC with their source and time,
one row per pair, source and as_of; a payment's conversion is all or nothing; the
migration goes down (refused while a converted payment exists) and up again."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from alembic import command

from kassa.db.migrate import alembic_config, upgrade
from tests.support.databases import empty_database

RATE = ("INSERT INTO fx_rates (id, base, quote, rate, source, as_of, loaded_at)"
        " VALUES (%s, %s, %s, %s, 'ecb', 100, 101)")
PAYMENT = ("INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
           " capture_method, created, settlement_currency, exchange_rate, fx_rate_id)"
           " VALUES (%s, 'acct_1', 1000, 'eur', 'requires_confirmation', 'automatic', 0,"
           " %s, %s, %s)")


def test_rates_conversions_and_the_way_down(server_url):
    with empty_database(server_url, "kassa_fx_mig") as u:
        upgrade(u)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(RATE, ("fxr_1", "eur", "usd", "1.084200000000000000001"))
            assert conn.execute("SELECT rate FROM fx_rates").fetchone() == (
                Decimal("1.084200000000000000001"),)
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(RATE, ("fxr_2", "eur", "usd", "1.2"))
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(RATE, ("fxr_3", "eur", "eur", "1"))
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(RATE, ("fxr_4", "eur", "gbp", "0"))
            conn.execute("INSERT INTO merchants (id, name, created, settlement_currency)"
                         " VALUES ('acct_1', 'm', 0, 'usd')")
            with pytest.raises(psycopg.errors.CheckViolation):  # a rate without its id
                conn.execute(PAYMENT, ("pi_1", "usd", "1.0842", None))
            with pytest.raises(psycopg.errors.CheckViolation):  # into its own currency
                conn.execute(PAYMENT, ("pi_1", "eur", "1.0842", "fxr_1"))
            conn.execute(PAYMENT, ("pi_1", "usd", "1.0842", "fxr_1"))
        cfg = alembic_config(u)
        with pytest.raises(Exception, match="converted payments exist"):
            command.downgrade(cfg, "psp_account_bindings")
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("DELETE FROM payment_intents")
        command.downgrade(cfg, "psp_account_bindings")
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT to_regclass('fx_rates')").fetchone() == (None,)
        upgrade(u)
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT count(*) FROM fx_rates").fetchone() == (0,)
