"""kassa against its own /openapi.json (issue 8, item 9): schemathesis generates valid and
invalid requests for every operation, sends them over loopback HTTP to a live kassa, and
checks that no answer is a 5xx and every answer (status, content type, headers, body)
conforms to the document."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kassa.api.app import create_app
from tests.support.api_server import serving

EXAMPLES = int(os.environ.get("KASSA_SCHEMATHESIS_EXAMPLES", "25"))  # per operation and mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def run_schemathesis(base_url: str, headers: dict[str, str], real_ids: dict[str, str]
                     ) -> dict[str, Any]:
    """Every operation, positive then negative examples; returns counts and failures.
    Half the cases get real object ids in their path (else nearly all would be 404s)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: dict[str, str] = {}
    skipped: list[str] = []
    calls = 0
    statuses: dict[int, int] = {}
    settings = hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                                   derandomize=True, phases=[hypothesis.Phase.generate],
                                   suppress_health_check=list(HealthCheck))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode),
                              use_real_ids=hypothesis.strategies.booleans())
            def check(case: schemathesis.Case, use_real_ids: bool) -> None:
                nonlocal calls
                calls += 1
                if use_real_ids and case.path_parameters:
                    for name in case.path_parameters:
                        if name in real_ids:
                            case.path_parameters[name] = real_ids[name]
                response = case.call(base_url=base_url, headers=headers, timeout=30)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label
                skipped.append(operation.label)  # nothing in it can be invalid (no parameters)
            except Exception as exc:  # keep going: report every operation that fails
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    return {"operations": len(operations), "calls": calls, "statuses": statuses,
            "failures": failures, "no_negative_cases": skipped}


async def objects(client, auth) -> dict[str, str]:
    """One object of each kind for the merchant, by path parameter name."""
    pi = (await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "5000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})).json()
    refund = (await client.post("/v1/refunds", headers=auth, data={
        "payment_intent": pi["id"], "amount": "100"})).json()
    endpoint = (await client.post("/v1/webhook_endpoints", headers=auth, data={
        "url": "http://127.0.0.1:9/hooks", "enabled_events[]": "*"})).json()
    event = (await client.get("/v1/events", headers=auth)).json()["data"][0]
    bt = (await client.get("/v1/balance_transactions", headers=auth)).json()["data"][0]
    account = (await client.post("/v1/psp_accounts", headers=auth, data={
        "psp": "simulator", "base_url": "http://127.0.0.1:9", "currencies[]": "usd"})).json()
    return {"payment_id": pi["id"], "refund_id": refund["id"], "endpoint_id": endpoint["id"],
            "event_id": event["id"], "bt_id": bt["id"], "psp": "simulator",
            "account_id": account["id"]}


@pytest.mark.slow
async def test_every_operation_conforms_to_the_document(kassa, client, merchant, auth):
    app = create_app(kassa=kassa, key_cache_seconds=0.0)
    real_ids = await objects(client, auth)
    async with serving(app) as url:
        # schemathesis is synchronous: it runs in a thread while this loop serves it
        report = await asyncio.to_thread(run_schemathesis, url, auth, real_ids)
    with contextlib.suppress(Exception):
        print(f"\nschemathesis: {report['operations']} operations, {report['calls']} calls, "
              f"statuses {dict(sorted(report['statuses'].items()))}, no negative cases "
              f"for {report['no_negative_cases']}")
    assert report["operations"] == len([m for p in app.openapi()["paths"].values()
                                        for m in p])
    assert not report["failures"], "\n\n".join(f"{k}:\n{v}"
                                               for k, v in report["failures"].items())
