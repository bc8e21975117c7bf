"""Merchants' own PSP accounts: create, retrieve, list, update (enabled, currencies,
settings, credentials rotation), delete. ``hold_validity_days`` (optional, changeable) is
how long the PSP keeps the account's uncaptured authorisations (services/hold_validity.py).

Credentials are write-only: checked for the PSP's shape here, sealed (kassa/secrets_box.py)
with the account's id and merchant as associated data, and never returned or logged.
The adapter that uses them is built per process (psp/accounts.py, bootstrap's factory),
rebuilt when the row's revision changes.

DELETE keeps the row: payments the account took still capture, refund and recover
there. It is refused while the merchant's active routing configuration names the account
(``psp_account_in_use``): activate one without it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from kassa.db import psp_accounts as psp_accounts_db
from kassa.db import routing_configs as routing_configs_db
from kassa.domain.currencies import CURRENCIES, WITHDRAWN
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.psp.accounts import adyen_live, credentials_aad
from kassa.psp.base import PSPCredentialsRefused, PSPError
from kassa.representations.psp_accounts import STRIPE_ACCOUNT, deleted_psp_account, psp_account
from kassa.secrets_box import SecretsBox
from kassa.services import hold_validity
from kassa.services.context import Kassa
from kassa.services.routing_configs import stored_policy
from kassa.services.uow import IdempotencyHandle, UnitOfWork

ID_PREFIX = "pspacct"
PSPS = ("adyen", "simulator", "stripe")
# per PSP: credentials required, credentials allowed, settings required, settings allowed
CREDENTIALS = {
    "stripe": (("api_key",), ("api_key", "webhook_secret")),
    "adyen": (("api_key", "hmac_keys"), ("api_key", "hmac_keys")),
    "simulator": ((), ("webhook_secret",)),
}
SETTINGS = {
    "stripe": ((), ("base_url", "hold_validity_days")),
    "adyen": (("merchant_account",), ("base_url", "merchant_account", "hold_validity_days")),
    "simulator": (("base_url",), ("base_url", "hold_validity_days")),
}
# the settings that name the account at the PSP (never changed by an update)
IDENTITY = ("base_url", "merchant_account")
# the hosts (and their subdomains) a base_url may name in production
PRODUCTION_HOSTS = {"stripe": ("api.stripe.com",),
                    "adyen": ("adyen.com", "adyenpayments.com")}
MAX_CURRENCIES = 50
MAX_SECRET = 4096
STRIPE_API = "https://api.stripe.com"


def _box(kassa: Kassa) -> SecretsBox:
    if kassa.secrets is None:
        raise InvalidRequest("PSP accounts cannot be stored: this kassa has no secrets key "
                             "(set KASSA_SECRETS_KEYS or KASSA_SECRETS_KEY_FILE).",
                             code="psp_accounts_unavailable")
    return kassa.secrets


def _not_found(account_id: str) -> NotFound:
    return NotFound(f"No such psp_account: '{account_id[:100]}'", param="id")


def _indexed(value: Any, param: str) -> list[Any]:
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.split(",")) if v]
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(isinstance(k, str) and k.isascii() and k.isdigit()
                                       for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise InvalidRequest(f"Invalid {param}: must be a list.", param=param)


def parse_currencies(value: Any) -> list[str]:
    if value is None:
        raise InvalidRequest("Missing required param: currencies.", param="currencies",
                             code="parameter_missing")
    items = _indexed(value, "currencies")
    if not 1 <= len(items) <= MAX_CURRENCIES:
        raise InvalidRequest(f"Invalid currencies: give 1 to {MAX_CURRENCIES} ISO 4217 codes.",
                             param="currencies")
    out: list[str] = []
    for i, item in enumerate(items):
        code = item.lower() if isinstance(item, str) else None
        if code is None or code not in CURRENCIES or code in WITHDRAWN:
            raise InvalidRequest(f"Invalid currencies[{i}]: not a supported ISO 4217 currency "
                                 "code.", param=f"currencies[{i}]")
        if code not in out:
            out.append(code)
    return sorted(out)


def _printable(value: str) -> bool:
    # PostgreSQL text refuses NUL, and a control character in a URL or name is no one's
    return value.isprintable()


def _base_url(value: Any, *, production: bool) -> str:
    if not isinstance(value, str) or len(value) > 2048 or not _printable(value) \
            or " " in value:
        raise InvalidRequest("Invalid base_url: an http(s) URL of up to 2048 characters.",
                             param="base_url")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        port, parts = -1, None
    if parts is None or port == -1 or parts.scheme not in ("http", "https") \
            or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise InvalidRequest("Invalid base_url: an http(s) URL with a host and no query, "
                             "fragment or user.", param="base_url")
    if production and parts.scheme != "https":
        raise InvalidRequest("Invalid base_url: https is required in production.",
                             param="base_url")
    return value.rstrip("/")


def _production_host(psp: str, url: str) -> None:
    """In production a merchant's base_url may only name the PSP's own API hosts: kassa's
    servers call it with no vault in between for captures, refunds and lookups, so any
    other host would let a merchant make kassa call into its private network (SSRF)."""
    host = (urlsplit(url).hostname or "").lower()
    allowed = PRODUCTION_HOSTS.get(psp, ())
    if not any(host == h or host.endswith("." + h) for h in allowed):
        raise InvalidRequest(f"Invalid base_url: in production a {psp} account's API is on "
                             f"{' or '.join(allowed) or 'no host'}.", param="base_url")


def parse_settings(psp: str, given: dict[str, Any], *, production: bool,
                   partial: bool = False) -> dict[str, Any]:
    required, allowed = SETTINGS[psp]
    out: dict[str, Any] = {}
    for name in (*IDENTITY, "hold_validity_days"):
        value = given.get(name)
        if value is None or value == "":
            if name in required and not partial:
                raise InvalidRequest(f"Missing required param: {name} (a {psp} account "
                                     "needs it).", param=name, code="parameter_missing")
            continue
        if name not in allowed:
            raise InvalidRequest(f"Received unknown parameter: {name} (not used by {psp} "
                                 "accounts).", param=name)
        if name == "hold_validity_days":
            # how long the PSP keeps this account's uncaptured authorisations (expiry.py)
            out[name] = hold_validity.parse_days(psp, value)
        elif name == "base_url":
            out[name] = _base_url(value, production=production)
            if production:
                _production_host(psp, out[name])
            if psp == "adyen" and adyen_live(out[name]) and not production:
                raise InvalidRequest("Invalid base_url: a live Adyen endpoint is refused "
                                     "unless kassa runs with KASSA_ENV=production.",
                                     param="base_url", code="livemode_mismatch")
        elif not isinstance(value, str) or not value.strip() or len(value) > 200 \
                or not _printable(value):
            raise InvalidRequest("Invalid merchant_account: 1 to 200 characters.",
                                 param="merchant_account")
        else:
            out[name] = value.strip()
    return out


def _secret(value: Any, param: str) -> str:
    # the message never repeats the value: it is a secret even when malformed
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SECRET:
        raise InvalidRequest(f"Invalid {param}: a string of 1 to {MAX_SECRET} characters.",
                             param=param)
    return value.strip()


def parse_credentials(psp: str, value: Any, *, production: bool) -> dict[str, Any]:
    if value is None:
        if CREDENTIALS[psp][0]:
            raise InvalidRequest(f"Missing required param: credentials[{CREDENTIALS[psp][0][0]}]"
                                 f" (a {psp} account needs it).",
                                 param=f"credentials[{CREDENTIALS[psp][0][0]}]",
                                 code="parameter_missing")
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid credentials: must be an object.", param="credentials")
    required, allowed = CREDENTIALS[psp]
    for key in value:
        if key not in allowed:
            raise InvalidRequest(f"Received unknown parameter: credentials[{str(key)[:40]}] "
                                 f"(a {psp} account takes {', '.join(allowed) or 'none'}).",
                                 param=f"credentials[{str(key)[:40]}]")
    for key in required:
        if value.get(key) in (None, ""):
            raise InvalidRequest(f"Missing required param: credentials[{key}] (a {psp} "
                                 "account needs it).", param=f"credentials[{key}]",
                                 code="parameter_missing")
    out: dict[str, Any] = {}
    for key in allowed:
        if value.get(key) in (None, ""):
            continue
        param = f"credentials[{key}]"
        if key == "hmac_keys":
            keys = [_secret(v, f"{param}[{i}]") for i, v in
                    enumerate(_indexed(value[key], param))]
            if not 1 <= len(keys) <= 2:
                raise InvalidRequest(f"Invalid {param}: one HMAC key, or two while rotating.",
                                     param=param)
            for i, k in enumerate(keys):
                try:
                    bytes.fromhex(k)
                except ValueError:
                    raise InvalidRequest(f"Invalid {param}[{i}]: an HMAC key is hex.",
                                         param=f"{param}[{i}]") from None
            out[key] = keys
            continue
        out[key] = _secret(value[key], param)
    if psp == "stripe":
        key = out["api_key"]
        if not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise InvalidRequest("Invalid credentials[api_key]: a Stripe secret key starts "
                                 "with sk_test_ or sk_live_ (rk_ for a restricted key).",
                                 param="credentials[api_key]")
        if key.startswith(("sk_live_", "rk_live_")) and not production:
            raise InvalidRequest("Invalid credentials[api_key]: a live key is refused unless "
                                 "kassa runs with KASSA_ENV=production.",
                                 param="credentials[api_key]", code="livemode_mismatch")
        if "webhook_secret" in out and not out["webhook_secret"].startswith("whsec_"):
            raise InvalidRequest("Invalid credentials[webhook_secret]: a Stripe webhook "
                                 "signing secret starts with whsec_.",
                                 param="credentials[webhook_secret]")
    return out


def livemode(psp: str, settings: dict[str, Any], credentials: dict[str, Any]) -> bool:
    """Does the account move real money (a live Stripe key, a live Adyen endpoint)."""
    if psp == "stripe":
        return bool(credentials["api_key"].startswith(("sk_live_", "rk_live_")))
    return psp == "adyen" and adyen_live(settings.get("base_url"))


def idempotency_params(kassa: Kassa, raw: dict[str, Any]) -> dict[str, Any]:
    """The request as its Idempotency-Key's fingerprint sees it: credentials only as a
    keyed digest (services/idempotency.py hashes the params unkeyed and keeps the hash)."""
    if "credentials" not in raw:
        return raw
    canonical = orjson.dumps(raw["credentials"], option=orjson.OPT_SORT_KEYS)
    digest = "withheld" if kassa.secrets is None else kassa.secrets.fingerprint(canonical)
    return {**raw, "credentials": digest}


def _enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise InvalidRequest("Invalid enabled: must be a boolean.", param="enabled")


async def stripe_account(kassa: Kassa, secrets: dict[str, Any],
                         settings: dict[str, Any]) -> str | None:
    """The Stripe account (acct_…) the key belongs to, asked with that key before anything
    is stored (no DB transaction is open across the call). None: not asked (localstripe).
    A key Stripe refuses, or a Stripe that cannot be asked now: 400, nothing stored."""
    ask = kassa.stripe_account_of
    if ask is None:
        return None
    param = "credentials[api_key]"
    try:
        return await ask(secrets["api_key"], settings.get("base_url") or STRIPE_API)
    except PSPCredentialsRefused:
        raise InvalidRequest("Invalid credentials[api_key]: Stripe refused this key (unknown, "
                             "revoked, or a restricted key without read access to the "
                             "account).", param=param, code="psp_credentials_invalid") from None
    except PSPError as exc:
        raise InvalidRequest("The key could not be checked with Stripe now (its account is "
                             f"looked up with it): {str(exc)[:200]}. Nothing was stored; try "
                             "again.", param=param, code="psp_unreachable") from None


def _same_stripe_account(row: Mapping[str, Any], found: str | None) -> None:
    """A rotation stays in the Stripe account the account is bound to: the payments it
    took (their pi_… ids) live there, and another account's key would not find them."""
    bound = row["settings"].get(STRIPE_ACCOUNT)
    if found is not None and bound is not None and bound != found:
        raise InvalidRequest(
            f"Invalid credentials[api_key]: the key belongs to Stripe account {found}, but "
            f"this PSP account is bound to {bound} (the payments it took live there). "
            "Rotate to a key of the same Stripe account, or create another PSP account "
            "for the other one.", param="credentials[api_key]",
            code="psp_account_identity_mismatch")


