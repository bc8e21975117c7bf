"""kassa's Stripe adapter: PaymentIntents through the official SDK, Stripe webhooks."""

from kassa.psp.stripe.adapter import StripeAdapter
from kassa.psp.stripe.settings import StripeSettings

__all__ = ["StripeAdapter", "StripeSettings"]
