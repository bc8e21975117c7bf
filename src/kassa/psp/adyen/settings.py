"""The platform's Adyen account from the environment (KASSA_ADYEN_*), validated at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Adyen keeps an Idempotency-Key's answer at least 7 days (its docs say 31; kassa counts the
# shorter): past that, repeating an authorisation could charge twice, so recovery stops
# repeating and waits for the AUTHORISATION notification (or an operator) instead.
IDEMPOTENCY_KEY_LIFETIME_S = 7 * 24 * 3600


class AdyenSettings(BaseSettings):
    """One Adyen merchant account. Unset ``api_key``: kassa has no Adyen account."""

    model_config = SettingsConfigDict(env_prefix="KASSA_ADYEN_", extra="ignore")

    api_key: SecretStr | None = None  # the web service user's API key (X-API-Key)
    merchant_account: str | None = None  # e.g. YourCompanyECOM
    # test: https://checkout-test.adyen.com/v71; live:
    # https://<prefix>-checkout-live.adyenpayments.com/checkout/v71
    checkout_url: str = "https://checkout-test.adyen.com/v71"
    disputes_url: str = "https://ca-test.adyen.com/ca/services/DisputeService/v30"
    # the webhook's HMAC key(s), hex, from Customer Area > Developers > Webhooks; two,
    # comma separated, while rotating (queued notifications stay signed with the old one)
    hmac_keys: SecretStr | None = None
    live: bool = False  # a live account: real money; refused unless KASSA_ENV=production
    # The daily settlement details report (psp/adyen/reports.py): its download URL with the
    # day in it as a format field, e.g. https://ca-test.adyen.com/reports/download/
    # MerchantAccount/YourCompanyECOM/settlement_detail_report_{day:%Y_%m_%d}.csv, and the
    # report user's basic-auth credentials (Customer Area > Developers > API credentials,
    # a ``report_…@Company.…`` user). Unset URL: no daily pull for Adyen.
    settlement_report_url: str | None = None
    report_username: str | None = None
    report_password: SecretStr | None = None
    # an uncaptured card authorisation lapses after about 7 days (scheme-dependent)
    hold_validity_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)

    @field_validator("merchant_account")
    @classmethod
    def _no_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("KASSA_ADYEN_MERCHANT_ACCOUNT must not be blank")
        return value

    @field_validator("settlement_report_url")
    @classmethod
    def _day_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from datetime import date

        try:
            value.format(day=date(2000, 1, 31))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("KASSA_ADYEN_SETTLEMENT_REPORT_URL may name only {day} (a date, "
                             f"e.g. {{day:%Y_%m_%d}}): {exc}") from None
        return value

    @field_validator("hmac_keys")
    @classmethod
    def _hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        for key in value.get_secret_value().split(","):
            key = key.strip()
            if not key:
                continue
            try:
                bytes.fromhex(key)
            except ValueError:
                raise ValueError("KASSA_ADYEN_HMAC_KEYS are hex strings (comma separated)"
                                 ) from None
        return value

    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    def keys(self) -> list[bytes]:
        raw = self.hmac_keys.get_secret_value() if self.hmac_keys else ""
        return [bytes.fromhex(k.strip()) for k in raw.split(",") if k.strip()]
