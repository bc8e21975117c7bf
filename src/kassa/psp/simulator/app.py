"""A fake acquirer served over HTTP, so kassa's PSP failures in tests are real network failures.

State lives in memory (one process, one event loop). JSON in and out; amounts are integer
minor units with a lower-case ISO currency. Errors are ``{"error": {"type", "message",
"param"?}}``.

Payment API
-----------
``POST /v1/authorizations``
    ``{idempotency_key, amount, currency, card: {number, exp_month, exp_year, cvc?},
    capture: bool, merchant_id, description?, return_url?}`` → 200 *authorization*::

        {id: "sim_…", object: "authorization", idempotency_key, status, amount, currency,
         amount_captured, amount_refunded, capture, merchant_id, brand, last4, description,
         decline_code, message, action_url, created}

    ``status``: ``authorized`` (held), ``captured`` (``capture: true``), ``declined``
    (``decline_code`` + ``message`` set), ``requires_action`` (3DS; ``action_url`` is this
    server's absolute ``/3ds/{id}``); later also ``voided``. Outcomes follow Stripe's test
    cards (see ``cards.py``): 4242424242424242, 5555555555554444, 378282246310005,
    6011111111111117, 4000000000000259 and any other Luhn-valid number succeed;
    4000000000000002 generic_decline, …9995 insufficient_funds, …9987 lost_card, …9979
    stolen_card, …0069 expired_card, …0127 incorrect_cvc, …0119 processing_error;
    4000002760003184 and 4000002500003155 require 3DS. A non-Luhn number declines with
    ``incorrect_number``; a past expiry date with ``expired_card``. A decline is a 200.

``POST /v1/authorizations/{id}/capture`` ``{idempotency_key, amount?, currency?}``
``POST /v1/authorizations/{id}/void`` ``{idempotency_key}``
``POST /v1/authorizations/{id}/refunds`` ``{idempotency_key, amount?, currency?}``
    → 200 *operation result*::

        {id: "simop_…", object: "capture"|"void"|"refund", authorization, idempotency_key,
         status, amount, currency, failure_code, message, created}

    ``status`` is ``captured`` / ``voided`` / ``refunded`` on success and ``failed`` when
    the authorization is not in a state that allows it; ``failure_code`` then says why:
    ``already_captured``, ``already_voided``, ``authorization_voided``,
    ``authorization_declined``, ``authentication_required``, ``amount_too_large``,
    ``not_captured``, ``already_refunded``. A failed result is stored and replayed like a
    successful one. Rules: one capture per authorization (full, or partial releasing the
    rest; ``amount`` ≤ authorized, default all); void only before capture (also cancels a
    pending 3DS); any number of refunds while Σ refunds ≤ captured (default: the rest).
    Unknown ``{id}`` → 404 (nothing stored). A ``currency`` that differs from the
    authorization's → 400.

``GET /v1/authorizations/{id}`` → the authorization's current state.
``GET /v1/operations/{idempotency_key}`` → the result of the operation sent with that key:
    for an authorization its *current* state (after 3DS it shows authorized/captured/
    declined), for a capture/refund its current result (``pending`` until it settles; a
    refund may later turn ``failed``), for a void the stored result; 404 if the key never
    arrived (or arrived but was refused by a fault before acting).

Asynchronous outcomes
---------------------
With ``capture_mode: pending`` a capture answers ``status: pending`` and settles later;
with ``refund_mode: pending`` likewise for refunds. They settle ``async_outcome`` after
``async_delay_ms`` (null: only when told, ``POST /_sim/operations/{key}/settle {"outcome":
"succeeded"|"failed"}``). Card 4000000000005126's refunds succeed, then fail later the same
way. Cards 4000000000000259 (fraudulent) and 4000000000002685 (product_not_received) are
disputed as soon as they are captured; 4000000000001976 opens an inquiry
(``warning_needs_response``). A charged-back authorization refuses refunds
(``charge_disputed``).

Disputes: ``GET /v1/disputes/{id}``; ``POST /v1/disputes/{id}/evidence`` ``{evidence:
{field: text}, submit: bool}`` (submitting moves it to ``under_review``; submitted
``uncategorized_text`` ``winning_evidence``/``losing_evidence`` decides it at once, as in
Stripe's test mode); ``POST /v1/disputes/{id}/accept`` (lost). 409 when the dispute is not
in a state that allows it; repeating a completed submission or acceptance is a no-op.

Webhooks
--------
Every outcome above (``capture.succeeded|failed``, ``refund.succeeded|failed``,
``dispute.created|updated|closed``; captures and refunds also when they succeed at once)
is an event ``{id: "simevt_…", object: "event", type, created, sequence, data: {object}}``
where ``sequence`` counts 1, 2, … per object (``data.object.id``). Events are POSTed to
``webhook_url`` signed ``Sim-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook_secret,
"<t>.<body>")>`` (see ``signature.py``), after ``webhook_delay_ms`` plus up to
``webhook_jitter_ms`` (so later events can overtake earlier ones), retried on non-2xx
up to ``webhook_max_attempts`` times, and delivered twice at ``webhook_duplicate_rate``.
With ``webhook_hold`` they queue until flushed.

Idempotency: every POST under ``/v1`` carries ``idempotency_key`` (≤ 255 chars). The same
key with the same parameters replays the stored response and does nothing again; the same
key with different parameters (or on another operation) → 409 ``idempotency_error``.
Malformed requests → 400 ``invalid_request_error`` and are not stored.

3-D Secure
----------
``GET /3ds/{id}`` is a tiny page with two buttons that post to ``POST /3ds/{id}/complete``
with ``result=succeed|fail`` (form or JSON). Success → ``authorized`` (``captured`` if
capture was requested); failure → ``declined`` with ``authentication_failed``. Then a 303
redirect to ``return_url?authorization={id}&status={status}`` when one was given, else the
authorization as JSON. Completing an authorization that no longer awaits 3DS changes
nothing.

Fault model
-----------
Applied to the mutating ``/v1`` POSTs only, after the request has been validated:

- ``latency_ms``: every ``/v1`` request waits this long first.
- ``error_rate``: answer 503 ``simulated_error`` *without* acting.
- ``timeout_rate``: act (money moves, the result is stored under the key), then sleep
  ``timeout_hang_s`` before answering, so the client times out not knowing the outcome.
- One-shot faults queued with ``POST /_sim/faults {"faults": [...]}`` are consumed one per
  mutating request, in order, before the rates are consulted: ``error`` (503, no action),
  ``error_after_charge`` (act, then 503), ``timeout_before_charge`` (hang without acting,
  then 504), ``timeout_after_charge`` (act, hang, then the real answer), ``refuse`` (400
  without acting), ``garbage_after_charge`` (act, then a 200 whose body is not JSON).
- ``authorization_validity_s``: an authorization not captured within it has expired; a
  capture then fails with ``authorization_expired`` (a void still succeeds).
- State: with ``state_path`` (``kassa dev``/``kassa simulator``) the books are kept in a
  SQLite file and survive restarts, as a real acquirer's do.

A retry with the same key after any of these is safe: the action happens at most once.

Control and inspection (for tests)
----------------------------------
``GET|POST /_sim/config`` (POST: any field of ``SimulatorConfig`` — faults, asynchronous
modes, webhook settings; answers the full config, secret masked), ``POST /_sim/faults``,
``GET /_sim/authorizations`` (``[{id, idempotency_key, amount, currency, status,
amount_captured, amount_refunded, merchant_id}]``), ``GET /_sim/stats`` (``{authorizations,
authorizations_by_status, captures, voids, refunds, failed_operations, replays,
idempotency_conflicts, operations, faults_injected, faults_pending}``; captures/voids/
refunds count successful operations only, replays are not counted again),
``POST /_sim/reset`` (forget everything; config back to the one given at creation),
``GET /healthz``; webhooks: ``GET /_sim/webhooks`` (every event with its deliveries),
``POST /_sim/webhooks/flush {"order": "fifo"|"reverse"|"shuffle", "duplicate": bool,
"seed"?}`` (send every undelivered event now, one after another; answers the deliveries),
``POST /_sim/webhooks/{event_id}/resend``; ``POST /_sim/operations/{key}/settle``;
disputes by authorization: ``GET /_sim/disputes``, ``POST /_sim/disputes/{authorization}/
open {"reason"?, "amount"?, "inquiry"?}``, ``POST /_sim/disputes/{authorization}/close
{"outcome": "won"|"lost"|"warning_closed"}``, ``POST /_sim/disputes/{authorization}/
escalate`` (inquiry → chargeback).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kassa.domain.money import EXPONENTS, MAX_AMOUNT, Money
from kassa.psp.simulator.chaos import (
    ERROR,
    ERROR_AFTER_CHARGE,
    GARBAGE_AFTER_CHARGE,
    REFUSE,
    TIMEOUT_AFTER_CHARGE,
    TIMEOUT_BEFORE_CHARGE,
    Chaos,
    SimulatorConfig,
)
from kassa.psp.simulator.state import (
    Acquirer,
    AuthorizationNotFound,
    Body,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
)
from kassa.psp.simulator.store import SqliteStore
from kassa.psp.simulator.webhooks import WebhookSender

__all__ = ["SimulatorConfig", "create_app"]

MAX_KEY_LENGTH = 255


def create_app(config: SimulatorConfig | None = None, *,
               webhook_transport: httpx.AsyncBaseTransport | None = None,
               state_path: Path | None = None) -> Starlette:
    """A simulator with its own state (``app.state.acquirer``): in memory, or kept in the
    SQLite file ``state_path`` across restarts (``kassa dev``, ``kassa simulator``).

    ``webhook_transport`` replaces the network for outbound webhooks (tests)."""
    acquirer = Acquirer.open(SqliteStore(state_path) if state_path is not None else None)
    chaos = Chaos(config or SimulatorConfig())
    sender = WebhookSender(chaos, webhook_transport)
    acquirer.notify = sender.record

    def on_pending(key: str, outcome: str) -> None:
        """Settle ``key`` after ``async_delay_ms`` (unless settling waits to be told)."""
        delay = chaos.config.async_delay_ms
        if delay is None:
            return
        settle_as = outcome or chaos.config.async_outcome

        async def later() -> None:
            await asyncio.sleep(delay / 1000)
            try:
                acquirer.settle(key, settle_as)
            except (NotFound, Conflict):
                pass  # settled by hand meanwhile, or forgotten by a reset

        sender.spawn(later())

    acquirer.on_pending = on_pending

    resumed = False

    def resume_pending() -> None:
        """Operations still pending when the simulator last stopped settle as usual (run
        on the first request: the server runs without lifespan events)."""
        nonlocal resumed
        if resumed:
            return
        resumed = True
        for key, op in list(acquirer.operations.items()):
            if op.current is not None and op.current.get("status") == "pending":
                on_pending(key, "")

    async def mutate(perform: Callable[[], Body]) -> Response:
        """Run one validated mutating operation through the fault model."""
        resume_pending()
        config = chaos.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        fault = chaos.next_fault()
        if fault == ERROR:
            return _error(503, "simulated_error", "Simulated acquirer error; nothing was done.")
        if fault == TIMEOUT_BEFORE_CHARGE:
            await asyncio.sleep(chaos.config.timeout_hang_s)
            return _error(504, "simulated_timeout", "Simulated timeout; nothing was done.")
        if fault == REFUSE:
            return _error(400, "simulated_refusal", "Simulated refusal; nothing was done.")
        try:
            result = perform()  # synchronous: key check and write happen with no await between
        except AuthorizationNotFound as exc:
            return _error(404, "not_found", f"No such authorization: {exc.args[0]!r}.")
        except NotFound as exc:
            return _error(404, "not_found", f"No such object: {exc.args[0]!r}.")
        except IdempotencyConflict as exc:
            return _error(409, "idempotency_error", str(exc))
        except Conflict as exc:
            return _error(409, "invalid_state", str(exc))
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        if fault == TIMEOUT_AFTER_CHARGE:
            await asyncio.sleep(chaos.config.timeout_hang_s)
        elif fault == ERROR_AFTER_CHARGE:
            return _error(503, "simulated_error", "Simulated acquirer error after acting.")
        elif fault == GARBAGE_AFTER_CHARGE:
            return Response(b"<html>proxy error", status_code=200, media_type="text/html")
        return _json(result)

    async def authorize(request: Request) -> Response:
        try:
            body = await _body(request)
            key = _key(body)
            card = body.get("card")
            if not isinstance(card, dict):
                raise InvalidRequest("card must be an object", "card")
            number = card.get("number")
            if not isinstance(number, str) or not number:
                raise InvalidRequest("card.number must be a string", "card.number")
            exp_month = _int(card, "exp_month", minimum=1, maximum=12, param="card.exp_month")
            exp_year = _int(card, "exp_year", minimum=1, maximum=9999, param="card.exp_year")
            cvc = _optional_str(card, "cvc", param="card.cvc")
            amount = _int(body, "amount", minimum=1, maximum=MAX_AMOUNT)
            currency = _currency(body)
            capture = body.get("capture")
            if not isinstance(capture, bool):
                raise InvalidRequest("capture must be a boolean", "capture")
            merchant_id = body.get("merchant_id")
            if not isinstance(merchant_id, str) or not merchant_id:
                raise InvalidRequest("merchant_id must be a non-empty string", "merchant_id")
            description = _optional_str(body, "description")
            return_url = _optional_str(body, "return_url")
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        return await mutate(lambda: acquirer.authorize(
            idempotency_key=key, amount=amount, currency=currency, number=number,
            exp_month=exp_month, exp_year=exp_year, cvc=cvc, capture=capture,
            merchant_id=merchant_id, description=description, return_url=return_url,
            base_url=lambda: str(request.base_url).rstrip("/"),
        ))

    async def capture(request: Request) -> Response:
        auth_id = request.path_params["id"]
        try:
            body = await _body(request)
            key = _key(body)
            amount = _optional_int(body, "amount", minimum=1, maximum=MAX_AMOUNT)
            currency = _currency(body) if body.get("currency") is not None else None
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        return await mutate(lambda: acquirer.capture(
            idempotency_key=key, authorization_id=auth_id, amount=amount, currency=currency,
            pending=chaos.config.capture_mode == "pending",
            validity_s=chaos.config.authorization_validity_s))

    async def void(request: Request) -> Response:
        auth_id = request.path_params["id"]
        try:
            key = _key(await _body(request))
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        return await mutate(lambda: acquirer.void(
            idempotency_key=key, authorization_id=auth_id))

    async def refund(request: Request) -> Response:
        auth_id = request.path_params["id"]
        try:
            body = await _body(request)
            key = _key(body)
            amount = _optional_int(body, "amount", minimum=1, maximum=MAX_AMOUNT)
            currency = _currency(body) if body.get("currency") is not None else None
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        return await mutate(lambda: acquirer.refund(
            idempotency_key=key, authorization_id=auth_id, amount=amount, currency=currency,
            pending=chaos.config.refund_mode == "pending"))

    async def get_dispute(request: Request) -> Response:
        try:
            return _json(acquirer.dispute(request.path_params["id"]).view())
        except NotFound:
            return _error(404, "not_found", "No such dispute.")

    async def dispute_evidence(request: Request) -> Response:
        dispute_id = request.path_params["id"]
        try:
            body = await _body(request)
            evidence = body.get("evidence", {})
            if not isinstance(evidence, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in evidence.items()):
                raise InvalidRequest("evidence must be an object of strings", "evidence")
            submit = body.get("submit", False)
            if not isinstance(submit, bool):
                raise InvalidRequest("submit must be a boolean", "submit")
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        return await mutate(lambda: acquirer.submit_evidence(dispute_id, evidence,
                                                             submit=submit))

    async def dispute_accept(request: Request) -> Response:
        dispute_id = request.path_params["id"]
        return await mutate(lambda: acquirer.accept_dispute(dispute_id))

    async def get_authorization(request: Request) -> Response:
        if chaos.config.latency_ms:
            await asyncio.sleep(chaos.config.latency_ms / 1000)
        auth = acquirer.authorizations.get(request.path_params["id"])
        if auth is None:
            return _error(404, "not_found", "No such authorization.")
        return _json(auth.view())

    async def get_operation(request: Request) -> Response:
        resume_pending()
        if chaos.config.latency_ms:
            await asyncio.sleep(chaos.config.latency_ms / 1000)
        result = acquirer.operation_view(request.path_params["key"])
        if result is None:
            return _error(404, "not_found", "No operation was received with this key.")
        return _json(result)

    async def three_ds_page(request: Request) -> Response:
        auth = acquirer.authorizations.get(request.path_params["id"])
        if auth is None:
            return HTMLResponse("<h1>Unknown authorization</h1>", status_code=404)
        action = html.escape(f"{request.url.path.rstrip('/')}/complete")
        amount = html.escape(str(Money(auth.amount, auth.currency)))
        merchant = html.escape(auth.merchant_id)
        if auth.status != "requires_action":
            buttons = f"<p>This authorization is {html.escape(auth.status)}.</p>"
        else:
            buttons = (
                f'<form method="post" action="{action}">'
                '<button name="result" value="succeed" id="succeed">Complete</button> '
                '<button name="result" value="fail" id="fail">Fail</button></form>'
            )
        return HTMLResponse(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>3D Secure</title>"
            "</head><body><h1>3D Secure test page</h1>"
            f"<p>Merchant {merchant} asks to authenticate a payment of {amount}, "
            f"card ending {html.escape(auth.last4)}.</p>{buttons}</body></html>"
        )

    async def three_ds_complete(request: Request) -> Response:
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                result = orjson.loads(raw).get("result")
            except (orjson.JSONDecodeError, AttributeError):
                return _error(400, "invalid_request_error", "Body must be a JSON object.")
        else:
            result = dict(parse_qsl(raw.decode("latin-1"))).get("result")
        if result not in ("succeed", "fail"):
            return _error(400, "invalid_request_error", "result must be succeed or fail",
                          "result")
        try:
            auth = acquirer.complete_authentication(request.path_params["id"],
                                                    succeeded=result == "succeed")
        except AuthorizationNotFound:
            return _error(404, "not_found", "No such authorization.")
        if auth.return_url:
            return RedirectResponse(
                _with_query(auth.return_url, authorization=auth.id, status=auth.status),
                status_code=303,
            )
        return _json(auth.view())

    async def sim_config(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await _body(request)
                chaos.configure(chaos.config.updated(changes), reseed="seed" in changes)
            except (InvalidRequest, ValueError, TypeError) as exc:
                return _error(400, "invalid_request_error", str(exc))
        return _json(chaos.config.as_dict())

    async def sim_faults(request: Request) -> Response:
        try:
            faults = (await _body(request)).get("faults")
            if not isinstance(faults, list):
                raise InvalidRequest("faults must be a list", "faults")
            chaos.enqueue(faults)
        except (InvalidRequest, ValueError) as exc:
            return _error(400, "invalid_request_error", str(exc), "faults")
        return _json({"faults_pending": list(chaos.queue)})

    async def sim_authorizations(request: Request) -> Response:
        return _json(acquirer.authorization_list())

    async def sim_stats(request: Request) -> Response:
        stats = acquirer.stats()
        stats["faults_injected"] = dict(chaos.injected)
        stats["faults_pending"] = list(chaos.queue)
        return _json(stats)

    async def sim_reset(request: Request) -> Response:
        await sender.reset()
        acquirer.reset()
        chaos.reset()
        return _json({"reset": True})

    async def sim_webhooks(request: Request) -> Response:
        return _json(sender.listing())

    async def sim_webhooks_flush(request: Request) -> Response:
        try:
            body = await _body(request)
            order = body.get("order", "fifo")
            duplicate = body.get("duplicate", False)
            seed = body.get("seed")
            if not isinstance(duplicate, bool):
                raise InvalidRequest("duplicate must be a boolean", "duplicate")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise InvalidRequest("seed must be an integer", "seed")
            delivered = await sender.flush(order=str(order), duplicate=duplicate, seed=seed)
        except (InvalidRequest, ValueError) as exc:
            return _error(400, "invalid_request_error", str(exc))
        return _json({"delivered": delivered})

    async def sim_webhooks_resend(request: Request) -> Response:
        event = sender.find(request.path_params["id"])
        if event is None:
            return _error(404, "not_found", "No such event.")
        delivery = await sender.deliver(event)
        return _json({"event": event.id, **delivery.view()})

    async def sim_settle(request: Request) -> Response:
        try:
            outcome = (await _body(request)).get("outcome")
            return _json(acquirer.settle(request.path_params["key"], str(outcome)))
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        except NotFound:
            return _error(404, "not_found", "No capture or refund was received with this key.")
        except Conflict as exc:
            return _error(409, "invalid_state", str(exc))

    async def sim_disputes(request: Request) -> Response:
        return _json([d.view() for d in acquirer.disputes.values()])

    async def sim_dispute_control(request: Request) -> Response:
        auth_id = request.path_params["authorization"]
        action = request.path_params["action"]
        try:
            body = await _body(request)
            if action == "open":
                reason = body.get("reason", "fraudulent")
                if not isinstance(reason, str) or not reason:
                    raise InvalidRequest("reason must be a string", "reason")
                inquiry = body.get("inquiry", False)
                if not isinstance(inquiry, bool):
                    raise InvalidRequest("inquiry must be a boolean", "inquiry")
                amount = _optional_int(body, "amount", minimum=1, maximum=MAX_AMOUNT)
                return _json(acquirer.open_dispute(auth_id, reason=reason, amount=amount,
                                                   inquiry=inquiry))
            if action == "close":
                return _json(acquirer.close_dispute(auth_id, str(body.get("outcome"))))
            if action == "escalate":
                return _json(acquirer.escalate_dispute(auth_id))
            return _error(404, "not_found", f"Unknown dispute action {action!r}.")
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc), exc.param)
        except (AuthorizationNotFound, NotFound):
            return _error(404, "not_found", "No such authorization or dispute.")
        except Conflict as exc:
            return _error(409, "invalid_state", str(exc))

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    app = Starlette(routes=[
        Route("/v1/authorizations", authorize, methods=["POST"]),
        Route("/v1/authorizations/{id}", get_authorization, methods=["GET"]),
        Route("/v1/authorizations/{id}/capture", capture, methods=["POST"]),
        Route("/v1/authorizations/{id}/void", void, methods=["POST"]),
        Route("/v1/authorizations/{id}/refunds", refund, methods=["POST"]),
        Route("/v1/operations/{key:path}", get_operation, methods=["GET"]),
        Route("/v1/disputes/{id}", get_dispute, methods=["GET"]),
        Route("/v1/disputes/{id}/evidence", dispute_evidence, methods=["POST"]),
        Route("/v1/disputes/{id}/accept", dispute_accept, methods=["POST"]),
        Route("/3ds/{id}", three_ds_page, methods=["GET"]),
        Route("/3ds/{id}/complete", three_ds_complete, methods=["POST"]),
        Route("/_sim/config", sim_config, methods=["GET", "POST"]),
        Route("/_sim/faults", sim_faults, methods=["POST"]),
        Route("/_sim/authorizations", sim_authorizations, methods=["GET"]),
        Route("/_sim/stats", sim_stats, methods=["GET"]),
        Route("/_sim/reset", sim_reset, methods=["POST"]),
        Route("/_sim/webhooks", sim_webhooks, methods=["GET"]),
        Route("/_sim/webhooks/flush", sim_webhooks_flush, methods=["POST"]),
        Route("/_sim/webhooks/{id}/resend", sim_webhooks_resend, methods=["POST"]),
        Route("/_sim/operations/{key:path}/settle", sim_settle, methods=["POST"]),
        Route("/_sim/disputes", sim_disputes, methods=["GET"]),
        Route("/_sim/disputes/{authorization}/{action}", sim_dispute_control,
              methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])
    app.state.acquirer = acquirer
    app.state.chaos = chaos
    app.state.webhooks = sender
    return app


# -- request parsing -------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Body must be a JSON object.")
    return body


def _key(body: dict[str, Any]) -> str:
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"idempotency_key must be a string of 1-{MAX_KEY_LENGTH} chars",
                             "idempotency_key")
    return key


def _int(body: dict[str, Any], name: str, *, minimum: int, maximum: int,
         param: str | None = None) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not (
        minimum <= value <= maximum
    ):
        raise InvalidRequest(f"{param or name} must be an integer in {minimum}..{maximum}",
                             param or name)
    return value


def _optional_int(body: dict[str, Any], name: str, *, minimum: int, maximum: int) -> int | None:
    if body.get(name) is None:
        return None
    return _int(body, name, minimum=minimum, maximum=maximum)


def _optional_str(body: dict[str, Any], name: str, *, param: str | None = None) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{param or name} must be a string", param or name)
    return value


def _currency(body: dict[str, Any]) -> str:
    currency = body.get("currency")
    if not isinstance(currency, str) or currency not in EXPONENTS:
        raise InvalidRequest("currency must be a lower-case ISO 4217 code", "currency")
    return currency


# -- responses -------------------------------------------------------------------------


def _json(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json")


def _error(status_code: int, kind: str, message: str, param: str | None = None) -> Response:
    error: dict[str, str] = {"type": kind, "message": message}
    if param is not None:
        error["param"] = param
    return _json({"error": error}, status_code)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))
