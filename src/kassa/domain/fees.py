"""kassa's processing fee on a captured amount: a percentage plus a fixed part per currency."""

from __future__ import annotations

from dataclasses import dataclass

from kassa.domain.money import EXPONENTS, Money


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    percent_bps: int = 290  # 2.90 %
    fixed_major_cents: int = 30  # 0.30 in a two-decimal currency; scaled by exponent

    def fee_for(self, gross: Money) -> Money:
        exp = EXPONENTS[gross.currency]
        fixed = self.fixed_major_cents * 10 ** exp // 100
        # round half up on the percentage part; integer arithmetic only
        pct = (gross.minor * self.percent_bps + 5_000) // 10_000
        return Money(min(gross.minor, pct + fixed), gross.currency)
