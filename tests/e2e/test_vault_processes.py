"""The card vault as its own process next to `kassa api` and `kassa worker`: a card
tokenised at the vault pays through the simulator, which receives the real number by way of
the vault's forwarding endpoint; afterwards the card numbers are nowhere outside the
vault's ciphertext — not in the API's or worker's logs or memory, the database, events or
webhook bodies — and the CVCs nowhere at all."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import asyncpg
import httpx
import pytest

from kassa.vault.cards import luhn_valid
from tests.integration.test_database_roles import kassa_cli
from tests.support.databases import migrated_database
from tests.support.processes import free_port, kassa_process, wait_healthy
from tests.support.vault import CHECKOUT_TOKEN_SECRET, FORWARD_TOKEN, keyring_text, tokenise
from tests.support.webhook_receiver import WebhookReceiver, create_endpoint, eventually

pytestmark = pytest.mark.slow

STRIPE_PAN, DECLINED_PAN = "4242424242424242", "4000000000009995"
# what the CVC fields carried; searched as whole values (token() below)
CVCS = ("919", "838", "727")


def fresh_pan() -> str:
    """A Luhn-valid Visa number no source file contains (4242… is in kassa's test-card
    table, so every process that imports it holds that number in memory)."""
    while True:
        digits = "4" + "".join(random.choice("0123456789") for _ in range(15))
        if luhn_valid(digits):
            return digits


def memory_hits(pid: int, needles: list[bytes]) -> dict[bytes, int]:
    """How often each needle occurs in the readable memory of process ``pid``."""
    hits = dict.fromkeys(needles, 0)
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue  # [vvar] and the like
            for needle in needles:
                hits[needle] += chunk.count(needle)
    return hits


async def database_text(dsn: str, *, skip: set[str]) -> str:
    """Every row of every table of kassa (both schemas) as JSON text, bytea as hex."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname IN ('public', 'kassa_vault')")
        out = []
        for t in tables:
            name = f"{t['schemaname']}.{t['tablename']}"
            if name in skip:
                continue
            rows = await conn.fetch(f'SELECT row_to_json(x)::text AS j FROM {name} x')
            out.extend(r["j"] for r in rows)
        return "\n".join(out)
    finally:
        await conn.close()


# a CVC is 3 digits, so any long random text holds each one somewhere: inside ids, keys
# and tokens (letters, digits, _ - + / ~ and %-escapes), decimals and timestamps (".727")
_IN_A_TOKEN = r"[0-9A-Za-z_+/~%-]"


def token(text: str, needle: str) -> int:
    """How often ``needle`` occurs as a value of its own — a field's value in JSON, a form,
    a repr or a log line (``"cvc": "727"``, ``card[cvc]=727&``, ``cvc 727.``) — and not as
    a piece of a longer token or number."""
    return len(re.findall(rf"(?<!{_IN_A_TOKEN})(?<!\.){re.escape(needle)}"
                          rf"(?!{_IN_A_TOKEN})(?!\.[0-9])", text))


def test_the_cvc_search_finds_values_not_pieces_of_tokens():
    """The search below proves a CVC absent only if it would find one written out."""
    for written in ('"cvc":"727"', "{'cvc': '727'}", "card[cvc]=727&exp_month=12",
                    "card%5Bcvc%5D=727", "cvc=727", "cvc: 727", "the CVC was 727.",
                    "Secret('727')", "727"):
        assert token(written, "727") == 1, written
    for pieces in ("pm_Ab727Cd", "tok-727_x", "ck_a_727-b", "Zx+727/q", "%727", "0.727",
                   "11:02:33.727+00", "727.5", "17270", "a727", "727b", "~727~"):
        assert token(pieces, "727") == 0, pieces


