"""The balance use cases: Stripe's balance object (the ledger's figures, ledger/balances.py),
now or at a past moment, balance transactions, the pending→available job (postings from
ledger/journal.py), and rolling the balance checkpoints forward (ledger/checkpoints.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kassa import representations
from kassa.db import balance_transactions as balance_transactions_db
from kassa.db import payouts as payouts_db
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.ledger import balances as ledger_balances
from kassa.ledger import checkpoints, journal
from kassa.services.context import Kassa
from kassa.services.uow import UnitOfWork


async def balance(kassa: Kassa, *, merchant_id: str, as_of: int | None = None
                  ) -> dict[str, Any]:
    """Stripe's balance object; liabilities are credit-normal, so the sign flips. With
    ``as_of`` (unix seconds), the balance at the end of that second: a moment still to come
    has no balance yet, so it is refused rather than answered with today's."""
    if as_of is not None and not 0 <= as_of <= kassa.clock():
        raise InvalidRequest("as_of must be a unix timestamp between 0 and now.",
                             param="as_of")
    available, pending = await ledger_balances.merchant_balance(kassa.pool, merchant_id,
                                                                as_of=as_of)
    return representations.balance(available=available, pending=pending)


async def roll_checkpoints(kassa: Kassa, *, max_entries: int = checkpoints.MAX_RUN_ENTRIES,
                           wait_seconds: float = 5.0) -> int:
    """One checkpoint pass (any number of replicas: one writes at a time). Answers the
    positions it covered when it stopped at ``max_entries`` (a worker catching up runs again
    at once), else 0 (the next pass waits its interval: a run per posting would be waste)."""
    run = await checkpoints.roll_forward(kassa.pool, max_entries=max_entries,
                                         wait_seconds=wait_seconds)
    covered = 0 if run is None else run.position - run.previous
    return covered if covered >= max_entries else 0


async def list_balance_transactions(kassa: Kassa, *, merchant_id: str, limit: int,
                                    starting_after: str | None, ending_before: str | None,
                                    type: str | None, source: str | None = None,
                                    currency: str | None = None, created: Bounds | None = None,
                                    payout: str | None = None
                                    ) -> tuple[list[dict[str, Any]], bool]:
    if payout is not None:
        await _itemisable(kassa, merchant_id=merchant_id, payout_id=payout)
    rows, more = await balance_transactions_db.list_balance_transactions(
        kassa.pool, merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, type=type, source=source,
        currency=currency.lower() if currency else None, created=created, payout=payout)
    return [representations.balance_transaction(r) for r in rows], more


async def _itemisable(kassa: Kassa, *, merchant_id: str, payout_id: str) -> None:
    """Only automatic payouts have contents (as at Stripe); a manual one is a 400."""
    p = await payouts_db.get_payout(kassa.pool, merchant_id=merchant_id, payout_id=payout_id)
    if p is None:
        raise NotFound(f"No such payout: '{payout_id}'", param="payout")
    if not p.automatic:
        raise InvalidRequest("Balance transaction history can only be filtered on automatic "
                             "payouts, not manual ones.", param="payout")


async def retrieve_balance_transaction(kassa: Kassa, *, merchant_id: str, bt_id: str
                                       ) -> dict[str, Any] | None:
    row = await balance_transactions_db.get_balance_transaction(
        kassa.pool, merchant_id=merchant_id, bt_id=bt_id)
    return None if row is None else representations.balance_transaction(row)


async def release_available_funds(kassa: Kassa, *, limit: int = 1000) -> int:
    """Move due captures from merchant pending to available: one ledger transaction per
    (merchant, currency) per batch; the balance transactions flip in the same commit."""
    async with UnitOfWork(kassa) as uow:
        rows = await balance_transactions_db.claim_due_balance_transactions(
            await uow.connection(), now=kassa.clock(), limit=limit)
        sums: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows:
            sums[(row["merchant_id"], row["currency"])] += row["net"]
        for (merchant_id, currency), net in sums.items():
            if net == 0:
                continue
            uow.add(journal.make_available(merchant_id=merchant_id, net=Money(net, currency),
                                           source_id=kassa.ids("availability")))
        await uow.commit(side_effects=False)
    return len(rows)
