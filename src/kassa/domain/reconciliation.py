"""Reconciliation of a PSP's settlement report against kassa's books, in pure terms: the row
every report format is read into, the discrepancy kinds, and the one rule that classifies a
report row against the kassa object it was matched to.

A row is one money movement at the PSP: a ``charge`` (captured, positive gross), a
``refund`` or ``chargeback`` (negative gross), or a ``fee`` with no kassa object (an account
fee). ``fee`` is what the PSP kept; ``net = gross - fee`` is what it pays to the bank. A row
whose gross, currency and status agree with kassa's object is *matched* and its settlement is
posted (Dr bank:cash net, Dr expense:psp_fees fee / Cr psp receivable gross, ARCHITECTURE §2);
a fee other than the contract's is still posted (the bank got what it got) and recorded as
``fee_mismatch``, open until someone takes it up with the PSP.

A row the PSP converted (it charged the customer in one currency and settled in another,
at its own rate) carries ``settled``: the gross in the settlement currency, and the PSP's
``exchange_rate``. Its ``gross`` stays in the presentment currency (what kassa's receivable
holds and what it is matched on); its ``fee`` and ``net`` are in the settlement currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from kassa.domain.money import Money


class Category(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    CHARGEBACK_REVERSAL = "chargeback_reversal"  # a won dispute: the amount comes back
    FEE = "fee"  # a PSP fee not tied to a payment (no kassa object)


class DiscrepancyKind(StrEnum):
    MISSING_IN_KASSA = "missing_in_kassa"  # the PSP reports money kassa has no object for
    MISSING_AT_PSP = "missing_at_psp"  # kassa recorded money the PSP's report does not have
    AMOUNT_MISMATCH = "amount_mismatch"
    FEE_MISMATCH = "fee_mismatch"  # the PSP kept another fee than its contract's
    CURRENCY_MISMATCH = "currency_mismatch"
    STATUS_MISMATCH = "status_mismatch"  # e.g. kassa `processing`, the PSP captured


class Resolution(StrEnum):
    OPEN = "open"
    AUTO_RESOLVED = "auto_resolved"  # kassa fixed it itself (resolution_how says how)
    RESOLVED = "resolved"  # a person resolved it later (resolved_by, resolution_how)


@dataclass(frozen=True, slots=True)
class SettlementRow:
    """One row of a settlement report, in minor units, whatever the file's format."""

    row_number: int
    category: Category
    psp_reference: str | None
    kassa_reference: str | None  # what kassa sent the PSP (the attempt id), when echoed
    gross: Money
    fee: Money
    status: str | None = None  # the PSP's status of the movement, mapped to kassa's words
    created: int | None = None  # when the PSP moved it (unix seconds)
    settled: Money | None = None  # the gross the PSP settled in another currency
    exchange_rate: Decimal | None = None  # the PSP's rate: 1 presentment = rate settled
    # the gross at the PSP's own rate, set only when ``settled`` is not it (beyond the PSP's
    # rounding: reports.py's _converts): the row is an ``amount_mismatch``, not posted
    expected_settled: Money | None = None

    def __post_init__(self) -> None:
        if (self.settled is None) != (self.exchange_rate is None):
            raise ValueError("a converted row has both its settled gross and its rate")
        if self.settled is not None:
            if self.settled.currency == self.gross.currency:
                raise ValueError("a converted row settles in another currency")
            if self.exchange_rate is None or self.exchange_rate <= 0:
                raise ValueError("a converted row's rate is positive")
            if (self.settled.minor > 0) != (self.gross.minor > 0) or \
                    (self.settled.minor < 0) != (self.gross.minor < 0):
                raise ValueError("a converted row's settled gross has its gross's sign")
        if self.expected_settled is not None and (
                self.settled is None or self.expected_settled.currency != self.settled.currency):
            raise ValueError("a converted row's expected settled gross is in its settlement"
                             " currency")
        if self.fee.currency != self.fee_currency:
            raise ValueError("a row's fee is in its settlement currency")
        if self.category in (Category.CHARGE, Category.CHARGEBACK_REVERSAL) and \
                self.gross.minor < 0:
            raise ValueError(f"a {self.category} row has a positive gross")
        if self.category in (Category.REFUND, Category.CHARGEBACK) and self.gross.minor > 0:
            raise ValueError(f"a {self.category} row has a negative gross")

    @property
    def fee_currency(self) -> str:
        return self.gross.currency if self.settled is None else self.settled.currency

    @property
    def net(self) -> Money:
        """What the PSP pays to the bank, in the settlement currency."""
        settled = self.gross if self.settled is None else self.settled
        return Money(settled.minor - self.fee.minor, settled.currency)


# the PSP's status a matched row must carry for each category, in kassa's words
SETTLED_STATUS = {Category.CHARGE: "captured", Category.REFUND: "refunded",
                  Category.CHARGEBACK: "charged_back",
                  Category.CHARGEBACK_REVERSAL: "reversed", Category.FEE: None}
