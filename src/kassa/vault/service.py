"""The vault's use cases: tokenise a card (validate, seal, fingerprint, store) and open
sealed cards for a forwarded PSP request. Runs only in the vault process, the only one
with the key-encryption keys."""

from __future__ import annotations

import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kassa.domain import ids
from kassa.domain.errors import IdempotencyError, InvalidRequest
from kassa.vault import crypto, store
from kassa.vault.cards import CardInput, validate_card
from kassa.vault.cvc import CvcMemory
from kassa.vault.keyring import KeyEncryptionKeys, KeyringError, UnwrapFailed
from kassa.vault.secret import CardNumber

PROBE_AAD = b"kassa-vault/kek-probe"
BILLING_FIELDS = ("address", "email", "name", "phone")
ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


IDEMPOTENCY_HOURS = 24.0
# sealed cards (ciphertext rows) kept per vault process; a few hundred bytes each
SEALED_CACHE_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class Tokenized:
    row: dict[str, Any]  # the payment method's non-secret row
    replayed: bool = False  # the answer of an earlier request with this Idempotency-Key


class VaultStartupError(Exception):
    """The keyring and the database disagree (wrong key, missing version)."""


def new_id(prefix: str) -> str:
    return ids.encode(prefix, os.urandom(18))


@dataclass(slots=True)
class Vault:
    pool: asyncpg.Pool
    keys: KeyEncryptionKeys
    cvcs: CvcMemory = field(default_factory=lambda: CvcMemory(600.0))
    version_refresh_seconds: float = 5.0
    _active: tuple[float, int] | None = None
    _fingerprint_keys: dict[str, bytes] = field(default_factory=dict)
    _pruned_at: float = float("-inf")
    # payment method id -> its sealed PAN and wrapped data key as the database holds them
    # (ciphertext only; see open_cards)
    _sealed: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    sealed_cache_entries: int = SEALED_CACHE_ENTRIES

    async def check_keyring(self) -> int:
        """At start-up: every KEK version the database still uses must unwrap its probe
        with this keyring; with none registered yet, the keyring's newest becomes active.
        Returns the active version."""
        rows = await store.kek_versions(self.pool)
        if not rows:
            newest = max(self.keys.versions())
            await self.activate(newest)
            return newest
        for row in rows:
            if row["state"] == "retired":
                continue
            try:
                await self.keys.unwrap(row["version"], row["probe"], PROBE_AAD)
            except (KeyringError, UnwrapFailed) as exc:
                raise VaultStartupError(
                    f"KEK version {row['version']} ({row['state']}) cannot be used with "
                    f"this keyring: {exc}") from None
        return await self.active_version(fresh=True)

    async def activate(self, version: int) -> None:
        probe = await self.keys.wrap(version, crypto.new_data_key(), PROBE_AAD)
        async with self.pool.acquire() as conn:
            await store.register_kek_version(conn, version=version, probe=probe)
        self._active = None

    async def active_version(self, *, fresh: bool = False) -> int:
        now = time.monotonic()
        if not fresh and self._active is not None and self._active[0] > now:
            return self._active[1]
        rows = await store.kek_versions(self.pool)
        active = [int(r["version"]) for r in rows if r["state"] == "active"]
        if not active:
            raise VaultStartupError("no KEK version is active: run `kassa vault rotate-kek`")
        self._active = (now + self.version_refresh_seconds, active[0])
        return active[0]

    async def _fingerprint_key(self, merchant_id: str) -> bytes:
        cached = self._fingerprint_keys.get(merchant_id)
        if cached is not None:
            return cached
        row = await store.fingerprint_key(self.pool, merchant_id)
        if row is None:
            key_id, key = new_id("dk"), crypto.new_data_key()
            version = await self.active_version()
            aad = crypto.data_key_aad(data_key_id=key_id, merchant_id=merchant_id,
                                      purpose="fingerprint")
            await store.insert_fingerprint_key(
                self.pool, data_key_id=key_id, merchant_id=merchant_id, kek_version=version,
                wrapped=await self.keys.wrap(version, key, aad))
            row = await store.fingerprint_key(self.pool, merchant_id)  # a racer's, maybe
            assert row is not None
        key = await self.keys.unwrap(row["kek_version"], row["wrapped"], crypto.data_key_aad(
            data_key_id=row["id"], merchant_id=merchant_id, purpose="fingerprint"))
        self._fingerprint_keys[merchant_id] = key
        return key

    async def tokenize(self, *, merchant_id: str, params: dict[str, Any], livemode: bool,
                       now: int, idempotency_key: str | None = None) -> Tokenized:
        """POST /v1/payment_methods: the stored payment method's row (nothing secret).

        Under an Idempotency-Key, the same request again gets the payment method the first
        made (``replayed``), other parameters an IdempotencyError; a request refused by
        validation takes no key (as Stripe's)."""
        kind = params.get("type")
        if kind in (None, ""):
            raise InvalidRequest("Missing required param: type.", param="type",
                                 code="parameter_missing")
        if kind != "card":
            raise InvalidRequest(f"Invalid type: {kind!s:.32}. The vault takes type=card.",
                                 param="type")
        unknown = sorted(set(params) - {"type", "card", "billing_details", "metadata",
                                        "expand"})
        if unknown:
            raise InvalidRequest(f"Received unknown parameter: {unknown[0]:.64}",
                                 param=unknown[0], code="parameter_unknown")
        today = time.gmtime(now)
        card = validate_card(params.get("card"), today=(today.tm_year, today.tm_mon))
        billing = _billing_details(params.get("billing_details"))
        metadata = _metadata(params.get("metadata"))
        fingerprint_key = await self._fingerprint_key(merchant_id)
        idempotency = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 255:
                raise InvalidRequest("The Idempotency-Key must be 1 to 255 characters.",
                                     param="Idempotency-Key")
            idempotency = (idempotency_key, crypto.request_mac(fingerprint_key, params))
            earlier = await self._replay(merchant_id, idempotency)
            if earlier is not None:
                return earlier
        pm_id, key_id = new_id("pm"), new_id("dk")
        row = _row(pm_id, merchant_id, card, billing, metadata, livemode=livemode, now=now,
                   fingerprint=crypto.fingerprint(fingerprint_key, card.number))
        data_key = crypto.new_data_key()
        sealed = crypto.seal(data_key, card.number,
                             crypto.card_aad(payment_method_id=pm_id, merchant_id=merchant_id))
        aad = crypto.data_key_aad(data_key_id=key_id, merchant_id=merchant_id, purpose="card")
        for fresh in (False, True):  # a version retired since it was cached: once more
            version = await self.active_version(fresh=fresh)
            wrapped = await self.keys.wrap(version, data_key, aad)
            try:
                async with self.pool.acquire() as conn:
                    await store.insert_card(conn, pm=row, data_key_id=key_id,
                                            kek_version=version, wrapped=wrapped,
                                            sealed_pan=sealed, idempotency=idempotency)
                break
            except asyncpg.CheckViolationError:
                if fresh:
                    raise
            except asyncpg.UniqueViolationError:
                # a concurrent request with the same key committed first: its answer wins
                assert idempotency is not None
                earlier = await self._replay(merchant_id, idempotency)
                if earlier is None:
                    raise
                return earlier
        if card.cvc is not None:
            self.cvcs.keep(pm_id, card.cvc)
        if idempotency is not None:
            await self._prune()
        return Tokenized(row)

    async def _replay(self, merchant_id: str, idempotency: tuple[str, bytes]
                      ) -> Tokenized | None:
        found = await store.idempotency_key(self.pool, merchant_id=merchant_id,
                                            key=idempotency[0])
        if found is None:
            return None
        if not hmac.compare_digest(found["request_mac"], idempotency[1]):
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with.", param="Idempotency-Key")
        row = await store.get_payment_method(self.pool, merchant_id=merchant_id,
                                             payment_method_id=found["payment_method_id"])
        assert row is not None
        return Tokenized(row, replayed=True)

    async def _prune(self) -> None:
        """Forget idempotency keys older than a day, at most once a minute per process."""
        now = time.monotonic()
        if now < self._pruned_at + 60:
            return
        self._pruned_at = now
        await store.prune_idempotency_keys(self.pool, older_than_hours=IDEMPOTENCY_HOURS)

    async def open_cards(self, payment_method_ids: Sequence[str]) -> dict[str, CardNumber]:
        """The PANs of these payment methods (those that exist), each authenticated
        against its row: a sealed PAN or data key moved elsewhere fails here.

        A card's sealed PAN and data key are written once (no statement changes or deletes
        a card_secrets row); only a KEK rotation re-wraps the data key. So the ciphertext
        row is kept in this process's memory (bounded, least recently used first out) and
        the database is read again only for a card not kept, or kept under another KEK
        version than the active one (a rotation: from the next version refresh on, every
        kept row wrapped under the old version is read anew). What is kept is what the
        database holds, encrypted: each use still unwraps and authenticates it, and a
        kept row that no longer opens (its KEK gone from the keyring) is dropped and read
        once more. Nothing decrypted outlives the call."""
        out: dict[str, CardNumber] = {}
        try:
            active: int | None = await self.active_version()
        except VaultStartupError:  # no active version (never after check_keyring): keep none
            active = None
        kept: list[dict[str, Any]] = []
        unread: list[str] = []
        for pm_id in payment_method_ids:
            row = self._sealed.get(pm_id)
            if row is not None and row["kek_version"] == active:
                self._sealed.move_to_end(pm_id)
                kept.append(row)
            else:
                unread.append(pm_id)
        for row in kept:
            try:
                out[row["payment_method_id"]] = await self._open(row)
            except (crypto.DecryptionFailed, UnwrapFailed, KeyringError):
                self._sealed.pop(row["payment_method_id"], None)
                unread.append(row["payment_method_id"])
        if unread:
            for record in await store.sealed_cards(self.pool, unread):
                row = dict(record)
                out[row["payment_method_id"]] = await self._open(row)
                if row["kek_version"] == active:
                    self._keep_sealed(row)
        return out

    async def _open(self, row: dict[str, Any]) -> CardNumber:
        merchant = row["merchant_id"]
        key = await self.keys.unwrap(row["kek_version"], row["wrapped"], crypto.data_key_aad(
            data_key_id=row["data_key_id"], merchant_id=merchant, purpose="card"))
        return crypto.open_sealed(key, row["pan"], crypto.card_aad(
            payment_method_id=row["payment_method_id"], merchant_id=merchant))

    def _keep_sealed(self, row: dict[str, Any]) -> None:
        """Kept only once it opened (authenticated): a tampered row is never kept."""
        self._sealed[row["payment_method_id"]] = row
        self._sealed.move_to_end(row["payment_method_id"])
        while len(self._sealed) > self.sealed_cache_entries:
            self._sealed.popitem(last=False)


