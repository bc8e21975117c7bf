"""Routing backtest: replay recorded authorisations against a candidate routing policy and
estimate the split per PSP account and the success rate it implies (pure; no I/O).

The estimate uses the success rates measured in the same records: per account and
currency × card brand where that segment has ``min_segment_samples`` outcomes, else per
account. A payment the candidate sends to an account with no records at all is counted as
``unmeasured`` rather than guessed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kassa.domain.routing import PaymentFacts, RoutingPolicy, Score, decide

OUTCOMES = ("approved", "declined", "failed")


@dataclass(frozen=True, slots=True)
class RecordedAuthorization:
    payment: PaymentFacts
    psp: str
    outcome: str  # approved | declined (issuer) | failed (the PSP)


@dataclass(slots=True)
class Tally:
    approved: int = 0
    total: int = 0

    def add(self, outcome: str) -> None:
        self.total += 1
        self.approved += outcome == "approved"

    def rate(self) -> float | None:
        return None if not self.total else self.approved / self.total


@dataclass(frozen=True, slots=True)
class BacktestReport:
    payments: int
    split: Mapping[str, int]  # candidate's first choice per account
    rules: Mapping[str, int]
    measured: Mapping[str, float | None]  # recorded success rate per account
    recorded_success_rate: float | None  # what the recorded routing achieved
    implied_success_rate: float | None  # what the candidate would, by the measured rates
    unmeasured: int  # payments sent where no outcome was ever recorded
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        total = self.payments or 1
        return {"payments": self.payments,
                "split": {p: {"payments": n, "share": round(n / total, 4),
                              "measured_success_rate": self.measured.get(p)}
                          for p, n in sorted(self.split.items())},
                "rules": dict(sorted(self.rules.items())),
                "recorded_success_rate": self.recorded_success_rate,
                "implied_success_rate": self.implied_success_rate,
                "unmeasured": self.unmeasured}


def first_per_payment(records: Iterable[RecordedAuthorization]
                      ) -> list[RecordedAuthorization]:
    """One record per payment (its first try): routing decides once per payment."""
    seen: set[str] = set()
    out = []
    for r in records:
        if r.payment.payment_id not in seen:
            seen.add(r.payment.payment_id)
            out.append(r)
    return out


def backtest(policy: RoutingPolicy, records: Iterable[RecordedAuthorization], *,
             exploration_percent: float = 5.0,
             min_segment_samples: int = 50) -> BacktestReport:
    every = list(records)
    by_psp: dict[str, Tally] = defaultdict(Tally)
    by_segment: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
    for r in every:
        by_psp[r.psp].add(r.outcome)
        by_segment[(r.psp, r.payment.amount.currency, r.payment.card_brand or "unknown")].add(
            r.outcome)
    payments = first_per_payment(every)
    overall = Tally()
    for r in payments:
        overall.add(r.outcome)

    def rate(psp: str, facts: PaymentFacts) -> float | None:
        seg = by_segment.get((psp, facts.amount.currency, facts.card_brand or "unknown"))
        if seg is not None and seg.total >= min_segment_samples:
            return seg.rate()
        whole = by_psp.get(psp)
        return None if whole is None else whole.rate()

    split: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    implied = 0.0
    measured_payments = 0
    for r in payments:
        scores = {p: Score(t.approved, t.total) for p, t in by_psp.items()}
        decision = decide(policy, r.payment, scores=scores,
                          exploration_percent=exploration_percent)
        chosen = decision.psps[0]
        split[chosen] += 1
        rules[decision.rule] += 1
        expected = rate(chosen, r.payment)
        if expected is not None:
            implied += expected
            measured_payments += 1
    return BacktestReport(
        payments=len(payments), split=dict(split), rules=dict(rules),
        measured={p: t.rate() for p, t in by_psp.items()},
        recorded_success_rate=overall.rate(),
        implied_success_rate=None if not measured_payments else implied / measured_payments,
        unmeasured=len(payments) - measured_payments)


def outcome_of(status: str, error: Mapping[str, Any] | None) -> str | None:
    """A recorded attempt's outcome for backtesting; None for one still open."""
    if status in ("succeeded", "requires_action"):
        return "approved"
    if status != "failed":
        return None
    err = error or {}
    if err.get("code") == "psp_unavailable" or err.get("type") == "api_error":
        return "failed"
    return "declined"
