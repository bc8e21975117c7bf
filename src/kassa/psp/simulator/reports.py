"""The simulator account's settlement report source: ``GET /v1/settlement_reports/{day}``
of the simulator's own API, the CSV of what it really processed that UTC day with its fees
(settlement_report.py), read by the ``simulator`` parser."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx

from kassa.psp import report_files


class SimulatorSettlementReports:
    format = "simulator"

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, timeout: float = 60.0):
        self._client = client
        self._base = base_url.rstrip("/")
        self._timeout = timeout

    async def download(self, *, day: date, into: Path) -> None:
        request = self._client.build_request(
            "GET", f"{self._base}/v1/settlement_reports/{day.isoformat()}",
            headers={"Accept": "text/csv"}, timeout=self._timeout)
        await report_files.download(self._client, request, into,
                                    what=f"the simulator's report of {day}")
