"""Stripe's list object: one page of a resource and whether more follow."""

from __future__ import annotations

from typing import Any


def list_object(url: str, items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": items}
