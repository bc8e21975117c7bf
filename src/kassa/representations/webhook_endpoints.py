"""Stripe's webhook_endpoint object, and the answer to deleting one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def webhook_endpoint(row: Mapping[str, Any], *, secret: str | None = None) -> dict[str, Any]:
    """From a webhook_endpoints row; the secret only in the responses that create it."""
    obj: dict[str, Any] = {
        "id": row["id"],
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": row["created"],
        "description": row["description"],
        "enabled_events": list(row["enabled_events"]),
        "livemode": False,
        "metadata": row["metadata"],
        "status": row["status"],
        # kassa's: deliveries also carry Stripe-Signature (for Stripe's SDK verifiers)
        "stripe_signature": row["stripe_signature"],
        "url": row["url"],
    }
    if secret is not None:
        obj["secret"] = secret
    return obj


def deleted_webhook_endpoint(endpoint_id: str) -> dict[str, Any]:
    return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
