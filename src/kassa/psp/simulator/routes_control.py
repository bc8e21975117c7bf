"""The ``/_sim`` control plane tests drive the simulator with: configuration and faults,
inspection, reset, webhook delivery, settling pending operations; ``/healthz``; and the
daily settlement report a PSP publishes (``/v1/settlement_reports/{day}``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kassa.psp.simulator import settlement_report
from kassa.psp.simulator.books import Conflict, InvalidRequest, NotFound
from kassa.psp.simulator.parsing import boolean, integer, json_body, optional_string
from kassa.psp.simulator.responses import error_response, json_response, refuses_invalid
from kassa.psp.simulator.runtime import simulator_of


async def sim_config(request: Request) -> Response:
    chaos = simulator_of(request).chaos
    if request.method == "POST":
        try:
            changes = await json_body(request)
            chaos.configure(chaos.config.updated(changes), reseed="seed" in changes)
        except (InvalidRequest, ValueError, TypeError) as exc:
            return error_response(400, "invalid_request_error", str(exc))
    return json_response(chaos.config.as_dict())


async def sim_faults(request: Request) -> Response:
    chaos = simulator_of(request).chaos
    try:
        faults = (await json_body(request)).get("faults")
        if not isinstance(faults, list):
            raise InvalidRequest("faults must be a list", "faults")
        chaos.enqueue(faults)
    except (InvalidRequest, ValueError) as exc:
        return error_response(400, "invalid_request_error", str(exc), "faults")
    return json_response({"faults_pending": list(chaos.queue)})


async def sim_authorizations(request: Request) -> Response:
    return json_response(simulator_of(request).acquirer.authorization_list())


async def sim_stats(request: Request) -> Response:
    simulator = simulator_of(request)
    stats = simulator.acquirer.stats()
    stats["faults_injected"] = dict(simulator.chaos.injected)
    stats["faults_pending"] = list(simulator.chaos.queue)
    return json_response(stats)


async def sim_reset(request: Request) -> Response:
    simulator = simulator_of(request)
    await simulator.webhooks.reset()
    simulator.acquirer.reset()
    simulator.tokens.reset()
    simulator.chaos.reset()
    return json_response({"reset": True})


async def sim_webhooks(request: Request) -> Response:
    return json_response(simulator_of(request).webhooks.listing())


async def sim_webhooks_flush(request: Request) -> Response:
    sender = simulator_of(request).webhooks
    try:
        body = await json_body(request)
        order = body.get("order", "fifo")
        duplicate = boolean(body, "duplicate", default=False)
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidRequest("seed must be an integer", "seed")
        delivered = await sender.flush(order=str(order), duplicate=duplicate, seed=seed)
    except (InvalidRequest, ValueError) as exc:
        return error_response(400, "invalid_request_error", str(exc))
    return json_response({"delivered": delivered})


async def sim_webhooks_resend(request: Request) -> Response:
    sender = simulator_of(request).webhooks
    event = sender.find(request.path_params["id"])
    if event is None:
        return error_response(404, "not_found", "No such event.")
    delivery = await sender.deliver(event)
    return json_response({"event": event.id, **delivery.view()})


async def sim_expire(request: Request) -> Response:
    """The authorisation lapses uncaptured, as a PSP lets it at the end of its validity."""
    acquirer = simulator_of(request).acquirer
    try:
        return json_response(acquirer.expire(request.path_params["id"]))
    except NotFound:
        return error_response(404, "not_found", "No such authorization.")
    except Conflict as exc:
        return error_response(409, "invalid_state", str(exc))


@refuses_invalid
async def sim_settle(request: Request) -> Response:
    acquirer = simulator_of(request).acquirer
    try:
        outcome = (await json_body(request)).get("outcome")
        return json_response(acquirer.settle(request.path_params["key"], str(outcome)))
    except NotFound:
        return error_response(404, "not_found",
                              "No capture or refund was received with this key.")
    except Conflict as exc:
        return error_response(409, "invalid_state", str(exc))


async def sim_settlement_report(request: Request) -> Response:
    """``{"date": "YYYY-MM-DD", "inject": {kind: count}, "seed": n}`` → the day's settlement
    report as CSV (``csv``) and the manifest of the discrepancies injected into it."""
    try:
        body = await json_body(request)
        day = date.fromisoformat(str(body.get("date") or date.today().isoformat()))
        inject = body.get("inject") or {}
        seed = body.get("seed", 0)
        if not isinstance(inject, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for v in inject.values()):
            raise InvalidRequest("inject maps a discrepancy kind to a count", "inject")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidRequest("seed must be an integer", "seed")
        rows = _settled_rows(request, day)
        rows, manifest = settlement_report.with_discrepancies(rows, inject, seed=seed)
    except (InvalidRequest, ValueError) as exc:
        return error_response(400, "invalid_request_error", str(exc))
    return json_response({"date": day.isoformat(), "rows": len(rows), "injected": manifest,
                          "csv": _render(request, rows)})


def _settled_rows(request: Request, day: date) -> list[settlement_report.ReportRow]:
    """What the acquirer moved on ``day``, as this account settles it (its configured
    settlement currency and rates, if any)."""
    simulator = simulator_of(request)
    config = simulator.chaos.config
    return list(settlement_report.settled_in(
        settlement_report.processed(simulator.acquirer, day), config.settlement_currency,
        config.settlement_rates))


def _render(request: Request, rows: list[settlement_report.ReportRow]) -> str:
    return settlement_report.render_csv(
        rows, conversions=simulator_of(request).chaos.config.settlement_currency is not None)


async def settlement_report_of_day(request: Request) -> Response:
    """``GET /v1/settlement_reports/{day}``: the acquirer's report of the UTC day as a real
    PSP publishes it (the CSV itself, what it processed with its fees, no injection), for
    kassa's daily pull. A day still to come has no report (404)."""
    try:
        day = date.fromisoformat(request.path_params["day"])
    except ValueError:
        return error_response(400, "invalid_request_error",
                              "the day is YYYY-MM-DD", "day")
    if day > datetime.now(UTC).date():
        return error_response(404, "report_not_ready", f"No settlement report for {day} yet.")
    rows = _settled_rows(request, day)
    return Response(_render(request, rows), media_type="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="settlement_{day.isoformat()}.csv"'})


@refuses_invalid
async def sim_tokens(request: Request) -> Response:
    """Store a card as the simulator's own token (what a PSP's tokenisation does)."""
    body = await json_body(request)
    number = body.get("number")
    if not isinstance(number, str):
        raise InvalidRequest("number must be a string of digits", "number")
    exp_month = integer(body, "exp_month", minimum=1, maximum=12)
    exp_year = integer(body, "exp_year", minimum=2000, maximum=9999)
    shopper = optional_string(body, "shopper_reference")
    card = simulator_of(request).tokens.create(number=number, exp_month=exp_month,
                                               exp_year=exp_year, shopper_reference=shopper)
    return json_response(card.view())


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


ROUTES = [
    Route("/_sim/config", sim_config, methods=["GET", "POST"]),
    Route("/_sim/faults", sim_faults, methods=["POST"]),
    Route("/_sim/authorizations", sim_authorizations, methods=["GET"]),
    Route("/_sim/authorizations/{id}/expire", sim_expire, methods=["POST"]),
    Route("/_sim/stats", sim_stats, methods=["GET"]),
    Route("/_sim/reset", sim_reset, methods=["POST"]),
    Route("/_sim/tokens", sim_tokens, methods=["POST"]),
    Route("/_sim/webhooks", sim_webhooks, methods=["GET"]),
    Route("/_sim/webhooks/flush", sim_webhooks_flush, methods=["POST"]),
    Route("/_sim/webhooks/{id}/resend", sim_webhooks_resend, methods=["POST"]),
    Route("/_sim/operations/{key:path}/settle", sim_settle, methods=["POST"]),
    Route("/_sim/settlement_report", sim_settlement_report, methods=["POST"]),
    Route("/v1/settlement_reports/{day}", settlement_report_of_day, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
