"""Cards saved to customers: attach, detach, update (billing details, metadata, expiry), list
a customer's cards; the rules an intent's ``customer``, ``payment_method`` and
``off_session`` must follow; and saving an intent's card when ``setup_future_usage`` asks.

A saved card is a row of the vault's non-secret ``kassa_vault.payment_methods`` whose
``customer`` names its owner: the API changes that row (the serving role may update those
columns), never anything that holds the card number. Test shortcuts (``pm_card_visa`` …)
are no vault rows and cannot be saved: tokenise a card at the vault first.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from kassa import representations
from kassa.db import customers as customers_db
from kassa.db import ops
from kassa.domain import psp_tokens
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.payments import PaymentIntent
from kassa.services import customers
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork
from kassa.vault import store
from kassa.vault.resolver import Resolved
from kassa.vault.test_cards import lookup_test_payment_method

PM = representations.payment_method


def _not_found(payment_method_id: str, param: str = "id") -> NotFound:
    return NotFound(f"No such PaymentMethod: '{payment_method_id[:100]}'", param=param)


def _unexpected(message: str, param: str = "id") -> InvalidRequest:
    return InvalidRequest(message, param=param, code="payment_method_unexpected_state")


# Stripe's answer for a PaymentMethod detached from a customer (by detach, or when its
# customer was deleted): it may not be attached again nor charged, so a card that was A's
# never becomes B's
DETACHED = ("This PaymentMethod was previously used without being attached to a Customer or "
            "was detached from a Customer, and may not be used again.")
# Stripe's answer for a card attached to no customer that another payment intent used: such
# a card serves one intent only (db/sql/apply.sql use_payment_method says the same when two
# intents race for it)
USED = ("The provided PaymentMethod was previously used with a PaymentIntent without Customer "
        "attachment, shared with a connected account without Customer attachment, or was "
        "detached from a Customer. It may not be used again. To use a PaymentMethod multiple "
        "times, you must attach it to a Customer first.")


async def _locked_card(conn: asyncpg.Connection, *, merchant_id: str, payment_method_id: str,
                       param: str) -> dict[str, Any]:
    pm = await customers_db.get_payment_method_for_update(conn, merchant_id=merchant_id,
                                                          payment_method_id=payment_method_id)
    if pm is None:
        if lookup_test_payment_method(payment_method_id) is not None:
            raise InvalidRequest(
                f"{payment_method_id} is a test shortcut, not a saved card: tokenise a card "
                "at the vault (POST /v1/payment_methods) and attach that.", param=param)
        raise _not_found(payment_method_id, param)
    return pm


async def attach_in(uow: UnitOfWork, conn: asyncpg.Connection, *, merchant_id: str,
                    payment_method_id: str, customer_id: str, param: str = "id"
                    ) -> dict[str, Any]:
    """Inside ``uow``'s transaction: the customer (locked, not deleted) gets the card."""
    owner = await customers_db.get_customer(conn, merchant_id=merchant_id, customer_id=customer_id,
                                            for_update=True)
    if owner is None or owner["deleted"]:
        raise customers.not_found(customer_id, param="customer")
    pm = await _locked_card(conn, merchant_id=merchant_id,
                            payment_method_id=payment_method_id, param=param)
    if pm["customer"] == customer_id:
        return PM(pm)  # attached already: Stripe answers the same object
    if pm["customer"] is not None:
        raise _unexpected("The payment method you provided has already been attached to a "
                          "customer.", param)
    if pm["detached"] or pm["used_by"] is not None:
        raise _unexpected(DETACHED, param)  # used once unattached: spent, as at Stripe
    row = await customers_db.set_payment_method_customer(conn, merchant_id=merchant_id,
                                                         payment_method_id=payment_method_id,
                                                         customer_id=customer_id)
    assert row is not None  # locked above
    result = PM(row)
    uow.emit(merchant_id=merchant_id, type="payment_method.attached", obj=result)
    return result


