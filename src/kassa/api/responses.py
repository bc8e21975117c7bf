"""What the API answers, for /openapi.json: the error shape (the one ``errors.error_body``
builds) and each object's identifying fields. The objects are built in ``kassa.representations``
(one module per resource); these models name the fields a client keys on, with their types and
enums taken from the domain, and allow the rest (schemathesis checks every answer
against them, so they cannot drift unnoticed)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kassa.domain.payments import PaymentStatus, RefundStatus

T = TypeVar("T")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    type: Literal["api_error", "card_error", "idempotency_error", "invalid_request_error"]
    message: str
    code: str | None = None
    param: str | None = None
    decline_code: str | None = None
    charge: str | None = None
    payment_intent: dict[str, Any] | None = None
    doc_url: str | None = Field(None, description="Stripe's page for the code, for the codes "
                                "Stripe defines.")
    request_log_url: str | None = Field(None, description="The request's entry in the request "
                                        "log (GET /v1/request_logs/{id}).")
    payment_method: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer."""

    error: Error


class PaymentIntentObject(_Open):
    id: str
    object: Literal["payment_intent"]
    amount: int = Field(description="In the currency's minor unit.")
    amount_capturable: int
    amount_received: int
    currency: str
    status: PaymentStatus
    capture_method: Literal["automatic", "automatic_async", "manual"]
    confirmation_method: Literal["automatic", "manual"]
    client_secret: str | None
    payment_method: str | None
    payment_method_types: list[str]
    description: str | None
    metadata: dict[str, str]
    latest_charge: str | None
    last_payment_error: dict[str, Any] | None
    next_action: dict[str, Any] | None = Field(description="redirect_to_url while the "
                                               "status is requires_action (3-D Secure).")
    canceled_at: int | None
    cancellation_reason: str | None
    livemode: Literal[False]
    created: int


class RefundObject(_Open):
    id: str
    object: Literal["refund"]
    amount: int
    currency: str
    status: RefundStatus
    payment_intent: str
    charge: str | None
    reason: str | None
    failure_reason: str | None = Field(None, description="Only once the refund failed.")
    metadata: dict[str, str]
    created: int


class EventRequest(BaseModel):
    id: str | None = Field(description="The req_ id of the API request that caused the event; "
                           "null for automatic events.")
    idempotency_key: str | None


class EventObject(_Open):
    id: str
    object: Literal["event"]
    type: str
    created: int
    data: dict[str, Any]
    request: EventRequest


class RequestLogObject(_Open):
    id: str = Field(description="The request's Request-Id.")
    object: Literal["request_log"]
    created: int
    method: str
    path: str
    status: int
    idempotency_key: str | None
    error: dict[str, Any] | None


class BalanceAmount(_Open):
    amount: int
    currency: str


class BalanceObject(_Open):
    object: Literal["balance"]
    available: list[BalanceAmount]
    pending: list[BalanceAmount]


class BalanceTransactionObject(_Open):
    id: str
    object: Literal["balance_transaction"]
    amount: int
    fee: int
    net: int
    currency: str
    type: str
    status: str


class WebhookEndpointObject(_Open):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[str]
    status: str
    secret: str | None = Field(None, description="Only in the answers that create or "
                                                  "rotate it.")
    stripe_signature: bool = Field(description="Deliveries also carry the signature under "
                                   "Stripe-Signature (kassa's field; on by default).")


class DeletedWebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint"]
    deleted: Literal[True]


class WebhookDeliveryObject(_Open):
    id: str
    object: Literal["webhook_delivery"]
    webhook_endpoint: str
    event: str
    status: str


class DisputeObject(_Open):
    id: str
    object: Literal["dispute"]
    amount: int
    currency: str
    status: str
    payment_intent: str | None


class PaymentMethodObject(_Open):
    """A card the vault tokenised: never its number, only what may be shown."""

    id: str
    object: Literal["payment_method"]
    type: Literal["card"]
    card: dict[str, Any]


class CustomerObject(_Open):
    id: str
    object: Literal["customer"]
    email: str | None
    name: str | None
    metadata: dict[str, str]
    invoice_settings: dict[str, Any]


class DeletedCustomer(BaseModel):
    id: str
    object: Literal["customer"]
    deleted: Literal[True]


class ListOf(BaseModel, Generic[T]):
    object: Literal["list"]
    url: str
    has_more: bool
    data: list[T]


class SearchResultOf(BaseModel, Generic[T]):
    object: Literal["search_result"]
    url: str
    has_more: bool
    next_page: str | None
    data: list[T]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]  # what readiness needs (the database, a dev process's parts)
    dependencies: dict[str, bool] | None = None  # shown only: PSPs answering their health


class WebhookReceipt(_Open):
    """A PSP delivery accepted (its events stored, or recognised as duplicates)."""

    received: Literal[True]
    events: int
    duplicates: int


class ChargeObject(_Open):
    id: str
    object: Literal["charge"]
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    status: Literal["succeeded", "pending", "failed"]
    paid: bool
    captured: bool
    refunded: bool
    disputed: bool
    payment_intent: str | dict[str, Any] | None
    payment_method: str | None
    balance_transaction: str | dict[str, Any] | None
    failure_code: str | None
    failure_message: str | None
    receipt_url: str | None
    livemode: Literal[False]
    created: int
