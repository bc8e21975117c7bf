"""Adyen notifications that must not leave kassa's books wrong silently (review fixes):
a CAPTURE_FAILED after a recorded capture, an AUTHORISATION that does not say how it is
captured, a CANCELLATION confirmed for a payment already captured."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from kassa.psp.adyen.webhooks import signature
from kassa.services import confirm
from kassa.webhooks import inbound as psp_webhooks
from tests.e2e import test_adyen_payments as base
from tests.e2e.test_adyen_payments import NEW_KEY, World, with_psp_reference

# the Adyen world's fixtures (simulator, kassa, API server), shared with its module
adyen_sim_url, adyen_kassa, adyen_api, world = (
    base.adyen_sim_url, base.adyen_kassa, base.adyen_api, base.world)


async def _items(world: World, code: str) -> list[dict[str, Any]]:
    found = []
    for body in await world.held():
        for wrapped in orjson.loads(body)["notificationItems"]:
            item = wrapped["NotificationRequestItem"]
            if item["eventCode"] == code:
                found.append(item)
    return found


def _later(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a genuine item, later the same day, signed as Adyen would."""
    out = copy.deepcopy(item)
    out.update(changes)
    out["eventDate"] = item["eventDate"][:11] + "23" + item["eventDate"][13:]
    out["additionalData"]["hmacSignature"] = signature(out, bytes.fromhex(NEW_KEY))
    return out


async def _send(world: World, item: dict[str, Any]) -> None:
    r = await world.send(orjson.dumps({"live": "false", "notificationItems": [
        {"NotificationRequestItem": item}]}))
    assert r.status_code == 200, r.text
    while await psp_webhooks.apply_pending(world.kassa):
        pass


async def _event_row(world: World, event_id: str) -> dict[str, Any]:
    row = await world.kassa.pool.fetchrow(
        "SELECT status, result FROM psp_events WHERE psp = 'adyen' AND psp_event_id = $1",
        event_id)
    assert row is not None, event_id
    return dict(row)


def _event_id(item: dict[str, Any]) -> str:
    when = datetime.fromisoformat(item["eventDate"].replace("Z", "+00:00"))
    return f"{item['pspReference']}:{item['eventCode']}:{item['success']}:" \
        f"{int(when.timestamp())}"


async def test_capture_failed_after_a_refunded_capture_is_flagged(world: World) -> None:
    """A rejected capture is reversed by itself (test_adyen_modifications.py) unless the
    merchant already built on it: refunded (or disputed), what is owed is an operator's
    call, never ignored and never reversed by guess."""
    pi = await with_psp_reference(world, await world.pay())
    await world.post(f"/v1/payment_intents/{pi['id']}/capture")
    [capture] = await _items(world, "CAPTURE")
    await world.deliver()
    assert (await world.retrieve(pi))["status"] == "succeeded"
    refund = await world.post("/v1/refunds", payment_intent=pi["id"], amount="500")
    await world.deliver()
    assert await world.receivable(pi["id"], refund["id"]) == 2000

    failed = _later(capture, eventCode="CAPTURE_FAILED",
                    reason="Capture rejected by card scheme")
    await _send(world, failed)
    attempt = await world.kassa.pool.fetchrow(
        "SELECT status, error FROM attempts WHERE id = $1", capture["merchantReference"])
    assert attempt["status"] == "needs_attention"
    error = orjson.loads(attempt["error"]) if isinstance(attempt["error"], str) \
        else attempt["error"]
    assert error["code"] == "capture_failed_after_capture"
    assert pi["id"] in error["message"]
    stuck = await world.kassa.pool.fetch(
        "SELECT id FROM attempts WHERE status = 'needs_attention'")
    assert capture["merchantReference"] in [r["id"] for r in stuck]  # `kassa attempts --stuck`
    row = await _event_row(world, _event_id(failed))
    assert row["status"] == "applied"
    # nothing was reversed automatically: an operator decides
    assert await world.receivable(pi["id"], refund["id"]) == 2000
    assert (await world.retrieve(pi))["status"] == "succeeded"


