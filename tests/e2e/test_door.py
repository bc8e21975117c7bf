"""Hostile input at the API's door (issue 8, items 10, 13, 14): NUL characters, invalid
UTF-8, repeated keys, URL parameters and oversized bodies are refused with Stripe-shaped
4xx answers, never a 500, and nothing reaches the database."""

from __future__ import annotations

import httpx
import pytest

from kassa.api.app import create_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def assert_invalid(r: httpx.Response, param: str | None = None, *, code: str = "parameter_invalid"
                   ) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", code), err
    if param is not None:
        assert err.get("param") == param, err


async def count_payments(client, auth) -> int:
    r = await client.get("/v1/payment_intents", headers=auth, params={"limit": 100})
    return len(r.json()["data"])


# --------------------------------------------------------------------- item 10: NUL, UTF-8


async def test_nul_in_a_json_body_is_400_not_500(client, auth):
    before = await count_payments(client, auth)
    r = await client.post("/v1/payment_intents", headers={**auth, **JSON},
                          content=b'{"amount":100,"currency":"usd","description":"\\u0000"}')
    assert_invalid(r, "description")
    r = await client.post("/v1/payment_intents", headers={**auth, **JSON},
                          content=b'{"amount":100,"currency":"usd","metadata":{"k\\u0000":"v"}}')
    assert_invalid(r, "metadata[k]")
    assert await count_payments(client, auth) == before


@pytest.mark.parametrize("body", [b"amount=100&currency=usd&description=a%00b",
                                  b"amount=100&currency=us%00",
                                  b"amount=100&currency=usd&metadata[x]=%00"])
async def test_nul_in_a_form_body_is_400(client, auth, body):
    r = await client.post("/v1/payment_intents", headers={**auth, **FORM}, content=body)
    assert_invalid(r)


@pytest.mark.parametrize("path", [
    "/v1/payment_intents/pi_%00", "/v1/payment_intents/%00/confirm", "/v1/refunds/re_%00",
    "/v1/events/evt_%00", "/v1/disputes/%00", "/v1/balance_transactions/%00",
    "/v1/webhook_endpoints/we_%00/deliveries",
])
async def test_nul_in_a_path_id_is_400(client, auth, path):
    method = "POST" if path.endswith("confirm") else "GET"
    assert_invalid(await client.request(method, path, headers=auth))


@pytest.mark.parametrize("query", ["starting_after=%00", "ending_before=pi_%00",
                                   "limit=1%00", "type=%00", "payment_intent=%00"])
async def test_nul_in_a_query_value_is_400(client, auth, query):
    for path in ("/v1/payment_intents", "/v1/events", "/v1/refunds"):
        assert_invalid(await client.get(f"{path}?{query}", headers=auth))


@pytest.mark.parametrize(("method", "url", "body"), [
    ("GET", "/v1/payment_intents/pi_%FF", None),
    ("GET", "/v1/events?type=%C3", None),
    ("POST", "/v1/payment_intents", b"amount=100&currency=usd&description=caf%E9"),
    ("POST", "/v1/payment_intents", b"amount=100&currency=usd&description=caf\xe9"),
])
async def test_invalid_utf8_is_400_not_replaced(client, auth, method, url, body):
    r = await client.request(method, url, headers={**auth, **FORM}, content=body)
    assert_invalid(r)
    assert "UTF-8" in r.json()["error"]["message"]


async def test_invalid_utf8_in_a_json_body_is_400(client, auth):
    r = await client.post("/v1/payment_intents", headers={**auth, **JSON},
                          content=b'{"amount":100,"currency":"usd","description":"caf\xe9"}')
    assert_invalid(r)


# --------------------------------------------------------------------- item 14: repeats, URLs


async def test_a_repeated_form_key_is_400_and_creates_nothing(client, auth):
    before = await count_payments(client, auth)
    r = await client.post("/v1/payment_intents", headers={**auth, **FORM},
                          content=b"amount=100&currency=usd&amount=200")
    assert_invalid(r, "amount")
    r = await client.post("/v1/payment_intents", headers={**auth, **JSON},
                          content=b'{"amount":100,"currency":"usd","amount":200}')
    assert_invalid(r, "amount")
    assert await count_payments(client, auth) == before


async def test_a_repeated_query_key_is_400(client, auth):
    assert_invalid(await client.get("/v1/payment_intents?limit=1&limit=100", headers=auth),
                   "limit")
    assert_invalid(await client.get("/v1/events?type=a&type=b", headers=auth), "type")
    # list parameters (``expand[]``) may repeat
    r = await client.get("/v1/payment_intents?expand[]=a&expand[]=b", headers=auth)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/relative/path", "example.com/done",
                                 "ftp://example.com/", "http://", "https://exa mple.com/",
                                 "http://example.com:port/", "data:text/html,hi"])
