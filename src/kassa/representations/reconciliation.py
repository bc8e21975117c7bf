"""Reconciliation runs and their discrepancies (kassa extensions, Stripe-styled objects)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def run(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "object": "reconciliation_run", "psp": row["psp"],
        "format": row["format"],
        "source": {"name": row["source_name"], "sha256": row["file_sha256"]},
        "status": row["status"], "rows_read": row["rows_read"],
        "rows_matched": row["rows_matched"], "discrepancies": row["discrepancies"],
        "covers": {"from": row["covers_from"], "to": row["covers_to"]},
        "failure": row["failure"], "created": row["created"],
        "completed_at": row["completed_at"],
    }


def discrepancy(row: Mapping[str, Any]) -> dict[str, Any]:
    resolved = row["resolution"] != "open"
    return {
        "id": row["id"], "object": "reconciliation_discrepancy", "run": row["run_id"],
        "kind": row["kind"], "category": row["category"], "row_number": row["row_number"],
        "psp_reference": row["psp_reference"], "kassa_object": row["kassa_object"],
        "merchant": row["merchant_id"], "currency": row["currency"],
        "kassa_amount": row["kassa_amount"], "psp_amount": row["psp_amount"],
        "kassa_value": row["kassa_value"], "psp_value": row["psp_value"],
        "resolution": {"status": row["resolution"], "how": row["resolution_how"],
                       "by": row["resolved_by"],
                       "at": row["resolved_at"] if resolved else None},
        "created": row["created"],
    }
