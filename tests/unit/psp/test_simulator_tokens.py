"""The simulator's own tokens (psp/simulator/tokens.py): ``tok_<test card>`` behaves like
that test card, ``POST /_sim/tokens`` stores any card (never answering its number), a
charge on a token is replayed by its key like a card's, an unknown token is a 400 with
nothing charged, and stored tokens survive a restart (recovery repeats charges on them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from kassa.psp.simulator import create_app
from kassa.psp.simulator.tokens import TEST_TOKENS


def client(path: Path | None = None) -> httpx.AsyncClient:
    app = create_app(state_path=path)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


async def charge(sim: httpx.AsyncClient, key: str, token: str, **extra: Any) -> httpx.Response:
    return await sim.post("/v1/authorizations", json={
        "idempotency_key": key, "amount": 1200, "currency": "usd", "token": token,
        "capture": True, "merchant_id": "acct_1", **extra})


async def test_test_card_tokens_behave_like_their_cards() -> None:
    assert {"tok_visa", "tok_chargeDeclined", "tok_authenticationRequired"} <= set(TEST_TOKENS)
    async with client() as sim:
        ok = (await charge(sim, "k1", "tok_visa")).json()
        assert (ok["status"], ok["brand"], ok["last4"]) == ("captured", "visa", "4242")
        declined = (await charge(sim, "k2", "tok_chargeDeclinedInsufficientFunds")).json()
        assert (declined["status"], declined["decline_code"]) == ("declined",
                                                                  "insufficient_funds")
        three_ds = (await charge(sim, "k3", "tok_authenticationRequired")).json()
        assert three_ds["status"] == "requires_action"
        again = (await charge(sim, "k1", "tok_visa")).json()  # the key replays
        assert again["id"] == ok["id"]
        stats = (await sim.get("/_sim/stats")).json()
        assert stats["authorizations"] == 3


async def test_unknown_tokens_and_mixed_bodies_are_refused_with_nothing_charged() -> None:
    async with client() as sim:
        r = await charge(sim, "k1", "simtok_nope")
        assert r.status_code == 400 and r.json()["error"]["param"] == "token", r.text
        r = await charge(sim, "k2", "tok_visa", card={"number": "4242424242424242",
                                                      "exp_month": 1, "exp_year": 2040})
        assert r.status_code == 400, r.text
        r = await sim.post("/_sim/tokens", json={"number": "42", "exp_month": 1,
                                                 "exp_year": 2040})
        assert r.status_code == 400 and r.json()["error"]["param"] == "number"
        assert (await sim.get("/_sim/authorizations")).json() == []


async def test_stored_tokens_survive_a_restart_and_a_reset_forgets_them(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    async with client(path) as sim:
        r = await sim.post("/_sim/tokens", json={"number": "5555555555554444",
                                                 "exp_month": 12, "exp_year": 2034})
        assert r.status_code == 200, r.text
        token = r.json()
        assert "number" not in token and token["last4"] == "4444"
        first = (await charge(sim, "k1", token["id"])).json()
    async with client(path) as sim:  # a restarted simulator: the key replays, the token works
        assert (await charge(sim, "k1", token["id"])).json()["id"] == first["id"]
        assert (await charge(sim, "k2", token["id"])).json()["status"] == "captured"
        await sim.post("/_sim/reset")
        assert (await charge(sim, "k3", token["id"])).status_code == 400
    async with client(path) as sim:
        assert (await charge(sim, "k4", token["id"])).status_code == 400
