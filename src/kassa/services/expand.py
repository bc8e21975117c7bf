"""Stripe's ``expand[]``: an id in a response replaced by the object it names, on request
(``latest_charge``, ``latest_charge.balance_transaction``, ``data.latest_charge`` on a list).

``check`` refuses a path the object cannot expand before anything runs — a create or confirm
must not charge a card and then answer 400 — and ``expand`` loads what the paths name
through the services that own each object, scoped to the caller's merchant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kassa.domain.errors import InvalidRequest, NotFound
from kassa.representations.payment_methods import payment_method as payment_method_object
from kassa.services import balances, charges, disputes, payment_methods, payments, refunds
from kassa.services.context import Kassa
from kassa.vault.test_cards import lookup_test_payment_method

MAX_DEPTH = 4  # Stripe expands at most four levels
LISTS = frozenset({"list", "search_result"})
SOURCE = "source"  # a balance transaction's source: a charge, refund or dispute, by its id

# per object type, the fields that name another object and that object's type ("" for a
# field that is always inline already, such as a charge's refunds)
EXPANDABLE: dict[str, dict[str, str]] = {
    "payment_intent": {"latest_charge": "charge", "payment_method": "payment_method",
                       "customer": "customer"},
    "payment_method": {"customer": "customer"},
    "charge": {"balance_transaction": "balance_transaction", "payment_intent": "payment_intent",
               "refunds": ""},
    "refund": {"charge": "charge", "payment_intent": "payment_intent"},
    "dispute": {"charge": "charge", "payment_intent": "payment_intent"},
    "balance_transaction": {"source": SOURCE},
}
# a source's type by the prefix of its id
SOURCE_TYPES = {"ch_": "charge", "re_": "refund", "dp_": "dispute"}


def _fields(kind: str) -> dict[str, str]:
    if kind == SOURCE:
        return {k: v for t in SOURCE_TYPES.values() for k, v in EXPANDABLE[t].items()}
    return EXPANDABLE.get(kind, {})


def check(kind: str, paths: list[str] | None, *, item: str | None = None) -> list[str]:
    """The paths, each one ``kind`` (or, for a list, its ``item`` type) can expand; anything
    else is a 400 as at Stripe."""
    for path in paths or []:
        segments = path.split(".")
        if len(segments) > MAX_DEPTH:
            raise InvalidRequest(f"You cannot expand more than {MAX_DEPTH} levels of a "
                                 f"property ({path}).", param="expand")
        current = kind
        for i, segment in enumerate(segments):
            if current in LISTS and segment == "data" and item is not None:
                current = item
                continue
            target = _fields(current).get(segment)
            if target is None or (target == "" and i < len(segments) - 1):
                hint = ""
                if current in LISTS and item is not None and segment in _fields(item):
                    hint = f" You may want to try expanding 'data.{path}' instead."
                raise InvalidRequest(f"This property cannot be expanded ({path}).{hint}",
                                     param="expand")
            current = target or current
    return list(paths or [])


def _tree(paths: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for segment in path.split("."):
            node = node.setdefault(segment, {})
    return tree


async def expand(kassa: Kassa, *, merchant_id: str, obj: dict[str, Any],
                 paths: list[str] | None) -> dict[str, Any]:
    """``obj`` with every path in ``paths`` (already ``check``ed) expanded, in place."""
    if paths:
        await _apply(kassa, merchant_id, obj, _tree(paths))
    return obj


async def _apply(kassa: Kassa, merchant_id: str, obj: dict[str, Any], tree: dict[str, Any]
                 ) -> None:
    for field, subtree in tree.items():
        value = obj.get(field)
        if obj.get("object") in LISTS and field == "data":
            for entry in value or []:
                await _apply(kassa, merchant_id, entry, subtree)
            continue
        if isinstance(value, str):
            value = await _load(kassa, merchant_id, field, value, obj)
            obj[field] = value
        if isinstance(value, dict) and subtree:
            await _apply(kassa, merchant_id, value, subtree)


Loader = Callable[[Kassa, str, str, dict[str, Any]], Awaitable[dict[str, Any] | str]]


async def _load(kassa: Kassa, merchant_id: str, field: str, object_id: str,
                parent: dict[str, Any]) -> dict[str, Any] | str:
    kind = EXPANDABLE.get(str(parent.get("object")), {}).get(field)
    if kind == SOURCE:
        kind = SOURCE_TYPES.get(object_id[:3])
    loader = LOADERS.get(kind or "")
    if loader is None:
        return object_id  # no object kassa serves by this id
    return await loader(kassa, merchant_id, object_id, parent)


async def _charge(kassa: Kassa, merchant_id: str, object_id: str, parent: dict[str, Any]
                  ) -> dict[str, Any] | str:
    return await charges.retrieve(kassa, merchant_id=merchant_id, charge_id=object_id)


async def _payment_intent(kassa: Kassa, merchant_id: str, object_id: str,
                          parent: dict[str, Any]) -> dict[str, Any] | str:
    return await payments.retrieve(kassa, merchant_id=merchant_id, payment_id=object_id)


async def _refund(kassa: Kassa, merchant_id: str, object_id: str, parent: dict[str, Any]
                  ) -> dict[str, Any] | str:
    return await refunds.retrieve(kassa, merchant_id=merchant_id, refund_id=object_id)


async def _dispute(kassa: Kassa, merchant_id: str, object_id: str, parent: dict[str, Any]
                   ) -> dict[str, Any] | str:
    return await disputes.retrieve(kassa, merchant_id=merchant_id, dispute_id=object_id)


async def _balance_transaction(kassa: Kassa, merchant_id: str, object_id: str,
                               parent: dict[str, Any]) -> dict[str, Any] | str:
    bt = await balances.retrieve_balance_transaction(kassa, merchant_id=merchant_id,
                                                     bt_id=object_id)
    return object_id if bt is None else bt


async def _payment_method(kassa: Kassa, merchant_id: str, object_id: str,
                          parent: dict[str, Any]) -> dict[str, Any] | str:
    """A card the vault tokenised, as its service shows it; one of Stripe's test payment
    methods from its public facts; an id that resolves to neither stays an id."""
    test_card = lookup_test_payment_method(object_id)
    if test_card is None:
        try:
            return await payment_methods.retrieve(kassa, merchant_id=merchant_id,
                                                  payment_method_id=object_id)
        except NotFound:
            return object_id
    return payment_method_object({
        "id": object_id, "brand": test_card.brand, "billing_details": {},
        "checks": {"address_line1_check": None, "address_postal_code_check": None,
                   "cvc_check": None},
        "country": test_card.country, "exp_month": test_card.exp_month,
        "exp_year": test_card.exp_year, "fingerprint": None, "funding": test_card.funding,
        "last4": test_card.number[-4:], "created": int(parent.get("created") or 0),
        "customer": None, "livemode": False, "metadata": {}})


async def _customer(kassa: Kassa, merchant_id: str, object_id: str, parent: dict[str, Any]
                    ) -> dict[str, Any] | str:
    from kassa.services import customers

    return await customers.retrieve(kassa, merchant_id=merchant_id, customer_id=object_id)


LOADERS: dict[str, Loader] = {
    "customer": _customer,
    "charge": _charge, "payment_intent": _payment_intent, "refund": _refund, "dispute": _dispute,
    "balance_transaction": _balance_transaction, "payment_method": _payment_method,
}
