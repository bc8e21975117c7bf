"""`kassa vault rotate-kek`: every data key re-wrapped under a new KEK version while cards
are tokenised and paid, resumable, and an old version retired only once nothing uses it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from kassa.api.app import create_app
from kassa.services import merchants
from kassa.vault import rotation, store
from kassa.vault.keyring import new_keyring_file
from kassa.vault.runtime import build_vault
from tests.support.databases import migrated_database
from tests.support.vault import RunningVault, kassa_through, running_vault, tokenise

CARDS = ["4242424242424242", "5555555555554444", "4000056655665556", "6011111111111117"]


@pytest.fixture
async def rig(server_url, settings, tmp_path) -> AsyncIterator[tuple[RunningVault, Path, str]]:
    """A vault with a file keyring on a database of its own (rotation changes it for good)."""
    path = tmp_path / "vault-kek"
    new_keyring_file(path)
    with migrated_database(server_url, "kassa_vault_rotation") as db:
        async with running_vault(settings, db, vault_keks=None, vault_kek_file=path,
                                 vault_kek_refresh_seconds=0.2) as vault:
            yield vault, path, db


async def test_rotation_during_payments_loses_nothing(rig, settings):
    vault, path, db = rig
    async with kassa_through(vault, db) as k:
        app = create_app(kassa=k, key_cache_seconds=0.0)
        shops = [await merchants.create_merchant(k, name=f"Shop {i}") for i in range(2)]
        cards: dict[str, tuple[dict[str, str], str]] = {}
        for shop, number in zip(itertools.cycle(shops), CARDS * 10, strict=False):
            r = await tokenise(vault.url, shop["publishable_key"], number)
            cards[r.json()["id"]] = (shop, number)
        # the operator's `rotate-kek`: its own process, its own keyring object on the file
        rotator, _, close = await build_vault(vault.settings.model_copy(update={
            "vault_kek_file": path, "vault_keks": None}), db, pool_size=2)
        try:
            new = rotator.keys.add_version()  # type: ignore[attr-defined]
            assert new == 2
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://kassa.test") as client:

                async def pay(pm: str, shop: dict[str, str]) -> str:
                    r = await client.post("/v1/payment_intents", headers={
                        "Authorization": f"Bearer {shop['secret_key']}"}, data={
                        "amount": "1000", "currency": "usd", "payment_method": pm,
                        "confirm": "true"})
                    assert r.status_code == 200, r.text
                    return str(r.json()["status"])

                async def traffic() -> list[str]:
                    statuses = []
                    for pm, (shop, number) in cards.items():
                        statuses.append(await pay(pm, shop))
                        fresh = await tokenise(vault.url, shop["publishable_key"], number)
                        statuses.append(await pay(fresh.json()["id"], shop))
                    return statuses

                report, statuses = await asyncio.gather(
                    rotation.rotate(rotator, new_version=new, batch_size=3, settle_seconds=0.5),
                    traffic())
            assert statuses == ["succeeded"] * len(statuses)
        finally:
            await close()
    assert report.rewrapped > 0
    counts = await store.count_by_version(vault.vault.pool)
    assert counts.get(1, 0) == 0 and counts[2] >= len(cards) + 2
    versions = {r["version"]: r["state"] for r in await store.kek_versions(vault.vault.pool)}
    assert versions == {1: "retired", 2: "active"} and report.retired == (1,)
    opened = await vault.vault.open_cards(list(cards))
    assert {pm: n.reveal() for pm, n in opened.items()} == {pm: c[1] for pm, c in cards.items()}


async def test_an_interrupted_rotation_resumes(rig):
    vault, path, db = rig
    async with kassa_through(vault, db) as k:
        shop = await merchants.create_merchant(k, name="Resume shop")
    pms = [(await tokenise(vault.url, shop["publishable_key"], n)).json()["id"]
           for n in CARDS * 3]
    new = vault.vault.keys.add_version()  # type: ignore[attr-defined]
    await vault.vault.activate(new)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        await rotation.rewrap_all(vault.vault, target=new, batch_size=4, progress=interrupt)
    counts = await store.count_by_version(vault.vault.pool)
    assert counts[new] == 4 and counts[1] > 0
    lines: list[tuple[int, int]] = []
    report = await rotation.rotate(vault.vault, new_version=new, batch_size=4,
                                   progress=lambda d, t: lines.append((d, t)))
    assert report.retired == (1,) and lines[-1][0] == lines[-1][1]
    assert (await store.count_by_version(vault.vault.pool)) == {1: 0, 2: len(pms) + 1}
    assert len(await vault.vault.open_cards(pms)) == len(pms)


async def test_a_version_still_in_use_is_not_retired(rig):
    vault, _, db = rig
    async with kassa_through(vault, db) as k:
        shop = await merchants.create_merchant(k, name="Busy shop")
    await tokenise(vault.url, shop["publishable_key"], CARDS[0])
    await vault.vault.activate(vault.vault.keys.add_version())  # type: ignore[attr-defined]
    async with vault.vault.pool.acquire() as conn:
        assert await store.retire_kek_version(conn, 1) == 2  # its card and fingerprint keys
    states = {r["version"]: r["state"] for r in await store.kek_versions(vault.vault.pool)}
    assert states == {1: "decrypt_only", 2: "active"}


async def test_retiring_waits_for_a_wrap_in_flight_under_that_version(rig):
    vault, _, db = rig
    async with kassa_through(vault, db) as k:
        shop = await merchants.create_merchant(k, name="Race shop")
    await vault.vault.activate(vault.vault.keys.add_version())  # type: ignore[attr-defined]
    wrapping, retiring = await asyncpg.connect(db), await asyncpg.connect(db)
    try:
        tx = wrapping.transaction()
        await tx.start()
        # a vault whose cached active version is still 1 wraps under it (not committed yet)
        await wrapping.execute(
            "INSERT INTO kassa_vault.data_keys (id, merchant_id, purpose, kek_version, wrapped)"
            " VALUES ('dk_late', $1, 'card', 1, '\\x00')", shop["merchant_id"])
        retire = asyncio.create_task(store.retire_kek_version(retiring, 1))
        await asyncio.sleep(0.3)
        assert not retire.done()  # waits for the wrap's transaction
        await tx.commit()
        assert await retire == 1  # and then sees it: version 1 is still in use
        # once nothing uses it, it retires, and a late wrap under it is refused
        await wrapping.execute("DELETE FROM kassa_vault.data_keys WHERE id = 'dk_late'")
        assert await store.retire_kek_version(retiring, 1) == 0
        with pytest.raises(asyncpg.CheckViolationError, match="retired"):
            await wrapping.execute(
                "INSERT INTO kassa_vault.data_keys (id, merchant_id, purpose, kek_version,"
                " wrapped) VALUES ('dk_later', $1, 'card', 1, '\\x00')", shop["merchant_id"])
    finally:
        await wrapping.close()
        await retiring.close()


async def test_a_forwarded_card_is_read_again_only_under_a_new_kek_version(rig, monkeypatch):
    """The vault keeps the sealed rows it opened (ciphertext) while they are wrapped under
    the active version: a card paid with again is not read again, until a rotation."""
    vault, path, db = rig
    async with kassa_through(vault, db) as k:
        shop = await merchants.create_merchant(k, name="Kept shop")
    pms = [(await tokenise(vault.url, shop["publishable_key"], n)).json()["id"]
           for n in CARDS[:2]]
    reads: list[list[str]] = []
    real = store.sealed_cards

    async def counted(conn: object, ids: list[str]) -> list[asyncpg.Record]:
        reads.append(list(ids))
        return await real(conn, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "sealed_cards", counted)
    v = vault.vault
    for _ in range(3):
        assert (await v.open_cards([pms[0]]))[pms[0]].reveal() == CARDS[0]
    assert reads == [[pms[0]]]
    new = v.keys.add_version()  # type: ignore[attr-defined]
    await v.activate(new)
    await rotation.rewrap_all(v, target=new, batch_size=10)
    for _ in range(2):  # wrapped under the old version when kept: read anew, then kept
        assert (await v.open_cards([pms[0]]))[pms[0]].reveal() == CARDS[0]
    assert reads == [[pms[0]], [pms[0]]]
    v.sealed_cache_entries = 1  # bounded: the least recently used goes first
    opened = await v.open_cards(pms)
    assert {pm: n.reveal() for pm, n in opened.items()} == dict(zip(pms, CARDS[:2], strict=True))
    assert len(v._sealed) == 1
