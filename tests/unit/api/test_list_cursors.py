"""Every list route of the app has its cursors checked (services/pagination.LISTS)."""

from __future__ import annotations

from kassa.api.app import create_app
from kassa.services.pagination import LISTS

# paged by something else, and checked by its own service (or route: a charge's refunds)
OWN_CURSORS = {"/v1/webhook_endpoints/{endpoint_id}/deliveries",
               "/v1/charges/{charge_id}/refunds",
               # a customer's saved cards (services/saved_cards.list_for_customer)
               "/v1/payment_methods", "/v1/customers/{customer_id}/payment_methods"}


def test_every_list_route_is_in_the_cursor_table():
    paths = create_app(max_body_bytes=1024, answer_within_seconds=1.0).openapi()["paths"]
    lists = {path for path, ops in paths.items() if "get" in ops
             and "starting_after" in {p["name"] for p in ops["get"].get("parameters", [])}}
    assert len(lists) >= 6, lists
    assert lists - OWN_CURSORS == set(LISTS)
