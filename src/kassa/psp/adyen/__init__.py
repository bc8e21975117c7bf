"""Adyen: the Checkout API adapter, its settings, mapping and notification verifier."""

from kassa.psp.adyen.adapter import AdyenAdapter
from kassa.psp.adyen.settings import AdyenSettings

__all__ = ["AdyenAdapter", "AdyenSettings"]
