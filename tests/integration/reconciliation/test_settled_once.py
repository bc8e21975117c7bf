"""A PSP movement is settled once, counted at both ends: the simulator's report (what the
PSP paid out) against kassa's bank:cash and PSP receivable, when the same movement comes in
two files whose PSP reference is blank in one or both (matched by kassa's own reference),
when a row repeats in one file, and when a payment kassa still has as ``processing`` is
reported with another amount (never posted on trust)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from kassa.db import reconciliation as rdb
from kassa.domain.errors import InvalidRequest
from kassa.ledger.verify import verify
from kassa.services import merchants
from kassa.services import reconciliation as recon
from kassa.services.context import Kassa


async def receivable(k: Kassa) -> dict[str, int]:
    return {r["currency"]: r["total"] for r in await rdb.receivable(k.pool, psp="simulator")}


async def bank(k: Kassa) -> int:
    return int(await k.pool.fetchval("SELECT coalesce(sum(amount), 0)::bigint"
                                     " FROM ledger_entries WHERE account = 'bank:cash'"))


async def settlements(k: Kassa) -> int:
    return int(await k.pool.fetchval("SELECT count(*) FROM ledger_transactions"
                                     " WHERE kind = 'settlement'"))


def rows_of(text: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text)) if r]


def write(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def blank_psp_reference(text: str) -> str:
    rows = rows_of(text)
    i = rows[0].index("psp_reference")
    for r in rows[1:]:
        r[i] = ""
    return write(rows)


def psp_net(text: str) -> int:
    """What the PSP says it paid out for the file's rows (its own record)."""
    rows = rows_of(text)
    n = rows[0].index("net")
    return sum(int(r[n]) for r in rows[1:])


async def pay(k: Kassa, client: httpx.AsyncClient, name: str, amount: int) -> tuple[str, dict]:
    shop = await merchants.create_merchant(k, name=name)
    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": str(amount), "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    return r.json()["id"], auth


async def report(sim: httpx.AsyncClient, seed: int) -> str:
    r = await sim.post("/_sim/settlement_report", json={"inject": {}, "seed": seed})
    assert r.status_code == 200, r.text
    text: str = r.json()["csv"]
    return text


async def test_one_movement_in_two_files_without_psp_reference_is_settled_once(world,
                                                                              tmp_path: Path):
    k, client, sim = world
    await sim.post("/_sim/reset")
    pi, _ = await pay(k, client, "twice blank", 1000)
    text = blank_psp_reference(await report(sim, seed=1))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(text)
    b.write_text(text + "\n")  # another file (another hash), the same movements
    b0, r0 = await bank(k), await receivable(k)
    run1 = await recon.import_report(k, psp="simulator", path=a)
    b1 = await bank(k)
    run2 = await recon.import_report(k, psp="simulator", path=b)
    assert run1["id"] != run2["id"]
    assert run1["rows_matched"] >= 1
    # the bank got the PSP's net once; kassa booked it once
    assert b1 - b0 == psp_net(text)
    assert await bank(k) == b1
    assert (await receivable(k)).get("usd", 0) == r0.get("usd", 0) - 1000
    assert await k.pool.fetchval("SELECT count(*) FROM reconciliation_items WHERE posted"
                                 " AND matched = $1", pi) == 1
    assert (await verify(k.pool)).ok


async def test_reference_in_one_file_not_in_the_other_is_settled_once(world, tmp_path: Path):
    k, client, sim = world
    await sim.post("/_sim/reset")
    await pay(k, client, "ref then blank", 2000)
    text = await report(sim, seed=2)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(text)
    b.write_text(blank_psp_reference(text))
    b0 = await bank(k)
    await recon.import_report(k, psp="simulator", path=a)
    b1 = await bank(k)
    assert b1 - b0 == psp_net(text)
    await recon.import_report(k, psp="simulator", path=b)
    assert await bank(k) == b1
    assert (await verify(k.pool)).ok


class RollBack(Exception):
    pass


async def test_verify_names_an_object_settled_twice(world):
    k, _, _ = world
    with pytest.raises(RollBack):
        async with k.pool.acquire() as conn, conn.transaction():
            # as a database without reconciliation_settled_object could have it
            await conn.execute("DROP INDEX reconciliation_settled_object")
            await conn.execute(
                "INSERT INTO reconciliation_runs (id, psp, format, source_name, file_sha256,"
                " status, created) VALUES ('recon_v1', 'simulator', 'simulator', 'x',"
                " repeat('b', 64), 'completed', 0), ('recon_v2', 'simulator', 'simulator',"
                " 'y', repeat('c', 64), 'completed', 0)")
            await conn.execute(
                "INSERT INTO reconciliation_items (run_id, row_number, category, gross, fee,"
                " currency, matched, posted) VALUES ('recon_v1', 2, 'charge', 0, 0, 'usd',"
                " 'pi_twice', true), ('recon_v2', 2, 'charge', 0, 0, 'usd', 'pi_twice', true)")
            report = await verify(conn)
            assert any("charge pi_twice settled 2 times" in p for p in report.problems), (
                report.problems)
            raise RollBack
    assert await k.pool.fetchval("SELECT to_regclass('reconciliation_settled_object')")


