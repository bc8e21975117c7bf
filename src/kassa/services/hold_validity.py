"""How long a PSP keeps an uncaptured card authorisation valid, by the account kassa sent it
to: a platform account's from its settings (KASSA_*_HOLD_VALIDITY_SECONDS), a merchant's own
account (``pspacct_…``) from its ``hold_validity_days`` or else its PSP's documented
validity. Recovery voids a hold at this deadline (expiry.py); a capture refused past it
releases the hold (capture.py)."""

from __future__ import annotations

from typing import Any

from kassa.db import psp_accounts as psp_accounts_db
from kassa.domain.errors import InvalidRequest
from kassa.psp.accounts import is_account_id
from kassa.services.context import Kassa

DAY_S = 24 * 3600
# per PSP: (documented default, longest an account may set), in days.
# Stripe: an online card payment's authorisation is held 7 days (kassa never asks for
# extended authorisation). Adyen: 28 days for the major card networks (12 for Cartes
# Bancaires), and an account can be set up with a shorter automatic cancellation. The
# simulator's default is the platform simulator's (KASSA_SIMULATOR_HOLD_VALIDITY_SECONDS).
DAYS: dict[str, tuple[int | None, int]] = {"stripe": (7, 7), "adyen": (28, 28),
                                           "simulator": (None, 30)}


def parse_days(psp: str, value: Any) -> int:
    """``hold_validity_days`` of a merchant's account: whole days, 1 to the PSP's longest."""
    longest = DAYS[psp][1]
    days: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif isinstance(value, str) and value.strip().isdigit():
        days = int(value.strip())
    if days is None or not 1 <= days <= longest:
        raise InvalidRequest(f"Invalid hold_validity_days: a whole number of days from 1 to "
                             f"{longest} (how long {psp} keeps an uncaptured authorisation).",
                             param="hold_validity_days")
    return days


def account_seconds(kassa: Kassa, psp: str, days: int | None) -> float:
    if days is not None:
        return float(days * DAY_S)
    default = DAYS.get(psp, (None, 0))[0]
    if default is None:  # the simulator's: as the platform's simulator is configured
        return kassa.watch.hold_validity(psp)
    return float(default * DAY_S)


async def seconds(kassa: Kassa, psp: str) -> float:
    """The validity of an authorisation made at ``psp`` (an account's name)."""
    if not is_account_id(psp):
        return kassa.watch.hold_validity(psp)
    found = await psp_accounts_db.hold_validity_of(kassa.pool, psp)
    if found is None:  # not a merchant's account kassa knows: the platform default
        return kassa.watch.hold_validity(psp)
    return account_seconds(kassa, found[0], found[1])
