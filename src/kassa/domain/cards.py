"""Card number arithmetic shared by the vault and the simulator's issuer."""

from __future__ import annotations


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check of a 12–19 digit card number."""
    if not (12 <= len(number) <= 19) or not (number.isascii() and number.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0
