"""Stripe's payout and bank account objects."""

from __future__ import annotations

from typing import Any

from kassa.domain.bank_accounts import BankAccount, MaskedBankAccount
from kassa.domain.payouts import FAILURE_MESSAGES, Payout


def payout(p: Payout) -> dict[str, Any]:
    return {
        "id": p.id,
        "object": "payout",
        "amount": p.amount.minor,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": p.arrival_date,
        "automatic": p.automatic,
        "balance_transaction": p.balance_transaction,
        "created": p.created,
        "currency": p.amount.currency,
        "description": p.description,
        "destination": p.destination,
        "failure_balance_transaction": p.failure_balance_transaction,
        "failure_code": p.failure_code.value if p.failure_code else None,
        "failure_message": FAILURE_MESSAGES[p.failure_code] if p.failure_code else None,
        "livemode": False,
        "metadata": dict(p.metadata),
        "method": "standard",
        "original_payout": None,
        "reconciliation_status": p.reconciliation_status,
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": p.statement_descriptor,
        "status": p.status.value,
        "trace_id": {"status": "supported" if p.trace_id else "pending", "value": p.trace_id},
        "type": "bank_account",
    }


def bank_account(account_id: str, account: BankAccount | MaskedBankAccount, *, status: str = "new",
                 default_for_currency: bool = True,
                 metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Only the last 4 digits of the account number are ever shown."""
    return {
        "id": account_id,
        "object": "bank_account",
        "account_holder_name": account.account_holder_name,
        "account_holder_type": None,
        "account_type": account.account_type,  # JP only (futsu or toza), as Stripe's
        "bank_name": None,
        "country": account.country,
        "currency": account.currency,
        "default_for_currency": default_for_currency,
        "last4": account.last4,
        "metadata": metadata or {},
        "routing_number": account.routing_number,
        "status": status,
    }
