"""kassa's routing_config object (an extension: Stripe has none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def routing_config(row: Mapping[str, Any]) -> dict[str, Any]:
    """From a routing_configs row (db/routing_configs.py)."""
    return {
        "id": row["id"],
        "object": "routing_config",
        "active": row["active"],
        "activated_at": row["activated_at"],
        "created": row["created"],
        "default_route": row["default_route"],
        "livemode": False,
        "name": row["name"],
        "rules": row["rules"],
        "version": row["version"],
    }
