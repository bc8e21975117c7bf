"""Stripe's list and search_result objects: one page of a resource and whether more follow."""

from __future__ import annotations

from typing import Any


def list_object(url: str, items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": items}


def search_result(url: str, items: list[dict[str, Any]], next_page: str | None
                  ) -> dict[str, Any]:
    return {"object": "search_result", "url": url, "has_more": next_page is not None,
            "next_page": next_page, "data": items}
