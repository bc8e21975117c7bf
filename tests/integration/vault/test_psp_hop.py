"""The vault's PSP hop (vault/hop.py AiohttpHop, the one production uses) against real
sockets: compressed answers, aiohttp's resend of idempotent methods, the TLS trust store."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import Awaitable, Callable

import httpx
import orjson
import pytest

from tests.support.vault import FORWARD_TOKEN, tokenise

PAN = "4242424242424242"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length) if length else b""


def _gzip_echo(seen: list[bytes], *, always: bool) -> Handler:
    """A PSP echoing the request body (the card number in it) in its JSON answer, gzipped
    when the request accepts gzip (``always``: even when it does not)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await _read_request(reader)
        seen.append(head)
        payload = b'{"id": "auth_1", "status": "authorized", "echo": ' + orjson.dumps(
            body.decode()) + b"}"
        encoding = b""
        if always or b"gzip" in head.lower():
            payload, encoding = gzip.compress(payload), b"Content-Encoding: gzip\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + encoding
                     + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        await writer.drain()
        writer.close()

    return handle


async def _forward_through_vault(settings, dsn, shop, handler: Handler, method: str = "POST"
                                 ) -> tuple[httpx.Response | BaseException, str]:
    from kassa.vault.transport import VaultForwardingTransport
    from tests.support.vault import running_vault

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    psp = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server, running_vault(settings, dsn, vault_forward_hosts=psp) as vault:
        pm = (await tokenise(vault.url, shop["publishable_key"], PAN, cvc="737")).json()["id"]
        transport = VaultForwardingTransport(httpx.AsyncHTTPTransport(),
                                             forward_url=vault.forward_url, token=FORWARD_TOKEN)
        # httpx's client asks for gzip, as every adapter's client does
        async with httpx.AsyncClient(transport=transport) as client:
            try:
                return await client.request(method, psp + "/v1/authorizations",
                                            json={"number": f"kvault_{pm}_number"}), pm
            except httpx.TransportError as exc:
                return exc, pm


async def test_a_psp_echoing_the_card_number_answers_readable_and_masked(settings, dsn, shop):
    """It gzips when asked: the vault asks for identity, so the echo is masked and the JSON
    readable (before: raw gzip passed on without its Content-Encoding — the PAN reached the
    API process inside it and the answer could not be read)."""
    seen: list[bytes] = []
    r, pm = await _forward_through_vault(settings, dsn, shop, _gzip_echo(seen, always=False))
    assert isinstance(r, httpx.Response), r
    assert b"accept-encoding: identity" in seen[0].lower()
    assert b"gzip" not in seen[0].lower()
    assert PAN.encode() not in r.content
    assert r.json()["status"] == "authorized"
    assert r.json()["echo"] == orjson.dumps({"number": f"kvault_{pm}_number"}).decode()


async def test_a_psp_that_compresses_anyway_is_an_unknown_outcome(settings, dsn, shop):
    """An answer encoded although identity was asked for is never passed on: the adapter
    sees a sent request whose outcome is unknown (no failover, no PAN in the API)."""
    from kassa.psp.transport_errors import never_sent

    seen: list[bytes] = []
    r, _ = await _forward_through_vault(settings, dsn, shop, _gzip_echo(seen, always=True))
    assert seen  # the PSP had it
    assert isinstance(r, httpx.RemoteProtocolError), r
    assert not never_sent(r)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_the_vault_forwards_post_only(settings, dsn, shop, method):
    seen: list[bytes] = []
    r, _ = await _forward_through_vault(settings, dsn, shop, _gzip_echo(seen, always=False),
                                        method)
    assert isinstance(r, httpx.Response), r
    assert r.status_code == 405
    assert r.headers["kassa-forward-error"] == "refused"
    assert r.json()["error"]["code"] == "forward_refused"
    assert seen == []  # nothing reached the PSP


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_a_resent_request_whose_reconnect_is_refused_is_not_called_unsent(method):
    """aiohttp sends an idempotent method (PUT) again on a new connection after a
    kept-alive one dropped it; a refused reconnect is ClientConnectorError although the PSP
    had the request: that is outcome-unknown, not "connect" (which gives back the CVC and
    lets the payment fail over)."""
    from kassa.vault.hop import AiohttpHop, HopFailed

    got: list[bytes] = []

    async def answer_once_then_vanish(reader: asyncio.StreamReader,
                                      writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            got.append(head.split(b"\r\n")[0])
            if len(got) == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
                continue
            server.close()  # the PSP has the request; it goes away before answering
            writer.close()
            return

    server = await asyncio.start_server(answer_once_then_vanish, "127.0.0.1", 0)
    psp = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    hop = AiohttpHop()
    try:
        assert (await hop.send(method, psp + "/charge", [], b"card", 5)).status == 200
        with pytest.raises(HopFailed) as failed:
            await hop.send(method, psp + "/charge", [], b"card", 5)
    finally:
        await hop.aclose()
    assert len(got) == 2  # the PSP received the second request
    assert failed.value.kind == "transport"


def _certificates(tmp_path) -> tuple[str, str, str]:
    """A CA (its PEM file) and a certificate for 127.0.0.1 it signed (cert, key files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kassa test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(files[0]), str(files[1]), str(files[2])


async def test_the_hop_trusts_what_httpx_trusts(tmp_path, monkeypatch):
    """SSL_CERT_FILE names the CAs the PSP calls trust, as it did with httpx's transport
    (aiohttp's default context would take the system store and refuse this PSP)."""
    from kassa.vault.hop import AiohttpHop, HopFailed

    ca, cert, key = _certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    psp = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        monkeypatch.setenv("SSL_CERT_FILE", ca)
        hop = AiohttpHop()
        try:
            assert (await hop.send("POST", psp + "/x", [], b"{}", 5)).status == 200
        finally:
            await hop.aclose()
        monkeypatch.delenv("SSL_CERT_FILE")  # certifi's CAs: not this test CA
        hop = AiohttpHop()
        try:
            with pytest.raises(HopFailed) as failed:
                await hop.send("POST", psp + "/x", [], b"{}", 5)
        finally:
            await hop.aclose()
        assert failed.value.kind == "connect"  # the handshake failed: nothing was sent


async def test_the_hop_has_certifis_cas_without_ssl_cert_file(monkeypatch):
    """Without SSL_CERT_FILE / SSL_CERT_DIR: certifi's CAs, as httpx had (not the system's)."""
    import certifi

    from kassa.vault.hop import AiohttpHop

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    hop = AiohttpHop()
    try:
        context = hop._client().connector._ssl  # type: ignore[union-attr]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
        certifis = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
        assert certifis and context.get_ca_certs() == certifis
    finally:
        await hop.aclose()