async def attach(kassa: Kassa, *, merchant_id: str, payment_method_id: str, customer: str,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        result = await attach_in(uow, conn, merchant_id=merchant_id,
                                 payment_method_id=payment_method_id, customer_id=customer)
        await uow.commit(response=result)
    return result


async def detach(kassa: Kassa, *, merchant_id: str, payment_method_id: str,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """The card no longer belongs to its customer (nor is their default)."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        pm = await _locked_card(conn, merchant_id=merchant_id,
                                payment_method_id=payment_method_id, param="id")
        if pm["customer"] is None:
            raise _unexpected("The payment method you provided is not attached to a customer "
                              "so detachment is impossible.")
        await customers_db.clear_default_payment_method(conn, merchant_id=merchant_id,
                                                        customer_id=pm["customer"],
                                                        payment_method_id=payment_method_id)
        row = await customers_db.set_payment_method_customer(conn, merchant_id=merchant_id,
                                                             payment_method_id=payment_method_id,
                                                             customer_id=None)
        assert row is not None
        result = PM(row)
        uow.emit(merchant_id=merchant_id, type="payment_method.detached", obj=result,
                 previous={"customer": pm["customer"]})
        await uow.commit(response=result)
    return result


def _merged_billing(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in given.items():
        if key == "address" and isinstance(value, dict):
            address = dict(current.get("address") or {})
            address.update(value)
            merged["address"] = address
        else:
            merged[key] = value
    return merged


async def update(kassa: Kassa, *, merchant_id: str, payment_method_id: str,
                 billing_details: dict[str, Any] | None = None,
                 metadata: dict[str, str | None] | None = None, metadata_given: bool = False,
                 exp_month: int | None = None, exp_year: int | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Billing details (the given fields), metadata (a patch: None removes a key; given as
    None clears all) and the card's expiry, of a card saved to a customer (Stripe's rule)."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        pm = await _locked_card(conn, merchant_id=merchant_id,
                                payment_method_id=payment_method_id, param="id")
        if pm["customer"] is None:
            raise _unexpected("You must save this PaymentMethod to a customer before you can "
                              "update it.")
        month = pm["exp_month"] if exp_month is None else exp_month
        year = pm["exp_year"] if exp_year is None else exp_year
        _check_expiry(kassa, month, year)
        merged_metadata = dict(pm["metadata"])
        if metadata_given:
            if metadata is None:
                merged_metadata = {}
            for key, value in (metadata or {}).items():
                if value is None:
                    merged_metadata.pop(key, None)
                else:
                    merged_metadata[key] = value
        row = await customers_db.update_payment_method(
            conn, merchant_id=merchant_id, payment_method_id=payment_method_id,
            billing_details=_merged_billing(pm["billing_details"], billing_details or {}),
            metadata=merged_metadata, exp_month=month, exp_year=year)
        assert row is not None
        result, before = PM(row), PM(pm)
        previous = {k: before[k] for k in ("billing_details", "card", "metadata")
                    if before[k] != result[k]}
        if previous:
            uow.emit(merchant_id=merchant_id, type="payment_method.updated", obj=result,
                     previous=previous)
        await uow.commit(response=result)
    return result


def _check_expiry(kassa: Kassa, month: int, year: int) -> None:
    import datetime

    if not 1 <= month <= 12:
        raise InvalidRequest("Your card's expiration month is invalid.",
                             param="card[exp_month]", code="invalid_expiry_month")
    today = datetime.datetime.fromtimestamp(kassa.clock(), datetime.UTC)
    if not (today.year, today.month) <= (year, month) or year > today.year + 50:
        raise InvalidRequest("Your card's expiration year is invalid.",
                             param="card[exp_year]", code="invalid_expiry_year")


async def list_for_customer(kassa: Kassa, *, merchant_id: str, customer: str, limit: int,
                            starting_after: str | None, ending_before: str | None,
                            created: Bounds | None = None, param: str = "customer"
                            ) -> tuple[list[dict[str, Any]], bool]:
    """``param``: where the customer was named ("id": the URL's, a 404 if unknown)."""
    await customers.require_live(kassa, merchant_id=merchant_id, customer_id=customer,
                                 param=param)
    for name, value in (("starting_after", starting_after), ("ending_before", ending_before)):
        if value is not None and not await customers_db.payment_method_exists(
                kassa.pool, merchant_id=merchant_id, payment_method_id=value):
            raise InvalidRequest(f"No such payment_method: '{value[:100]}'", param=name,
                                 code="resource_missing")
    rows, more = await customers_db.list_payment_methods(
        kassa.pool, merchant_id=merchant_id, customer_id=customer, limit=limit,
        starting_after=starting_after, ending_before=ending_before, created=created)
    return [PM(r) for r in rows], more


# ---------------------------------------------------------------- payment intents


async def check_intent(kassa: Kassa, *, merchant_id: str, customer: str | None,
                       payment_method: str | None, off_session: bool = False,
                       payment_intent: str | None = None,
                       resolved: Resolved | None = None) -> None:
    """Stripe's rules for an intent's customer and card: the customer exists and is not
    deleted; a saved card is charged only for its own customer; off-session (the customer
    is not there to give a CVC or authenticate) only with a card saved to that customer; a
    card attached to no customer only for the intent that used it first (``payment_intent``:
    the intent being confirmed; None: a new one). The confirmation's first commit claims
    such a card (``use_op``), which settles a race this read cannot. ``resolved``: the
    payment method as the request read it already (its vault row is not read again, nor
    the customer when that read found it live)."""
    if customer is not None and (resolved is None or resolved.live_customer != customer):
        await customers.require_live(kassa, merchant_id=merchant_id, customer_id=customer)
    owner = None
    pinned = psp_tokens.parse(payment_method) is not None
    # a test shortcut (pm_card_visa …) or a PSP's own token is never a vault row: no read
    if payment_method is not None and lookup_test_payment_method(payment_method) is None \
            and not pinned:
        row = resolved.row if resolved is not None else await store.get_payment_method(
            kassa.pool, merchant_id=merchant_id, payment_method_id=payment_method)
        owner = None if row is None else row["customer"]
        if row is not None and row["detached"]:
            raise _unexpected(DETACHED, "payment_method")
        if row is not None and owner is None and row["used_by"] not in (None, payment_intent):
            raise _unexpected(USED, "payment_method")
    if owner is not None and customer is None:
        raise InvalidRequest("The provided PaymentMethod belongs to a Customer, but you did "
                             "not provide a Customer. Include the Customer in the `customer` "
                             "parameter on the PaymentIntent.", param="payment_method")
    if owner is not None and owner != customer:
        raise InvalidRequest("The provided PaymentMethod belongs to a different Customer "
                             "than the PaymentIntent's.", param="payment_method")
    # a PSP's own token is a card stored at that PSP, for merchant-initiated charges too
    if off_session and not pinned and (customer is None or owner != customer):
        raise InvalidRequest("off_session=true needs a customer and a payment_method saved "
                             "to that customer.", param="off_session")


def use_op(p: PaymentIntent, resolved: Resolved | None = None
           ) -> ops.UsePaymentMethod | None:
    """The claim a confirmation's first commit makes on its card: none for a test shortcut
    (never a vault row: nothing to claim, no write on the hot path). A card the request did
    not read but took as this process kept it (``resolved.kept_version``) is claimed at that
    row version: the database refuses the unit if the card changed (units.CardChanged)."""
    if p.payment_method is None or lookup_test_payment_method(p.payment_method) is not None \
            or psp_tokens.parse(p.payment_method) is not None:  # nor for a PSP's token
        return None
    if resolved is not None and resolved.kept_version is not None:
        if resolved.row is None or resolved.row["id"] != p.payment_method \
                or resolved.live_customer is None or resolved.live_customer != p.customer:
            # a kept row that is not this intent's card for this customer: claiming the
            # intent's card unchecked would charge what nothing read (fail closed)
            raise RuntimeError(f"the kept card given for {p.id} is not its payment method "
                               "for its customer")
        return ops.UsePaymentMethod(
            payment_method_id=p.payment_method, merchant_id=p.merchant_id,
            payment_intent_id=p.id, customer=resolved.live_customer,
            row_version=resolved.kept_version)
    return ops.UsePaymentMethod(payment_method_id=p.payment_method, merchant_id=p.merchant_id,
                                payment_intent_id=p.id)


async def save_after_success(kassa: Kassa, p: PaymentIntent
                             ) -> tuple[list[ops.Op], dict[str, Any] | None]:
    """What the authorisation's finisher commits when the intent succeeds with
    ``setup_future_usage`` and a customer: the card attached to them (the database applies
    it only if the card is still unattached and the customer not deleted), and the
    ``payment_method.attached`` event's object (None: nothing to attach)."""
    if not (p.customer and p.setup_future_usage and p.payment_method):
        return [], None
    row = await store.get_payment_method(kassa.pool, merchant_id=p.merchant_id,
                                         payment_method_id=p.payment_method)
    if row is None or row["customer"] is not None or row["detached"]:
        return [], None
    op = ops.SavePaymentMethod(payment_method_id=row["id"], merchant_id=p.merchant_id,
                               customer=p.customer)
    return [op], PM({**row, "customer": p.customer})


async def lock_saveable(conn: asyncpg.Connection, p: PaymentIntent) -> bool:
    """Inside the finisher's transaction, before its commit: lock the customer and the card
    (attach's order) and say whether the save_payment_method op will attach it. Held until
    the commit, so ``payment_method.attached`` is emitted only for a card that really was
    (not one attached, detached or whose customer was deleted since save_after_success)."""
    assert p.customer is not None and p.payment_method is not None
    owner = await customers_db.get_customer(conn, merchant_id=p.merchant_id, customer_id=p.customer,
                                            for_update=True)
    if owner is None or owner["deleted"]:
        return False
    pm = await customers_db.get_payment_method_for_update(conn, merchant_id=p.merchant_id,
                                                          payment_method_id=p.payment_method)
    return pm is not None and pm["customer"] is None and not pm["detached"]
