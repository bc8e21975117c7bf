"""The router: a merchant's active routing configuration, the measured success rates and
the circuit breakers turned into the accounts an authorisation goes to, in order.

The policy is pure (domain/routing.py); this module adds what changes at run time. A
merchant without an active configuration routes to the default account, as before.
Active configurations are read per process as one snapshot, at most ``cache_seconds`` old
(an activation reaches every replica within that), so the hot path reads no routing row
per payment.

Circuit breakers steer, they never refuse: the first account whose breaker allows a call
is tried first; when every eligible account's breaker is open the payment goes to the
first one anyway (one account down behaves as it did before routing existed: the attempt
is made, and recovery resolves it).

A PSP's own token (``<account>:<token>``, domain/psp_tokens.py) pins the payment: the plan
is that account alone, before any configuration is read, with no failover (no other
account can charge the token); the service checked the account before planning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from kassa.db import routing_configs as routing_db
from kassa.domain import psp_tokens
from kassa.domain.payments import PaymentIntent
from kassa.domain.routing import (
    DEFAULT_RULE,
    Decision,
    PaymentFacts,
    RoutingPolicy,
    match,
    order,
    parse_policy,
    pinned,
)
from kassa.psp.base import Card, PSPAdapter
from kassa.psp.monitor import PSPMonitor


class PolicyRouter:
    def __init__(self, psps: Mapping[str, PSPAdapter], default: str, *,
                 pool: asyncpg.Pool | None, monitor: PSPMonitor,
                 exploration_percent: float = 5.0, cache_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if default not in psps:
            raise ValueError(f"default PSP {default!r} is not configured ({sorted(psps)})")
        self._psps = psps
        self._default = default
        self._pool = pool
        self.monitor = monitor
        self.exploration_percent = exploration_percent
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._snapshot: dict[str, RoutingPolicy] = {}
        self._parsed_by_id: dict[str, RoutingPolicy] = {}
        self._expires = float("-inf")
        self._refreshing = asyncio.Lock()

    @property
    def default(self) -> str:
        return self._default

    def choose(self, payment: PaymentIntent) -> PSPAdapter:
        """The default account (callers that do not route: nothing on the payment path)."""
        return self._psps[self._default]

    def forget(self) -> None:
        """Read the active configurations again on the next payment."""
        self._expires = float("-inf")

    async def policy(self, merchant_id: str) -> RoutingPolicy | None:
        """The merchant's active policy, from a snapshot of every active configuration
        that is at most ``cache_seconds`` old: one query per process per period, however
        many merchants pay (a query per merchant per period measured 0.1 round trips per
        payment with 50 merchants at 100 payments/s)."""
        if self._pool is None:
            return None
        if self._cache_seconds <= 0:
            row = await routing_db.get_active(self._pool, merchant_id)
            return None if row is None else self._parsed(row)
        if self._clock() >= self._expires:
            async with self._refreshing:  # one refresh at a time; the others wait for it
                if self._clock() >= self._expires:
                    rows = await routing_db.active_configs(self._pool)
                    self._snapshot = {r["merchant_id"]: self._parsed(r) for r in rows}
                    self._expires = self._clock() + self._cache_seconds
        return self._snapshot.get(merchant_id)

    def _parsed(self, row: Mapping[str, Any]) -> RoutingPolicy:
        """Stored configurations are immutable: each id is parsed once per process."""
        policy = self._parsed_by_id.get(row["id"])
        if policy is None:
            policy = parse_policy(rules=row["rules"], default_route=row["default_route"])
            self._parsed_by_id[row["id"]] = policy
        return policy

    def _usable(self, name: str, payment: PaymentIntent | None = None) -> bool:
        """An account a new authorisation may go to: configured and enabled; a merchant's
        own account only for that merchant's payments in a currency it takes (with no
        ``payment``: as checked when the payment was planned)."""
        routable = getattr(self._psps, "routable", None)
        if routable is not None:
            if payment is None:
                return bool(routable(name))
            return bool(routable(name, merchant_id=payment.merchant_id,
                                 currency=payment.amount.currency))
        if name not in self._psps:
            return False
        enabled = getattr(self._psps, "enabled", None)
        return True if enabled is None else bool(enabled(name))

    async def plan(self, payment: PaymentIntent, card: Card | None) -> Decision:
        """Where this authorisation goes: ``psps[0]`` now, the rest (in order) only if it
        provably was not processed there."""
        account = psp_tokens.account_of(payment.payment_method)
        if account is not None:  # only that account can charge it: no steering, no failover
            decision = pinned(account)
            self.monitor.count_decision(rule=decision.rule, strategy=decision.strategy,
                                        psp=account, explored=False)
            return decision
        policy = await self.policy(payment.merchant_id)
        if policy is None:
            decision = Decision(rule=DEFAULT_RULE, strategy="single", psps=(self._default,))
        else:
            facts = PaymentFacts(
                payment_id=payment.id, amount=payment.amount,
                capture_method=payment.capture_method, metadata=payment.metadata or {},
                card_brand=None if card is None else card.brand,
                card_country=None if card is None else card.country)
            rule, route = match(policy, facts)
            scores = None
            if route.strategy == "success_rate":
                scores = self.monitor.scoreboard.scores(
                    route.psps, currency=payment.amount.currency, brand=facts.card_brand)
            psps, explored = order(route, payment.id, scores=scores,
                                   exploration_percent=self.exploration_percent)
            refresh = getattr(self._psps, "refresh", None)
            if refresh is not None:  # merchants' own accounts, as they are now
                await refresh(psps)
            # none usable (disabled, or none takes the currency): the platform's default,
            # as a payment of a merchant without a configuration goes
            usable = tuple(p for p in psps if self._usable(p, payment)) or (self._default,)
            decision = Decision(rule=rule, strategy=route.strategy, psps=usable,
                                explored=explored)
        decision = self._steer(decision)
        self.monitor.count_decision(rule=decision.rule, strategy=decision.strategy,
                                    psp=decision.psps[0], explored=decision.explored)
        return decision

    def _steer(self, decision: Decision) -> Decision:
        """The first account whose breaker allows a call goes first (taking its probe
        slot when half-open); the others keep their order behind it."""
        for name in decision.psps:
            if self.monitor.breaker(name).allow():
                if name == decision.psps[0]:
                    return decision
                rest = tuple(p for p in decision.psps if p != name)
                return Decision(rule=decision.rule, strategy=decision.strategy,
                                psps=(name, *rest), explored=decision.explored)
        return decision

    def fallback(self, decision: Decision, tried: Sequence[str]) -> str | None:
        """The next account to fail over to after ``tried`` (each provably did not process
        the attempt): the next in the decision's order whose breaker allows a call.
        None for a pinned payment: no other account can charge its token."""
        if decision.pinned:
            return None
        for name in decision.psps:
            if name not in tried and self._usable(name) and self.monitor.breaker(name).allow():
                return name
        return None

    def failed_over(self, from_psp: str, to_psp: str, reason: str) -> None:
        self.monitor.count_failover(from_psp, to_psp, reason)
