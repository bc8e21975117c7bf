"""The simulator's JSON answers, and its error body ``{"error": {type, message, param?}}``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from kassa.psp.simulator.books import InvalidRequest

Handler = Callable[[Request], Awaitable[Response]]


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json")


def error_response(status_code: int, kind: str, message: str, param: str | None = None
                   ) -> Response:
    error: dict[str, str] = {"type": kind, "message": message}
    if param is not None:
        error["param"] = param
    return json_response({"error": error}, status_code)


def refuses_invalid(handler: Handler) -> Handler:
    """Answer an InvalidRequest the handler raises with a 400 naming its parameter (raised
    while reading the request, before anything is done or stored)."""

    @functools.wraps(handler)
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except InvalidRequest as exc:
            return error_response(400, "invalid_request_error", str(exc), exc.param)

    return answer