async def test_capture_failed_after_an_automatic_capture_is_reversed(world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    [auth] = await _items(world, "AUTHORISATION")
    await world.deliver()
    assert (await world.retrieve(pi))["status"] == "succeeded"
    assert await world.receivable(pi["id"]) == 2500
    failed = _later(auth, eventCode="CAPTURE_FAILED", originalReference=auth["pspReference"],
                    pspReference=auth["pspReference"] + "X", reason="Rejected by scheme")
    await _send(world, failed)
    row = await _event_row(world, _event_id(failed))
    assert row["status"] == "applied" and "reversed" in row["result"]
    done = await world.retrieve(pi)
    # held again (the authorisation is still valid), capturable anew
    assert (done["status"], done["amount_capturable"], done["amount_received"]) == (
        "requires_capture", 2500, 0)
    reversed_ = await world.kassa.pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE source_id = $1 ORDER BY id",
        pi["latest_charge"])
    assert [r["kind"] for r in reversed_] == ["capture_reversal", "authorization_hold"]
    assert await world.receivable(pi["id"], pi["latest_charge"]) == 0

    # the same rejection again on a later date: a new event, but nothing left to reverse
    again = copy.deepcopy(failed)
    again["eventDate"] = (datetime.fromisoformat(failed["eventDate"].replace("Z", "+00:00"))
                          + timedelta(minutes=1)).isoformat()
    again["additionalData"]["hmacSignature"] = signature(again, bytes.fromhex(NEW_KEY))
    await _send(world, again)
    row = await _event_row(world, _event_id(again))
    assert row["status"] == "ignored" and "reversed already" in row["result"]
    assert await world.receivable(pi["id"], pi["latest_charge"]) == 0
    assert (await world.retrieve(pi))["status"] == "requires_capture"


async def _authenticated(world: World, capture_method: str) -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
    """A 3-D Secure payment the shopper completed at Adyen, and its AUTHORISATION item."""
    pi = await with_psp_reference(world, await world.pay(
        capture_method=capture_method, payment_method="pm_card_authenticationRequired"))
    assert pi["status"] == "requires_action"
    path = httpx.URL(pi["next_action"]["redirect_to_url"]["url"]).path
    r = await world.sim.post(f"{path}/complete", data={"result": "succeed"})
    assert r.status_code == 303
    [auth] = [i for i in await _items(world, "AUTHORISATION")
              if i["merchantReference"] == pi["latest_charge"]]
    return pi, auth


