"""Chooses the PSP for a payment. Rules, circuit breaking and failover arrive with the
Stripe/Adyen adapters; today every payment goes to the configured default PSP."""

from __future__ import annotations

from collections.abc import Mapping

from kassa.domain.payments import PaymentIntent
from kassa.psp.base import PSPAdapter


class DefaultRouter:
    def __init__(self, psps: Mapping[str, PSPAdapter], default: str) -> None:
        if default not in psps:
            raise ValueError(f"default PSP {default!r} is not configured ({sorted(psps)})")
        self._psps = psps
        self._default = default

    def choose(self, payment: PaymentIntent) -> PSPAdapter:
        return self._psps[self._default]
