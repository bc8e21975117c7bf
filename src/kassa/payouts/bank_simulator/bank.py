"""The simulated bank's books: transfers received (once per payout reference), the clock
their fate follows, and the fault model the control plane sets.

A transfer's whole timeline is decided when it arrives: ``in_transit`` at once, then
``paid`` after ``paid_after_s``, or ``failed`` after ``fail_after_s`` (a failing destination
or a drawn failure), or ``paid`` and then ``failed`` ``return_after_s`` later (returned).
Its status is read off the bank's clock, which the control plane can move forward, so
"paid, then failed three days later" takes no real time in a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kassa.domain.bank_accounts import bank_account
from kassa.domain.errors import InvalidRequest
from kassa.domain.money import MAX_AMOUNT, UnknownCurrency, normalize_currency
from kassa.domain.payouts import FAILURE_MESSAGES, FailureCode

# Destinations whose account number ends so fail or bounce, like Stripe's test accounts.
TEST_FAILURES = {"1116": "no_account", "1113": "account_closed", "2227": "insufficient_funds",
                 "3335": "debit_not_authorized", "4440": "invalid_currency"}
TEST_RETURNS = {"5556": "account_closed"}  # paid, then returned return_after_s later

# One-shot faults the next transfer request consumes (POST /_bank/faults):
ERROR = "error"  # answer 503, receive nothing
ERROR_AFTER_ACCEPT = "error_after_accept"  # receive it, answer 503
TIMEOUT_BEFORE_ACCEPT = "timeout_before_accept"  # hang, answer 504, receive nothing
TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # receive it, hang, then answer
REFUSE = "refuse"  # answer 400, receive nothing
GARBAGE_AFTER_ACCEPT = "garbage_after_accept"  # receive it, answer 200 with an unreadable body
FAULTS = frozenset({ERROR, ERROR_AFTER_ACCEPT, TIMEOUT_BEFORE_ACCEPT, TIMEOUT_AFTER_ACCEPT,
                    REFUSE, GARBAGE_AFTER_ACCEPT})


class IdempotencyConflict(Exception):
    """The reference was already used for a different transfer."""


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The transfer is not in a state that allows this."""


def _code(raw: object, param: str) -> str:
    if raw not in {c.value for c in FailureCode}:
        raise InvalidRequest(f"{param} must be one of Stripe's payout failure codes",
                             param=param)
    return str(raw)


@dataclass(frozen=True, slots=True)
class BankConfig:
    """The bank's behaviour; every field can be changed through ``POST /_bank/config``."""

    paid_after_s: float = 2.0  # in transit this long, then paid
    fail_after_s: float = 1.0  # a failing transfer fails this long after it arrived
    return_after_s: float = 3 * 24 * 3600.0  # a returned transfer fails this long after paid
    failure_rate: float = 0.0  # share of transfers that fail (with failure_code)
    failure_code: str = "could_not_process"
    return_rate: float = 0.0  # share of transfers paid, then returned (with return_code)
    return_code: str = "account_closed"
    error_rate: float = 0.0  # share of transfer requests answered 503 without receiving
    latency_ms: float = 0.0  # before every /v1 request
    timeout_hang_s: float = 15.0  # how long a simulated timeout hangs
    seed: int | None = None
    failing_accounts: Mapping[str, str] = field(default_factory=lambda: dict(TEST_FAILURES))
    returning_accounts: Mapping[str, str] = field(default_factory=lambda: dict(TEST_RETURNS))

    def __post_init__(self) -> None:
        for name in ("paid_after_s", "fail_after_s", "return_after_s", "latency_ms",
                     "timeout_hang_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidRequest(f"{name} must be a number >= 0", param=name)
        for name in ("failure_rate", "return_rate", "error_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value <= 1:
                raise InvalidRequest(f"{name} must be a number from 0 to 1", param=name)
        _code(self.failure_code, "failure_code")
        _code(self.return_code, "return_code")
        for name in ("failing_accounts", "returning_accounts"):
            table = getattr(self, name)
            if not isinstance(table, Mapping):
                raise InvalidRequest(f"{name} maps last4 to a failure code", param=name)
            for code in table.values():
                _code(code, name)
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, int)):
            raise InvalidRequest("seed must be an integer", param="seed")

    def updated(self, changes: Mapping[str, Any]) -> BankConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidRequest(f"unknown settings: {', '.join(unknown)}", param=unknown[0])
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failing_accounts"] = dict(self.failing_accounts)
        out["returning_accounts"] = dict(self.returning_accounts)
        return out