def _seal(kassa: Kassa, credentials: dict[str, Any], *, account_id: str,
          merchant_id: str) -> bytes:
    return _box(kassa).seal(orjson.dumps(credentials, option=orjson.OPT_SORT_KEYS),
                            credentials_aad(account_id=account_id, merchant_id=merchant_id))


async def create(kassa: Kassa, *, merchant_id: str, psp: Any, currencies: Any,
                 credentials: Any = None, enabled: Any = True, base_url: Any = None,
                 merchant_account: Any = None, hold_validity_days: Any = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    if psp not in PSPS:
        raise InvalidRequest(f"Invalid psp: must be one of {', '.join(PSPS)}.", param="psp")
    production = kassa.production
    if production and psp == "simulator":
        raise InvalidRequest("Invalid psp: a simulator account moves no money and is refused "
                             "in production.", param="psp")
    settings = parse_settings(psp, {"base_url": base_url,
                                    "merchant_account": merchant_account,
                                    "hold_validity_days": hold_validity_days},
                              production=production)
    codes = parse_currencies(currencies)
    secrets = parse_credentials(psp, credentials, production=production)
    on = _enabled(enabled)
    _box(kassa)
    if psp == "stripe":
        found = await stripe_account(kassa, secrets, settings)
        if found is not None:
            settings[STRIPE_ACCOUNT] = found
    account_id = kassa.ids(ID_PREFIX)
    sealed = _seal(kassa, secrets, account_id=account_id, merchant_id=merchant_id)
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        row = await psp_accounts_db.insert_account(
            conn, account_id=account_id, merchant_id=merchant_id, psp=psp, enabled=on,
            currencies=codes, settings=settings, credentials=sealed,
            livemode=livemode(psp, settings, secrets), created=kassa.clock())
        result = psp_account(row)
        await uow.commit(response=result)
    kassa.psps_changed(account_id)
    return result


async def retrieve(kassa: Kassa, *, merchant_id: str, account_id: str) -> dict[str, Any]:
    row = await psp_accounts_db.get_account(kassa.pool, merchant_id=merchant_id,
                                            account_id=account_id)
    if row is None:
        raise _not_found(account_id)
    return psp_account(row)


async def update(kassa: Kassa, *, merchant_id: str, account_id: str, currencies: Any = None,
                 credentials: Any = None, enabled: Any = None, base_url: Any = None,
                 merchant_account: Any = None, hold_validity_days: Any = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Credentials given replace the stored ones whole (a rotation: the old key stops being
    used by every process within the registry's refresh period). A Stripe key is looked
    up first (outside the transaction): it must belong to the bound Stripe account."""
    found = None
    if credentials is not None:
        current = await psp_accounts_db.get_account(kassa.pool, merchant_id=merchant_id,
                                                    account_id=account_id)
        if current is None:
            raise _not_found(account_id)
        if current["psp"] == "stripe":
            secrets = parse_credentials("stripe", credentials, production=kassa.production)
            found = await stripe_account(kassa, secrets, current["settings"])
            _same_stripe_account(current, found)
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        row = await psp_accounts_db.get_account(conn, merchant_id=merchant_id,
                                                account_id=account_id, for_update=True)
        if row is None:
            raise _not_found(account_id)
        psp = row["psp"]
        production = kassa.production
        settings = None
        if base_url is not None or merchant_account is not None \
                or hold_validity_days is not None:
            changes = parse_settings(
                psp, {"base_url": base_url, "merchant_account": merchant_account,
                      "hold_validity_days": hold_validity_days},
                production=production, partial=True)
            for name, value in changes.items():
                # the account's identity at the PSP: its payments' captures, refunds and
                # lookups go there, and its notifications are recognised by it (Adyen
                # drops another merchantAccountCode's); another identity is another account
                if name in IDENTITY and row["settings"].get(name) not in (None, value):
                    raise InvalidRequest(
                        f"{name} names the account at the PSP and does not change: the "
                        "payments it took are followed up there. Create another PSP account "
                        "and route to it instead.", param=name,
                        code="psp_account_identity_immutable")
            settings = {**row["settings"], **changes}
        codes = None if currencies is None else parse_currencies(currencies)
        sealed = None
        if credentials is not None:
            secrets = parse_credentials(psp, credentials, production=production)
            if livemode(psp, settings or row["settings"], secrets) != row["livemode"]:
                raise InvalidRequest("Invalid credentials: a rotation keeps the account's mode "
                                     "(test or live); create another account for the other.",
                                     param="credentials", code="livemode_mismatch")
            sealed = _seal(kassa, secrets, account_id=account_id, merchant_id=merchant_id)
            if found is not None:  # read again under the lock: bound meanwhile?
                _same_stripe_account(row, found)
                if row["settings"].get(STRIPE_ACCOUNT) is None:  # bound by this rotation
                    settings = {**(settings or row["settings"]), STRIPE_ACCOUNT: found}
        elif settings is not None and psp == "adyen" and \
                adyen_live(settings.get("base_url")) != row["livemode"]:
            raise InvalidRequest("Invalid base_url: the account's mode (test or live) does not "
                                 "change; create another account for the other.",
                                 param="base_url", code="livemode_mismatch")
        updated = await psp_accounts_db.update_account(
            conn, merchant_id=merchant_id, account_id=account_id, now=kassa.clock(),
            enabled=None if enabled is None else _enabled(enabled), currencies=codes,
            settings=settings, credentials=sealed)
        assert updated is not None  # locked above
        result = psp_account(updated)
        await uow.commit(response=result)
    kassa.psps_changed(account_id)
    return result


async def delete(kassa: Kassa, *, merchant_id: str, account_id: str,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        # the merchant's row lock orders this against an activation naming the account
        await psp_accounts_db.lock_merchant(conn, merchant_id)
        row = await psp_accounts_db.get_account(conn, merchant_id=merchant_id,
                                                account_id=account_id, for_update=True)
        if row is None:
            raise _not_found(account_id)
        active = await routing_configs_db.get_active(conn, merchant_id)
        if active is not None and account_id in stored_policy(active).psps():
            raise InvalidRequest(
                f"The PSP account '{account_id}' is named by the active routing configuration "
                f"'{active['id']}'; activate one without it (or disable the account) first.",
                param="id", code="psp_account_in_use")
        await psp_accounts_db.mark_deleted(conn, merchant_id=merchant_id,
                                           account_id=account_id, now=kassa.clock())
        result = deleted_psp_account(account_id)
        await uow.commit(response=result)
    kassa.psps_changed(account_id)
    return result


async def list_accounts(kassa: Kassa, *, merchant_id: str, limit: int,
                        starting_after: str | None, ending_before: str | None,
                        created: Bounds | None = None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await psp_accounts_db.list_accounts(
        kassa.pool, merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before, created=created)
    return [psp_account(r) for r in rows], more
