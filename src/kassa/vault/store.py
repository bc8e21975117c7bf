"""The vault's SQL (schema ``kassa_vault``), named, with the locking it needs written out.

``get_payment_method`` reads only the non-secret table and is what the API and workers use;
everything else runs as the vault's own role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

PM_COLUMNS = ("id, merchant_id, type, brand, last4, exp_month, exp_year, funding, country,"
              " fingerprint, checks, billing_details, metadata, customer, detached, used_by,"
              " livemode, created")


def _row(record: asyncpg.Record | None) -> dict[str, Any] | None:
    # checks, billing_details and metadata come back as dicts: the pool's jsonb codec
    # (db/pool.py) decodes them, as it encodes what is written
    return None if record is None else dict(record)


async def get_payment_method(conn: Conn, *, merchant_id: str, payment_method_id: str
                             ) -> dict[str, Any] | None:
    return _row(await conn.fetchrow(
        f"SELECT {PM_COLUMNS} FROM kassa_vault.payment_methods"
        " WHERE id = $1 AND merchant_id = $2", payment_method_id, merchant_id))


async def get_payment_method_and_customer(conn: Conn, *, merchant_id: str,
                                          payment_method_id: str, customer_id: str
                                          ) -> tuple[dict[str, Any] | None, bool, str]:
    """The card's row as get_payment_method reads it, whether the merchant's customer
    ``customer_id`` exists and is not deleted, and the row's version (xmin: every update of
    the row changes it; what a kept row's claim compares, db/sql/apply.sql): one statement
    for a saved card's payment (the serving role reads both tables)."""
    record = await conn.fetchrow(
        f"SELECT {PM_COLUMNS}, (SELECT NOT c.deleted FROM customers c"
        "  WHERE c.id = $3 AND c.merchant_id = $2) AS customer_live,"
        " xmin::text AS row_version"
        " FROM kassa_vault.payment_methods WHERE id = $1 AND merchant_id = $2",
        payment_method_id, merchant_id, customer_id)
    if record is None:
        return None, False, ""
    row = dict(record)
    live, version = bool(row.pop("customer_live")), row.pop("row_version")
    return row, live, version


# KEK versions

async def kek_versions(conn: Conn) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT version, state, probe FROM kassa_vault.kek_versions ORDER BY version"))


async def register_kek_version(conn: asyncpg.Connection, *, version: int, probe: bytes
                               ) -> None:
    """Make ``version`` the active one; earlier active versions may still unwrap."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE kassa_vault.kek_versions IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute(
            "UPDATE kassa_vault.kek_versions SET state = 'decrypt_only'"
            " WHERE state = 'active' AND version <> $1", version)
        await conn.execute(
            "INSERT INTO kassa_vault.kek_versions (version, state, probe)"
            " VALUES ($1, 'active', $2) ON CONFLICT (version) DO UPDATE SET state = 'active'"
            " WHERE kek_versions.state <> 'retired'", version, probe)


async def retire_kek_version(conn: asyncpg.Connection, version: int) -> int:
    """Retire ``version`` if no data key uses it; returns how many still do (0: retired).

    The row lock waits for every wrap under this version in flight (the trigger holds FOR
    SHARE on it), and the count is a new statement, so it sees them once committed; a wrap
    that comes later waits for this transaction and then finds the version retired."""
    async with conn.transaction():
        state = await conn.fetchval(
            "SELECT state FROM kassa_vault.kek_versions WHERE version = $1 FOR UPDATE", version)
        if state is None or state == "retired":
            return 0
        if state == "active":
            raise ValueError(f"KEK version {version} is the active one")
        using = await conn.fetchval(
            "SELECT count(*) FROM kassa_vault.data_keys WHERE kek_version = $1", version)
        if using == 0:
            await conn.execute(
                "UPDATE kassa_vault.kek_versions SET state = 'retired', retired_at = now()"
                " WHERE version = $1", version)
        return int(using)


# data keys and sealed cards

async def fingerprint_key(conn: Conn, merchant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, kek_version, wrapped FROM kassa_vault.data_keys"
        " WHERE merchant_id = $1 AND purpose = 'fingerprint'", merchant_id)


async def insert_fingerprint_key(conn: Conn, *, data_key_id: str, merchant_id: str,
                                 kek_version: int, wrapped: bytes) -> None:
    await conn.execute(
        "INSERT INTO kassa_vault.data_keys (id, merchant_id, purpose, kek_version, wrapped)"
        " VALUES ($1, $2, 'fingerprint', $3, $4) ON CONFLICT DO NOTHING",
        data_key_id, merchant_id, kek_version, wrapped)


async def insert_card(conn: asyncpg.Connection, *, pm: dict[str, Any], data_key_id: str,
                      kek_version: int, wrapped: bytes, sealed_pan: bytes,
                      idempotency: tuple[str, bytes] | None = None) -> None:
    """The payment method, its data key, its sealed PAN and the request's idempotency key:
    all or nothing (a key another request took meanwhile raises UniqueViolationError)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO kassa_vault.data_keys (id, merchant_id, purpose, kek_version, wrapped)"
            " VALUES ($1, $2, 'card', $3, $4)", data_key_id, pm["merchant_id"], kek_version,
            wrapped)
        await conn.execute(
            "INSERT INTO kassa_vault.payment_methods (id, merchant_id, brand, last4,"
            " exp_month, exp_year, funding, country, fingerprint, checks, billing_details,"
            " metadata, livemode, created)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            pm["id"], pm["merchant_id"], pm["brand"], pm["last4"], pm["exp_month"],
            pm["exp_year"], pm["funding"], pm["country"], pm["fingerprint"],
            pm["checks"], pm["billing_details"], pm["metadata"], pm["livemode"], pm["created"])
        await conn.execute(
            "INSERT INTO kassa_vault.card_secrets (payment_method_id, merchant_id, data_key_id,"
            " pan) VALUES ($1, $2, $3, $4)", pm["id"], pm["merchant_id"], data_key_id,
            sealed_pan)
        if idempotency is not None:
            await conn.execute(
                "INSERT INTO kassa_vault.idempotency_keys (merchant_id, key, request_mac,"
                " payment_method_id) VALUES ($1, $2, $3, $4)", pm["merchant_id"],
                idempotency[0], idempotency[1], pm["id"])


