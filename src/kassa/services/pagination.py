"""List cursors: a ``starting_after``/``ending_before`` naming no object of the merchant is
a 400 ``resource_missing``, as at Stripe; an empty page would read as "nothing newer",
which a merchant paging through for reconciliation would trust."""

from __future__ import annotations

from kassa.db import cursors
from kassa.domain.errors import InvalidRequest
from kassa.services.context import Kassa

# Per list URL (api/routing.list_page): the table its cursors name and Stripe's object name.
# tests/unit/api/test_list_cursors.py keeps every list route of the app in this table.
LISTS: dict[str, tuple[str, str]] = {
    "/v1/payment_intents": ("payment_intents", "payment_intent"),
    "/v1/charges": ("charges", "charge"),
    "/v1/refunds": ("refunds", "refund"),
    "/v1/events": ("events", "event"),
    "/v1/balance_transactions": ("balance_transactions", "balance_transaction"),
    "/v1/disputes": ("disputes", "dispute"),
    "/v1/webhook_endpoints": ("webhook_endpoints", "webhook_endpoint"),
    "/v1/payouts": ("payouts", "payout"),
    "/v1/customers": ("customers", "customer"),
    "/v1/routing_configs": ("routing_configs", "routing_config"),
    "/v1/psp_accounts": ("psp_accounts", "psp_account"),
}


def missing_cursor(object_name: str, name: str, value: str) -> InvalidRequest:
    return InvalidRequest(f"No such {object_name}: '{value}'", param=name,
                          code="resource_missing")


async def require_cursors(kassa: Kassa, *, merchant_id: str, url: str,
                          starting_after: str | None, ending_before: str | None) -> None:
    """Raise unless each given cursor names an object of this merchant in this list.
    URLs that page by something else (deliveries, checked by their service) pass."""
    if url not in LISTS:
        return
    table, object_name = LISTS[url]
    for name, value in (("starting_after", starting_after), ("ending_before", ending_before)):
        if value is not None and not await cursors.object_exists(
                kassa.pool, table=table, merchant_id=merchant_id, object_id=value):
            raise missing_cursor(object_name, name, value)