@dataclass(slots=True)
class Transfer:
    id: str
    reference: str  # kassa's payout id: unique at this bank
    fingerprint: str  # of the request, so a reused reference with other details is refused
    amount: int
    currency: str
    destination: dict[str, Any]  # masked (last4 only)
    description: str | None
    created_at: float  # bank clock, seconds since the epoch
    paid_at: float | None  # None: never paid
    failed_at: float | None  # None: never fails
    failure_code: str | None

    def status_at(self, now: float) -> str:
        if self.failed_at is not None and now >= self.failed_at:
            return "failed"
        if self.paid_at is not None and now >= self.paid_at:
            return "paid"
        return "in_transit"

    def view(self, now: float) -> dict[str, Any]:
        status = self.status_at(now)
        failed = status == "failed"
        arrival = self.paid_at if self.paid_at is not None else self.created_at
        return {
            "id": self.id, "object": "bank_transfer", "reference": self.reference,
            "amount": self.amount, "currency": self.currency, "status": status,
            "destination": self.destination, "description": self.description,
            "created": int(self.created_at),
            "arrival_date": datetime.fromtimestamp(arrival, UTC).date().isoformat(),
            "failure_code": self.failure_code if failed else None,
            "failure_message": (FAILURE_MESSAGES[FailureCode(self.failure_code)]
                                if failed and self.failure_code else None),
            "returned": failed and self.paid_at is not None,
        }


