"""The 3-D Secure pages: the test page a customer is sent to (``action_url``) and the
completion its buttons post, which redirects back to the merchant's ``return_url``."""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kassa.domain.money import Money
from kassa.psp.simulator.books import AuthorizationNotFound
from kassa.psp.simulator.responses import error_response, json_response
from kassa.psp.simulator.runtime import simulator_of


async def three_ds_page(request: Request) -> Response:
    auth = simulator_of(request).acquirer.authorizations.get(request.path_params["id"])
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
            return error_response(400, "invalid_request_error", "Body must be a JSON object.")
    else:
        result = dict(parse_qsl(raw.decode("latin-1"))).get("result")
    if result not in ("succeed", "fail"):
        return error_response(400, "invalid_request_error", "result must be succeed or fail",
                              "result")
    try:
        auth = simulator_of(request).acquirer.complete_authentication(
            request.path_params["id"], succeeded=result == "succeed")
    except AuthorizationNotFound:
        return error_response(404, "not_found", "No such authorization.")
    if auth.return_url:
        return RedirectResponse(
            _with_query(auth.return_url, authorization=auth.id, status=auth.status),
            status_code=303,
        )
    return json_response(auth.view())


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


ROUTES = [
    Route("/3ds/{id}", three_ds_page, methods=["GET"]),
    Route("/3ds/{id}/complete", three_ds_complete, methods=["POST"]),
]
