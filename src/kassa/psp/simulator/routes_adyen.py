"""The simulator's Adyen dialect over HTTP: Checkout API v71 (``/v71/payments``,
``/v71/payments/details``, ``/v71/payments/{pspReference}/captures|cancels|refunds``),
the DisputeService v30 calls kassa makes, the 3-D Secure redirect page, and two test
controls (README.md, "Adyen dialect"). Requests carry ``X-API-Key``; ``Idempotency-Key``
is honoured (same key and body: the stored answer; another body: 422 ``704``); the
simulator's fault model applies as to its own API, with Adyen's error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kassa.psp.simulator import adyen_shapes as shapes
from kassa.psp.simulator.adyen_dialect import AdyenDialect, Answer, fingerprint
from kassa.psp.simulator.books import (
    AuthorizationNotFound,
    Body,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
)
from kassa.psp.simulator.chaos import (
    ERROR,
    ERROR_AFTER_CHARGE,
    GARBAGE_AFTER_CHARGE,
    REFUSE,
    TIMEOUT_AFTER_CHARGE,
    TIMEOUT_BEFORE_CHARGE,
)
from kassa.psp.simulator.responses import json_response
from kassa.psp.simulator.runtime import Simulator, simulator_of
from kassa.psp.simulator.webhooks import SimEvent

AdyenError = shapes.AdyenError


def dialect_of(request: Request) -> AdyenDialect:
    dialect: AdyenDialect = request.app.state.adyen
    return dialect


def _error(exc: AdyenError) -> Response:
    return json_response(exc.body(), exc.status)


async def _body(request: Request) -> Body:
    raw = await request.body()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise AdyenError(400, "702", "Structure of the request is invalid (not JSON).",
                         "validation") from None
    if not isinstance(body, dict):
        raise AdyenError(400, "702", "The request body must be a JSON object.")
    return body


def _account(request: Request, body: Body, name: str = "merchantAccount") -> str:
    """Checks X-API-Key and the merchant account it may use."""
    config = simulator_of(request).chaos.config
    shapes.check_api_key(request.headers.get("x-api-key"), config.adyen_api_key)
    account = shapes.text(body, name)
    assert account is not None
    if config.adyen_merchant_account is not None and account != config.adyen_merchant_account:
        raise AdyenError(403, "901", "Invalid Merchant Account", "security")
    return account


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= shapes.MAX_KEY_LENGTH:
        raise AdyenError(422, "702", f"Idempotency-Key must be 1-{shapes.MAX_KEY_LENGTH} "
                                     "characters.")
    return key


async def _mutate(simulator: Simulator, dialect: AdyenDialect,
                  perform: Callable[[], Answer]) -> Response:
    """One validated Adyen call through the fault model (runtime.Simulator.mutate's, with
    Adyen's error bodies); ``perform`` checks the key and acts with no await between."""
    simulator.resume_pending()
    await simulator.latency()
    chaos = simulator.chaos
    fault = chaos.next_fault()
    if fault == ERROR:
        return _error(AdyenError(500, "901", "Simulated error; nothing was done.", "internal"))
    if fault == TIMEOUT_BEFORE_CHARGE:
        await asyncio.sleep(chaos.config.timeout_hang_s)
        return _error(AdyenError(500, "904", "Simulated timeout; nothing was done.",
                                 "internal"))
    if fault == REFUSE:
        return _error(AdyenError(422, "702", "Simulated refusal; nothing was done."))
    try:
        answer = perform()
    except AdyenError as exc:
        return _error(exc)
    except (InvalidRequest, AuthorizationNotFound, NotFound) as exc:
        return _error(AdyenError(422, "167", f"Original pspReference required for this "
                                             f"operation ({exc})"))
    except IdempotencyConflict as exc:
        return _error(AdyenError(422, "704", str(exc)))
    finally:
        dialect.save()
    if fault == TIMEOUT_AFTER_CHARGE:
        await asyncio.sleep(chaos.config.timeout_hang_s)
    elif fault == ERROR_AFTER_CHARGE:
        return _error(AdyenError(500, "901", "Simulated error after acting.", "internal"))
    elif fault == GARBAGE_AFTER_CHARGE:
        return Response(b"<html>proxy error", status_code=200, media_type="text/html")
    return json_response(answer.body, answer.status)


def _idempotent(dialect: AdyenDialect, account: str, key: str | None, fp: str,
                act: Callable[[str], tuple[str, Answer]]) -> Callable[[], Answer]:
    """``act(books_key)`` → (authorization id, answer), run once per Idempotency-Key."""
    def perform() -> Answer:
        if key is not None:
            stored = dialect.answer(account, key, fp)
            if stored is not None:
                return stored
        auth_id, answer = act(f"adyen:{account}:{key or secrets.token_hex(16)}")
        if key is not None:
            dialect.keep_answer(account, key, fp, auth_id, answer)
        return answer
    return perform


# ---------------------------------------------------------------------- payments


def _stored_card(simulator: Simulator, body: Body, stored: str
                 ) -> tuple[str, int, int, str | None]:
    """The card behind ``storedPaymentMethodId``: Adyen charges a stored payment method
    only with the ``shopperReference`` it was stored for and a recurring model."""
    shopper = shapes.text(body, "shopperReference", limit=256)  # required: 422 without
    if body.get("recurringProcessingModel") not in shapes.RECURRING_MODELS:
        raise AdyenError(422, "130", "Required field 'recurringProcessingModel' is not "
                                     "provided (CardOnFile, Subscription, "
                                     "UnscheduledCardOnFile).")
    card = simulator.tokens.get(stored)
    if card is None or card.shopper_reference not in (None, shopper):
        raise AdyenError(422, "800", "Contract not found")
    return card.number, card.exp_month, card.exp_year, None


async def payments(request: Request) -> Response:
    simulator, dialect = simulator_of(request), dialect_of(request)
    try:
        body = await _body(request)
        account = _account(request, body)
        key = _key(request)
        value, currency = shapes.amount_of(body) or (0, "")
        reference = shapes.text(body, "reference", limit=80)
        return_url = shapes.text(body, "returnUrl", limit=1024)
        stored = shapes.stored_method_of(body)
        if stored is not None:  # a stored payment method: the simulator's own token
            number, month, year, cvc = _stored_card(simulator, body, stored)
        else:
            number, month, year, cvc = shapes.card_of(body)
        manual = shapes.manual_capture(body)
        metadata = shapes.metadata_of(body)
        # ContAuth: a merchant-initiated charge of a stored card, no shopper to authenticate
        off_session = body.get("shopperInteraction") == "ContAuth"
    except AdyenError as exc:
        return _error(exc)
    base = str(request.base_url).rstrip("/")
    template: Body = {"merchantAccount": account, "reference": reference,
                      "returnUrl": return_url, "metadata": metadata,
                      "captureDelayHours": body.get("captureDelayHours")}

    def act(books_key: str) -> tuple[str, Answer]:
        dialect.opening = template  # an event about the new payment is already Adyen's
        try:
            auth = simulator.acquirer.authorize(
                idempotency_key=books_key, amount=value, currency=currency, number=number,
                exp_month=month, exp_year=year, cvc=cvc, capture=not manual,
                merchant_id=account, description=reference, return_url=return_url,
                base_url=lambda: base, off_session=off_session)
        except InvalidRequest as exc:
            raise shapes.reject_invalid(exc) from None
        finally:
            dialect.opening = None
        record = dialect.payment_of(auth["id"])
        new = record is None
        if record is None:
            record = dialect.adopt(auth["id"], template)
        redirect = f"{base}/adyen/3ds/{record['pspReference']}"
        answer = Answer(200, shapes.payment_response(auth, record, redirect_url=redirect))
        if new:
            dialect.authorisation(auth, record)
        return auth["id"], answer

    fp = fingerprint("/v71/payments", body)
    return await _mutate(simulator, dialect, _idempotent(dialect, account, key, fp, act))


async def payment_details(request: Request) -> Response:
    simulator, dialect = simulator_of(request), dialect_of(request)
    try:
        body = await _body(request)
        shapes.check_api_key(request.headers.get("x-api-key"),
                             simulator.chaos.config.adyen_api_key)
        key = _key(request)
        details = body.get("details")
        token = details.get("redirectResult") if isinstance(details, dict) else None
        found = dialect.redirect(token) if isinstance(token, str) and token else None
        if found is None:
            raise AdyenError(422, "14_002", "Invalid payload provided (redirectResult).")
        record = dialect.payment(found["pspReference"])
        assert record is not None
    except AdyenError as exc:
        return _error(exc)

    def act(_: str) -> tuple[str, Answer]:
        auth = dialect.authorization(record["pspReference"])
        redirect = f"{str(request.base_url).rstrip('/')}/adyen/3ds/{record['pspReference']}"
        return auth["id"], Answer(200, shapes.payment_response(auth, record,
                                                               redirect_url=redirect))

    fp = fingerprint("/v71/payments/details", body)
    return await _mutate(simulator, dialect,
                         _idempotent(dialect, record["merchantAccount"], key, fp, act))


# ---------------------------------------------------------------------- modifications


def _modification(kind: str) -> Callable[[Request], object]:
    async def handler(request: Request) -> Response:
        simulator, dialect = simulator_of(request), dialect_of(request)
        psp = request.path_params["psp"]
        try:
            body = await _body(request)
            account = _account(request, body)
            key = _key(request)
            amount = shapes.amount_of(body) if kind != "cancel" else None
            reference = shapes.text(body, "reference", required=False, limit=80)
            record = dialect.payment(psp)
            if record is None or record["merchantAccount"] != account:
                raise AdyenError(422, "167", "Original pspReference required for this "
                                             "operation")
        except AdyenError as exc:
            return _error(exc)
        config = simulator.chaos.config
        acquirer = simulator.acquirer

        def act(books_key: str) -> tuple[str, Answer]:
            auth_id = dialect.authorization(psp)["id"]
            mod_psp = shapes.psp_reference(books_key)
            known = dialect.modification(mod_psp)
            mod: Body = known or {
                "pspReference": mod_psp, "kind": kind, "reference": reference,
                "amount": None if amount is None else shapes.amount_view(*amount)}
            dialect.put_modification(auth_id, mod)  # before the books act: their event
            try:                                    # reads it
                if kind == "capture":
                    assert amount is not None
                    result = acquirer.capture(
                        idempotency_key=books_key, authorization_id=auth_id,
                        amount=amount[0], currency=amount[1],
                        pending=config.capture_mode == "pending",
                        validity_s=config.authorization_validity_s)
                elif kind == "refund":
                    assert amount is not None
                    result = acquirer.refund(
                        idempotency_key=books_key, authorization_id=auth_id,
                        amount=amount[0], currency=amount[1],
                        pending=config.refund_mode == "pending")
                else:
                    result = acquirer.void(idempotency_key=books_key,
                                           authorization_id=auth_id)
            except (InvalidRequest, IdempotencyConflict):
                if known is None:
                    dialect.drop_modification(mod_psp)
                raise
            if known is None:
                _report(dialect, kind, record, mod, result)
            return auth_id, Answer(201, shapes.modification_response(kind, record, mod))

        fp = fingerprint(request.url.path, body)
        return await _mutate(simulator, dialect, _idempotent(dialect, account, key, fp, act))

    return handler


def _report(dialect: AdyenDialect, kind: str, record: Body, mod: Body, result: Body) -> None:
    """The notifications the books do not send themselves: a refused capture or refund,
    and every cancel (the books' void has no event)."""
    failed = result["status"] == "failed"
    if kind == "cancel":
        dialect.notify("CANCELLATION", success=not failed, record=record,
                       psp=mod["pspReference"], original=record["pspReference"],
                       merchant_reference=mod.get("reference"), amount=None,
                       reason=result.get("message") if failed else None)
    elif failed:
        dialect.notify("CAPTURE" if kind == "capture" else "REFUND", success=False,
                       record=record, psp=mod["pspReference"], original=record["pspReference"],
                       merchant_reference=mod.get("reference"), amount=mod.get("amount"),
                       reason=result.get("message"),
                       additional={"refusalReasonRaw": str(result.get("failure_code"))})


# ---------------------------------------------------------------------- disputes


def _dispute_call(action: str) -> Callable[[Request], object]:
    async def handler(request: Request) -> Response:
        simulator, dialect = simulator_of(request), dialect_of(request)
        try:
            body = await _body(request)
            _account(request, body, "merchantAccountCode")
            psp = shapes.text(body, "disputePspReference")
            found = dialect.dispute(str(psp))
            if found is None:
                raise AdyenError(422, "000", "Dispute not found")
            documents: dict[str, str] = {}
            if action == "supply":
                documents = _evidence(body.get("defenseDocuments"))
            elif action == "defend":
                shapes.text(body, "defenseReasonCode")
        except AdyenError as exc:
            return _error(exc)
        acquirer = simulator.acquirer

        def perform() -> Answer:
            dispute_id = str(found["disputeId"])
            try:
                if action == "accept":
                    acquirer.accept_dispute(dispute_id)
                elif action == "supply":
                    stored = dict(acquirer.dispute(dispute_id).evidence)
                    acquirer.submit_evidence(dispute_id, {**stored, **documents},
                                             submit=False)
                else:
                    evidence = dict(acquirer.dispute(dispute_id).evidence)
                    acquirer.submit_evidence(dispute_id, evidence, submit=True)
            except Conflict as exc:
                return Answer(200, {"disputeServiceResult": {"success": False,
                                                             "errorMessage": str(exc)}})
            return Answer(200, {"disputeServiceResult": {"success": True}})

        return await _mutate(simulator, dialect, perform)

    return handler


def _evidence(documents: object) -> dict[str, str]:
    """Each defense document's text (the dialect takes UTF-8 text or JSON of fields)."""
    if not isinstance(documents, list) or not documents:
        raise AdyenError(422, "702", "defenseDocuments is required.")
    evidence: dict[str, str] = {}
    for doc in documents:
        if not isinstance(doc, dict) or not isinstance(doc.get("content"), str) \
                or not isinstance(doc.get("defenseDocumentTypeCode"), str):
            raise AdyenError(422, "702", "Each defense document needs content and its type.")
        try:
            content = base64.b64decode(doc["content"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AdyenError(422, "702", "content must be base64 of UTF-8 text.") from None
        try:
            fields = orjson.loads(content)
        except orjson.JSONDecodeError:
            fields = None
        if isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values()):
            evidence.update(fields)
        else:
            evidence[str(doc["defenseDocumentTypeCode"])] = content
    return evidence


# ---------------------------------------------------------------------- 3-D Secure


async def three_ds_page(request: Request) -> Response:
    psp = request.path_params["psp"]
    dialect = dialect_of(request)
    if dialect.payment(psp) is None:
        return HTMLResponse("<h1>Unknown payment</h1>", status_code=404)
    auth = dialect.authorization(psp)
    if auth["status"] != "requires_action":
        return HTMLResponse(f"<p>This payment is {auth['status']}.</p>")
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>3D Secure</title></head>"
        f"<body><h1>Adyen 3D Secure test page</h1><form method=\"post\" "
        f"action=\"/adyen/3ds/{psp}/complete\"><button name=\"result\" value=\"succeed\" "
        "id=\"succeed\">Complete</button> <button name=\"result\" value=\"fail\" "
        "id=\"fail\">Fail</button></form></body></html>")


async def three_ds_complete(request: Request) -> Response:
    """The shopper's answer: the books learn it (AUTHORISATION follows by notification)
    and the shopper is sent to ``returnUrl`` with ``redirectResult``."""
    psp = request.path_params["psp"]
    dialect = dialect_of(request)
    record = dialect.payment(psp)
    raw = (await request.body()).decode("latin-1")
    result = (orjson.loads(raw).get("result") if raw.startswith("{")
              else dict(parse_qsl(raw)).get("result"))
    if record is None or result not in ("succeed", "fail"):
        return _error(AdyenError(422, "702", "Unknown payment or result."))
    auth_id = dialect.authorization(psp)["id"]
    dialect_of(request).acquirer.complete_authentication(auth_id,
                                                         succeeded=result == "succeed")
    token = dialect.redirect_token(auth_id, psp)
    dialect.save()
    target = _with_query(str(record["returnUrl"]), redirectResult=token)
    return RedirectResponse(target, status_code=303)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


# ---------------------------------------------------------------------- test controls


async def sim_payment(request: Request) -> Response:
    """The books' record of one Adyen payment, by its pspReference."""
    found = dialect_of(request).summary(request.path_params["psp"])
    if found is None:
        return _error(AdyenError(404, "000", "No such payment."))
    return json_response(found)


async def sim_batch(request: Request) -> Response:
    """Deliver every Adyen notification not yet delivered as ONE batch (several
    notificationItems in one POST), as Adyen does."""
    sender = simulator_of(request).webhooks
    due = [e for e in sender.events if e.adyen and e.state in ("pending", "failed")]
    if not due:
        return json_response({"delivered": 0})
    items = [item for e in due for item in e.data["notificationItems"]]
    batch = SimEvent(id=f"simevt_{secrets.token_hex(12)}", type="adyen.batch", created=0,
                     sequence=1, data={"live": "false", "notificationItems": items},
                     adyen=True)
    delivery = await sender.deliver(batch)
    if delivery.ok:
        for event in due:
            event.state = "delivered"
    return json_response({"delivered": len(items), **delivery.view()})


ROUTES = [
    Route("/v71/payments", payments, methods=["POST"]),
    Route("/v71/payments/details", payment_details, methods=["POST"]),
    Route("/v71/payments/{psp}/captures", _modification("capture"), methods=["POST"]),
    Route("/v71/payments/{psp}/cancels", _modification("cancel"), methods=["POST"]),
    Route("/v71/payments/{psp}/refunds", _modification("refund"), methods=["POST"]),
    Route("/ca/services/DisputeService/v30/acceptDispute", _dispute_call("accept"),
          methods=["POST"]),
    Route("/ca/services/DisputeService/v30/supplyDefenseDocument", _dispute_call("supply"),
          methods=["POST"]),
    Route("/ca/services/DisputeService/v30/defendDispute", _dispute_call("defend"),
          methods=["POST"]),
    Route("/adyen/3ds/{psp}", three_ds_page, methods=["GET"]),
    Route("/adyen/3ds/{psp}/complete", three_ds_complete, methods=["POST"]),
    Route("/_sim/adyen/payments/{psp}", sim_payment, methods=["GET"]),
    Route("/_sim/adyen/notifications/batch", sim_batch, methods=["POST"]),
]
