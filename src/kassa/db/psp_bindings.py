"""The platform's PSP accounts bound to their account at the PSP (migration 0025)."""

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
