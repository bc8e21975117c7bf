"""The PSP registry (every configured PSP account, by name). The router that picks accounts
for a payment (rules, success rate, breakers, failover order) is psp/policy_router.py;
``DefaultRouter`` is that router with no routing configurations: the default account."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

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
    """The configured PSP accounts: a mapping of name to adapter, plus what kassa knows
    of each account."""

    def __init__(self, accounts: Iterable[PSPAccount]) -> None:
        self._accounts: dict[str, PSPAccount] = {}
        for account in accounts:
            if account.name in self._accounts:
                raise ValueError(f"PSP account {account.name!r} is configured twice")
            if account.adapter.name != account.name:
                raise ValueError(f"PSP account {account.name!r} has an adapter named "
                                 f"{account.adapter.name!r}")
            self._accounts[account.name] = account

    def __getitem__(self, name: str) -> PSPAdapter:
        return self._accounts[name].adapter

    def __iter__(self) -> Iterator[str]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def account(self, name: str) -> PSPAccount:
        return self._accounts[name]

    def enabled(self, name: str) -> bool:
        return self._accounts[name].enabled

    def hold_validity_seconds(self) -> dict[str, float]:
        return {name: a.hold_validity_seconds for name, a in self._accounts.items()}


class DefaultRouter(PolicyRouter):
    """Every payment to ``default``: no routing configurations are read."""

    def __init__(self, psps: Mapping[str, PSPAdapter], default: str) -> None:
        super().__init__(psps, default, pool=None, monitor=PSPMonitor())
