"""A simulated bank served over HTTP, receiving kassa's payouts, so payout failures in tests
are real network failures. Its manual is README.md beside this file.

    POST /v1/transfers                 receive a payout (idempotent by ``reference``)
    GET  /v1/transfers/{id}            one transfer, its status read off the bank's clock
    GET  /v1/transfers?reference=…     the transfer received under kassa's payout id
    GET|POST /_bank/config             the fault model and delays
    POST /_bank/faults                 one-shot faults for the next transfer requests
    POST /_bank/clock                  move the bank's clock forward (``{"advance_s": …}``)
    POST /_bank/transfers/{id}/fail    fail (in transit) or return (paid) a transfer now
    GET  /_bank/transfers, /_bank/stats; POST /_bank/reset; GET /healthz
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kassa.domain.errors import InvalidRequest
from kassa.payouts.bank_simulator.bank import (
    ERROR,
    ERROR_AFTER_ACCEPT,
    GARBAGE_AFTER_ACCEPT,
    REFUSE,
    TIMEOUT_AFTER_ACCEPT,
    TIMEOUT_BEFORE_ACCEPT,
    Bank,
    BankConfig,
    Conflict,
    IdempotencyConflict,
    NotFound,
)

__all__ = ["BankConfig", "create_app"]


def _answer(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
            ) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json", headers=headers)


def _error(status_code: int, kind: str, message: str, param: str | None = None) -> Response:
    body: dict[str, Any] = {"type": kind, "message": message}
    if param:
        body["param"] = param
    return _answer({"error": body}, status_code)


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


def _bank(request: Request) -> Bank:
    bank: Bank = request.app.state.bank
    return bank


async def create_transfer(request: Request) -> Response:
    bank = _bank(request)
    if bank.config.latency_ms:
        await asyncio.sleep(bank.config.latency_ms / 1000)
    try:
        body = await _body(request)
    except InvalidRequest as exc:
        return _error(400, "invalid_request_error", exc.message, exc.param)
    fault = bank.next_fault()
    if fault == ERROR:
        return _error(503, "simulated_error", "Simulated bank error; nothing was received.")
    if fault == TIMEOUT_BEFORE_ACCEPT:
        await asyncio.sleep(bank.config.timeout_hang_s)
        return _error(504, "simulated_timeout", "Simulated timeout; nothing was received.")
    if fault == REFUSE:
        return _error(400, "simulated_refusal", "Simulated refusal; nothing was received.")
    try:
        transfer, replayed = bank.receive(body)
    except InvalidRequest as exc:
        return _error(400, "invalid_request_error", exc.message, exc.param)
    except IdempotencyConflict as exc:
        return _error(409, "idempotency_error", str(exc), "reference")
    if fault == TIMEOUT_AFTER_ACCEPT:
        await asyncio.sleep(bank.config.timeout_hang_s)
    elif fault == ERROR_AFTER_ACCEPT:
        return _error(503, "simulated_error", "Simulated bank error after receiving.")
    elif fault == GARBAGE_AFTER_ACCEPT:
        return Response(b"<html>gateway error", media_type="text/html")
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return _answer(transfer.view(bank.now()), 200 if replayed else 201, headers)


async def transfers(request: Request) -> Response:
    bank = _bank(request)
    if bank.config.latency_ms:
        await asyncio.sleep(bank.config.latency_ms / 1000)
    reference = request.query_params.get("reference")
    if reference is None:
        return _error(400, "invalid_request_error", "reference is required", "reference")
    try:
        return _answer(bank.find(reference).view(bank.now()))
    except NotFound:
        return _error(404, "not_found", f"No transfer was received as {reference!r}.")


async def transfer(request: Request) -> Response:
    bank = _bank(request)
    try:
        return _answer(bank.get(request.path_params["id"]).view(bank.now()))
    except NotFound:
        return _error(404, "not_found", "No such transfer.")


# -- control plane ---------------------------------------------------------------------------

async def bank_config(request: Request) -> Response:
    bank = _bank(request)
    if request.method == "POST":
        try:
            changes = await _body(request)
            bank.configure(bank.config.updated(changes), reseed="seed" in changes)
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", exc.message, exc.param)
        except TypeError as exc:
            return _error(400, "invalid_request_error", str(exc))
    return _answer(bank.config.as_dict())


async def bank_faults(request: Request) -> Response:
    bank = _bank(request)
    try:
        faults = (await _body(request)).get("faults")
        if not isinstance(faults, list):
            raise InvalidRequest("faults must be a list", param="faults")
        bank.enqueue(faults)
    except InvalidRequest as exc:
        return _error(400, "invalid_request_error", exc.message, exc.param)
    return _answer({"faults_pending": list(bank.queue)})


async def bank_clock(request: Request) -> Response:
    bank = _bank(request)
    if request.method == "POST":
        try:
            bank.advance((await _body(request)).get("advance_s", 0))
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", exc.message, "advance_s")
    return _answer({"now": bank.now(), "offset_s": bank.offset})


async def bank_fail(request: Request) -> Response:
    bank = _bank(request)
    try:
        code = (await _body(request)).get("failure_code", "could_not_process")
        transfer = bank.fail(request.path_params["id"], code)
    except InvalidRequest as exc:
        return _error(400, "invalid_request_error", exc.message, exc.param)
    except NotFound:
        return _error(404, "not_found", "No such transfer.")
    except Conflict as exc:
        return _error(409, "invalid_state", str(exc))
    return _answer(transfer.view(bank.now()))


async def bank_transfers(request: Request) -> Response:
    bank = _bank(request)
    now = bank.now()
    return _answer({"data": [t.view(now) for t in bank.transfers.values()]})


async def bank_stats(request: Request) -> Response:
    return _answer(_bank(request).stats())


async def bank_reset(request: Request) -> Response:
    _bank(request).reset()
    return _answer({"reset": True})


async def healthz(request: Request) -> Response:
    return _answer({"status": "ok"})


ROUTES = [
    Route("/v1/transfers", create_transfer, methods=["POST"]),
    Route("/v1/transfers", transfers, methods=["GET"]),
    Route("/v1/transfers/{id}", transfer, methods=["GET"]),
    Route("/_bank/config", bank_config, methods=["GET", "POST"]),
    Route("/_bank/faults", bank_faults, methods=["POST"]),
    Route("/_bank/clock", bank_clock, methods=["GET", "POST"]),
    Route("/_bank/transfers", bank_transfers, methods=["GET"]),
    Route("/_bank/transfers/{id}/fail", bank_fail, methods=["POST"]),
    Route("/_bank/stats", bank_stats, methods=["GET"]),
    Route("/_bank/reset", bank_reset, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]


def create_app(config: BankConfig | None = None, *, state_path: Path | None = None) -> Starlette:
    """A bank with its own books (``app.state.bank``): in memory, or kept in the JSON file
    ``state_path`` across restarts."""
    app = Starlette(routes=ROUTES)
    app.state.bank = Bank(config, state_path=state_path)
    return app
