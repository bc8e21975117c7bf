"""The placeholders that stand for card fields in a PSP request built outside the vault.

``kvault_<payment method id>_<field>``: letters, digits and underscores only, so JSON and
form encoding carry them unchanged and the vault finds them as whole values."""

from __future__ import annotations

import re

MARKER = b"kvault_pm_"
FIELDS = ("number", "cvc")
PAYMENT_METHOD_ID = re.compile(r"^pm_[0-9A-Za-z]{24}$")
PLACEHOLDER = re.compile(r"^kvault_(pm_[0-9A-Za-z]{24})_(number|cvc)$")


def placeholder(payment_method_id: str, field: str) -> str:
    if field not in FIELDS or not PAYMENT_METHOD_ID.match(payment_method_id):
        raise ValueError("not a vault payment method field")
    return f"kvault_{payment_method_id}_{field}"


def parse(value: str) -> tuple[str, str] | None:
    """(payment method id, field) if ``value`` is a placeholder, else None."""
    match = PLACEHOLDER.match(value)
    return None if match is None else (match.group(1), match.group(2))
