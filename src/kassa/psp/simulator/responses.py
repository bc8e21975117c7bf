"""The simulator's JSON answers, and its error body ``{"error": {type, message, param?}}``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json")


def error_response(status_code: int, kind: str, message: str, param: str | None = None
                   ) -> Response:
    error: dict[str, str] = {"type": kind, "message": message}
    if param is not None:
        error["param"] = param
    return json_response({"error": error}, status_code)
