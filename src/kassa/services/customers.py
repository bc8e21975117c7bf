"""Customers: create, retrieve, update, delete (``deleted: true``, their saved cards detached),
list (by ``email`` and ``created``) and search, each write with its ``customer.*`` event in
the same transaction."""

from __future__ import annotations

import re
from typing import Any

from kassa import representations
from kassa.db import customers as customers_db
from kassa.db import search as search_sql
from kassa.domain.errors import InvalidRequest, KassaError, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.search import FieldKind
from kassa.domain.search import parse as parse_search
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

SEARCH = search_sql.Searchable(
    table="customers", columns=customers_db.CUSTOMER_COLUMNS, scope="NOT deleted",
    fields={"created": search_sql.SearchField(FieldKind.NUMBER, "created"),
            "email": search_sql.SearchField(FieldKind.STRING, "email"),
            "name": search_sql.SearchField(FieldKind.STRING, "name"),
            "phone": search_sql.SearchField(FieldKind.STRING, "phone"),
            "metadata": search_sql.SearchField(FieldKind.TOKEN, "metadata")})


def not_found(customer_id: str, param: str = "id") -> KassaError:
    """A 404 for the customer a URL names; a 400 for one a parameter names (Stripe's)."""
    message = f"No such customer: '{customer_id[:100]}'"
    if param == "id":
        return NotFound(message, param=param)
    return InvalidRequest(message, param=param, code="resource_missing")


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise InvalidRequest(f"Invalid email address: {value[:100]}", param="email",
                             code="email_invalid")
    return value


async def create(kassa: Kassa, *, merchant_id: str, email: str | None = None,
                 name: str | None = None, phone: str | None = None,
                 description: str | None = None, metadata: dict[str, str] | None = None,
                 payment_method: str | None = None,
                 default_payment_method: str | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """``payment_method``: a card to attach at once (Stripe's create parameter);
    ``default_payment_method`` must then be that card (the only one the customer has)."""
    from kassa.services import saved_cards

    row = {"id": kassa.ids("cus"), "merchant_id": merchant_id, "email": _email(email),
           "name": name, "phone": phone, "description": description,
           "metadata": metadata or {}, "default_payment_method": None,
           "created": kassa.clock()}
    if default_payment_method is not None and default_payment_method != payment_method:
        raise InvalidRequest(f"The customer does not have a payment method with the ID "
                             f"{default_payment_method[:100]}. The payment method must be "
                             "attached to the customer.",
                             param="invoice_settings[default_payment_method]")
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        created = await customers_db.insert_customer(conn, row=row)
        uow.emit(merchant_id=merchant_id, type="customer.created",
                 obj=representations.customer(created))
        if payment_method is not None:
            await saved_cards.attach_in(uow, conn, merchant_id=merchant_id,
                                        payment_method_id=payment_method,
                                        customer_id=created["id"], param="payment_method")
            if default_payment_method is not None:
                updated = await customers_db.update_customer(
                    conn, merchant_id=merchant_id, customer_id=created["id"],
                    values={"default_payment_method": default_payment_method})
                assert updated is not None
                created = updated
        result = representations.customer(created)
        await uow.commit(response=result, resource_id=created["id"])
    return result


async def retrieve(kassa: Kassa, *, merchant_id: str, customer_id: str) -> dict[str, Any]:
    row = await customers_db.get_customer(kassa.pool, merchant_id=merchant_id,
                                          customer_id=customer_id)
    if row is None:
        raise not_found(customer_id)
    return representations.customer(row)


async def update(kassa: Kassa, *, merchant_id: str, customer_id: str,
                 changes: dict[str, Any], idempotency: IdempotencyHandle | None = None
                 ) -> dict[str, Any]:
    """``changes``: the given fields (None unsets one; ``metadata`` is a patch: a key mapped
    to None is removed, ``metadata`` None clears them all)."""
    if "email" in changes:
        _email(changes["email"])
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        current = await customers_db.get_customer(conn, merchant_id=merchant_id,
                                                  customer_id=customer_id, for_update=True)
        if current is None:
            raise not_found(customer_id)
        if current["deleted"]:
            raise InvalidRequest("This customer has been deleted and can no longer be "
                                 "updated.", param="id", code="resource_missing")
        values = {k: v for k, v in changes.items() if k != "metadata"}
        if "metadata" in changes:
            patch = changes["metadata"]
            merged = {} if patch is None else dict(current["metadata"])
            for key, value in (patch or {}).items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            values["metadata"] = merged
        default = values.get("default_payment_method")
        if default is not None:
            pm = await customers_db.get_payment_method_for_update(conn, merchant_id=merchant_id,
                                                                  payment_method_id=default)
            if pm is None or pm["customer"] != customer_id:
                raise InvalidRequest(
                    f"The customer does not have a payment method with the ID "
                    f"{default[:100]}. The payment method must be attached to the customer.",
                    param="invoice_settings[default_payment_method]")
        row = await customers_db.update_customer(conn, merchant_id=merchant_id,
                                                 customer_id=customer_id, values=values)
        assert row is not None  # locked above, not deleted
        result = representations.customer(row)
        before = representations.customer(current)
        previous = {k: before[k] for k in result if before[k] != result[k]}
        if previous:
            uow.emit(merchant_id=merchant_id, type="customer.updated", obj=result,
                     previous=previous)
        await uow.commit(response=result)
    return result


async def delete(kassa: Kassa, *, merchant_id: str, customer_id: str,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        current = await customers_db.get_customer(conn, merchant_id=merchant_id,
                                                  customer_id=customer_id, for_update=True)
        if current is None or current["deleted"]:
            raise not_found(customer_id)
        await customers_db.delete_customer(conn, merchant_id=merchant_id, customer_id=customer_id)
        uow.emit(merchant_id=merchant_id, type="customer.deleted",
                 obj=representations.customer(current))
        result = representations.deleted_customer(customer_id)
        await uow.commit(response=result)
    return result


async def list_(kassa: Kassa, *, merchant_id: str, limit: int, starting_after: str | None,
                ending_before: str | None, created: Bounds | None = None,
                email: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await customers_db.list_customers(kassa.pool, merchant_id=merchant_id, limit=limit,
                                                   starting_after=starting_after,
                                                   ending_before=ending_before, created=created,
                                                   email=email)
    return [representations.customer(r) for r in rows], more


async def search(kassa: Kassa, *, merchant_id: str, query: str, limit: int, page: str | None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Stripe's /v1/customers/search over created, email, name, phone and metadata."""
    parsed = parse_search(query, SEARCH.kinds)
    rows, next_page = await search_sql.search(kassa.pool, SEARCH, merchant_id=merchant_id,
                                              query=parsed, limit=limit, page=page)
    return [representations.customer(customers_db.customer_row(r) or {}) for r in rows], next_page


async def require_live(kassa: Kassa, *, merchant_id: str, customer_id: str,
                       param: str = "customer") -> None:
    """An intent may name only a customer of this merchant that is not deleted."""
    row = await customers_db.get_customer(kassa.pool, merchant_id=merchant_id,
                                          customer_id=customer_id)
    if row is None or row["deleted"]:
        raise not_found(customer_id, param=param)
