"""The platform's Stripe account from the environment (KASSA_STRIPE_*), validated at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Stripe keeps an idempotency key's answer at least 24 hours; past that, a repeated call
# would be a new request, so recovery finds older attempts by metadata only.
IDEMPOTENCY_KEY_LIFETIME_S = 24 * 3600


class StripeSettings(BaseSettings):
    """One Stripe account. Unset ``secret_key``: kassa has no Stripe account."""

    model_config = SettingsConfigDict(env_prefix="KASSA_STRIPE_", extra="ignore")

    secret_key: SecretStr | None = None  # sk_test_… (test mode) or sk_live_… / rk_…
    api_base: str = "https://api.stripe.com"
    # whsec_… of the webhook endpoint pointed at <public_url>/psp/stripe/webhooks; several,
    # comma separated, while rolling it (Stripe signs with both for a while)
    webhook_secret: SecretStr | None = None
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # an uncaptured card PaymentIntent is canceled by Stripe after 7 days
    hold_validity_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    # recovery lists this many pages of 100 PaymentIntents looking for an attempt whose
    # answer was lost (strongly consistent, unlike search)
    lookup_pages: int = Field(default=10, ge=1, le=100)
    # The API base is localstripe (tests, local development): leave out the parameters it
    # refuses (see psp/stripe/README.md). Never set against Stripe itself.
    localstripe: bool = False
    # The daily settlement report through the Reporting API (psp/stripe/reports.py): the
    # report type, where its files are downloaded from, how often a report run is polled and
    # how long the pull waits for it. localstripe has no Reporting API: leave it off there.
    settlement_reports: bool = True
    report_type: str = "balance_change_from_activity.itemized.3"
    files_base: str = "https://files.stripe.com"
    report_poll_seconds: float = Field(default=5.0, gt=0)
    report_wait_seconds: float = Field(default=600.0, gt=0)

    @field_validator("secret_key")
    @classmethod
    def _looks_like_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("sk_", "rk_")):
            raise ValueError("a Stripe secret key starts with sk_ (or rk_ for a restricted key)")
        return value

    def configured(self) -> bool:
        return self.secret_key is not None and bool(self.secret_key.get_secret_value())

    def live(self) -> bool:
        """A live-mode key (real money moves): kassa takes it in production only."""
        return self.configured() and self.secret_key is not None and \
            self.secret_key.get_secret_value().startswith(("sk_live_", "rk_live_"))

    def webhook_secrets(self) -> list[str]:
        raw = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        return [s.strip() for s in raw.split(",") if s.strip()]
