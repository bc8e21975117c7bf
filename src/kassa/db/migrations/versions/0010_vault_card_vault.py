"""The card vault's own schema ``kassa_vault`` (ARCHITECTURE §8).

Revision ID: vault_card_vault
Revises: stripe_wire_request_ids

- ``kek_versions``: which key-encryption key version new data keys are wrapped under (one
  ``active``), which may still unwrap (``decrypt_only``) and which are ``retired``. The KEK
  itself is never here, only ``probe``: a random key wrapped by it, so a vault started with
  the wrong keyring refuses to start.
- ``data_keys``: AES-256 data keys, each wrapped by a KEK version (``purpose`` card: one per
  card; fingerprint: the merchant's HMAC key). A trigger refuses a data key under a retired
  version, locking the version row so that retiring it and wrapping under it serialise.
- ``card_secrets``: the sealed PAN (nonce || AES-GCM ciphertext and tag) of each card.
- ``payment_methods``: what may be shown (brand, last4, expiry, fingerprint …); the serving
  role may read this table and nothing else of the schema (kassa/vault/roles.py).
- ``idempotency_keys``: ``POST /v1/payment_methods`` under an Idempotency-Key, kept 24 hours:
  the payment method it made and a keyed MAC of the request (never the request itself, which
  holds a card number).
"""

from alembic import op

revision = "vault_card_vault"
down_revision = "stripe_wire_request_ids"

SCHEMA = r"""
CREATE SCHEMA kassa_vault;

CREATE TABLE kassa_vault.kek_versions (
    version     integer PRIMARY KEY CHECK (version > 0),
    state       text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
    probe       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE UNIQUE INDEX kek_versions_one_active ON kassa_vault.kek_versions ((true))
    WHERE state = 'active';

CREATE TABLE kassa_vault.data_keys (
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES public.merchants(id),
    purpose      text NOT NULL CHECK (purpose IN ('card', 'fingerprint')),
    kek_version  integer NOT NULL REFERENCES kassa_vault.kek_versions(version),
    wrapped      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);
CREATE UNIQUE INDEX data_keys_one_fingerprint_key ON kassa_vault.data_keys (merchant_id)
    WHERE purpose = 'fingerprint';
CREATE INDEX data_keys_by_version ON kassa_vault.data_keys (kek_version, id);

CREATE FUNCTION kassa_vault.refuse_retired_kek() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kek_state text;
BEGIN
    -- FOR SHARE: a retirement in progress (FOR UPDATE) is waited for and then seen
    SELECT state INTO kek_state FROM kassa_vault.kek_versions
        WHERE version = NEW.kek_version FOR SHARE;
    IF kek_state IS DISTINCT FROM 'active' AND kek_state IS DISTINCT FROM 'decrypt_only' THEN
        RAISE EXCEPTION 'KEK version % is retired', NEW.kek_version
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER data_keys_live_kek BEFORE INSERT OR UPDATE OF kek_version
    ON kassa_vault.data_keys FOR EACH ROW EXECUTE FUNCTION kassa_vault.refuse_retired_kek();

CREATE TABLE kassa_vault.payment_methods (
    id              text PRIMARY KEY,
    merchant_id     text NOT NULL REFERENCES public.merchants(id),
    type            text NOT NULL DEFAULT 'card' CHECK (type = 'card'),
    brand           text NOT NULL,
    last4           text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month       integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year        integer NOT NULL,
    funding         text NOT NULL,
    country         text,
    fingerprint     text NOT NULL,
    checks          jsonb NOT NULL,
    billing_details jsonb NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    customer        text,
    livemode        boolean NOT NULL DEFAULT false,
    created         bigint NOT NULL
);
CREATE INDEX payment_methods_by_merchant ON kassa_vault.payment_methods
    (merchant_id, created DESC, id DESC);
CREATE INDEX payment_methods_by_fingerprint ON kassa_vault.payment_methods
    (merchant_id, fingerprint);

CREATE TABLE kassa_vault.card_secrets (
    payment_method_id text PRIMARY KEY REFERENCES kassa_vault.payment_methods(id),
    merchant_id       text NOT NULL,
    data_key_id       text NOT NULL UNIQUE REFERENCES kassa_vault.data_keys(id),
    pan               bytea NOT NULL
);

CREATE TABLE kassa_vault.idempotency_keys (
    merchant_id       text NOT NULL,
    key               text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_mac       bytea NOT NULL,
    payment_method_id text NOT NULL REFERENCES kassa_vault.payment_methods(id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_by_age ON kassa_vault.idempotency_keys (created_at);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP SCHEMA kassa_vault CASCADE")
