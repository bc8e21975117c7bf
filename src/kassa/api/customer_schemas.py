"""Request schemas of customers and saved cards (Stripe's parameters; strict like the rest
of kassa's schemas: an unknown parameter is a 400)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kassa.api.schemas import (
    Address,
    Filter,
    Id,
    Integer,
    ListQuery,
    Metadata,
    MetadataPatch,
    Params,
    _Strict,
)

Email = Annotated[str, Field(max_length=512)]
Name = Annotated[str, Field(max_length=256)]
Phone = Annotated[str, Field(max_length=20)]
Description = Annotated[str, Field(max_length=350)]


class InvoiceSettings(_Strict):
    default_payment_method: Id | Literal[""] | None = None


class CustomerCreate(Params):
    email: Email | None = None
    name: Name | None = None
    phone: Phone | None = None
    description: Description | None = None
    metadata: Metadata | None = None
    payment_method: Id | None = None  # a saved card to attach at once
    invoice_settings: InvoiceSettings | None = None


class CustomerUpdate(Params):
    """Only the given fields change; ``""`` unsets one."""

    email: Email | Literal[""] | None = None
    name: Name | Literal[""] | None = None
    phone: Phone | Literal[""] | None = None
    description: Description | Literal[""] | None = None
    metadata: MetadataPatch = None
    invoice_settings: InvoiceSettings | None = None

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.model_fields_set - {"expand", "invoice_settings"}:
            value = getattr(self, name)
            out[name] = None if value == "" else value
        settings = self.invoice_settings
        if settings is not None and "default_payment_method" in settings.model_fields_set:
            out["default_payment_method"] = settings.default_payment_method or None
        return out


class CustomerListQuery(ListQuery):
    email: Annotated[str, Field(max_length=512)] | None = None


class PaymentMethodAttach(Params):
    customer: Id


class PaymentMethodDetach(Params):
    pass


class BillingDetails(_Strict):
    address: Address | None = None
    email: Email | Literal[""] | None = None
    name: Name | Literal[""] | None = None
    phone: Phone | Literal[""] | None = None


class CardUpdate(_Strict):
    exp_month: Integer | None = None
    exp_year: Integer | None = None


class PaymentMethodUpdate(Params):
    billing_details: BillingDetails | None = None
    metadata: MetadataPatch = None
    card: CardUpdate | None = None

    def billing(self) -> dict[str, Any] | None:
        if self.billing_details is None:
            return None
        given = self.billing_details.model_dump(exclude_unset=True)
        return {k: (None if v == "" else v) for k, v in given.items()}


class PaymentMethodListQuery(ListQuery):
    customer: Filter | None = None
    type: Literal["card"] | None = None


class CustomerPaymentMethodListQuery(ListQuery):
    type: Literal["card"] | None = None
