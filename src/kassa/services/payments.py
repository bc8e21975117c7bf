"""PaymentIntent use cases, one flow per module, gathered here for the API's routers:
create/confirm (confirm.py), capture (capture.py), cancel (cancel.py); each a saga run by
services/saga.py. Updates and the publishable key's read are in update.py. Reads live
here."""

from __future__ import annotations

from typing import Any

from kassa import representations
from kassa.db import payments as payments_db
from kassa.domain.lists import Bounds
from kassa.services.cancel import cancel
from kassa.services.capture import capture
from kassa.services.confirm import confirm, create
from kassa.services.context import Kassa
from kassa.services.resume import load
from kassa.services.update import retrieve_with_client_secret, update

__all__ = ["cancel", "capture", "confirm", "create", "list_", "load", "retrieve",
           "retrieve_with_client_secret", "search", "update"]


async def retrieve(kassa: Kassa, *, merchant_id: str, payment_id: str) -> dict[str, Any]:
    return representations.payment_intent(await load(kassa, merchant_id=merchant_id,
                                                     payment_id=payment_id))


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, created: Bounds | None = None
                ) -> tuple[list[dict[str, Any]], bool]:
    items, more = await payments_db.list_payments(kassa.pool, merchant_id=merchant_id, limit=limit,
                                                  starting_after=starting_after,
                                                  ending_before=ending_before, created=created)
    return [representations.payment_intent(p) for p in items], more


async def search(kassa: Kassa, *, merchant_id: str, query: str, limit: int, page: str | None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Stripe's /v1/payment_intents/search: read straight from the table, so (unlike
    Stripe's index) a payment is found the moment it is committed."""
    items, next_page = await payments_db.search_payments(kassa.pool, merchant_id=merchant_id,
                                                         query=query, limit=limit, page=page)
    return [representations.payment_intent(p) for p in items], next_page
