"""The PAN leak proof: every test card number, tokenised at the vault and then paid with,
saved to a customer, charged off-session, declined, sent through 3-D Secure or the hosted
checkout page's confirm, or refused (Luhn, expiry), is then searched for in the log lines
of every logger, every answer the API gave, and a dump of every table of every schema but
the sealed PANs (``kassa_vault.card_secrets.pan``): events, webhook deliveries, request
logs, idempotency keys, charges, attempts, the vault's payment methods … — 0 hits. The
amex cards' 4-digit CVC (distinct enough to search for; a 3-digit one would match any
timestamp) is searched for in the logs and the vault's tables too."""

from __future__ import annotations

import logging
import re

import httpx

from kassa.psp.simulator.cards import TEST_CARDS
from tests.support.vault import tokenise

CVC = "7391"  # the amex cards': the proof looks for it in the vault's tables and the logs
# Luhn-valid numbers beyond the simulator's list (approved there), and refused ones
EXTRA = ("4111111111111111", "5105105105105100", "371449635398431", "4012888888881881")
REFUSED = ("4242424242424241", "1234567812345678")


def _auth(shop):
    return {"Authorization": f"Bearer {shop['secret_key']}"}


def _spaced(number: str) -> str:
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


async def _dump(pool) -> str:
    """Every row of every table kassa has, as text; the sealed PAN column left out."""
    tables = await pool.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE' AND table_schema NOT IN"
        " ('pg_catalog', 'information_schema') ORDER BY 1, 2")
    parts = []
    for t in tables:
        schema, name = t["table_schema"], t["table_name"]
        columns = [r["column_name"] for r in await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1"
            " AND table_name = $2", schema, name)]
        if (schema, name) == ("kassa_vault", "card_secrets"):
            columns = [c for c in columns if c != "pan"]
        select = ", ".join(f'"{c}"::text' for c in columns)
        for row in await pool.fetch(f'SELECT {select} FROM "{schema}"."{name}"'):
            parts.append(f"{schema}.{name}: " + " | ".join(str(v) for v in row.values()))
    return "\n".join(parts)


async def test_no_card_number_anywhere_but_the_sealed_column(api, vault, shop, sim, caplog):
    caplog.set_level(logging.DEBUG)
    h = _auth(shop)
    answers: list[str] = []
    numbers = sorted({*TEST_CARDS, *EXTRA})
    cus = (await api.post("/v1/customers", headers=h, data={"name": "Leak"})).json()["id"]
    for i, number in enumerate(numbers):
        r = await tokenise(vault.url, shop["publishable_key"], number,
                           cvc=CVC if len(number) == 15 else "123")
        answers.append(r.text)
        assert r.status_code == 200, r.text
        pm = r.json()["id"]
        r = await api.post("/v1/payment_intents", headers={**h, "Idempotency-Key": f"leak-{i}"},
                           data={"amount": "1000", "currency": "usd", "payment_method": pm,
                                 "customer": cus, "setup_future_usage": "off_session",
                                 "confirm": "true", "return_url": "https://shop.example/r"})
        answers.append(r.text)
        body = r.json()
        url = (body.get("next_action") or {}).get("redirect_to_url", {}).get("url")
        if url:  # 3-D Secure: the customer completes it, kassa records the return
            async with httpx.AsyncClient() as c:
                done = await c.post(f"{url}/complete", data={"result": "succeed"})
                answers.append(done.text)
        if r.status_code == 200 and body.get("status") == "succeeded" and not url:
            again = await api.post("/v1/payment_intents", headers=h, data={
                "amount": "500", "currency": "usd", "payment_method": pm, "customer": cus,
                "off_session": "true", "confirm": "true"})
            answers.append(again.text)
            refund = await api.post("/v1/refunds", headers=h,
                                    data={"payment_intent": body["id"], "amount": "100"})
            answers.append(refund.text)
        got = await api.get(f"/v1/payment_methods/{pm}", headers=h)
        answers.append(got.text)
    for number in REFUSED:
        for data in ({"number": number}, {"number": number, "json": True}):
            payload = {"type": "card", "card": {"number": data["number"], "exp_month": 12,
                                                "exp_year": 2034, "cvc": "123"}}
            async with httpx.AsyncClient(base_url=vault.url) as c:
                if data.get("json"):
                    r = await c.post("/v1/payment_methods", json=payload,
                                     auth=(shop["publishable_key"], ""))
                else:
                    r = await tokenise(vault.url, shop["publishable_key"], number)
            assert r.status_code == 402, r.text
            answers.append(r.text)
    expired = await tokenise(vault.url, shop["publishable_key"], "4242424242424242",
                             year="2001")
    assert expired.status_code == 402
    answers.append(expired.text)
    # the hosted page's way in: its token at the vault, its confirm at the API
    pi = (await api.post("/v1/payment_intents", headers=h,
                         data={"amount": "800", "currency": "eur"})).json()
    page = await api.get(f"/checkout/{pi['id']}", params={"client_secret": pi["client_secret"]})
    token = re.search(r'"token":"(kct_[^"]+)"', page.text).group(1)
    async with httpx.AsyncClient(base_url=vault.url) as c:
        made = await c.post("/v1/payment_methods", headers={"Authorization": f"Bearer {token}"},
                            data={"type": "card", "card[number]": "5555555555554444",
                                  "card[exp_month]": "12", "card[exp_year]": "2034",
                                  "card[cvc]": "123"})
    paid = await api.post(f"/checkout/{pi['id']}/confirm", json={
        "client_secret": pi["client_secret"], "payment_method": made.json()["id"]})
    assert paid.status_code == 200, paid.text
    answers += [page.text, made.text, paid.text]

    dump = await _dump(api.kassa.pool)
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    haystacks = {"database dump": dump, "logs": logs, "answers": "\n".join(answers)}
    # the search is able to find what it looks for: the cards' visible facts are there
    assert "pm_" in dump and "kassa_vault.payment_methods" in dump and "events:" in dump
    assert "webhook" in dump and "idempotency_keys" in dump and "charges:" in dump
    assert all(n[-4:] in dump for n in numbers) and len(caplog.records) > 0
    hits = [(where, number) for number in [*numbers, *REFUSED]
            for where, text in haystacks.items()
            if number in text or _spaced(number) in text]
    assert hits == []
    vault_tables = "\n".join(line for line in dump.splitlines()
                             if line.startswith("kassa_vault."))
    # as a number of its own (inside a timestamp or a float it would be no CVC)
    cvc = re.compile(rf"(?<![0-9]){CVC}(?![0-9])")
    assert cvc.search(f"cvc {CVC}.")  # the pattern finds what it looks for
    assert vault_tables and not cvc.search(vault_tables) and not cvc.search(logs)
