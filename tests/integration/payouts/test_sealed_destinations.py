"""A bank account's full number never rests in the database in clear (payouts/
payout_numbers.py): after it is added through the API, neither pg_dump nor any text-like
column of any table holds it (its Idempotency-Key's stored request covers it only as a
keyed digest), yet the payout worker opens it for the bank, which pays the account."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess

import httpx
import psycopg

from kassa.api.app import create_app
from kassa.db.embedded_tools import bin_dir
from kassa.secrets_box import SecretsBox
from tests.integration.payouts.test_payouts_flow import DAY, funded, payout, step
from tests.integration.payouts.test_payouts_flow import bank as bank  # noqa: F401 (fixture)
from tests.integration.payouts.test_payouts_flow import bank_url as bank_url  # noqa: F401
from tests.support.vault import SESSION_SECRETS_KEYS, keyring_text


def _every_text_value(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type IN ('text', 'character varying',"
            " 'jsonb', 'json', 'bytea')").fetchall()
        out = []
        for table, column in columns:
            out.extend(str(r[0]) for r in conn.execute(psycopg.sql.SQL(
                "SELECT {}::text FROM {}").format(psycopg.sql.Identifier(column),
                                                 psycopg.sql.Identifier(table))))
    return "\n".join(out)


async def test_an_added_account_number_is_only_sealed_at_rest(client, auth, merchant, kassa,
                                                              dsn, bank, bank_url):  # noqa: F811
    number = "9" + "".join(secrets.choice("0123456789") for _ in range(11))
    await funded(client, auth, kassa)
    path = f"/v1/accounts/{merchant['merchant_id']}/external_accounts"
    fields = {"external_account[object]": "bank_account", "external_account[country]": "US",
              "external_account[currency]": "usd",
              "external_account[account_holder_name]": "Jenny Rosen",
              "external_account[routing_number]": "110000000",
              "external_account[account_number]": number}
    key = {**auth, "Idempotency-Key": f"ba-{secrets.token_hex(8)}"}
    r = await client.post(path, headers=key, data=fields)
    assert r.status_code == 200, r.text
    account = r.json()
    assert account["last4"] == number[-4:] and number not in r.text
    again = await client.post(path, headers=key, data=fields)  # the key still covers it
    assert (again.status_code, again.json()["id"]) == (200, account["id"])
    other = await client.post(path, headers=key, data={
        **fields, "external_account[account_number]": number[:-1] + str((int(number[-1]) + 1)
                                                                         % 10)})
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")

    dump = await asyncio.to_thread(subprocess.run, [str(bin_dir() / "pg_dump"),
                                                    "--data-only", dsn],
                                   capture_output=True, text=True, check=False)
    assert dump.returncode == 0, dump.stderr
    assert account["id"] in dump.stdout  # the destination is in the dump, its number not
    assert number not in dump.stdout
    assert number not in await asyncio.to_thread(_every_text_value, dsn)

    po = (await client.post("/v1/payouts", headers=auth,
                            data={"amount": "2500", "currency": "usd"})).json()
    await step(kassa, bank_url)
    sent = [t for t in (await bank.get("/_bank/transfers")).json()["data"]
            if t["reference"] == po["id"]]
    assert [(t["amount"], t["destination"]["last4"]) for t in sent] == [(2500, number[-4:])]
    await bank.post("/_bank/clock", json={"advance_s": DAY})
    await step(kassa, bank_url)
    assert (await payout(client, auth, po["id"]))["status"] == "paid"


async def test_a_retry_after_a_key_rotation_still_matches_its_idempotency_key(
        client, auth, merchant, kassa):
    """The stored request covers the number as a keyed digest; adding a secrets key version
    (the API restarted with v1,v2: v2 seals from now on) must not change that digest, or
    the client's retry of the same request is refused as another one."""
    number = "9" + "".join(secrets.choice("0123456789") for _ in range(11))
    path = f"/v1/accounts/{merchant['merchant_id']}/external_accounts"
    fields = {"external_account[object]": "bank_account", "external_account[country]": "US",
              "external_account[currency]": "usd",
              "external_account[account_holder_name]": "Jenny Rosen",
              "external_account[routing_number]": "110000000",
              "external_account[account_number]": number}
    key = {**auth, "Idempotency-Key": f"ba-{secrets.token_hex(8)}"}
    r = await client.post(path, headers=key, data=fields)
    assert r.status_code == 200, r.text
    rotated = SecretsBox.from_text(SESSION_SECRETS_KEYS + "," + keyring_text(2))
    assert rotated.current == 2
    app = create_app(kassa=dataclasses.replace(kassa, secrets=rotated), key_cache_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as after:
        again = await after.post(path, headers=key, data=fields)
        assert (again.status_code, again.json().get("id")) == (200, r.json()["id"]), again.text
        other = await after.post(path, headers=key, data={
            **fields, "external_account[account_number]": "8" + number[1:]})
        assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")
    # one destination, not two
    assert int(await kassa.pool.fetchval(
        "SELECT count(*) FROM payout_destinations WHERE merchant_id = $1",
        merchant["merchant_id"])) == 1
