"""The payouts worker's step: hand pending payouts to the payout rail and follow each one
until the rail's verdict is final (paid, failed, or paid and then returned).

For each payout it claims (any number of workers: ``SKIP LOCKED`` plus a lease):

1. ``pending``: move it to ``in_transit`` in its own transaction first — from then on a
   cancel is refused, and a crash after this point is repaired by step 2 — then send it
   under its payout id (the rail keeps that unique, so repeating the send never pays twice).
2. ``in_transit`` or ``paid``: ask the rail what became of it; a rail that never received
   it is sent it (again); a ``paid`` payout is watched for returns for ``return_watch_s``.

The rail's answer becomes the legal moves from where the payout is (domain catch_up),
recorded with their money and events by services.payouts.record_moves. No transaction is
open while the rail is called. A refusal fails the payout (its money back to available);
an unreachable rail or an unknown outcome is tried again with backoff.

A rail that reports another amount or currency than the payout's is not followed: marking
it paid would book money that did not leave as it says, failing it would give the merchant
back money the bank may have paid. The payout is *held for review* (``review_reason``): it
keeps its status (so its money stays in payouts_in_transit, the truthful "sent, outcome in
question"), the worker stops, and an operator resolves it with the bank
(``kassa payouts review``). Stripe has no such state; it never lets a mismatch through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from kassa.db import payouts as payouts_db
from kassa.domain.bank_accounts import BankAccount
from kassa.domain.errors import IllegalTransition
from kassa.domain.payouts import FailureCode, Payout, PayoutStatus, catch_up
from kassa.payouts.base import (
    PayoutAdapter,
    PayoutInstruction,
    PayoutRefused,
    PayoutRetryable,
    RailTransfer,
    UnknownTransfer,
)
from kassa.secrets_box import SecretsBox, SecretsBoxError
from kassa.services import payout_numbers
from kassa.services.context import Kassa
from kassa.services.payouts import Moves, record_moves

Decide = Callable[[Payout], Moves]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RailPolicy:
    poll_s: float = 60.0  # first look at an in-transit payout; doubles while nothing changes
    backoff_cap_s: float = 6 * 3600.0
    return_watch_s: float = 10 * 24 * 3600.0  # a paid payout may still be returned this long
    lease_s: float = 120.0  # a claimed payout is hidden from other workers this long
    batch: int = 50


def _watched(p: Payout, policy: RailPolicy, now: int) -> bool:
    """Whether the rail may still change its mind about this payout."""
    if p.status in (PayoutStatus.FAILED, PayoutStatus.CANCELED):
        return False
    return not (p.status is PayoutStatus.PAID and now > p.arrival_date + policy.return_watch_s)


async def advance_due_payouts(kassa: Kassa, *, rail: PayoutAdapter,
                              policy: RailPolicy | None = None) -> int:
    """One pass: claim due payouts and take each a step; returns how many were claimed."""
    policy = policy or RailPolicy()
    async with kassa.pool.acquire() as conn, conn.transaction():
        claimed = await payouts_db.claim_due_payouts(conn, limit=policy.batch,
                                                     lease_s=policy.lease_s)
    for p in claimed:
        try:
            await advance_payout(kassa, p, rail=rail, policy=policy)
        except Exception:  # one payout's trouble never stops the others; its lease expires
            log.exception("payout %s: step failed", p.id)
    return len(claimed)


async def advance_payout(kassa: Kassa, p: Payout, *, rail: PayoutAdapter,
                         policy: RailPolicy) -> Payout:
    if p.status is PayoutStatus.PENDING:
        if await _unopenable(kassa, p):  # held before its money moves to in transit
            return p
        try:
            p = await _record(kassa, p, None, policy,
                              decide=lambda now: [(PayoutStatus.IN_TRANSIT, None)]
                              if now.status is PayoutStatus.PENDING else [])
        except IllegalTransition:
            return p
        if p.status is not PayoutStatus.IN_TRANSIT:
            return p  # canceled meanwhile
        return await _send(kassa, p, rail, policy)
    try:
        transfer = await rail.get(payout_id=p.id)
    except UnknownTransfer:
        if p.status is PayoutStatus.IN_TRANSIT:  # moved, then died before sending
            return await _send(kassa, p, rail, policy)
        log.error("payout %s is %s but the rail has no record of it", p.id, p.status)
        return await _postpone(kassa, p, policy)
    except PayoutRetryable:
        return await _postpone(kassa, p, policy)
    return await _apply(kassa, p, transfer, policy)


async def _opened(kassa: Kassa, box: SecretsBox, p: Payout,
                  destination: payouts_db.SealedDestination
                  ) -> BankAccount | None:
    """The destination with its full number; None, the payout held for review, if the
    number cannot be opened (its key version removed, a wrong key, a tampered row): no
    retry would open it, so an operator restores the key (or the merchant replaces the
    account) and resolves the review; nothing is sent and no money moves."""
    try:
        return payout_numbers.opened(
            box, destination_id=destination.id, merchant_id=destination.merchant_id,
            masked=destination.account, sealed=destination.sealed_number)
    except SecretsBoxError as exc:
        reason = (f"the number of bank account {destination.id} cannot be opened ({exc}); "
                  "restore its secrets key, then resolve this review")
        log.error("payout %s held for review: %s", p.id, reason)
        await payouts_db.hold_for_review(kassa.pool, payout_id=p.id, version=p.version,
                                         reason=reason)
        return None


async def _unopenable(kassa: Kassa, p: Payout) -> bool:
    """Whether a pending payout was held because its number cannot be opened (the other
    reasons not to send, no destination or no key at all, are _send's)."""
    destination = (await payouts_db.get_destination(kassa.pool, destination_id=p.destination)
                   if p.destination else None)
    if destination is None or kassa.secrets is None:
        return False
    return await _opened(kassa, kassa.secrets, p, destination) is None


async def _send(kassa: Kassa, p: Payout, rail: PayoutAdapter, policy: RailPolicy) -> Payout:
    destination = (await payouts_db.get_destination(kassa.pool, destination_id=p.destination)
                   if p.destination else None)
    if destination is None:
        return await _fail(kassa, p, FailureCode.NO_ACCOUNT, policy)
    if kassa.secrets is None:  # the number stays sealed: try again once a key is configured
        log.error("payout %s: no secrets key to open its bank account's number", p.id)
        return await _postpone(kassa, p, policy)
    # the full number is opened here only, for the bank call (payouts/payout_numbers.py)
    account = await _opened(kassa, kassa.secrets, p, destination)
    if account is None:
        return p
    try:
        transfer = await rail.send(PayoutInstruction(
            payout_id=p.id, amount=p.amount, destination=account,
            description=p.description, statement_descriptor=p.statement_descriptor))
    except PayoutRefused as exc:
        log.warning("payout %s refused by the rail: %s", p.id, exc)
        # another worker (whose lease this one took over, or the other way round) may have
        # sent it already: failing now would give the money back while the bank pays it
        try:
            held = await rail.get(payout_id=p.id)
        except UnknownTransfer:
            return await _fail(kassa, p, exc.failure_code or FailureCode.COULD_NOT_PROCESS,
                               policy)
        except PayoutRetryable:
            return await _postpone(kassa, p, policy)
        return await _apply(kassa, p, held, policy)
    except PayoutRetryable:
        return await _postpone(kassa, p, policy)
    return await _apply(kassa, p, transfer, policy)


async def _apply(kassa: Kassa, p: Payout, transfer: RailTransfer,
                 policy: RailPolicy) -> Payout:
    if transfer.amount != p.amount:
        reason = (f"the rail ({transfer.rail_reference}) reports {transfer.amount} "
                  f"{transfer.status.value}; the payout is {p.amount}")
        log.error("payout %s held for review: %s", p.id, reason)
        await payouts_db.hold_for_review(kassa.pool, payout_id=p.id, version=p.version,
                                    reason=reason)
        return p
    def decide(now: Payout) -> Moves:
        return [(dst, transfer.failure_code if dst is PayoutStatus.FAILED else None)
                for dst in catch_up(now.status, transfer.status)]

    arrival = _midnight(transfer.arrival_date) if transfer.arrival_date else None
    after = await _record(kassa, p, transfer, policy, decide=decide, arrival_date=arrival)
    if after.version == p.version:  # no news: look again later
        return await _postpone(kassa, after, policy)
    return after


async def _fail(kassa: Kassa, p: Payout, code: FailureCode, policy: RailPolicy) -> Payout:
    return await _record(kassa, p, None, policy,
                         decide=lambda now: [(PayoutStatus.FAILED, code)]
                         if now.status is PayoutStatus.IN_TRANSIT else [])


async def _record(kassa: Kassa, p: Payout, transfer: RailTransfer | None, policy: RailPolicy,
                  *, decide: Decide, arrival_date: int | None = None) -> Payout:
    now = kassa.clock()
    return await record_moves(
        kassa, merchant_id=p.merchant_id, payout_id=p.id, decide=decide,
        next_check_in_s=lambda after: policy.poll_s if _watched(after, policy, now) else None,
        arrival_date=arrival_date, trace_id=transfer.rail_reference if transfer else None)


async def _postpone(kassa: Kassa, p: Payout, policy: RailPolicy) -> Payout:
    """Look again later, backing off while nothing changes; stop once nothing can."""
    await payouts_db.postpone_payout(kassa.pool, payout_id=p.id, version=p.version,
                                     first_s=policy.poll_s, cap_s=policy.backoff_cap_s,
                                     stop=not _watched(p, policy, kassa.clock()))
    return p


def _midnight(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())
