"""A PSP does not forget: the simulator's books survive a restart when it keeps them in a
file (``kassa dev`` and ``kassa simulator`` do), so kassa's captures, voids and refunds of
what it authorised before the restart still find their authorisations."""

from __future__ import annotations

from pathlib import Path

import httpx

from kassa.psp.simulator import create_app

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}


def client(path: Path | None) -> httpx.AsyncClient:
    app = create_app(state_path=path)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


async def authorize(sim: httpx.AsyncClient, key: str, **extra: object) -> dict:
    r = await sim.post("/v1/authorizations", json={
        "idempotency_key": key, "amount": 5000, "currency": "usd", "card": CARD,
        "capture": False, "merchant_id": "acct_1", **extra})
    assert r.status_code == 200, r.text
    return r.json()


async def test_books_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sim" / "state.sqlite3"
    async with client(path) as sim:
        auth = await authorize(sim, "ch_1")
        r = await sim.post(f"/v1/authorizations/{auth['id']}/capture",
                           json={"idempotency_key": "att_c", "amount": 3000})
        assert r.json()["status"] == "captured"
        disputed = await authorize(sim, "ch_2", )
    async with client(path) as sim:  # a new process reading the same file
        # the same keys replay, a different request under them is refused
        assert (await authorize(sim, "ch_1"))["id"] == auth["id"]
        r = await sim.post(f"/v1/authorizations/{auth['id']}/capture",
                           json={"idempotency_key": "att_c", "amount": 3000})
        assert r.status_code == 200 and r.json()["status"] == "captured"
        r = await sim.post(f"/v1/authorizations/{auth['id']}/capture",
                           json={"idempotency_key": "att_c", "amount": 2000})
        assert r.status_code == 409
        r = await sim.post(f"/v1/authorizations/{auth['id']}/refunds",
                           json={"idempotency_key": "att_r", "amount": 1000})
        assert r.json()["status"] == "refunded"
        r = await sim.post(f"/v1/authorizations/{disputed['id']}/void",
                           json={"idempotency_key": "att_v"})
        assert r.json()["status"] == "voided"
        stats = (await sim.get("/_sim/stats")).json()
        assert (stats["authorizations"], stats["captures"], stats["refunds"],
                stats["voids"]) == (2, 1, 1, 1)
    async with client(path) as sim:
        rows = {a["id"]: a for a in (await sim.get("/_sim/authorizations")).json()}
        assert rows[auth["id"]]["amount_captured"] == 3000
        assert rows[auth["id"]]["amount_refunded"] == 1000
        assert rows[disputed["id"]]["status"] == "voided"
        await sim.post("/_sim/reset")
    async with client(path) as sim:  # reset forgets the file too
        assert (await sim.get("/_sim/authorizations")).json() == []


async def test_in_memory_without_a_path_forgets() -> None:
    async with client(None) as sim:
        await authorize(sim, "ch_1")
    async with client(None) as sim:
        assert (await sim.get("/_sim/authorizations")).json() == []


async def test_event_sequences_continue_after_a_restart(tmp_path: Path) -> None:
    """kassa ignores an event at or below the last sequence it applied for an object: a
    restarted simulator counting from 1 again would have its bounce or dispute ignored."""
    path = tmp_path / "state.sqlite3"
    async with client(path) as sim:
        await sim.post("/_sim/config", json={"webhook_hold": True, "async_delay_ms": None})
        auth = await authorize(sim, "ch_1")
        await sim.post(f"/v1/authorizations/{auth['id']}/capture",
                       json={"idempotency_key": "att_c"})
        events = (await sim.get("/_sim/webhooks")).json()
        assert [(e["type"], e["sequence"]) for e in events] == [("capture.succeeded", 1)]
        capture_id = events[0]["data"]["object"]["id"]
        await sim.post("/_sim/disputes/" + auth["id"] + "/open", json={})
    async with client(path) as sim:
        await sim.post("/_sim/config", json={"webhook_hold": True, "async_delay_ms": None})
        await sim.post(f"/_sim/disputes/{auth['id']}/close", json={"outcome": "won"})
        events = (await sim.get("/_sim/webhooks")).json()
        assert [(e["type"], e["sequence"]) for e in events] == [("dispute.closed", 2)]
        assert capture_id != events[0]["data"]["object"]["id"]
