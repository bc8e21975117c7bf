"""Request schemas: strict about what Stripe is strict about (unknown parameters, integer
amounts), lenient where form encoding makes everything a string."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kassa.domain.errors import InvalidRequest
from kassa.domain.lists import Bounds

_INT = re.compile(r"^-?[0-9]{1,30}$")  # ASCII digits only: \d admits "١٠٠"


def _integer(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and _INT.match(v.strip()):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    # the error type is Stripe's code (api/errors.py passes it on), the message its wording
    given = v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
    raise PydanticCustomError("parameter_invalid_integer", "Invalid integer: {value}",
                              {"value": given if len(given) <= 100 else given[:100] + "…"})


def _boolean(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ValueError("Invalid boolean")


def _metadata(v: Any) -> Any:
    if v == "" or v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError("Invalid metadata: must be an object of string keys and values")
    if len(v) > 50:
        raise ValueError("Invalid metadata: at most 50 keys")
    out = {}
    for k, val in v.items():
        if val == "" or val is None:
            continue  # Stripe: an empty value unsets the key
        if not isinstance(val, str | int | float) or isinstance(val, bool):
            raise ValueError(f"Invalid metadata value for {k}")
        if len(str(k)) > 40 or len(str(val)) > 500:
            raise ValueError("Invalid metadata: keys ≤ 40 and values ≤ 500 characters")
        out[str(k)] = str(val)
    return out


def _absolute_http_url(v: str) -> str:
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in v):
        raise ValueError("must be an absolute http(s) URL without whitespace or control "
                         "characters")
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("must be an absolute http(s) URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL, such as https://example.com/done")
    return v


Integer = Annotated[int, BeforeValidator(_integer)]
# bounds go before the validator, so that /openapi.json shows them as minimum/maximum
Limit = Annotated[int, Field(ge=1, le=100), BeforeValidator(_integer)]
NonNegativeInteger = Annotated[int, Field(ge=0), BeforeValidator(_integer)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
Metadata = Annotated[dict[str, str], BeforeValidator(_metadata)]
Text = Annotated[str, Field(max_length=1000)]
Id = Annotated[str, Field(min_length=1, max_length=255)]
# Where a customer is sent back to: an absolute http(s) URL, nothing a browser would read
# as relative or as another scheme (javascript:, data:).
AbsoluteUrl = Annotated[str, Field(max_length=2000, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"),
                        AfterValidator(_absolute_http_url)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    expand: list[str] | None = None  # checked and applied by services/expand.py


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Strict):
    city: Annotated[str, Field(max_length=200)] | None = None
    country: Annotated[str, Field(max_length=2)] | None = None
    line1: Annotated[str, Field(max_length=200)] | None = None
    line2: Annotated[str, Field(max_length=200)] | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    state: Annotated[str, Field(max_length=200)] | None = None


class Shipping(_Strict):
    """Stripe's shipping hash: name and address are required."""

    address: Address
    name: Annotated[str, Field(min_length=1, max_length=200)]
    carrier: Annotated[str, Field(max_length=200)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    tracking_number: Annotated[str, Field(max_length=200)] | None = None


class AutomaticPaymentMethods(_Strict):
    enabled: Boolean
    allow_redirects: Literal["always", "never"] | None = None


class CardOptions(_Strict):
    # Stripe: only "manual" overrides; "" unsets it (an update)
    capture_method: Literal["manual", ""] | None = None
    setup_future_usage: Literal["none", "off_session", "on_session", ""] | None = None


class PaymentMethodOptions(_Strict):
    card: CardOptions | None = None


def _patch(v: Any) -> Any:
    """An update's metadata: a key given empty is removed; ``metadata=""`` clears them all
    (None)."""
    if v == "":
        return None
    if not isinstance(v, dict):
        raise ValueError("Invalid metadata: must be an object of string keys and values")
    kept = _metadata({k: val for k, val in v.items() if val not in ("", None)})
    return {**{str(k): None for k, val in v.items() if val in ("", None)}, **kept}


MetadataPatch = Annotated[dict[str, str | None] | None, BeforeValidator(_patch)]
Email = Annotated[str, Field(max_length=800)]
Descriptor = Annotated[str, Field(max_length=100)]  # Stripe's rules: domain/intent_fields.py
FutureUsage = Literal["on_session", "off_session"]


def _off_session(v: Any) -> Any:
    """Stripe takes a boolean, or ``one_off``/``recurring`` (both mean true)."""
    return True if v in ("one_off", "recurring") else _boolean(v)


OffSession = Annotated[bool, BeforeValidator(_off_session)]
# the optional Stripe fields create and update pass on as they were given
INTENT_FIELDS = ("receipt_email", "statement_descriptor", "statement_descriptor_suffix",
                 "shipping", "setup_future_usage", "automatic_payment_methods",
                 "payment_method_options")


class PaymentIntentCreate(Params):
    amount: Integer
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    capture_method: Literal["automatic", "automatic_async", "manual"] = "automatic"
    confirm: Boolean = False
    payment_method: Id | None = None
    payment_method_types: list[Literal["card"]] | None = None
    description: Text | None = None
    metadata: Metadata | None = None
    return_url: AbsoluteUrl | None = None
    confirmation_method: Literal["automatic", "manual"] = "automatic"
    customer: Id | None = None
    off_session: OffSession = False
    receipt_email: Email | None = None
    statement_descriptor: Descriptor | None = None
    statement_descriptor_suffix: Descriptor | None = None
    shipping: Shipping | None = None
    setup_future_usage: FutureUsage | None = None
    automatic_payment_methods: AutomaticPaymentMethods | None = None
    payment_method_options: PaymentMethodOptions | None = None

    def intent_fields(self) -> dict[str, Any]:
        return intent_fields_of(self)

    @model_validator(mode="after")
    def _one_way_to_name_payment_methods(self) -> PaymentIntentCreate:
        if self.automatic_payment_methods is not None and self.payment_method_types:
            raise InvalidRequest("You may only specify one of these parameters: "
                                 "automatic_payment_methods, payment_method_types.",
                                 param="automatic_payment_methods", code="parameters_exclusive")
        return self


class PaymentIntentUpdate(Params):
    """Every field optional; only the ones given change. ``""`` unsets a string field."""

    amount: Integer | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    capture_method: Literal["automatic", "automatic_async", "manual"] | None = None
    payment_method: Id | None = None
    payment_method_types: list[Literal["card"]] | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    metadata: MetadataPatch = None
    customer: Id | None = None
    receipt_email: Email | None = None
    statement_descriptor: Descriptor | None = None
    statement_descriptor_suffix: Descriptor | None = None
    shipping: Shipping | Literal[""] | None = None
    setup_future_usage: FutureUsage | Literal[""] | None = None
    payment_method_options: PaymentMethodOptions | None = None

    def changes(self) -> dict[str, Any]:
        """The given parameters as the service takes them (``""`` → None: unset)."""
        given = self.model_fields_set - {"expand", "payment_method_types"}
        out: dict[str, Any] = {}
        for name in given:
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                value = value.model_dump(exclude_none=True)
            out[name] = None if value == "" else value
        if "amount" in out and out["amount"] is None:
            raise InvalidRequest("Invalid integer: amount", param="amount")
        return out


def intent_fields_of(body: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in INTENT_FIELDS:
        if name in body.model_fields_set and getattr(body, name) is not None:
            value = getattr(body, name)
            out[name] = value.model_dump(exclude_none=True) if isinstance(value, BaseModel) \
                else value
    options = out.get("payment_method_options", {}).get("card")
    if options is not None:  # "" (unset) means nothing at create
        out["payment_method_options"] = {"card": {k: v for k, v in options.items() if v}}
    return out


class PaymentIntentConfirm(Params):
    payment_method: Id | None = None
    return_url: AbsoluteUrl | None = None
    off_session: OffSession = False
    client_secret: Annotated[str, Field(max_length=255)] | None = None


class PaymentIntentCapture(Params):
    amount_to_capture: Integer | None = None


class PaymentIntentCancel(Params):
    cancellation_reason: str | None = None


class RefundCreate(Params):
    payment_intent: Id | None = None
    charge: Id | None = None
    amount: Integer | None = None
    reason: str | None = None
    metadata: Metadata | None = None


def _bounds(v: Any) -> Any:
    if isinstance(v, Bounds):
        return v
    if isinstance(v, dict):
        unknown = sorted(set(v) - {"gt", "gte", "lt", "lte"})
        if unknown:
            raise ValueError(f"unknown bound {unknown[0]!r}; use gt, gte, lt or lte")
        return Bounds(**{k: _timestamp(val) for k, val in v.items()})
    return Bounds.exactly(_timestamp(v))


def _timestamp(v: Any) -> int:
    n: int = _integer(v)
    if not 0 <= n < 2**62:
        raise ValueError("must be a Unix time in seconds")
    return n


# created=N (exactly N) or created[gt|gte|lt|lte]=N, as Stripe's lists take it
Range = Annotated[Bounds, BeforeValidator(_bounds)]


class RefundUpdate(Params):
    metadata: MetadataPatch = None


class RefundCancel(Params):
    pass


class ListQuery(BaseModel):
    """A list's query string, in Stripe's bracket notation (``created[gte]=…``,
    ``expand[0]=…``). Every parameter is one kassa applies: an unknown one is a 400, never
    an unfiltered page."""

    model_config = ConfigDict(extra="forbid")
    limit: Limit = 10
    starting_after: Id | None = None
    ending_before: Id | None = None
    created: Range | None = None
    expand: list[str] | None = None  # e.g. data.latest_charge (services/expand.py)


class SearchQuery(BaseModel):
    """A search's query string: Stripe's query language, a page size and a page token."""

    model_config = ConfigDict(extra="forbid")
    query: Annotated[str, Field(max_length=4000)]
    limit: Limit = 10
    page: Annotated[str, Field(max_length=200)] | None = None
    expand: list[str] | None = None  # data.latest_charge …, checked by services/expand.py


Filter = Annotated[str, Field(max_length=255)]


class BalanceTransactionListQuery(ListQuery):
    type: Filter | None = None
    source: Filter | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    payout: Filter | None = None  # what an automatic payout contains


class DisputeListQuery(ListQuery):
    payment_intent: Filter | None = None
    charge: Filter | None = None


class EventListQuery(ListQuery):
    type: Filter | None = None
    types: Annotated[list[Filter], Field(min_length=1, max_length=20)] | None = None

    @model_validator(mode="after")
    def _type_or_types(self) -> EventListQuery:
        if self.type is not None and self.types is not None:
            raise InvalidRequest("You may pass either type or types, but not both.",
                                 param="types")
        return self


class RefundListQuery(ListQuery):
    payment_intent: Filter | None = None
    charge: Filter | None = None


class DeliveryListQuery(ListQuery):
    status: Filter | None = None


class BalanceQuery(BaseModel):
    """The balance's query string: ``as_of`` (unix seconds) asks for the balance at the end
    of that second; checked against the clock by the service."""

    model_config = ConfigDict(extra="forbid")
    as_of: Integer | None = None
    expand: list[Annotated[str, Field(max_length=200)]] | None = None


class ExpandQuery(BaseModel):
    """A retrieve's query string: only ``expand[]`` is read (in Stripe's bracket notation)."""

    model_config = ConfigDict(extra="ignore")
    expand: list[Annotated[str, Field(max_length=200)]] | None = None


class ChargeListQuery(ListQuery):
    payment_intent: Filter | None = None
