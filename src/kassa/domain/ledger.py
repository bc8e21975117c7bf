"""Double-entry posting rules: which accounts move, and by how much, for each money event.

Sign convention: a positive amount is a debit, a negative amount a credit. Every
transaction sums to zero per currency and per layer. The ``pending`` layer carries
authorisation holds (two-phase transfers as in TigerBeetle); ``posted`` is settled money.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from kassa.domain.money import Money


class Layer(StrEnum):
    POSTED = "posted"
    PENDING = "pending"  # authorisation holds: reserved, not yet money


class TxKind(StrEnum):
    HOLD = "authorization_hold"
    HOLD_RELEASE = "authorization_release"  # void or expiry of a hold
    CAPTURE = "capture"  # posts a hold (manual) or a direct auth+capture (automatic)
    CAPTURE_REVERSAL = "capture_reversal"  # the scheme rejected a booked capture: mirrored
    REFUND = "refund"
    REFUND_REVERSAL = "refund_reversal"  # refund failed after it was posted
    AVAILABILITY = "availability"  # merchant pending -> available after settlement delay
    DISPUTE = "dispute"  # chargeback: disputed amount plus dispute fee taken from the merchant
    DISPUTE_REVERSAL = "dispute_reversal"  # dispute won: amount and fee returned
    PAYOUT = "payout"  # merchant available -> payouts in transit (domain/payouts.py)
    PAYOUT_PAID = "payout_paid"  # payouts in transit -> bank cash: the bank paid it
    PAYOUT_FAILURE = "payout_failure"  # failed (or returned after paid): back to available
    PAYOUT_CANCEL = "payout_cancel"  # canceled while pending: back to available
    SETTLEMENT = "settlement"  # a PSP's settlement report: receivable -> bank cash + fees


def merchant_pending(merchant_id: str) -> str:
    return f"merchant:{merchant_id}:pending"


def merchant_available(merchant_id: str) -> str:
    return f"merchant:{merchant_id}:available"


def merchant_payouts_in_transit(merchant_id: str) -> str:
    return f"merchant:{merchant_id}:payouts_in_transit"


def psp_receivable(psp: str) -> str:
    return f"psp:{psp}:receivable"


REVENUE_FEES = "revenue:fees"
EXPENSE_PSP_FEES = "expense:psp_fees"
BANK_CASH = "bank:cash"


@dataclass(frozen=True, slots=True)
class Entry:
    account: str
    amount: Money  # signed: debit > 0, credit < 0
    layer: Layer = Layer.POSTED


class UnbalancedTransaction(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Posting:
    """A ledger transaction before it is written: kind plus balanced entries."""

    kind: TxKind
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if len(self.entries) < 2:
            raise UnbalancedTransaction("a ledger transaction needs at least two entries")
        sums: dict[tuple[str, Layer], int] = defaultdict(int)
        for e in self.entries:
            sums[(e.amount.currency, e.layer)] += e.amount.minor
        bad = {k: v for k, v in sums.items() if v != 0}
        if bad:
            raise UnbalancedTransaction(f"entries do not sum to zero: {bad}")


def _nonzero(entries: list[Entry]) -> tuple[Entry, ...]:
    return tuple(e for e in entries if e.amount.minor != 0)


def authorization_hold(*, merchant_id: str, psp: str, amount: Money) -> Posting:
    return Posting(TxKind.HOLD, (
        Entry(psp_receivable(psp), amount, Layer.PENDING),
        Entry(merchant_pending(merchant_id), -amount, Layer.PENDING),
    ))


def _release(merchant_id: str, psp: str, held: Money) -> list[Entry]:
    return [
        Entry(psp_receivable(psp), -held, Layer.PENDING),
        Entry(merchant_pending(merchant_id), held, Layer.PENDING),
    ]


def authorization_release(*, merchant_id: str, psp: str, held: Money) -> Posting:
    return Posting(TxKind.HOLD_RELEASE, tuple(_release(merchant_id, psp, held)))


def capture(*, merchant_id: str, psp: str, gross: Money, fee: Money,
            held: Money | None = None) -> Posting:
    """Dr psp receivable gross / Cr merchant pending gross-fee / Cr revenue:fees fee.

    With ``held`` (manual capture) the same transaction releases the whole hold, so a
    partial capture posts what was captured and frees the rest in one step.
    """
    entries = [
        Entry(psp_receivable(psp), gross),
        Entry(merchant_pending(merchant_id), -(gross - fee)),
        Entry(REVENUE_FEES, -fee),
    ]
    if held is not None:
        entries += _release(merchant_id, psp, held)
    return Posting(TxKind.CAPTURE, _nonzero(entries))


def capture_reversal(captured: tuple[Entry, ...]) -> Posting:
    """The exact mirror of a capture's settled (posted-layer) entries: what the capture
    credited the merchant and fee revenue is taken back from them, and the PSP receivable
    it debited is credited. Its hold release is not undone here: a hold that is valid
    again is posted anew (:func:`authorization_hold`), so each hold resolves once."""
    return Posting(TxKind.CAPTURE_REVERSAL, tuple(
        Entry(e.account, -e.amount, e.layer) for e in captured if e.layer is Layer.POSTED))


def refund(*, merchant_id: str, psp: str, amount: Money) -> Posting:
    return Posting(TxKind.REFUND, (
        Entry(merchant_available(merchant_id), amount),
        Entry(psp_receivable(psp), -amount),
    ))


def refund_reversal(*, merchant_id: str, psp: str, amount: Money) -> Posting:
    return Posting(TxKind.REFUND_REVERSAL, (
        Entry(psp_receivable(psp), amount),
        Entry(merchant_available(merchant_id), -amount),
    ))


def make_available(*, merchant_id: str, net: Money) -> Posting:
    return Posting(TxKind.AVAILABILITY, (
        Entry(merchant_pending(merchant_id), net),
        Entry(merchant_available(merchant_id), -net),
    ))


def dispute(*, merchant_id: str, psp: str, amount: Money, fee: Money) -> Posting:
    """Chargeback: Dr merchant available amount+fee / Cr psp receivable amount /
    Cr revenue:fees fee (the issuer pulls the amount back from the PSP)."""
    return Posting(TxKind.DISPUTE, _nonzero([
        Entry(merchant_available(merchant_id), amount + fee),
        Entry(psp_receivable(psp), -amount),
        Entry(REVENUE_FEES, -fee),
    ]))


def dispute_reversal(*, merchant_id: str, psp: str, amount: Money, fee: Money) -> Posting:
    """Dispute won: the exact mirror of :func:`dispute`, fee included (Stripe returns the
    dispute fee when the merchant wins)."""
    return Posting(TxKind.DISPUTE_REVERSAL, _nonzero([
        Entry(psp_receivable(psp), amount),
        Entry(REVENUE_FEES, fee),
        Entry(merchant_available(merchant_id), -(amount + fee)),
    ]))
