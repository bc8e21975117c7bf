"""The platform's PSP accounts bound to their account at the PSP (migration 0025), and the
keys already found to belong to it (migration 0027)."""

from __future__ import annotations

import asyncpg


async def bind(pool: asyncpg.Pool, *, account: str, psp: str, ref: str) -> str:
    """The id ``account`` is bound to: ``ref`` when it was not bound yet (first start with
    this account), else the one bound before (the caller compares)."""
    async with pool.acquire() as conn:
        bound = await conn.fetchval(
            "INSERT INTO psp_account_bindings (account, psp, psp_account_ref)"
            " VALUES ($1, $2, $3) ON CONFLICT (account) DO NOTHING RETURNING psp_account_ref",
            account, psp, ref)
        if bound is None:
            bound = await conn.fetchval(
                "SELECT psp_account_ref FROM psp_account_bindings WHERE account = $1", account)
    return str(bound)


async def bound(pool: asyncpg.Pool, *, account: str) -> str | None:
    ref = await pool.fetchval(
        "SELECT psp_account_ref FROM psp_account_bindings WHERE account = $1", account)
    return None if ref is None else str(ref)


async def verified(pool: asyncpg.Pool, *, account: str, key_sha256: bytes) -> str | None:
    """The account at the PSP a key with this digest was found to belong to (None: never
    checked)."""
    ref = await pool.fetchval(
        "SELECT psp_account_ref FROM psp_verified_keys WHERE account = $1 AND key_sha256 = $2",
        account, key_sha256)
    return None if ref is None else str(ref)


async def record_verified(pool: asyncpg.Pool, *, account: str, key_sha256: bytes,
                          ref: str) -> None:
    await pool.execute(
        "INSERT INTO psp_verified_keys (account, key_sha256, psp_account_ref)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", account, key_sha256, ref)
