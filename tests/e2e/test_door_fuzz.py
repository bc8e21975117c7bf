"""Property test over the API's parameters (issue 8, items 10-14): whatever text arrives in a
body (form or JSON), a path id or a query value — NUL, control characters, lone surrogates,
invalid UTF-8, repeated keys, oversized bodies — kassa answers a Stripe-shaped 4xx or a
success, never a 5xx; NUL and repeated keys are always 400 parameter_invalid."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from kassa.api.app import create_app

SETTINGS = hypothesis.settings(max_examples=120, deadline=None, database=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])

# (method, path, parameters it knows) — {id} is a real object of the merchant or text
POSTS = [
    ("POST", "/v1/payment_intents", ["amount", "currency", "description", "payment_method",
                                     "capture_method", "confirm", "return_url",
                                     "metadata[order]", "expand[]"]),
    ("POST", "/v1/payment_intents/{pi}/confirm", ["payment_method", "return_url"]),
    ("POST", "/v1/payment_intents/{pi}/capture", ["amount_to_capture"]),
    ("POST", "/v1/payment_intents/{pi}/cancel", ["cancellation_reason"]),
    ("POST", "/v1/refunds", ["payment_intent", "amount", "reason", "metadata[k]"]),
    ("POST", "/v1/webhook_endpoints", ["url", "enabled_events[]", "description",
                                       "metadata[k]"]),
    ("POST", "/v1/disputes/{id}", ["evidence[customer_name]", "metadata[k]", "submit"]),
    ("POST", "/v1/events/{id}/redeliver", ["endpoint"]),
]
GETS = ["/v1/payment_intents", "/v1/refunds", "/v1/events", "/v1/disputes",
        "/v1/balance_transactions", "/v1/webhook_endpoints"]
RETRIEVES = ["/v1/payment_intents/{id}", "/v1/refunds/{id}", "/v1/events/{id}",
             "/v1/disputes/{id}", "/v1/balance_transactions/{id}",
             "/v1/webhook_endpoints/{id}", "/v1/webhook_endpoints/{id}/deliveries"]

# text a client could send: anything, with the awkward characters made likely
hostile = st.text(alphabet=st.one_of(
    st.sampled_from(["\x00", "\x01", "\x7f", "\u2028", "\ufeff", "%", "&", "=", "[", "]",
                     "\\", '"', "é", "١", " "]),
    st.characters(codec="utf-8")), max_size=12)
plausible = st.sampled_from(["100", "usd", "pm_card_visa", "manual", "true", "order 7",
                             "https://shop.example/done", "*", "0", "-1", ""])
value = st.one_of(plausible, hostile)


def has_nul(*texts: str) -> bool:
    return any("\x00" in t for t in texts)


def assert_stripe_shaped(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["type"], str) and isinstance(err["message"], str), err


@pytest.fixture
async def pi_id(client, auth) -> str:
    r = await client.post("/v1/payment_intents", headers=auth,
                          data={"amount": "500", "currency": "usd"})
    return r.json()["id"]


@SETTINGS
@given(op=st.sampled_from(POSTS), data=st.data(), as_json=st.booleans(),
       repeat=st.booleans())
async def test_post_bodies(client, auth, pi_id, op, data, as_json, repeat):
    method, path, names = op
    path = path.replace("{pi}", pi_id).replace("{id}", "x_1")
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    pairs = [(n, data.draw(value)) for n in chosen]
    if repeat:  # the same key twice (a list key's [] may repeat, so use a scalar one)
        scalar = next((p for p in pairs if not p[0].endswith("[]")), None)
        if scalar is not None:
            pairs.append((scalar[0], data.draw(value)))
    repeated = len({k for k, _ in pairs}) < len(pairs)
    if as_json:
        # built by hand: json.dumps of a dict cannot repeat a key; keys with brackets go
        # in as plain (unknown) names, which is fine for this property
        body = ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
                + "}").encode()
        ctype = "application/json"
    else:
        body = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs).encode()
        ctype = "application/x-www-form-urlencoded"
    r = await client.request(method, path, headers={**auth, "Content-Type": ctype},
                             content=body)
    assert_stripe_shaped(r)
    if repeated or has_nul(*(k + v for k, v in pairs)):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "parameter_invalid", r.text


@SETTINGS
@given(path=st.sampled_from(RETRIEVES), ident=hostile)
async def test_path_ids(client, auth, path, ident):
    r = await client.get(path.replace("{id}", quote(ident, safe="")), headers=auth)
    assert_stripe_shaped(r)
    if has_nul(ident):
        assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_invalid"


@SETTINGS
@given(path=st.sampled_from(GETS),
       query=st.lists(st.tuples(st.sampled_from(["limit", "starting_after", "ending_before",
                                                 "type", "payment_intent", "status"]),
                                value), max_size=4),
       raw=st.binary(max_size=6))
async def test_query_values(client, auth, path, query, raw):
    qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
    if raw:  # arbitrary bytes, percent-escaped: often not UTF-8 at all
        qs += ("&" if qs else "") + "type=" + "".join(f"%{b:02X}" for b in raw)
        query = [*query, ("type", "")]
    r = await client.get(f"{path}?{qs}", headers=auth)
    assert_stripe_shaped(r)
    keys = [k for k, _ in query]
    if len(set(keys)) < len(keys) or has_nul(*(v for _, v in query)) or b"\x00" in raw:
        assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_invalid"


@pytest.fixture
async def small(kassa):
    app = create_app(kassa=kassa, key_cache_seconds=0.0, max_body_bytes=2048)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as c:
        yield c


@SETTINGS
@given(size=st.integers(min_value=1900, max_value=2200), as_json=st.booleans())
async def test_body_size(small, auth, size, as_json):
    if as_json:
        prefix = b'{"amount":100,"currency":"usd","description":"'
        body = prefix + b"a" * max(0, size - len(prefix) - 2) + b'"}'
    else:
        prefix = b"amount=100&currency=usd&description="
        body = prefix + b"a" * max(0, size - len(prefix))
    r = await small.post("/v1/payment_intents", content=body, headers={
        **auth, "Content-Type": "application/json" if as_json
        else "application/x-www-form-urlencoded"})
    assert_stripe_shaped(r)
    assert (r.status_code == 413) == (len(body) > 2048), (len(body), r.text)
