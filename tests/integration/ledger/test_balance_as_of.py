"""GET /v1/balance?as_of= and `kassa balance --as-of` over real payments: the balance at a
past moment comes from the checkpoint before it plus the entries after, agrees with the
balance transactions created by then, and a bad moment is a Stripe-shaped 400."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from kassa.ledger import checkpoints
from kassa.ledger.verify import verify
from kassa.services.context import Kassa
from tests.integration.test_relay_cli import kassa_cli


async def pay(client, auth, amount: int) -> None:
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": str(amount), "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert r.json()["status"] == "succeeded", r.text


async def pending(client, auth, **query: str) -> int:
    r = await client.get("/v1/balance", headers=auth, params=query)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "balance"
    return sum(b["amount"] for b in r.json()["pending"] if b["currency"] == "usd")


async def net_created_by(client, auth, moment: int) -> int:
    r = await client.get("/v1/balance_transactions", headers=auth,
                         params={"limit": "100", "created[lte]": str(moment)})
    return sum(bt["net"] for bt in r.json()["data"])


async def test_the_balance_at_a_past_moment(client, auth, kassa: Kassa):
    started = int(time.time()) - 1
    await pay(client, auth, 1000)
    first = int(time.time())
    await asyncio.sleep(1.1)  # as_of counts whole seconds: the second payment is in a later one
    assert await checkpoints.roll_forward(kassa.pool, wait_seconds=60) is not None
    await pay(client, auth, 2500)
    now = int(time.time())
    at_first = await pending(client, auth, as_of=str(first))
    assert 0 < at_first < 1000  # the first payment net of its fee
    assert at_first == await net_created_by(client, auth, first)
    assert await pending(client, auth, as_of=str(started)) == 0
    total = await pending(client, auth)
    assert total == await pending(client, auth, as_of=str(now)) == \
        await net_created_by(client, auth, now)
    # the same answers once the second payment is checkpointed too
    assert await checkpoints.roll_forward(kassa.pool, wait_seconds=60) is not None
    assert await pending(client, auth, as_of=str(first)) == at_first
    assert await pending(client, auth) == total
    assert (await verify(kassa.pool)).ok


@pytest.mark.parametrize(("as_of", "code"), [
    ("abc", "parameter_invalid_integer"), ("1.5", "parameter_invalid_integer"),
    ("", "parameter_invalid_integer"), ("-1", "parameter_invalid"),
    ("future", "parameter_invalid")])
async def test_a_bad_moment_is_a_stripe_400(client, auth, as_of, code):
    if as_of == "future":
        as_of = str(int(time.time()) + 3600)
    r = await client.get("/v1/balance", headers=auth, params={"as_of": as_of})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code,
                                                              "as_of")


async def test_an_unknown_parameter_is_a_400(client, auth):
    r = await client.get("/v1/balance", headers=auth, params={"at": "1"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


async def test_kassa_balance_as_of_prints_the_balance_object(client, auth, merchant, dsn):
    await pay(client, auth, 1200)
    moment = int(time.time())
    out = kassa_cli("balance", merchant["merchant_id"], "--as-of", str(moment), dsn=dsn)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["object"] == "balance"
    assert [b["amount"] for b in shown["pending"]] == [await pending(client, auth,
                                                                     as_of=str(moment))]
    bad = kassa_cli("balance", merchant["merchant_id"], "--as-of", "-5", dsn=dsn)
    assert bad.returncode == 1 and "as_of" in bad.stderr


async def test_kassa_ledger_checkpoint_rolls_forward_and_verify_agrees(client, auth, dsn):
    await pay(client, auth, 700)
    out = kassa_cli("ledger", "checkpoint", "--max-entries", "1000000", dsn=dsn)
    assert out.returncode == 0, out.stderr
    runs = [json.loads(line) for line in out.stdout.splitlines()]
    assert runs and runs[-1]["position"] > runs[-1]["previous"]
    again = kassa_cli("ledger", "checkpoint", dsn=dsn)
    assert again.returncode == 0 and "no checkpoint written" in again.stdout
    verified = kassa_cli("ledger", "verify", dsn=dsn)
    assert verified.returncode == 0, verified.stderr
    assert "checkpoint_runs:" in verified.stdout
