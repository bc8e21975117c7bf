"""Envelope encryption: round trips, and every way a ciphertext can be wrong yields no PAN."""

from __future__ import annotations

import base64
import logging
import os
import pickle

import pytest

from kassa.vault import crypto
from kassa.vault.keyring import KeyringError, LocalKeyring, UnwrapFailed, parse_keyring
from kassa.vault.secret import CardNumber, Secret

PAN = "4242424242424242"


def keyring(*versions: int) -> LocalKeyring:
    return LocalKeyring(text=",".join(
        f"v{v}:{base64.b64encode(os.urandom(32)).decode()}" for v in versions))


def aad(pm: str = "pm_1", merchant: str = "acct_1") -> bytes:
    return crypto.card_aad(payment_method_id=pm, merchant_id=merchant)


def test_a_sealed_pan_opens_with_its_key_and_place():
    key = crypto.new_data_key()
    sealed = crypto.seal(key, CardNumber(PAN), aad())
    assert PAN.encode() not in sealed
    assert crypto.open_sealed(key, sealed, aad()).reveal() == PAN


def test_sealing_twice_gives_different_ciphertexts():
    key = crypto.new_data_key()
    assert crypto.seal(key, CardNumber(PAN), aad()) != crypto.seal(key, CardNumber(PAN), aad())


@pytest.mark.parametrize("where", [0, 5, 12, 20, -1])
def test_a_tampered_ciphertext_yields_no_pan(where):
    key = crypto.new_data_key()
    sealed = bytearray(crypto.seal(key, CardNumber(PAN), aad()))
    sealed[where] ^= 0x01
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(key, bytes(sealed), aad())


@pytest.mark.parametrize("other", [aad(pm="pm_2"), aad(merchant="acct_2"), b""])
def test_a_ciphertext_moved_to_another_row_or_merchant_yields_no_pan(other):
    key = crypto.new_data_key()
    sealed = crypto.seal(key, CardNumber(PAN), aad())
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(key, sealed, other)


def test_another_data_key_yields_no_pan():
    sealed = crypto.seal(crypto.new_data_key(), CardNumber(PAN), aad())
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(crypto.new_data_key(), sealed, aad())


async def test_data_keys_wrap_and_unwrap_by_version():
    keys = keyring(1, 2)
    dek = crypto.new_data_key()
    context = crypto.data_key_aad(data_key_id="dk_1", merchant_id="acct_1", purpose="card")
    for version in (1, 2):
        wrapped = await keys.wrap(version, dek, context)
        assert dek not in wrapped
        assert await keys.unwrap(version, wrapped, context) == dek


async def test_a_wrong_kek_version_or_context_unwraps_nothing():
    keys = keyring(1, 2)
    dek = crypto.new_data_key()
    context = crypto.data_key_aad(data_key_id="dk_1", merchant_id="acct_1", purpose="card")
    wrapped = await keys.wrap(1, dek, context)
    with pytest.raises(UnwrapFailed):
        await keys.unwrap(2, wrapped, context)
    with pytest.raises(UnwrapFailed):
        await keys.unwrap(1, wrapped, crypto.data_key_aad(
            data_key_id="dk_2", merchant_id="acct_1", purpose="card"))
    with pytest.raises(UnwrapFailed):  # the same version number in another keyring
        await keyring(1).unwrap(1, wrapped, context)
    with pytest.raises(KeyringError):
        await keys.unwrap(3, wrapped, context)
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(UnwrapFailed):
        await keys.unwrap(1, bytes(tampered), context)


def test_fingerprints_are_per_merchant_and_stable():
    merchant_a, merchant_b = crypto.new_data_key(), crypto.new_data_key()
    one = crypto.fingerprint(merchant_a, CardNumber(PAN))
    assert one == crypto.fingerprint(merchant_a, CardNumber(PAN))
    assert len(one) == 16 and one.isalnum()
    assert one != crypto.fingerprint(merchant_b, CardNumber(PAN))
    assert one != crypto.fingerprint(merchant_a, CardNumber("4000056655665556"))


@pytest.mark.parametrize("text", ["v1:abc", "x1:" + "A" * 44, "v0:" + base64.b64encode(
    b"k" * 32).decode(), "v1:" + base64.b64encode(b"short").decode()])
def test_a_malformed_keyring_is_refused(text):
    with pytest.raises(KeyringError):
        parse_keyring(text)


def test_a_keyring_file_gains_versions(tmp_path):
    from kassa.vault.keyring import new_keyring_file

    path = tmp_path / "kek"
    new_keyring_file(path)
    ring = LocalKeyring(path=path)
    assert list(ring.versions()) == [1]
    assert ring.add_version() == 2
    assert list(LocalKeyring(path=path).versions()) == [1, 2]
    assert path.stat().st_mode & 0o777 == 0o600


def test_secrets_never_show_their_value(caplog):
    number, cvc = CardNumber(PAN), Secret("737")
    for shown in (repr(number), str(number), f"{number}", f"{number!r}", "{}".format(number),  # noqa: UP032
                  repr([number, cvc]), repr({"n": number})):
        assert PAN not in shown and "737" not in shown
    assert str(number) == "CardNumber(…4242)"
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("card %s cvc %s", number, cvc)
    assert PAN not in caplog.text and "737" not in caplog.text
    with pytest.raises(TypeError):
        pickle.dumps(number)
    with pytest.raises(AttributeError):
        number._value = "x"  # type: ignore[misc]
    assert number == CardNumber(PAN) and number.last4 == "4242" and number.reveal() == PAN
