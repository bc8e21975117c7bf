"""The journal: each money event's ledger transaction as a unit of work writes it.

The posting rules (which accounts, which layer, which signs) are the domain's
(domain/ledger.py); this module turns one into the ``PostLedger`` op of db/ops.py together
with the balance transaction the merchant sees for it, so that the two always travel as a
pair (kassa_apply stores the ledger transaction's id on the balance transaction). Services
queue the result on their unit of work: ``uow.add(journal.capture(...))``. Nothing here
reads the clock or mints ids: the caller passes them.
"""

from __future__ import annotations

from decimal import Decimal

from kassa.db import ops
from kassa.domain import fx, ledger
from kassa.domain.fx import Conversion
from kassa.domain.ledger import Entry, Posting
from kassa.domain.money import Money
from kassa.domain.payments import Refund
from kassa.domain.payouts import Payout, PayoutMove


def hold(*, merchant_id: str, psp: str, amount: Money, attempt_id: str,
         conversion: Conversion | None = None) -> ops.PostLedger:
    """An authorisation's hold (pending layer), sourced by its attempt; converted into the
    merchant's settlement currency when the payment has a ``conversion``."""
    settled = None if conversion is None else conversion.settle(amount)
    return ops.PostLedger(
        ledger.authorization_hold(merchant_id=merchant_id, psp=psp, amount=amount,
                                  settled=settled),
        merchant_id=merchant_id, source_id=attempt_id, exchange_rate=_rate(conversion))


def release_hold(*, merchant_id: str, psp: str, held: Money, charge_id: str,
                 conversion: Conversion | None = None) -> ops.PostLedger:
    """The authorisation is void at the PSP: its hold is released (once: hold_ref)."""
    settled = None if conversion is None else conversion.settle(held)
    return ops.PostLedger(
        ledger.authorization_release(merchant_id=merchant_id, psp=psp, held=held,
                                     settled=settled),
        merchant_id=merchant_id, source_id=charge_id, hold_ref=charge_id,
        exchange_rate=_rate(conversion))


def capture(*, merchant_id: str, psp: str, gross: Money, fee: Money, held: Money | None,
            payment_id: str, charge_id: str | None, bt_id: str, now: int,
            available_on: int | None, description: str | None,
            hold_ref: str | None = None, conversion: Conversion | None = None
            ) -> ops.PostLedger:
    """A capture (resolving the charge's hold when ``held``: ``hold_ref``, else the
    charge's own) and its ``charge`` balance transaction, pending until ``available_on``.
    With a ``conversion`` the balance transaction's amount is the settled one (``fee`` is
    in the settlement currency already) and carries the rate."""
    settled = gross if conversion is None else conversion.settle(gross)
    held_settled = None if conversion is None or held is None else conversion.settle(held)
    return ops.PostLedger(
        ledger.capture(merchant_id=merchant_id, psp=psp, gross=gross, fee=fee, held=held,
                       settled=settled, held_settled=held_settled),
        merchant_id=merchant_id, source_id=payment_id,
        hold_ref=(hold_ref or charge_id) if held is not None else None,
        exchange_rate=_rate(conversion),
        balance_transaction=ops.InsertBalanceTransaction(
            id=bt_id, merchant_id=merchant_id, amount=settled.minor, fee=fee.minor,
            currency=settled.currency, type="charge", source=charge_id or payment_id,
            status="pending", available_on=available_on, created=now,
            description=description, exchange_rate=_rate(conversion)))


def capture_reversal(captured: tuple[Entry, ...], *, merchant_id: str, source_id: str,
                     charge_id: str, bt_id: str, now: int,
                     exchange_rate: Decimal | None = None) -> ops.PostLedger:
    """A capture the scheme rejected after it was booked: its posted entries mirrored
    (domain/ledger.capture_reversal), with a ``payment_failure_refund`` balance transaction
    that takes back the charge's amount and fee (pending like the charge was, so the
    merchant's pending and available balances each net to zero once both are due). A
    converted capture's trading entries are mirrored too, at its rate."""
    posting = ledger.capture_reversal(captured)
    merchant = ledger.merchant_pending(merchant_id)
    mine = [e for e in posting.entries if e.account == merchant]
    net = sum(e.amount.minor for e in mine)
    fee = sum(e.amount.minor for e in posting.entries if e.account == ledger.REVENUE_FEES)
    currency = (mine or list(posting.entries))[0].amount.currency
    return ops.PostLedger(
        posting, merchant_id=merchant_id, source_id=source_id, exchange_rate=exchange_rate,
        balance_transaction=ops.InsertBalanceTransaction(
            id=bt_id, merchant_id=merchant_id, amount=-(net + fee), fee=-fee,
            currency=currency, type="payment_failure_refund", source=charge_id,
            status="pending", available_on=None, created=now,
            description="CAPTURE REJECTED BY THE CARD SCHEME", exchange_rate=exchange_rate))


