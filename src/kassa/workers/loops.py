"""Thin worker loops: recovery of open attempts, funds availability, idempotency expiry,
the relay, webhooks, inbound PSP events, payouts, the daily pull of settlement reports,
balance checkpoints."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from kassa.events.relay import Relay
from kassa.payouts.base import PayoutAdapter
from kassa.psp.base import SettlementReportSource
from kassa.services import (
    balances,
    idempotency,
    payout_rail,
    payout_scheduler,
    reconciliation_pull,
    recovery,
    request_logs,
)
from kassa.services.context import Kassa
from kassa.webhooks import inbound as psp_webhooks
from kassa.webhooks.delivery import WebhookSender

log = logging.getLogger(__name__)

ROLES = ("recovery", "availability", "idempotency-expiry", "relay", "webhooks",
         "psp-webhooks", "payouts", "payout-schedule", "reconcile-pull", "ledger-checkpoints")


async def every(seconds: float, step: Callable[[], Awaitable[int]], name: str,
                stop: asyncio.Event) -> None:
    """Run ``step`` until ``stop``; a step that did a full batch runs again at once."""
    while not stop.is_set():
        try:
            done = await step()
        except Exception:
            log.exception("%s pass failed", name)
            done = 0
        if done:
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass


async def run(kassa: Kassa, *, roles: tuple[str, ...] = ROLES, interval: float = 2.0,
              stop: asyncio.Event | None = None, relay: Relay | None = None,
              relay_interval: float = 0.2, webhook_sender: WebhookSender | None = None,
              psp_webhooks_interval: float = 0.5,
              payouts: tuple[PayoutAdapter, payout_rail.RailPolicy] | None = None,
              payouts_interval: float = 2.0, payout_schedule_interval: float = 60.0,
              reconcile_pull: tuple[Mapping[str, SettlementReportSource],
                                    reconciliation_pull.PullPolicy] | None = None,
              reconcile_pull_interval: float = 300.0) -> None:
    stop = stop or asyncio.Event()
    tasks = []
    if "recovery" in roles:
        tasks.append(every(interval, lambda: recovery.recover_open_attempts(kassa),
                           "recovery", stop))
    if "availability" in roles:
        tasks.append(every(max(interval, 5.0), lambda: balances.release_available_funds(kassa),
                           "availability", stop))
    if "idempotency-expiry" in roles:
        tasks.append(every(60.0, lambda: idempotency.expire(kassa), "idempotency-expiry", stop))
        # the request log expires with the keys (both are a request's traces, kept for days)
        tasks.append(every(60.0, lambda: request_logs.expire(kassa), "request-log-expiry",
                           stop))
    if "relay" in roles and relay is not None:  # only when Kafka is configured (bootstrap)
        tasks.append(every(relay_interval, relay.pass_once, "relay", stop))
    if "webhooks" in roles and webhook_sender is not None:  # built by bootstrap
        tasks.append(webhook_sender.run(stop))
    if "psp-webhooks" in roles:  # inbound PSP events: any number of replicas (SKIP LOCKED)
        tasks.append(every(psp_webhooks_interval, lambda: psp_webhooks.apply_pending(kassa),
                           "psp-webhooks", stop))
    if "payouts" in roles and payouts is not None:  # the rail is wired by bootstrap
        rail, policy = payouts
        tasks.append(every(payouts_interval, lambda: payout_rail.advance_due_payouts(
            kassa, rail=rail, policy=policy), "payouts", stop))
    if "payout-schedule" in roles:  # automatic payouts: any number of replicas (unique periods)
        tasks.append(every(payout_schedule_interval,
                           lambda: payout_scheduler.schedule_payouts(kassa),
                           "payout-schedule", stop))
    if "reconcile-pull" in roles and reconcile_pull is not None:  # sources from bootstrap
        # any number of replicas: each account's day is claimed in the database
        sources, pull_policy = reconcile_pull
        worker = f"{socket.gethostname()}:{os.getpid()}:{id(stop):x}"
        tasks.append(every(reconcile_pull_interval,
                           lambda: reconciliation_pull.pull_settlement_reports(
                               kassa, sources=sources, policy=pull_policy, worker=worker),
                           "reconcile-pull", stop))
    if "ledger-checkpoints" in roles:  # any number of replicas (one writes at a time)
        tasks.append(every(max(interval, 5.0), lambda: balances.roll_checkpoints(kassa),
                           "ledger-checkpoints", stop))
    await asyncio.gather(*tasks)
