"""Loopback fakes of the PSPs' report downloads, for the daily pull's tests.

localstripe has no Reporting API, so ``StripeReporting`` is a recorded-contract fake of the
three calls kassa makes, with the request parameters and answer shapes of Stripe's docs
(https://docs.stripe.com/api/reporting/report_run, /reports/api): ``GET
/v1/reporting/report_types/{type}`` (``data_available_end``), ``POST
/v1/reporting/report_runs`` (form ``report_type``, ``parameters[interval_start|end]``,
``parameters[timezone]``, ``parameters[columns][]``; an interval past the data is a 400),
``GET /v1/reporting/report_runs/{id}`` (``pending`` for a few polls, then ``succeeded`` with
``result``, a ``file`` whose ``url`` is under ``/v1/files/{id}/contents``), and the file
itself (only the requested columns, in their order, amounts in major units). Each request is
recorded, so a test checks what kassa sent.

``AdyenReports`` serves report files under ``/reports/download/MerchantAccount/{account}/
{file}`` behind the report user's basic auth, as Adyen's Customer Area does.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.uvicorn_servers import serving_in_thread


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "message": message}},
                        status_code=status)


@dataclass
class StripeReporting:
    secret_key: str
    data_available_end: int
    rows: list[dict[str, str]] = field(default_factory=list)  # every column, major units
    polls_before_success: int = 2
    base_url: str = ""
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.secret_key}"

    async def report_type(self, request: Request) -> Response:
        self.requests.append(("GET", request.url.path, {}))
        if not self._authorized(request):
            return _error(401, "Invalid API Key provided")
        return JSONResponse({"id": request.path_params["id"], "object": "reporting.report_type",
                             "data_available_start": 1_500_000_000,
                             "data_available_end": self.data_available_end,
                             "livemode": False, "name": "Itemized balance change",
                             "updated": self.data_available_end, "version": 3})

    async def create_run(self, request: Request) -> Response:
        params = parse_qs((await request.body()).decode(), keep_blank_values=True)
        self.requests.append(("POST", request.url.path, params))
        if not self._authorized(request):
            return _error(401, "Invalid API Key provided")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return _error(400, "Stripe takes form-encoded parameters")
        try:
            start = int(params["parameters[interval_start]"][0])
            end = int(params["parameters[interval_end]"][0])
        except (KeyError, ValueError):
            return _error(400, "parameters[interval_start] and [interval_end] are integers")
        if end > self.data_available_end:
            return _error(400, "parameters[interval_end] must be before data_available_end")
        run_id = f"frr_{next(self._ids)}"
        self._runs[run_id] = {
            "id": run_id, "object": "reporting.report_run", "created": start,
            "error": None, "livemode": False, "report_type": params["report_type"][0],
            "parameters": {"interval_start": start, "interval_end": end,
                           "timezone": params.get("parameters[timezone]", ["Etc/UTC"])[0],
                           "columns": params.get("parameters[columns][]", [])},
            "result": None, "status": "pending", "succeeded_at": None, "_polls": 0}
        return JSONResponse(self._public(self._runs[run_id]))

    async def get_run(self, request: Request) -> Response:
        self.requests.append(("GET", request.url.path, {}))
        run = self._runs.get(request.path_params["id"])
        if run is None or not self._authorized(request):
            return _error(404, "No such report run")
        run["_polls"] += 1
        if run["status"] == "pending" and run["_polls"] >= self.polls_before_success:
            file_id = f"file_{run['id']}"
            run.update(status="succeeded", succeeded_at=run["created"] + 60, result={
                "id": file_id, "object": "file", "purpose": "finance_report_run",
                "type": "csv", "filename": f"{file_id}.csv",
                "url": f"{self.base_url}/v1/files/{file_id}/contents"})
        return JSONResponse(self._public(run))

    async def file_contents(self, request: Request) -> Response:
        self.requests.append(("GET", request.url.path, {}))
        if not self._authorized(request):
            return _error(401, "Invalid API Key provided")
        run = self._runs.get(request.path_params["id"].removeprefix("file_"))
        if run is None or run["status"] != "succeeded":
            return _error(404, "No such file")
        columns = run["parameters"]["columns"]
        lo, hi = run["parameters"]["interval_start"], run["parameters"]["interval_end"]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in self.rows:
            if lo <= int(row["_created"]) < hi:
                writer.writerow([row.get(c, "") for c in columns])
        return PlainTextResponse(out.getvalue(), media_type="text/csv")

    @staticmethod
    def _public(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/reporting/report_types/{id}", self.report_type, methods=["GET"]),
            Route("/v1/reporting/report_runs", self.create_run, methods=["POST"]),
            Route("/v1/reporting/report_runs/{id}", self.get_run, methods=["GET"]),
            Route("/v1/files/{id}/contents", self.file_contents, methods=["GET"])])


@dataclass
class AdyenReports:
    username: str
    password: str
    files: dict[str, str] = field(default_factory=dict)  # path under the account → CSV

    async def download(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return PlainTextResponse("HTTP Status 401 - Unauthorized", status_code=401)
        body = self.files.get(f"{request.path_params['account']}/{request.path_params['file']}")
        if body is None:
            return PlainTextResponse("HTTP Status 404 - Not Found", status_code=404)
        return PlainTextResponse(body, media_type="text/csv")

    def app(self) -> Starlette:
        return Starlette(routes=[Route(
            "/reports/download/MerchantAccount/{account}/{file}", self.download,
            methods=["GET"])])


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False, lifespan="off"))
    with serving_in_thread(server, "report-fake"):
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
