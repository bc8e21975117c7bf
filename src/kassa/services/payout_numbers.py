"""Payout destinations' account numbers at rest: each IBAN or account number is sealed with
kassa's secrets box (kassa/secrets_box.py, as merchants' PSP credentials are), bound to its
destination and merchant, so a database dump shows only the last 4 digits. It is opened
only where the bank rail needs the full number (services/payout_rail.py)."""

from __future__ import annotations

from kassa.domain.bank_accounts import BankAccount, MaskedBankAccount
from kassa.secrets_box import SecretsBox


def account_aad(*, destination_id: str, merchant_id: str) -> bytes:
    """What a sealed number is bound to: copied onto another destination or merchant, it
    does not open."""
    return f"kassa/payout-destination-number|{destination_id}|{merchant_id}".encode()


def seal_number(box: SecretsBox, *, destination_id: str, merchant_id: str,
                number: str) -> bytes:
    return box.seal(number.encode(), account_aad(destination_id=destination_id,
                                                 merchant_id=merchant_id))


def open_number(box: SecretsBox, *, destination_id: str, merchant_id: str,
                sealed: bytes) -> str:
    return box.open(sealed, account_aad(destination_id=destination_id,
                                        merchant_id=merchant_id)).decode()


def opened(box: SecretsBox, *, destination_id: str, merchant_id: str,
           masked: MaskedBankAccount, sealed: bytes) -> BankAccount:
    """The destination with its full number, for the bank call only (an IBAN account has no
    routing number)."""
    number = open_number(box, destination_id=destination_id, merchant_id=merchant_id,
                         sealed=sealed)
    iban = masked.routing_number is None
    return BankAccount(masked.account_holder_name, masked.country, masked.currency,
                       iban=number if iban else None,
                       routing_number=masked.routing_number,
                       account_number=None if iban else number,
                       account_type=masked.account_type)
