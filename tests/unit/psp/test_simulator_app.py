"""The simulator's HTTP API, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kassa.psp.simulator import SimulatorConfig, create_app
from kassa.psp.simulator.cards import TEST_CARDS
from kassa.vault.test_cards import TEST_PAYMENT_METHODS, lookup_test_payment_method

BASE = "http://simulator.test"
VISA = "4242424242424242"
THREE_DS = "4000002760003184"


@pytest.fixture
async def simulator() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SimulatorConfig(timeout_hang_s=0.2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def key() -> str:
    return f"key_{uuid.uuid4().hex}"


def auth_body(number: str = VISA, *, idempotency_key: str | None = None, amount: int = 1000,
              capture: bool = False, exp: tuple[int, int] = (12, 2034), **extra: Any
              ) -> dict[str, Any]:
    return {
        "idempotency_key": idempotency_key or key(),
        "amount": amount,
        "currency": "eur",
        "card": {"number": number, "exp_month": exp[0], "exp_year": exp[1], "cvc": "123"},
        "capture": capture,
        "merchant_id": "mer_1",
        **extra,
    }


async def authorize(simulator: httpx.AsyncClient, number: str = VISA, **kw: Any) -> dict[str, Any]:
    response = await simulator.post("/v1/authorizations", json=auth_body(number, **kw))
    assert response.status_code == 200, response.text
    return response.json()


async def op(simulator: httpx.AsyncClient, auth_id: str, kind: str, *,
             idempotency_key: str | None = None, **body: Any) -> dict[str, Any]:
    response = await simulator.post(f"/v1/authorizations/{auth_id}/{kind}",
                              json={"idempotency_key": idempotency_key or key(), **body})
    assert response.status_code == 200, response.text
    return response.json()


async def stats(simulator: httpx.AsyncClient) -> dict[str, Any]:
    return (await simulator.get("/_sim/stats")).json()


# -- authorization outcomes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "status", "decline_code"),
    [
        ("4242424242424242", "authorized", None),
        ("4000056655665556", "authorized", None),
        ("5555555555554444", "authorized", None),
        ("378282246310005", "authorized", None),
        ("6011111111111117", "authorized", None),
        ("4000000000000259", "authorized", None),
        ("4111111111111111", "authorized", None),  # any other Luhn-valid number
        ("4000000000000002", "declined", "generic_decline"),
        ("4000000000009995", "declined", "insufficient_funds"),
        ("4000000000009987", "declined", "lost_card"),
        ("4000000000009979", "declined", "stolen_card"),
        ("4000000000000069", "declined", "expired_card"),
        ("4000000000000127", "declined", "incorrect_cvc"),
        ("4000000000000119", "declined", "processing_error"),
        ("4242424242424241", "declined", "incorrect_number"),  # fails Luhn
        ("4000002760003184", "requires_action", None),
        ("4000002500003155", "requires_action", None),
    ],
)
async def test_test_card_outcomes(simulator: httpx.AsyncClient, number: str, status: str,
                                  decline_code: str | None) -> None:
    response = await simulator.post("/v1/authorizations", json=auth_body(number))

    assert response.status_code == 200
    auth = response.json()
    assert auth["status"] == status
    assert auth["decline_code"] == decline_code
    assert auth["id"].startswith("sim_")
    assert auth["object"] == "authorization"
    assert (auth["amount"], auth["currency"]) == (1000, "eur")
    assert (auth["amount_captured"], auth["amount_refunded"]) == (0, 0)
    assert auth["last4"] == number[-4:]
    assert number not in response.text  # the PAN never comes back
    if status == "declined":
        assert auth["message"]
    if status == "requires_action":
        assert auth["action_url"] == f"{BASE}/3ds/{auth['id']}"
    else:
        assert auth["action_url"] is None


async def test_past_expiry_declines_as_expired_card(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, VISA, exp=(1, 2020))
    assert (auth["status"], auth["decline_code"]) == ("declined", "expired_card")


async def test_authorize_with_capture_captures_everything(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, "5555555555554444", capture=True)
    assert (auth["status"], auth["amount_captured"], auth["brand"]) == (
        "captured", 1000, "mastercard")


@pytest.mark.parametrize(
    ("pm_id", "status", "decline_code"),
    [
        ("pm_card_visa", "authorized", None),
        ("pm_card_visa_debit", "authorized", None),
        ("pm_card_mastercard", "authorized", None),
        ("pm_card_amex", "authorized", None),
        ("pm_card_discover", "authorized", None),
        ("pm_card_chargeDeclined", "declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "declined", "lost_card"),
        ("pm_card_chargeDeclinedStolenCard", "declined", "stolen_card"),
        ("pm_card_chargeDeclinedExpiredCard", "declined", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "declined", "incorrect_cvc"),
        ("pm_card_chargeDeclinedProcessingError", "declined", "processing_error"),
        ("pm_card_authenticationRequired", "requires_action", None),
        ("pm_card_threeDSecure2Required", "requires_action", None),
        ("pm_card_createDispute", "authorized", None),
        ("pm_card_createDisputeProductNotReceived", "authorized", None),
        ("pm_card_createDisputeInquiry", "authorized", None),
        ("pm_card_refundFail", "authorized", None),
    ],
)
async def test_test_payment_methods_drive_the_simulator(
        simulator: httpx.AsyncClient, pm_id: str, status: str, decline_code: str | None) -> None:
    card = lookup_test_payment_method(pm_id)
    assert card is not None
    body = auth_body(card.number, exp=(card.exp_month, card.exp_year))
    auth = (await simulator.post("/v1/authorizations", json=body)).json()
    assert (auth["status"], auth["decline_code"], auth["brand"]) == (
        status, decline_code, card.brand)


def test_test_payment_methods_are_complete_and_hide_the_pan() -> None:
    # every behaviour the simulator has (disputes, refund failures …) is reachable through
    # the API, which takes payment-method ids, not card numbers
    assert {card.number for card in TEST_PAYMENT_METHODS.values()} == set(TEST_CARDS)
    assert lookup_test_payment_method("pm_card_unknown") is None
    card = TEST_PAYMENT_METHODS["pm_card_visa"]
    assert card.number not in repr(card)


# -- idempotency ---------------------------------------------------------------------------


async def test_authorize_replay_returns_the_stored_response(simulator: httpx.AsyncClient) -> None:
    body = auth_body(capture=True)
    first = await simulator.post("/v1/authorizations", json=body)
    second = await simulator.post("/v1/authorizations", json=body)

    assert first.json() == second.json()
    s = await stats(simulator)
    assert (s["authorizations"], s["replays"]) == (1, 1)


async def test_concurrent_requests_with_one_key_authorize_once() -> None:
    app = create_app(SimulatorConfig(latency_ms=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        body = auth_body()
        responses = await asyncio.gather(*(c.post("/v1/authorizations", json=body)
                                           for _ in range(5)))
        assert len({r.json()["id"] for r in responses}) == 1
        assert (await stats(c))["authorizations"] == 1


@pytest.mark.parametrize(("kind", "body", "counter"), [
    ("capture", {"amount": 400}, "captures"),
    ("void", {}, "voids"),
    ("refunds", {"amount": 400}, "refunds"),
])
async def test_operation_replay_acts_once(simulator: httpx.AsyncClient, kind: str,
                                          body: dict[str, Any], counter: str) -> None:
    auth = await authorize(simulator, capture=kind == "refunds")
    k = key()
    first = await op(simulator, auth["id"], kind, idempotency_key=k, **body)
    second = await op(simulator, auth["id"], kind, idempotency_key=k, **body)

    assert first == second
    assert first["status"] != "failed"
    s = await stats(simulator)
    assert (s[counter], s["replays"], s["failed_operations"]) == (1, 1, 0)
    current = (await simulator.get(f"/v1/authorizations/{auth['id']}")).json()
    if kind == "refunds":
        assert current["amount_refunded"] == 400


async def test_key_reuse_with_different_params_is_a_conflict(simulator: httpx.AsyncClient) -> None:
    k = key()
    await authorize(simulator, idempotency_key=k, amount=1000)
    response = await simulator.post("/v1/authorizations",
                                    json=auth_body(idempotency_key=k, amount=999))
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_error"

    auth = await authorize(simulator)
    capture_key = key()
    await op(simulator, auth["id"], "capture", idempotency_key=capture_key, amount=500)
    other_amount = await simulator.post(f"/v1/authorizations/{auth['id']}/capture",
                                  json={"idempotency_key": capture_key, "amount": 400})
    other_kind = await simulator.post(f"/v1/authorizations/{auth['id']}/void",
                                json={"idempotency_key": capture_key})
    assert (other_amount.status_code, other_kind.status_code) == (409, 409)
    assert (await stats(simulator))["authorizations"] == 2


# -- capture, void, refund -----------------------------------------------------------------


async def test_capture_cannot_exceed_the_authorized_amount(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, amount=1000)
    too_much = await op(simulator, auth["id"], "capture", amount=1001)
    assert (too_much["status"], too_much["failure_code"]) == ("failed", "amount_too_large")

    full = await op(simulator, auth["id"], "capture")  # no amount: all of it
    assert (full["status"], full["amount"], full["object"]) == ("captured", 1000, "capture")
    assert full["id"].startswith("simop_")
    assert full["authorization"] == auth["id"]


async def test_partial_capture_once_then_capture_again_fails(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, amount=1000)
    partial = await op(simulator, auth["id"], "capture", amount=600)
    again = await op(simulator, auth["id"], "capture", amount=100)

    assert (partial["status"], partial["amount"]) == ("captured", 600)
    assert (again["status"], again["failure_code"]) == ("failed", "already_captured")
    current = (await simulator.get(f"/v1/authorizations/{auth['id']}")).json()
    assert (current["status"], current["amount_captured"]) == ("captured", 600)
    s = await stats(simulator)
    assert (s["captures"], s["failed_operations"]) == (1, 1)


async def test_void_releases_the_authorization(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator)
    voided = await op(simulator, auth["id"], "void")
    capture = await op(simulator, auth["id"], "capture")
    refund = await op(simulator, auth["id"], "refunds", amount=1)
    void_again = await op(simulator, auth["id"], "void")

    assert (voided["status"], voided["object"]) == ("voided", "void")
    assert capture["failure_code"] == "authorization_voided"
    assert refund["failure_code"] == "not_captured"
    assert void_again["failure_code"] == "already_voided"
    current = (await simulator.get(f"/v1/operations/{auth['idempotency_key']}")).json()
    assert current["status"] == "voided"


async def test_captured_or_declined_authorizations_cannot_be_voided_or_captured(
        simulator: httpx.AsyncClient) -> None:
    captured = await authorize(simulator, capture=True)
    declined = await authorize(simulator, "4000000000000002")

    assert (await op(simulator, captured["id"], "void"))["failure_code"] == "already_captured"
    for kind in ("capture", "void"):
        failed = await op(simulator, declined["id"], kind)
        assert failed["failure_code"] == "authorization_declined"


async def test_refunds_add_up_to_at_most_the_captured_amount(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, amount=1000)
    await op(simulator, auth["id"], "capture", amount=800)

    first = await op(simulator, auth["id"], "refunds", amount=300)
    too_much = await op(simulator, auth["id"], "refunds", amount=501)
    rest = await op(simulator, auth["id"], "refunds")  # no amount: what is left
    nothing_left = await op(simulator, auth["id"], "refunds", amount=1)

    assert (first["status"], first["amount"], first["object"]) == ("refunded", 300, "refund")
    assert (too_much["status"], too_much["failure_code"]) == ("failed", "amount_too_large")
    assert (rest["status"], rest["amount"]) == ("refunded", 500)
    assert nothing_left["failure_code"] == "already_refunded"
    current = (await simulator.get(f"/v1/authorizations/{auth['id']}")).json()
    assert (current["amount_captured"], current["amount_refunded"]) == (800, 800)
    assert (await stats(simulator))["refunds"] == 2


async def test_unknown_authorization_is_404_and_nothing_is_stored(
        simulator: httpx.AsyncClient) -> None:
    k = key()
    for kind in ("capture", "void", "refunds"):
        response = await simulator.post(f"/v1/authorizations/sim_nope/{kind}",
                                  json={"idempotency_key": k})
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
    assert (await simulator.get(f"/v1/operations/{k}")).status_code == 404
    assert (await simulator.get("/v1/authorizations/sim_nope")).status_code == 404


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/authorizations", {**auth_body(), "idempotency_key": ""}, "idempotency_key"),
    ("/v1/authorizations", {**auth_body(), "amount": 0}, "amount"),
    ("/v1/authorizations", {**auth_body(), "amount": 10.5}, "amount"),
    ("/v1/authorizations", {**auth_body(), "currency": "EURO"}, "currency"),
    ("/v1/authorizations", {**auth_body(), "capture": "yes"}, "capture"),
    ("/v1/authorizations", {k: v for k, v in auth_body().items() if k != "card"}, "card"),
    ("/v1/authorizations", {**auth_body(), "card": {"number": VISA, "exp_month": 13,
                                                    "exp_year": 2034}}, "card.exp_month"),
])
async def test_malformed_requests_are_400_and_not_stored(
        simulator: httpx.AsyncClient, path: str, body: dict[str, Any], param: str) -> None:
    response = await simulator.post(path, json=body)

    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error",
                                        "message": response.json()["error"]["message"],
                                        "param": param}
    assert VISA not in response.text
    assert (await stats(simulator))["operations"] == 0


async def test_operation_in_another_currency_is_400(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator)
    response = await simulator.post(f"/v1/authorizations/{auth['id']}/capture",
                              json={"idempotency_key": key(), "amount": 10, "currency": "usd"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "currency"


async def test_get_operation_returns_stored_results(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator)
    capture = await op(simulator, auth["id"], "capture", idempotency_key="cap/1 ü", amount=10)

    assert (await simulator.get("/v1/operations/cap%2F1%20%C3%BC")).json() == capture
    current = (await simulator.get(f"/v1/operations/{auth['idempotency_key']}")).json()
    assert (current["status"], current["amount_captured"]) == ("captured", 10)
    missing = await simulator.get(f"/v1/operations/{key()}")
    assert missing.status_code == 404


# -- 3-D Secure ------------------------------------------------------------------------------


@pytest.mark.parametrize(("capture", "result", "status", "decline_code"), [
    (False, "succeed", "authorized", None),
    (True, "succeed", "captured", None),
    (False, "fail", "declined", "authentication_failed"),
])
async def test_3ds_completion_shows_in_get_operation(
        simulator: httpx.AsyncClient, capture: bool, result: str, status: str,
        decline_code: str | None) -> None:
    auth = await authorize(simulator, THREE_DS, capture=capture)
    page = await simulator.get(f"/3ds/{auth['id']}")
    assert page.status_code == 200
    assert 'value="succeed"' in page.text and 'value="fail"' in page.text

    done = await simulator.post(f"/3ds/{auth['id']}/complete", data={"result": result})

    assert done.status_code == 200
    assert done.json()["status"] == status
    current = (await simulator.get(f"/v1/operations/{auth['idempotency_key']}")).json()
    assert (current["status"], current["decline_code"]) == (status, decline_code)
    assert current["amount_captured"] == (1000 if status == "captured" else 0)
    # Replaying the original request still answers what was answered first.
    replay = await simulator.post("/v1/authorizations", json=auth_body(
        THREE_DS, idempotency_key=auth["idempotency_key"], capture=capture))
    assert replay.json()["status"] == "requires_action"


async def test_3ds_redirects_to_return_url_and_completes_once(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, THREE_DS, return_url="https://shop.example/back?order=7")

    done = await simulator.post(f"/3ds/{auth['id']}/complete", json={"result": "succeed"})
    again = await simulator.post(f"/3ds/{auth['id']}/complete", json={"result": "fail"})

    assert done.status_code == 303
    assert done.headers["location"] == (
        f"https://shop.example/back?order=7&authorization={auth['id']}&status=authorized")
    assert again.status_code == 303  # nothing changes after the first completion
    current = (await simulator.get(f"/v1/authorizations/{auth['id']}")).json()
    assert current["status"] == "authorized"


async def test_3ds_pending_authorization_can_be_voided(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, THREE_DS)
    assert (await op(simulator, auth["id"], "capture"))["failure_code"] == "authentication_required"
    assert (await op(simulator, auth["id"], "void"))["status"] == "voided"
    await simulator.post(f"/3ds/{auth['id']}/complete", data={"result": "succeed"})
    assert (await simulator.get(f"/v1/authorizations/{auth['id']}")).json()["status"] == "voided"


async def test_3ds_bad_input(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator, THREE_DS)
    assert (await simulator.post(f"/3ds/{auth['id']}/complete", data={"result": "x"})
            ).status_code == 400
    unknown = await simulator.post("/3ds/sim_nope/complete", data={"result": "fail"})
    assert unknown.status_code == 404
    assert (await simulator.get("/3ds/sim_nope")).status_code == 404


# -- faults ----------------------------------------------------------------------------------


async def test_error_fault_answers_503_without_acting(simulator: httpx.AsyncClient) -> None:
    await simulator.post("/_sim/faults", json={"faults": ["error"]})
    body = auth_body(capture=True)

    failed = await simulator.post("/v1/authorizations", json=body)
    assert failed.status_code == 503
    assert (await simulator.get(f"/v1/operations/{body['idempotency_key']}")).status_code == 404
    assert (await stats(simulator))["authorizations"] == 0

    retried = await simulator.post("/v1/authorizations", json=body)  # the queue is empty again
    assert retried.json()["status"] == "captured"
    assert (await stats(simulator))["faults_injected"] == {"error": 1}


async def test_error_after_charge_acts_but_answers_503(simulator: httpx.AsyncClient) -> None:
    await simulator.post("/_sim/faults", json={"faults": ["error_after_charge"]})
    body = auth_body(capture=True)

    assert (await simulator.post("/v1/authorizations", json=body)).status_code == 503
    current = (await simulator.get(f"/v1/operations/{body['idempotency_key']}")).json()
    assert current["status"] == "captured"


async def test_timeout_after_charge_moves_money_then_hangs(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator)
    await simulator.post("/_sim/faults", json={"faults": ["timeout_after_charge"]})
    k = key()

    with pytest.raises(TimeoutError):  # client timeout 0.05 s < hang 0.2 s
        await asyncio.wait_for(simulator.post(f"/v1/authorizations/{auth['id']}/capture",
                                        json={"idempotency_key": k}), timeout=0.05)

    assert (await simulator.get(f"/v1/operations/{k}")).json()["status"] == "captured"
    listed = (await simulator.get("/_sim/authorizations")).json()
    assert [(a["id"], a["status"], a["amount_captured"]) for a in listed] == [
        (auth["id"], "captured", 1000)]


async def test_timeout_before_charge_hangs_without_acting(simulator: httpx.AsyncClient) -> None:
    await simulator.post("/_sim/faults", json={"faults": ["timeout_before_charge"]})
    body = auth_body()

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(simulator.post("/v1/authorizations", json=body), timeout=0.05)

    assert (await simulator.get(f"/v1/operations/{body['idempotency_key']}")).status_code == 404
    assert (await simulator.get("/_sim/authorizations")).json() == []


async def test_timeout_before_charge_answers_504_if_the_client_waits(
        simulator: httpx.AsyncClient) -> None:
    await simulator.post("/_sim/config", json={"timeout_hang_s": 0.01})
    await simulator.post("/_sim/faults", json={"faults": ["timeout_before_charge"]})
    assert (await simulator.post("/v1/authorizations", json=auth_body())).status_code == 504


async def test_faults_are_consumed_in_order_one_per_mutating_request(
        simulator: httpx.AsyncClient) -> None:
    await simulator.post("/_sim/config", json={"timeout_hang_s": 0})
    queued = await simulator.post("/_sim/faults",
                                  json={"faults": ["error", "timeout_after_charge"]})
    assert queued.json() == {"faults_pending": ["error", "timeout_after_charge"]}

    await simulator.get("/_sim/stats")  # reads consume nothing
    first = await simulator.post("/v1/authorizations", json=auth_body())
    second = await simulator.post("/v1/authorizations", json=auth_body())
    third = await simulator.post("/v1/authorizations", json=auth_body())

    assert [r.status_code for r in (first, second, third)] == [503, 200, 200]
    assert (await stats(simulator))["faults_pending"] == []


async def test_rates_from_runtime_config(simulator: httpx.AsyncClient) -> None:
    config = await simulator.post("/_sim/config", json={"error_rate": 1.0, "seed": 7})
    assert config.json()["error_rate"] == 1.0
    assert (await simulator.post("/v1/authorizations", json=auth_body())).status_code == 503

    await simulator.post("/_sim/config", json={"error_rate": 0, "timeout_rate": 1.0,
                                         "timeout_hang_s": 0})
    body = auth_body()
    assert (await simulator.post("/v1/authorizations", json=body)).status_code == 200
    s = await stats(simulator)
    assert s["faults_injected"] == {"error": 1, "timeout_after_charge": 1}
    assert s["authorizations"] == 1


async def test_error_rate_from_creation_config() -> None:
    app = create_app(SimulatorConfig(error_rate=0.5, seed=42))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        codes = [(await c.post("/v1/authorizations", json=auth_body())).status_code
                 for _ in range(40)]
        assert set(codes) == {200, 503}
        assert (await stats(c))["authorizations"] == codes.count(200)


async def test_invalid_control_requests(simulator: httpx.AsyncClient) -> None:
    assert (await simulator.post("/_sim/config", json={"error_rate": 2})).status_code == 400
    assert (await simulator.post("/_sim/config", json={"nope": 1})).status_code == 400
    assert (await simulator.post("/_sim/faults", json={"faults": ["meteor"]})).status_code == 400
    assert (await simulator.get("/_sim/config")).json()["error_rate"] == 0


async def test_reset_forgets_everything(simulator: httpx.AsyncClient) -> None:
    auth = await authorize(simulator)
    await simulator.post("/_sim/config", json={"latency_ms": 1})
    await simulator.post("/_sim/faults", json={"faults": ["error"]})

    assert (await simulator.post("/_sim/reset")).status_code == 200

    assert (await simulator.get("/_sim/authorizations")).json() == []
    assert (await simulator.get(f"/v1/operations/{auth['idempotency_key']}")).status_code == 404
    s = await stats(simulator)
    assert (s["authorizations"], s["faults_pending"]) == (0, [])
    assert (await simulator.get("/_sim/config")).json()["latency_ms"] == 0


async def test_healthz(simulator: httpx.AsyncClient) -> None:
    assert (await simulator.get("/healthz")).status_code == 200


async def test_the_daily_settlement_report_is_what_was_processed_that_day(simulator):
    from datetime import UTC, datetime, timedelta

    r = await simulator.post("/v1/authorizations", json=auth_body(amount=2000, capture=True))
    assert r.json()["status"] == "captured", r.text
    today = datetime.now(UTC).date()
    report = await simulator.get(f"/v1/settlement_reports/{today.isoformat()}")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    header, row = report.text.splitlines()
    assert header == "type,psp_reference,merchant_reference,currency,gross,fee,net,status,created"
    # 1.50 % + 0.10 of 20.00 EUR: 0.40 kept by the acquirer
    assert row.split(",")[:8] == ["charge", r.json()["id"], r.json()["idempotency_key"],
                                  "eur", "2000", "40", "1960", "captured"]
    yesterday = await simulator.get(f"/v1/settlement_reports/{today - timedelta(days=1)}")
    assert yesterday.text.splitlines() == [header]
    later = await simulator.get(f"/v1/settlement_reports/{today + timedelta(days=1)}")
    assert later.status_code == 404 and later.json()["error"]["type"] == "report_not_ready"
    bad = await simulator.get("/v1/settlement_reports/yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "day"