def _fingerprint(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Bank:
    """The bank's state, in memory or kept in a JSON file across restarts."""

    def __init__(self, config: BankConfig | None = None, *, state_path: Path | None = None,
                 clock: Callable[[], float] = time.time):
        self.config = config or BankConfig()
        self.state_path = state_path
        self._clock = clock
        self.offset = 0.0  # seconds the control plane moved the clock forward
        self.transfers: dict[str, Transfer] = {}
        self.by_reference: dict[str, str] = {}
        self.queue: deque[str] = deque()
        self.injected: Counter[str] = Counter()
        self._random = random.Random(self.config.seed)
        if state_path is not None and state_path.exists():
            self._load(state_path)

    # -- the clock and the fault model -----------------------------------------------------

    def now(self) -> float:
        return self._clock() + self.offset

    def advance(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise InvalidRequest("seconds must be a number >= 0", param="seconds")
        self.offset += seconds
        self._save()

    def configure(self, config: BankConfig, *, reseed: bool) -> None:
        self.config = config
        if reseed:
            self._random = random.Random(config.seed)

    def enqueue(self, faults: list[Any]) -> None:
        bad = [f for f in faults if f not in FAULTS]
        if bad:
            raise InvalidRequest(f"unknown faults {bad}; known: {sorted(FAULTS)}",
                                 param="faults")
        self.queue.extend(faults)

    def next_fault(self) -> str | None:
        if self.queue:
            fault = self.queue.popleft()
        elif self.config.error_rate and self._random.random() < self.config.error_rate:
            fault = ERROR
        else:
            return None
        self.injected[fault] += 1
        return fault

    # -- transfers --------------------------------------------------------------------------

    def receive(self, body: Mapping[str, Any]) -> tuple[Transfer, bool]:
        """Receive a transfer, or return the one already received under its reference
        (``True``: a replay). Validation happens before anything is stored."""
        reference = body.get("reference")
        if not isinstance(reference, str) or not 1 <= len(reference) <= 255:
            raise InvalidRequest("reference must be a string of 1-255 characters",
                                 param="reference")
        fingerprint = _fingerprint(body)
        existing = self.by_reference.get(reference)
        if existing is not None:
            transfer = self.transfers[existing]
            if transfer.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    f"reference {reference!r} was used for a different transfer")
            return transfer, True
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) \
                or not 1 <= amount <= MAX_AMOUNT:
            raise InvalidRequest(f"amount must be an integer from 1 to {MAX_AMOUNT}",
                                 param="amount")
        try:
            currency = normalize_currency(str(body.get("currency", "")))
        except UnknownCurrency:
            raise InvalidRequest("currency is not a supported ISO 4217 code",
                                 param="currency") from None
        raw = body.get("destination")
        if not isinstance(raw, dict):
            raise InvalidRequest("destination must be an object", param="destination")
        def text(name: str) -> str | None:
            value = raw.get(name)
            return None if value is None else str(value)

        destination = bank_account(
            account_holder_name=text("account_holder_name") or "",
            country=text("country") or "", currency=text("currency") or "",
            iban=text("iban"), routing_number=text("routing_number"),
            account_number=text("account_number"), account_type=text("account_type"))
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidRequest("description must be a string", param="description")
        transfer = self._plan(reference, fingerprint, amount, currency, destination.masked(),
                              destination.currency, description)
        self.transfers[transfer.id] = transfer
        self.by_reference[reference] = transfer.id
        self._save()
        return transfer, False

    def _plan(self, reference: str, fingerprint: str, amount: int, currency: str,
              destination: dict[str, Any], account_currency: str,
              description: str | None) -> Transfer:
        cfg, now = self.config, self.now()
        last4 = str(destination["last4"])
        paid_at: float | None = now + cfg.paid_after_s
        failed_at: float | None = None
        code: str | None = None
        if account_currency != currency:
            code = "invalid_currency"
        elif last4 in cfg.failing_accounts:
            code = cfg.failing_accounts[last4]
        elif cfg.failure_rate and self._random.random() < cfg.failure_rate:
            code = cfg.failure_code
        if code is not None:
            paid_at, failed_at = None, now + cfg.fail_after_s
        elif last4 in cfg.returning_accounts:
            code = cfg.returning_accounts[last4]
        elif cfg.return_rate and self._random.random() < cfg.return_rate:
            code = cfg.return_code
        if code is not None and failed_at is None:
            assert paid_at is not None
            failed_at = paid_at + cfg.return_after_s
        number = len(self.transfers) + 1
        return Transfer(f"bt_{number:08d}_{hashlib.sha256(reference.encode()).hexdigest()[:8]}",
                        reference, fingerprint, amount, currency, destination, description,
                        now, paid_at, failed_at, code)

    def get(self, transfer_id: str) -> Transfer:
        try:
            return self.transfers[transfer_id]
        except KeyError:
            raise NotFound(transfer_id) from None

    def find(self, reference: str) -> Transfer:
        transfer_id = self.by_reference.get(reference)
        if transfer_id is None:
            raise NotFound(reference)
        return self.transfers[transfer_id]

    def fail(self, transfer_id: str, code: str) -> Transfer:
        """Fail a transfer now: in transit it fails, paid it is returned (control plane)."""
        transfer = self.get(transfer_id)
        failure = _code(code, "failure_code")
        if transfer.status_at(self.now()) == "failed":
            raise Conflict(f"transfer {transfer_id} has already failed")
        if transfer.status_at(self.now()) == "in_transit":
            transfer.paid_at = None
        transfer.failed_at, transfer.failure_code = self.now(), failure
        self._save()
        return transfer

    def reset(self) -> None:
        self.transfers.clear()
        self.by_reference.clear()
        self.queue.clear()
        self.injected.clear()
        self.offset = 0.0
        self._random = random.Random(self.config.seed)
        self._save()

    def stats(self) -> dict[str, Any]:
        now = self.now()
        statuses = Counter(t.status_at(now) for t in self.transfers.values())
        return {"transfers": len(self.transfers), "by_status": dict(statuses),
                "faults_injected": dict(self.injected), "faults_pending": list(self.queue),
                "clock": now, "offset_s": self.offset}

    # -- persistence ------------------------------------------------------------------------

    def _save(self) -> None:
        if self.state_path is None:
            return
        state = {"offset": self.offset, "transfers": [asdict(t) for t in self.transfers.values()]}
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)  # a crash leaves the old or the new books, whole

    def _load(self, path: Path) -> None:
        state = json.loads(path.read_text())
        self.offset = float(state.get("offset", 0.0))
        for raw in state.get("transfers", []):
            transfer = Transfer(**raw)
            self.transfers[transfer.id] = transfer
            self.by_reference[transfer.reference] = transfer.id
