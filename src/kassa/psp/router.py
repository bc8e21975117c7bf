"""The PSP registry (every PSP account, by name: the platform's from settings, and the
merchants' own from /v1/psp_accounts, named by their ids). The router that picks accounts
for a payment (rules, success rate, breakers, failover order) is psp/policy_router.py;
``DefaultRouter`` is that router with no routing configurations: the default account."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from kassa.psp.accounts import AccountAdapter, MerchantAccounts, is_account_id
from kassa.psp.base import PSPAdapter
from kassa.psp.monitor import PSPMonitor
from kassa.psp.policy_router import PolicyRouter


@dataclass(frozen=True, slots=True)
class PSPAccount:
    """One account at one PSP. ``name`` is how kassa records it (an attempt's ``psp``,
    the ledger's ``psp:<name>:receivable``, the webhook URL /psp/<name>/webhooks)."""

    name: str
    psp: str  # which adapter: simulator, stripe
    adapter: PSPAdapter
    hold_validity_seconds: float  # how long the PSP keeps an uncaptured authorisation
    enabled: bool = True  # a disabled account is named by no new routing configuration


class PSPRegistry(Mapping[str, PSPAdapter]):
    """The PSP accounts: a mapping of name to adapter, plus what kassa knows of each
    account. Iterating it gives the platform's accounts; a merchant's account (``pspacct_…``)
    is looked up by id, and is routable only for its own merchant's payments."""

    def __init__(self, accounts: Iterable[PSPAccount], *,
                 merchant_accounts: MerchantAccounts | None = None) -> None:
        self.merchant_accounts = merchant_accounts
        self._accounts: dict[str, PSPAccount] = {}
        for account in accounts:
            if account.name in self._accounts:
                raise ValueError(f"PSP account {account.name!r} is configured twice")
            if account.adapter.name != account.name:
                raise ValueError(f"PSP account {account.name!r} has an adapter named "
                                 f"{account.adapter.name!r}")
            self._accounts[account.name] = account

    def __getitem__(self, name: str) -> PSPAdapter:
        account = self._accounts.get(name)
        if account is not None:
            return account.adapter
        if self.merchant_accounts is not None and is_account_id(name):
            # built on first use: the payments an account took capture, refund and recover
            # there in any process, also after it was disabled or deleted
            return AccountAdapter(name, self.merchant_accounts)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._accounts

    def __iter__(self) -> Iterator[str]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def account(self, name: str) -> PSPAccount:
        return self._accounts[name]

    def enabled(self, name: str) -> bool:
        return self._accounts[name].enabled

    def platform(self, name: str) -> bool:
        return name in self._accounts

    async def refresh(self, wanted: Iterable[str] = ()) -> None:
        """The merchants' accounts as they are (at most their cache period old, unless
        one in ``wanted`` is not known yet)."""
        if self.merchant_accounts is not None:
            await self.merchant_accounts.refresh(wanted)

    def forget(self, name: str | None = None) -> None:
        if self.merchant_accounts is not None:
            self.merchant_accounts.forget(name)

    def routable(self, name: str, *, merchant_id: str | None = None,
                 currency: str | None = None) -> bool:
        """May a new authorisation go to ``name``: a platform account that is enabled, or
        the merchant's own enabled account taking the currency (``merchant_id`` None: as
        already checked when the payment was planned)."""
        account = self._accounts.get(name)
        if account is not None:
            return account.enabled
        if self.merchant_accounts is None:
            return False
        facts = self.merchant_accounts.facts(name)
        if facts is None:
            return False
        if merchant_id is None:
            return facts.enabled
        return facts.takes(merchant_id=merchant_id, currency=currency)

    def hold_validity_seconds(self) -> dict[str, float]:
        return {name: a.hold_validity_seconds for name, a in self._accounts.items()}


class DefaultRouter(PolicyRouter):
    """Every payment to ``default``: no routing configurations are read."""

    def __init__(self, psps: Mapping[str, PSPAdapter], default: str) -> None:
        super().__init__(psps, default, pool=None, monitor=PSPMonitor())
