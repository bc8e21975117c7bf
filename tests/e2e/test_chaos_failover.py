"""bench/chaos.py small: kassa's API and worker as processes, two simulator PSPs under a
priority configuration, 150 payments (a share captured and partly refunded) from clients
that retry every error with the same key, while A refuses connections, then times out
after charging, and the API is SIGKILLed twice after A is back. Counted at both ends: no
payment charged at both PSPs or twice at one, none lost, each PSP's captures and refunds
equal kassa's and its ledger's, the ledger balanced."""

from __future__ import annotations

import contextlib

import pytest

from bench import chaos
from tests.support.databases import migrated_database

pytestmark = pytest.mark.slow


async def test_failover_timeouts_and_api_kills_lose_and_double_nothing(server_url, tmp_path):
    # the kills wait until A is back: a successor API starts with a closed breaker and a
    # fresh window, and 150 payments leave too few of the outage's to it for its breaker
    # to be sure to open before A is back (CI saw that); and the outage lasts 7 s so that
    # its refusals outnumber the normal phase's successes in the breaker's 10 s window
    plan = chaos.Plan(payments=150, rate=10.0, concurrency=16, kills=2, settle_s=30.0,
                      kill_window=(0.35, 0.85), kills_after_outage=True, outage_min_s=7.0)
    with migrated_database(server_url, prefix="kassa_chaos") as dsn, \
            contextlib.ExitStack() as es:
        summary = await chaos.run(plan, es, tmp_path, dsn)
    report = chaos.render(summary)
    assert summary["ok"], report
    assert summary["kills"] == 2, report
    assert (summary["doubles_at_both"], summary["doubles_at_one"], summary["lost"],
            summary["sent_elsewhere_after_unknown"]) == (0, 0, 0, 0), report
    assert summary["final_statuses"] == {"succeeded": 150}, report
    # the chaos happened: payments failed over while A was down, A's breaker opened, A
    # timed out after charging and recovery resolved those at A (the worker's own metrics
    # show its lookups there), and A took payments again once back
    assert summary["failed_over"] > 0 and 2 in summary["breaker_states_seen"]["outage"], report
    assert summary["faults_at_a"].get("timeout_after_charge", 0) > 0, report
    assert any(k.startswith("lookup/") for k in summary["worker_psp_calls_at_a"]), report
    assert summary["a_charges_after_outage"] > 0, report
    # every create+confirm answered "processing" (A's outcome unknown) ended charged
    assert sum(summary["unknown_resolved_by_recovery_at"].values()) == \
        summary["first_answers"].get("processing", 0), report
    assert summary["ledger_ok"], report
    for row in summary["per_psp"].values():
        assert row["psp_charges"] == row["kassa_succeeded"] > 0, report
        assert row["ledger_receivable"] == row["psp_captured"] - row["psp_refunded"], report