async def test_card_numbers_stay_in_the_vault(server_url, simulator_url, tmp_path: Path):
    own_pan = fresh_pan()
    with migrated_database(server_url, "kassa_vault_e2e") as db:
        api_port, vault_port, forward_port = free_port(), free_port(), free_port()
        common = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
        common.update({"KASSA_DATABASE_URL": db, "KASSA_HOME": str(tmp_path / "home"),
                       "KASSA_ENV": "test", "KASSA_SIMULATOR_URL": simulator_url,
                       "KASSA_VAULT_PORT": str(vault_port), "KASSA_PORT": str(api_port),
                       "KASSA_VAULT_FORWARD_SECRET": FORWARD_TOKEN, "KASSA_DEBUG": "1",
                       "KASSA_VAULT_FORWARD_PORT": str(forward_port),
                       "KASSA_CHECKOUT_TOKEN_SECRET": CHECKOUT_TOKEN_SECRET,
                       "KASSA_API_KEY_CACHE_SECONDS": "0",
                       "KASSA_WEBHOOK_POLL_INTERVAL_SECONDS": "0.05"})
        vault_env = {**common, "KASSA_VAULT_KEKS": keyring_text(1),
                     "KASSA_VAULT_FORWARD_HOSTS": simulator_url}
        shop = json.loads(kassa_cli("merchants", "create", "Vault e2e", env=common).stdout)
        logs = {name: tmp_path / f"{name}.log" for name in ("vault", "api", "worker")}
        vault_url, api = f"http://127.0.0.1:{vault_port}", f"http://127.0.0.1:{api_port}"
        auth = {"Authorization": f"Bearer {shop['secret_key']}"}
        with kassa_process(["vault"], vault_env, log=logs["vault"]) as vault_proc, \
                kassa_process(["api"], common, log=logs["api"]) as api_proc, \
                kassa_process(["worker", "--role", "webhooks"], common,
                              log=logs["worker"]) as worker_proc:
            await wait_healthy(vault_url, vault_proc)
            await wait_healthy(api, api_proc)
            # `kassa vault` serves /v1/forward on its loopback listener only
            async with httpx.AsyncClient() as probe:
                for base, expected in ((vault_url, 404), (f"http://127.0.0.1:{forward_port}",
                                                          401)):
                    r = await probe.post(base + "/v1/forward", json={})
                    assert r.status_code == expected, (base, r.text)
            async with WebhookReceiver() as receiver, httpx.AsyncClient(base_url=api) as c:
                await create_endpoint(c, auth, receiver.url)
                paid = {}
                for number, cvc in ((STRIPE_PAN, CVCS[0]), (own_pan, CVCS[1]),
                                    (DECLINED_PAN, CVCS[2])):
                    pm = await tokenise(vault_url, shop["publishable_key"], number, cvc=cvc)
                    assert pm.status_code == 200, pm.text
                    r = await c.post("/v1/payment_intents", headers=auth, data={
                        "amount": "2000", "currency": "usd", "payment_method": pm.json()["id"],
                        "confirm": "true"})
                    paid[number] = r
                assert paid[STRIPE_PAN].json()["status"] == "succeeded", paid[STRIPE_PAN].text
                assert paid[own_pan].json()["status"] == "succeeded", paid[own_pan].text
                assert paid[DECLINED_PAN].status_code == 402
                assert paid[DECLINED_PAN].json()["error"]["decline_code"] == \
                    "insufficient_funds"

                async def delivered() -> bool:
                    types = {json.loads(r.body)["type"] for r in receiver.answered()}
                    return {"payment_intent.succeeded",
                            "payment_intent.payment_failed"} <= types

                await eventually(delivered, within=30)
                webhook_bodies = b"\n".join(r.body for r in receiver.received)
            # the simulator saw the real numbers (its brand and last4 come from them)
            async with httpx.AsyncClient(base_url=simulator_url) as sim:
                seen = set()
                for a in (await sim.get("/_sim/authorizations")).json():
                    op = (await sim.get(f"/v1/operations/{a['idempotency_key']}")).json()
                    seen.add((op["last4"], op["brand"], op["status"]))
            assert (own_pan[-4:], "visa", "captured") in seen
            assert ("4242", "visa", "captured") in seen
            # the API and the worker never held the number (4242… is a constant in the
            # test-card table they import, so the number only this test knows is searched)
            for proc in (api_proc, worker_proc):
                hits = memory_hits(proc.pid, [own_pan.encode(), STRIPE_PAN.encode()])
                assert hits[STRIPE_PAN.encode()] > 0  # the scan works: it finds the constant
                assert hits[own_pan.encode()] == 0, f"PAN in the memory of {proc.args}"
        text = {name: path.read_text(errors="replace") for name, path in logs.items()}
        everything = await database_text(db, skip=set())
        outside_ciphertext = await database_text(
            db, skip={"kassa_vault.card_secrets", "kassa_vault.data_keys"})
    for number in (STRIPE_PAN, own_pan, DECLINED_PAN):
        for where in ("api", "worker", "vault"):
            assert number not in text[where], f"{number} in the {where} log"
        assert number not in outside_ciphertext, f"{number} in the database"
        assert number.encode().hex() not in outside_ciphertext
        assert number.encode() not in webhook_bodies
    for cvc in CVCS:
        for where, body in (*text.items(), ("database", everything),
                            ("webhooks", webhook_bodies.decode())):
            assert token(body, cvc) == 0, f"CVC {cvc} in {where}"
    assert '"last4":"4242"' in outside_ciphertext  # the search did read the vault's table