def _resigned(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The same item with other (unsigned) additionalData: its HMAC still verifies."""
    out = copy.deepcopy(item)
    out["additionalData"] = {"hmacSignature": signature(out, bytes.fromhex(NEW_KEY)), **extra}
    return out


async def test_an_authorisation_without_capture_fields_settles_from_kassas_attempt(
        world: World) -> None:
    pi, auth = await _authenticated(world, "automatic")
    await _send(world, _resigned(auth))  # no captureDelayHours, no metadata
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    assert await world.receivable(pi["id"]) == 2500
    assert (await world.at_adyen(pi))["amount_captured"] == 2500  # both ends


async def test_unsigned_capture_fields_cannot_make_a_manual_payment_captured(
        world: World) -> None:
    pi, auth = await _authenticated(world, "manual")
    await _send(world, _resigned(auth, captureDelayHours="0",
                                 **{"metadata.kassa_capture": "automatic"}))
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_capturable"], done["amount_received"]) == (
        "requires_capture", 2500, 0)
    assert await world.receivable(pi["id"]) == 0
    at_adyen = await world.at_adyen(pi)
    assert at_adyen["amount_captured"] == 0, at_adyen


async def test_a_confirmed_void_of_a_captured_payment_is_flagged(world: World) -> None:
    """The shopper completes 3-D Secure (captured at once) while the merchant cancels:
    Adyen's cancel is ``received``, the AUTHORISATION is recorded first. A CANCELLATION
    success=true for that captured payment cannot be taken as it is: the void attempt goes
    to needs_attention, the capture stays on the books for an operator to decide."""
    pi, auth = await _authenticated(world, "automatic")
    canceled = await world.post(f"/v1/payment_intents/{pi['id']}/cancel")
    assert canceled["status"] == "processing"
    await _send(world, auth)
    assert (await world.retrieve(pi))["status"] == "succeeded"
    [cancellation] = await _items(world, "CANCELLATION")
    confirmed = copy.deepcopy(cancellation)
    confirmed["success"] = "true"
    confirmed.pop("reason", None)
    confirmed["additionalData"]["hmacSignature"] = signature(confirmed, bytes.fromhex(NEW_KEY))
    await _send(world, confirmed)
    void = await world.kassa.pool.fetchrow(
        "SELECT status, error FROM attempts WHERE payment_intent_id = $1"
        " AND operation = 'void'", pi["id"])
    assert void["status"] == "needs_attention", dict(void)
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    assert await world.receivable(pi["id"]) == 2500


async def test_signed_notifications_kassa_cannot_store_are_a_400_never_a_500(
        world: World) -> None:
    pi = await with_psp_reference(world, await world.pay(capture_method="automatic"))
    [auth] = await _items(world, "AUTHORISATION")
    before = await world.inbox()
    chargeback = {**copy.deepcopy(auth), "eventCode": "CHARGEBACK",
                  "pspReference": auth["pspReference"] + "CB",
                  "originalReference": auth["pspReference"]}
    chargeback.pop("amount")
    ancient = {**copy.deepcopy(auth), "eventDate": "1969-07-20T20:17:40+00:00"}
    long_id = {**copy.deepcopy(auth), "pspReference": "9" * 250}
    for bad in (chargeback, ancient, long_id):
        bad["additionalData"] = {"hmacSignature": signature(bad, bytes.fromhex(NEW_KEY))}
        r = await world.send(orjson.dumps({"live": "false", "notificationItems": [
            {"NotificationRequestItem": bad}]}))
        assert r.status_code == 400, (r.status_code, r.text)
    assert await world.inbox() == before
    assert (await world.retrieve(pi))["status"] == "succeeded"


async def test_the_return_endpoint_bounds_what_a_caller_makes_kassa_ask_adyen(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """No API key guards the 3-D Secure return: a huge redirectResult is a 400 (Adyen is not
    asked), and after an ask that settled nothing the same attempt is not asked again for
    a while, however many bogus values come; then the genuine one records the outcome."""
    monkeypatch.setattr(confirm, "RETURN_RETRY_S", 3600.0)
    adapter = world.kassa.psp("adyen")
    asked: list[int] = []
    original = adapter.complete_redirect  # type: ignore[attr-defined]

    async def counting(**kwargs: Any) -> Any:
        asked.append(len(kwargs["redirect_result"]))
        return await original(**kwargs)

    monkeypatch.setattr(adapter, "complete_redirect", counting)
    pi = await with_psp_reference(world, await world.pay(
        capture_method="automatic", payment_method="pm_card_authenticationRequired"))
    path = httpx.URL(pi["next_action"]["redirect_to_url"]["url"]).path
    r = await world.sim.post(f"{path}/complete", data={"result": "succeed"})
    back = httpx.URL(r.headers["location"])

    r = await world.api.get(back.path, params={"redirectResult": "x" * (10 * 1024 + 1)})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "redirectResult"
    assert asked == []
    for n in range(5):
        r = await world.api.get(back.path, params={"redirectResult": f"bogus-{n}"})
        assert r.status_code in (200, 303), r.text
    assert len(asked) == 1  # one ask, then a pause for this attempt
    assert (await world.retrieve(pi))["status"] == "requires_action"

    monkeypatch.setattr(confirm, "RETURN_RETRY_S", 0.0)  # the pause is over
    r = await world.api.get(back.path, params=dict(back.params))
    assert r.status_code in (200, 303), r.text
    assert len(asked) == 2
    done = await world.retrieve(pi)
    assert (done["status"], done["amount_received"]) == ("succeeded", 2500)
    assert await world.receivable(pi["id"]) == 2500
