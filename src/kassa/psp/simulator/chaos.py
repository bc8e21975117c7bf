"""The simulator's fault model: configured rates plus a queue of one-shot faults."""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from kassa.domain.errors import InvalidRequest as RateInvalid
from kassa.domain.fx import parse_rate
from kassa.domain.money import EXPONENTS

# One-shot faults, each consumed by one mutating request:
ERROR = "error"  # answer 503 without acting
ERROR_AFTER_CHARGE = "error_after_charge"  # act, then answer 503 (money moved, caller told no)
TIMEOUT_BEFORE_CHARGE = "timeout_before_charge"  # hang without acting, then answer 504
TIMEOUT_AFTER_CHARGE = "timeout_after_charge"  # act, hang, then send the real answer late
REFUSE = "refuse"  # answer 400 without acting (the PSP refuses the request itself)
GARBAGE_AFTER_CHARGE = "garbage_after_charge"  # act, then answer 200 with an unreadable body
FAULTS = frozenset({ERROR, ERROR_AFTER_CHARGE, TIMEOUT_BEFORE_CHARGE, TIMEOUT_AFTER_CHARGE,
                    REFUSE, GARBAGE_AFTER_CHARGE})


OPERATION_MODES = ("immediate", "pending")
ASYNC_OUTCOMES = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Chaos settings; every field can also be changed at runtime via ``POST /_sim/config``."""

    latency_ms: float = 0.0  # added before every /v1 request is handled
    error_rate: float = 0.0  # share of mutating requests answered 503 without acting
    timeout_rate: float = 0.0  # share of mutating requests that act, then hang
    timeout_hang_s: float = 15.0  # how long a "timeout" hangs; longer than client timeouts
    seed: int | None = None  # makes error_rate/timeout_rate draws reproducible
    # -- asynchronous outcomes
    capture_mode: str = "immediate"  # pending: captures answer `pending`, a webhook settles
    refund_mode: str = "immediate"  # pending: refunds answer `pending`, a webhook settles
    async_outcome: str = "succeeded"  # how pending operations settle
    # when pending operations settle (and refund_fails cards bounce); null: only when told
    # by POST /_sim/operations/{key}/settle
    async_delay_ms: float | None = 200.0
    # -- outbound webhooks
    webhook_url: str | None = None  # where events are POSTed; null: recorded, not sent
    webhook_secret: str | None = None  # HMAC-SHA256 key for the Sim-Signature header
    webhook_hold: bool = False  # queue events until POST /_sim/webhooks/flush
    webhook_delay_ms: float = 0.0  # before each event's first delivery
    webhook_jitter_ms: float = 0.0  # extra random delay per event: later events overtake
    webhook_duplicate_rate: float = 0.0  # share of events delivered twice
    webhook_max_attempts: int = 5  # deliveries retried on non-2xx with backoff
    webhook_timeout_s: float = 10.0
    # -- the Adyen dialect (routes_adyen.py): its X-API-Key (null: any non-empty key), the
    # one merchant account it serves (null: any), the hex HMAC key its notifications are
    # signed with, and where they are POSTed (null: recorded, not sent)
    adyen_api_key: str | None = None
    adyen_merchant_account: str | None = None
    adyen_hmac_key: str | None = None
    adyen_webhook_url: str | None = None
    # how long an uncaptured authorisation holds funds; a later capture fails with
    # `authorization_expired` (card networks: about 7 days)
    authorization_validity_s: float = 7 * 24 * 3600.0
    # -- settlement (settlement_report.py): the currency this account pays out in, and the
    # rates it converts at ({"eur": "1.0842"}: 1 EUR = 1.0842 of it, decimal strings); a
    # movement in a currency without a rate settles in its own (null: all do)
    settlement_currency: str | None = None
    settlement_rates: dict[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("latency_ms", "timeout_hang_s", "webhook_delay_ms", "webhook_jitter_ms",
                     "webhook_timeout_s", "authorization_validity_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
        if self.async_delay_ms is not None and (
            isinstance(self.async_delay_ms, bool)
            or not isinstance(self.async_delay_ms, int | float) or self.async_delay_ms < 0
        ):
            raise ValueError("async_delay_ms must be a number >= 0 or null")
        for name, allowed in (("capture_mode", OPERATION_MODES), ("refund_mode", OPERATION_MODES),
                              ("async_outcome", ASYNC_OUTCOMES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        for name in ("webhook_url", "webhook_secret", "adyen_api_key",
                     "adyen_merchant_account", "adyen_hmac_key", "adyen_webhook_url"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or null")
        if not isinstance(self.webhook_hold, bool):
            raise ValueError("webhook_hold must be a boolean")
        if isinstance(self.webhook_max_attempts, bool) or not isinstance(
                self.webhook_max_attempts, int) or self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be an integer >= 1")
        for name in ("error_rate", "timeout_rate", "webhook_duplicate_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 <= value <= 1
            ):
                raise ValueError(f"{name} must be a number between 0 and 1")
        if self.adyen_hmac_key is not None:
            try:
                bytes.fromhex(self.adyen_hmac_key)
            except ValueError:
                raise ValueError("adyen_hmac_key must be hex") from None
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed,
                                                                                   int)):
            raise ValueError("seed must be an integer or null")
        self._check_settlement()

    def _check_settlement(self) -> None:
        if self.settlement_currency is not None and self.settlement_currency not in EXPONENTS:
            raise ValueError("settlement_currency must be a lowercase ISO 4217 code or null")
        rates = self.settlement_rates
        if rates is None:
            return
        if self.settlement_currency is None or not isinstance(rates, dict):
            raise ValueError("settlement_rates maps a currency to a decimal string rate, with"
                             " a settlement_currency")
        for ccy, rate in rates.items():
            if ccy not in EXPONENTS or ccy == self.settlement_currency or \
                    not isinstance(rate, str):
                raise ValueError(f"settlement_rates: {ccy!r} must be another currency's code"
                                 " with a decimal string rate")
            try:
                parse_rate(rate)
            except RateInvalid as exc:
                raise ValueError(f"settlement_rates[{ccy}]: {exc}") from None

    def updated(self, changes: dict[str, Any]) -> SimulatorConfig:
        """A copy with ``changes`` applied; unknown or invalid fields raise ValueError."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON; the webhook secret is never echoed."""
        out = asdict(self)
        for secret in ("webhook_secret", "adyen_api_key", "adyen_hmac_key"):
            if out[secret] is not None:
                out[secret] = "********"
        return out


