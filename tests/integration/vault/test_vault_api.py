"""The vault's HTTP surface: who may tokenise, Stripe's card errors, fingerprints, and the
forwarding endpoint's refusals."""

from __future__ import annotations

import httpx
import pytest

from kassa.services import merchants
from tests.support.vault import FORWARD_TOKEN, tokenise

PAN = "4242424242424242"


async def test_a_card_needs_an_api_key(vault):
    async with httpx.AsyncClient(base_url=vault.url) as c:
        r = await c.post("/v1/payment_methods", data={"type": "card", "card[number]": PAN})
    assert r.status_code == 401
    assert PAN not in r.text


@pytest.mark.parametrize(("card", "code", "param"), [
    ({"number": "4242424242424241"}, "incorrect_number", "card[number]"),
    ({"month": "13"}, "invalid_expiry_month", "card[exp_month]"),
    ({"year": "2001"}, "invalid_expiry_year", "card[exp_year]"),
    ({"cvc": "12"}, "invalid_cvc", "card[cvc]"),
])
async def test_bad_cards_get_stripes_card_errors(vault, shop, card, code, param):
    number = card.pop("number", PAN)
    r = await tokenise(vault.url, shop["publishable_key"], number, **card)
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("card_error", code, param)
    assert number not in r.text


async def test_a_secret_key_may_tokenise_and_retrieve_but_not_a_publishable_one(vault, shop):
    r = await tokenise(vault.url, shop["secret_key"], PAN)
    assert r.status_code == 200, r.text
    pm = r.json()["id"]
    async with httpx.AsyncClient(base_url=vault.url) as c:
        assert (await c.get(f"/v1/payment_methods/{pm}",
                            auth=(shop["secret_key"], ""))).json()["id"] == pm
        r = await c.get(f"/v1/payment_methods/{pm}", auth=(shop["publishable_key"], ""))
    assert r.status_code == 403


async def test_the_same_card_has_one_fingerprint_per_merchant(vault, api, shop):
    other = await merchants.create_merchant(api.kassa, name="Other shop")
    a = (await tokenise(vault.url, shop["publishable_key"], PAN)).json()
    b = (await tokenise(vault.url, shop["publishable_key"], PAN, cvc=None)).json()
    c = (await tokenise(vault.url, other["publishable_key"], PAN)).json()
    d = (await tokenise(vault.url, shop["publishable_key"], "4000056655665556")).json()
    assert a["id"] != b["id"]
    assert a["card"]["fingerprint"] == b["card"]["fingerprint"]
    assert c["card"]["fingerprint"] != a["card"]["fingerprint"]
    assert d["card"]["fingerprint"] != a["card"]["fingerprint"]
    assert d["card"]["funding"] == "debit"
    assert b["card"]["checks"]["cvc_check"] is None
    # another merchant's card is not found, at the API as at the vault
    r = await api.get(f"/v1/payment_methods/{a['id']}",
                      headers={"Authorization": f"Bearer {other['secret_key']}"})
    assert r.status_code == 404


