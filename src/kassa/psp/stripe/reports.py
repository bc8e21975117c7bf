"""Stripe's daily settlement report through its Reporting API, read by the ``stripe``
parser: create a report run of ``balance_change_from_activity.itemized.3`` over the UTC day
(once the report type's data covers it), poll the run until it succeeded, then download its
result file (``files.stripe.com``) — https://docs.stripe.com/reports/api.

Plain HTTP on the injected client rather than the SDK: the file download is a streamed GET
the SDK does not offer, and three calls do not need it. localstripe has no Reporting API;
the tests run this against a recorded-contract fake on loopback
(tests/support/report_fakes.py) with the documented request and answer shapes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from kassa.psp import report_files
from kassa.psp.base import ReportUnavailable
from kassa.psp.stripe.mapping import ATTEMPT_KEY
from kassa.psp.stripe.settings import StripeSettings

# the columns the stripe parser reads (reconciliation/reports.py), asked for explicitly:
# payment_intent_id and the attempt's metadata are not among the report's defaults, nor
# what the customer was charged when Stripe converted (customer_facing_*: kassa's side)
COLUMNS = ("balance_transaction_id", "created_utc", "currency", "gross", "fee", "net",
           "reporting_category", "source_id", "charge_id", "payment_intent_id",
           f"payment_metadata[{ATTEMPT_KEY}]", "customer_facing_amount",
           "customer_facing_currency")


class StripeSettlementReports:
    format = "stripe"

    def __init__(self, client: httpx.AsyncClient, settings: StripeSettings, *,
                 timeout: float = 30.0):
        assert settings.secret_key is not None
        self._client = client
        self._settings = settings
        self._api = settings.api_base.rstrip("/")
        self._auth = {"Authorization": f"Bearer {settings.secret_key.get_secret_value()}"}
        self._timeout = timeout
        # the secret key goes only to Stripe's own hosts, whatever a result URL says
        self._trusted = {_origin(self._api), _origin(settings.files_base)}

    async def download(self, *, day: date, into: Path) -> None:
        start = int(datetime.combine(day, datetime.min.time(), UTC).timestamp())
        end = int((datetime.combine(day, datetime.min.time(), UTC)
                   + timedelta(days=1)).timestamp())
        kind = await self._call("GET", f"/v1/reporting/report_types/{self._settings.report_type}")
        if int(kind.get("data_available_end") or 0) < end:
            raise ReportUnavailable(f"Stripe's {self._settings.report_type} has data up to "
                                    f"{kind.get('data_available_end')}, not yet to the end of "
                                    f"{day} (not published yet)")
        form: list[tuple[str, str]] = [
            ("report_type", self._settings.report_type),
            ("parameters[interval_start]", str(start)),
            ("parameters[interval_end]", str(end)),
            ("parameters[timezone]", "Etc/UTC"),
            *(("parameters[columns][]", c) for c in COLUMNS)]
        run = await self._call("POST", "/v1/reporting/report_runs", data=form)
        deadline = time.monotonic() + self._settings.report_wait_seconds
        while run.get("status") == "pending":
            if time.monotonic() > deadline:
                raise ReportUnavailable(f"Stripe's report run {run.get('id')} for {day} still "
                                        f"pending after {self._settings.report_wait_seconds}s")
            await asyncio.sleep(self._settings.report_poll_seconds)
            run = await self._call("GET", f"/v1/reporting/report_runs/{run['id']}")
        if run.get("status") != "succeeded":
            raise ReportUnavailable(f"Stripe's report run {run.get('id')} for {day}: "
                                    f"{run.get('status')} ({run.get('error')})")
        url = str((run.get("result") or {}).get("url") or "")
        if _origin(url) not in self._trusted:
            raise ReportUnavailable(f"Stripe's report run {run.get('id')} names a file at "
                                    f"{_origin(url) or 'no URL'}, not at a Stripe host")
        request = self._client.build_request("GET", url, headers=self._auth,
                                             timeout=self._timeout)
        await report_files.download(self._client, request, into,
                                    what=f"Stripe's report file of {day}")

    async def _call(self, method: str, path: str, *,
                    data: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        try:
            # a form with a repeated key (parameters[columns][]): encoded here, httpx's
            # data= takes a mapping only
            headers = self._auth if data is None else {
                **self._auth, "Content-Type": "application/x-www-form-urlencoded"}
            answer = await self._client.request(
                method, self._api + path, headers=headers,
                content=None if data is None else urlencode(data), timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise ReportUnavailable(f"Stripe {method} {path}: {type(exc).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code != 200 or not isinstance(body, dict):
            error = body.get("error", {}).get("message") if isinstance(body, dict) else None
            raise ReportUnavailable(f"Stripe {method} {path}: HTTP {answer.status_code}"
                                    f" {error or answer.text[:200]}")
        return body


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
