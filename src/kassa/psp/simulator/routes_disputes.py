"""Disputes: the merchant's side under ``/v1/disputes`` (read, answer with evidence,
accept) and the issuer's side under ``/_sim/disputes`` (open, close, escalate), which
tests drive."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kassa.domain.money import MAX_AMOUNT
from kassa.psp.simulator.books import AuthorizationNotFound, Conflict, InvalidRequest, NotFound
from kassa.psp.simulator.parsing import boolean, json_body, optional_integer
from kassa.psp.simulator.responses import error_response, json_response, refuses_invalid
from kassa.psp.simulator.runtime import simulator_of

# -- the merchant's side -----------------------------------------------------------------


async def get_dispute(request: Request) -> Response:
    try:
        return json_response(simulator_of(request).acquirer.dispute(
            request.path_params["id"]).view())
    except NotFound:
        return error_response(404, "not_found", "No such dispute.")


@refuses_invalid
async def dispute_evidence(request: Request) -> Response:
    body = await json_body(request)
    evidence = body.get("evidence", {})
    if not isinstance(evidence, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in evidence.items()):
        raise InvalidRequest("evidence must be an object of strings", "evidence")
    submit = boolean(body, "submit", default=False)
    simulator = simulator_of(request)
    return await simulator.mutate(lambda: simulator.acquirer.submit_evidence(
        request.path_params["id"], evidence, submit=submit))


async def dispute_accept(request: Request) -> Response:
    simulator = simulator_of(request)
    dispute_id = request.path_params["id"]
    return await simulator.mutate(lambda: simulator.acquirer.accept_dispute(dispute_id))


# -- the issuer's side (test control) ----------------------------------------------------


async def sim_disputes(request: Request) -> Response:
    return json_response([d.view() for d in simulator_of(request).acquirer.disputes.values()])


@refuses_invalid
async def sim_dispute_control(request: Request) -> Response:
    acquirer = simulator_of(request).acquirer
    auth_id = request.path_params["authorization"]
    action = request.path_params["action"]
    try:
        body = await json_body(request)
        if action == "open":
            reason = body.get("reason", "fraudulent")
            if not isinstance(reason, str) or not reason:
                raise InvalidRequest("reason must be a string", "reason")
            inquiry = boolean(body, "inquiry", default=False)
            amount = optional_integer(body, "amount", minimum=1, maximum=MAX_AMOUNT)
            return json_response(acquirer.open_dispute(auth_id, reason=reason, amount=amount,
                                                       inquiry=inquiry))
        if action == "close":
            return json_response(acquirer.close_dispute(auth_id, str(body.get("outcome"))))
        if action == "escalate":
            return json_response(acquirer.escalate_dispute(auth_id))
        return error_response(404, "not_found", f"Unknown dispute action {action!r}.")
    except (AuthorizationNotFound, NotFound):
        return error_response(404, "not_found", "No such authorization or dispute.")
    except Conflict as exc:
        return error_response(409, "invalid_state", str(exc))


ROUTES = [
    Route("/v1/disputes/{id}", get_dispute, methods=["GET"]),
    Route("/v1/disputes/{id}/evidence", dispute_evidence, methods=["POST"]),
    Route("/v1/disputes/{id}/accept", dispute_accept, methods=["POST"]),
]

CONTROL_ROUTES = [
    Route("/_sim/disputes", sim_disputes, methods=["GET"]),
    Route("/_sim/disputes/{authorization}/{action}", sim_dispute_control, methods=["POST"]),
]
