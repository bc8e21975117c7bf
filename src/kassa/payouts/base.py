"""The contract every payout rail satisfies (the bank simulator, a real bank's API, a PSP's
payout API): one async Protocol over small dataclasses, statuses already mapped to kassa's.

Each transfer is sent under kassa's payout id, which the rail keeps unique: sending the same
payout again (after a crash, a timeout, a lost answer) returns the transfer the rail already
has and never pays twice. The rail's own statuses are mapped to :class:`PayoutStatus`
(``in_transit``, ``paid``, ``failed``) inside each adapter's module and nowhere else.

    PayoutRailError
     ├── PayoutRefused          the rail refused the instruction itself (4xx): nothing was
     │                          sent; repeating it will not help (a rail that already holds
     │                          a transfer under the payout id is never "refused")
     ├── PayoutRetryable        repeating the call with the same payout id is safe
     │    ├── PayoutRailUnavailable  provably not received (connection refused)
     │    └── PayoutOutcomeUnknown   may have been received: 5xx, reset, unreadable answer;
     │         │                     ask with ``get``, or send again
     │         └── PayoutTimeout     no answer in time
     └── UnknownTransfer        ``get``: the rail never received this payout (sending is safe)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

from kassa.domain.bank_accounts import BankAccount
from kassa.domain.money import Money
from kassa.domain.payouts import FailureCode, PayoutStatus


class PayoutRailError(Exception):
    pass


class PayoutRefused(PayoutRailError):
    """The rail refused the instruction (an invalid destination); nothing moved.
    ``failure_code`` says why in Stripe's terms, when known."""

    def __init__(self, message: str, *, failure_code: FailureCode | None = None):
        super().__init__(message)
        self.failure_code = failure_code


class PayoutRetryable(PayoutRailError):
    """The call may be repeated with the same payout id."""


class PayoutRailUnavailable(PayoutRetryable):
    """Provably not received (connection refused, DNS failure)."""


class PayoutOutcomeUnknown(PayoutRetryable):
    """The rail may have received the transfer; ``get`` or a repeat resolves it."""


class PayoutTimeout(PayoutOutcomeUnknown):
    """No answer in time."""


class UnknownTransfer(PayoutRailError):
    """The rail has no transfer for this payout id: it never arrived."""


RAIL_STATUSES = frozenset({PayoutStatus.IN_TRANSIT, PayoutStatus.PAID, PayoutStatus.FAILED})


@dataclass(frozen=True, slots=True)
class PayoutInstruction:
    """What kassa asks the rail to pay: ``payout_id`` is also the rail's idempotency key."""

    payout_id: str
    amount: Money
    destination: BankAccount
    description: str | None = None
    statement_descriptor: str | None = None


@dataclass(frozen=True, slots=True)
class RailTransfer:
    """The rail's view of one payout, mapped to kassa's statuses."""

    payout_id: str
    rail_reference: str  # the rail's own id for the transfer
    status: PayoutStatus  # one of RAIL_STATUSES
    amount: Money
    arrival_date: date | None = None  # when the money is (expected to be) in the account
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    returned: bool = False  # failed after it had been paid: the receiving bank sent it back

    def __post_init__(self) -> None:
        if self.status not in RAIL_STATUSES:
            raise ValueError(f"a rail reports in_transit, paid or failed, not {self.status}")
        if (self.status is PayoutStatus.FAILED) != (self.failure_code is not None):
            raise ValueError("a failed transfer has a failure code, and only a failed one")


@runtime_checkable
class PayoutAdapter(Protocol):
    """A payout rail. Sending is idempotent by payout id; ``get`` answers what became of it
    (polled by the payouts worker, so a lost callback never leaves a payout unresolved)."""

    name: str

    async def send(self, instruction: PayoutInstruction) -> RailTransfer:
        """Hand the payout to the rail; a repeat returns the transfer it already has."""
        ...

    async def get(self, *, payout_id: str) -> RailTransfer:
        """What became of the payout; raises UnknownTransfer if the rail never received it."""
        ...
