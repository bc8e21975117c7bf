"""Merchants' payout destinations: bank accounts, validated by the domain, stored for the
payouts worker with the full number sealed (payouts/payout_numbers.py), shown only masked
(Stripe's external accounts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

from kassa.db import payouts as payouts_db
from kassa.domain.bank_accounts import BankAccount, MaskedBankAccount, bank_account
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.representations.payouts import bank_account as render
from kassa.services.context import Kassa
from kassa.services.payout_numbers import seal_number
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
    obj = render(destination_id, MaskedBankAccount.of(account), metadata=dict(metadata or {}))
    async with UnitOfWork(kassa, idempotency) as uow:
        await save_destination(kassa, await uow.connection(), destination_id=destination_id,
                               merchant_id=merchant_id, account=account,
                               created=kassa.clock(), metadata=dict(metadata or {}))
        await uow.commit(response=obj, resource_id=destination_id)
    return obj


async def save_destination(kassa: Kassa, conn: asyncpg.Connection, *, destination_id: str,
                           merchant_id: str, account: BankAccount, created: int,
                           metadata: dict[str, str] | None = None) -> None:
    """Store a validated destination in the caller's transaction, its number sealed."""
    if kassa.secrets is None:
        raise InvalidRequest("Bank accounts cannot be stored: this kassa has no secrets key "
                             "(set KASSA_SECRETS_KEYS or KASSA_SECRETS_KEY_FILE).",
                             code="external_accounts_unavailable")
    sealed = seal_number(kassa.secrets, destination_id=destination_id,
                         merchant_id=merchant_id, number=account.number)
    await payouts_db.insert_destination(conn, destination_id=destination_id,
                                        merchant_id=merchant_id, account=account,
                                        sealed_number=sealed, created=created,
                                        metadata=metadata)


def idempotency_params(kassa: Kassa, raw: dict[str, Any]) -> dict[str, Any]:
    """The request as its Idempotency-Key's fingerprint sees it: the account number only as
    a keyed digest (the key's stored request hash is unkeyed, and a 7-digit Japanese
    account number is quickly guessed from one)."""
    account = raw.get("external_account")
    if not isinstance(account, dict) or "account_number" not in account:
        return raw
    number = orjson.dumps(account["account_number"])
    digest = "withheld" if kassa.secrets is None else kassa.secrets.fingerprint(number)
    return {**raw, "external_account": {**account, "account_number": digest}}


async def list_bank_accounts(kassa: Kassa, *, merchant_id: str, account_id: str
                             ) -> list[dict[str, Any]]:
    _account_of(merchant_id, account_id)
    rows = await payouts_db.list_destinations(kassa.pool, merchant_id=merchant_id)
    return [render(i, account, default_for_currency=default, metadata=metadata)
            for i, account, default, metadata in rows]