def _row(pm_id: str, merchant_id: str, card: CardInput, billing: dict[str, Any],
         metadata: dict[str, str], *, livemode: bool, now: int, fingerprint: str
         ) -> dict[str, Any]:
    address = billing.get("address") or {}
    return {
        "id": pm_id, "merchant_id": merchant_id, "type": "card", "brand": card.brand,
        "last4": card.number.last4, "exp_month": card.exp_month, "exp_year": card.exp_year,
        "funding": card.funding, "country": card.country, "fingerprint": fingerprint,
        "checks": {
            "address_line1_check": "unchecked" if address.get("line1") else None,
            "address_postal_code_check": "unchecked" if address.get("postal_code") else None,
            "cvc_check": "unchecked" if card.cvc is not None else None,
        },
        "billing_details": billing, "metadata": metadata, "customer": None,
        "livemode": livemode, "created": now,
    }


def _text(value: object, param: str, limit: int = 500) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRequest(f"Invalid {param}: a string of at most {limit} characters",
                             param=param)
    return value


def _billing_details(raw: object) -> dict[str, Any]:
    if raw in (None, ""):
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidRequest("Invalid billing_details: a hash", param="billing_details")
    unknown = sorted(set(raw) - set(BILLING_FIELDS))
    if unknown:
        raise InvalidRequest(f"Received unknown parameter: billing_details[{unknown[0]:.64}]",
                             param=f"billing_details[{unknown[0]:.64}]", code="parameter_unknown")
    address_raw = raw.get("address") or {}
    if not isinstance(address_raw, dict):
        raise InvalidRequest("Invalid billing_details[address]: a hash",
                             param="billing_details[address]")
    unknown = sorted(set(address_raw) - set(ADDRESS_FIELDS))
    if unknown:
        param = f"billing_details[address][{unknown[0]:.64}]"
        raise InvalidRequest(f"Received unknown parameter: {param}", param=param,
                             code="parameter_unknown")
    address = {f: _text(address_raw.get(f), f"billing_details[address][{f}]")
               for f in ADDRESS_FIELDS}
    return {"address": address,
            **{f: _text(raw.get(f), f"billing_details[{f}]") for f in ("email", "name",
                                                                       "phone")}}


def _metadata(raw: object) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict) or len(raw) > 50 or not all(
            isinstance(k, str) and len(k) <= 40 and isinstance(v, str) and len(v) <= 500
            for k, v in raw.items()):
        raise InvalidRequest("Invalid metadata: at most 50 keys of up to 40 characters, "
                             "values of up to 500", param="metadata")
    return dict(raw)
