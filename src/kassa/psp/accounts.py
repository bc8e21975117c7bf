"""Merchants' own PSP accounts in a running process: the routing facts of every live account
(a snapshot, refreshed at most every ``cache_seconds``, one query per process however many
merchants pay) and an adapter per account, built from its opened credentials on first use
and rebuilt when the account's row changes (its ``revision``).

An account's adapter is reached through ``AccountAdapter``, which every lookup by name may
hand out at once (the registry's lookups are synchronous): each PSP call first makes sure
the adapter is current. An account that cannot be built (gone, its credentials sealed under
a key this process lacks) is *unavailable*: provably nothing was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from kassa.db import psp_accounts as psp_accounts_db
from kassa.domain.money import Money
from kassa.psp.base import (
    AttemptRef,
    AuthorizeRequest,
    PSPAdapter,
    PSPEvent,
    PSPResult,
    PSPUnavailable,
    WebhookRejected,
)
from kassa.secrets_box import SecretsBox, SecretsBoxError

log = logging.getLogger(__name__)
ID_PREFIX = "pspacct_"

# (account row, opened credentials) -> its adapter, named by the account id (bootstrap's)
AdapterFactory = Callable[[Mapping[str, Any], Mapping[str, Any]], PSPAdapter]


def credentials_aad(*, account_id: str, merchant_id: str) -> bytes:
    """What a sealed credential is bound to: a row copied to another account or merchant
    does not open."""
    return f"kassa/psp-account-credentials|{account_id}|{merchant_id}".encode()


def adyen_live(base_url: str | None) -> bool:
    """Adyen's live Checkout endpoints are <prefix>-checkout-live.adyenpayments.com; any
    other base URL (the test endpoint, the simulator's Adyen dialect) moves no real money."""
    host = urlsplit(base_url or "").hostname or ""
    return host.endswith("-checkout-live.adyenpayments.com")


def is_account_id(name: str) -> bool:
    return name.startswith(ID_PREFIX)


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What routing needs of a merchant's account, without its credentials."""

    id: str
    merchant_id: str
    psp: str
    enabled: bool
    currencies: frozenset[str]
    revision: int

    def takes(self, *, merchant_id: str, currency: str | None) -> bool:
        return self.enabled and self.merchant_id == merchant_id and (
            currency is None or currency.lower() in self.currencies)


@dataclass(slots=True)
class _Built:
    adapter: PSPAdapter
    revision: int
    checked: float


class MerchantAccounts:
    def __init__(self, pool: asyncpg.Pool, box: SecretsBox | None, factory: AdapterFactory,
                 *, cache_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._box = box
        self._factory = factory
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._facts: dict[str, AccountFacts] = {}
        self._expires = float("-inf")
        self._forced = float("-inf")
        self._refreshing = asyncio.Lock()
        self._built: dict[str, _Built] = {}
        self._building: dict[str, asyncio.Lock] = {}

    def forget(self, account_id: str | None = None) -> None:
        """Read the accounts again on next use (this process changed one)."""
        self._expires = float("-inf")
        if account_id is not None:
            self._built.pop(account_id, None)

    async def refresh(self, wanted: Iterable[str] = ()) -> None:
        """The snapshot, read again once its period is over, or at once (at most once a
        second) when it lacks an account in ``wanted``: a configuration this process just
        learned of may name an account created after the snapshot was read."""
        now = self._clock()
        if now < self._expires:
            missing = any(is_account_id(n) and n not in self._facts for n in wanted)
            if not missing or now < self._forced + 1.0:
                return
            self._forced = now
            self._expires = float("-inf")
        async with self._refreshing:  # one refresh at a time; the others wait for it
            if self._clock() < self._expires:
                return
            rows = await psp_accounts_db.routable(self._pool)
            self._facts = {r["id"]: AccountFacts(
                id=r["id"], merchant_id=r["merchant_id"], psp=r["psp"], enabled=r["enabled"],
                currencies=frozenset(r["currencies"]), revision=r["revision"]) for r in rows}
            self._expires = self._clock() + self._cache_seconds

    def facts(self, account_id: str) -> AccountFacts | None:
        return self._facts.get(account_id)

    def cached(self, account_id: str) -> PSPAdapter | None:
        built = self._built.get(account_id)
        return None if built is None else built.adapter

    async def adapter(self, account_id: str) -> PSPAdapter:
        """The account's adapter as its row is now (at most ``cache_seconds`` old)."""
        built = self._built.get(account_id)
        now = self._clock()
        if built is not None and now < built.checked + self._cache_seconds:
            return built.adapter
        lock = self._building.setdefault(account_id, asyncio.Lock())
        async with lock:
            built = self._built.get(account_id)
            if built is not None and self._clock() < built.checked + self._cache_seconds:
                return built.adapter
            revision = await psp_accounts_db.revision_of(self._pool, account_id)
            if revision is None:
                raise PSPUnavailable(f"no such PSP account: {account_id}")
            if built is not None and built.revision == revision:
                built.checked = self._clock()
                return built.adapter
            adapter, revision = await self._build(account_id)
            self._built[account_id] = _Built(adapter, revision, self._clock())
            return adapter

    async def _build(self, account_id: str) -> tuple[PSPAdapter, int]:
        found = await psp_accounts_db.credentials_of(self._pool, account_id)
        if found is None:
            raise PSPUnavailable(f"no such PSP account: {account_id}")
        row, sealed = found
        if self._box is None:
            raise PSPUnavailable(f"PSP account {account_id}: no secrets key configured")
        try:
            plain = self._box.open(sealed, credentials_aad(account_id=account_id,
                                                           merchant_id=row["merchant_id"]))
        except SecretsBoxError as exc:
            # the error names the key version, never the credential
            log.error("PSP account %s: its credentials do not open (%s)", account_id, exc)
            raise PSPUnavailable(f"PSP account {account_id}: credentials do not open") from None
        adapter = self._factory(row, orjson.loads(plain))
        return adapter, int(row["revision"])


class AccountAdapter:
    """A merchant account's adapter by name: each call goes to the current adapter."""

    def __init__(self, name: str, accounts: MerchantAccounts) -> None:
        self.name = name
        self._accounts = accounts

    async def _current(self) -> PSPAdapter:
        return await self._accounts.adapter(self.name)

    def __getattr__(self, attribute: str) -> Any:
        """What the protocol does not cover (Adyen's ``complete_redirect``, its
        ``webhook_ack``): the built adapter's, when it has it."""
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        built = self._accounts.cached(self.name)
        if built is None:
            facts = self._accounts.facts(self.name)
            if facts is None or facts.psp != "adyen":
                raise AttributeError(attribute)
        elif not hasattr(built, attribute):
            raise AttributeError(attribute)
        if attribute == "webhook_ack":
            return b"[accepted]" if built is None else getattr(built, attribute)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await getattr(await self._current(), attribute)(*args, **kwargs)

        return call

    async def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return await (await self._current()).authorize(request)

    async def capture(self, *, idempotency_key: str, psp_reference: str,
                      amount: Money) -> PSPResult:
        return await (await self._current()).capture(
            idempotency_key=idempotency_key, psp_reference=psp_reference, amount=amount)

    async def void(self, *, idempotency_key: str, psp_reference: str) -> PSPResult:
        return await (await self._current()).void(idempotency_key=idempotency_key,
                                                  psp_reference=psp_reference)

    async def refund(self, *, idempotency_key: str, psp_reference: str,
                     amount: Money) -> PSPResult:
        return await (await self._current()).refund(
            idempotency_key=idempotency_key, psp_reference=psp_reference, amount=amount)

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        return await (await self._current()).lookup(attempt)

    async def parse_webhook(self, *, headers: Mapping[str, str], body: bytes,
                            now: int) -> Sequence[PSPEvent]:
        try:
            adapter = await self._current()
        except PSPUnavailable:
            raise WebhookRejected("no such PSP account") from None
        return await adapter.parse_webhook(headers=headers, body=body, now=now)

    async def submit_dispute_evidence(self, *, psp_dispute_id: str,
                                      evidence: Mapping[str, str]) -> None:
        await (await self._current()).submit_dispute_evidence(
            psp_dispute_id=psp_dispute_id, evidence=evidence)

    async def accept_dispute(self, *, psp_dispute_id: str) -> None:
        await (await self._current()).accept_dispute(psp_dispute_id=psp_dispute_id)
