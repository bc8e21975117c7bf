"""Hypothesis over kassa's real services and PostgreSQL: the settings such a property runs
with (async examples on the session's loop, slow by nature, no example database), and the
guard that every example really ran."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import hypothesis
from hypothesis import HealthCheck

# examples per property (KASSA_PROPERTY_EXAMPLES raises it for a long run)
MAX_EXAMPLES = int(os.environ.get("KASSA_PROPERTY_EXAMPLES", "15"))


@dataclass(frozen=True)
class Pay:
    """A step of a money property: merchant ``merchant`` takes a payment."""
    merchant: int
    currency: str
    amount: int


@dataclass(frozen=True)
class Refund:
    """A step: ``percent`` of payment ``payment`` (an index into those taken) refunded."""
    payment: int
    percent: int


@dataclass(frozen=True)
class Dispute:
    """A step: the cardholder's bank charges back payment ``payment`` (an index into those
    taken) and the chargeback stays open, or the issuer decides it ``won`` or ``lost``;
    ``refunded_first`` percent of what the payment holds is refunded just before (0: none),
    so the chargeback takes what partial refunds left."""
    payment: int
    outcome: str  # "open" | "won" | "lost"
    refunded_first: int = 0


DISPUTE_OUTCOMES = ("open", "won", "lost")


def async_property(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(max_examples=max_examples, deadline=None, database=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


def examples_guard(ran: list[int], minimum: int) -> Iterator[list[int]]:
    """A module fixture's body: after the property, at least ``minimum`` examples must have
    appended to ``ran`` (an async wiring that silently ran none proves nothing); fails at
    teardown otherwise."""
    ran.clear()
    yield ran
    assert len(ran) >= minimum, f"only {len(ran)} examples ran"
