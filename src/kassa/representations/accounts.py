"""The merchant's own Account object (Stripe's ``GET /v1/account``), as far as kassa keeps it:
identity and ``settings.payouts`` (the payout schedule and its settlement delay)."""

from __future__ import annotations

from typing import Any

from kassa.domain.payout_schedules import PayoutSchedule


def schedule(s: PayoutSchedule) -> dict[str, Any]:
    out: dict[str, Any] = {"delay_days": s.delay_days, "interval": s.interval.value}
    if s.weekly_anchor is not None:
        out["weekly_anchor"] = s.weekly_anchor
    if s.monthly_anchor is not None:
        out["monthly_anchor"] = s.monthly_anchor
    return out


def account(*, merchant_id: str, name: str, created: int, payout_schedule: PayoutSchedule,
            default_currency: str | None) -> dict[str, Any]:
    return {
        "id": merchant_id, "object": "account", "business_profile": {"name": name},
        "charges_enabled": True, "payouts_enabled": True, "country": None,
        "created": created, "default_currency": default_currency, "details_submitted": True,
        "type": "standard",
        "settings": {"payouts": {"debit_negative_balances": False,
                                 "schedule": schedule(payout_schedule),
                                 "statement_descriptor": None}},
    }
