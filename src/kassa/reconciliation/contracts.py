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
        if category is Category.CHARGE:
            return self.charge_fees.fee_for(gross).minor
        if category is Category.CHARGEBACK:
            return self.chargeback_fee_major_cents * 10 ** EXPONENTS[gross.currency] // 100
        return 0


CONTRACTS = {"simulator": PSPContract(FeeSchedule(percent_bps=150, fixed_major_cents=10),
                                      chargeback_fee_major_cents=1500)}