async def test_a_fee_without_reference_is_recognised_by_its_fingerprint(world, tmp_path: Path):
    """Two identical reference-less fee rows in one file are two fees (both posted); the same
    rows in a later file are the same fees (not posted again)."""
    k, _, _ = world
    header = "type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
    fees = "fee,,,usd,0,125,-125,,1780000000\nfee,,,usd,0,125,-125,,1780000000\n"
    a, b = tmp_path / "fees_a.csv", tmp_path / "fees_b.csv"
    a.write_text(header + fees)
    b.write_text(header + fees + "fee,,,usd,0,40,-40,,1780000001\n")
    b0 = await bank(k)
    await recon.import_report(k, psp="simulator", path=a)
    assert await bank(k) - b0 == -250
    await recon.import_report(k, psp="simulator", path=b)
    assert await bank(k) - b0 == -290  # only the new fee
    assert (await verify(k.pool)).ok


async def test_a_processing_payment_reported_with_another_amount_is_not_posted(world,
                                                                              tmp_path: Path):
    k, client, sim = world
    await sim.post("/_sim/reset")
    await sim.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    pi, _ = await pay(k, client, "processing", 777)
    rows = rows_of(await report(sim, seed=4))
    g, n = rows[0].index("gross"), rows[0].index("net")
    for row in rows[1:]:  # the PSP reports 50,777 for a 777 payment
        row[g], row[n] = str(int(row[g]) + 50_000), str(int(row[n]) + 50_000)
    path = tmp_path / "processing.csv"
    path.write_text(write(rows))
    b0, r0 = await bank(k), await receivable(k)
    run = await recon.import_report(k, psp="simulator", path=path)
    found, _ = await recon.list_discrepancies(k, run_id=run["id"], limit=100,
                                              starting_after=None)
    mine = [(d["kind"], d["resolution"]["status"], d["psp_amount"], d["kassa_amount"])
            for d in found if d["kassa_object"] == pi]
    assert mine == [("amount_mismatch", "open", 50_777, 777)]
    assert await bank(k) == b0
    assert await receivable(k) == r0
    assert not await k.pool.fetchval("SELECT posted FROM reconciliation_items"
                                     " WHERE run_id = $1 AND matched = $2", run["id"], pi)
    assert (await verify(k.pool)).ok


async def runs_and_settlements(k: Kassa) -> tuple[int, int, int]:
    return (int(await k.pool.fetchval("SELECT count(*) FROM reconciliation_runs")),
            await settlements(k), await bank(k))


async def test_a_movement_twice_in_one_file_is_refused_naming_its_lines(world, tmp_path: Path):
    k, client, sim = world
    await sim.post("/_sim/reset")
    await pay(k, client, "twice in a file", 3000)
    lines = (await report(sim, seed=3)).splitlines()
    before = await runs_and_settlements(k)
    for name, text in (("same.csv", "\n".join([*lines, lines[1]]) + "\n"),
                       ("blank.csv", blank_psp_reference("\n".join([*lines, lines[1]])))):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InvalidRequest) as caught:
            await recon.import_report(k, psp="simulator", path=path)
        assert caught.value.param == "file"
        assert f"line 2, line {len(lines) + 1}" in str(caught.value), str(caught.value)
        assert await runs_and_settlements(k) == before  # nothing posted, no run kept


@pytest.mark.parametrize(("name", "body", "says"), [
    ("latin1.csv", b"fee,,,usd,0,5,-5,,1780000000\nfee,\xe9,,usd,0,5,-5,,1780000000\n",
     "not UTF-8 text"),
    ("nul.csv", b"fee,,,usd,0,5,-5,,1780000000\nfee,a\x00b,,usd,0,5,-5,,1780000000\n",
     "line 3: not a CSV line"),
    ("huge.csv", b"fee,\"" + b"x" * 200_000 + b"\",,usd,0,5,-5,,1780000000\n",
     "line 2: not a CSV line"),
])
async def test_a_file_that_is_not_utf8_csv_is_a_bad_request(world, tmp_path: Path, name: str,
                                                           body: bytes, says: str):
    k, _, _ = world
    path = tmp_path / name
    path.write_bytes(b"type,psp_reference,merchant_reference,currency,gross,fee,net,status,"
                     b"created\n" + body)
    before = await runs_and_settlements(k)
    with pytest.raises(InvalidRequest) as caught:
        await recon.import_report(k, psp="simulator", path=path)
    assert caught.value.param == "file" and says in str(caught.value), str(caught.value)
    assert await runs_and_settlements(k) == before