def _back(amount: Money, conversion: Conversion | None, current: Decimal | None,
          settled: Money | None = None
          ) -> tuple[Money | None, Money | None, Decimal | None]:
    """What a refund (or dispute debit) of ``amount`` takes from the merchant (the original
    rate; ``settled`` when the caller fixed it: a refund's share of the converted running
    total), the operator's FX loss (> 0) or gain (< 0) against the ``current`` rate, and
    the rate of the trading entries (domain/fx.py)."""
    if conversion is None:
        return None, None, None
    if settled is None:
        settled = conversion.settle(amount)
    trading = current if current is not None else conversion.rate
    at_trading = fx.convert(amount, trading, conversion.settlement)
    return settled, at_trading - settled, trading


def refund(r: Refund, *, psp: str, bt_id: str, now: int,
           conversion: Conversion | None = None, current: Decimal | None = None,
           settled: Money | None = None) -> ops.PostLedger:
    """A refund the PSP made, and its ``refund`` balance transaction; converted at the
    payment's original rate (``settled``: what the caller computed it takes), the FX
    difference against ``current`` to fx gain/loss."""
    settled, gain_loss, trading = _back(r.amount, conversion, current, settled)
    line = settled or r.amount
    return ops.PostLedger(
        ledger.refund(merchant_id=r.merchant_id, psp=psp, amount=r.amount, settled=settled,
                      gain_loss=gain_loss),
        merchant_id=r.merchant_id, source_id=r.id, exchange_rate=trading,
        balance_transaction=_available(bt_id, r.merchant_id, -line.minor, line.currency,
                                       "refund", r.id, now, "REFUND FOR PAYMENT",
                                       _rate(conversion)))


def refund_failure(r: Refund, *, psp: str, bt_id: str, now: int,
                   conversion: Conversion | None = None, current: Decimal | None = None,
                   settled: Money | None = None) -> ops.PostLedger:
    """A refund that succeeded failed later at the PSP: its posting reversed, and a
    ``refund_failure`` balance transaction (the merchant gets back what the refund took;
    the trading legs are at the ``current`` rate, the difference to fx gain/loss;
    ``settled``: what the refund's own posting took)."""
    settled, gain_loss, trading = _back(r.amount, conversion, current, settled)
    line = settled or r.amount
    return ops.PostLedger(
        ledger.refund_reversal(merchant_id=r.merchant_id, psp=psp, amount=r.amount,
                               settled=settled, gain_loss=gain_loss),
        merchant_id=r.merchant_id, source_id=r.id, exchange_rate=trading,
        balance_transaction=_available(bt_id, r.merchant_id, line.minor, line.currency,
                                       "refund_failure", r.id, now, "REFUND FAILURE",
                                       _rate(conversion)))


def _rate(conversion: Conversion | None) -> Decimal | None:
    return None if conversion is None else conversion.rate


def make_available(*, merchant_id: str, net: Money, source_id: str) -> ops.PostLedger:
    """Due captures of one merchant and currency move from pending to available (their
    balance transactions flip in the same unit of work)."""
    return ops.PostLedger(ledger.make_available(merchant_id=merchant_id, net=net),
                          merchant_id=merchant_id, source_id=source_id)


def dispute(posting: Posting, *, merchant_id: str, dispute_id: str,
            line: ops.InsertBalanceTransaction, exchange_rate: Decimal | None = None
            ) -> ops.PostLedger:
    """A chargeback's withdrawal or reinstatement (domain/ledger.dispute, dispute_reversal)
    with its balance transaction; ``exchange_rate``: its trading entries' rate."""
    return ops.PostLedger(posting, merchant_id=merchant_id, source_id=dispute_id,
                          balance_transaction=line, exchange_rate=exchange_rate)


PAYOUT_DESCRIPTIONS = {"payout_cancel": "Payout canceled", "payout_failure": "Payout failed"}


def payout(p: Payout, move: PayoutMove, *, bt_id: str | None, now: int) -> ops.PostLedger | None:
    """A payout's move on the ledger with its balance transaction (the payout itself, its
    cancel or its failure); None for a move that moves no money (-> in_transit)."""
    spec = move.balance_transaction
    line = None
    if spec is not None:
        assert bt_id is not None and move.posting is not None
        description = (("Automatic payout" if p.automatic else "Payout")
                       if spec.type == "payout" else PAYOUT_DESCRIPTIONS[spec.type])
        line = _available(bt_id, p.merchant_id, spec.amount.minor, spec.amount.currency,
                          spec.type, p.id, now, p.description or description)
    if move.posting is None:
        return None
    return ops.PostLedger(move.posting, merchant_id=p.merchant_id, source_id=p.id,
                          balance_transaction=line)


def _available(bt_id: str, merchant_id: str, amount: int, currency: str, type: str,
               source: str, now: int, description: str | None,
               exchange_rate: Decimal | None = None) -> ops.InsertBalanceTransaction:
    """A fee-less balance transaction, available at once."""
    return ops.InsertBalanceTransaction(
        id=bt_id, merchant_id=merchant_id, amount=amount, fee=0, currency=currency, type=type,
        source=source, status="available", available_on=now, created=now,
        description=description, exchange_rate=exchange_rate)
