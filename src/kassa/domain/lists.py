"""What a list request may narrow itself by, beyond its cursor: ranges of a numeric field
(Stripe's ``created[gte]=…`` or ``created=…``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bounds:
    """``gt``/``gte``/``lt``/``lte`` of one integer field; unset bounds are open."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    @classmethod
    def exactly(cls, value: int) -> Bounds:
        return cls(gte=value, lte=value)

    def terms(self) -> list[tuple[str, int]]:
        """(SQL comparison, value) for each bound that is set."""
        return [(op, v) for op, v in ((">", self.gt), (">=", self.gte), ("<", self.lt),
                                      ("<=", self.lte)) if v is not None]
