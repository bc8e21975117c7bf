"""Adyen's daily settlement details report: a CSV downloaded from the configured report URL
(the day as a format field) with the report user's basic auth, read by the ``adyen`` parser
by header name (https://docs.adyen.com/reporting/download-reports-automatically)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx

from kassa.psp import report_files
from kassa.psp.adyen.settings import AdyenSettings


class AdyenSettlementReports:
    format = "adyen"

    def __init__(self, client: httpx.AsyncClient, settings: AdyenSettings, *,
                 timeout: float = 60.0):
        assert settings.settlement_report_url is not None
        self._client = client
        self._template = settings.settlement_report_url
        password = settings.report_password.get_secret_value() \
            if settings.report_password else ""
        self._auth = httpx.BasicAuth(settings.report_username or "", password)
        self._timeout = timeout

    def url(self, day: date) -> str:
        return self._template.format(day=day)

    async def download(self, *, day: date, into: Path) -> None:
        request = self._client.build_request("GET", self.url(day), timeout=self._timeout)
        request = next(self._auth.auth_flow(request))
        await report_files.download(self._client, request, into,
                                    what=f"Adyen's settlement details report of {day}")