class Chaos:
    """Decides, per mutating request, which fault (if any) it suffers."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.initial = config
        self.config = config
        self.injected: Counter[str] = Counter()
        self.queue: deque[str] = deque()
        self._rng = random.Random(config.seed)

    def configure(self, config: SimulatorConfig, *, reseed: bool) -> None:
        self.config = config
        if reseed:
            self._rng = random.Random(config.seed)

    def reset(self) -> None:
        """Back to the configuration given at creation, with no faults queued."""
        self.queue.clear()
        self.injected.clear()
        self.config = self.initial
        self._rng = random.Random(self.initial.seed)

    def enqueue(self, faults: list[str]) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(map(str, unknown))}; "
                             f"known: {', '.join(sorted(FAULTS))}")
        self.queue.extend(faults)

    def draw(self, rate: float) -> bool:
        """True with probability ``rate`` (from the seeded generator)."""
        return bool(rate) and self._rng.random() < rate

    def uniform(self, high: float) -> float:
        return self._rng.uniform(0, high) if high else 0.0

    def next_fault(self) -> str | None:
        fault: str | None = None
        if self.queue:
            fault = self.queue.popleft()
        else:
            config = self.config
            if config.error_rate and self._rng.random() < config.error_rate:
                fault = ERROR
            elif config.timeout_rate and self._rng.random() < config.timeout_rate:
                fault = TIMEOUT_AFTER_CHARGE
        if fault is not None:
            self.injected[fault] += 1
        return fault
