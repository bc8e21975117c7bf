"""CVCs kept in the vault process's memory only, for the first authorisation of a card
(PCI DSS 3.3.1.2: never stored after authorisation, not even encrypted); a CVC not used
within its time to live is forgotten too. A vault restart forgets them all: a later
authorisation goes without CVC, as Stripe's off-session payments do."""

from __future__ import annotations

import time

from kassa.vault.secret import Secret


class CvcMemory:
    def __init__(self, ttl_seconds: float, *, max_entries: int = 100_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Secret]] = {}

    def keep(self, payment_method_id: str, cvc: Secret) -> None:
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            self._forget_expired(now)
        if len(self._entries) < self.max_entries:
            self._entries[payment_method_id] = (now + self.ttl, cvc)

    def take(self, payment_method_id: str) -> Secret | None:
        """The CVC, removed: it serves one authorisation."""
        entry = self._entries.pop(payment_method_id, None)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def give_back(self, payment_method_id: str, cvc: Secret) -> None:
        """A request that provably never reached the PSP did not use it."""
        self.keep(payment_method_id, cvc)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (until, _) in self._entries.items() if until < now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