async def test_return_url_must_be_an_absolute_http_url(client, auth, url):
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "100", "currency": "usd", "return_url": url})
    assert_invalid(r, "return_url")
    pi = (await client.post("/v1/payment_intents", headers=auth,
                            data={"amount": "100", "currency": "usd"})).json()
    r = await client.post(f"/v1/payment_intents/{pi['id']}/confirm", headers=auth,
                          data={"payment_method": "pm_card_visa", "return_url": url})
    assert_invalid(r, "return_url")


async def test_an_absolute_return_url_is_accepted(client, auth):
    r = await client.post("/v1/payment_intents", headers=auth, data={
        "amount": "100", "currency": "usd", "return_url": "https://shop.example/done?o=7"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/hooks", "ftp://example.com/h"])
async def test_webhook_endpoint_url_must_be_an_absolute_http_url(client, auth, url):
    r = await client.post("/v1/webhook_endpoints", headers=auth,
                          data={"url": url, "enabled_events[]": "*"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "url", r.text


# --------------------------------------------------------------------- item 13: body limit


@pytest.fixture
def small_app(kassa):
    return create_app(kassa=kassa, key_cache_seconds=0.0, max_body_bytes=4096)


async def call(app, method: str, path: str, headers: list[tuple[bytes, bytes]],
               chunks: list[bytes]) -> tuple[int, dict[bytes, bytes], bytes, int]:
    """Drive the ASGI app directly, feeding the body chunk by chunk; returns status,
    headers, body and how many chunks the app asked for."""
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1],
                    "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, pulled


async def test_a_declared_oversized_body_is_413_before_any_byte_is_read(small_app, merchant):
    auth = (b"authorization", f"Bearer {merchant['secret_key']}".encode())
    status, headers, body, pulled = await call(
        small_app, "POST", "/v1/payment_intents",
        [auth, (b"content-type", b"application/x-www-form-urlencoded"),
         (b"content-length", b"209715200")], [b"a" * 65536] * 10)
    assert status == 413 and pulled == 0
    assert headers[b"connection"] == b"close"
    import orjson

    err = orjson.loads(body)["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "request_too_large")


async def test_an_undeclared_streamed_body_is_cut_off_at_the_limit(small_app, merchant):
    auth = (b"authorization", f"Bearer {merchant['secret_key']}".encode())
    chunks = [b"description=" + b"a" * 1000] + [b"a" * 1024] * 200_000  # ~200 MB, chunked
    status, _, body, pulled = await call(
        small_app, "POST", "/v1/payment_intents",
        [auth, (b"content-type", b"application/x-www-form-urlencoded"),
         (b"transfer-encoding", b"chunked")], chunks)
    assert status == 413, body
    assert pulled <= 5  # stopped within a chunk of the 4 KiB limit, not at 200 MB


async def test_a_body_within_the_limit_passes(small_app, merchant):
    auth = (b"authorization", f"Bearer {merchant['secret_key']}".encode())
    status, _, body, _ = await call(
        small_app, "POST", "/v1/payment_intents",
        [auth, (b"content-type", b"application/x-www-form-urlencoded")],
        [b"amount=100&", b"currency=usd"])
    assert status == 200, body


async def test_the_limit_is_a_setting_with_a_1_mib_default(client, auth, kassa, monkeypatch):
    r = await client.post("/v1/payment_intents", headers={**auth, **FORM},
                          content=b"amount=100&currency=usd&description=" + b"a" * (1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    monkeypatch.setenv("KASSA_API_MAX_BODY_BYTES", "2048")
    app = create_app(kassa=kassa, key_cache_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as small:
        r = await small.post("/v1/payment_intents", headers={**auth, **FORM},
                             content=b"amount=100&currency=usd&description=" + b"a" * 3000)
    assert r.status_code == 413


@pytest.mark.parametrize(("query", "param", "code"), [
    ("limit=abc", "limit", "parameter_invalid_integer"), ("limit=0", "limit", "parameter_invalid"),
    ("limit=101", "limit", "parameter_invalid"),
    ("starting_after=", "starting_after", "parameter_invalid_empty")])
async def test_query_parameters_are_validated_stripe_shaped(client, auth, query, param, code):
    assert_invalid(await client.get(f"/v1/events?{query}", headers=auth), param, code=code)
