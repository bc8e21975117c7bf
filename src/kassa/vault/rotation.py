"""`kassa vault rotate-kek`: re-wrap every data key under a new KEK version while the vault
serves, then retire the versions nothing uses any more.

Online and resumable: each batch re-wraps keys read without locks and stores them with a
compare-and-set on their version, so tokenisations, forwards and another rotation can run
meanwhile and nothing is lost; the work left is whatever still has an old version, so a
rotation stopped halfway resumes by running it again. Only data keys change: the sealed
card numbers stay as they are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kassa.vault import crypto, store
from kassa.vault.service import Vault


@dataclass(slots=True)
class RotationReport:
    target: int
    rewrapped: int = 0
    retired: tuple[int, ...] = ()
    still_used: dict[int, int] | None = None


async def rewrap_all(vault: Vault, *, target: int, batch_size: int = 500,
                     progress: Callable[[int, int], None] | None = None) -> int:
    """Re-wrap every data key not under ``target``; returns how many this call stored."""
    counts = await store.count_by_version(vault.pool)
    total = sum(n for v, n in counts.items() if v != target)
    done, after = 0, ""
    while True:
        rows = await store.data_keys_to_rewrap(vault.pool, target=target, after=after,
                                               limit=batch_size)
        if not rows:
            return done
        wrapped = []
        for row in rows:
            aad = crypto.data_key_aad(data_key_id=row["id"], merchant_id=row["merchant_id"],
                                      purpose=row["purpose"])
            key = await vault.keys.unwrap(row["kek_version"], row["wrapped"], aad)
            wrapped.append(await vault.keys.wrap(target, key, aad))
        done += await store.rewrap(vault.pool, target=target, ids=[r["id"] for r in rows],
                                   old_versions=[r["kek_version"] for r in rows],
                                   wrapped=wrapped)
        after = rows[-1]["id"]
        if progress is not None:
            progress(done, max(total, done))


async def rotate(vault: Vault, *, new_version: int, batch_size: int = 500, retire: bool = True,
                 settle_seconds: float = 0.0,
                 progress: Callable[[int, int], None] | None = None) -> RotationReport:
    """Activate ``new_version`` (if not yet), re-wrap everything under it, then retire the
    older versions no data key uses. A vault process that still wrapped under an old version
    (its cached active version is at most ``settle_seconds`` old) is swept up by a second
    pass after that long; a version still in use stays ``decrypt_only``."""
    import asyncio

    if await vault.active_version(fresh=True) != new_version:
        await vault.activate(new_version)
    report = RotationReport(target=new_version)
    report.rewrapped = await rewrap_all(vault, target=new_version, batch_size=batch_size,
                                        progress=progress)
    if not retire:
        return report
    if settle_seconds:
        await asyncio.sleep(settle_seconds)
        report.rewrapped += await rewrap_all(vault, target=new_version, batch_size=batch_size,
                                             progress=progress)
    retired, still = [], {}
    for row in await store.kek_versions(vault.pool):
        if row["state"] != "decrypt_only":
            continue
        async with vault.pool.acquire() as conn:
            using = await store.retire_kek_version(conn, row["version"])
        if using:
            still[row["version"]] = using
        else:
            retired.append(row["version"])
    report.retired, report.still_used = tuple(retired), still
    return report
