"""Merchants' payout destinations: bank accounts, validated by the domain, stored for the
payouts worker, shown only masked (Stripe's external accounts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kassa.db import payouts as payouts_db
from kassa.domain.bank_accounts import bank_account
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.representations.payouts import bank_account as render
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork


def _account_of(merchant_id: str, account_id: str) -> None:
    if account_id != merchant_id:  # another merchant's account is not there for this key
        raise NotFound(f"No such account: '{account_id}'", param="account")


async def add_bank_account(kassa: Kassa, *, merchant_id: str, account_id: str,
                           external_account: Mapping[str, str],
                           metadata: Mapping[str, str] | None = None,
                           idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Stripe's ``external_account[…]`` hash: ``object=bank_account``, ``country``,
    ``currency``, ``account_holder_name``, ``account_number`` (an IBAN outside the US and
    Japan) and, in the US and Japan, ``routing_number`` (JP: bank code + branch code) and,
    in Japan, ``account_type`` (futsu or toza). It becomes the default for its currency."""
    _account_of(merchant_id, account_id)
    fields = dict(external_account)
    if fields.pop("object", "bank_account") != "bank_account":
        raise InvalidRequest("Only bank accounts can receive payouts.",
                             param="external_account[object]")
    unknown = sorted(set(fields) - {"country", "currency", "account_holder_name",
                                    "account_number", "routing_number", "account_type"})
    if unknown:
        raise InvalidRequest(f"Received unknown parameter: external_account[{unknown[0]}]",
                             param=f"external_account[{unknown[0]}]")
    country = fields.get("country", "").upper()
    number = fields.get("account_number")
    domestic = country in ("US", "JP")  # routing + account number, not an IBAN
    account = bank_account(
        account_holder_name=fields.get("account_holder_name", ""), country=country,
        currency=fields.get("currency", ""),
        iban=number if not domestic and number is not None else None,
        routing_number=fields.get("routing_number") if domestic else None,
        account_number=number if domestic else None,
        account_type=fields.get("account_type"))
    destination_id = kassa.ids("bank_account")
    obj = render(destination_id, account, metadata=dict(metadata or {}))
    async with UnitOfWork(kassa, idempotency) as uow:
        await payouts_db.insert_destination(await uow.connection(), destination_id=destination_id,
                                            merchant_id=merchant_id, account=account,
                                            created=kassa.clock(), metadata=dict(metadata or {}))
        await uow.commit(response=obj, resource_id=destination_id)
    return obj


async def list_bank_accounts(kassa: Kassa, *, merchant_id: str, account_id: str
                             ) -> list[dict[str, Any]]:
    _account_of(merchant_id, account_id)
    rows = await payouts_db.list_destinations(kassa.pool, merchant_id=merchant_id)
    return [render(i, account, default_for_currency=default, metadata=metadata)
            for i, account, default, metadata in rows]
