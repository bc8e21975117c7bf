"""Multi-currency use cases (domain/fx.py has the design): loading and pulling rates,
fixing a payment's conversion at confirmation, the current rate a refund trades at, and
each merchant's settlement currency.

The settlement currency is read through a per-process cache (``Kassa.fx``), filled by the
API key lookup of each request (db/merchants.find_api_key joins it), so confirming a
payment whose merchant settles in the payment's own currency — or has no settlement
currency — costs no extra database round trip; only a payment that really converts reads
a rate. (A caller that did not come through the API, a worker, reads it once per
``KASSA_FX_SETTINGS_CACHE_SECONDS``.)
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx

from kassa.db import fx as fx_db
from kassa.db.pool import Conn
from kassa.domain.errors import InvalidRequest
from kassa.domain.fx import Conversion, Rate, RateUnavailable, read_csv, read_provider
from kassa.domain.payments import PaymentIntent
from kassa.services.context import Kassa


async def settlement_currency(kassa: Kassa, merchant_id: str) -> str | None:
    cached = kassa.fx.settlement.get(merchant_id)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    value = await fx_db.get_settlement_currency(kassa.pool, merchant_id)
    if len(kassa.fx.settlement) > 10_000:
        kassa.fx.settlement.clear()
    kassa.fx.settlement[merchant_id] = (now + kassa.fx.cache_seconds, value)
    return value


def remember_settlement(kassa: Kassa, merchant_id: str, currency: str | None) -> None:
    """What another read (the API key's, services/merchants.py) found: cached as if read."""
    if len(kassa.fx.settlement) > 10_000:
        kassa.fx.settlement.clear()
    kassa.fx.settlement[merchant_id] = (time.monotonic() + kassa.fx.cache_seconds, currency)


def forget_settlement(kassa: Kassa, merchant_id: str) -> None:
    """The merchant's settlement currency changed: this process reads it again."""
    kassa.fx.settlement.pop(merchant_id, None)


async def usable_rate(kassa: Kassa, conn: Conn, *, base: str, quote: str) -> Rate | None:
    now = kassa.clock()
    return await fx_db.latest_rate(conn, base=base, quote=quote,
                                   not_before=now - kassa.fx.max_age_seconds, now=now)


async def fix_conversion(kassa: Kassa, p: PaymentIntent) -> None:
    """Before a confirmation writes anything: the conversion the payment will use. The
    settlement currency is fixed at the first confirmation (a later one — after a decline,
    before any money moved — keeps it and takes the then-latest rate; an update of the
    intent's currency drops it, so the next confirmation decides anew); a payment in the
    merchant's own settlement currency converts nothing. No usable rate: RateUnavailable
    (400 ``fx_rate_unavailable``), and nothing is written."""
    settlement = p.fx.settlement if p.fx is not None else await settlement_currency(
        kassa, p.merchant_id)
    if settlement is None or settlement == p.currency:
        p.fx = None
        return
    rate = await usable_rate(kassa, kassa.pool, base=p.currency, quote=settlement)
    if rate is None:
        raise RateUnavailable(p.currency, settlement, kassa.fx.max_age_seconds)
    p.fx = Conversion(p.currency, settlement, rate.rate, rate.id)


async def trading_rate(kassa: Kassa, conn: Conn, conversion: Conversion | None
                       ) -> Decimal | None:
    """The rate a refund or dispute debit of a converted payment trades at now (None: no
    usable current rate, so the original one is used and no FX difference arises)."""
    if conversion is None:
        return None
    rate = await usable_rate(kassa, conn, base=conversion.presentment,
                             quote=conversion.settlement)
    return None if rate is None else rate.rate


async def store(kassa: Kassa, rates: list[Rate]) -> dict[str, int]:
    new = await fx_db.insert_rates(kassa.pool, rates, loaded_at=kassa.clock(),
                                   new_id=lambda: kassa.ids("fx_rate"))
    return {"read": len(rates), "stored": new}


async def load_file(kassa: Kassa, text: str, *, source: str) -> dict[str, int]:
    """``kassa fx load FILE.csv``: every row is checked before any is stored."""
    return await store(kassa, list(read_csv(text, default_source=source)))


async def pull(kassa: Kassa, client: httpx.AsyncClient, url: str) -> dict[str, int]:
    """``kassa fx pull``: the provider's current rates (JSON or CSV, domain/fx.py)."""
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"The rates provider could not be reached: {exc}.",
                             param="url") from None
    if response.status_code != 200:
        raise InvalidRequest(f"The rates provider answered HTTP {response.status_code}.",
                             param="url")
    rates = read_provider(response.text, content_type=response.headers.get(
        "content-type", ""), default_source=url)
    return await store(kassa, rates)


def rate_object(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "base": row["base"], "quote": row["quote"],
            "rate": str(row["rate"]), "source": row["source"], "as_of": row["as_of"],
            "loaded_at": row["loaded_at"]}


async def list_rates(kassa: Kassa, *, base: str | None = None) -> list[dict[str, Any]]:
    return [rate_object(r) for r in await fx_db.list_rates(kassa.pool, base=base)]


async def exchange_rate(kassa: Kassa, *, currency: str) -> dict[str, Any]:
    """Stripe's ``exchange_rate`` object for ``currency``: the usable rates from it (JSON
    numbers, as Stripe's; ``kassa fx rates`` shows the exact decimals)."""
    now = kassa.clock()
    rows = [r for r in await fx_db.list_rates(kassa.pool, base=currency, limit=1000)
            if now - kassa.fx.max_age_seconds <= r["as_of"] <= now]
    return {"id": currency, "object": "exchange_rate",
            "rates": {r["quote"]: float(r["rate"]) for r in rows}}