async def idempotency_key(conn: Conn, *, merchant_id: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT request_mac, payment_method_id FROM kassa_vault.idempotency_keys"
        " WHERE merchant_id = $1 AND key = $2", merchant_id, key)


async def prune_idempotency_keys(conn: Conn, *, older_than_hours: float) -> None:
    await conn.execute(
        "DELETE FROM kassa_vault.idempotency_keys"
        " WHERE created_at < now() - make_interval(secs => $1)", older_than_hours * 3600)


async def sealed_cards(conn: Conn, payment_method_ids: Sequence[str]) -> list[asyncpg.Record]:
    """What opening these cards needs: the sealed PAN and its wrapped data key, one round
    trip."""
    return list(await conn.fetch(
        "SELECT s.payment_method_id, s.merchant_id, s.pan, k.id AS data_key_id,"
        " k.kek_version, k.wrapped FROM kassa_vault.card_secrets s"
        " JOIN kassa_vault.data_keys k ON k.id = s.data_key_id"
        " WHERE s.payment_method_id = ANY($1::text[])", list(payment_method_ids)))


# rotation

async def data_keys_to_rewrap(conn: Conn, *, target: int, after: str, limit: int
                              ) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT id, merchant_id, purpose, kek_version, wrapped FROM kassa_vault.data_keys"
        " WHERE kek_version <> $1 AND id > $2 ORDER BY id LIMIT $3", target, after, limit))


async def rewrap(conn: Conn, *, target: int, ids: list[str], old_versions: list[int],
                 wrapped: list[bytes]) -> int:
    """Store re-wrapped keys, each only if nobody re-wrapped it meanwhile (compare and
    set on its version); returns how many were stored."""
    status = await conn.execute(
        "UPDATE kassa_vault.data_keys d SET kek_version = $1, wrapped = u.wrapped,"
        " rewrapped_at = now()"
        " FROM unnest($2::text[], $3::integer[], $4::bytea[]) AS u(id, old, wrapped)"
        " WHERE d.id = u.id AND d.kek_version = u.old", target, ids, old_versions, wrapped)
    return int(status.split()[-1])


async def count_by_version(conn: Conn) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT v.version, count(d.id) AS n FROM kassa_vault.kek_versions v"
        " LEFT JOIN kassa_vault.data_keys d ON d.kek_version = v.version"
        " GROUP BY v.version ORDER BY v.version")
    return {r["version"]: r["n"] for r in rows}
