"""What kassa expects each PSP to charge (its contract), to tell a ``fee_mismatch`` in a
settlement report. The simulator's is the simulator's published pricing
(psp/simulator/settlement_report.py); a PSP without a contract here has its fees taken as
reported (no fee check)."""

from __future__ import annotations

from dataclasses import dataclass

from kassa.domain.fees import FeeSchedule
from kassa.domain.money import EXPONENTS, Money
from kassa.domain.reconciliation import Category


@dataclass(frozen=True, slots=True)
class PSPContract:
    charge_fees: FeeSchedule
    chargeback_fee_major_cents: int

    def expected_fee(self, category: Category, gross: Money) -> int:
        return self.expected_fee_minor(category.value, gross.minor, gross.currency)

    def expected_fee_minor(self, category: str, gross: int, currency: str) -> int:
        """The same in plain ints (the import's hot loop): FeeSchedule.fee_for's rule."""
        if category == "charge":
            fixed = self.charge_fees.fixed_major_cents * 10 ** EXPONENTS[currency] // 100
            pct = (gross * self.charge_fees.percent_bps + 5_000) // 10_000
            return min(gross, pct + fixed)
        if category == "chargeback":
            return self.chargeback_fee_major_cents * 10 ** EXPONENTS[currency] // 100
        if category == "chargeback_reversal":  # a won dispute's fee comes back
            return -(self.chargeback_fee_major_cents * 10 ** EXPONENTS[currency] // 100)
        return 0


CONTRACTS = {"simulator": PSPContract(FeeSchedule(percent_bps=150, fixed_major_cents=10),
                                      chargeback_fee_major_cents=1500)}