async def test_a_payment_with_another_merchants_card_is_refused(vault, api, shop):
    other = await merchants.create_merchant(api.kassa, name="Other shop")
    pm = (await tokenise(vault.url, other["publishable_key"], PAN)).json()["id"]
    r = await api.post("/v1/payment_intents", headers={
        "Authorization": f"Bearer {shop['secret_key']}"}, data={
        "amount": "500", "currency": "usd", "payment_method": pm, "confirm": "true"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "resource_missing"


def _forward_headers(url: str, **extra: str) -> dict[str, str]:
    return {"kassa-vault-token": FORWARD_TOKEN, "kassa-forward-url": url,
            "content-type": "application/json", **extra}


async def test_the_forwarding_endpoint_refuses_strangers_and_other_hosts(vault, shop,
                                                                          simulator_url):
    pm = (await tokenise(vault.url, shop["publishable_key"], PAN)).json()["id"]
    body = f'{{"card": {{"number": "kvault_{pm}_number"}}}}'
    async with httpx.AsyncClient(base_url=vault.forward_url) as c:
        r = await c.post("/v1/forward", content=body, headers={
            **_forward_headers(simulator_url + "/v1/authorizations"),
            "kassa-vault-token": "wrong"})
        assert r.status_code == 401 and r.headers["kassa-forward-error"] == "refused"
        r = await c.post("/v1/forward", content=body,
                         headers=_forward_headers("https://evil.example/collect"))
        assert r.status_code == 403 and r.headers["kassa-forward-error"] == "refused"
        unknown = body.replace(pm, "pm_" + "0" * 24)
        r = await c.post("/v1/forward", content=unknown,
                         headers=_forward_headers(simulator_url + "/v1/authorizations"))
        assert r.status_code == 404 and r.headers["kassa-forward-error"] == "refused"
        r = await c.post("/v1/forward", content=body, headers={
            **_forward_headers(simulator_url + "/v1/authorizations"),
            "content-type": "text/plain"})
        assert r.status_code == 400
    assert PAN not in r.text


async def test_the_public_listener_has_no_forwarding_endpoint(vault, shop, simulator_url):
    """Browsers reach the public listener: /v1/forward is not there, with the right token
    or without; it answers on the private (loopback) listener only, which serves nothing
    else."""
    pm = (await tokenise(vault.url, shop["publishable_key"], PAN)).json()["id"]
    body = f'{{"card": {{"number": "kvault_{pm}_number"}}, "amount": 100}}'
    async with httpx.AsyncClient(base_url=vault.url) as c:
        r = await c.post("/v1/forward", content=body,
                         headers=_forward_headers(simulator_url + "/v1/authorizations"))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["message"] == "Unrecognized request URL (POST: /v1/forward)."
        assert PAN not in r.text and "kassa-forward-error" not in r.headers
    async with httpx.AsyncClient(base_url=vault.forward_url) as c:
        r = await c.post("/v1/forward", content=body,
                         headers=_forward_headers("https://evil.example/collect"))
        assert r.status_code == 403  # the forwarding endpoint itself, refusing the host
        r = await c.post("/v1/payment_methods", auth=(shop["publishable_key"], ""),
                         data={"type": "card", "card[number]": PAN, "card[exp_month]": "12",
                               "card[exp_year]": "2034"})
        assert r.status_code == 404  # cards are taken on the public listener only
    assert vault.forward_url.startswith("http://127.0.0.1:")
    assert vault.settings.vault_forward_url() == vault.forward_url  # what the API uses


async def test_a_psp_that_cannot_be_reached_is_a_connect_error_to_the_adapter(
        settings, dsn, shop):
    from kassa.vault.transport import VaultForwardingTransport
    from tests.support.processes import free_port
    from tests.support.vault import running_vault

    closed = f"http://127.0.0.1:{free_port()}"
    async with running_vault(settings, dsn, vault_forward_hosts=closed) as vault:
        pm = (await tokenise(vault.url, shop["publishable_key"], PAN)).json()["id"]
        transport = VaultForwardingTransport(httpx.AsyncHTTPTransport(),
                                             forward_url=vault.forward_url, token=FORWARD_TOKEN)
        async with httpx.AsyncClient(transport=transport) as client:
            # what the adapter's own call would raise (httpx-aiohttp: ConnectTimeout)
            with pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
                await client.post(closed + "/v1/authorizations",
                                  json={"number": f"kvault_{pm}_number", "cvc": f"kvault_{pm}_cvc"})
            # provably unsent: the CVC is still there for the first authorisation
            assert vault.vault.cvcs.take(pm) is not None
            # a request without placeholders goes straight to its host
            with pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
                await client.post("http://127.0.0.1:9/v1/x", json={"amount": 1})


async def test_a_psp_that_drops_the_sent_request_is_outcome_unknown_to_the_adapter(
        settings, dsn, shop):
    """The PSP read the request, then closed the connection: it may have authorised. The
    vault's own transport (httpx-aiohttp) raises ConnectTimeout for that too; the adapter
    must not see "never sent" (it would fail over and maybe charge twice)."""
    import asyncio

    from kassa.psp.transport_errors import never_sent
    from kassa.vault.transport import VaultForwardingTransport
    from tests.support.vault import running_vault

    arrived: list[bytes] = []

    async def drop_after_reading(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        arrived.append(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(drop_after_reading, "127.0.0.1", 0)
    psp = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server, running_vault(settings, dsn, vault_forward_hosts=psp) as vault:
        pm = (await tokenise(vault.url, shop["publishable_key"], PAN, cvc="737")).json()["id"]
        transport = VaultForwardingTransport(httpx.AsyncHTTPTransport(),
                                             forward_url=vault.forward_url, token=FORWARD_TOKEN)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.TransportError) as err:
                await client.post(psp + "/v1/authorizations",
                                  json={"number": f"kvault_{pm}_number", "cvc": f"kvault_{pm}_cvc"})
        assert arrived and b"737" in arrived[0]  # the PSP did get the card and its CVC
        assert not never_sent(err.value), repr(err.value)
        assert not isinstance(err.value, httpx.ConnectError | httpx.ConnectTimeout)
        assert vault.vault.cvcs.take(pm) is None  # sent: the CVC was used, not given back


def _capturing_forwarder(vault, seen: list[httpx.Request]):
    from kassa.vault.forward import Forwarder, parse_allow_list

    def psp(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b'{"echo": "' + request.content[:200]
                              .replace(b'"', b"'") + b'"}',
                              headers={"content-type": "application/json"})

    return Forwarder(vault.vault, httpx.MockTransport(psp),
                     allowed=parse_allow_list("https://psp.test"))


async def test_the_cvc_goes_to_the_first_authorisation_only(vault, shop):
    import orjson

    seen: list[httpx.Request] = []
    forwarder = _capturing_forwarder(vault, seen)
    pm = (await tokenise(vault.url, shop["publishable_key"], PAN, cvc="737")).json()["id"]
    body = orjson.dumps({"amount": 100, "card": {"number": f"kvault_{pm}_number",
                                                 "cvc": f"kvault_{pm}_cvc", "exp_month": 12}})
    answers = [await forwarder.forward(method="POST", url="https://psp.test/v1/auth",
                                       headers=[("content-type", "application/json"),
                                                ("authorization", "Bearer psp-key")],
                                       body=body, psp_timeout=5) for _ in range(2)]
    first, second = (orjson.loads(r.content) for r in seen)
    assert first["card"] == {"number": PAN, "cvc": "737", "exp_month": 12}
    assert second["card"] == {"number": PAN, "exp_month": 12}  # forgotten after use
    assert seen[0].headers["authorization"] == "Bearer psp-key"
    assert "kassa-vault-token" not in seen[0].headers
    for answer in answers:  # the PSP echoed the number: it comes back as the placeholder
        assert PAN.encode() not in answer.body and f"kvault_{pm}_number".encode() in answer.body


async def test_form_encoded_requests_are_filled_too(vault, shop):
    from urllib.parse import parse_qs

    seen: list[httpx.Request] = []
    forwarder = _capturing_forwarder(vault, seen)
    pm = (await tokenise(vault.url, shop["publishable_key"], PAN, cvc=None)).json()["id"]
    await forwarder.forward(
        method="POST", url="https://psp.test/v1/payment_intents",
        headers=[("content-type", "application/x-www-form-urlencoded")],
        body=f"amount=100&payment_method_data[card][number]=kvault_{pm}_number"
             f"&payment_method_data[card][cvc]=kvault_{pm}_cvc".encode(), psp_timeout=5)
    sent = parse_qs(seen[0].content.decode())
    assert sent == {"amount": ["100"], "payment_method_data[card][number]": [PAN]}


@pytest.mark.parametrize("column", ["pan", "wrapped"])
async def test_a_ciphertext_moved_to_another_card_opens_nothing(vault, shop, dsn, column):
    import asyncpg

    from kassa.vault.crypto import DecryptionFailed
    from kassa.vault.keyring import UnwrapFailed

    a = (await tokenise(vault.url, shop["publishable_key"], PAN)).json()["id"]
    b = (await tokenise(vault.url, shop["publishable_key"], "5555555555554444")).json()["id"]
    conn = await asyncpg.connect(dsn)
    try:
        if column == "pan":  # b's sealed number copied onto a's row
            await conn.execute(
                "UPDATE kassa_vault.card_secrets SET pan = (SELECT pan FROM"
                " kassa_vault.card_secrets WHERE payment_method_id = $2)"
                " WHERE payment_method_id = $1", a, b)
        else:  # b's wrapped data key copied onto a's data key
            await conn.execute(
                "UPDATE kassa_vault.data_keys SET wrapped = (SELECT k.wrapped FROM"
                " kassa_vault.data_keys k JOIN kassa_vault.card_secrets s ON"
                " s.data_key_id = k.id WHERE s.payment_method_id = $2)"
                " WHERE id = (SELECT data_key_id FROM kassa_vault.card_secrets"
                " WHERE payment_method_id = $1)", a, b)
    finally:
        await conn.close()
    with pytest.raises((DecryptionFailed, UnwrapFailed)):
        await vault.vault.open_cards([a])
    assert (await vault.vault.open_cards([b]))[b].reveal() == "5555555555554444"
    seen: list[httpx.Request] = []
    with pytest.raises(Exception, match="did not authenticate") as refused:
        await _capturing_forwarder(vault, seen).forward(
            method="POST", url="https://psp.test/x", headers=[("content-type",
                                                                "application/json")],
            body=f'{{"n": "kvault_{a}_number"}}'.encode(), psp_timeout=5)
    assert refused.value.status == 422 and seen == []  # nothing reached the PSP


async def test_card_columns_are_json_objects_sql_can_read(vault, api, shop, dsn):
    """What the vault writes, and what a card's update writes, is the object itself: SQL (a
    report, a support query) reads ``checks->>'cvc_check'``, not a string holding JSON."""
    import asyncpg

    auth = {"Authorization": f"Bearer {shop['secret_key']}"}
    pm = (await tokenise(vault.url, shop["publishable_key"], PAN)).json()["id"]
    customer = (await api.post("/v1/customers", headers=auth)).json()["id"]
    r = await api.post(f"/v1/payment_methods/{pm}/attach", data={"customer": customer},
                       headers=auth)
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/payment_methods/{pm}", data={
        "metadata[order]": "7", "billing_details[address][city]": "Berlin"}, headers=auth)
    assert r.status_code == 200, r.text
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT jsonb_typeof(checks) AS t, checks->>'cvc_check' AS cvc,"
            " billing_details #>> '{address,city}' AS city, metadata->>'order' AS ord"
            " FROM kassa_vault.payment_methods WHERE id = $1", pm)
    finally:
        await conn.close()
    assert dict(row) == {"t": "object", "cvc": "unchecked", "city": "Berlin",
                         "ord": "7"}
    assert r.json()["metadata"] == {"order": "7"}
