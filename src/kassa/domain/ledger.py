"""Double-entry posting rules: which accounts move, and by how much, for each money event.

Sign convention: a positive amount is a debit, a negative amount a credit. Every
transaction sums to zero per currency and per layer. The ``pending`` layer carries
authorisation holds (two-phase transfers as in TigerBeetle); ``posted`` is settled money.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from kassa.domain import fx
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


def _balanced(kind: TxKind, entries: list[Entry]) -> Posting:
    """The posting of ``entries``, with the ``fx:<ccy>`` trading entries that balance each
    currency on its own when they span two (domain/fx.py); one currency: as given."""
    return Posting(kind, _nonzero(fx.bridge(entries, Entry)))


# Cross-currency postings (domain/fx.py): the PSP receivable is in the presentment
# currency (``amount``, ``gross``, ``held``), the merchant's accounts and fees in the
# settlement currency (``settled``, ``held_settled``, ``fee``); ``gain_loss`` is the
# operator's realised FX difference (debit = loss). Without them everything is in one
# currency and the postings are exactly the single-currency ones.


def authorization_hold(*, merchant_id: str, psp: str, amount: Money,
                       settled: Money | None = None) -> Posting:
    return _balanced(TxKind.HOLD, [
        Entry(psp_receivable(psp), amount, Layer.PENDING),
        Entry(merchant_pending(merchant_id), -(settled or amount), Layer.PENDING),
    ])


def _release(merchant_id: str, psp: str, held: Money, settled: Money | None = None
             ) -> list[Entry]:
    return [
        Entry(psp_receivable(psp), -held, Layer.PENDING),
        Entry(merchant_pending(merchant_id), settled or held, Layer.PENDING),
    ]


def authorization_release(*, merchant_id: str, psp: str, held: Money,
                          settled: Money | None = None) -> Posting:
    return _balanced(TxKind.HOLD_RELEASE, _release(merchant_id, psp, held, settled))


def capture(*, merchant_id: str, psp: str, gross: Money, fee: Money,
            held: Money | None = None, settled: Money | None = None,
            held_settled: Money | None = None) -> Posting:
    """Dr psp receivable gross / Cr merchant pending gross-fee / Cr revenue:fees fee.

    With ``held`` (manual capture) the same transaction releases the whole hold, so a
    partial capture posts what was captured and frees the rest in one step.
    """
    net = (settled or gross) - fee
    entries = [
        Entry(psp_receivable(psp), gross),
        Entry(merchant_pending(merchant_id), -net),
        Entry(REVENUE_FEES, -fee),
    ]
    if held is not None:
        entries += _release(merchant_id, psp, held, held_settled)
    return _balanced(TxKind.CAPTURE, entries)


def capture_reversal(captured: tuple[Entry, ...]) -> Posting:
    """The exact mirror of a capture's settled (posted-layer) entries: what the capture
    credited the merchant and fee revenue is taken back from them, and the PSP receivable
    it debited is credited (and its trading entries, if it converted). Its hold release is
    not undone here: a hold that is valid again is posted anew (:func:`authorization_hold`),
    so each hold resolves once."""
    return Posting(TxKind.CAPTURE_REVERSAL, tuple(
        Entry(e.account, -e.amount, e.layer) for e in captured if e.layer is Layer.POSTED))


def _gain_loss(gain_loss: Money | None) -> list[Entry]:
    return [] if gain_loss is None else [Entry(fx.FX_GAIN_LOSS, gain_loss)]


def refund(*, merchant_id: str, psp: str, amount: Money, settled: Money | None = None,
           gain_loss: Money | None = None) -> Posting:
    return _balanced(TxKind.REFUND, [
        Entry(merchant_available(merchant_id), settled or amount),
        Entry(psp_receivable(psp), -amount),
        *_gain_loss(gain_loss),
    ])


def refund_reversal(*, merchant_id: str, psp: str, amount: Money,
                    settled: Money | None = None, gain_loss: Money | None = None) -> Posting:
    return _balanced(TxKind.REFUND_REVERSAL, [
        Entry(psp_receivable(psp), amount),
        Entry(merchant_available(merchant_id), -(settled or amount)),
        *_gain_loss(None if gain_loss is None else -gain_loss),
    ])


def make_available(*, merchant_id: str, net: Money) -> Posting:
    return Posting(TxKind.AVAILABILITY, (
        Entry(merchant_pending(merchant_id), net),
        Entry(merchant_available(merchant_id), -net),
    ))


def dispute(*, merchant_id: str, psp: str, amount: Money, fee: Money,
            settled: Money | None = None, gain_loss: Money | None = None) -> Posting:
    """Chargeback: Dr merchant available amount+fee / Cr psp receivable amount /
    Cr revenue:fees fee (the issuer pulls the amount back from the PSP)."""
    return _balanced(TxKind.DISPUTE, [
        Entry(merchant_available(merchant_id), (settled or amount) + fee),
        Entry(psp_receivable(psp), -amount),
        Entry(REVENUE_FEES, -fee),
        *_gain_loss(gain_loss),
    ])


def dispute_reversal(*, merchant_id: str, psp: str, amount: Money, fee: Money,
                     settled: Money | None = None, gain_loss: Money | None = None
                     ) -> Posting:
    """Dispute won: the exact mirror of :func:`dispute`, fee included (Stripe returns the
    dispute fee when the merchant wins)."""
    return _balanced(TxKind.DISPUTE_REVERSAL, [
        Entry(psp_receivable(psp), amount),
        Entry(REVENUE_FEES, fee),
        Entry(merchant_available(merchant_id), -((settled or amount) + fee)),
        *_gain_loss(None if gain_loss is None else -gain_loss),
    ])


def settlement(*, psp: str, gross: Money, fee: Money, settled: Money | None = None,
               traded: Money | None = None) -> Posting:
    """A PSP's settlement of report rows: Dr bank:cash net, Dr expense:psp_fees fee /
    Cr psp receivable gross (a negative gross — refunds, chargebacks — debits it back).

    Converted by the PSP (``settled``: the gross it paid in another currency, ``fee`` in
    that currency too): the receivable is credited in the presentment currency and the bank
    and fee are debited in the settlement currency, the ``fx:<ccy>`` trading entries
    balancing each currency on its own. ``traded`` is ``gross`` at the PSP's rate (what the
    trading legs carry, so verify can prove them against that rate); what the PSP paid
    beyond it (its per-row rounding) is the operator's FX gain, short of it a loss.
    """
    if (settled is None) != (traded is None):
        raise ValueError("a converted settlement has both its settled and traded amounts")
    received = settled or gross
    entries = [Entry(BANK_CASH, received - fee), Entry(EXPENSE_PSP_FEES, fee),
               Entry(psp_receivable(psp), -gross)]
    if settled is not None and traded is not None:
        entries.append(Entry(fx.FX_GAIN_LOSS, traded - settled))
        if traded.minor == 0:
            # the gross is worth less than a minor unit at the rate (a day's charges and
            # refunds that nearly cancel): no trade to prove; it is an FX difference in its
            # own currency, so each currency still balances with no trading leg
            entries.append(Entry(fx.FX_GAIN_LOSS, gross))
    return _balanced(TxKind.SETTLEMENT, entries)
